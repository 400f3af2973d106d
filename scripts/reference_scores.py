#!/usr/bin/env python3
"""A second, deliberately plain implementation of the zhejiang-2018 rules
(spec: scoring.md), to check the engine against on any data.

It reads the events a lake accepted (its `events` table, with DuckDB), sorts
them once in the spec's order (ts, then event_id as bytes), scores them rule by
rule with plain dictionaries, and compares every (day, user_id, rule) sum with
the lake's `daily_scores`, and every (day, user_id) count with its
`daily_activity` (lake.md). It shares no code and no design with the engine
(no windows, no folding, no snapshots): what it computes is the spec's pure
function of the set of events. Validation and de-duplication are not its
business: the conformance case checks those.

The one place the engine's memory shows: an unqualified task is forgotten
two windows (60 days) and the allowed lateness after its publish instant,
and the lateness after its first event (docs/decisions.md, Scoring), and a
later event of it starts it anew; give
the lateness the lake was ingested with (huoyue-ingest's --lateness, default
3d).

usage: reference_scores.py LAKE [--lateness Nd]   prints the differences, exit 1 if any
"""
import collections
import sys

import duckdb

DAY_US = 86_400 * 1_000_000
OFFSET_US = 8 * 3600 * 1_000_000  # the profile's time zone, +08:00
OWNER_SCORED = {"resource_interact", "resource_review", "task_progress"}
PROFILE_ITEMS = {"avatar", "contact", "school", "subject"}
LEVEL_POINTS = {"county": 3, "city": 7, "province": 10}
APPS = {"mingshi", "jidi", "jiaoyan", "weike", "xueke"}


def day_of(ts_us):
    return (ts_us + OFFSET_US) // DAY_US


def events(lake):
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT epoch_us(ts), event_id, user_id, role, action, client, items,
               resource_id, owner_id, level, outcome, task_id,
               epoch_us(published_at), counterpart_id, app_id
        FROM read_parquet('{lake}/events/*/*.parquet', hive_partitioning = true)
        """
    ).fetchall()
    # ascending (ts as an instant, event_id as bytes)
    rows.sort(key=lambda r: (r[0], r[1].encode()))
    return rows


def score(rows, lateness):
    pts = collections.Counter()  # (day, user, rule) -> points
    login_days = collections.defaultdict(set)
    profile_items = collections.defaultdict(set)
    profile_done = set()
    space = collections.Counter()  # (day, user)
    teach = collections.Counter()
    pairs = set()  # (owner, resource, actor)
    spread_day = collections.Counter()  # (day, owner)
    spread_life = collections.Counter()  # (owner, resource)
    reviews = {}  # (owner, resource) -> {"levels": set, "earned": int, "deleted": bool}
    tasks = {}  # (owner, task) -> {"published": us, "students": set, "qualified": bool}
    task_days = set()  # (publish day, owner) that earned
    counterparts = collections.defaultdict(set)  # (day, user)
    apps = collections.defaultdict(set)

    for (ts, _eid, user, role, action, client, items, resource, owner, level,
         outcome, task, published, counterpart, app) in rows:
        day = day_of(ts)
        teacher = role == "teacher"
        if action == "login" and teacher:
            login_days[user].add(day)
        elif action == "profile_update" and teacher and user not in profile_done:
            profile_items[user].update(items or [])
            if PROFILE_ITEMS <= profile_items[user]:
                profile_done.add(user)
                pts[(day, user, "profile")] += 5
        elif action == "space_op" and teacher and (client or "pc") == "mobile":
            if space[(day, user)] < 2:
                space[(day, user)] += 1
                pts[(day, user, "space_use")] += 1
        elif action == "teach" and teacher:
            if teach[(day, user)] < 10:
                teach[(day, user)] += 5
                pts[(day, user, "teach")] += 5
        elif action == "resource_interact":
            if user != owner and (owner, resource, user) not in pairs:
                pairs.add((owner, resource, user))
                if spread_day[(day, owner)] < 2 and spread_life[(owner, resource)] < 50:
                    spread_day[(day, owner)] += 1
                    spread_life[(owner, resource)] += 1
                    pts[(day, owner, "resource_spread")] += 1
        elif action == "resource_review":
            r = reviews.setdefault((owner, resource), {"levels": set(), "earned": 0, "deleted": False})
            if r["deleted"]:
                continue
            if outcome == "approved" and level not in r["levels"]:
                r["levels"].add(level)
                r["earned"] += LEVEL_POINTS[level]
                pts[(day, owner, "resource_submit")] += LEVEL_POINTS[level]
            elif outcome == "deleted":
                r["deleted"] = True
                pts[(day, owner, "resource_submit")] -= r["earned"]
                r["earned"] = 0
        elif action == "task_progress":
            t = tasks.get((owner, task))
            if (t is not None and not t["qualified"]
                    and day > day_of(t["published"] + 60 * DAY_US) + lateness
                    and day > t["first_day"] + lateness):
                # forgotten two windows and the lateness after its publish
                # instant: a later event starts it anew (docs/decisions.md, Scoring)
                t = None
            if t is None:
                t = tasks[(owner, task)] = {"published": published, "first_day": day,
                                            "students": set(), "qualified": False}
            if t["qualified"] or role != "student":
                continue
            if t["published"] <= ts <= t["published"] + 30 * DAY_US:
                t["students"].add(user)
                if len(t["students"]) >= 10:
                    t["qualified"] = True
                    pday = day_of(t["published"])
                    if (pday, owner) not in task_days:
                        task_days.add((pday, owner))
                        pts[(pday, owner, "task")] += 5
        elif action == "interaction" and teacher:
            counterparts[(day, user)].add(counterpart)
        elif action == "app_use" and teacher and app in APPS:
            apps[(day, user)].add(app)

    for user, days in login_days.items():
        for d in days:
            streak = 1
            while d - streak in days:
                streak += 1
            pts[(d, user, "login")] += 2 if streak >= 7 else 1
    for (d, user), cps in counterparts.items():
        n = len(cps)
        pts[(d, user, "interaction")] += 5 if n >= 10 else 3 if n >= 5 else 0
    for (d, user), used in apps.items():
        pts[(d, user, "app")] += 2 * len(used)
    return {k: v for k, v in pts.items() if v != 0}


DEEP = {"space_op", "teach", "task_publish", "interaction", "app_use"}


def activity(rows):
    """(day, actor) -> [logins, deep actions, registers, events]."""
    out = collections.defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        c = out[(day_of(r[0]), r[2])]
        action = r[4]
        c[0] += action == "login"
        c[1] += action in DEEP
        c[2] += action == "register"
        c[3] += 1
    return {k: tuple(v) for k, v in out.items()}


def lake_activity(lake):
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT CAST(day AS DATE) - DATE '1970-01-01', user_id, CAST(SUM(logins) AS BIGINT),
               CAST(SUM(deep_actions) AS BIGINT), CAST(SUM(registers) AS BIGINT),
               CAST(SUM(events) AS BIGINT)
        FROM read_parquet('{lake}/daily_activity/*/*.parquet', hive_partitioning = true)
        GROUP BY ALL
        """
    ).fetchall()
    return {(d, u): tuple(c) for d, u, *c in rows}


def lake_scores(lake):
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT CAST(day AS DATE) - DATE '1970-01-01', user_id, rule, CAST(SUM(points) AS BIGINT)
        FROM read_parquet('{lake}/daily_scores/*/*.parquet', hive_partitioning = true)
        GROUP BY ALL HAVING SUM(points) <> 0
        """
    ).fetchall()
    return {(d, u, r): p for d, u, r, p in rows}


def main() -> None:
    lake = sys.argv[1]
    lateness = 3
    if sys.argv[2:3] == ["--lateness"]:
        lateness = int(sys.argv[3].removesuffix("d"))
    rows = events(lake)
    want = score(rows, lateness)
    got = lake_scores(lake)
    diffs = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    for d, u, r in diffs[:50]:
        print(f"day {d} user {u} rule {r}: reference {want.get((d, u, r))}, lake {got.get((d, u, r))}")
    counts, lake_counts = activity(rows), lake_activity(lake)
    activity_diffs = sorted(k for k in counts.keys() | lake_counts.keys() if counts.get(k) != lake_counts.get(k))
    for d, u in activity_diffs[:50]:
        print(f"day {d} user {u} activity: reference {counts.get((d, u))}, lake {lake_counts.get((d, u))}")
    diffs += activity_diffs
    by_rule = collections.Counter()
    for k, v in want.items():
        by_rule[k[2]] += v
    print(f"{len(want)} non-zero keys, {sum(want.values())} points "
          f"({', '.join(f'{r} {p}' for r, p in sorted(by_rule.items()))}), "
          f"{len(counts)} activity rows; {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()

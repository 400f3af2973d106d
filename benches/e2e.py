#!/usr/bin/env python3
"""End-to-end file mode against DuckDB doing the same work in batch SQL, in one run.

Generates a county month (huoyue-gen), then times
  1. huoyue-ingest --file: read, validate, de-duplicate, score, write the lake;
  2. DuckDB: read the same NDJSON, validate it as events.md says, de-duplicate,
     write `events` and the day scores of every rule as Parquet;
and prints both rates and their ratio, then checks that the two did the same
work: the same events kept and the same score of every (day, user_id, rule)
(exit 1 if not). The input is written to disk (sync)
before anything is timed, so that neither side competes with the kernel
flushing it; then the two sides run alternately `--rounds` times (each
huoyue run on a fresh lake) and the medians are compared. Release binaries
are expected in $CARGO_TARGET_DIR/release (cargo build --release -p
huoyue-ingest -p huoyue-benches).

usage: benches/e2e.py [--schools 100] [--rounds 3] [--seed 3] [--work DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import duckdb

# DuckDB doing the work of the peer, the way a DuckDB user would
# write it: the whole of events.md's validation (JSON types included: a
# number where a string belongs is a bad value, not its digits), the spec's
# de-duplication, `events` written, and the daily scores of every rule of
# zhejiang-2018, exactly. Its sums are checked against huoyue's lake after the
# timed rounds (`same_work`): a ratio against a peer doing less would say
# nothing. What DuckDB does not do: keep the rejected lines and their reasons
# (the peer does not write them), lateness (the file has no event
# older than the allowed lateness) and memory across runs.
DUCK_VALIDATE = """
CREATE MACRO json_str(j) AS CASE WHEN json_type(j) = 'VARCHAR' THEN j->>'$' END;
CREATE TEMP TABLE valid AS
WITH raw AS (
  SELECT * FROM read_json('{src}', format = 'newline_delimited', ignore_errors = true,
    columns = {{event_id: 'JSON', ts: 'JSON', user_id: 'JSON', role: 'JSON', school_id: 'JSON',
               action: 'JSON', client: 'JSON', stage: 'JSON', items: 'JSON', op: 'JSON',
               resource_id: 'JSON', owner_id: 'JSON', owner_school_id: 'JSON', level: 'JSON',
               outcome: 'JSON', lesson_id: 'JSON', duration_s: 'JSON', task_id: 'JSON', kind: 'JSON',
               published_at: 'JSON', status: 'JSON', counterpart_id: 'JSON',
               counterpart_role: 'JSON', app_id: 'JSON'}})
), typed AS (
  -- a field's text only if the JSON value is a string: a number where the
  -- spec wants a string is a bad value, not the number's digits
  SELECT * REPLACE (json_str(event_id) AS event_id, json_str(ts) AS ts, json_str(user_id) AS user_id,
      json_str(role) AS role, json_str(school_id) AS school_id, json_str(action) AS action,
      json_str(op) AS op, json_str(resource_id) AS resource_id, json_str(owner_id) AS owner_id,
      json_str(owner_school_id) AS owner_school_id, json_str(level) AS level, json_str(outcome) AS outcome,
      json_str(lesson_id) AS lesson_id, json_str(task_id) AS task_id, json_str(kind) AS kind,
      json_str(published_at) AS published_at, json_str(status) AS status,
      json_str(counterpart_id) AS counterpart_id, json_str(counterpart_role) AS counterpart_role,
      json_str(app_id) AS app_id),
    coalesce(json_type(client), 'NULL') = 'NULL' OR json_str(client) IN ('pc', 'mobile') AS client_ok,
    coalesce(json_type(stage), 'NULL') = 'NULL' OR json_str(stage) IN ('primary', 'junior', 'senior') AS stage_ok,
    coalesce(json_type(duration_s), 'NULL') = 'NULL'
      OR (json_type(duration_s) IN ('BIGINT', 'UBIGINT') AND TRY_CAST(duration_s AS BIGINT) >= 0) AS duration_ok,
    json_type(items) = 'ARRAY' AND coalesce(list_bool_and(list_transform(CAST(items AS JSON[]),
      lambda x: json_str(x) IN ('avatar', 'contact', 'school', 'subject'))), true) AS items_ok
  FROM raw
), parsed AS (
  SELECT *, TRY_CAST(ts AS TIMESTAMPTZ) AS ts_i, TRY_CAST(published_at AS TIMESTAMPTZ) AS published_i
  FROM typed
)
SELECT * EXCLUDE (ts, published_at, published_i, client, stage, duration_s, items,
                  client_ok, stage_ok, duration_ok, items_ok),
       json_str(client) AS client, json_str(stage) AS stage, TRY_CAST(duration_s AS BIGINT) AS duration_s,
       CAST(items AS VARCHAR[]) AS items,
       CAST(ts_i AT TIME ZONE 'Asia/Shanghai' AS DATE) AS day, published_i AS published_at
FROM parsed
WHERE regexp_full_match(event_id, '[A-Za-z0-9._:-]{{1,64}}')
  AND regexp_full_match(ts, '\d{{4}}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)')
  AND ts_i IS NOT NULL AND ts_i <= now() + INTERVAL 1 DAY
  AND length(user_id) BETWEEN 1 AND 64 AND NOT regexp_matches(user_id, '[\x00-\x1f\x7f]')
  AND role IN ('teacher', 'student', 'parent', 'admin')
  AND regexp_full_match(school_id, '[0-9]{{10}}')
  AND client_ok
  AND CASE action
    WHEN 'register' THEN stage_ok
    WHEN 'login' THEN true
    WHEN 'profile_update' THEN items_ok
    WHEN 'space_op' THEN length(op) BETWEEN 1 AND 32
    WHEN 'resource_interact' THEN length(resource_id) BETWEEN 1 AND 64 AND length(owner_id) BETWEEN 1 AND 64
      AND regexp_full_match(owner_school_id, '[0-9]{{10}}')
      AND op IN ('download', 'favorite', 'share', 'comment', 'view')
    WHEN 'resource_review' THEN length(resource_id) BETWEEN 1 AND 64 AND length(owner_id) BETWEEN 1 AND 64
      AND regexp_full_match(owner_school_id, '[0-9]{{10}}')
      AND level IN ('county', 'city', 'province') AND outcome IN ('approved', 'deleted')
    WHEN 'teach' THEN length(lesson_id) BETWEEN 1 AND 64 AND duration_ok
    WHEN 'task_publish' THEN length(task_id) BETWEEN 1 AND 64 AND kind IN ('homework', 'activity')
    WHEN 'task_progress' THEN length(task_id) BETWEEN 1 AND 64 AND length(owner_id) BETWEEN 1 AND 64
      AND regexp_full_match(owner_school_id, '[0-9]{{10}}') AND published_i IS NOT NULL
      AND status IN ('read', 'completed')
    WHEN 'interaction' THEN length(counterpart_id) BETWEEN 1 AND 64
      AND counterpart_role IN ('student', 'parent')
    WHEN 'app_use' THEN length(app_id) BETWEEN 1 AND 32
    ELSE false END
-- de-duplicated: the first of each event_id in the spec's order
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts_i, event_id) = 1;
COPY (SELECT * RENAME (ts_i AS ts) FROM valid) TO '{out}/events' (FORMAT parquet, PARTITION_BY (day), COMPRESSION snappy);
CREATE TEMP TABLE pairs AS
SELECT owner_id, resource_id, day, ts_i, event_id FROM valid
WHERE action = 'resource_interact' AND user_id <> owner_id
QUALIFY row_number() OVER (PARTITION BY owner_id, resource_id, user_id ORDER BY ts_i, event_id) = 1;
CREATE TEMP TABLE capped AS
SELECT DISTINCT owner_id FROM pairs GROUP BY owner_id, resource_id HAVING count(*) >= 50;
CREATE TEMP TABLE capped_pairs AS SELECT * FROM pairs SEMI JOIN capped USING (owner_id);
CREATE TEMP TABLE capped_points (day DATE, owner_id VARCHAR, points BIGINT);
CREATE TEMP TABLE spread_state (owner_id VARCHAR, resource_id VARCHAR, earned BIGINT);
"""

# resource_spread's two caps interact in order (a point the owner's daily cap
# refuses does not count towards the resource's 50), which no single batch
# statement expresses: owners with a resource of 50 or more propagations are
# scored a day at a time, each day's first two propagations of a resource
# still under 50 earning (a second of one at 49 does not).
DUCK_SPREAD_DAY = [
    """CREATE OR REPLACE TEMP TABLE earners AS
WITH today AS (
  SELECT p.owner_id, p.resource_id, coalesce(s.earned, 0) AS before,
    row_number() OVER (PARTITION BY p.owner_id ORDER BY p.ts_i, p.event_id) AS n
  FROM capped_pairs p LEFT JOIN spread_state s USING (owner_id, resource_id) WHERE p.day = $1
), first AS (
  SELECT owner_id, arg_min(resource_id, n) AS resource_id, min(n) AS n FROM today
  WHERE before < 50 GROUP BY owner_id
), second AS (
  SELECT t.owner_id, arg_min(t.resource_id, t.n) AS resource_id FROM today t JOIN first f USING (owner_id)
  WHERE t.n > f.n AND t.before < 50 AND NOT (t.resource_id = f.resource_id AND t.before = 49)
  GROUP BY t.owner_id
)
SELECT owner_id, resource_id FROM first UNION ALL SELECT owner_id, resource_id FROM second""",
    "INSERT INTO capped_points SELECT $1, owner_id, count(*) FROM earners GROUP BY owner_id",
    """CREATE OR REPLACE TEMP TABLE spread_state AS
SELECT owner_id, resource_id, sum(earned) AS earned
FROM (SELECT * FROM spread_state UNION ALL SELECT owner_id, resource_id, 1 FROM earners) GROUP BY ALL""",
]

DUCK_SCORES = """
COPY (
  WITH t AS (SELECT * FROM valid WHERE role = 'teacher'),
  login_days AS (SELECT DISTINCT user_id, day FROM t WHERE action = 'login'),
  islands AS (SELECT user_id, day,
      day - CAST(row_number() OVER (PARTITION BY user_id ORDER BY day) AS INTEGER) AS island
    FROM login_days),
  profile_first AS (
    SELECT user_id, item, day, ts_i, event_id FROM (
      SELECT user_id, unnest(items) AS item, day, ts_i, event_id FROM t WHERE action = 'profile_update')
    QUALIFY row_number() OVER (PARTITION BY user_id, item ORDER BY ts_i, event_id) = 1),
  reviews AS (
    SELECT owner_id, resource_id, day, level, outcome,
      row_number() OVER (PARTITION BY owner_id, resource_id ORDER BY ts_i, event_id) AS n
    FROM valid WHERE action = 'resource_review'),
  deletion AS (SELECT owner_id, resource_id, arg_min(day, n) AS day, min(n) AS n
    FROM reviews WHERE outcome = 'deleted' GROUP BY ALL),
  approvals AS (
    SELECT r.owner_id, r.resource_id, r.day,
      CASE r.level WHEN 'county' THEN 3 WHEN 'city' THEN 7 ELSE 10 END AS points
    FROM reviews r LEFT JOIN deletion d USING (owner_id, resource_id)
    WHERE r.outcome = 'approved' AND (d.n IS NULL OR r.n < d.n)
    QUALIFY row_number() OVER (PARTITION BY r.owner_id, r.resource_id, r.level ORDER BY r.n) = 1),
  progress AS (SELECT * FROM valid WHERE action = 'task_progress'),
  tasks AS (SELECT owner_id, task_id, arg_min(published_at, (ts_i, event_id)) AS published
    FROM progress GROUP BY ALL),
  qualified AS (
    SELECT DISTINCT k.owner_id, CAST(k.published AT TIME ZONE 'Asia/Shanghai' AS DATE) AS day
    FROM progress p JOIN tasks k USING (owner_id, task_id)
    WHERE p.role = 'student' AND p.ts_i BETWEEN k.published AND k.published + INTERVAL 30 DAY
    GROUP BY k.owner_id, k.task_id, k.published HAVING count(DISTINCT p.user_id) >= 10)
  SELECT day, user_id, rule, SUM(points) AS points FROM (
    SELECT day, user_id, 'login' AS rule,
      CASE WHEN row_number() OVER (PARTITION BY user_id, island ORDER BY day) >= 7 THEN 2 ELSE 1 END AS points
      FROM islands
    UNION ALL
    SELECT arg_max(day, (ts_i, event_id)), user_id, 'profile', 5 FROM profile_first
      GROUP BY user_id HAVING count(*) = 4
    UNION ALL
    SELECT day, user_id, 'space_use', LEAST(count(*), 2) FROM t
      WHERE action = 'space_op' AND client = 'mobile' GROUP BY day, user_id
    UNION ALL
    SELECT day, user_id, 'teach', LEAST(5 * count(*), 10) FROM t WHERE action = 'teach' GROUP BY day, user_id
    UNION ALL
    SELECT day, owner_id, 'resource_spread', LEAST(count(*), 2) FROM pairs ANTI JOIN capped USING (owner_id)
      GROUP BY day, owner_id
    UNION ALL
    SELECT day, owner_id, 'resource_spread', points FROM capped_points
    UNION ALL
    SELECT day, owner_id, 'resource_submit', points FROM approvals
    UNION ALL
    SELECT d.day, owner_id, 'resource_submit', -SUM(a.points) FROM deletion d JOIN approvals a USING (owner_id, resource_id)
      GROUP BY d.day, owner_id, resource_id
    UNION ALL
    SELECT day, owner_id, 'task', 5 FROM qualified
    UNION ALL
    SELECT day, user_id, 'interaction',
      CASE WHEN count(DISTINCT counterpart_id) >= 10 THEN 5 WHEN count(DISTINCT counterpart_id) >= 5 THEN 3 ELSE 0 END
      FROM t WHERE action = 'interaction' GROUP BY day, user_id
    UNION ALL
    SELECT day, user_id, 'app', 2 * count(DISTINCT app_id) FROM t
      WHERE action = 'app_use' AND app_id IN ('mingshi', 'jidi', 'jiaoyan', 'weike', 'xueke') GROUP BY day, user_id
  ) GROUP BY ALL
) TO '{out}/daily_scores' (FORMAT parquet, PARTITION_BY (day), COMPRESSION snappy);
"""


def statements(sql: str) -> list[str]:
    return [s for s in sql.split(";\n") if s.strip()]


def duck_peer(con, src: str, out: str) -> None:
    """The DuckDB side: validate, de-duplicate, write `events` and `daily_scores`."""
    for s in statements(DUCK_VALIDATE.format(src=src, out=out)):
        con.execute(s)
    days = [d for (d,) in con.execute("SELECT DISTINCT day FROM capped_pairs ORDER BY day").fetchall()]
    for day in days:
        for s in DUCK_SPREAD_DAY:
            con.execute(s, [day] if "$1" in s else [])
    for s in statements(DUCK_SCORES.format(out=out)):
        con.execute(s)


def same_work(lake: str, duck_out: str) -> bool:
    """Whether DuckDB kept the events huoyue kept and reached the same score
    of every (day, user_id, rule); prints what it compared."""
    con = duckdb.connect()
    count = "SELECT count(*) FROM read_parquet('{}/events/*/*.parquet')"
    ours_events = con.execute(count.format(lake)).fetchone()[0]
    duck_events = con.execute(count.format(duck_out)).fetchone()[0]
    sums = """SELECT CAST(day AS VARCHAR), user_id, rule, CAST(sum(points) AS BIGINT)
              FROM read_parquet('{}/daily_scores/*/*.parquet', hive_partitioning = true)
              GROUP BY ALL HAVING sum(points) <> 0"""
    ours = {(d, u, r): p for d, u, r, p in con.execute(sums.format(lake)).fetchall()}
    duck = {(d, u, r): p for d, u, r, p in con.execute(sums.format(duck_out)).fetchall()}
    differ = [k for k in ours.keys() | duck.keys() if ours.get(k) != duck.get(k)]
    print(f"same work: events kept huoyue {ours_events:,}, duckdb {duck_events:,}; "
          f"(day, user, rule) scores huoyue {len(ours):,}, duckdb {len(duck):,}, {len(differ)} differ")
    for k in sorted(differ)[:10]:
        print(f"  {k}: huoyue {ours.get(k)}, duckdb {duck.get(k)}")
    return ours_events == duck_events and not differ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schools", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--work", default="/tmp/huoyue-e2e")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    bins = os.path.join(target, "release")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    src = os.path.join(args.work, "input")
    subprocess.run([os.path.join(bins, "huoyue-gen"), "--month", "2026-09", "--schools", str(args.schools),
                    "--seed", str(args.seed), "--out", src], check=True)
    events = os.path.join(src, "events.ndjson")
    lines = sum(1 for _ in open(events, "rb"))
    size = os.path.getsize(events)

    # the fresh input written out first: a run while the kernel flushes 250 MB
    # of dirty pages is slower for reasons of neither side
    os.sync()

    lake = os.path.join(args.work, "lake")
    duck_out = os.path.join(args.work, "duck")

    def ours() -> float:
        shutil.rmtree(lake, ignore_errors=True)
        t = time.perf_counter()
        out = subprocess.run([os.path.join(bins, "huoyue-ingest"), "--lake", lake, "--file", events],
                             check=True, capture_output=True, text=True)
        took = time.perf_counter() - t
        print("huoyue:", out.stdout.strip())
        return took

    def duck() -> float:
        shutil.rmtree(duck_out, ignore_errors=True)
        os.makedirs(duck_out)
        con = duckdb.connect()
        con.execute(f"SET threads = {os.cpu_count()}")
        t = time.perf_counter()
        duck_peer(con, events, duck_out)
        took = time.perf_counter() - t
        con.close()
        return took

    times = {"huoyue": [], "duckdb": []}
    for r in range(args.rounds):
        times["huoyue"].append(ours())
        times["duckdb"].append(duck())
        print(f"round {r + 1}: huoyue-ingest {times['huoyue'][-1]:.2f} s, duckdb {times['duckdb'][-1]:.2f} s")
    ours_s = statistics.median(times["huoyue"])
    duck_s = statistics.median(times["duckdb"])

    print(f"input: {lines} lines, {size / 1e6:.0f} MB, {os.cpu_count()} cores, {args.rounds} rounds (medians)")
    print(f"huoyue-ingest: {ours_s:.2f} s, {lines / ours_s:,.0f} events/s")
    print(f"duckdb {duckdb.__version__}: {duck_s:.2f} s, {lines / duck_s:,.0f} events/s")
    print(f"ratio huoyue/duckdb: {duck_s / ours_s:.2f}x")
    if not same_work(lake, duck_out):
        sys.exit("the two sides did not do the same work: the ratio says nothing")


if __name__ == "__main__":
    main()

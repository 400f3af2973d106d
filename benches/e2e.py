#!/usr/bin/env python3
"""End-to-end file mode against DuckDB doing the same work in batch SQL, in one run.

Generates a county month (huoyue-gen), then times
  1. huoyue-ingest --file: read, validate, de-duplicate, score, write the lake;
  2. DuckDB: read the same NDJSON, validate, de-duplicate, write `events` and the
     per-day scores (the per-event and distinct rules with their caps) as Parquet.
and prints both rates and their ratio. The input is written to disk (sync)
before anything is timed, so that neither side competes with the kernel
flushing it; then the two sides run alternately `--rounds` times (each
huoyue run on a fresh lake) and the medians are compared. Release binaries
are expected in $CARGO_TARGET_DIR/release (cargo build --release -p
huoyue-ingest -p huoyue-benches).

usage: benches/e2e.py [--schools 100] [--rounds 3] [--work DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import time

import duckdb

DUCK_SQL = """
CREATE TEMP TABLE raw AS
SELECT * FROM read_json('{src}', format = 'newline_delimited', ignore_errors = true,
  columns = {{event_id: 'VARCHAR', ts: 'VARCHAR', user_id: 'VARCHAR', role: 'VARCHAR',
             school_id: 'VARCHAR', action: 'VARCHAR', client: 'VARCHAR', op: 'VARCHAR',
             resource_id: 'VARCHAR', owner_id: 'VARCHAR', owner_school_id: 'VARCHAR',
             lesson_id: 'VARCHAR', task_id: 'VARCHAR', counterpart_id: 'VARCHAR',
             app_id: 'VARCHAR', published_at: 'VARCHAR', status: 'VARCHAR', level: 'VARCHAR',
             outcome: 'VARCHAR', kind: 'VARCHAR', counterpart_role: 'VARCHAR'}});
CREATE TEMP TABLE valid AS
SELECT *, CAST(TRY_CAST(ts AS TIMESTAMPTZ) AT TIME ZONE 'Asia/Shanghai' AS DATE) AS day
FROM raw
WHERE regexp_full_match(event_id, '[A-Za-z0-9._:-]{{1,64}}')
  AND TRY_CAST(ts AS TIMESTAMPTZ) IS NOT NULL
  AND length(user_id) BETWEEN 1 AND 64
  AND role IN ('teacher', 'student', 'parent', 'admin')
  AND regexp_full_match(school_id, '[0-9]{{10}}')
  AND action IN ('register', 'login', 'profile_update', 'space_op', 'resource_interact',
                 'resource_review', 'teach', 'task_publish', 'task_progress', 'interaction', 'app_use')
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1;
COPY (SELECT * FROM valid) TO '{out}/events' (FORMAT parquet, PARTITION_BY (day), COMPRESSION snappy);
COPY (
  SELECT day, user_id, rule, SUM(points) AS points FROM (
    SELECT day, user_id, 'login' AS rule, 1 AS points FROM valid WHERE action = 'login' AND role = 'teacher' GROUP BY day, user_id
    UNION ALL
    SELECT day, user_id, 'teach', LEAST(5 * count(*), 10) FROM valid WHERE action = 'teach' AND role = 'teacher' GROUP BY day, user_id
    UNION ALL
    SELECT day, user_id, 'space_use', LEAST(count(*), 2) FROM valid WHERE action = 'space_op' AND client = 'mobile' AND role = 'teacher' GROUP BY day, user_id
    UNION ALL
    SELECT day, user_id, 'interaction', CASE WHEN count(DISTINCT counterpart_id) >= 10 THEN 5 WHEN count(DISTINCT counterpart_id) >= 5 THEN 3 ELSE 0 END
      FROM valid WHERE action = 'interaction' AND role = 'teacher' GROUP BY day, user_id
    UNION ALL
    SELECT day, user_id, 'app', 2 * count(DISTINCT app_id) FROM valid
      WHERE action = 'app_use' AND role = 'teacher' AND app_id IN ('mingshi', 'jidi', 'jiaoyan', 'weike', 'xueke') GROUP BY day, user_id
    UNION ALL
    SELECT day, owner_id, 'resource_spread', LEAST(count(DISTINCT user_id), 2) FROM valid
      WHERE action = 'resource_interact' AND user_id <> owner_id GROUP BY day, owner_id
  ) GROUP BY ALL
) TO '{out}/daily_scores' (FORMAT parquet, PARTITION_BY (day), COMPRESSION snappy);
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schools", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/huoyue-e2e")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    bins = os.path.join(target, "release")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    src = os.path.join(args.work, "input")
    subprocess.run([os.path.join(bins, "huoyue-gen"), "--month", "2026-09", "--schools", str(args.schools),
                    "--seed", "3", "--out", src], check=True)
    events = os.path.join(src, "events.ndjson")
    lines = sum(1 for _ in open(events, "rb"))
    size = os.path.getsize(events)

    # the fresh input written out first: a run while the kernel flushes 250 MB
    # of dirty pages is slower for reasons of neither side
    os.sync()

    def ours() -> float:
        lake = os.path.join(args.work, "lake")
        shutil.rmtree(lake, ignore_errors=True)
        t = time.perf_counter()
        out = subprocess.run([os.path.join(bins, "huoyue-ingest"), "--lake", lake, "--file", events],
                             check=True, capture_output=True, text=True)
        took = time.perf_counter() - t
        print("huoyue:", out.stdout.strip())
        return took

    def duck() -> float:
        duck_out = os.path.join(args.work, "duck")
        shutil.rmtree(duck_out, ignore_errors=True)
        os.makedirs(duck_out)
        con = duckdb.connect()
        con.execute(f"SET threads = {os.cpu_count()}")
        t = time.perf_counter()
        con.execute(DUCK_SQL.format(src=events, out=duck_out))
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


if __name__ == "__main__":
    main()

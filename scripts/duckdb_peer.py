#!/usr/bin/env python3
"""DuckDB doing file mode's work in batch SQL: the peer of benches/e2e.py,
written as a DuckDB user would write it, and a third implementation of the
rules (after the engine and scripts/reference_scores.py) that the tests hold
to the conformance case and to the engine.

It does the whole of events.md's validation (the fields are read as JSON so
that their types are checked: a number where a string belongs is a bad value,
not its digits), the spec's de-duplication (the first of an `event_id` in
(ts, event_id) order), writes `events`, and scores every rule of
zhejiang-2018 exactly. What it does not do: keep the rejected lines and their
reasons, `daily_activity`, lateness (it scores every valid event, as
huoyue-ingest does when nothing is older than its allowed lateness), and
state across runs.

usage: duckdb_peer.py SRC OUT   runs it on the NDJSON at SRC, writes OUT/events
  and OUT/daily_scores, and prints what scripts/lake_check.py prints of OUT
  (the events kept, the non-zero score of every (day, user_id, rule))
"""
import json
import os
import sys

import duckdb

import lake_check

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


def run(con, src: str, out: str) -> None:
    """Validates and de-duplicates the NDJSON at `src`, writes `events` and
    `daily_scores` under `out` (Hive partitions by day, Snappy)."""
    for s in statements(DUCK_VALIDATE.format(src=src, out=out)):
        con.execute(s)
    days = [d for (d,) in con.execute("SELECT DISTINCT day FROM capped_pairs ORDER BY day").fetchall()]
    for day in days:
        for s in DUCK_SPREAD_DAY:
            con.execute(s, [day] if "$1" in s else [])
    for s in statements(DUCK_SCORES.format(out=out)):
        con.execute(s)


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    run(duckdb.connect(), src, out)
    json.dump(lake_check.check(out), sys.stdout)


if __name__ == "__main__":
    main()

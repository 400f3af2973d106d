#!/usr/bin/env python3
"""The monthly job against DuckDB computing the same two tables, over the same lake.

Generates a county month (huoyue-gen) and ingests it (huoyue-ingest --file), then
times, best of --runs each:
  1. huoyue-aggregate monthly: teacher_monthly, school_monthly (monthly.md) from
     daily_scores, daily_activity and the CSV rosters, written as Parquet, plus the
     通报 (report.md, report.xlsx, CSVs per county and for the province);
  2. DuckDB: the same two tables from the same Parquet files and CSVs, in SQL,
     written as Parquet (no report).
Both outputs are then compared row by row (every teacher's points, points per
rule, login days, ytd points and ranks; every school's rates, counts and ranks),
so the two did the same work. Prints both times and their ratio.

Then times typical analyst queries, best of --runs, each as one
`huoyue-query --lake DIR -c SQL` process (start-up and lake registration
included, as an analyst at the shell sees it) with DuckDB's in-process time for
the same SQL over the same files beside it: a county's top schools of the month
(from school_monthly, and from daily_totals joined with the roster), and one
teacher's days.

Release binaries are expected in $CARGO_TARGET_DIR/release (default target/):
  cargo build --release -p huoyue-aggregate -p huoyue-ingest -p huoyue-benches

usage: benches/monthly.py [--schools 100] [--month 2026-09] [--runs 3] [--work DIR] [--profile release]
"""
import argparse
import calendar
import os
import shutil
import subprocess
import time

import duckdb

RULES = ["login", "profile", "space_use", "resource_spread", "resource_submit",
         "teach", "task", "interaction", "app"]


def duck_sql(lake: str, out: str, month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    days = calendar.monthrange(year, mon)[1]
    first, last, jan1 = f"{month}-01", f"{month}-{days:02d}", f"{year}-01-01"
    in_month = f"day BETWEEN DATE '{first}' AND DATE '{last}'"
    per_rule = "".join(
        f", COALESCE(SUM(points) FILTER (WHERE rule = '{r}'), 0) AS points_{r}" for r in RULES)
    rule_cols = "".join(f", COALESCE(m.points_{r}, 0) AS points_{r}" for r in RULES)
    return f"""
CREATE OR REPLACE VIEW ds AS SELECT * FROM read_parquet('{lake}/daily_scores/*/*.parquet',
  hive_partitioning = true, hive_types = {{'day': 'DATE'}});
CREATE OR REPLACE VIEW da AS SELECT * FROM read_parquet('{lake}/daily_activity/*/*.parquet',
  hive_partitioning = true, hive_types = {{'day': 'DATE'}});
CREATE OR REPLACE TEMP TABLE schools AS SELECT * FROM read_csv('{lake}/dims/schools.csv',
  header = true, types = {{'school_id': 'VARCHAR', 'county_code': 'VARCHAR', 'city_code': 'VARCHAR',
                          'student_base': 'BIGINT'}});
CREATE OR REPLACE TEMP TABLE users AS SELECT * FROM read_csv('{lake}/dims/users.csv',
  header = true, all_varchar = true);
CREATE OR REPLACE TEMP TABLE month_scores AS
  SELECT user_id, SUM(points) AS points{per_rule} FROM ds WHERE {in_month} GROUP BY user_id;
CREATE OR REPLACE TEMP TABLE tm_rows AS
  SELECT user_id, name, school_id, true AS in_roster FROM users WHERE role = 'teacher'
  UNION ALL
  SELECT h.user_id, NULL, ls.school_id, false FROM (
    SELECT user_id FROM (
      SELECT user_id, day, rule, SUM(points) AS p FROM ds
      WHERE {in_month} AND user_id NOT IN (SELECT user_id FROM users) GROUP BY ALL)
    GROUP BY user_id HAVING bool_or(p <> 0)) h
  LEFT JOIN (
    SELECT user_id, school_id FROM (
      SELECT user_id, school_id, row_number() OVER (PARTITION BY user_id ORDER BY day DESC, school_id) AS rn
      FROM ds WHERE {in_month} AND user_id NOT IN (SELECT user_id FROM users))
    WHERE rn = 1) ls ON ls.user_id = h.user_id;
CREATE OR REPLACE TEMP TABLE ytd AS
  SELECT user_id, SUM(points) AS ytd FROM ds WHERE day BETWEEN DATE '{jan1}' AND DATE '{last}' GROUP BY user_id;
CREATE OR REPLACE TEMP TABLE login_days AS
  SELECT user_id, count(*) AS login_days FROM (
    SELECT user_id, day FROM da WHERE {in_month} AND user_id IN (SELECT user_id FROM tm_rows)
    GROUP BY ALL HAVING SUM(logins) > 0) GROUP BY user_id;
CREATE OR REPLACE TEMP TABLE tm AS
  WITH t AS (
    SELECT r.user_id, r.name, r.school_id, r.in_roster, COALESCE(m.points, 0) AS points{rule_cols},
      COALESCE(ld.login_days, 0) AS login_days, COALESCE(y.ytd, 0) AS ytd_points
    FROM tm_rows r LEFT JOIN month_scores m USING (user_id) LEFT JOIN login_days ld USING (user_id)
      LEFT JOIN ytd y USING (user_id))
  SELECT t.*, t.points >= 30 AS meets_monthly_target,
    rank() OVER (PARTITION BY t.school_id ORDER BY t.points DESC) AS rank_in_school,
    CASE WHEN s.school_id IS NULL THEN NULL
      ELSE rank() OVER (PARTITION BY s.county_code ORDER BY t.points DESC) END AS rank_in_county
  FROM t LEFT JOIN schools s ON s.school_id = t.school_id;
CREATE OR REPLACE TEMP TABLE sm AS
  WITH uc AS (SELECT school_id, count(*) AS users, count(*) FILTER (WHERE role = 'teacher') AS teachers
              FROM users GROUP BY school_id),
  tp AS (SELECT school_id, SUM(points) AS points_total,
           count(*) FILTER (WHERE meets_monthly_target) AS active_teachers
         FROM tm WHERE in_roster GROUP BY school_id),
  ud AS (SELECT day, school_id, user_id, SUM(logins) AS l,
           SUM(CASE WHEN role = 'teacher' THEN deep_actions ELSE 0 END) AS dp
         FROM da WHERE {in_month} GROUP BY ALL),
  act AS (SELECT school_id, count(*) FILTER (WHERE l > 0) AS user_days, SUM(l) AS logins, SUM(dp) AS deep
          FROM ud GROUP BY school_id),
  -- each school's active users per day, in day order (monthly.md's daily
  -- fractions are added day by day, as the job adds them)
  rd AS (SELECT school_id, list(n ORDER BY day) AS ns FROM (
           SELECT school_id, day, count(*) FILTER (WHERE l > 0) AS n FROM ud GROUP BY ALL)
         WHERE n > 0 GROUP BY school_id),
  rg AS (SELECT school_id, count(*) AS registered FROM (
           SELECT school_id, user_id FROM da WHERE day <= DATE '{last}' AND role = 'student'
             AND registers <> 0 GROUP BY ALL HAVING SUM(registers) > 0) GROUP BY school_id),
  base AS (SELECT s.school_id, s.name, s.county_code, s.county_name, s.category,
             COALESCE(uc.users, 0) AS users, COALESCE(uc.teachers, 0) AS teachers,
             COALESCE(tp.points_total, 0) AS points_total, COALESCE(tp.active_teachers, 0) AS active_teachers,
             COALESCE(act.user_days, 0) AS user_days, COALESCE(act.logins, 0) AS logins,
             COALESCE(act.deep, 0) AS deep, COALESCE(rg.registered, 0) AS registered_students, s.student_base,
             rd.ns
           FROM schools s LEFT JOIN uc USING (school_id) LEFT JOIN tp USING (school_id)
             LEFT JOIN act USING (school_id) LEFT JOIN rg USING (school_id) LEFT JOIN rd USING (school_id)),
  m AS (SELECT *,
          CASE WHEN teachers > 0 THEN points_total / teachers END AS avg_points,
          CASE WHEN teachers > 0 THEN active_teachers / teachers END AS active_ratio,
          CASE WHEN users > 0 THEN COALESCE(list_reduce(list_transform(ns, lambda x: x / users::DOUBLE),
            lambda a, b: a + b), 0.0) / {days}.0 END AS daily_active_rate,
          CASE WHEN category = 'demo' THEN 0.20 ELSE 0.10 END AS target_rate,
          logins / {days}.0 AS avg_daily_logins,
          CASE WHEN teachers > 0 THEN deep / teachers END AS deep_index,
          CASE WHEN student_base > 0 THEN least(1.0, registered_students / student_base) END AS registration_rate
        FROM base)
  SELECT * EXCLUDE (users, user_days, logins, deep, ns), daily_active_rate - target_rate AS rate_gap,
    rank() OVER (PARTITION BY county_code ORDER BY avg_points DESC NULLS LAST) AS rank_points,
    rank() OVER (PARTITION BY county_code ORDER BY daily_active_rate DESC NULLS LAST) AS rank_active_rate
  FROM m;
COPY (SELECT * FROM tm ORDER BY user_id) TO '{out}/teacher_monthly.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM sm ORDER BY school_id) TO '{out}/school_monthly.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def compare(lake: str, out: str, month: str) -> tuple[int, int, int]:
    """Rows of each table, and the rows where huoyue and DuckDB disagree."""
    con = duckdb.connect()
    rule_cols = " OR ".join(f"h.points_{r} IS DISTINCT FROM d.points_{r}" for r in RULES)
    tm_bad = con.execute(f"""
      SELECT count(*) FROM read_parquet('{lake}/teacher_monthly/month={month}/*.parquet') h
      FULL JOIN read_parquet('{out}/teacher_monthly.parquet') d USING (user_id)
      WHERE h.points IS DISTINCT FROM d.points OR {rule_cols}
         OR h.login_days IS DISTINCT FROM d.login_days OR h.ytd_points IS DISTINCT FROM d.ytd_points
         OR h.meets_monthly_target IS DISTINCT FROM d.meets_monthly_target
         OR h.rank_in_school IS DISTINCT FROM d.rank_in_school
         OR h.rank_in_county IS DISTINCT FROM d.rank_in_county
         OR h.school_id IS DISTINCT FROM d.school_id""").fetchone()[0]
    close = lambda c: f"(h.{c} IS NULL) <> (d.{c} IS NULL) OR abs(h.{c} - d.{c}) > 1e-9"
    sm_bad = con.execute(f"""
      SELECT count(*) FROM read_parquet('{lake}/school_monthly/month={month}/*.parquet') h
      FULL JOIN read_parquet('{out}/school_monthly.parquet') d USING (school_id)
      WHERE h.teachers IS DISTINCT FROM d.teachers OR h.points_total IS DISTINCT FROM d.points_total
         OR h.active_teachers IS DISTINCT FROM d.active_teachers
         OR h.registered_students IS DISTINCT FROM d.registered_students
         OR h.rank_points IS DISTINCT FROM d.rank_points
         OR h.rank_active_rate IS DISTINCT FROM d.rank_active_rate
         OR {close('avg_points')} OR {close('active_ratio')} OR {close('daily_active_rate')}
         OR {close('rate_gap')} OR {close('avg_daily_logins')} OR {close('deep_index')}
         OR {close('registration_rate')}""").fetchone()[0]
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/teacher_monthly.parquet')").fetchone()[0]
    return rows, tm_bad, sm_bad


def analyst_queries(con, lake: str, month: str) -> list:
    """(name, huoyue SQL, DuckDB SQL) of the typical queries, for a real county and teacher."""
    year, mon = (int(x) for x in month.split("-"))
    days = calendar.monthrange(year, mon)[1]
    first, last = f"{month}-01", f"{month}-{days:02d}"
    county = con.execute(f"SELECT min(county_code) FROM read_csv('{lake}/dims/schools.csv', all_varchar = true)").fetchone()[0]
    teacher = con.execute(
        f"SELECT user_id FROM read_parquet('{lake}/daily_scores/*/*.parquet') "
        "GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1").fetchone()[0]
    ds = f"read_parquet('{lake}/daily_scores/*/*.parquet', hive_partitioning = true, hive_types = {{'day': 'DATE'}})"
    sm = f"read_parquet('{lake}/school_monthly/*/*.parquet', hive_partitioning = true, hive_types = {{'month': 'VARCHAR'}})"
    sc = f"read_csv('{lake}/dims/schools.csv', all_varchar = true)"
    top_monthly = ("SELECT school_id, name, avg_points, rank_points FROM {sm} "
                   f"WHERE month = '{month}' AND county_code = '{county}' ORDER BY rank_points, school_id LIMIT 10")
    top_totals = ("SELECT s.school_id, s.name, SUM(d.points) AS points FROM {ds} d JOIN {sc} s ON s.school_id = d.school_id "
                  f"WHERE d.day BETWEEN DATE '{first}' AND DATE '{last}' AND s.county_code = '{county}' "
                  "GROUP BY s.school_id, s.name ORDER BY points DESC, s.school_id LIMIT 10")
    teacher_days = ("SELECT day, rule, SUM(points) AS points FROM {ds} "
                    f"WHERE user_id = '{teacher}' AND day BETWEEN DATE '{first}' AND DATE '{last}' "
                    "GROUP BY day, rule ORDER BY day, rule")
    # the view daily_totals (deltas summed per key) and its DuckDB equivalent
    totals = ("(SELECT day, user_id, school_id, rule, SUM(points) AS points, SUM(events) AS events "
              "FROM {ds} GROUP BY day, user_id, school_id, rule)")
    mine = {"sm": "school_monthly", "ds": "daily_scores", "sc": "schools", "dt": "daily_totals"}
    theirs = {"sm": sm, "ds": ds, "sc": sc, "dt": totals.format(ds=ds)}
    top_view = top_totals.replace("{ds} d", "{dt} d")
    return [(name, q.format(**mine), q.format(**theirs))
            for name, q in [("county top 10 schools (school_monthly)", top_monthly),
                            ("county top 10 schools (daily_scores + roster)", top_totals),
                            ("county top 10 schools (daily_totals view + roster)", top_view),
                            ("one teacher's days", teacher_days)]]


def time_queries(bins: str, lake: str, month: str, runs: int) -> None:
    con = duckdb.connect()
    for name, ours, duck_q in analyst_queries(con, lake, month):
        h, d = [], []
        for _ in range(runs):
            t = time.perf_counter()
            r = subprocess.run([os.path.join(bins, "huoyue-query"), "--lake", lake, "-c", ours, "--format", "csv"],
                               check=True, capture_output=True, text=True)
            h.append(time.perf_counter() - t)
            t = time.perf_counter()
            want = con.execute(duck_q).fetchall()
            d.append(time.perf_counter() - t)
        got = len(r.stdout.strip().splitlines()) - 1
        same = "same rows" if got == len(want) else f"ROW COUNTS DIFFER: {got} vs {len(want)}"
        print(f"query {name}: huoyue-query best {min(h):.3f} s (process), DuckDB best {min(d):.3f} s; {same}")


def count_files(path: str) -> int:
    return sum(1 for _, _, fs in os.walk(path) for f in fs if f.endswith(".parquet") and not f.startswith("."))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schools", type=int, default=100)
    ap.add_argument("--month", default="2026-09")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default="/tmp/huoyue-monthly-bench")
    ap.add_argument("--reuse", action="store_true", help="keep an existing generated lake")
    ap.add_argument("--profile", default="release", help="cargo profile folder of the binaries (debug: a smoke run only)")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    bins = os.path.join(target, args.profile)
    lake = os.path.join(args.work, "lake")
    src = os.path.join(args.work, "input")
    if not (args.reuse and os.path.isdir(lake)):
        shutil.rmtree(args.work, ignore_errors=True)
        os.makedirs(args.work)
        subprocess.run([os.path.join(bins, "huoyue-gen"), "--month", args.month, "--schools",
                        str(args.schools), "--seed", "3", "--out", src], check=True)
        subprocess.run([os.path.join(bins, "huoyue-ingest"), "--lake", lake, "--file",
                        os.path.join(src, "events.ndjson")], check=True, stdout=subprocess.DEVNULL)
        shutil.copytree(os.path.join(src, "dims"), os.path.join(lake, "dims"))
    con = duckdb.connect()
    ds_rows = con.execute(f"SELECT count(*) FROM read_parquet('{lake}/daily_scores/*/*.parquet')").fetchone()[0]
    da_rows = con.execute(f"SELECT count(*) FROM read_parquet('{lake}/daily_activity/*/*.parquet')").fetchone()[0]
    files = count_files(os.path.join(lake, "daily_scores")) + count_files(os.path.join(lake, "daily_activity"))
    print(f"lake: {ds_rows:,} daily_scores rows, {da_rows:,} daily_activity rows, {files} files")

    huoyue = []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run([os.path.join(bins, "huoyue-aggregate"), "monthly", "--lake", lake,
                        "--month", args.month], check=True, stdout=subprocess.DEVNULL)
        huoyue.append(time.perf_counter() - t)

    out = os.path.join(args.work, "duckdb")
    duck = []
    for _ in range(args.runs):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        t = time.perf_counter()
        c = duckdb.connect()
        c.execute(duck_sql(lake, out, args.month))
        c.close()
        duck.append(time.perf_counter() - t)

    rows, tm_bad, sm_bad = compare(lake, out, args.month)
    h, d = min(huoyue), min(duck)
    print(f"teacher_monthly rows: {rows:,}; rows that differ: teacher_monthly {tm_bad}, school_monthly {sm_bad}")
    print(f"huoyue-aggregate monthly: best {h:.3f} s of {', '.join(f'{x:.3f}' for x in huoyue)}")
    print(f"DuckDB {duckdb.__version__}: best {d:.3f} s of {', '.join(f'{x:.3f}' for x in duck)}")
    print(f"ratio DuckDB / huoyue: {d / h:.2f}x")
    time_queries(bins, lake, args.month, args.runs)


if __name__ == "__main__":
    main()

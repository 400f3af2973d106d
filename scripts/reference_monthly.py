#!/usr/bin/env python3
"""A second, plain implementation of the monthly tables (spec: monthly.md, with
the decisions of aggregate/README.md where the spec is silent), to check the
monthly job against on any lake.

It reads the lake's `daily_scores`, `daily_activity` and rosters with DuckDB
as rows, computes `teacher_monthly` and `school_monthly` with dictionaries,
and compares every column with the tables the job wrote for the month
(floats as the same double: both follow monthly.md's formulas step by
step). It shares no code with the job, which is DataFusion SQL.

usage: reference_monthly.py LAKE YYYY-MM       prints the differences, exit 1 if any
"""
import calendar
import collections
import csv
import datetime
import sys

import duckdb

RULES = ["login", "profile", "space_use", "resource_spread", "resource_submit",
         "teach", "task", "interaction", "app"]


def query(con, sql):
    """The rows of `sql` as dictionaries."""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def read(con, lake, table):
    return query(con, f"SELECT * FROM read_parquet('{lake}/{table}/*/*.parquet', hive_partitioning = true)")


def rank(rows, value, key):
    """Competition ranks ('1224') by `value`, higher first, nulls last (sharing one rank)."""
    order = sorted(rows, key=lambda r: (value(r) is None, -(value(r) or 0), key(r)))
    out, prev, at = {}, object(), 0
    for i, r in enumerate(order):
        v = value(r)
        if v != prev:
            at, prev = i + 1, v
        out[key(r)] = at
    return out


def monthly(lake, month):
    year, mon = map(int, month.split("-"))
    first = datetime.date(year, mon, 1)
    days = calendar.monthrange(year, mon)[1]
    last = datetime.date(year, mon, days)
    jan1 = datetime.date(year, 1, 1)
    con = duckdb.connect()
    scores = read(con, lake, "daily_scores")
    activity = read(con, lake, "daily_activity")
    with open(f"{lake}/dims/schools.csv", newline="", encoding="utf-8") as f:
        schools = {r["school_id"]: r for r in csv.DictReader(f)}
    with open(f"{lake}/dims/users.csv", newline="", encoding="utf-8") as f:
        users = {r["user_id"]: r for r in csv.DictReader(f)}

    def day(r):
        d = r["day"]
        return d if isinstance(d, datetime.date) else datetime.date.fromisoformat(str(d))

    # teachers: sums per (user, rule) of the month, per (user, day, rule) keys
    per_rule = collections.defaultdict(lambda: collections.Counter())
    key_sum = collections.Counter()
    ytd = collections.Counter()
    # (points, events) per (user, day, school): one whose rows sum to nothing
    # (what a move to an earlier event's school left) is not a row
    day_school = collections.defaultdict(lambda: [0, 0])
    for r in scores:
        d = day(r)
        if jan1 <= d <= last:
            ytd[r["user_id"]] += r["points"]
        if first <= d <= last:
            per_rule[r["user_id"]][r["rule"]] += r["points"]
            key_sum[(r["user_id"], d, r["rule"])] += r["points"]
            if r["school_id"] is not None:
                sums = day_school[(r["user_id"], d, r["school_id"])]
                sums[0] += r["points"]
                sums[1] += r["events"]
    last_school = {}
    for (u, d, school), sums in day_school.items():
        if sums == [0, 0]:
            continue
        cur = last_school.get(u)
        # the latest day; on that day the smallest school_id
        if cur is None or d > cur[0] or (d == cur[0] and school < cur[1]):
            last_school[u] = (d, school)
    with_points = {u for (u, _, _), p in key_sum.items() if p != 0}
    login_sum = collections.Counter()
    for r in activity:
        d = day(r)
        if first <= d <= last:
            login_sum[(r["user_id"], d)] += r["logins"]
    login_days = collections.Counter(u for (u, _), n in login_sum.items() if n > 0)

    teachers = []
    for u, row in users.items():
        if row["role"] == "teacher":
            teachers.append({"user_id": u, "name": row["name"], "school_id": row["school_id"]})
    for u in sorted(with_points - users.keys()):
        s = last_school.get(u)
        teachers.append({"user_id": u, "name": None, "school_id": s[1] if s else None})
    for t in teachers:
        u = t["user_id"]
        t["points"] = sum(per_rule[u].values())
        for rule in RULES:
            t[f"points_{rule}"] = per_rule[u][rule]
        t["login_days"] = login_days[u]
        t["ytd_points"] = ytd[u]
        t["meets_monthly_target"] = t["points"] >= 30
    by_school = collections.defaultdict(list)
    by_county = collections.defaultdict(list)
    for t in teachers:
        by_school[t["school_id"]].append(t)
        if t["school_id"] in schools:
            by_county[schools[t["school_id"]]["county_code"]].append(t)
    for group, col in ((by_school, "rank_in_school"), (by_county, "rank_in_county")):
        for rows in group.values():
            ranks = rank(rows, lambda r: r["points"], lambda r: r["user_id"])
            for r in rows:
                r[col] = ranks[r["user_id"]]
    for t in teachers:
        t.setdefault("rank_in_county", None)

    # schools
    roster_users = collections.Counter(r["school_id"] for r in users.values())
    roster_teachers = collections.Counter(r["school_id"] for r in users.values() if r["role"] == "teacher")
    active_sum = collections.Counter()  # (school, day, user) -> logins
    logins = collections.Counter()
    deep = collections.Counter()
    registers = collections.Counter()
    for r in activity:
        d = day(r)
        if r["role"] == "student" and d <= last:
            registers[(r["school_id"], r["user_id"])] += r["registers"]
        if first <= d <= last:
            active_sum[(r["school_id"], d, r["user_id"])] += r["logins"]
            logins[r["school_id"]] += r["logins"]
            if r["role"] == "teacher":
                deep[r["school_id"]] += r["deep_actions"]
    # distinct users with a login, per school and day of the month
    active_on = collections.Counter((s, d) for (s, d, _), n in active_sum.items() if n > 0)
    registered = collections.Counter(s for (s, _), n in registers.items() if n > 0)
    roster_teacher_rows = [t for t in teachers if t["name"] is not None or t["user_id"] in users]
    out = []
    for sid, s in schools.items():
        mine = [t for t in roster_teacher_rows if t["school_id"] == sid]
        n = roster_teachers[sid]
        total = sum(t["points"] for t in mine)
        active = sum(1 for t in mine if t["meets_monthly_target"])
        nu = roster_users[sid]
        # (1/D) · Σ_days active / users, added up day by day, divided once
        rate = None
        if nu:
            rate = 0.0
            for i in range(days):
                rate += active_on[(sid, first + datetime.timedelta(days=i))] / nu
            rate /= days
        target = 0.20 if s["category"] == "demo" else 0.10
        base = int(s["student_base"])
        out.append({
            "school_id": sid, "name": s["name"], "county_code": s["county_code"],
            "category": s["category"], "teachers": n, "points_total": total,
            "avg_points": total / n if n else None, "active_teachers": active,
            "active_ratio": active / n if n else None, "daily_active_rate": rate,
            "target_rate": target, "rate_gap": None if rate is None else rate - target,
            "avg_daily_logins": logins[sid] / days,
            "deep_index": deep[sid] / n if n else None,
            "registered_students": registered[sid], "student_base": base,
            "registration_rate": min(1.0, registered[sid] / base) if base else None,
        })
    counties = collections.defaultdict(list)
    for r in out:
        counties[r["county_code"]].append(r)
    for rows in counties.values():
        for col, measure in (("rank_points", "avg_points"), ("rank_active_rate", "daily_active_rate")):
            ranks = rank(rows, lambda r, m=measure: r[m], lambda r: r["school_id"])
            for r in rows:
                r[col] = ranks[r["school_id"]]
    return teachers, out


def compare(name, want, got, key):
    diffs = []
    got_by = {key(r): r for r in got}
    want_by = {key(r): r for r in want}
    for k in sorted(want_by.keys() | got_by.keys(), key=str):
        w, g = want_by.get(k), got_by.get(k)
        if w is None or g is None:
            diffs.append(f"{name} {k}: reference {'has' if w else 'lacks'} the row, the lake {'has' if g else 'lacks'} it")
            continue
        for col, wv in w.items():
            gv = g.get(col)
            if isinstance(wv, float) or isinstance(gv, float):
                same = wv == gv  # the same double, or both null
            else:
                same = wv == gv
            if not same:
                diffs.append(f"{name} {k} {col}: reference {wv!r}, lake {gv!r}")
    return diffs


def main() -> None:
    lake, month = sys.argv[1], sys.argv[2]
    teachers, schools = monthly(lake, month)
    con = duckdb.connect()
    got_t = query(con, f"SELECT * FROM read_parquet('{lake}/teacher_monthly/month={month}/*.parquet')")
    got_s = query(con, f"SELECT * FROM read_parquet('{lake}/school_monthly/month={month}/*.parquet')")
    diffs = compare("teacher", teachers, got_t, lambda r: r["user_id"])
    diffs += compare("school", schools, got_s, lambda r: r["school_id"])
    for d in diffs[:50]:
        print(d)
    print(f"{len(teachers)} teacher rows, {len(schools)} school rows; {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()

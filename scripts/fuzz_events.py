#!/usr/bin/env python3
"""Random events crowded onto few users, resources and tasks, so that every
rule's edge is hit often: caps, the 50-point lifetime cap of a resource,
deletions between approvals, tasks whose students come before their publish
instant or after its 30 days, identical timestamps broken by event_id, streaks
across a month's end. For checking the engine against
scripts/reference_scores.py; not realistic data (huoyue-gen makes that).

usage: fuzz_events.py SEED N [--jitter-hours H] [--dims DIR]
  prints N events as NDJSON. Arrival order is the events' time order moved by
  up to H hours (default: shuffled completely). With --dims, writes rosters
  for them to DIR (schools.csv, users.csv) with the monthly job's edges: a
  teacher and some students missing from the roster, a school without
  users, a student base of 0, two counties, demo and regular schools; users
  then state another school now and then, and some students register.
"""
import argparse
import csv
import json
import os
import random
from datetime import datetime, timedelta, timezone

TZ = timezone(timedelta(hours=8))
START = datetime(2026, 8, 20, tzinfo=TZ)
DAYS = 45


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("seed", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--jitter-hours", type=float)
    ap.add_argument("--dims")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    teachers = [f"t{i}" for i in range(6)]
    students = [f"s{i}" for i in range(25)]
    others = teachers + students + ["p1", "a1"]
    # many users pair with resources, so a resource can reach its lifetime cap
    crowd = others + [f"s{i}" for i in range(25, 300)]
    role_of = {u: "teacher" if u.startswith("t") else "student" if u.startswith("s")
               else "parent" if u.startswith("p") else "admin" for u in crowd}
    resources = [f"r{i}" for i in range(3)]
    tasks = [f"k{i}" for i in range(30)]
    # a few instants many events share, so that event_id breaks the ties
    shared = [START + timedelta(days=rnd.randrange(DAYS), seconds=rnd.randrange(86400)) for _ in range(6)]

    def instant():
        if rnd.random() < 0.2:
            return rnd.choice(shared)
        # around midnight often: the day is the +08:00 date
        if rnd.random() < 0.1:
            return START + timedelta(days=rnd.randrange(DAYS), seconds=rnd.choice([-1, 0, 1]) + 86400)
        return START + timedelta(seconds=rnd.randrange(DAYS * 86400))

    def stamp(t):
        # the same instant written in +08:00 or in UTC
        if rnd.random() < 0.5:
            return t.isoformat()
        return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    events = []
    for i in range(a.n):
        t = instant()
        action = rnd.choice(["login", "login", "profile_update", "space_op", "resource_interact",
                             "resource_interact", "resource_review", "teach", "task_progress",
                             "task_progress", "task_progress", "interaction", "app_use"])
        user = rnd.choice(teachers) if rnd.random() < 0.8 else rnd.choice(others)
        e = {"event_id": f"f{a.seed}-{rnd.randrange(10**6):06d}-{i}", "ts": stamp(t), "user_id": user,
             "role": role_of[user], "school_id": "3300000001", "action": action}
        if rnd.random() < 0.5:
            e["client"] = rnd.choice(["pc", "mobile"])
        owner = rnd.choice(teachers)
        if action == "profile_update":
            e["items"] = rnd.sample(["avatar", "contact", "school", "subject"], rnd.randrange(3))
        elif action == "space_op":
            e["op"] = "upload"
        elif action == "resource_interact":
            e["user_id"] = actor = rnd.choice(crowd)
            e["role"] = role_of[actor]
            if rnd.random() < 0.3:
                # one resource most of the crowd uses
                owner, e["resource_id"] = "t0", "r0"
            else:
                e["resource_id"] = rnd.choice(resources)
            e.update(owner_id=owner, owner_school_id="3300000001",
                     op=rnd.choice(["download", "favorite", "share", "comment", "view"]))
        elif action == "resource_review":
            e.update(resource_id=rnd.choice(resources), owner_id=owner, owner_school_id="3300000001",
                     level=rnd.choice(["county", "city", "province"]),
                     outcome="deleted" if rnd.random() < 0.04 else "approved")
        elif action == "teach":
            e["lesson_id"] = f"l{rnd.randrange(9)}"
        elif action == "task_progress":
            e["user_id"] = actor = rnd.choice(students) if rnd.random() < 0.9 else rnd.choice(others)
            e["role"] = role_of[actor]
            published = t - timedelta(days=rnd.choice([0, 0, 1, 5, 29, 31]), seconds=rnd.randrange(-7200, 7200))
            e.update(task_id=rnd.choice(tasks), owner_id=owner, owner_school_id="3300000001",
                     published_at=stamp(published), status=rnd.choice(["read", "completed"]))
        elif action == "interaction":
            e.update(counterpart_id=f"c{rnd.randrange(14)}", counterpart_role="student")
        elif action == "app_use":
            e["app_id"] = rnd.choice(["mingshi", "jidi", "jiaoyan", "weike", "xueke", "foo"])
        events.append((t, e))
    if a.dims:
        add_schools(events, crowd, role_of, a.dims, random.Random(a.seed + 1))
    if a.jitter_hours is None:
        rnd.shuffle(events)
    else:
        j = a.jitter_hours * 3600
        events.sort(key=lambda te: te[0].timestamp() + rnd.uniform(0, j))
    for _, e in events:
        print(json.dumps(e, separators=(",", ":")))


SCHOOLS = [  # school_id, name, county_code, county_name, category, student_base
    ("3300000001", "一中", "331081", "瑞安市", "demo", "40"),
    ("3300000002", "二中", "331081", "瑞安市", "regular", "0"),
    ("3300000003", "三小", "331082", "乐清市", "regular", "25"),
    ("3300000004", "四小", "331082", "乐清市", "demo", "10"),  # no users at all
]


def add_schools(events, users, role_of, dims, rnd):
    """Gives every user a home school among the first three, moves some events
    to another school and turns some student logins into registrations, and
    writes the rosters (leaving out teacher t5 and every tenth student)."""
    home = {u: SCHOOLS[i % 3][0] for i, u in enumerate(users)}
    for _, e in events:
        e["school_id"] = home[e["user_id"]]
        if rnd.random() < 0.05:
            e["school_id"] = rnd.choice(SCHOOLS)[0]
        if e["role"] == "student" and e["action"] == "login" and rnd.random() < 0.2:
            e["action"] = "register"
        if "owner_id" in e:
            e["owner_school_id"] = home[e["owner_id"]]
    os.makedirs(dims, exist_ok=True)
    with open(os.path.join(dims, "schools.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["school_id", "name", "county_code", "county_name", "city_code", "category", "student_base"])
        for sid, name, code, county, category, base in SCHOOLS:
            w.writerow([sid, name, code, county, "330300", category, base])
    with open(os.path.join(dims, "users.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "school_id", "role", "name"])
        for i, u in enumerate(users):
            if u == "t5" or (role_of[u] == "student" and i % 10 == 0):
                continue
            w.writerow([u, home[u], role_of[u], f"用户{u}"])


if __name__ == "__main__":
    main()

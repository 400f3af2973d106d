#!/usr/bin/env python3
"""End-to-end file mode against DuckDB doing the same work in batch SQL, in one run.

Generates a county month (huoyue-gen), then times
  1. huoyue-ingest --file: read, validate, de-duplicate, score, write the lake;
  2. DuckDB (scripts/duckdb_peer.py): read the same NDJSON, validate it as
     events.md says, de-duplicate, write `events` and the day scores of every
     rule as Parquet;
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import duckdb_peer  # noqa: E402 (scripts/duckdb_peer.py: the DuckDB side, checked by the tests)
import lake_check  # noqa: E402 (scripts/lake_check.py: what both sides wrote, read alike)


def same_work(lake: str, duck_out: str) -> bool:
    """Whether DuckDB kept the events huoyue kept and reached the same score
    of every (day, user_id, rule); prints what it compared."""
    ours, duck = lake_check.check(lake), lake_check.check(duck_out)
    ours_scores = {(d, u, r): p for d, u, r, p in ours["scores"]}
    duck_scores = {(d, u, r): p for d, u, r, p in duck["scores"]}
    differ = [k for k in ours_scores.keys() | duck_scores.keys() if ours_scores.get(k) != duck_scores.get(k)]
    print(f"same work: events kept huoyue {ours['events']:,}, duckdb {duck['events']:,}; "
          f"(day, user, rule) scores huoyue {len(ours_scores):,}, duckdb {len(duck_scores):,}, "
          f"{len(differ)} differ")
    for k in sorted(differ)[:10]:
        print(f"  {k}: huoyue {ours_scores.get(k)}, duckdb {duck_scores.get(k)}")
    return ours["events"] == duck["events"] and not differ


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
        duckdb_peer.run(con, events, duck_out)
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

#!/usr/bin/env python3
"""Reads a huoyue lake with DuckDB, an independent Parquet reader, and prints
JSON: non-zero daily score sums, and the row counts of each table.

usage: lake_check.py LAKE
"""
import json
import sys

import duckdb


def check(lake: str) -> dict:
    """The row count of each table (`events`, `daily_scores`,
    `daily_activity`, `rejected`; 0 for one the lake lacks) and, as `scores`,
    the non-zero SUM(points) of every (day, user_id, rule), sorted."""
    con = duckdb.connect()
    out = {}
    for table in ("events", "daily_scores", "daily_activity", "rejected"):
        try:
            n = con.execute(
                f"SELECT count(*) FROM read_parquet('{lake}/{table}/*/*.parquet', hive_partitioning = true)"
            ).fetchone()[0]
        except duckdb.IOException:
            n = 0
        out[table] = n
    rows = con.execute(
        f"""
        SELECT CAST(day AS VARCHAR) AS day, user_id, rule, CAST(SUM(points) AS BIGINT) AS points
        FROM read_parquet('{lake}/daily_scores/*/*.parquet', hive_partitioning = true)
        GROUP BY ALL HAVING SUM(points) <> 0 ORDER BY ALL
        """
    ).fetchall()
    out["scores"] = [list(r) for r in rows]
    return out


def main() -> None:
    json.dump(check(sys.argv[1]), sys.stdout)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reads every table of a huoyue lake with Apache Spark (pyspark, local mode,
its default vectorized Parquet reader), a second independent reader beside
DuckDB, and prints JSON: each table's row count, the non-zero daily score sums,
the events' time range and item count, and the rows of the monthly tables
of MONTH, each cell as text.

usage: spark_check.py LAKE MONTH
"""
import json
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

TABLES = (
    "events",
    "daily_scores",
    "daily_activity",
    "rejected",
    "teacher_monthly",
    "school_monthly",
)


def text(v) -> str:
    """A cell as the conformance case's CSVs write it: null as "", floats in
    full precision, booleans as True/False."""
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def main() -> None:
    lake, month = sys.argv[1], sys.argv[2]
    # local only: no dependence on the machine's host name resolving
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("huoyue-spark-check")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    out = {"counts": {}, "monthly": {}}
    for table in TABLES:
        path = os.path.join(lake, table)
        if not os.path.isdir(path):
            continue
        df = spark.read.parquet(path)
        out["counts"][table] = df.count()
        if table.endswith("_monthly"):
            rows = df.where(F.col("month") == month).collect()
            out["monthly"][table] = [
                {k: text(v) for k, v in r.asDict().items()} for r in rows
            ]
    scores = (
        spark.read.parquet(os.path.join(lake, "daily_scores"))
        .groupBy(F.col("day").cast("string").alias("day"), "user_id", "rule")
        .agg(F.sum("points").alias("points"))
        .where(F.col("points") != 0)
        .orderBy("day", "user_id", "rule")
        .collect()
    )
    out["scores"] = [[r["day"], r["user_id"], r["rule"], r["points"]] for r in scores]
    # the events' timestamps as Spark reads them (microseconds since the epoch)
    ts = (
        spark.read.parquet(os.path.join(lake, "events"))
        .agg(
            F.min(F.unix_micros("ts")).alias("min"),
            F.max(F.unix_micros("ts")).alias("max"),
            F.sum(F.when(F.col("items").isNotNull(), F.size("items"))).alias("items"),
        )
        .collect()[0]
    )
    out["events_ts"] = [ts["min"], ts["max"]]
    out["events_items"] = ts["items"]
    spark.stop()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

//! The lake read back by Apache Spark (scripts/spark_check.py: pyspark in
//! local mode, its default vectorized Parquet reader): every table the ingest,
//! compaction and the monthly job write, with the values of the conformance
//! case: the whole chain from its events to its expected monthly tables.
//! DuckDB reads the ingest's lake in the ingest's tests; Spark is the second
//! reader the lake is promised to.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::*;
use datafusion::arrow;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use serde_json::Value;

/// Every partition of a table, read with the arrow reader.
fn partitions(lake: &Path, table: &str) -> Vec<RecordBatch> {
    std::fs::read_dir(lake.join(table))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_str().unwrap().contains('='))
        .map(|p| read_dir_batch(&p))
        .collect()
}

fn rows_in(lake: &Path, table: &str) -> u64 {
    partitions(lake, table)
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum()
}

/// The events' earliest and latest `ts` (µs) and their number of `items`.
fn events_ts_and_items(lake: &Path) -> (i64, i64, i64) {
    let (mut min, mut max, mut items) = (i64::MAX, i64::MIN, 0);
    for b in partitions(lake, "events") {
        let ts = b
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        min = min.min(arrow::compute::min(ts).unwrap());
        max = max.max(arrow::compute::max(ts).unwrap());
        let list = b.column_by_name("items").unwrap().as_list::<i32>();
        items += (0..list.len())
            .filter(|&i| list.is_valid(i))
            .map(|i| list.value_length(i) as i64)
            .sum::<i64>();
    }
    (min, max, items)
}

#[test]
fn spark_reads_every_table_with_the_conformance_values() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let case = conformance_dir();
    copy_conformance_dims(lake);
    ingest(lake, std::fs::read(case.join("events.ndjson")).unwrap());
    // September's files rewritten as one zstd file per day, the rest left as
    // the ingest wrote them (Snappy, delta-encoded `ts` and `offset`)
    let lake_s = lake.to_str().unwrap();
    for table in ["events", "daily_scores"] {
        let (ok, out, err) = run_bin(&[
            "compact", "--lake", lake_s, "--table", table, "--month", "2026-09",
        ]);
        assert!(ok, "compact {table}: {err}");
        // the ingest flushed often: some of September's days have several files
        let compacted: usize = out
            .split_once(": ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("compact's summary: {out}"));
        assert!(compacted >= 1, "{out}");
    }
    monthly(lake, "2026-09");

    let o = script("spark_check.py", &[lake_s, "2026-09"]);
    assert!(
        o.status.success(),
        "spark_check.py (needs pyspark and Java: scripts/install-tools installs them): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();

    let counts = &v["counts"];
    assert_eq!(counts["events"], 12309);
    assert_eq!(counts["rejected"], 49);
    for table in ["daily_scores", "daily_activity"] {
        assert_eq!(counts[table], rows_in(lake, table), "{table}");
    }

    let spark: BTreeMap<(String, String, String), i64> = v["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap().to_owned();
            ((s(0), s(1), s(2)), r[3].as_i64().unwrap())
        })
        .collect();
    let (_, expected) = parse_csv(&case.join("expected_daily_scores.csv"));
    let expected: BTreeMap<(String, String, String), i64> = expected
        .into_iter()
        .map(|r| {
            (
                (r[0].clone(), r[1].clone(), r[2].clone()),
                r[3].parse().unwrap(),
            )
        })
        .filter(|(_, p)| *p != 0)
        .collect();
    assert_eq!(spark, expected);

    // timestamps read as the same instants, lists with the same items
    let (min, max, items) = events_ts_and_items(lake);
    assert_eq!(v["events_ts"][0], min);
    assert_eq!(v["events_ts"][1], max);
    assert_eq!(v["events_items"], items);
    assert!(items > 0);

    for (table, key) in [
        ("teacher_monthly", "user_id"),
        ("school_monthly", "school_id"),
    ] {
        let rows: Vec<HashMap<String, String>> =
            serde_json::from_value(v["monthly"][table].clone()).unwrap();
        assert_rows_match(
            table,
            &rows,
            &case.join(format!("expected_{table}_2026-09.csv")),
            key,
        );
    }
}

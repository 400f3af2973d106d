//! The conformance case of the spec, reproduced exactly.

mod common;

use std::collections::BTreeMap;

use common::*;
use huoyue_ingest::pipeline::file::FileOptions;

#[test]
fn conformance_counts_and_daily_scores() {
    let lake = tempfile::tempdir().unwrap();
    let p = ingest_file(
        lake.path(),
        &conformance().join("events.ndjson"),
        FileOptions::default(),
    );
    let c = p.counts();
    let expected: BTreeMap<String, u64> = serde_json::from_str(
        &std::fs::read_to_string(conformance().join("expected_counts.json")).unwrap(),
    )
    .unwrap();
    let mut got = BTreeMap::new();
    got.insert("read".to_owned(), c.read);
    got.insert("valid".to_owned(), c.valid);
    got.insert("duplicates".to_owned(), c.duplicates);
    for (r, n) in &c.rejected {
        got.insert(format!("rejected:{r}"), *n);
    }
    assert_eq!(got, expected);

    assert_scores_eq(&score_sums(lake.path()), &expected_scores());

    assert_eq!(row_count(lake.path(), "events") as u64, c.valid);
    assert_eq!(
        row_count(lake.path(), "rejected") as u64,
        c.rejected_total()
    );
    let ids = string_column(lake.path(), "events", "event_id");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "events are de-duplicated");
}

#[test]
fn small_chunks_and_frequent_flushes_give_the_same_lake_sums() {
    let lake = tempfile::tempdir().unwrap();
    let opts = FileOptions {
        chunk_bytes: 4096,
        flush_rows: 500,
        decoders: 3,
        ..FileOptions::default()
    };
    let p = ingest_file(lake.path(), &conformance().join("events.ndjson"), opts);
    assert_scores_eq(&score_sums(lake.path()), &expected_scores());
    assert!(p.counts().files > 50, "many flushes wrote many files");
}

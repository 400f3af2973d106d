//! Helpers shared by the ingest's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use huoyue_ingest::engine::{Engine, EngineConfig};
use huoyue_ingest::lake_writer::LakeWriter;
use huoyue_ingest::pipeline::Pipeline;
use huoyue_ingest::pipeline::file::{FileOptions, run_file};
use huoyue_schemas::profile::Profile;

pub fn conformance() -> PathBuf {
    manifest_dir().join("../testdata/conformance")
}

/// Runs a file through the library pipeline into `lake`.
pub fn ingest_file(lake: &Path, input: &Path, opts: FileOptions) -> Pipeline {
    let profile = Profile::builtin("zhejiang-2018").unwrap();
    let engine = Engine::new(&profile, EngineConfig::default());
    let writer = LakeWriter::open(lake, "test").unwrap();
    let mut p = Pipeline::new(engine, writer);
    let f = File::open(input).unwrap();
    run_file(&mut p, Box::new(f), "events.ndjson", opts).unwrap();
    p
}

/// Every batch of a table, with the `day` of the folder each came from.
pub fn read_table(lake: &Path, table: &str) -> Vec<(String, RecordBatch)> {
    let mut out = Vec::new();
    let dir = lake.join(table);
    let Ok(parts) = std::fs::read_dir(&dir) else {
        return out;
    };
    let mut parts: Vec<_> = parts.map(|e| e.unwrap().path()).collect();
    parts.sort();
    for part in parts {
        let name = part.file_name().unwrap().to_string_lossy().into_owned();
        let Some(day) = name.strip_prefix("day=") else {
            continue;
        };
        let mut files: Vec<_> = std::fs::read_dir(&part)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            if f.extension().is_none_or(|e| e != "parquet")
                || f.file_name().unwrap().to_string_lossy().starts_with('.')
            {
                continue;
            }
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                out.push((day.to_owned(), b.unwrap()));
            }
        }
    }
    out
}

/// SUM(points) per (day, user, rule) of the lake's daily_scores, non-zero only.
pub fn score_sums(lake: &Path) -> BTreeMap<(String, String, String), i64> {
    let mut sums = BTreeMap::new();
    for (day, b) in read_table(lake, "daily_scores") {
        let user = b.column_by_name("user_id").unwrap().as_string::<i32>();
        let rule = b.column_by_name("rule").unwrap().as_string::<i32>();
        let points = b
            .column_by_name("points")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            *sums
                .entry((
                    day.clone(),
                    user.value(i).to_owned(),
                    rule.value(i).to_owned(),
                ))
                .or_insert(0) += points.value(i);
        }
    }
    sums.retain(|_, p| *p != 0);
    sums
}

/// The expected daily scores of the conformance case.
pub fn expected_scores() -> BTreeMap<(String, String, String), i64> {
    let text = std::fs::read_to_string(conformance().join("expected_daily_scores.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[0].to_owned(), f[1].to_owned(), f[2].to_owned()),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

/// Rows of a table.
pub fn row_count(lake: &Path, table: &str) -> usize {
    read_table(lake, table)
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum()
}

/// A column's values as strings, for set comparisons.
pub fn string_column(lake: &Path, table: &str, column: &str) -> Vec<String> {
    let mut out: Vec<String> = read_table(lake, table)
        .iter()
        .flat_map(|(_, b)| {
            let a = b.column_by_name(column).unwrap().as_string::<i32>().clone();
            (0..a.len()).map(move |i| a.value(i).to_owned())
        })
        .collect();
    out.sort();
    out
}

/// Asserts two score maps are equal, showing only their differences.
pub fn assert_scores_eq(
    got: &BTreeMap<(String, String, String), i64>,
    want: &BTreeMap<(String, String, String), i64>,
) {
    let diff: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k:?}: want {v}, got {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| format!("{k:?}: unexpected {v}")),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "{} differences, first: {:#?}",
        diff.len(),
        &diff[..diff.len().min(20)]
    );
}

/// This package's folder, as `cargo test` gives it when the test runs (not
/// when it was compiled: a reused build may come from another checkout).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test: CARGO_MANIFEST_DIR"),
    )
}

/// Runs `python3 scripts/NAME ARGS…` of this repository (the checks that need
/// DuckDB: scripts/test installs it).
pub fn script<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> std::process::Output {
    std::process::Command::new("python3")
        .arg(manifest_dir().join("../scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 scripts/{name}: {e}"))
}

/// The events `scripts/fuzz_events.py ARGS…` writes, as NDJSON.
pub fn fuzz_events(args: &[&str]) -> Vec<u8> {
    let o = script("fuzz_events.py", args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// `scripts/reference_scores.py`, a second, plain implementation of the
/// rules, finds the same scores and activity counts as the lake at `lake`.
pub fn assert_reference_agrees(lake: &Path) {
    assert_reference_agrees_with(lake, &[]);
}

/// [`assert_reference_agrees`] with the reference's `args` after the lake
/// (`--lateness Nd`: the lake's ingest lateness, if not the default).
pub fn assert_reference_agrees_with(lake: &Path, args: &[&str]) {
    let mut all: Vec<&std::ffi::OsStr> = vec![lake.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let o = script("reference_scores.py", &all);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("; 0 differences"),
        "the reference disagrees:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `/metrics` text of an ingest serving it on 127.0.0.1:`port`, or the
/// error of a connection the endpoint does not take (yet).
pub fn scrape(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Scrapes `port` until `ready` holds of the text (or fails after `within`,
/// saying what it waited for and showing `context()`); the text.
pub fn scrape_until(
    port: u16,
    what: &str,
    within: std::time::Duration,
    ready: impl Fn(&str) -> bool,
    context: impl Fn() -> String,
) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = scrape(port).unwrap_or_default();
        if ready(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not in the metrics: {text}{}",
            context()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The value of the unlabelled series `name` in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

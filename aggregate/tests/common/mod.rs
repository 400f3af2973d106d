//! Helpers shared by the integration tests: writing a small lake by hand
//! (docs/lake-layout.md) and reading the monthly tables back.

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One `daily_scores` delta row: user, school, rule, points, events.
pub type Score<'a> = (&'a str, &'a str, &'a str, i64, i64);
/// One `daily_activity` delta row: user, role, school, logins, deep, registers, events.
pub type Activity<'a> = (&'a str, &'a str, &'a str, i64, i64, i64, i64);

/// Writes a `daily_scores` file `LAKE/daily_scores/day=DAY/NAME.parquet`.
pub fn write_scores(lake: &Path, day: &str, name: &str, rows: &[Score<'_>]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("school_id", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("points", DataType::Int64, false),
        Field::new("events", DataType::Int64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4))),
    ];
    let batch = RecordBatch::try_new(schema, cols).unwrap();
    write_file(
        &lake.join("daily_scores").join(format!("day={day}")),
        name,
        &batch,
    );
}

/// Writes a `daily_activity` file `LAKE/daily_activity/day=DAY/NAME.parquet`.
pub fn write_activity(lake: &Path, day: &str, name: &str, rows: &[Activity<'_>]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("school_id", DataType::Utf8, false),
        Field::new("logins", DataType::Int64, false),
        Field::new("deep_actions", DataType::Int64, false),
        Field::new("registers", DataType::Int64, false),
        Field::new("events", DataType::Int64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.5))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.6))),
    ];
    let batch = RecordBatch::try_new(schema, cols).unwrap();
    write_file(
        &lake.join("daily_activity").join(format!("day={day}")),
        name,
        &batch,
    );
}

/// Writes `batch` as `DIR/NAME.parquet` through a `.`-named temporary file.
pub fn write_file(dir: &Path, name: &str, batch: &RecordBatch) {
    fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut w = ArrowWriter::try_new(File::create(&tmp).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    fs::rename(&tmp, dir.join(format!("{name}.parquet"))).unwrap();
}

/// Writes `LAKE/dims/schools.csv` and `LAKE/dims/users.csv`.
pub fn write_rosters(lake: &Path, schools: &str, users: &str) {
    fs::create_dir_all(lake.join("dims")).unwrap();
    fs::write(lake.join("dims/schools.csv"), schools).unwrap();
    fs::write(lake.join("dims/users.csv"), users).unwrap();
}

/// All rows of the data files in a folder (files starting with `.` or `_`
/// skipped), as one batch.
pub fn read_dir_batch(dir: &Path) -> RecordBatch {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.ends_with(".parquet") && !n.starts_with('.') && !n.starts_with('_')
        })
        .collect();
    files.sort();
    let mut batches = Vec::new();
    let mut schema = None;
    for f in files {
        let b = ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap()).unwrap();
        schema.get_or_insert_with(|| b.schema().clone());
        batches.extend(b.build().unwrap().map(|b| b.unwrap()));
    }
    concat_batches(&schema.expect("a data file"), &batches).unwrap()
}

/// The `teacher_monthly` or `school_monthly` rows of a month.
pub fn read_month(lake: &Path, table: &str, month: &str) -> RecordBatch {
    read_dir_batch(&lake.join(table).join(format!("month={month}")))
}

/// A cell as text, for comparisons: null → "", floats with full precision.
pub fn cell(batch: &RecordBatch, col: &str, row: usize) -> String {
    let a = batch
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    if a.is_null(row) {
        return String::new();
    }
    if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
        return s.value(row).to_string();
    }
    if let Some(i) = a.as_any().downcast_ref::<Int64Array>() {
        return i.value(row).to_string();
    }
    if let Some(f) = a.as_any().downcast_ref::<Float64Array>() {
        return format!("{:?}", f.value(row));
    }
    if let Some(b) = a.as_any().downcast_ref::<BooleanArray>() {
        return if b.value(row) { "True" } else { "False" }.to_string();
    }
    panic!("column {col} has unexpected type {}", a.data_type())
}

/// The conformance case (testdata/conformance/).
pub fn conformance_dir() -> PathBuf {
    manifest_dir().join("../testdata/conformance")
}

/// Copies the conformance case's rosters into `LAKE/dims/`.
pub fn copy_conformance_dims(lake: &Path) {
    let dims = conformance_dir().join("dims");
    fs::create_dir_all(lake.join("dims")).unwrap();
    for f in ["schools.csv", "users.csv"] {
        fs::copy(dims.join(f), lake.join("dims").join(f)).unwrap();
    }
}

/// A CSV without quoting (the conformance case's expected tables): header, rows.
pub fn parse_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// The monthly tables' float columns, compared to 1e-9.
pub const FLOAT_COLUMNS: [&str; 8] = [
    "avg_points",
    "active_ratio",
    "daily_active_rate",
    "target_rate",
    "rate_gap",
    "avg_daily_logins",
    "deep_index",
    "registration_rate",
];

/// Asserts that `got` (a monthly table's rows, each cell as text the way
/// [`cell`] writes it: null → "") holds exactly the rows of the `expected` CSV,
/// found by their `key` column; floats as the same double, every other cell
/// as text.
pub fn assert_rows_match(
    table: &str,
    got: &[std::collections::HashMap<String, String>],
    expected: &Path,
    key: &str,
) {
    let (header, rows) = parse_csv(expected);
    assert_eq!(got.len(), rows.len(), "{table} rows");
    let key_idx = header.iter().position(|h| h == key).unwrap();
    let by_key: std::collections::HashMap<&str, usize> = got
        .iter()
        .enumerate()
        .map(|(i, r)| (r[key].as_str(), i))
        .collect();
    let mut mismatches = Vec::new();
    for want in &rows {
        let r = &got[*by_key
            .get(want[key_idx].as_str())
            .unwrap_or_else(|| panic!("{table}: no row {}", want[key_idx]))];
        for (c, col) in header.iter().enumerate() {
            let (g, w) = (
                r.get(col)
                    .unwrap_or_else(|| panic!("{table}: no column {col}")),
                &want[c],
            );
            let same = if FLOAT_COLUMNS.contains(&col.as_str()) {
                match (g.is_empty(), w.is_empty()) {
                    (true, true) => true,
                    // the same double, to the last bit: the tables follow
                    // monthly.md's formulas operation by operation
                    (false, false) => g.parse::<f64>().unwrap() == w.parse::<f64>().unwrap(),
                    _ => false,
                }
            } else {
                g == w
            };
            if !same {
                mismatches.push(format!("{} {col}: got {g:?}, want {w:?}", want[key_idx]));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{table} differs:\n{}",
        mismatches.join("\n")
    );
}

/// A float cell (None when null).
pub fn float(batch: &RecordBatch, col: &str, row: usize) -> Option<f64> {
    let a = batch.column_by_name(col).unwrap();
    let f = a
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("Float64 column");
    (!f.is_null(row)).then(|| f.value(row))
}

/// Runs the binary with `args`; returns (success, stdout, stderr).
pub fn run_bin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_huoyue-aggregate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `monthly` through the library, panicking on error.
pub fn monthly(lake: &Path, month: &str) {
    let (ok, _out, err) = run_bin(&[
        "monthly",
        "--lake",
        lake.to_str().unwrap(),
        "--month",
        month,
    ]);
    assert!(ok, "monthly {month} failed: {err}");
}

pub const S1: &str = "3300000001";
pub const S2: &str = "3300000002";
pub const S3: &str = "3300000003";
pub const S4: &str = "3300000004";

/// The hand-built lake of the golden test (see tests/golden.rs for the
/// hand-computed expectations): months 2026-10 and 2026-11, rows of 2025 and
/// 2026-12 that no figure of 2026-11 may count.
pub fn golden_lake(lake: &Path) {
    write_rosters(
        lake,
        "school_id,name,county_code,county_name,city_code,category,student_base\n\
         3300000001,甲校,330102,测试区,330100,demo,4\n\
         3300000002,乙校,330102,测试区,330100,regular,10\n\
         3300000003,丙校,330102,测试区,330100,regular,1\n\
         3300000004,丁校,330103,另一县,330100,regular,5\n",
        "user_id,school_id,role,name\n\
         t1,3300000001,teacher,张一\n\
         t2,3300000001,teacher,张二\n\
         s1a,3300000001,student,\n\
         s1b,3300000001,student,\n\
         t3,3300000002,teacher,李三\n\
         t4,3300000002,teacher,李四\n\
         t5,3300000002,teacher,李五\n\
         s2a,3300000002,student,\n\
         p2a,3300000002,parent,\n\
         s3a,3300000003,student,\n\
         s3b,3300000003,student,\n\
         t6,3300000004,teacher,王六\n\
         s4a,3300000004,student,\n",
    );

    // --- daily_scores ------------------------------------------------------
    // Outside 2026: never counted.
    write_scores(lake, "2025-12-31", "a", &[("t1", S1, "login", 1, 1)]);
    // Earlier in 2026: ytd only (1 January is included).
    write_scores(lake, "2026-01-01", "a", &[("t3", S2, "login", 1, 1)]);
    write_scores(lake, "2026-03-01", "a", &[("t1", S1, "teach", 10, 2)]);
    write_scores(lake, "2026-10-31", "a", &[("t5", S2, "teach", 10, 2)]);
    // After the month: never counted for 2026-11.
    write_scores(lake, "2026-12-01", "a", &[("t1", S1, "login", 1, 1)]);
    // November. t1: a login corrected upwards in a second file, a resource
    // approved then deleted, app points split over two files.
    write_scores(lake, "2026-11-02", "a", &[("t1", S1, "login", 1, 1)]);
    write_scores(lake, "2026-11-02", "b", &[("t1", S1, "login", 1, 0)]);
    write_scores(
        lake,
        "2026-11-05",
        "a",
        &[
            ("t1", S1, "teach", 10, 3),
            ("ty", S2, "resource_submit", 3, 1),
            ("tw", S2, "resource_submit", 3, 1),
        ],
    );
    write_scores(
        lake,
        "2026-11-05",
        "b",
        &[("ty", S2, "resource_submit", -3, 1)],
    );
    write_scores(
        lake,
        "2026-11-10",
        "a",
        &[("t1", S1, "resource_submit", 3, 1), ("t1", S1, "app", 2, 1)],
    );
    write_scores(
        lake,
        "2026-11-10",
        "b",
        &[("t1", S1, "app", 2, 1), ("tx", S2, "teach", 10, 2)],
    );
    write_scores(
        lake,
        "2026-11-20",
        "a",
        &[("t1", S1, "resource_submit", -3, 1)],
    );
    // t2: exactly 30 points.
    write_scores(
        lake,
        "2026-11-03",
        "a",
        &[("t2", S1, "teach", 10, 2), ("t3", S2, "teach", 10, 2)],
    );
    write_scores(lake, "2026-11-04", "a", &[("t2", S1, "teach", 10, 2)]);
    write_scores(lake, "2026-11-06", "a", &[("t2", S1, "interaction", 5, 12)]);
    write_scores(lake, "2026-11-07", "a", &[("t2", S1, "profile", 5, 2)]);
    // t3 and t4 tie at 20.
    write_scores(lake, "2026-11-08", "a", &[("t3", S2, "space_use", 2, 3)]);
    write_scores(
        lake,
        "2026-11-09",
        "a",
        &[
            ("t3", S2, "task", 5, 10),
            ("t3", S2, "resource_spread", 2, 2),
        ],
    );
    write_scores(lake, "2026-11-15", "a", &[("t3", S2, "login", 1, 1)]);
    write_scores(lake, "2026-11-12", "a", &[("t4", S2, "teach", 10, 2)]);
    write_scores(lake, "2026-11-13", "a", &[("t4", S2, "teach", 10, 2)]);
    // t6 in the other county: 45.
    for day in ["01", "02", "03", "04"] {
        write_scores(
            lake,
            &format!("2026-11-{day}"),
            "t6",
            &[("t6", S4, "teach", 10, 2)],
        );
    }
    write_scores(
        lake,
        "2026-11-05",
        "t6",
        &[("t6", S4, "interaction", 5, 10)],
    );
    // tx (not in the roster): last day 11-28 has rows at S2 and S1 → S1.
    write_scores(
        lake,
        "2026-11-28",
        "a",
        &[
            ("tx", S2, "login", 1, 1),
            ("tx", S1, "resource_spread", 1, 1),
        ],
    );
    // tw (not in the roster): +3 then −3 on another day → a row with 0
    // points, school of the last day (S4).
    write_scores(
        lake,
        "2026-11-25",
        "a",
        &[("tw", S4, "resource_submit", -3, 1)],
    );

    // --- daily_activity ----------------------------------------------------
    write_activity(
        lake,
        "2025-09-01",
        "a",
        &[("s4a", "student", S4, 0, 0, 1, 1)],
    );
    write_activity(
        lake,
        "2026-10-15",
        "a",
        &[("s1b", "student", S1, 1, 0, 1, 2)],
    );
    write_activity(
        lake,
        "2026-12-01",
        "a",
        &[("s1c", "student", S1, 1, 0, 1, 2)],
    );
    write_activity(
        lake,
        "2026-11-02",
        "a",
        &[
            ("t1", "teacher", S1, 1, 3, 1, 5),
            ("s1a", "student", S1, 1, 5, 1, 7),
            ("s1b", "student", S1, 1, 0, 0, 1),
        ],
    );
    write_activity(
        lake,
        "2026-11-02",
        "b",
        &[("t1", "teacher", S1, 1, 0, 0, 1)],
    );
    write_activity(
        lake,
        "2026-11-03",
        "a",
        &[("t2", "teacher", S1, 1, 2, 0, 3)],
    );
    write_activity(
        lake,
        "2026-11-04",
        "a",
        &[("t2", "teacher", S1, 1, 0, 0, 1)],
    );
    write_activity(
        lake,
        "2026-11-05",
        "a",
        &[("t1", "teacher", S1, 1, 0, 0, 1)],
    );
    write_activity(
        lake,
        "2026-11-10",
        "a",
        &[("t1", "teacher", S1, 0, 2, 0, 2)],
    );
    write_activity(
        lake,
        "2026-11-10",
        "b",
        &[("t1", "teacher", S1, 0, 2, 0, 2)],
    );
    // t2 logs in at S2 on 11-06 (not the roster school).
    write_activity(
        lake,
        "2026-11-06",
        "a",
        &[
            ("t2", "teacher", S2, 1, 1, 0, 2),
            ("t5", "teacher", S2, 1, 0, 0, 1),
        ],
    );
    write_activity(
        lake,
        "2026-11-07",
        "a",
        &[
            ("t5", "teacher", S2, 1, 0, 0, 1),
            ("p2a", "parent", S2, 1, 0, 0, 1),
        ],
    );
    write_activity(
        lake,
        "2026-11-07",
        "b",
        &[("t5", "teacher", S2, 2, 0, 0, 2)],
    );
    write_activity(
        lake,
        "2026-11-08",
        "a",
        &[("t3", "teacher", S2, 1, 2, 0, 3)],
    );
    write_activity(
        lake,
        "2026-11-09",
        "a",
        &[("s2a", "student", S2, 0, 0, 0, 5)],
    );
    write_activity(
        lake,
        "2026-11-28",
        "a",
        &[("tx", "teacher", S2, 1, 6, 0, 7)],
    );
    write_activity(
        lake,
        "2026-11-20",
        "a",
        &[("s3a", "student", S3, 1, 0, 1, 2)],
    );
    write_activity(
        lake,
        "2026-11-21",
        "a",
        &[
            ("s3a", "student", S3, 1, 0, 1, 2),
            ("s3b", "student", S3, 1, 0, 1, 2),
        ],
    );
    for d in 1..=30 {
        let day = format!("2026-11-{d:02}");
        let mut rows = vec![("t6", "teacher", S4, 1, 1, 0, 2)];
        if d <= 15 {
            rows.push(("s4a", "student", S4, 1, 0, 0, 1));
        }
        write_activity(lake, &day, "z", &rows);
    }
}

/// This package's folder, as `cargo test` gives it when the test runs (not
/// when it was compiled: a reused build may come from another checkout).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test: CARGO_MANIFEST_DIR"),
    )
}

/// Ingests NDJSON into `lake` with the ingest's file mode (the same engine and
/// writer as `huoyue-ingest --file`), in small chunks and flushes.
pub fn ingest(lake: &Path, ndjson: Vec<u8>) {
    ingest_with(lake, ndjson, 64 << 10, 2_000, 2);
}

/// [`ingest`] in chunks of `chunk_bytes`, flushing every `flush_rows` rows,
/// on `decoders` decoder threads.
pub fn ingest_with(
    lake: &Path,
    ndjson: Vec<u8>,
    chunk_bytes: usize,
    flush_rows: usize,
    decoders: usize,
) {
    use huoyue_ingest::engine::{Engine, EngineConfig};
    use huoyue_ingest::lake_writer::LakeWriter;
    use huoyue_ingest::pipeline::Pipeline;
    use huoyue_ingest::pipeline::file::{FileOptions, run_file};
    use huoyue_schemas::{DEFAULT_PROFILE, Profile};

    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let engine = Engine::new(&profile, EngineConfig::default());
    let writer = LakeWriter::open(lake, "test-ingest").unwrap();
    let mut pipeline = Pipeline::new(engine, writer);
    let opts = FileOptions {
        chunk_bytes,
        flush_rows,
        decoders,
        ..FileOptions::default()
    };
    run_file(
        &mut pipeline,
        Box::new(std::io::Cursor::new(ndjson)),
        "events.ndjson",
        opts,
    )
    .unwrap();
}

/// `ndjson` ingested as `huoyue-ingest --lake LAKE --file` runs it: one file
/// run that leaves its state in the lake's checkpoint.
pub fn ingest_run(lake: &Path, ndjson: Vec<u8>) {
    ingest_run_with(lake, ndjson, huoyue_ingest::engine::EngineConfig::default());
}

/// [`ingest_run`] with the engine settings `cfg` (those of the lake's state,
/// once it has one).
pub fn ingest_run_with(lake: &Path, ndjson: Vec<u8>, cfg: huoyue_ingest::engine::EngineConfig) {
    use huoyue_ingest::lake_writer::LakeWriter;
    use huoyue_ingest::pipeline::Pipeline;
    use huoyue_ingest::pipeline::file::{FILE_PREFIX, FileOptions, FileState};
    use huoyue_schemas::{DEFAULT_PROFILE, Profile};

    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let writer = LakeWriter::open(lake, &format!("{FILE_PREFIX}test"))
        .unwrap()
        .stage_only();
    let (state, engine) = FileState::open(lake, &profile, cfg).unwrap();
    let mut pipeline = Pipeline::new(engine, writer);
    state
        .run(
            &mut pipeline,
            Box::new(std::io::Cursor::new(ndjson)),
            "events.ndjson",
            FileOptions::default(),
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
}

/// Runs `python3 scripts/NAME ARGS…` of this repository (the checks that need
/// DuckDB: scripts/test installs it).
pub fn script(name: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(manifest_dir().join("../scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 scripts/{name}: {e}"))
}

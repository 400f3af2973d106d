//! A small lake written the way docs/lake-layout.md describes it (with the
//! ingest's own schemas, `huoyue_schemas::lake`), and helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use huoyue_schemas::lake as schemas;
use tempfile::TempDir;

/// The lake fixture; the directory is removed on drop.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    // As the ingest does: a temporary `.`-name, then a rename.
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    let file = fs::File::create(&tmp).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn opt_strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

/// `daily_scores` rows: (user_id, school_id, rule, points, events).
pub fn scores(rows: &[(&str, &str, &str, i64, i64)]) -> RecordBatch {
    let schema: SchemaRef = schemas::daily_scores();
    RecordBatch::try_new(
        schema,
        vec![
            strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ints(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ints(&rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        ],
    )
    .unwrap()
}

fn activity(rows: &[(&str, &str, &str, i64, i64, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schemas::daily_activity(),
        vec![
            strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ints(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ints(&rows.iter().map(|r| r.4).collect::<Vec<_>>()),
            ints(&rows.iter().map(|r| r.5).collect::<Vec<_>>()),
            ints(&rows.iter().map(|r| r.6).collect::<Vec<_>>()),
        ],
    )
    .unwrap()
}

/// Microseconds since the epoch of 2026-11-03T00:15:30Z (08:15:30+08:00).
pub const TS_LOGIN: i64 = 1_793_664_930_000_000;

fn events() -> RecordBatch {
    let schema = schemas::events();
    let n = 2;
    let none = |n: usize| opt_strings(&vec![None; n]);
    let mut items = ListBuilder::new(StringBuilder::new());
    items.append_null();
    items.values().append_value("avatar");
    items.values().append_value("contact");
    items.append(true);
    let ts =
        TimestampMicrosecondArray::from(vec![TS_LOGIN, TS_LOGIN + 60_000_000]).with_timezone("UTC");
    let published_at =
        TimestampMicrosecondArray::from(vec![None::<i64>, None]).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        strings(&["e-000001", "e-000002"]),
        Arc::new(ts),
        strings(&["t-1001", "t-1001"]),
        strings(&["teacher", "teacher"]),
        strings(&["3333000001", "3333000001"]),
        strings(&["login", "profile_update"]),
        strings(&["mobile", "pc"]),
        none(n), // stage
        Arc::new(items.finish()),
        none(n), // op
        none(n), // resource_id
        none(n), // owner_id
        none(n), // owner_school_id
        none(n), // level
        none(n), // outcome
        none(n), // lesson_id
        Arc::new(Int64Array::from(vec![None::<i64>, None])),
        none(n), // task_id
        none(n), // kind
        Arc::new(published_at),
        none(n), // status
        none(n), // counterpart_id
        none(n), // counterpart_role
        none(n), // app_id
        strings(&["events.ndjson", "events.ndjson"]),
        Arc::new(Int32Array::from(vec![None::<i32>, None])),
        Arc::new(Int64Array::from(vec![Some(1_i64), Some(2)])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn rejected() -> RecordBatch {
    let ingested =
        TimestampMicrosecondArray::from(vec![1_795_312_800_000_000_i64]).with_timezone("UTC");
    RecordBatch::try_new(
        schemas::rejected(),
        vec![
            Arc::new(ingested),
            strings(&["bad_json"]),
            opt_strings(&[None]),
            Arc::new(BinaryArray::from(vec![&b"{not json"[..]])),
            strings(&["events.ndjson"]),
            Arc::new(Int32Array::from(vec![None::<i32>])),
            Arc::new(Int64Array::from(vec![Some(7_i64)])),
        ],
    )
    .unwrap()
}

/// Build the fixture lake:
///
/// - `daily_scores`: day 2026-11-03 in two files (deltas and corrections),
///   day 2026-11-04 in one; plus names that are not data (`.x.parquet`,
///   `_scratch/`, a temp file) holding garbage.
/// - `daily_activity`, `events` (2026-11-03), `rejected` (2026-11-22).
/// - `dims/schools.csv` (with a UTF-8 BOM, a school id with a leading 0) and
///   `dims/users.csv` (without the optional `name` column).
/// - no `teacher_monthly` / `school_monthly` folders.
pub fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let scores_dir = lake.join("daily_scores");
    write_parquet(
        &scores_dir.join("day=2026-11-03/part-00000-a.parquet"),
        &scores(&[
            ("t-1001", "3333000001", "login", 1, 1),
            ("t-1001", "3333000001", "space_use", 2, 2),
            ("t-1002", "0330000003", "login", 1, 1),
        ]),
    );
    write_parquet(
        &scores_dir.join("day=2026-11-03/part-00001-b.parquet"),
        &scores(&[
            ("t-1001", "3333000001", "login", 2, 1),
            ("t-1001", "3333000001", "space_use", -1, 0),
        ]),
    );
    write_parquet(
        &scores_dir.join("day=2026-11-04/part-00002-c.parquet"),
        &scores(&[
            ("t-1001", "3333000001", "login", 1, 1),
            ("t-1002", "0330000003", "login", 1, 1),
        ]),
    );
    // Not data: must be ignored (they would fail the scan if read).
    fs::write(
        scores_dir.join("day=2026-11-03/.part-9.parquet"),
        b"garbage",
    )
    .unwrap();
    fs::write(
        scores_dir.join("day=2026-11-03/.part-9.parquet.tmp"),
        b"garbage",
    )
    .unwrap();
    fs::write(
        scores_dir.join("day=2026-11-03/_part-8.parquet"),
        b"garbage",
    )
    .unwrap();
    fs::create_dir_all(scores_dir.join("_scratch")).unwrap();
    fs::write(scores_dir.join("_scratch/part-7.parquet"), b"garbage").unwrap();
    fs::create_dir_all(scores_dir.join("day=2026-11-04/_compaction")).unwrap();
    fs::write(
        scores_dir.join("day=2026-11-04/_compaction/part-6.parquet"),
        b"garbage",
    )
    .unwrap();

    write_parquet(
        &lake.join("daily_activity/day=2026-11-03/part-00000-a.parquet"),
        &activity(&[
            ("t-1001", "teacher", "3333000001", 2, 1, 0, 3),
            ("s-2001", "student", "3333000001", 0, 0, 1, 1),
        ]),
    );
    write_parquet(
        &lake.join("daily_activity/day=2026-11-03/part-00001-b.parquet"),
        &activity(&[("t-1001", "teacher", "3333000001", 1, 0, 0, 1)]),
    );
    write_parquet(
        &lake.join("events/day=2026-11-03/part-00000-a.parquet"),
        &events(),
    );
    write_parquet(
        &lake.join("rejected/day=2026-11-22/part-00000-a.parquet"),
        &rejected(),
    );

    fs::create_dir_all(lake.join("dims")).unwrap();
    fs::write(
        lake.join("dims/schools.csv"),
        "\u{feff}school_id,name,county_code,county_name,city_code,category,student_base\n\
         3333000001,第一中学,330102,上城区,330100,demo,1200\n\
         0330000003,\"Second School, East\",010101,示例县,010100,regular,800\n",
    )
    .unwrap();
    fs::write(
        lake.join("dims/users.csv"),
        "user_id,school_id,role\n\
         t-1001,3333000001,teacher\n\
         t-1002,0330000003,teacher\n\
         s-2001,3333000001,student\n",
    )
    .unwrap();
    Fixture { dir }
}

/// Write a `teacher_monthly` file for 2026-11 as the monthly job might.
pub fn write_teacher_monthly(lake: &Path) {
    let batch = RecordBatch::try_from_iter(vec![
        ("user_id", strings(&["t-1001", "t-1002"])),
        ("school_id", strings(&["3333000001", "0330000003"])),
        ("points", ints(&[5, 2])),
    ])
    .unwrap();
    write_parquet(
        &lake.join("teacher_monthly/month=2026-11/part-0.parquet"),
        &batch,
    );
}

/// Write `teacher_monthly` of `month` with one non-nullable `points_<rule>`
/// column per rule, as the monthly job writes them under a profile.
pub fn write_teacher_monthly_of(lake: &Path, month: &str, rules: &[&str]) {
    let mut columns = vec![
        ("user_id".to_string(), strings(&["t-1001"]), false),
        ("points".to_string(), ints(&[5]), false),
    ];
    for r in rules {
        columns.push((format!("points_{r}"), ints(&[5]), false));
    }
    let batch = RecordBatch::try_from_iter_with_nullable(columns).unwrap();
    write_parquet(
        &lake.join(format!("teacher_monthly/month={month}/part-0.parquet")),
        &batch,
    );
}

/// Put a corrupt `.parquet` in the day=2026-11-05 folder of `daily_scores`.
pub fn corrupt_day(lake: &Path) {
    let dir = lake.join("daily_scores/day=2026-11-05");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("part-00003-broken.parquet"),
        b"this is not parquet at all",
    )
    .unwrap();
}

/// Pretty table of batches, for golden comparisons.
pub fn pretty(batches: &[RecordBatch]) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

/// Trim the common indentation of a golden table written in a raw string.
pub fn golden(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Write one more `daily_scores` file under `LAKE/daily_scores/<relative>`.
pub fn write_scores(lake: &Path, relative: &str, rows: &[(&str, &str, &str, i64, i64)]) {
    write_parquet(&lake.join("daily_scores").join(relative), &scores(rows));
}

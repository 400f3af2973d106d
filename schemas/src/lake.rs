//! The Arrow schemas of the lake's tables, as stored in the Parquet files.
//!
//! Partition columns (`day`, `month`) are not stored in the files: they are the
//! Hive folder names (`day=2026-11-03`), typed Date32 / Utf8 by readers. See
//! `docs/lake-layout.md`.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use arrow::array::StringArray;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The table names of the lake written by the ingest.
pub const EVENTS: &str = "events";
pub const DAILY_SCORES: &str = "daily_scores";
pub const DAILY_ACTIVITY: &str = "daily_activity";
pub const REJECTED: &str = "rejected";

/// The four tables the ingest writes.
pub const INGEST_TABLES: &[&str] = &[EVENTS, DAILY_SCORES, DAILY_ACTIVITY, REJECTED];

/// Times a reader of the lake tries a read again when a file it listed
/// vanished before it opened it ([`is_vanished_file`]).
pub const VANISHED_FILE_RETRIES: u32 = 6;

/// Whether an error message is that of a read that listed a data file which
/// compaction or a rescore then swapped away (object_store's "Object at
/// location … not found"). Such a read is tried again from a fresh listing:
/// the swap keeps the sums, so the retry sees the same data under other names.
pub fn is_vanished_file(message: &str) -> bool {
    message.contains("Object at location") && message.contains("not found")
}

/// The partition column of the daily tables.
pub const DAY: &str = "day";

/// The first folder `table/day=<value>` of `tables` under `lake` whose value
/// is not a date, as an error naming it (relative to `lake`). A reader
/// casts every listed folder's value, so one such folder (a copy named
/// `day=2026-11-03.bak`) fails every scan of its table, without saying
/// which. Hidden folders (`.` or `_` first) are not partitions.
pub fn bad_day_folder(lake: &Path, tables: &[&str]) -> Option<String> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let is_day = |value: &str| {
        cast_with_options(&StringArray::from(vec![value]), &DataType::Date32, &strict).is_ok()
    };
    let mut bad: Vec<String> = tables
        .iter()
        .filter_map(|table| Some((table, std::fs::read_dir(lake.join(table)).ok()?)))
        .flat_map(|(table, folders)| {
            folders.flatten().filter_map(move |f| {
                let name = f.file_name().into_string().ok()?;
                let value = name.strip_prefix("day=")?;
                (!is_day(value)).then(|| format!("{table}/{name}"))
            })
        })
        .collect();
    bad.sort();
    let first = bad.into_iter().next()?;
    Some(format!(
        "{first}: not a day folder (day=YYYY-MM-DD); move it out of the lake"
    ))
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// The action-specific columns of `events`, in order (all nullable).
pub const EVENT_EXTRA_COLUMNS: &[&str] = &[
    "stage",
    "items",
    "op",
    "resource_id",
    "owner_id",
    "owner_school_id",
    "level",
    "outcome",
    "lesson_id",
    "duration_s",
    "task_id",
    "kind",
    "published_at",
    "status",
    "counterpart_id",
    "counterpart_role",
    "app_id",
];

/// `events`: every valid, non-duplicate event.
pub fn events() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            utf8("event_id", false),
            Field::new("ts", utc_micros(), false),
            utf8("user_id", false),
            utf8("role", false),
            utf8("school_id", false),
            utf8("action", false),
            utf8("client", false),
        ];
        for name in EVENT_EXTRA_COLUMNS {
            fields.push(match *name {
                "items" => Field::new(
                    "items",
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    true,
                ),
                "duration_s" => Field::new("duration_s", DataType::Int64, true),
                "published_at" => Field::new("published_at", utc_micros(), true),
                other => utf8(other, true),
            });
        }
        fields.extend(lineage());
        Arc::new(Schema::new(fields))
    });
    S.clone()
}

fn lineage() -> [Field; 3] {
    [
        utf8("source", false),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
    ]
}

/// `daily_scores`: score deltas per (day, user, rule).
pub fn daily_scores() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            utf8("user_id", false),
            utf8("school_id", false),
            utf8("rule", false),
            Field::new("points", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
        ]))
    });
    S.clone()
}

/// `daily_activity`: usage count deltas per (day, user), every role.
pub fn daily_activity() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            utf8("user_id", false),
            utf8("role", false),
            utf8("school_id", false),
            Field::new("logins", DataType::Int64, false),
            Field::new("deep_actions", DataType::Int64, false),
            Field::new("registers", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
        ]))
    });
    S.clone()
}

/// `rejected`: every rejected input with its original bytes.
pub fn rejected() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            Field::new("ingested_at", utc_micros(), false),
            utf8("reason", false),
            utf8("detail", true),
            Field::new("raw", DataType::Binary, false),
        ];
        fields.extend(lineage());
        Arc::new(Schema::new(fields))
    });
    S.clone()
}

/// The schema of a table written by the ingest, by name.
pub fn schema_of(table: &str) -> Option<SchemaRef> {
    match table {
        EVENTS => Some(events()),
        DAILY_SCORES => Some(daily_scores()),
        DAILY_ACTIVITY => Some(daily_activity()),
        REJECTED => Some(rejected()),
        _ => None,
    }
}

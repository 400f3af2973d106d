//! File schemas of the lake tables, declared from docs/lake-layout.md so that
//! a query never depends on what the first file happens to contain.
//!
//! Partition columns (`day`, `month`) are not in the files; they are added
//! from the folder names by the listing tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int64(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn timestamp_utc(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

/// `events`: every valid, non-duplicate event (bronze), in file column order.
pub fn events() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("event_id"),
        timestamp_utc("ts"),
        utf8("user_id"),
        utf8("role"),
        utf8("school_id"),
        utf8("action"),
        utf8("client"),
        utf8("stage"),
        Field::new("items", DataType::new_list(DataType::Utf8, true), true),
        utf8("op"),
        utf8("resource_id"),
        utf8("owner_id"),
        utf8("owner_school_id"),
        utf8("level"),
        utf8("outcome"),
        utf8("lesson_id"),
        int64("duration_s"),
        utf8("task_id"),
        utf8("kind"),
        timestamp_utc("published_at"),
        utf8("status"),
        utf8("counterpart_id"),
        utf8("counterpart_role"),
        utf8("app_id"),
        utf8("source"),
        Field::new("partition", DataType::Int32, true),
        int64("offset"),
    ]))
}

/// `daily_scores`: score deltas (silver).
pub fn daily_scores() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("user_id"),
        utf8("school_id"),
        utf8("rule"),
        int64("points"),
        int64("events"),
    ]))
}

/// `daily_activity`: per-user daily usage count deltas (silver).
pub fn daily_activity() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("user_id"),
        utf8("role"),
        utf8("school_id"),
        int64("logins"),
        int64("deep_actions"),
        int64("registers"),
        int64("events"),
    ]))
}

/// `rejected`: rejected input with its original bytes.
pub fn rejected() -> SchemaRef {
    Arc::new(Schema::new(vec![
        timestamp_utc("ingested_at"),
        utf8("reason"),
        utf8("detail"),
        Field::new("raw", DataType::Binary, true),
        utf8("source"),
        Field::new("partition", DataType::Int32, true),
        int64("offset"),
    ]))
}

/// One column of a roster as the table exposes it.
#[derive(Debug, Clone, Copy)]
pub struct RosterColumn {
    /// Column name, as in the CSV header.
    pub name: &'static str,
    /// The type the table exposes (ids are always strings).
    pub data_type: RosterType,
    /// A roster without this column is an error; other columns become null.
    pub required: bool,
}

/// The two types roster columns have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterType {
    /// Utf8: ids, codes, names. Never inferred as numbers: school ids and
    /// county codes must keep their exact digits.
    Text,
    /// Int64.
    Integer,
}

impl RosterType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Text => DataType::Utf8,
            Self::Integer => DataType::Int64,
        }
    }
}

const fn col(name: &'static str, data_type: RosterType, required: bool) -> RosterColumn {
    RosterColumn {
        name,
        data_type,
        required,
    }
}

/// `dims/schools`: the school roster (lake.md, Rosters).
pub const SCHOOLS: &[RosterColumn] = &[
    col("school_id", RosterType::Text, true),
    col("name", RosterType::Text, false),
    col("county_code", RosterType::Text, false),
    col("county_name", RosterType::Text, false),
    col("city_code", RosterType::Text, false),
    col("category", RosterType::Text, false),
    col("student_base", RosterType::Integer, false),
];

/// `dims/users`: the user roster (lake.md, Rosters).
pub const USERS: &[RosterColumn] = &[
    col("user_id", RosterType::Text, true),
    col("school_id", RosterType::Text, true),
    col("role", RosterType::Text, true),
    col("name", RosterType::Text, false),
];

/// The schema a roster table exposes when its file is absent.
pub fn roster_schema(columns: &[RosterColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

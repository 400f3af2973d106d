//! File schemas of the lake tables as the query exposes them.
//!
//! The Parquet tables take the schemas the ingest writes with
//! (`huoyue_schemas::lake`, from docs/lake-layout.md), every column made
//! nullable: a reader must accept files whose writer left a column out
//! (the listing table fills it with nulls). A query never depends on what
//! the first file happens to contain. Partition columns (`day`, `month`) are
//! not in the files; the listing tables add them from the folder names.
//!
//! The rosters are declared here: they are files supplied by the operator.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use huoyue_schemas::lake;

/// `schema` with every field nullable.
fn nullable(schema: SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `events`: every valid, non-duplicate event (bronze), in file column order.
pub fn events() -> SchemaRef {
    nullable(lake::events())
}

/// `daily_scores`: score deltas (silver).
pub fn daily_scores() -> SchemaRef {
    nullable(lake::daily_scores())
}

/// `daily_activity`: per-user daily usage count deltas (silver).
pub fn daily_activity() -> SchemaRef {
    nullable(lake::daily_activity())
}

/// `rejected`: rejected input with its original bytes.
pub fn rejected() -> SchemaRef {
    nullable(lake::rejected())
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

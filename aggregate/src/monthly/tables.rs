//! The output tables `teacher_monthly` and `school_monthly`: their schemas
//! (monthly.md, without the partition column `month`) and how a query result
//! is conformed to them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{AggregateError, Result};

/// The column name of a rule's points.
pub fn points_column(rule: &str) -> String {
    format!("points_{rule}")
}

/// Schema of the `teacher_monthly` files, for the given rule ids.
pub fn teacher_monthly_schema(rules: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("school_id", DataType::Utf8, true),
        Field::new("points", DataType::Int64, false),
    ];
    fields.extend(
        rules
            .iter()
            .map(|r| Field::new(points_column(r), DataType::Int64, false)),
    );
    fields.extend([
        Field::new("login_days", DataType::Int64, false),
        Field::new("ytd_points", DataType::Int64, false),
        Field::new("meets_monthly_target", DataType::Boolean, false),
        Field::new("rank_in_school", DataType::Int64, false),
        Field::new("rank_in_county", DataType::Int64, true),
    ]);
    Arc::new(Schema::new(fields))
}

/// Schema of the `school_monthly` files.
pub fn school_monthly_schema() -> SchemaRef {
    let utf8 = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let int = |n: &str, null: bool| Field::new(n, DataType::Int64, null);
    let float = |n: &str, null: bool| Field::new(n, DataType::Float64, null);
    Arc::new(Schema::new(vec![
        utf8("school_id", false),
        utf8("name", true),
        utf8("county_code", false),
        utf8("county_name", true),
        utf8("category", false),
        int("teachers", false),
        int("points_total", false),
        float("avg_points", true),
        int("active_teachers", false),
        float("active_ratio", true),
        float("daily_active_rate", true),
        float("target_rate", false),
        float("rate_gap", true),
        float("avg_daily_logins", false),
        float("deep_index", true),
        int("registered_students", false),
        int("student_base", false),
        float("registration_rate", true),
        int("rank_points", false),
        int("rank_active_rate", false),
    ]))
}

/// Picks the columns of `schema` by name from query result batches and casts
/// them to the schema's types, giving one batch.
pub fn conform(batches: &[RecordBatch], schema: &SchemaRef) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    let all = concat_batches(&first.schema(), batches)?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let col = all.column_by_name(f.name()).ok_or_else(|| {
                AggregateError::Internal(format!("query result lacks column {}", f.name()))
            })?;
            Ok(cast(col, f.data_type())?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

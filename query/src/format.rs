//! Writing results as a pretty table, CSV, JSON or an Arrow IPC stream.
//!
//! Dates are `YYYY-MM-DD` and timestamps RFC 3339 in every text format.
//! CSV has a header row (also for an empty result); nested values (the
//! `items` list of `events`) are written as their display text (`[a, b]`).

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::{csv, ipc, json};

use crate::error::QueryError;
use crate::run::QueryOutput;

/// Text formats of the CLI and the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A pretty table with borders, for people.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects, one per row, nulls explicit.
    Json,
}

fn internal(error: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(format!("cannot write the result: {error}"))
}

/// Write `output` in `format` to `out` (a trailing newline included).
pub fn write_output(
    output: &QueryOutput,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), QueryError> {
    match format {
        OutputFormat::Table => write_table(output, out),
        OutputFormat::Csv => write_csv(output, out),
        OutputFormat::Json => write_json_objects(output, out),
    }
}

/// `output` in `format` as a string.
pub fn format_output(output: &QueryOutput, format: OutputFormat) -> Result<String, QueryError> {
    let mut buffer = Vec::new();
    write_output(output, format, &mut buffer)?;
    String::from_utf8(buffer).map_err(internal)
}

/// A pretty table with a header, also when there are no rows.
pub fn write_table(output: &QueryOutput, out: &mut impl Write) -> Result<(), QueryError> {
    let table = datafusion::arrow::util::pretty::pretty_format_batches_with_schema(
        Arc::clone(&output.schema),
        &output.batches,
    )
    .map_err(internal)?;
    writeln!(out, "{table}").map_err(internal)
}

/// CSV with a header row.
pub fn write_csv(output: &QueryOutput, out: &mut impl Write) -> Result<(), QueryError> {
    let schema = flat_schema(&output.schema);
    let mut writer = csv::WriterBuilder::new().with_header(true).build(out);
    if output.num_rows() == 0 {
        writer
            .write(&RecordBatch::new_empty(schema))
            .map_err(internal)?;
        return Ok(());
    }
    for batch in &output.batches {
        if batch.num_rows() > 0 {
            writer
                .write(&flatten(batch, &schema).map_err(internal)?)
                .map_err(internal)?;
        }
    }
    Ok(())
}

/// A JSON array of objects (`[{"day":"2026-11-03","points":3}, …]`), nulls
/// written as `null`.
pub fn write_json_objects(output: &QueryOutput, out: &mut impl Write) -> Result<(), QueryError> {
    // an object keeps one value per key: a second column of a name would
    // silently hide the first
    let mut names = std::collections::HashSet::new();
    if let Some(f) = output
        .schema
        .fields()
        .iter()
        .find(|f| !names.insert(f.name()))
    {
        return Err(QueryError::Sql(format!(
            "the result has two columns named {:?}, and a JSON object keeps one: name them apart (AS …) or use --format csv",
            f.name()
        )));
    }
    let mut writer = json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, json::writer::JsonArray>(&mut *out);
    write_json_batches(&mut writer, output)?;
    writer.finish().map_err(internal)?;
    drop(writer);
    writeln!(out).map_err(internal)
}

/// `{"columns":[{"name":"day","type":"Date32"},…],"rows":[["2026-11-03",3],…]}`:
/// the HTTP server's JSON, which keeps column order and duplicate names.
pub fn write_json_columns_rows(
    output: &QueryOutput,
    out: &mut impl Write,
) -> Result<(), QueryError> {
    let columns: Vec<serde_json::Value> = output
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let columns = serde_json::to_string(&columns).map_err(internal)?;
    write!(out, "{{\"columns\":{columns},\"rows\":").map_err(internal)?;
    let mut writer = json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_struct_mode(json::StructMode::ListOnly)
        .build::<_, json::writer::JsonArray>(&mut *out);
    write_json_batches(&mut writer, output)?;
    writer.finish().map_err(internal)?;
    drop(writer);
    writeln!(out, "}}").map_err(internal)
}

fn write_json_batches<W: Write>(
    writer: &mut json::Writer<W, json::writer::JsonArray>,
    output: &QueryOutput,
) -> Result<(), QueryError> {
    for batch in &output.batches {
        if batch.num_rows() > 0 {
            writer.write(batch).map_err(internal)?;
        }
    }
    Ok(())
}

/// An Arrow IPC stream (`application/vnd.apache.arrow.stream`).
pub fn write_arrow_ipc(output: &QueryOutput, out: &mut impl Write) -> Result<(), QueryError> {
    let mut writer = ipc::writer::StreamWriter::try_new(out, &output.schema).map_err(internal)?;
    for batch in &output.batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)
}

/// The schema with nested columns replaced by Utf8 (CSV cannot hold them).
fn flat_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type().is_nested() {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `batch` with its nested columns as display text, matching `flat`.
fn flatten(batch: &RecordBatch, flat: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if Arc::ptr_eq(flat, &batch.schema())
        || !batch.columns().iter().any(|c| c.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default().with_null("");
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            if !column.data_type().is_nested() {
                return Ok(Arc::clone(column));
            }
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let mut text = StringBuilder::new();
            for row in 0..column.len() {
                if column.is_null(row) {
                    text.append_null();
                } else {
                    text.append_value(formatter.value(row).to_string());
                }
            }
            Ok(Arc::new(text.finish()) as ArrayRef)
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new(Arc::clone(flat), columns)
}

//! The rosters `schools` and `users` from `LAKE/dims/` (CSV or Parquet).
//!
//! Each roster is exposed as a view with a fixed column list (see
//! [`super::schemas::SCHOOLS`] and [`super::schemas::USERS`]): ids are
//! strings whatever the file holds, a missing optional column is null, and
//! columns the file has beyond those come after them. `users` is read lazily
//! at each query, like the Parquet tables; `schools` (thousands of rows even
//! for a province) is read once at registration into memory, so the planner
//! knows it is small and builds joins with the big tables on it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, TableProvider, ViewTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, ident, lit};
use datafusion::prelude::SessionContext;

use super::schemas::{RosterColumn, roster_schema};
use crate::error::QueryError;

/// When a roster's rows are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadRows {
    /// Once, at registration, into memory: the planner then knows the
    /// table's size (joins are built on the small side).
    AtRegistration,
    /// At each query, like the Parquet tables (a roster too big to hold).
    AtEachQuery,
}

/// Register the roster `name` (`schools` or `users`) from
/// `dims/<name>.parquet` if present, else `dims/<name>.csv`, else as an empty
/// table with the declared columns.
pub(crate) async fn register_roster(
    ctx: &SessionContext,
    root: &str,
    name: &str,
    columns: &[RosterColumn],
    read: ReadRows,
) -> Result<(), QueryError> {
    let dims = Path::new(root).join("dims");
    let parquet = dims.join(format!("{name}.parquet"));
    let csv = dims.join(format!("{name}.csv"));
    let provider: Arc<dyn TableProvider> = if parquet.is_file() {
        let raw = parquet_table(ctx, &parquet).await?;
        project(name, &parquet, raw, columns)?
    } else if csv.is_file() {
        let raw = csv_table(&csv, columns)?;
        project(name, &csv, raw, columns)?
    } else {
        Arc::new(MemTable::try_new(roster_schema(columns), vec![vec![]])?)
    };
    let provider = match read {
        ReadRows::AtRegistration => in_memory(ctx, provider).await?,
        ReadRows::AtEachQuery => provider,
    };
    ctx.register_table(name, provider)?;
    Ok(())
}

/// The rows of `provider` read now into a table in memory (which gives the
/// planner its exact size).
async fn in_memory(
    ctx: &SessionContext,
    provider: Arc<dyn TableProvider>,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let schema = provider.schema();
    let batches = ctx.read_table(provider)?.collect().await?;
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

fn lake_err(path: &Path, message: impl std::fmt::Display) -> QueryError {
    QueryError::Lake(format!("{}: {message}", path.display()))
}

fn file_url(path: &Path) -> Result<ListingTableUrl, QueryError> {
    let text = path
        .to_str()
        .ok_or_else(|| lake_err(path, "path is not UTF-8"))?;
    ListingTableUrl::parse(text).map_err(|e| lake_err(path, e))
}

/// A listing table over one CSV file whose schema is its header, with the
/// declared type for known columns (so `0330001234` stays a string) and
/// Utf8 for the others.
fn csv_table(path: &Path, columns: &[RosterColumn]) -> Result<Arc<dyn TableProvider>, QueryError> {
    let header = read_csv_header(path)?;
    let fields: Vec<Field> = header
        .iter()
        .map(|name| {
            let data_type = columns
                .iter()
                .find(|c| c.name == name)
                .map_or(DataType::Utf8, |c| c.data_type.data_type());
            Field::new(name, data_type, true)
        })
        .collect();
    let format = CsvFormat::default()
        .with_has_header(true)
        .with_truncated_rows(true);
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".csv");
    let config = ListingTableConfig::new(file_url(path)?)
        .with_listing_options(options)
        .with_schema(Arc::new(Schema::new(fields)));
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Column names of a CSV header, trimmed, without a UTF-8 byte order mark
/// (spreadsheets write one).
fn read_csv_header(path: &Path) -> Result<Vec<String>, QueryError> {
    let file = File::open(path).map_err(|e| lake_err(path, e))?;
    let (schema, _) = Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(file), Some(0))
        .map_err(|e| lake_err(path, e))?;
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(lake_err(path, "no header row"));
    }
    Ok(names)
}

/// A listing table over one Parquet file with the file's own schema.
async fn parquet_table(
    ctx: &SessionContext,
    path: &Path,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let format = ParquetFormat::default().with_force_view_types(false);
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let url = file_url(path)?;
    let schema = options
        .infer_schema(&ctx.state(), &url)
        .await
        .map_err(|e| lake_err(path, e))?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// A view over `raw` exposing the declared columns first (cast to their
/// declared types; null when the file lacks an optional one), then any other
/// columns of the file.
fn project(
    name: &str,
    path: &Path,
    raw: Arc<dyn TableProvider>,
    columns: &[RosterColumn],
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let raw_schema: SchemaRef = raw.schema();
    let has = |column: &str| raw_schema.fields().iter().any(|f| f.name() == column);
    let mut exprs: Vec<Expr> = Vec::with_capacity(raw_schema.fields().len() + columns.len());
    for column in columns {
        let data_type = column.data_type.data_type();
        let expr = if has(column.name) {
            cast(ident(column.name), data_type)
        } else if column.required {
            return Err(lake_err(
                path,
                format!("the {name} roster has no column {}", column.name),
            ));
        } else {
            lit(ScalarValue::try_from(&data_type)?)
        };
        exprs.push(expr.alias(column.name));
    }
    for field in raw_schema.fields() {
        if !columns.iter().any(|c| c.name == field.name()) {
            exprs.push(ident(field.name()));
        }
    }
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(raw), None)?
        .project(exprs)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

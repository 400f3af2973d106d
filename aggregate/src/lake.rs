//! Table registration: the lake's silver tables as DataFusion listing tables
//! with Hive partitions, and the rosters as in-memory tables.
//!
//! This is the one module of the crate that knows how tables are registered.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{AggregateError, Result};
use crate::roster::Rosters;

/// Schema of the `daily_scores` files (the partition column `day` is not in
/// the files), as the ingest writes them.
pub fn daily_scores_file_schema() -> SchemaRef {
    huoyue_schemas::lake::daily_scores()
}

/// Schema of the `daily_activity` files (without `day`).
pub fn daily_activity_file_schema() -> SchemaRef {
    huoyue_schemas::lake::daily_activity()
}

/// A session for the monthly job: statistics collection at planning time is
/// off (a month of a streaming lake has hundreds of thousands of small files
/// and the queries here do not need their footers before scanning).
pub fn session() -> SessionContext {
    let config = SessionConfig::new()
        .set_bool("datafusion.execution.collect_statistics", false)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    // every query lists the partitions afresh: DataFusion's listing cache
    // (on by default, for the session's life) would keep listing a file
    // compaction swapped away, and a read again would fail again
    let runtime = RuntimeEnvBuilder::new()
        .with_object_list_cache_limit(0)
        .build_arc()
        .expect("a runtime without a memory limit");
    SessionContext::new_with_config_rt(config, runtime)
}

/// Registers `daily_scores` and `daily_activity` of `lake` (each possibly
/// absent: an absent table is registered empty).
pub async fn register_day_tables(ctx: &SessionContext, lake: &Path) -> Result<()> {
    register_day_table(ctx, lake, "daily_scores", daily_scores_file_schema()).await?;
    register_day_table(ctx, lake, "daily_activity", daily_activity_file_schema()).await
}

/// Registers the rosters as `schools` and `users`.
pub fn register_rosters(ctx: &SessionContext, rosters: &Rosters) -> Result<()> {
    register_batch(ctx, "schools", rosters.schools.clone())?;
    register_batch(ctx, "users", rosters.users.clone())
}

/// Registers `LAKE/<table>/day=…/*.parquet` with the partition column `day`
/// (Date32). Folders and files starting with `.` or `_` are not partitions of
/// the form `day=…` and are ignored by the listing; a `day=` folder whose
/// value is not a date is refused by name (it would fail every scan).
pub async fn register_day_table(
    ctx: &SessionContext,
    lake: &Path,
    table: &str,
    file_schema: SchemaRef,
) -> Result<()> {
    let dir = lake.join(table);
    if !dir.is_dir() {
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("day", DataType::Date32, false));
        let schema = Arc::new(Schema::new(fields));
        ctx.register_table(table, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        return Ok(());
    }
    if let Some(bad) = huoyue_schemas::lake::bad_day_folder(lake, &[table]) {
        return Err(AggregateError::InvalidLake(format!(
            "{}/{bad}",
            lake.display()
        )));
    }
    // strings are read as views (no copy out of the pages; faster grouping)
    let file_schema = Arc::new(Schema::new(
        file_schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<Field>>(),
    ));
    let url = ListingTableUrl::parse(dir_url(&dir)?)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("day".to_string(), DataType::Date32)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    ctx.register_table(table, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Registers one in-memory batch as a table (replacing any table of that name).
pub fn register_batch(
    ctx: &SessionContext,
    name: &str,
    batch: datafusion::arrow::array::RecordBatch,
) -> Result<()> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Registers batches (all of one schema) as a table, replacing any table of
/// that name.
pub fn register_batches(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> Result<()> {
    let table = MemTable::try_new(schema, vec![batches])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// The absolute path of a folder, with a trailing `/`, as DataFusion wants a
/// folder URL.
fn dir_url(dir: &Path) -> Result<String> {
    let abs = std::path::absolute(dir).map_err(|e| AggregateError::Io {
        context: format!("resolving {}", dir.display()),
        source: e,
    })?;
    let s = abs
        .to_str()
        .ok_or_else(|| AggregateError::Internal(format!("path {} is not UTF-8", abs.display())))?;
    Ok(if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    })
}

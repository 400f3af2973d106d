//! Hive-partitioned listing tables over the lake's Parquet folders.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::error::QueryError;

/// Glob applied to the first path segment below a table's partition folders:
/// names starting with `.` or `_` are never data (temporary files, locks,
/// compaction scratch; docs/lake-layout.md).
pub(crate) const DATA_FILE_GLOB: &str = "[!._]*";

/// Where a table's files live, with the glob that skips `.`/`_` names.
///
/// `root` is the canonical lake directory without glob characters (checked
/// by [`super::LakeRoot`]).
pub(crate) fn table_url(root: &str, table: &str) -> Result<ListingTableUrl, QueryError> {
    ListingTableUrl::parse(format!("{root}/{table}/{DATA_FILE_GLOB}"))
        .map_err(|e| QueryError::Lake(format!("{root}/{table}: {e}")))
}

fn parquet_options(partition: &str, partition_type: DataType) -> ListingOptions {
    // Inferred strings as Utf8, like the declared tables (not Utf8View).
    let format = ParquetFormat::default().with_force_view_types(false);
    ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(partition.to_owned(), partition_type)])
}

/// Register `table` as a listing table over `root/table/<partition>=<value>/*.parquet`
/// with the declared file schema. A folder that does not exist yet is an
/// empty table. Files are listed again at every scan, and filters on the
/// partition column skip folders.
pub(crate) fn register_declared(
    ctx: &SessionContext,
    root: &str,
    table: &str,
    partition: (&str, DataType),
    file_schema: SchemaRef,
) -> Result<(), QueryError> {
    let url = table_url(root, table)?;
    let options = parquet_options(partition.0, partition.1);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    let provider = ListingTable::try_new(config)?;
    ctx.register_table(table, Arc::new(provider))?;
    Ok(())
}

/// Register a table written by our own monthly job: its file schema is read
/// from the files present now (merged over all of them); with no files the
/// table has only its partition column and no rows.
pub(crate) async fn register_inferred(
    ctx: &SessionContext,
    root: &str,
    table: &str,
    partition: (&str, DataType),
) -> Result<(), QueryError> {
    let url = table_url(root, table)?;
    let options = parquet_options(partition.0, partition.1);
    let table_dir = Path::new(root).join(table);
    let file_schema = infer_file_schema(ctx, &options, &url, &table_dir, partition.0)
        .await
        .map_err(|e| QueryError::Lake(format!("{table}: cannot read the schema: {e}")))?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    let provider = ListingTable::try_new(config)?;
    ctx.register_table(table, Arc::new(provider))?;
    Ok(())
}

async fn infer_file_schema(
    ctx: &SessionContext,
    options: &ListingOptions,
    url: &ListingTableUrl,
    table_dir: &Path,
    partition: &str,
) -> datafusion::error::Result<SchemaRef> {
    if !has_data_file(table_dir)? {
        return Ok(Arc::new(Schema::empty()));
    }
    let state = ctx.state();
    let schema = options.infer_schema(&state, url).await?;
    // A writer that also stored the partition column in the files must not
    // clash with the column taken from the folder name. Every column is
    // nullable: a month written under another profile has other
    // `points_<rule>` columns, which read as NULL in the other months' rows.
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != partition)
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// Whether `table_dir/<col>=<value>/` holds a non-empty data file (a
/// `*.parquet` whose name does not start with `.` or `_`).
fn has_data_file(table_dir: &Path) -> std::io::Result<bool> {
    let partitions = match std::fs::read_dir(table_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for partition in partitions {
        let partition = partition?;
        let name = partition.file_name();
        let name = name.to_string_lossy();
        if is_hidden(&name) || !name.contains('=') || !partition.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(partition.path())? {
            let file = file?;
            let name = file.file_name();
            let name = name.to_string_lossy();
            if !is_hidden(&name)
                && name.ends_with(".parquet")
                && file.metadata().is_ok_and(|m| m.is_file() && m.len() > 0)
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

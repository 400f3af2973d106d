//! Writing Parquet files as the lake wants them (lake-layout.md): zstd,
//! statistics on, fsynced.

use std::fs::File;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{IoContext, Result};

/// Writer properties of every file this crate writes.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

/// Writes `batch` to a new file at `path` and fsyncs it.
pub fn parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = File::create(path).context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all()
        .context(|| format!("syncing {}", path.display()))
}

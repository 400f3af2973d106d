//! The background thread that encodes Parquet files and makes them durable.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::LakeError;
use super::publish::publish_file;

/// One file to write.
pub struct Job {
    pub table: &'static str,
    pub day: i32,
    pub dir: PathBuf,
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// A file that is durable under its final name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    pub table: &'static str,
    pub day: i32,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

enum Msg {
    Write(Job),
    Sync(SyncSender<Result<Vec<WrittenFile>, LakeError>>),
}

/// Files in flight at most before `submit` blocks.
const QUEUE: usize = 8;

pub struct Encoder {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Encoder {
    pub fn start() -> Encoder {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("lake-encoder".into())
            .spawn(move || run(rx))
            .expect("spawn the encoder thread");
        Encoder {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn submit(&mut self, job: Job) -> Result<(), LakeError> {
        self.tx
            .as_ref()
            .ok_or(LakeError::EncoderGone)?
            .send(Msg::Write(job))
            .map_err(|_| LakeError::EncoderGone)
    }

    pub fn sync(&mut self) -> Result<Vec<WrittenFile>, LakeError> {
        let (tx, rx) = sync_channel(1);
        self.tx
            .as_ref()
            .ok_or(LakeError::EncoderGone)?
            .send(Msg::Sync(tx))
            .map_err(|_| LakeError::EncoderGone)?;
        rx.recv().map_err(|_| LakeError::EncoderGone)?
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<Msg>) {
    let mut done: Vec<WrittenFile> = Vec::new();
    let mut failed: Option<LakeError> = None;
    for msg in rx {
        match msg {
            Msg::Write(job) => {
                if failed.is_some() {
                    continue;
                }
                match write(job) {
                    Ok(f) => done.push(f),
                    Err(e) => failed = Some(e),
                }
            }
            Msg::Sync(reply) => {
                let result = match failed.take() {
                    Some(e) => Err(e),
                    None => Ok(std::mem::take(&mut done)),
                };
                let _ = reply.send(result);
            }
        }
    }
}

/// The writer settings: plain Parquet that DuckDB and Spark read, zstd, statistics.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("zstd level 1"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by("huoyue".into())
        .build()
}

fn write(job: Job) -> Result<WrittenFile, LakeError> {
    let io = |path: &PathBuf| {
        let path = path.display().to_string();
        move |source| LakeError::Io { path, source }
    };
    std::fs::create_dir_all(&job.dir).map_err(io(&job.dir))?;
    let tmp = job.dir.join(format!(".{}.tmp", job.name));
    let dest = job.dir.join(&job.name);
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let pq = |source| LakeError::Parquet {
        path: tmp.display().to_string(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(file, job.schema.clone(), Some(writer_properties())).map_err(pq)?;
    let mut rows = 0u64;
    for b in &job.batches {
        rows += b.num_rows() as u64;
        writer.write(b).map_err(pq)?;
    }
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(io(&tmp))?;
    let bytes = file.metadata().map_err(io(&tmp))?.len();
    drop(file);
    publish_file(&tmp, &dest).map_err(io(&dest))?;
    Ok(WrittenFile {
        table: job.table,
        day: job.day,
        path: dest,
        rows,
        bytes,
    })
}

//! The background thread that encodes Parquet files and makes them durable.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
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
    /// Rename to the final name once durable; `false` leaves the file staged
    /// under its temporary name for the caller to publish (Kafka checkpoints).
    pub publish: bool,
}

/// A durable file: under its final name, or staged under a temporary name
/// until the caller publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    pub table: &'static str,
    pub day: i32,
    /// The final name.
    pub path: PathBuf,
    /// The temporary name while the file is not yet published.
    pub staged: Option<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
}

/// Encoder threads: files are independent, so they encode in parallel.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

pub struct Encoder {
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<WrittenFile, LakeError>>,
    /// Files submitted and not yet finished.
    submitted: usize,
    /// Files finished since the last completed sync, and the first error.
    done: Vec<WrittenFile>,
    failed: Option<LakeError>,
    threads: Vec<JoinHandle<()>>,
}

impl Encoder {
    pub fn start() -> Encoder {
        let (jobs, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let (result_tx, results) = channel();
        let threads = (0..workers())
            .map(|i| {
                let rx = Arc::clone(&rx);
                let tx = result_tx.clone();
                std::thread::Builder::new()
                    .name(format!("lake-encoder-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock().expect("encoder queue").recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            };
                            if tx.send(write(job)).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn an encoder thread")
            })
            .collect();
        Encoder {
            jobs: Some(jobs),
            results,
            submitted: 0,
            done: Vec::new(),
            failed: None,
            threads,
        }
    }

    /// Queues a file. The queue is not bounded here: a flush's rows are in
    /// memory already, and [`Encoder::drain`] bounds how many flushes queue.
    pub fn submit(&mut self, job: Job) -> Result<(), LakeError> {
        self.jobs
            .as_ref()
            .ok_or(LakeError::EncoderGone)?
            .send(job)
            .map_err(|_| LakeError::EncoderGone)?;
        self.submitted += 1;
        Ok(())
    }

    /// Waits for every submitted file; returns them, or the first error once all
    /// have finished.
    pub fn sync(&mut self) -> Result<Vec<WrittenFile>, LakeError> {
        self.drain()?;
        self.completed()
    }

    /// Waits until every file submitted so far is written, keeping the results
    /// for the next [`Encoder::sync`] (backpressure between flushes).
    pub fn drain(&mut self) -> Result<(), LakeError> {
        while self.submitted > 0 {
            let r = self.results.recv().map_err(|_| LakeError::EncoderGone)?;
            self.finished(r);
        }
        Ok(())
    }

    /// [`Encoder::sync`] without waiting: `None` while a submitted file is
    /// still being written.
    pub fn try_sync(&mut self) -> Option<Result<Vec<WrittenFile>, LakeError>> {
        while self.submitted > 0 {
            match self.results.try_recv() {
                Ok(r) => self.finished(r),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Err(LakeError::EncoderGone)),
            }
        }
        Some(self.completed())
    }

    fn finished(&mut self, r: Result<WrittenFile, LakeError>) {
        self.submitted -= 1;
        match r {
            Ok(f) => self.done.push(f),
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
    }

    fn completed(&mut self) -> Result<Vec<WrittenFile>, LakeError> {
        let done = std::mem::take(&mut self.done);
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
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
        // unique per row: a dictionary is wasted work
        .set_column_dictionary_enabled("event_id".into(), false)
        .set_column_dictionary_enabled("ts".into(), false)
        .set_column_dictionary_enabled("offset".into(), false)
        .set_column_dictionary_enabled("raw".into(), false)
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
    let staged = if job.publish {
        publish_file(&tmp, &dest).map_err(io(&dest))?;
        None
    } else {
        Some(tmp)
    };
    Ok(WrittenFile {
        table: job.table,
        day: job.day,
        path: dest,
        staged,
        rows,
        bytes,
    })
}

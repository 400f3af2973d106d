//! The background threads that encode Parquet files and make them durable.
//!
//! A file is either handed over whole ([`Encoder::submit`]) or streamed:
//! opened ([`Encoder::open`]), written batch by batch as its rows arrive
//! ([`Encoder::write`]) and finished ([`Encoder::close`]). Streaming lets the
//! `events` files of a flush encode while the rows of that flush are still
//! being scored, instead of all at the flush. Each file stays on one thread.
//! A closed file is made durable (fsync, rename) by its encoder's companion
//! thread, so the encoder goes on with the next file while the disk syncs.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
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
    /// The temporary name it is staged under, if not published yet.
    pub staged: Option<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
}

/// A streamed file, as numbered by [`Encoder::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(u64);

/// What an encoder thread is asked to do, in order.
enum Task {
    Whole(Job),
    Open(FileId, Job),
    /// The rows of the batch that `Keep` selects; the selection is applied
    /// on the encoder thread, so the thread that scores rows never copies them.
    Write(FileId, RecordBatch, Keep),
    Close(FileId),
}

/// Which rows of a batch go to a streamed file.
pub enum Keep {
    All,
    /// Those whose bit is set (most of them).
    Mask(BooleanArray),
    /// These, in order (a few).
    Rows(UInt32Array),
}

/// Tasks queued per encoder thread before the caller waits (backpressure:
/// rows wait here as Arrow batches, at most this many per thread).
const QUEUE: usize = 16;

/// Encoder threads: files are independent, so they encode in parallel.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

pub struct Encoder {
    /// One queue per thread.
    queues: Vec<SyncSender<Task>>,
    results: Receiver<Result<WrittenFile, LakeError>>,
    /// Files submitted or closed and not yet finished.
    submitted: usize,
    /// Files finished since the last completed sync, and the first error.
    done: Vec<WrittenFile>,
    failed: Option<LakeError>,
    /// The thread each open file is on.
    open: HashMap<FileId, usize>,
    /// Files opened on each thread and not yet closed; where the next goes.
    open_per_thread: Vec<usize>,
    next_file: u64,
    /// The thread the next whole file goes to.
    next_whole: usize,
    threads: Vec<JoinHandle<()>>,
}

impl Encoder {
    pub fn start() -> Encoder {
        let (result_tx, results) = channel();
        let mut queues = Vec::new();
        let threads = (0..workers())
            .map(|i| {
                let (tx, rx) = sync_channel::<Task>(QUEUE);
                queues.push(tx);
                let results = result_tx.clone();
                std::thread::Builder::new()
                    .name(format!("lake-encoder-{i}"))
                    .spawn(move || encode(i, rx, results))
                    .expect("spawn an encoder thread")
            })
            .collect();
        Encoder {
            open_per_thread: vec![0; queues.len()],
            queues,
            results,
            submitted: 0,
            done: Vec::new(),
            failed: None,
            open: HashMap::new(),
            next_file: 0,
            next_whole: 0,
            threads,
        }
    }

    /// Queues `task`; whether its thread took it (if not, [`Encoder::sync`]
    /// reports the encoder gone).
    fn send(&mut self, thread: usize, task: Task) -> bool {
        let sent = self.queues[thread].send(task).is_ok();
        if !sent {
            self.failed.get_or_insert(LakeError::EncoderGone);
        }
        sent
    }

    /// Queues a whole file.
    pub fn submit(&mut self, job: Job) {
        let thread = self.next_whole;
        self.next_whole = (thread + 1) % self.queues.len();
        if self.send(thread, Task::Whole(job)) {
            self.submitted += 1;
        }
    }

    /// Starts a streamed file (with `job.batches`, if any, as its first rows),
    /// on the thread with the fewest open files.
    pub fn open(&mut self, job: Job) -> FileId {
        let id = FileId(self.next_file);
        self.next_file += 1;
        let thread = (0..self.open_per_thread.len())
            .min_by_key(|&t| self.open_per_thread[t])
            .expect("at least one thread");
        self.open_per_thread[thread] += 1;
        self.open.insert(id, thread);
        self.send(thread, Task::Open(id, job));
        id
    }

    /// Appends the rows of `batch` that `keep` selects to an open file.
    /// Waits while its thread is [`QUEUE`] tasks behind.
    pub fn write(&mut self, file: FileId, batch: RecordBatch, keep: Keep) {
        let thread = self.open[&file];
        self.send(thread, Task::Write(file, batch, keep));
    }

    /// Finishes an open file: it is then written like a submitted one.
    pub fn close(&mut self, file: FileId) {
        let thread = self.open.remove(&file).expect("an open file");
        self.open_per_thread[thread] -= 1;
        if self.send(thread, Task::Close(file)) {
            self.submitted += 1;
        }
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
    /// Files queued whole are still written; streamed files never closed are
    /// abandoned (their temporary files removed).
    fn drop(&mut self) {
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Integer columns written delta-encoded and uncompressed, without a
/// dictionary: instants in nearly ascending order, and line or message offsets
/// in ascending order (1.4% of a 15-school month's ingest instructions, and
/// its `events` files 19% smaller, than plain and Snappy). DuckDB, DataFusion,
/// Arrow and Spark 3.3 or later read the encoding. The counts and points of
/// the daily tables keep the default dictionary (docs/decisions.md).
const DELTA_COLUMNS: [&str; 2] = ["ts", "offset"];

/// String columns without a dictionary: `event_id` and `raw` are unique per
/// row; ids of users, resources, lessons and tasks repeat little within a
/// file, and interning them cost about 8% of the encoders' time for no
/// smaller file (zstd finds the repeats).
const PLAIN_STRINGS: [&str; 8] = [
    "event_id",
    "raw",
    "user_id",
    "owner_id",
    "resource_id",
    "counterpart_id",
    "lesson_id",
    "task_id",
];

/// The writer settings: Parquet that DuckDB and Spark read, Snappy,
/// statistics.
pub fn writer_properties() -> WriterProperties {
    let mut props = WriterProperties::builder()
        // Snappy, not zstd: zstd was about a third of the encoders' work (a
        // tenth of a file run's); compaction rewrites the files with zstd
        .set_compression(Compression::SNAPPY)
        // min/max per row group, not per page: a flush's files are small (one
        // row group) and compaction rewrites them with page statistics; the
        // page index cost the encoders about a tenth of their time
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by("huoyue".into());
    for c in PLAIN_STRINGS {
        props = props.set_column_dictionary_enabled(c.into(), false);
    }
    for c in DELTA_COLUMNS {
        props = props
            .set_column_dictionary_enabled(c.into(), false)
            .set_column_encoding(c.into(), Encoding::DELTA_BINARY_PACKED)
            .set_column_compression(c.into(), Compression::UNCOMPRESSED);
    }
    props.build()
}

/// Files an encoder thread may have closed that its companion has not yet
/// made durable. Each holds an open file: unbounded, a flush of a history
/// file spanning 1,200 days queued some 2,400 small files behind their
/// fsyncs and ran out of file descriptors under a limit of 1,024.
const MAX_UNSYNCED: usize = 64;

/// An encoder thread: runs its tasks in order until its queue closes. The
/// files it closes go to a companion thread that makes them durable and sends
/// the results: an fsync waits for the disk, and meanwhile this thread encodes
/// (it used to wait too, and with it the rows queued behind, and the scoring
/// thread once its queue was full), up to [`MAX_UNSYNCED`] files ahead.
fn encode(i: usize, tasks: Receiver<Task>, results: Sender<Result<WrittenFile, LakeError>>) {
    let (closed, to_sync) = sync_channel::<Result<Closed, LakeError>>(MAX_UNSYNCED);
    let syncer = std::thread::Builder::new()
        .name(format!("lake-sync-{i}"))
        .spawn(move || {
            for c in to_sync {
                if results.send(c.and_then(Closed::durable)).is_err() {
                    break;
                }
            }
        })
        .expect("spawn a sync thread");
    let mut open: HashMap<FileId, Result<Stream, LakeError>> = HashMap::new();
    for task in tasks {
        let result = match task {
            Task::Whole(job) => Stream::start(job).and_then(Stream::close),
            Task::Open(id, job) => {
                open.insert(id, Stream::start(job));
                continue;
            }
            Task::Write(id, batch, keep) => {
                let stream = open.get_mut(&id).expect("written files are open");
                if let Ok(s) = stream
                    && let Err(e) = s.write_selected(batch, keep)
                {
                    *stream = Err(e);
                }
                continue;
            }
            Task::Close(id) => open
                .remove(&id)
                .expect("closed files are open")
                .and_then(Stream::close),
        };
        if closed.send(result).is_err() {
            break;
        }
    }
    for s in open.into_values().flatten() {
        let _ = std::fs::remove_file(&s.file.tmp);
    }
    drop(closed);
    let _ = syncer.join();
}

/// A file under its temporary name: being written (`W` an [`ArrowWriter`]),
/// or all written and not yet durable ([`Closed`]).
struct Stream<W = ArrowWriter<File>> {
    out: W,
    file: Target,
}

/// A file being written: where it goes and what it holds.
struct Target {
    tmp: PathBuf,
    dest: PathBuf,
    table: &'static str,
    day: i32,
    publish: bool,
    rows: u64,
}

/// A file whose bytes are all written, not yet durable.
type Closed = Stream<File>;

impl Stream {
    fn start(job: Job) -> Result<Stream, LakeError> {
        std::fs::create_dir_all(&job.dir).map_err(io(&job.dir))?;
        let tmp = job.dir.join(format!(".{}.tmp", job.name));
        let dest = job.dir.join(&job.name);
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let out = ArrowWriter::try_new(file, job.schema.clone(), Some(writer_properties()))
            .map_err(pq(&tmp))?;
        let mut s = Stream {
            out,
            file: Target {
                tmp,
                dest,
                table: job.table,
                day: job.day,
                publish: job.publish,
                rows: 0,
            },
        };
        for b in &job.batches {
            s.write(b)?;
        }
        Ok(s)
    }

    fn write_selected(&mut self, batch: RecordBatch, keep: Keep) -> Result<(), LakeError> {
        let batch = match keep {
            Keep::All => batch,
            Keep::Mask(m) => filter_record_batch(&batch, &m).expect("a mask per row"),
            Keep::Rows(i) => take_record_batch(&batch, &i).expect("rows of the batch"),
        };
        self.write(&batch)
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.file.rows += batch.num_rows() as u64;
        self.out.write(batch).map_err(pq(&self.file.tmp))
    }

    /// Writes the file's footer; [`Closed::durable`] does the rest.
    fn close(self) -> Result<Closed, LakeError> {
        let out = self.out.into_inner().map_err(pq(&self.file.tmp))?;
        Ok(Stream {
            out,
            file: self.file,
        })
    }
}

impl Closed {
    /// Makes the file durable and publishes it (or leaves it staged).
    fn durable(self) -> Result<WrittenFile, LakeError> {
        let Target {
            tmp,
            dest,
            table,
            day,
            publish,
            rows,
        } = self.file;
        self.out.sync_all().map_err(io(&tmp))?;
        let bytes = self.out.metadata().map_err(io(&tmp))?.len();
        drop(self.out);
        let staged = if publish {
            publish_file(&tmp, &dest).map_err(io(&dest))?;
            None
        } else {
            Some(tmp)
        };
        Ok(WrittenFile {
            table,
            day,
            path: dest,
            staged,
            rows,
            bytes,
        })
    }
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LakeError {
    let path = path.display().to_string();
    move |source| LakeError::Io { path, source }
}

fn pq(path: &std::path::Path) -> impl FnOnce(parquet::errors::ParquetError) -> LakeError {
    let path = path.display().to_string();
    move |source| LakeError::Parquet { path, source }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, Encoding};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::writer_properties;

    /// Each column's encodings and compression in a file written with the
    /// ingest's settings.
    fn written(batch: &RecordBatch) -> Vec<(String, Vec<Encoding>, Compression)> {
        let file = tempfile::tempfile().unwrap();
        let mut w = ArrowWriter::try_new(
            file.try_clone().unwrap(),
            batch.schema(),
            Some(writer_properties()),
        )
        .unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let rg = reader.metadata().row_group(0);
        rg.columns()
            .iter()
            .map(|c| {
                (
                    c.column_path().string(),
                    c.encodings().collect(),
                    c.compression(),
                )
            })
            .collect()
    }

    #[test]
    fn instants_are_delta_encoded_and_ids_have_no_dictionary() {
        let n = 1000;
        let column = |values: Vec<i64>| Arc::new(Int64Array::from(values)) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("u{i}")),
                )) as ArrayRef,
            ),
            (
                "role",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| if i % 3 == 0 { "student" } else { "teacher" }),
                )),
            ),
            ("ts", column((0..n).map(|i| 1_000_000 * i).collect())),
            ("points", column((0..n).map(|i| i % 4).collect())),
        ])
        .unwrap();
        for (column, encodings, compression) in written(&batch) {
            let dictionary = encodings.contains(&Encoding::RLE_DICTIONARY);
            let delta = encodings.contains(&Encoding::DELTA_BINARY_PACKED);
            match column.as_str() {
                "ts" => {
                    assert!(delta && !dictionary, "{column}: {encodings:?}");
                    assert_eq!(compression, Compression::UNCOMPRESSED, "{column}");
                }
                "user_id" => assert!(!dictionary && !delta, "{column}: {encodings:?}"),
                "role" | "points" => {
                    assert!(dictionary && !delta, "{column}: {encodings:?}");
                    assert_eq!(compression, Compression::SNAPPY, "{column}");
                }
                other => panic!("unexpected column {other}"),
            }
        }
    }
}

//! File mode: NDJSON from a file or standard input until its end.
//!
//! A reader thread cuts the input into chunks at line ends, decoder threads decode
//! them in parallel, and the calling thread feeds them in order to the pipeline;
//! the lake writer encodes on its own thread.
//!
//! The file runs of a lake are one stream ([`FileState`]): each run starts from
//! the engine state the last one left (streaks, lifetime caps, remembered ids
//! and the lateness window go on across files), and a run is atomic. Its files
//! stay staged until its end, when they and the engine state become one
//! checkpoint, `LAKE/_checkpoints/file/state.ckpt`, and are published; a run
//! that fails leaves the lake and the state as they were.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huoyue_schemas::lake::INGEST_TABLES;
use huoyue_schemas::profile::Profile;

use super::decode::{Span, decode_chunk, line_spans};
use super::{Counts, DecodedChunk, Pipeline};
use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::engine::{Engine, EngineConfig, EngineStats};
use crate::lake_writer::publish::PartitionLock;
use crate::lake_writer::{LakeError, WrittenFile};

/// How a file run flushes.
#[derive(Clone, Copy, Debug)]
pub struct FileOptions {
    /// Flush at least this often (wall time).
    pub flush_interval: Duration,
    /// Flush when this many rows are buffered (bounds memory).
    pub flush_rows: usize,
    /// Decoder threads.
    pub decoders: usize,
    /// Bytes per chunk handed to a decoder.
    pub chunk_bytes: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            flush_interval: Duration::from_secs(10),
            flush_rows: 500_000,
            decoders: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, 4),
            chunk_bytes: 4 << 20,
        }
    }
}

/// How far a file run is, reported after each chunk it scores.
pub struct Progress<'a> {
    pub counts: &'a Counts,
    /// Input bytes scored.
    pub fed: u64,
    /// The newest event time of the chunk (µs since the epoch).
    pub newest: Option<i64>,
    /// Set when a flush followed the chunk: how long it took, and the
    /// engine's size after it.
    pub flushed: Option<(Duration, EngineStats)>,
}

/// A file run's end: the files it published, and its checkpoint's time.
pub struct Published {
    pub files: Vec<WrittenFile>,
    /// Writing the checkpoint and publishing the files, in seconds.
    pub checkpoint_secs: f64,
    /// The checkpoint file's size.
    pub checkpoint_bytes: u64,
    /// When the files were published (µs since the epoch).
    pub at: i64,
}

/// The ingest clock: microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Why a file run stopped.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {source_name}: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "interrupted: nothing of this run was published; the lake and its state are as they were before it"
    )]
    Interrupted,
    /// A run that failed before its checkpoint: what it staged was removed.
    #[error(
        "{0}; nothing of this run was published: the lake and its state are as they were before it"
    )]
    NotPublished(Box<FileError>),
    /// The input starts as a compressed file does, not as NDJSON: refused
    /// before anything is read into the lake (each line would be rejected).
    #[error(
        "{source_name} is {format}-compressed, not NDJSON: feed it decompressed, e.g. `{tool} FILE | huoyue-ingest --lake DIR --file -`"
    )]
    Compressed {
        source_name: String,
        format: &'static str,
        tool: &'static str,
    },
    #[error("another file run is writing to this lake (it holds {path})")]
    Busy { path: String },
    #[error("cannot lock {path}: {error}")]
    Lock { path: String, error: std::io::Error },
    /// The file runs' state cannot be read: no run can go on until it is
    /// rebuilt from the lake.
    #[error(
        "{error}; rebuild it from the lake's events with `huoyue-aggregate rebuild-state --lake {lake}`"
    )]
    CorruptState {
        error: CheckpointError,
        lake: String,
    },
}

/// Where the file runs of `lake` keep their checkpoint.
pub fn state_dir(lake: &Path) -> PathBuf {
    lake.join(checkpoint::CHECKPOINTS).join("file")
}

/// The checkpoint's instance name (`state.ckpt`, locked by `state.lock`).
pub const STATE: &str = "state";

/// The start of every file run's file names (`file-<run>-<pid>-…`).
pub const FILE_PREFIX: &str = "file-";

/// A lake's file-mode state, held for one run: the lock that keeps other
/// file runs out of the lake, and the checkpoint the last run left.
pub struct FileState {
    lake: PathBuf,
    /// The number of the last run's checkpoint (0: none).
    last_seq: u64,
    /// Held while this value lives.
    _lock: PartitionLock,
}

impl FileState {
    /// Takes the lake's file-mode lock and resumes from the last run's
    /// checkpoint ([`checkpoint::resume`]): the engine it left, or a new one
    /// under `profile` and `cfg` for the lake's first file run.
    pub fn open(
        lake: &Path,
        profile: &Profile,
        cfg: EngineConfig,
    ) -> Result<(FileState, Engine), FileError> {
        let dir = state_dir(lake);
        let lock_path = checkpoint::instance_lock(&dir, STATE).display().to_string();
        let lock = checkpoint::lock_instance(&dir, STATE)
            .map_err(|error| FileError::Lock {
                path: lock_path.clone(),
                error,
            })?
            .ok_or(FileError::Busy { path: lock_path })?;
        let resumed =
            checkpoint::resume(lake, &dir, STATE, FILE_PREFIX, profile, cfg).map_err(|error| {
                match error.is_corrupt() {
                    true => FileError::CorruptState {
                        error,
                        lake: lake.display().to_string(),
                    },
                    false => FileError::Checkpoint(error),
                }
            })?;
        let state = FileState {
            lake: lake.to_owned(),
            last_seq: resumed.last.map_or(0, |c| c.seq),
            _lock: lock,
        };
        Ok((state, resumed.engine))
    }

    /// Runs `input` (named `source`) through the pipeline as [`run_file`]
    /// does, then ends the run: the files it wrote (staged) and the engine's
    /// state become the lake's checkpoint, and the files are published. The
    /// snapshot is written while the encoders finish the last files.
    /// `progress` hears after each chunk scored (and each flush, every
    /// `flush_interval` or `flush_rows`) while the input is read. Once `stop`
    /// is set (a signal) while the input is read, the run ends with
    /// [`FileError::Interrupted`]. A run that stops before
    /// its checkpoint is in place, interrupted or failed (a full disk, an
    /// unreadable input), removes what it staged: the lake and its state stay
    /// as they were, and the error says so ([`FileError::NotPublished`]).
    pub fn run(
        self,
        pipeline: &mut Pipeline,
        input: Box<dyn Read + Send>,
        source: &str,
        opts: FileOptions,
        progress: &mut dyn FnMut(Progress<'_>),
        stop: &AtomicBool,
    ) -> Result<Published, FileError> {
        let (ckpt, files, ckpt_secs, ckpt_bytes) =
            match feed_file(pipeline, input, source, opts, progress, stop)
                .and_then(|()| self.checkpoint(pipeline, source))
            {
                Ok(done) => done,
                // in place: what it lists is published by the next run if not now
                Err(e @ FileError::Checkpoint(CheckpointError::SyncDir { .. })) => return Err(e),
                Err(e) => {
                    // the encoders finish what they were given, then every file
                    // this run staged goes (one still open goes with the writer)
                    let _ = pipeline.sync();
                    let own = format!("{}-", pipeline.file_prefix());
                    let _ = checkpoint::remove_unlisted(&self.lake, INGEST_TABLES, &own, &[]);
                    return Err(match e {
                        FileError::Interrupted => e,
                        e => FileError::NotPublished(Box::new(e)),
                    });
                }
            };
        let started = Instant::now();
        ckpt.roll_forward(&self.lake)?;
        Ok(Published {
            files,
            checkpoint_secs: ckpt_secs + started.elapsed().as_secs_f64(),
            checkpoint_bytes: ckpt_bytes,
            at: now_micros(),
        })
    }

    /// Writes the run's checkpoint (the engine's state and the files staged);
    /// also says how long that took, not counting the wait for the encoders
    /// to finish the files, and its size.
    fn checkpoint(
        &self,
        pipeline: &mut Pipeline,
        source: &str,
    ) -> Result<(Checkpoint, Vec<WrittenFile>, f64, u64), FileError> {
        let dir = state_dir(&self.lake);
        let engine = pipeline.engine();
        let started = Instant::now();
        let begun = Checkpoint::begin(&dir, STATE, |w| engine.snapshot_to(w))?;
        let snapshot_secs = started.elapsed().as_secs_f64();
        let files = pipeline.sync()?;
        let started = Instant::now();
        let ckpt = Checkpoint {
            seq: self.last_seq + 1,
            written_at: now_micros(),
            staged: checkpoint::staged(&self.lake, &files),
            ..Checkpoint::new(STATE, source)
        };
        let bytes = begun.finish(&ckpt)?;
        Ok((
            ckpt,
            files,
            snapshot_secs + started.elapsed().as_secs_f64(),
            bytes,
        ))
    }
}

struct RawChunk {
    seq: u64,
    data: Vec<u8>,
    spans: Vec<Span>,
}

/// Runs `input` (named `source` in the lake's lineage) through the pipeline to its
/// end, flushing and syncing everything before returning the files written.
pub fn run_file(
    pipeline: &mut Pipeline,
    input: Box<dyn Read + Send>,
    source: &str,
    opts: FileOptions,
) -> Result<Vec<WrittenFile>, FileError> {
    feed_file(
        pipeline,
        input,
        source,
        opts,
        &mut |_| {},
        &AtomicBool::new(false),
    )?;
    Ok(pipeline.sync()?)
}

/// [`run_file`] up to its last flush: its files may still be being written.
/// Ends early with [`FileError::Interrupted`] once `stop` is set; the reader
/// and decoder threads are then left behind (the reader may be waiting for
/// input that never comes), for the process to end.
fn feed_file(
    pipeline: &mut Pipeline,
    input: Box<dyn Read + Send>,
    source: &str,
    opts: FileOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    stop: &AtomicBool,
) -> Result<(), FileError> {
    let (raw_tx, raw_rx) = sync_channel::<RawChunk>(opts.decoders * 2);
    let (dec_tx, dec_rx) = sync_channel::<(u64, DecodedChunk)>(opts.decoders * 2);
    // chunk buffers go back to the reader once scored: a fresh 4 MiB buffer
    // per chunk costs a page fault per 4 KiB
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(opts.decoders * 4 + 2);
    let raw_rx = Arc::new(Mutex::new(raw_rx));
    let reader = std::thread::Builder::new()
        .name("file-reader".into())
        .spawn({
            let source = source.to_owned();
            move || read_chunks(input, &source, opts.chunk_bytes, raw_tx, spare_rx)
        })
        .expect("spawn the reader thread");
    let offset = pipeline.engine().offset_seconds();
    let decoders: Vec<_> = (0..opts.decoders)
        .map(|i| {
            let raw_rx = Arc::clone(&raw_rx);
            let dec_tx = dec_tx.clone();
            let source = source.to_owned();
            std::thread::Builder::new()
                .name(format!("decoder-{i}"))
                .spawn(move || decode_loop(&raw_rx, &dec_tx, &source, offset))
                .expect("spawn a decoder thread")
        })
        .collect();
    drop(dec_tx);
    feed_in_order(pipeline, dec_rx, spare_tx, opts, progress, stop)?;
    reader.join().expect("reader thread")?;
    for d in decoders {
        d.join().expect("decoder thread");
    }
    pipeline.flush()?;
    Ok(())
}

fn read_chunks(
    mut input: Box<dyn Read + Send>,
    source: &str,
    chunk_bytes: usize,
    tx: SyncSender<RawChunk>,
    spare: Receiver<Vec<u8>>,
) -> Result<(), FileError> {
    let mut seq = 0;
    let mut at_start = true;
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no: i64 = 1;
    loop {
        // the unfinished line goes at the start of a spare buffer; a long
        // one (still unfinished after a chunk) stays where it is
        let mut data = match spare.try_recv() {
            Ok(mut buf) if carry.len() < chunk_bytes => {
                buf.clear();
                buf.extend_from_slice(&carry);
                carry.clear();
                buf
            }
            _ => std::mem::take(&mut carry),
        };
        let want = data.len() + chunk_bytes;
        data.reserve(chunk_bytes);
        let mut eof = false;
        while data.len() < want {
            let n = input
                .by_ref()
                .take((want - data.len()) as u64)
                .read_to_end(&mut data)
                .map_err(|error| FileError::Read {
                    source_name: source.to_owned(),
                    error,
                })?;
            if n == 0 {
                eof = true;
                break;
            }
        }
        if at_start {
            at_start = false;
            not_compressed(&data, source)?;
            // a byte order mark belongs to the file (Windows tools write
            // one), not to its first line (RFC 8259 lets a parser ignore it)
            if data.starts_with(BOM) {
                data.drain(..BOM.len());
            }
        }
        let mut spans = Vec::new();
        let used = line_spans(&data, eof, &mut spans);
        if !eof && spans.is_empty() {
            // a line longer than a chunk: keep reading until it ends
            carry = data;
            continue;
        }
        for s in &mut spans {
            s.offset = Some(line_no);
            line_no += 1;
        }
        carry.extend_from_slice(&data[used..]);
        data.truncate(used);
        if !spans.is_empty() && tx.send(RawChunk { seq, data, spans }).is_err() {
            return Ok(());
        }
        seq += 1;
        if eof {
            return Ok(());
        }
    }
}

/// Refuses a regular file that starts as a compressed file does, before
/// anything is made of it (the lake is not touched); gives the file back at
/// its start. [`run_file`] checks its input's first bytes too: a pipe or
/// standard input cannot be read ahead (nor rewound) without blocking a stop.
pub fn refuse_compressed(mut f: std::fs::File, source: &str) -> Result<std::fs::File, FileError> {
    let read = |error| FileError::Read {
        source_name: source.to_owned(),
        error,
    };
    let mut head = Vec::with_capacity(16);
    (&mut f).take(16).read_to_end(&mut head).map_err(read)?;
    not_compressed(&head, source)?;
    f.rewind().map_err(read)?;
    Ok(f)
}

fn not_compressed(head: &[u8], source: &str) -> Result<(), FileError> {
    match compression(head) {
        None => Ok(()),
        Some((format, tool)) => Err(FileError::Compressed {
            source_name: source.to_owned(),
            format,
            tool,
        }),
    }
}

/// UTF-8's byte order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// The compression format (and the tool that decompresses it to standard
/// output) whose magic number `head` starts with, if any. No NDJSON line
/// starts with these bytes.
fn compression(head: &[u8]) -> Option<(&'static str, &'static str)> {
    const FORMATS: [(&[u8], &str, &str); 5] = [
        (b"\x1f\x8b", "gzip", "zcat"),
        (b"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
        (b"\xfd7zXZ\x00", "xz", "xzcat"),
        (b"\x04\x22\x4d\x18", "lz4", "lz4cat"),
        (b"PK\x03\x04", "zip", "unzip -p"),
    ];
    // "BZh", the block size 1-9, then the first block's magic (digits of pi):
    // "BZh" alone could start a line of text
    let bzip2 = head.starts_with(b"BZh")
        && head.get(3).is_some_and(u8::is_ascii_digit)
        && head.get(4..10) == Some(b"1AY&SY".as_slice());
    if bzip2 {
        return Some(("bzip2", "bzcat"));
    }
    FORMATS
        .iter()
        .find(|(magic, ..)| head.starts_with(magic))
        .map(|&(_, format, tool)| (format, tool))
}

/// Decodes chunks until the reader is done, each [`DecodedChunk::grouped`]
/// for the engine (`offset`: the profile's, seconds east of UTC).
fn decode_loop(
    rx: &Mutex<Receiver<RawChunk>>,
    tx: &SyncSender<(u64, DecodedChunk)>,
    source: &str,
    offset: i32,
) {
    loop {
        let raw = match rx.lock().expect("decoder queue").recv() {
            Ok(raw) => raw,
            Err(_) => return,
        };
        let chunk = decode_chunk(
            raw.data,
            &raw.spans,
            source.to_owned(),
            super::file::now_micros(),
        )
        .grouped(offset);
        if tx.send((raw.seq, chunk)).is_err() {
            return;
        }
    }
}

fn feed_in_order(
    pipeline: &mut Pipeline,
    rx: Receiver<(u64, DecodedChunk)>,
    spare: SyncSender<Vec<u8>>,
    opts: FileOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    stop: &AtomicBool,
) -> Result<(), FileError> {
    let mut next = 0u64;
    let mut fed_bytes = 0u64;
    let mut waiting: std::collections::BTreeMap<u64, DecodedChunk> = Default::default();
    let mut last_flush = Instant::now();
    loop {
        // a stop is noticed within 100 ms, also while the input is silent
        let (seq, chunk) = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
            Err(RecvTimeoutError::Timeout) => return Err(FileError::Interrupted),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if stop.load(Ordering::Relaxed) {
            return Err(FileError::Interrupted);
        }
        waiting.insert(seq, chunk);
        while let Some(chunk) = waiting.remove(&next) {
            let newest = chunk.times().iter().max().copied();
            let buf = pipeline.apply(chunk);
            fed_bytes += buf.len() as u64;
            // the reader may have ended: then the buffer is just dropped
            let _ = spare.try_send(buf);
            next += 1;
            let flushed = if pipeline.buffered_rows() >= opts.flush_rows
                || last_flush.elapsed() >= opts.flush_interval
            {
                let started = Instant::now();
                pipeline.flush()?;
                last_flush = Instant::now();
                Some((started.elapsed(), pipeline.engine().stats()))
            } else {
                None
            };
            progress(Progress {
                counts: pipeline.counts(),
                fed: fed_bytes,
                newest,
                flushed,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use proptest::prelude::*;

    use super::{RawChunk, compression, read_chunks};

    #[test]
    fn compressed_input_is_told_by_its_magic_number() {
        let formats = |head: &[u8]| compression(head).map(|(format, _)| format);
        assert_eq!(formats(b"\x1f\x8b\x08\x00rest"), Some("gzip"));
        assert_eq!(formats(b"\x28\xb5\x2f\xfd\x04"), Some("zstd"));
        assert_eq!(formats(b"\xfd7zXZ\x00\x00"), Some("xz"));
        assert_eq!(formats(b"\x04\x22\x4d\x18"), Some("lz4"));
        assert_eq!(formats(b"PK\x03\x04"), Some("zip"));
        assert_eq!(formats(b"BZh91AY&SYrest"), Some("bzip2"));
        // lines that merely start alike are NDJSON (each rejected or not)
        for line in [
            &b"BZh hello"[..],
            b"BZh9",
            b"{\"event_id\":1}",
            b"",
            b"\x1f",
            b"PK",
        ] {
            assert_eq!(formats(line), None, "{line:?}");
        }
    }

    /// The lines `read_chunks` hands out when every chunk's buffer comes back
    /// as a spare once read, as the pipeline hands them back.
    fn lines_read(input: Vec<u8>, chunk_bytes: usize) -> Vec<(i64, Vec<u8>)> {
        let (tx, rx) = sync_channel::<RawChunk>(1);
        let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(4);
        let reader = std::thread::spawn(move || {
            read_chunks(
                Box::new(std::io::Cursor::new(input)),
                "test",
                chunk_bytes,
                tx,
                spare_rx,
            )
        });
        let mut lines = Vec::new();
        for (i, chunk) in rx.into_iter().enumerate() {
            assert_eq!(chunk.seq, i as u64);
            for s in &chunk.spans {
                lines.push((s.offset.unwrap(), chunk.data[s.start..s.end].to_vec()));
            }
            // dirty the buffer: what the reader puts in it must not depend
            // on what was there
            let mut data = chunk.data;
            data.iter_mut().for_each(|b| *b = b'#');
            let _ = spare_tx.try_send(data);
        }
        reader.join().unwrap().unwrap();
        lines
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_not_part_of_the_first_line() {
        let input = b"\xef\xbb\xbf{\"a\":1}\n\xef\xbb\xbf{\"b\":2}\n".to_vec();
        let lines = lines_read(input, 4096);
        assert_eq!(lines[0], (1, b"{\"a\":1}".to_vec()));
        // only the file's: one later in the file is the line's own
        assert_eq!(lines[1], (2, b"\xef\xbb\xbf{\"b\":2}".to_vec()));
    }

    proptest! {
        /// Every line comes out once, whole and numbered, whatever the chunk
        /// size, with lines longer than a chunk and reused buffers.
        #[test]
        fn every_line_comes_out_once_in_order(
            lens in prop::collection::vec(0usize..300, 0..60),
            chunk_bytes in 1usize..200,
            final_newline in any::<bool>(),
        ) {
            let want: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|j| b'a' + ((i + j) % 26) as u8).collect())
                .collect();
            let mut input = want.join(&b'\n');
            if final_newline && !want.is_empty() {
                input.push(b'\n');
            }
            let got = lines_read(input, chunk_bytes);
            // an empty last line without its newline is no line
            let mut want = want;
            if !final_newline && want.last().is_some_and(|l| l.is_empty()) {
                want.pop();
            }
            let numbered: Vec<(i64, Vec<u8>)> = want
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i as i64 + 1, l))
                .collect();
            prop_assert_eq!(got, numbered);
        }
    }
}

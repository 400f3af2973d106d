//! File mode: NDJSON from a file or standard input until its end.
//!
//! A reader thread cuts the input into chunks at line ends, decoder threads decode
//! them in parallel, and the calling thread feeds them in order to the pipeline;
//! the lake writer encodes on its own thread.

use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::decode::{Span, decode_chunk, line_spans};
use super::{DecodedChunk, Pipeline};
use crate::lake_writer::LakeError;

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
            flush_rows: 2_000_000,
            decoders: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, 4),
            chunk_bytes: 4 << 20,
        }
    }
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
}

struct RawChunk {
    seq: u64,
    data: Vec<u8>,
    spans: Vec<Span>,
}

/// Runs `input` (named `source` in the lake's lineage) through the pipeline to its
/// end, flushing and syncing everything before returning.
pub fn run_file(
    pipeline: &mut Pipeline,
    input: Box<dyn Read + Send>,
    source: &str,
    opts: FileOptions,
) -> Result<(), FileError> {
    let (raw_tx, raw_rx) = sync_channel::<RawChunk>(opts.decoders * 2);
    let (dec_tx, dec_rx) = sync_channel::<(u64, DecodedChunk)>(opts.decoders * 2);
    let raw_rx = Arc::new(Mutex::new(raw_rx));
    std::thread::scope(|s| -> Result<(), FileError> {
        let reader = s.spawn({
            let source = source.to_owned();
            move || read_chunks(input, &source, opts.chunk_bytes, raw_tx)
        });
        for _ in 0..opts.decoders {
            let raw_rx = Arc::clone(&raw_rx);
            let dec_tx = dec_tx.clone();
            let source = source.to_owned();
            s.spawn(move || decode_loop(&raw_rx, &dec_tx, &source));
        }
        drop(dec_tx);
        let fed = feed_in_order(pipeline, dec_rx, opts);
        let read = reader.join().expect("reader thread");
        fed?;
        read?;
        Ok(())
    })?;
    pipeline.flush()?;
    pipeline.sync()?;
    Ok(())
}

fn read_chunks(
    mut input: Box<dyn Read + Send>,
    source: &str,
    chunk_bytes: usize,
    tx: SyncSender<RawChunk>,
) -> Result<(), FileError> {
    let mut seq = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no: i64 = 1;
    loop {
        let mut data = std::mem::take(&mut carry);
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
        carry = data[used..].to_vec();
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

fn decode_loop(rx: &Mutex<Receiver<RawChunk>>, tx: &SyncSender<(u64, DecodedChunk)>, source: &str) {
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
        );
        if tx.send((raw.seq, chunk)).is_err() {
            return;
        }
    }
}

fn feed_in_order(
    pipeline: &mut Pipeline,
    rx: Receiver<(u64, DecodedChunk)>,
    opts: FileOptions,
) -> Result<(), FileError> {
    let mut next = 0u64;
    let mut waiting: std::collections::BTreeMap<u64, DecodedChunk> = Default::default();
    let mut last_flush = Instant::now();
    for (seq, chunk) in rx {
        waiting.insert(seq, chunk);
        while let Some(chunk) = waiting.remove(&next) {
            pipeline.apply(chunk);
            next += 1;
            if pipeline.buffered_rows() >= opts.flush_rows
                || last_flush.elapsed() >= opts.flush_interval
            {
                pipeline.flush()?;
                last_flush = Instant::now();
            }
        }
    }
    Ok(())
}

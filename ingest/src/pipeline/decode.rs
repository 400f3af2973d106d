//! Raw messages to a [`DecodedChunk`]: valid events as Arrow columns (the rows of
//! `events`), rejections with their bytes. Runs on decoder threads; everything it
//! returns is owned, so chunks travel between threads.

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take_record_batch;

use huoyue_schemas::columns::{EventBatchBuilder, Lineage};
use huoyue_schemas::decode;
use huoyue_schemas::reason::Reason;
use huoyue_schemas::time::day_of;

use crate::engine::{Arrival, EventKeys, FILE_SOURCE};

/// Where one message's bytes are in a chunk, and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

impl Span {
    /// The engine's source partition of the message: its Kafka partition, or
    /// [`FILE_SOURCE`].
    pub fn source(&self) -> i32 {
        self.partition.unwrap_or(FILE_SOURCE)
    }
}

/// A message that failed validation.
pub struct Rejected {
    pub span: Span,
    pub reason: Reason,
    pub detail: Option<String>,
}

/// The decoded form of a run of messages.
pub struct DecodedChunk {
    /// The messages' bytes.
    pub data: Vec<u8>,
    /// The source (topic or file name) of every message.
    pub source: String,
    /// The valid events; row `i` came from `spans[i]`.
    pub batch: RecordBatch,
    pub spans: Vec<Span>,
    /// The keys of each valid event ([`EventKeys::of`]), computed here on the
    /// decoder threads.
    pub keys: Vec<EventKeys>,
    /// The valid events in the order their messages were read, with their
    /// rows. The rows themselves are in that order unless
    /// [`DecodedChunk::grouped`] sorted them.
    pub arrival: Vec<Arrival>,
    pub rejected: Vec<Rejected>,
    /// When the chunk was decoded (the ingest clock), microseconds since the epoch.
    pub decoded_at: i64,
}

impl DecodedChunk {
    /// The `ts` of its valid events, microseconds since the epoch.
    pub fn times(&self) -> &[i64] {
        self.batch
            .column_by_name("ts")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .map_or(&[], |ts| ts.values())
    }

    /// Messages read.
    pub fn messages(&self) -> usize {
        self.spans.len() + self.rejected.len()
    }

    /// The chunk with its rows sorted by day (in the profile's time zone,
    /// `offset_seconds` east of UTC), then by the user each event is scored
    /// for ([`EventKeys::group`]), then by arrival; [`DecodedChunk::arrival`]
    /// keeps the order they were read in. The engine counts the rows in this
    /// order, so a user's state is fetched once per day of the chunk rather
    /// than once per event ([`crate::engine::Engine::process_rows`]); the
    /// writer gets a day's rows as one run. Done here, on the decoder
    /// threads, so the engine's thread reads the rows in sequence. A chunk of
    /// several Kafka partitions is left as it is: the engine takes those one
    /// event at a time, in arrival order.
    pub fn grouped(self, offset_seconds: i32) -> DecodedChunk {
        let one_partition = (self.arrival.first()).map(|first| first.partition);
        if self
            .arrival
            .iter()
            .any(|a| Some(a.partition) != one_partition)
        {
            return self;
        }
        let mut order: Vec<(i32, u64, u32)> = (self.keys.iter().zip(&self.arrival))
            .map(|(k, a)| (day_of(a.ts, offset_seconds), k.group() as u64, a.row))
            .collect();
        order.sort_unstable();
        let mut moved_to = vec![0u32; order.len()];
        for (row, &(_, _, i)) in order.iter().enumerate() {
            moved_to[i as usize] = row as u32;
        }
        let mut arrival = self.arrival;
        for a in &mut arrival {
            a.row = moved_to[a.row as usize];
        }
        let rows = UInt32Array::from_iter_values(order.iter().map(|&(_, _, i)| i));
        let batch = take_record_batch(&self.batch, &rows).expect("rows of the batch");
        let pick = |i: &(i32, u64, u32)| i.2 as usize;
        DecodedChunk {
            batch,
            spans: order.iter().map(|i| self.spans[pick(i)]).collect(),
            keys: order.iter().map(|i| self.keys[pick(i)]).collect(),
            arrival,
            data: self.data,
            source: self.source,
            rejected: self.rejected,
            decoded_at: self.decoded_at,
        }
    }
}

/// Decodes the messages at `spans` of `data`; `now` is the ingest clock.
pub fn decode_chunk(data: Vec<u8>, spans: &[Span], source: String, now: i64) -> DecodedChunk {
    let mut builder = EventBatchBuilder::with_capacity(spans.len());
    let mut valid = Vec::with_capacity(spans.len());
    let mut keys = Vec::with_capacity(spans.len());
    let mut arrival = Vec::with_capacity(spans.len());
    let mut rejected = Vec::new();
    for span in spans {
        let bytes = &data[span.start..span.end];
        // the event is read where `decode` put it (a move is a copy of
        // its few hundred bytes)
        let decoded = decode(bytes, now);
        match decoded {
            Ok(ref e) => {
                builder.append(
                    e,
                    Lineage {
                        source: &source,
                        partition: span.partition,
                        offset: span.offset,
                    },
                );
                let k = EventKeys::of(e);
                arrival.push(Arrival {
                    id: k.id,
                    ts: e.ts,
                    partition: span.source(),
                    row: valid.len() as u32,
                });
                valid.push(*span);
                keys.push(k);
            }
            Err(r) => rejected.push(Rejected {
                span: *span,
                reason: r.reason,
                detail: r.detail,
            }),
        }
    }
    DecodedChunk {
        batch: builder.finish(),
        data,
        source,
        arrival,
        spans: valid,
        keys,
        rejected,
        decoded_at: now,
    }
}

/// The bytes of a consecutive run of `spans` of `data`, copied into `buf`
/// (emptied first: a spare buffer is reused), with the spans rebased onto the
/// copy: a part of a chunk that decodes on its own.
pub fn sub_chunk(data: &[u8], spans: &[Span], mut buf: Vec<u8>) -> (Vec<u8>, Vec<Span>) {
    buf.clear();
    let mut rebased = Vec::with_capacity(spans.len());
    append_spans(data, spans, &mut buf, &mut rebased);
    (buf, rebased)
}

/// Appends the bytes of a consecutive run of `spans` of `data` to `out` (one
/// copy), and the spans, rebased onto where they landed, to `out_spans`.
pub fn append_spans(data: &[u8], spans: &[Span], out: &mut Vec<u8>, out_spans: &mut Vec<Span>) {
    let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
        return;
    };
    let (from, to) = (first.start, last.end);
    let base = out.len();
    out.extend_from_slice(&data[from..to]);
    out_spans.extend(spans.iter().map(|sp| Span {
        start: sp.start - from + base,
        end: sp.end - from + base,
        ..*sp
    }));
}

/// The spans of the lines of `data` (without their `\n`, nor a `\r` before it).
/// A final line without `\n` is included when `last` says no more data follows;
/// otherwise the returned offset is where the unfinished line starts.
pub fn line_spans(data: &[u8], last: bool, spans: &mut Vec<Span>) -> usize {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', data) {
        let end = if nl > start && data[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        spans.push(Span {
            start,
            end,
            partition: None,
            offset: None,
        });
        start = nl + 1;
    }
    if last && start < data.len() {
        spans.push(Span {
            start,
            end: data.len(),
            partition: None,
            offset: None,
        });
        start = data.len();
    }
    start
}

//! The scoring engine alone: events/s over a generated county month, decoded ahead
//! of time and grouped by day and user as the decoder threads hand chunks to
//! it, and the engine's state bytes per active user. The decoder is measured
//! beside it as the peer that feeds it, with and without the grouping. The
//! engine runs twice: growing its event-id table from empty, and with the
//! table sized ahead for the month's events, as file mode sizes it from the
//! input's bytes. It also prints the
//! bytes the Kafka service's checkpoints would write over the month, one every
//! 4,096 events, with segments (what changed since the last) against the whole
//! state each time. Run: `cargo bench -p huoyue-benches`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use huoyue_benches::r#gen::{GenConfig, LineKind, for_each_line};
use huoyue_ingest::engine::{ActivityRow, DeltaSink, Engine, EngineConfig};
use huoyue_ingest::pipeline::{DecodedChunk, Span, decode_chunk, sub_chunk};
use huoyue_schemas::columns::EventRows;
use huoyue_schemas::profile::Profile;

struct Discard(u64);

impl DeltaSink for Discard {
    fn score(&mut self, _: i32, _: &str, _: &str, _: &str, points: i64, _: i64) {
        self.0 = self.0.wrapping_add(points as u64);
    }
    fn activity(&mut self, row: &ActivityRow<'_>) {
        self.0 = self.0.wrapping_add(row.events as u64);
    }
}

/// A generated county month as raw lines in arrival order.
fn month() -> (Vec<u8>, Vec<Span>) {
    let mut cfg = GenConfig::default();
    cfg.set_month("2026-09").unwrap();
    cfg.schools = 30;
    cfg.malformed_share = 0.0;
    let mut data = Vec::new();
    let mut spans = Vec::new();
    for_each_line(&cfg, |line| {
        if matches!(line.kind, LineKind::Event | LineKind::Duplicate) {
            let start = data.len();
            data.extend_from_slice(line.bytes);
            spans.push(Span {
                start,
                end: data.len(),
                partition: None,
                offset: None,
            });
        }
        Ok(())
    })
    .unwrap();
    (data, spans)
}

const NOW: i64 = 1_795_000_000_000_000;

/// The month through a fresh engine, flushing after each chunk; `reserve`:
/// event ids to make room for at once ([`Engine::reserve_ids`]).
fn run_engine(profile: &Profile, chunks: &[DecodedChunk], reserve: usize) -> Engine {
    let mut engine = Engine::new(profile, EngineConfig::default());
    engine.reserve_ids(reserve);
    let mut sink = Discard(0);
    for c in chunks {
        let rows = EventRows::new(&c.batch).unwrap();
        engine.process_rows(&rows, &c.keys, &c.arrival, |_, _, outcome| {
            black_box(outcome);
        });
        engine.flush(&mut sink);
    }
    black_box(sink.0);
    engine
}

/// The bytes of a checkpoint after each of `chunks`: the whole
/// snapshot each time (the peer), and the snapshot without its bulk
/// plus the segment of what changed since the last one (the Kafka service).
fn checkpoint_bytes(profile: &Profile, chunks: &[DecodedChunk]) -> (usize, usize) {
    let mut engine = Engine::new(profile, EngineConfig::default());
    engine.log_changes();
    let mut sink = Discard(0);
    let (mut whole, mut segmented) = (0, 0);
    for c in chunks {
        let rows = EventRows::new(&c.batch).unwrap();
        engine.process_rows(&rows, &c.keys, &c.arrival, |_, _, _| {});
        engine.flush(&mut sink);
        whole += engine.snapshot().len();
        segmented += engine.snapshot_without_segments_into(Vec::new()).len();
        segmented += engine.take_segment(false).bytes.len();
    }
    (whole, segmented)
}

/// The month decoded ahead, in chunks of `size` events, grouped as the
/// decoder threads group them for the engine (`offset`: the profile's).
fn decoded(data: &[u8], spans: &[Span], size: usize, offset: i32) -> Vec<DecodedChunk> {
    spans
        .chunks(size)
        .map(|s| {
            let (bytes, rebased) = sub_chunk(data, s, Vec::new());
            decode_chunk(bytes, &rebased, "bench".into(), NOW).grouped(offset)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let profile = Profile::builtin("zhejiang-2018").unwrap();
    let (data, spans) = month();
    let n = spans.len() as u64;
    // chunks of 64 Ki events, the size the file reader hands out
    let offset = profile.offset_seconds;
    let chunks = decoded(&data, &spans, 65_536, offset);

    let engine = run_engine(&profile, &chunks, 0);
    let stats = engine.stats();
    eprintln!(
        "engine state after {n} events: {} bytes, {:.0} per active scored user; of which \
         the {} scored users {} bytes ({:.0} each), the {} remembered ids {} bytes ({:.1} each), \
         the daily_activity (day, actor)s kept {} bytes",
        stats.state_bytes,
        stats.state_bytes as f64 / stats.users.max(1) as f64,
        stats.users,
        stats.users_bytes,
        stats.users_bytes as f64 / stats.users.max(1) as f64,
        stats.remembered_ids,
        stats.ids_bytes,
        stats.ids_bytes as f64 / stats.remembered_ids.max(1) as f64,
        stats.activity_bytes,
    );

    let small = decoded(&data, &spans, 4096, offset);
    let (whole, segmented) = checkpoint_bytes(&profile, &small);
    eprintln!(
        "{} checkpoints, one every 4,096 events: {:.1} MB written with the whole state each \
         time, {:.1} MB with segments of what changed ({:.2}x fewer)",
        small.len(),
        whole as f64 / 1e6,
        segmented as f64 / 1e6,
        whole as f64 / segmented as f64
    );

    let mut g = c.benchmark_group("county-month");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("engine", |b| b.iter(|| run_engine(&profile, &chunks, 0)));
    g.bench_function("engine, id table sized ahead", |b| {
        b.iter(|| run_engine(&profile, &chunks, n as usize))
    });
    let snapshot = engine.snapshot();
    eprintln!("engine snapshot: {} bytes", snapshot.len());
    g.bench_function("snapshot (a checkpoint's state)", |b| {
        b.iter(|| black_box(engine.snapshot().len()))
    });
    g.bench_function("restore", |b| {
        b.iter(|| black_box(Engine::restore(&profile, &snapshot).unwrap().stats()))
    });
    g.bench_function("decode (one thread)", |b| {
        b.iter(|| black_box(decode_chunk(data.clone(), &spans, "bench".into(), NOW)))
    });
    // what the decoder threads do for the engine: decode, then group each
    // chunk by day and user (the engine's figures above start from there)
    g.bench_function("decode and group (one thread)", |b| {
        b.iter(|| black_box(decoded(&data, &spans, 65_536, offset).len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

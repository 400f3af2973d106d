//! The huoyue ingest: the scoring engine, the lake writer, and the sources that
//! feed them (a file or standard input; Kafka).

pub mod checkpoint;
pub mod cli;
pub mod engine;
pub mod kafka;
pub mod lake_writer;
pub mod metrics;
pub mod pipeline;

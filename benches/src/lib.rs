//! huoyue benchmarks and the synthetic data generator `huoyue-gen`.
//!
//! [`gen`] produces a month of events of Chinese provincial education cloud
//! platforms (plus lead days of the previous month) for a set of schools in
//! real Zhejiang counties, with the rosters that go with them. The data
//! exercise every rule of the `zhejiang-2018` profile and every kind of
//! rejected input, arrive slightly out of order, and are deterministic for a
//! seed.
//!
//! `gen` is a reserved word in Rust 2024, so the module is named `r#gen`:
//! `use huoyue_benches::r#gen::{GenConfig, generate};`.

pub mod r#gen;

pub mod kafka;

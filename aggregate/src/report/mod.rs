//! The 通报 (monthly circular): built from the month's figures, rendered as
//! `report.md`, `report.xlsx` and one CSV per section.

pub mod build;
pub mod model;
pub mod render;
pub mod xlsx;

use std::path::Path;

pub use build::{ReportOptions, build_reports};
pub use model::Report;

use crate::error::{IoContext, Result};

/// Writes one report into `dir` (created): `report.md`, `report.xlsx` and
/// `<n>-<section>.csv` for each section.
pub fn write_report(dir: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).context(|| format!("writing {}", path.display()))
    };
    write("report.md", render::markdown(report).as_bytes())?;
    write("report.xlsx", &xlsx::workbook(report)?)?;
    for s in &report.sections {
        write(&format!("{}.csv", s.file_stem), &render::section_csv(s))?;
    }
    Ok(())
}

//! The monthly job: `teacher_monthly`, `school_monthly` and the reports of one
//! month, written atomically per month folder.

pub mod compute;
pub mod facts;
pub mod tables;
pub(crate) mod write;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub use compute::MonthResult;

use crate::error::{AggregateError, IoContext, Result};
use crate::month::Month;
use crate::report::{ReportOptions, build_reports, write_report};
use crate::swap::{fsync_tree, remove_leftovers, replace_dir, scratch_root};
use crate::{lake, roster};

/// What `huoyue-aggregate monthly` does.
#[derive(Debug, Clone)]
pub struct MonthlyOptions {
    /// The lake directory.
    pub lake: PathBuf,
    /// The month to compute.
    pub month: Month,
    /// Rule ids of the profile, in profile order (`points_<rule>` columns).
    pub rules: Vec<String>,
    /// Whether `rules` are the profile's own (not a `--rules` choice of
    /// columns): then the month's rows of any other rule mean it was scored
    /// under another profile, and the job refuses.
    pub rules_of_profile: bool,
    /// The platform's name in report titles.
    pub platform: String,
    /// The rule profile's title, cited in the reports when known.
    pub rules_title: Option<String>,
}

/// What a monthly run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlySummary {
    /// Rows of `teacher_monthly`.
    pub teacher_rows: usize,
    /// Rows of `school_monthly`.
    pub school_rows: usize,
    /// County reports written (plus the province report).
    pub county_reports: usize,
}

/// Name of the lake-level lock that serialises monthly runs.
const MONTHLY_LOCK: &str = ".monthly.lock";

/// Runs the monthly job: validates the input, computes the month, writes both
/// tables and the reports into scratch folders (`LAKE/.scratch/`), fsyncs them and
/// swaps each into place. Nothing is written before every input check passed
/// and every figure is computed; other months are never touched.
pub async fn run(opts: &MonthlyOptions) -> Result<MonthlySummary> {
    let lake_dir = &opts.lake;
    if !lake_dir.is_dir() {
        return Err(AggregateError::LakeNotFound(lake_dir.clone()));
    }
    // a scan of every day folder up to the month: off the async threads
    let (dir, month) = (lake_dir.clone(), opts.month);
    tokio::task::spawn_blocking(move || refuse_empty_files(&dir, month))
        .await
        .map_err(|e| AggregateError::Internal(format!("empty-file check: {e}")))??;
    let marker = crate::rescore::interrupted_marker(lake_dir, &opts.month.to_string());
    if marker.exists() {
        return Err(AggregateError::Changed(format!(
            "a rescore of {m} was interrupted while it replaced the month's days ({}): some days are re-scored, some not; run `huoyue-aggregate rescore --month {m}` again first",
            marker.display(),
            m = opts.month
        )));
    }
    let t0 = std::time::Instant::now();
    let ctx = lake::session();
    lake::register_day_tables(&ctx, lake_dir).await?;
    // the queries that need no roster run while the rosters load
    let started = compute::start(&ctx, opts.month);
    let rosters = {
        let dir = lake_dir.clone();
        tokio::task::spawn_blocking(move || roster::load(&dir))
            .await
            .map_err(|e| AggregateError::Internal(format!("roster task: {e}")))?
    };
    let rosters = match rosters {
        Ok(r) => r,
        Err(e) => {
            started.abort();
            return Err(e);
        }
    };
    tracing::debug!(phase = "rosters", elapsed = ?t0.elapsed(), "monthly");
    lake::register_rosters(&ctx, &rosters)?;
    // the input checks run beside the computation; their verdict comes first
    let (dup, has_data, unlisted, result) = tokio::join!(
        compute::duplicate_user(&ctx),
        compute::month_has_data(&ctx, opts.month),
        async {
            if opts.rules_of_profile {
                compute::unlisted_rules(&ctx, opts.month, &opts.rules).await
            } else {
                Ok(Vec::new())
            }
        },
        compute::finish(&ctx, opts.month, &opts.rules, started),
    );
    let unlisted = unlisted?;
    if !unlisted.is_empty() {
        return Err(AggregateError::Profile(format!(
            "daily_scores of {} has points of rules the profile does not list: {} (its rules: {}); \
             the month was scored under another profile: pass that one with --profile",
            opts.month,
            unlisted.join(", "),
            opts.rules.join(", ")
        )));
    }
    if let Some(dup) = dup? {
        return Err(AggregateError::Roster(format!(
            "{}: user_id {dup} appears more than once",
            rosters.users_file.display()
        )));
    }
    if !has_data? {
        return Err(AggregateError::NoData {
            month: opts.month.to_string(),
            lake: lake_dir.clone(),
        });
    }
    let result = result?;
    tracing::debug!(phase = "compute", elapsed = ?t0.elapsed(), "monthly");
    let report_opts = ReportOptions {
        month: opts.month,
        platform: opts.platform.clone(),
        rules_title: opts.rules_title.clone(),
    };
    let (counties, province) = build_reports(
        &report_opts,
        &result.schools,
        &result.teachers,
        &result.days,
    );

    tracing::debug!(phase = "reports built", elapsed = ?t0.elapsed(), "monthly");
    let _lock = lock_lake(lake_dir)?;
    for table in ["teacher_monthly", "school_monthly", "reports"] {
        let dir = lake_dir.join(table);
        remove_leftovers(&dir)
            .context(|| format!("removing the scratch folders of {}", dir.display()))?;
    }
    let month = opts.month.to_string();
    // (scratch, target) of each output, written in full before any replaces
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let written = (|| {
        for (table, batch) in [
            ("teacher_monthly", &result.teacher_monthly),
            ("school_monthly", &result.school_monthly),
        ] {
            let (scratch, target) = scratch_for(&lake_dir.join(table), &format!("month={month}"))?;
            staged.push((scratch.clone(), target));
            write::parquet(&scratch.join("part-00000.parquet"), batch)?;
        }
        let (scratch, target) = scratch_for(&lake_dir.join("reports"), &month)?;
        staged.push((scratch.clone(), target));
        for (code, report) in &counties {
            write_report(&scratch.join(folder_name(code)), report)?;
        }
        write_report(&scratch.join("province"), &province)?;
        for (scratch, _) in &staged {
            fsync_tree(scratch).context(|| format!("syncing {}", scratch.display()))?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        // the month's published outputs are untouched; a full disk is not
        // left full of the unfinished ones
        for (scratch, _) in &staged {
            let _ = std::fs::remove_dir_all(scratch);
        }
        return Err(AggregateError::During {
            context: format!(
                "writing the tables and reports of {month} (the month as published is left as it was)"
            ),
            source: Box::new(e),
        });
    }
    for (scratch, target) in &staged {
        replace_dir(scratch, target)
            .context(|| format!("replacing {} by {}", target.display(), scratch.display()))?;
        // the table's scratch folder, now empty unless another run uses it
        if let Some(parent) = scratch.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    tracing::debug!(phase = "written", elapsed = ?t0.elapsed(), "monthly");
    Ok(MonthlySummary {
        teacher_rows: result.teacher_monthly.num_rows(),
        school_rows: result.school_monthly.num_rows(),
        county_reports: counties.len(),
    })
}

/// Refuses a 0-byte data file in a `daily_scores` or `daily_activity`
/// partition up to the month's last day (what the month, its year to date and
/// its registrations read): DataFusion reads one as a file without rows, so
/// the month would be published without the rows it lost. The ingest never
/// writes one (files appear whole, by rename); a damaged disk or a copy cut
/// short does.
fn refuse_empty_files(lake: &Path, month: Month) -> Result<()> {
    let last = format!("day={}", month.last_day());
    for table in ["daily_scores", "daily_activity"] {
        let Ok(days) = std::fs::read_dir(lake.join(table)) else {
            continue;
        };
        for day in days.flatten() {
            let name = day.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with("day=") || *name > *last {
                continue;
            }
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for f in files.flatten() {
                let file = f.file_name();
                let file = file.to_string_lossy();
                let data = file.ends_with(".parquet") && !file.starts_with(['.', '_']);
                if data && f.metadata().is_ok_and(|m| m.len() == 0) {
                    return Err(AggregateError::InvalidLake(format!(
                        "{} is empty (0 bytes), not a Parquet file: restore or remove it (the month would be computed without its rows)",
                        f.path().display()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A fresh scratch folder `LAKE/.scratch/<table>/<name>` (those of crashed
/// runs are removed first, under the lake's lock) and the target
/// `<parent>/<name>`.
fn scratch_for(parent: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    let scratch = scratch_root(parent)
        .context(|| format!("creating the scratch folder of {}", parent.display()))?
        .join(name);
    std::fs::create_dir(&scratch).context(|| format!("creating {}", scratch.display()))?;
    Ok((scratch, parent.join(name)))
}

/// A county code as a folder name (anything but `[0-9A-Za-z_-]` becomes `_`).
fn folder_name(code: &str) -> String {
    if code.is_empty() {
        return "unknown".to_string();
    }
    code.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Serialises monthly runs on one lake (so scratch folders are never shared).
fn lock_lake(lake: &Path) -> Result<File> {
    let path = lake.join(MONTHLY_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    file.lock()
        .context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

//! The lake as DataFusion tables: registration and the [`Lake`] handle.

mod rosters;

use rosters::ReadRows;
pub mod schemas;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;

use crate::config::{QueryConfig, session_with_runtime};
use crate::error::QueryError;
use crate::run::{QueryOutput, run_query};
use huoyue_schemas::lake::{
    INGEST_TABLES, VANISHED_FILE_RETRIES, bad_day_folder, is_vanished_file,
};

/// A function giving a declared file schema.
type SchemaFn = fn() -> SchemaRef;

/// Tables partitioned by `day` (Date32) with the file schema declared here.
const DAY_TABLES: &[(&str, SchemaFn)] = &[
    ("events", schemas::events),
    ("daily_scores", schemas::daily_scores),
    ("daily_activity", schemas::daily_activity),
    ("rejected", schemas::rejected),
];

/// Tables partitioned by `month` (Utf8) whose schema is what the monthly job wrote.
const MONTH_TABLES: &[&str] = &["teacher_monthly", "school_monthly"];

/// Every name [`register_lake`] registers, in the order of the spec.
pub const TABLE_NAMES: &[&str] = &[
    "events",
    "daily_scores",
    "daily_activity",
    "rejected",
    "teacher_monthly",
    "school_monthly",
    "schools",
    "users",
    "daily_totals",
];

/// The definition of the view `daily_totals`: score deltas summed per key.
/// A key whose rows sum to nothing (points and events) is not shown: what
/// the ingest moved away from a school when an earlier event of the day
/// stated another (docs/decisions.md), which one flush would not have written.
pub const DAILY_TOTALS_SQL: &str = "SELECT day, user_id, school_id, rule, \
     SUM(points) AS points, SUM(events) AS events \
     FROM daily_scores GROUP BY day, user_id, school_id, rule \
     HAVING SUM(points) <> 0 OR SUM(events) <> 0";

/// The canonical lake directory as a string usable in listing URLs.
fn lake_root(lake: &Path) -> Result<String, QueryError> {
    if !lake.is_dir() {
        return Err(QueryError::LakeMissing(lake.to_path_buf()));
    }
    let canonical = std::fs::canonicalize(lake)
        .map_err(|e| QueryError::Lake(format!("{}: {e}", lake.display())))?;
    let root = canonical.to_str().ok_or_else(|| {
        QueryError::Lake(format!("{}: the path is not UTF-8", canonical.display()))
    })?;
    // DataFusion reads `*`, `?` and `[` in a local path as a glob.
    if root.contains(['*', '?', '[']) {
        return Err(QueryError::Lake(format!(
            "{root}: the lake path must not contain '*', '?' or '['"
        )));
    }
    Ok(root.trim_end_matches('/').to_owned())
}

/// Register the lake at `lake` in `ctx`: `events`, `daily_scores`,
/// `daily_activity`, `rejected` (partition `day`, Date32), `teacher_monthly`,
/// `school_monthly` (partition `month`, Utf8), the rosters `schools` and
/// `users`, and the view `daily_totals`.
///
/// Partition columns come from the folder names (`day=2026-11-03`), so a
/// filter on them skips folders. Names starting with `.` or `_` are ignored.
/// A table whose folder does not exist yet, or a missing roster, is an empty
/// table. The Parquet tables list their files at every scan; the schemas of
/// the monthly tables and the rosters' headers are read now, so register
/// again (in a new session) to see a monthly table that appeared since.
///
/// Errors: [`QueryError::LakeMissing`] if `lake` is not a directory,
/// [`QueryError::Lake`] if a roster or monthly file cannot be read.
pub async fn register_lake(ctx: &SessionContext, lake: &Path) -> Result<(), QueryError> {
    let root = lake_root(lake)?;
    for (table, schema) in DAY_TABLES {
        tables::register_declared(ctx, &root, table, ("day", DataType::Date32), schema())?;
    }
    for table in MONTH_TABLES {
        tables::register_inferred(ctx, &root, table, ("month", DataType::Utf8)).await?;
    }
    // thousands of schools even for a province; millions of users
    rosters::register_roster(
        ctx,
        &root,
        "schools",
        schemas::SCHOOLS,
        ReadRows::AtRegistration,
    )
    .await?;
    rosters::register_roster(ctx, &root, "users", schemas::USERS, ReadRows::AtEachQuery).await?;
    let daily_totals = ctx.sql(DAILY_TOTALS_SQL).await?.into_view();
    ctx.register_table("daily_totals", daily_totals)?;
    Ok(())
}

/// An opened lake: its directory, the engine settings and one runtime (so
/// one memory pool) shared by every session made from it.
///
/// Cheap to clone. Each [`Lake::session`] is a fresh DataFusion session with
/// the lake registered, so it sees monthly tables and rosters written since
/// the previous one.
#[derive(Clone)]
pub struct Lake {
    root: PathBuf,
    config: QueryConfig,
    runtime: Arc<RuntimeEnv>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Lake {
    /// Open the lake at `path`; fails with [`QueryError::LakeMissing`] if the
    /// directory does not exist.
    pub fn open(path: impl Into<PathBuf>, config: QueryConfig) -> Result<Self, QueryError> {
        let root = path.into();
        lake_root(&root)?;
        let runtime = config.runtime();
        Ok(Self {
            root,
            config,
            runtime,
        })
    }

    /// The lake directory as given to [`Lake::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The engine settings.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// A fresh session with every lake table registered.
    pub async fn session(&self) -> Result<SessionContext, QueryError> {
        let ctx = session_with_runtime(&self.config, Arc::clone(&self.runtime));
        register_lake(&ctx, &self.root).await?;
        Ok(ctx)
    }

    /// Run one read-only statement in a fresh session; fail with
    /// [`QueryError::TooManyRows`] if the result has more than `max_rows` rows.
    pub async fn query(
        &self,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryOutput, QueryError> {
        // Refuse before touching the lake: a refusal must not depend on it.
        crate::read_only::check_read_only(sql)?;
        // a file that compaction swapped away between the listing and the
        // read: again, from a fresh listing (the result is only handed out
        // whole, so nothing was shown yet)
        let mut retries = 0;
        loop {
            let ctx = self.session().await?;
            match run_query(&ctx, sql, max_rows).await {
                Err(QueryError::Lake(m))
                    if is_vanished_file(&m) && retries < VANISHED_FILE_RETRIES =>
                {
                    retries += 1;
                    tracing::debug!(retries, error = %m, "a file vanished during the query; again");
                    tokio::time::sleep(std::time::Duration::from_millis(20 << retries)).await;
                }
                Err(QueryError::Lake(m)) => {
                    let root = self.root.clone();
                    let named = tokio::task::spawn_blocking(move || name_the_file(&root, m))
                        .await
                        .map_err(|e| QueryError::Internal(format!("naming a lake file: {e}")))?;
                    return Err(QueryError::Lake(named));
                }
                Err(QueryError::Sql(m)) if m.contains("Cannot cast string") => {
                    // a stray folder whose `day=` value is not a date fails
                    // every scan of its table: the lake's fault, named
                    let root = self.root.clone();
                    let bad =
                        tokio::task::spawn_blocking(move || bad_day_folder(&root, INGEST_TABLES))
                            .await
                            .map_err(|e| {
                                QueryError::Internal(format!("naming a lake folder: {e}"))
                            })?;
                    return Err(bad.map_or(QueryError::Sql(m), QueryError::Lake));
                }
                Err(QueryError::Sql(m)) => return Err(QueryError::Sql(hint_unwritten(m))),
                r => return r,
            }
        }
    }
}

/// A monthly table the monthly job has not written yet has only its
/// partition column, `month`: a statement naming any other column of it
/// fails with DataFusion's "No field named …", which says why.
fn hint_unwritten(message: String) -> String {
    if !message.contains("No field named") {
        return message;
    }
    match MONTH_TABLES
        .iter()
        .find(|t| message.contains(&format!("Valid fields are {t}.month.")))
    {
        Some(t) => format!(
            "{message} ({t} has no month yet: `huoyue-aggregate monthly --lake DIR --month YYYY-MM` writes it)"
        ),
        None => message,
    }
}

/// A Parquet error that does not say which file (DataFusion reads the
/// footers of a table registered with its schema without naming them): the
/// first data file of the lake's tables whose footer does not read, named
/// with its own error; else `message` as it was.
fn name_the_file(root: &Path, message: String) -> String {
    use datafusion::parquet::file::reader::SerializedFileReader;
    if !message.contains("Parquet error") || message.contains(".parquet") {
        return message;
    }
    let days = DAY_TABLES.iter().map(|(t, _)| (*t, "day="));
    let months = MONTH_TABLES.iter().map(|t| (*t, "month="));
    for (table, partition) in days.chain(months) {
        let Ok(partitions) = std::fs::read_dir(root.join(table)) else {
            continue;
        };
        // what the table reads: its partitions' data files, not the hidden
        // ones (`.` or `_` first)
        let mut files: Vec<PathBuf> = partitions
            .flatten()
            .filter(|p| p.file_name().to_string_lossy().starts_with(partition))
            .filter_map(|p| std::fs::read_dir(p.path()).ok())
            .flat_map(|files| files.flatten().map(|f| f.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".parquet") && !n.starts_with(['.', '_']))
            })
            .collect();
        files.sort();
        for path in files {
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            if let Err(e) = SerializedFileReader::new(file) {
                let shown = path.strip_prefix(root).unwrap_or(&path);
                return format!("{}: {e}", shown.display());
            }
        }
    }
    message
}

//! The monthly measures, computed with DataFusion SQL from `daily_scores`,
//! `daily_activity` and the rosters (never `events`).
//!
//! Scale (a province: ~50M `daily_scores` and ~150M `daily_activity` rows a
//! month) shapes the queries:
//!
//! * per-user sums over `daily_scores` group by `user_id` only (a few hundred
//!   thousand scored teachers), never by (day, user, rule);
//! * the per-(day, school, user) distinct counts behind the daily active rate
//!   run a span of days at a time, sized so a hash table holds at most about
//!   20M rows' keys (a county's month is one query, a province's a day or a
//!   few per query), not a whole provincial month's;
//! * `login_days` scans `daily_activity` joined to the (small) set of teacher
//!   rows, so only teachers' days are grouped;
//! * registrations are filtered on `registers <> 0` before grouping, which lets
//!   Parquet statistics skip most row groups.
//!
//! Rows are deltas everywhere: every measure sums a key's rows before testing
//! it (`SUM(logins) > 0`, never `logins > 0` on a single row).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::facts::{Columns, DayFacts, SchoolFacts, TeacherFacts};
use super::tables::{conform, points_column, school_monthly_schema, teacher_monthly_schema};
use crate::error::{AggregateError, Result};
use crate::lake::register_batches;
use crate::month::Month;
use huoyue_schemas::lake::{VANISHED_FILE_RETRIES, is_vanished_file};

/// A month's results: the two tables (conformed to their schemas) and the
/// plain rows the report is made of.
#[derive(Debug, Clone)]
pub struct MonthResult {
    /// `teacher_monthly` rows, ordered by `user_id`.
    pub teacher_monthly: RecordBatch,
    /// `school_monthly` rows, ordered by `school_id`.
    pub school_monthly: RecordBatch,
    /// The teacher rows, in the same order.
    pub teachers: Vec<TeacherFacts>,
    /// The school rows, in the same order.
    pub schools: Vec<SchoolFacts>,
    /// Login activity per school and day (only non-empty pairs).
    pub days: Vec<DayFacts>,
}

/// Threshold of `meets_monthly_target` (scoring.md: 30 points a month).
pub const MONTHLY_TARGET_POINTS: i64 = 30;
/// Daily active target of `demo` schools (示范校/创建校).
pub const DEMO_TARGET_RATE: f64 = 0.20;
/// Daily active target of other schools.
pub const REGULAR_TARGET_RATE: f64 = 0.10;

fn quote_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    tracing::debug!(sql, "query");
    Ok(query(ctx, sql).await?.1)
}

/// Runs `sql`; a read that hits a file compaction swapped away (listed, then
/// gone) runs again, from a fresh listing, a few times with growing pauses.
/// Compaction keeps the sums, so every step sees the same data.
async fn query(ctx: &SessionContext, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut retries = 0;
    loop {
        let df = ctx.sql(sql).await?;
        let schema = df.schema().inner().clone();
        match df.collect().await {
            Err(e) if retries < VANISHED_FILE_RETRIES && is_vanished_file(&e.to_string()) => {
                retries += 1;
                tracing::info!(retries, error = %e, "a file vanished while reading (a compaction); again");
                // 40 ms doubling: 2.5 s in all
                tokio::time::sleep(std::time::Duration::from_millis(20 << retries)).await;
            }
            r => return Ok((schema, r?)),
        }
    }
}

/// The single integer a `SELECT COUNT(*) AS n …` answers.
async fn count(ctx: &SessionContext, sql: &str) -> Result<i64> {
    let batches = collect(ctx, sql).await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(0);
    };
    Ok(Columns::new(b).ints("n")?[0].unwrap_or(0))
}

/// Rows of `daily_activity` one day-span query may group: a hash table of
/// this many (day, school, user) keys stays around a gigabyte.
const DAY_ROWS_PER_QUERY: i64 = 20_000_000;

/// Days per query for a month of `rows` `daily_activity` rows over `days`
/// days: as many as keep a query under [`DAY_ROWS_PER_QUERY`], evened out
/// over the queries that takes (two spans of 15 days, not 29 and 1).
fn days_per_query(rows: i64, days: u32) -> u32 {
    let days = days.max(1);
    let per_day = (rows / i64::from(days)).max(1);
    let most = (DAY_ROWS_PER_QUERY / per_day).clamp(1, i64::from(days)) as u32;
    let queries = days.div_ceil(most);
    days.div_ceil(queries)
}

async fn has_rows(ctx: &SessionContext, sql: &str) -> Result<bool> {
    Ok(collect(ctx, sql).await?.iter().any(|b| b.num_rows() > 0))
}

/// True when `daily_scores` or `daily_activity` has a row in the month.
pub async fn month_has_data(ctx: &SessionContext, month: Month) -> Result<bool> {
    let range = format!(
        "day BETWEEN DATE '{}' AND DATE '{}'",
        month.first_day(),
        month.last_day()
    );
    for table in ["daily_scores", "daily_activity"] {
        if has_rows(ctx, &format!("SELECT 1 FROM {table} WHERE {range} LIMIT 1")).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The chains that need only `daily_scores` and `daily_activity`, running.
pub struct Started {
    ytd: tokio::task::JoinHandle<Result<()>>,
    days: tokio::task::JoinHandle<Result<Vec<DayFacts>>>,
    registered: tokio::task::JoinHandle<Result<()>>,
}

impl Started {
    /// Stops the chains (when the job fails before it needs them).
    pub fn abort(&self) {
        self.ytd.abort();
        self.days.abort();
        self.registered.abort();
    }
}

/// Starts the chains that need only the lake's daily tables (steps 3, 5 and
/// 6), each on a task of its own, so that they run while the rosters load.
pub fn start(ctx: &SessionContext, month: Month) -> Started {
    Started {
        ytd: tokio::spawn(year_to_date(ctx.clone(), month)),
        days: tokio::spawn(day_facts(ctx.clone(), month)),
        registered: tokio::spawn(registered(ctx.clone(), month)),
    }
}

/// Completes what [`start`] began: the teacher chain (steps 1, 2 and 4, which
/// need `schools` and `users` registered), then both tables, with one
/// `points_<rule>` column per rule id in `rules` (in that order).
pub async fn finish(
    ctx: &SessionContext,
    month: Month,
    rules: &[String],
    started: Started,
) -> Result<MonthResult> {
    let days_in_month = month.days();
    let (teacher_rows, counts, ytd, days, registered) = tokio::join!(
        tokio::spawn(teacher_inputs(ctx.clone(), month, rules.to_vec())),
        tokio::spawn(roster_counts(ctx.clone())),
        started.ytd,
        started.days,
        started.registered,
    );
    joined(teacher_rows)?;
    joined(ytd)?;
    joined(registered)?;
    let days = joined(days)?;
    school_rates(ctx, &days, &joined(counts)?, days_in_month)?;

    // 7. teacher_monthly.
    let rule_cols: String = rules
        .iter()
        .map(|r| {
            let c = quote_ident(&points_column(r));
            format!(", COALESCE(m.{c}, 0) AS {c}")
        })
        .collect();
    let teacher = materialize(
        ctx,
        "tm",
        &format!(
            "WITH t AS ( \
               SELECT r.user_id, r.name, r.school_id, r.in_roster, \
                 COALESCE(m.points, 0) AS points{rule_cols}, \
                 COALESCE(ld.login_days, 0) AS login_days, COALESCE(y.ytd, 0) AS ytd_points \
               FROM tm_rows r \
               LEFT JOIN month_scores m ON m.user_id = r.user_id \
               LEFT JOIN login_days ld ON ld.user_id = r.user_id \
               LEFT JOIN ytd y ON y.user_id = r.user_id) \
             SELECT t.*, t.points >= {MONTHLY_TARGET_POINTS} AS meets_monthly_target, \
               RANK() OVER (PARTITION BY t.school_id ORDER BY t.points DESC) AS rank_in_school, \
               s.county_code, \
               CASE WHEN s.school_id IS NULL THEN NULL \
                 ELSE RANK() OVER (PARTITION BY s.county_code ORDER BY t.points DESC) END AS rank_in_county \
             FROM t LEFT JOIN schools s ON s.school_id = t.school_id \
             ORDER BY t.user_id"
        ),
    )
    .await?;
    let teacher_monthly = conform(&teacher, &teacher_monthly_schema(rules))?;
    let teachers = teacher_facts(&teacher)?;

    // 8. school_monthly.
    let dd = format!("{:?}", f64::from(days_in_month));
    let school = collect(
        ctx,
        &format!(
            "WITH tp AS (SELECT school_id, SUM(points) AS points_total, \
                 SUM(CASE WHEN meets_monthly_target THEN 1 ELSE 0 END) AS active_teachers \
               FROM tm WHERE in_roster GROUP BY school_id), \
             act AS (SELECT school_id, SUM(active_users) AS user_days, SUM(logins) AS logins, \
                 SUM(teacher_deep) AS deep_actions FROM day_school GROUP BY school_id), \
             base AS (SELECT s.school_id, s.name, s.county_code, s.county_name, s.category, \
                 COALESCE(uc.users, 0) AS users, COALESCE(uc.teachers, 0) AS teachers, \
                 COALESCE(tp.points_total, 0) AS points_total, \
                 COALESCE(tp.active_teachers, 0) AS active_teachers, \
                 COALESCE(act.user_days, 0) AS user_days, COALESCE(act.logins, 0) AS logins, \
                 COALESCE(act.deep_actions, 0) AS deep_actions, \
                 COALESCE(rg.registered, 0) AS registered_students, s.student_base, \
                 COALESCE(sr.rate, 0.0) AS summed_rate \
               FROM schools s \
               LEFT JOIN roster_counts uc ON uc.school_id = s.school_id \
               LEFT JOIN tp ON tp.school_id = s.school_id \
               LEFT JOIN act ON act.school_id = s.school_id \
               LEFT JOIN registered rg ON rg.school_id = s.school_id \
               LEFT JOIN school_rate sr ON sr.school_id = s.school_id), \
             m AS (SELECT *, \
                 CASE WHEN teachers > 0 THEN CAST(points_total AS DOUBLE) / CAST(teachers AS DOUBLE) END AS avg_points, \
                 CASE WHEN teachers > 0 THEN CAST(active_teachers AS DOUBLE) / CAST(teachers AS DOUBLE) END AS active_ratio, \
                 CASE WHEN users > 0 THEN summed_rate END AS daily_active_rate, \
                 CASE WHEN category = 'demo' THEN {DEMO_TARGET_RATE:?} ELSE {REGULAR_TARGET_RATE:?} END AS target_rate, \
                 CAST(logins AS DOUBLE) / {dd} AS avg_daily_logins, \
                 CASE WHEN teachers > 0 THEN CAST(deep_actions AS DOUBLE) / CAST(teachers AS DOUBLE) END AS deep_index, \
                 CASE WHEN student_base > 0 THEN \
                   CASE WHEN registered_students >= student_base THEN 1.0 \
                   ELSE CAST(registered_students AS DOUBLE) / CAST(student_base AS DOUBLE) END \
                 END AS registration_rate \
               FROM base) \
             SELECT *, daily_active_rate - target_rate AS rate_gap, \
               RANK() OVER (PARTITION BY county_code ORDER BY avg_points DESC NULLS LAST) AS rank_points, \
               RANK() OVER (PARTITION BY county_code ORDER BY daily_active_rate DESC NULLS LAST) AS rank_active_rate \
             FROM m ORDER BY school_id",
        ),
    )
    .await?;
    let school_monthly = conform(&school, &school_monthly_schema())?;
    let schools = school_facts(&school)?;

    Ok(MonthResult {
        teacher_monthly,
        school_monthly,
        teachers,
        schools,
        days,
    })
}

/// Registers `roster_counts` (`school_id`, `users`, `teachers`): the
/// roster's users and teachers per school, for the daily active rate and
/// step 8.
async fn roster_counts(ctx: SessionContext) -> Result<Vec<RecordBatch>> {
    materialize(
        &ctx,
        "roster_counts",
        "SELECT school_id, COUNT(*) AS users, \
           SUM(CASE WHEN role = 'teacher' THEN 1 ELSE 0 END) AS teachers \
         FROM users GROUP BY school_id",
    )
    .await
}

/// Registers `school_rate` (`school_id`, `rate`): each roster school's
/// `daily_active_rate`, `(1/D) · Σ_days active / users` (monthly.md) summed
/// in day order and divided by `D` once, as the formula reads, rather than
/// `Σ active / (users · D)`: the two can differ in the last bits, and so in a
/// rank between equal rates. Schools without roster users (`counts`: the
/// `roster_counts` rows) get none.
fn school_rates(
    ctx: &SessionContext,
    days: &[DayFacts],
    counts: &[RecordBatch],
    days_in_month: u32,
) -> Result<()> {
    let mut users = HashMap::new();
    for b in counts {
        let c = Columns::new(b);
        let (ids, ns) = (c.strings("school_id")?, c.ints("users")?);
        for (id, n) in ids.into_iter().zip(ns) {
            if let (Some(id), Some(n)) = (id, n) {
                users.insert(id, n);
            }
        }
    }
    let rates = summed_rates(days, &users, days_in_month);
    let schema = Arc::new(Schema::new(vec![
        Field::new("school_id", DataType::Utf8, false),
        Field::new("rate", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(rates.keys())),
            Arc::new(Float64Array::from_iter_values(rates.values().copied())),
        ],
    )?;
    register_batches(ctx, "school_rate", schema, vec![batch])
}

/// Each school's `(Σ_d active_d / users) / D`, adding the days in order
/// (`days` is sorted by day), for the schools with roster users.
fn summed_rates(
    days: &[DayFacts],
    users: &HashMap<String, i64>,
    days_in_month: u32,
) -> BTreeMap<String, f64> {
    debug_assert!(days.is_sorted_by_key(|d| d.day));
    let mut sums = BTreeMap::new();
    for d in days {
        if let Some(&n) = users.get(&d.school_id).filter(|&&n| n > 0) {
            *sums.entry(d.school_id.clone()).or_insert(0.0) += d.active_users as f64 / n as f64;
        }
    }
    for rate in sums.values_mut() {
        *rate /= f64::from(days_in_month);
    }
    sums
}

/// The result of a task running a step.
fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| AggregateError::Internal(format!("monthly query task: {e}")))?
}

/// Steps 1, 2 and 4: month points per user and rule (`month_scores`), the
/// teacher rows (`tm_rows`: the roster's teachers and scored users not in it)
/// and their login days (`login_days`).
async fn teacher_inputs(ctx: SessionContext, month: Month, rules: Vec<String>) -> Result<()> {
    let ctx = &ctx;
    let first = month.first_day();
    let last = month.last_day();
    let in_month = |t: &str| format!("{t}day BETWEEN DATE '{first}' AND DATE '{last}'");
    // 1. Month points per user and rule (one row per scored user).
    let per_rule: String = rules
        .iter()
        .map(|r| {
            format!(
                ", SUM(CASE WHEN rule = {} THEN points ELSE 0 END) AS {}",
                quote_lit(r),
                quote_ident(&points_column(r))
            )
        })
        .collect();
    materialize(
        ctx,
        "month_scores",
        &format!(
            "SELECT user_id, SUM(points) AS points{per_rule} FROM daily_scores \
             WHERE {} GROUP BY user_id",
            in_month("")
        ),
    )
    .await?;

    // 2. Scored users who are not in the roster at all: they get a row when
    //    one of their (day, rule) keys has a non-zero sum in the month, with
    //    the school of their last row (latest day; ties: smallest school_id).
    //    A (day, school) whose rows sum to nothing (points and events) is not
    //    a row: what the ingest moved away from a school when an earlier
    //    event of the day stated another, which one flush would not have
    //    written there.
    let candidates = materialize(
        ctx,
        "candidates",
        "SELECT m.user_id FROM month_scores m \
         WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = m.user_id)",
    )
    .await?;
    let any_candidate = candidates.iter().any(|b| b.num_rows() > 0);
    let rows_sql = if any_candidate {
        format!(
            "WITH k AS ( \
               SELECT d.user_id, d.day, d.rule, SUM(d.points) AS p \
               FROM candidates c JOIN daily_scores d ON d.user_id = c.user_id \
               WHERE {inm} GROUP BY d.user_id, d.day, d.rule), \
             has AS (SELECT user_id FROM k GROUP BY user_id \
               HAVING SUM(CASE WHEN p <> 0 THEN 1 ELSE 0 END) > 0), \
             ds AS (SELECT d.user_id, d.day, d.school_id \
               FROM candidates c JOIN daily_scores d ON d.user_id = c.user_id \
               WHERE {inm} AND d.school_id IS NOT NULL \
               GROUP BY d.user_id, d.day, d.school_id \
               HAVING SUM(d.points) <> 0 OR SUM(d.events) <> 0), \
             ls AS (SELECT user_id, school_id FROM ( \
               SELECT user_id, school_id, ROW_NUMBER() OVER ( \
                 PARTITION BY user_id ORDER BY day DESC, school_id ASC) AS rn \
               FROM ds) WHERE rn = 1) \
             SELECT user_id, name, school_id, true AS in_roster FROM users WHERE role = 'teacher' \
             UNION ALL \
             SELECT has.user_id, CAST(NULL AS VARCHAR) AS name, ls.school_id, false AS in_roster \
             FROM has LEFT JOIN ls ON ls.user_id = has.user_id",
            inm = in_month("d.")
        )
    } else {
        "SELECT user_id, name, school_id, true AS in_roster FROM users WHERE role = 'teacher'"
            .to_string()
    };
    materialize(ctx, "tm_rows", &rows_sql).await?;

    // 4. Login days of the teacher rows: days whose summed logins are > 0.
    materialize(
        ctx,
        "login_days",
        &format!(
            "SELECT user_id, COUNT(*) AS login_days FROM ( \
               SELECT d.user_id, d.day FROM tm_rows t JOIN daily_activity d ON d.user_id = t.user_id \
               WHERE {} AND d.logins <> 0 \
               GROUP BY d.user_id, d.day HAVING SUM(d.logins) > 0) GROUP BY user_id",
            in_month("d.")
        ),
    )
    .await?;

    Ok(())
}

/// Step 3 (`ytd`).
async fn year_to_date(ctx: SessionContext, month: Month) -> Result<()> {
    let ctx = &ctx;
    let last = month.last_day();
    // 3. Points from 1 January to the month's last day.
    materialize(
        ctx,
        "ytd",
        &format!(
            "SELECT user_id, SUM(points) AS ytd FROM daily_scores \
             WHERE day BETWEEN DATE '{}' AND DATE '{last}' GROUP BY user_id",
            month.year_start()
        ),
    )
    .await?;

    Ok(())
}

/// Step 5: the per-school day facts (`day_school`).
async fn day_facts(ctx: SessionContext, month: Month) -> Result<Vec<DayFacts>> {
    let ctx = &ctx;
    let first = month.first_day();
    let last = month.last_day();
    let in_month = |t: &str| format!("{t}day BETWEEN DATE '{first}' AND DATE '{last}'");
    let days_in_month = month.days();
    // 5. Per school and day: distinct users with logins, logins, teachers'
    //    deep actions — a few days at a time (see the module comment): as
    //    many days per query as keep its groups under DAY_ROWS_PER_QUERY rows
    //    of `daily_activity`, so a county month is one query and a province's
    //    runs a day or a few at a time.
    let t0 = std::time::Instant::now();
    let month_rows = count(
        ctx,
        &format!(
            "SELECT COUNT(*) AS n FROM daily_activity WHERE {}",
            in_month("")
        ),
    )
    .await?;
    let per_query = days_per_query(month_rows, days_in_month);
    let spans: Vec<(u32, u32)> = (1..=days_in_month)
        .step_by(per_query as usize)
        .map(|from| (from, (from + per_query - 1).min(days_in_month)))
        .collect();
    tracing::debug!(
        month_rows,
        per_query,
        queries = spans.len(),
        "monthly day queries"
    );
    // Spans run concurrently, as many at a time as the session has target
    // partitions (a compacted day is one small file, which one thread scans).
    let parallel = ctx.state().config().target_partitions().max(1);
    let per_span = futures::stream::iter(spans.into_iter().map(|(from, to)| {
        let day = |d: u32| crate::month::Day {
            day: d,
            ..month.first_day()
        };
        let sql = format!(
            "SELECT CAST(date_part('day', day) AS BIGINT) AS dom, school_id, \
               SUM(CASE WHEN l > 0 THEN 1 ELSE 0 END) AS active_users, \
               SUM(l) AS logins, SUM(dp) AS teacher_deep \
             FROM (SELECT day, school_id, user_id, SUM(logins) AS l, \
                     SUM(CASE WHEN role = 'teacher' THEN deep_actions ELSE 0 END) AS dp \
                   FROM daily_activity WHERE day BETWEEN DATE '{}' AND DATE '{}' \
                     AND (logins <> 0 OR (role = 'teacher' AND deep_actions <> 0)) \
                   GROUP BY day, school_id, user_id) \
             WHERE school_id IS NOT NULL GROUP BY day, school_id",
            day(from),
            day(to)
        );
        // Spawned, so that concurrent spans run on different worker threads.
        let ctx = ctx.clone();
        async move {
            tokio::spawn(async move { collect(&ctx, &sql).await })
                .await
                .map_err(|e| AggregateError::Internal(format!("day query task: {e}")))?
        }
    }))
    .buffered(parallel)
    .collect::<Vec<_>>()
    .await;
    let mut day_batches = Vec::new();
    let mut days = Vec::new();
    for result in per_span {
        let batches = result?;
        for b in &batches {
            let c = Columns::new(b);
            let dom = c.ints("dom")?;
            let ids = c.strings("school_id")?;
            let active = c.ints("active_users")?;
            let logins = c.ints("logins")?;
            for i in 0..b.num_rows() {
                let (active, logins) = (active[i].unwrap_or(0), logins[i].unwrap_or(0));
                if active != 0 || logins != 0 {
                    days.push(DayFacts {
                        school_id: ids[i].clone().unwrap_or_default(),
                        day: dom[i].unwrap_or(0) as u32,
                        active_users: active,
                        logins,
                    });
                }
            }
        }
        day_batches.extend(batches);
    }
    days.sort_by(|a, b| (a.day, &a.school_id).cmp(&(b.day, &b.school_id)));
    tracing::debug!(phase = "days", elapsed = ?t0.elapsed(), "monthly");
    let day_schema = Arc::new(Schema::new(vec![
        Field::new("school_id", DataType::Utf8, true),
        Field::new("active_users", DataType::Int64, true),
        Field::new("logins", DataType::Int64, true),
        Field::new("teacher_deep", DataType::Int64, true),
    ]));
    let day_batches = day_batches
        .iter()
        .map(|b| conform(std::slice::from_ref(b), &day_schema))
        .collect::<Result<Vec<_>>>()?;
    register_batches(ctx, "day_school", day_schema, day_batches)?;

    Ok(days)
}

/// Step 6 (`registered`).
async fn registered(ctx: SessionContext, month: Month) -> Result<()> {
    let ctx = &ctx;
    let last = month.last_day();
    // 6. Students registered at each school up to the month's last day.
    materialize(
        ctx,
        "registered",
        &format!(
            "SELECT school_id, COUNT(*) AS registered FROM ( \
               SELECT school_id, user_id FROM daily_activity \
               WHERE day <= DATE '{last}' AND role = 'student' AND registers <> 0 \
               GROUP BY school_id, user_id HAVING SUM(registers) > 0) GROUP BY school_id"
        ),
    )
    .await?;

    Ok(())
}

/// Runs `sql`, registers its result as the in-memory table `name` (with the
/// query's schema, also when the result is empty) and returns the batches.
async fn materialize(ctx: &SessionContext, name: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    tracing::debug!(table = name, sql, "materialize");
    let t0 = std::time::Instant::now();
    let (schema, batches) = query(ctx, sql).await?;
    tracing::debug!(table = name, elapsed = ?t0.elapsed(), "materialized");
    let schema = batches.first().map_or(schema, |b| b.schema());
    register_batches(ctx, name, schema, batches.clone())?;
    Ok(batches)
}

fn teacher_facts(batches: &[RecordBatch]) -> Result<Vec<TeacherFacts>> {
    let mut out = Vec::new();
    for b in batches {
        let c = Columns::new(b);
        let user_id = c.strings("user_id")?;
        let name = c.strings("name")?;
        let school_id = c.strings("school_id")?;
        let county = c.strings("county_code")?;
        let points = c.ints("points")?;
        let ytd = c.ints("ytd_points")?;
        let login_days = c.ints("login_days")?;
        let meets = c.bools("meets_monthly_target")?;
        let in_school = c.ints("rank_in_school")?;
        let in_county = c.ints("rank_in_county")?;
        let in_roster = c.bools("in_roster")?;
        for i in 0..b.num_rows() {
            out.push(TeacherFacts {
                user_id: user_id[i].clone().unwrap_or_default(),
                name: name[i].clone(),
                school_id: school_id[i].clone(),
                county_code: county[i].clone(),
                points: points[i].unwrap_or(0),
                ytd_points: ytd[i].unwrap_or(0),
                login_days: login_days[i].unwrap_or(0),
                meets_monthly_target: meets[i].unwrap_or(false),
                rank_in_school: in_school[i].unwrap_or(0),
                rank_in_county: in_county[i],
                in_roster: in_roster[i].unwrap_or(false),
            });
        }
    }
    Ok(out)
}

fn school_facts(batches: &[RecordBatch]) -> Result<Vec<SchoolFacts>> {
    let mut out = Vec::new();
    for b in batches {
        let c = Columns::new(b);
        let s = |n| c.strings(n);
        let i = |n| c.ints(n);
        let f = |n| c.floats(n);
        let (id, name, county, county_name, category) = (
            s("school_id")?,
            s("name")?,
            s("county_code")?,
            s("county_name")?,
            s("category")?,
        );
        let (users, teachers, points_total, active_teachers, user_days, logins, deep) = (
            i("users")?,
            i("teachers")?,
            i("points_total")?,
            i("active_teachers")?,
            i("user_days")?,
            i("logins")?,
            i("deep_actions")?,
        );
        let (registered, base, rank_points, rank_active) = (
            i("registered_students")?,
            i("student_base")?,
            i("rank_points")?,
            i("rank_active_rate")?,
        );
        let (avg_points, active_ratio, dar, target, gap, adl, deep_index, reg_rate) = (
            f("avg_points")?,
            f("active_ratio")?,
            f("daily_active_rate")?,
            f("target_rate")?,
            f("rate_gap")?,
            f("avg_daily_logins")?,
            f("deep_index")?,
            f("registration_rate")?,
        );
        for r in 0..b.num_rows() {
            out.push(SchoolFacts {
                school_id: id[r].clone().unwrap_or_default(),
                name: name[r].clone(),
                county_code: county[r].clone().unwrap_or_default(),
                county_name: county_name[r].clone(),
                category: category[r].clone().unwrap_or_default(),
                users: users[r].unwrap_or(0),
                teachers: teachers[r].unwrap_or(0),
                points_total: points_total[r].unwrap_or(0),
                avg_points: avg_points[r],
                active_teachers: active_teachers[r].unwrap_or(0),
                active_ratio: active_ratio[r],
                user_days: user_days[r].unwrap_or(0),
                daily_active_rate: dar[r],
                target_rate: target[r].unwrap_or(REGULAR_TARGET_RATE),
                rate_gap: gap[r],
                logins: logins[r].unwrap_or(0),
                avg_daily_logins: adl[r].unwrap_or(0.0),
                deep_actions: deep[r].unwrap_or(0),
                deep_index: deep_index[r],
                registered_students: registered[r].unwrap_or(0),
                student_base: base[r].unwrap_or(0),
                registration_rate: reg_rate[r],
                rank_points: rank_points[r].unwrap_or(0),
                rank_active_rate: rank_active[r].unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The rule ids of the month's `daily_scores` rows that `rules` does not
/// list (at most ten, in order): points no `points_<rule>` column would show,
/// the mark of a month scored under another profile.
pub async fn unlisted_rules(
    ctx: &SessionContext,
    month: Month,
    rules: &[String],
) -> Result<Vec<String>> {
    let listed: Vec<String> = rules.iter().map(|r| quote_lit(r)).collect();
    let not_listed = if listed.is_empty() {
        String::new()
    } else {
        format!(" AND rule NOT IN ({})", listed.join(", "))
    };
    let batches = collect(
        ctx,
        &format!(
            "SELECT DISTINCT rule FROM daily_scores \
             WHERE day BETWEEN DATE '{}' AND DATE '{}'{not_listed} ORDER BY rule LIMIT 10",
            month.first_day(),
            month.last_day()
        ),
    )
    .await?;
    let mut out = Vec::new();
    for b in batches {
        let a = cast(b.column(0), &DataType::Utf8)?;
        let a = a.as_any().downcast_ref::<StringArray>().expect("utf8");
        out.extend(a.iter().flatten().map(str::to_owned));
    }
    Ok(out)
}

/// Finds a `user_id` listed twice in the `users` roster, if any.
pub async fn duplicate_user(ctx: &SessionContext) -> Result<Option<String>> {
    let batches = collect(
        ctx,
        "SELECT user_id FROM users GROUP BY user_id HAVING COUNT(*) > 1 ORDER BY user_id LIMIT 1",
    )
    .await?;
    for b in batches {
        if b.num_rows() > 0 {
            let a = cast(b.column(0), &DataType::Utf8)?;
            let a = a.as_any().downcast_ref::<StringArray>().expect("utf8");
            return Ok(Some(a.value(0).to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod span_tests {
    use super::days_per_query;

    #[test]
    fn a_small_month_is_one_query_and_a_province_a_few_days_each() {
        assert_eq!(days_per_query(0, 30), 30);
        assert_eq!(days_per_query(735_444, 30), 30);
        // ~150M rows a month: 5M a day, four days a query
        assert_eq!(days_per_query(150_000_000, 30), 4);
        // 29 days would fit a query: two queries of 15, not 29 and 1
        assert_eq!(days_per_query(20_038_170, 30), 15);
        assert_eq!(days_per_query(20_038_170, 31), 16);
        // a day larger than the budget still runs, alone
        assert_eq!(days_per_query(3_000_000_000, 30), 1);
    }
}

#[cfg(test)]
mod rate_tests {
    use std::collections::HashMap;

    use super::{DayFacts, summed_rates};

    #[test]
    fn the_daily_active_rate_adds_the_days_fractions_in_order() {
        let active = [
            6, 7, 5, 6, 5, 0, 5, 7, 0, 3, 2, 2, 1, 4, 0, 1, 1, 0, 7, 0, 4, 3, 4, 1, 2, 5, 4, 1, 2,
            2,
        ];
        let day = |school: &str, day: u32, active_users: i64| DayFacts {
            school_id: school.into(),
            day,
            active_users,
            logins: active_users,
        };
        let mut days: Vec<DayFacts> = (1..=30)
            .map(|d| day("a", d, active[d as usize - 1]))
            .filter(|d| d.active_users > 0)
            .collect();
        // a school with no roster users, and one not in the roster at all
        days.push(day("b", 30, 3));
        days.push(day("c", 30, 3));
        let users = HashMap::from([("a".to_string(), 7), ("b".to_string(), 0)]);
        let rates = summed_rates(&days, &users, 30);
        // (1/D) · Σ active / users, day by day: one ulp above Σ active / (users · D)
        assert_eq!(rates["a"], 0.4285714285714286);
        let pooled = active.iter().sum::<i64>() as f64 / (7.0 * 30.0);
        assert_eq!(pooled, 0.42857142857142855);
        assert_eq!(rates.len(), 1, "{rates:?}");
    }
}

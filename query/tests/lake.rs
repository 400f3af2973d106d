//! The lake as tables: schemas, partitions, deltas, rosters, the gate.

mod common;

use common::{build, corrupt_day, golden, pretty, write_teacher_monthly, write_teacher_monthly_of};
use huoyue_query::{Lake, QueryConfig, QueryError, register_lake, run_sql, session};

async fn sql(lake: &std::path::Path, statement: &str) -> Result<String, QueryError> {
    let ctx = session(&QueryConfig::default());
    register_lake(&ctx, lake).await?;
    Ok(pretty(&run_sql(&ctx, statement).await?))
}

#[tokio::test]
async fn registers_every_table() {
    let fixture = build();
    let out = sql(
        &fixture.lake(),
        "SELECT table_name, table_type FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +-----------------+------------+
            | table_name      | table_type |
            +-----------------+------------+
            | daily_activity  | BASE TABLE |
            | daily_scores    | BASE TABLE |
            | daily_totals    | VIEW       |
            | events          | BASE TABLE |
            | rejected        | BASE TABLE |
            | school_monthly  | BASE TABLE |
            | schools         | BASE TABLE |
            | teacher_monthly | BASE TABLE |
            | users           | VIEW       |
            +-----------------+------------+"
        )
    );
}

#[tokio::test]
async fn daily_scores_rows_are_the_deltas_of_every_file() {
    let fixture = build();
    let out = sql(
        &fixture.lake(),
        "SELECT day, user_id, school_id, rule, points, events FROM daily_scores \
         ORDER BY day, user_id, rule, points",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+---------+------------+-----------+--------+--------+
            | day        | user_id | school_id  | rule      | points | events |
            +------------+---------+------------+-----------+--------+--------+
            | 2026-11-03 | t-1001  | 3333000001 | login     | 1      | 1      |
            | 2026-11-03 | t-1001  | 3333000001 | login     | 2      | 1      |
            | 2026-11-03 | t-1001  | 3333000001 | space_use | -1     | 0      |
            | 2026-11-03 | t-1001  | 3333000001 | space_use | 2      | 2      |
            | 2026-11-03 | t-1002  | 0330000003 | login     | 1      | 1      |
            | 2026-11-04 | t-1001  | 3333000001 | login     | 1      | 1      |
            | 2026-11-04 | t-1002  | 0330000003 | login     | 1      | 1      |
            +------------+---------+------------+-----------+--------+--------+"
        )
    );
}

#[tokio::test]
async fn daily_totals_sums_the_deltas() {
    let fixture = build();
    let out = sql(
        &fixture.lake(),
        "SELECT * FROM daily_totals ORDER BY day, user_id, rule",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+---------+------------+-----------+--------+--------+
            | day        | user_id | school_id  | rule      | points | events |
            +------------+---------+------------+-----------+--------+--------+
            | 2026-11-03 | t-1001  | 3333000001 | login     | 3      | 2      |
            | 2026-11-03 | t-1001  | 3333000001 | space_use | 1      | 2      |
            | 2026-11-03 | t-1002  | 0330000003 | login     | 1      | 1      |
            | 2026-11-04 | t-1001  | 3333000001 | login     | 1      | 1      |
            | 2026-11-04 | t-1002  | 0330000003 | login     | 1      | 1      |
            +------------+---------+------------+-----------+--------+--------+"
        )
    );
}

/// Rows a move to an earlier event's school left under the old one (the
/// sums written there, negated) sum to nothing: `daily_totals` leaves that
/// key out, as one flush of every event would never have written it.
#[tokio::test]
async fn daily_totals_leaves_out_keys_that_sum_to_nothing() {
    let fixture = build();
    let lake = fixture.lake();
    common::write_scores(
        &lake,
        "day=2026-11-04/part-00007-moved.parquet",
        &[
            ("t-1003", "3333000001", "teach", 5, 1),
            ("t-1003", "3333000001", "teach", -5, -1),
            ("t-1003", "3333000002", "teach", 5, 1),
        ],
    );
    let out = sql(
        &lake,
        "SELECT school_id, points, events FROM daily_totals WHERE user_id = 't-1003'",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+--------+--------+
            | school_id  | points | events |
            +------------+--------+--------+
            | 3333000002 | 5      | 1      |
            +------------+--------+--------+"
        )
    );
}

#[tokio::test]
async fn column_types_follow_the_layout() {
    let fixture = build();
    let out = sql(
        &fixture.lake(),
        "SELECT arrow_typeof(day) AS day, arrow_typeof(points) AS points, \
                arrow_typeof(user_id) AS user_id \
         FROM daily_totals LIMIT 1",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +--------+--------+---------+
            | day    | points | user_id |
            +--------+--------+---------+
            | Date32 | Int64  | Utf8    |
            +--------+--------+---------+"
        )
    );
}

#[tokio::test]
async fn events_activity_and_rejected_read_back() {
    let fixture = build();
    let lake = fixture.lake();
    let out = sql(
        &lake,
        "SELECT day, event_id, ts, action, items, \"offset\" FROM events ORDER BY event_id",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+----------+----------------------+----------------+-------------------+--------+
            | day        | event_id | ts                   | action         | items             | offset |
            +------------+----------+----------------------+----------------+-------------------+--------+
            | 2026-11-03 | e-000001 | 2026-11-03T00:15:30Z | login          |                   | 1      |
            | 2026-11-03 | e-000002 | 2026-11-03T00:16:30Z | profile_update | [avatar, contact] | 2      |
            +------------+----------+----------------------+----------------+-------------------+--------+"
        )
    );
    let out = sql(
        &lake,
        "SELECT day, user_id, SUM(logins) AS logins, SUM(events) AS events \
         FROM daily_activity GROUP BY day, user_id ORDER BY user_id",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+---------+--------+--------+
            | day        | user_id | logins | events |
            +------------+---------+--------+--------+
            | 2026-11-03 | s-2001  | 0      | 1      |
            | 2026-11-03 | t-1001  | 3      | 4      |
            +------------+---------+--------+--------+"
        )
    );
    let out = sql(
        &lake,
        "SELECT day, reason, detail, arrow_cast(raw, 'Utf8') AS raw, \"offset\" FROM rejected",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+----------+--------+-----------+--------+
            | day        | reason   | detail | raw       | offset |
            +------------+----------+--------+-----------+--------+
            | 2026-11-22 | bad_json |        | {not json | 7      |
            +------------+----------+--------+-----------+--------+"
        )
    );
}

#[tokio::test]
async fn rosters_keep_ids_as_strings() {
    let fixture = build();
    let lake = fixture.lake();
    let out = sql(&lake, "SELECT * FROM schools ORDER BY school_id")
        .await
        .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +------------+---------------------+-------------+-------------+-----------+----------+--------------+
            | school_id  | name                | county_code | county_name | city_code | category | student_base |
            +------------+---------------------+-------------+-------------+-----------+----------+--------------+
            | 0330000003 | Second School, East | 010101      | 示例县      | 010100    | regular  | 800          |
            | 3333000001 | 第一中学            | 330102      | 上城区      | 330100    | demo     | 1200         |
            +------------+---------------------+-------------+-------------+-----------+----------+--------------+"
        )
    );
    let out = sql(
        &lake,
        "SELECT u.user_id, u.role, u.name, s.county_code, arrow_typeof(s.student_base) AS t \
         FROM users u JOIN schools s USING (school_id) ORDER BY u.user_id",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +---------+---------+------+-------------+-------+
            | user_id | role    | name | county_code | t     |
            +---------+---------+------+-------------+-------+
            | s-2001  | student |      | 330102      | Int64 |
            | t-1001  | teacher |      | 330102      | Int64 |
            | t-1002  | teacher |      | 010101      | Int64 |
            +---------+---------+------+-------------+-------+"
        )
    );
}

#[tokio::test]
async fn missing_folders_and_rosters_are_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = sql(
        dir.path(),
        "SELECT (SELECT count(*) FROM events) AS events, \
                (SELECT count(*) FROM daily_totals) AS totals, \
                (SELECT count(*) FROM teacher_monthly) AS teachers, \
                (SELECT count(*) FROM school_monthly) AS schools_m, \
                (SELECT count(*) FROM schools) AS schools, \
                (SELECT count(*) FROM users) AS users",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +--------+--------+----------+-----------+---------+-------+
            | events | totals | teachers | schools_m | schools | users |
            +--------+--------+----------+-----------+---------+-------+
            | 0      | 0      | 0        | 0         | 0       | 0     |
            +--------+--------+----------+-----------+---------+-------+"
        )
    );
    // The declared columns exist even with no file at all.
    sql(
        dir.path(),
        "SELECT user_id, school_id, role, name FROM users",
    )
    .await
    .unwrap();
    sql(dir.path(), "SELECT day, points FROM daily_scores")
        .await
        .unwrap();
}

/// Months written under profiles with other rules have other `points_<rule>`
/// columns: the table reads them all, the missing columns as NULL. (The
/// merged schema kept them non-nullable and every query of the table failed.)
#[tokio::test]
async fn months_of_different_profiles_read_together() {
    let fixture = build();
    write_teacher_monthly_of(&fixture.lake(), "2026-10", &["login", "profile"]);
    write_teacher_monthly_of(&fixture.lake(), "2026-11", &["login"]);
    let lake = Lake::open(fixture.lake(), QueryConfig::default()).unwrap();
    let out = lake
        .query(
            "SELECT month, count(*) AS n, count(points_profile) AS p, sum(points_login) AS l \
             FROM teacher_monthly GROUP BY month ORDER BY month",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        pretty(&out.batches),
        golden(
            "
            +---------+---+---+---+
            | month   | n | p | l |
            +---------+---+---+---+
            | 2026-10 | 1 | 1 | 5 |
            | 2026-11 | 1 | 0 | 5 |
            +---------+---+---+---+"
        )
    );
}

#[tokio::test]
async fn monthly_tables_take_the_schema_of_their_files() {
    let fixture = build();
    let lake = Lake::open(fixture.lake(), QueryConfig::default()).unwrap();
    let before = lake
        .query("SELECT * FROM teacher_monthly", None)
        .await
        .unwrap();
    assert_eq!(before.num_rows(), 0);
    assert_eq!(before.schema.fields().len(), 1, "only the month column");
    // a column the job has not written yet: the error says why
    let err = lake
        .query("SELECT user_id FROM school_monthly", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("No field named user_id")
            && err.contains("(school_monthly has no month yet: `huoyue-aggregate monthly"),
        "{err}"
    );

    write_teacher_monthly(&fixture.lake());
    // A new query (new session) sees the table the job wrote meanwhile.
    let after = lake
        .query(
            "SELECT month, user_id, points FROM teacher_monthly WHERE month = '2026-11' ORDER BY user_id",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        pretty(&after.batches),
        golden(
            "
            +---------+---------+--------+
            | month   | user_id | points |
            +---------+---------+--------+
            | 2026-11 | t-1001  | 5      |
            | 2026-11 | t-1002  | 2      |
            +---------+---------+--------+"
        )
    );
}

#[tokio::test]
async fn new_files_are_seen_by_the_next_query() {
    let fixture = build();
    let lake = Lake::open(fixture.lake(), QueryConfig::default()).unwrap();
    let ctx = lake.session().await.unwrap();
    let count = "SELECT count(*) AS n FROM daily_scores";
    assert!(pretty(&run_sql(&ctx, count).await.unwrap()).contains("| 7 |"));
    common::write_scores(
        &fixture.lake(),
        "day=2026-11-05/part-00009-late.parquet",
        &[("t-1003", "3333000001", "login", 1, 1)],
    );
    // Same session: the listing is not cached.
    assert!(pretty(&run_sql(&ctx, count).await.unwrap()).contains("| 8 |"));
}

#[tokio::test]
async fn a_filter_on_day_reads_only_that_folder() {
    let fixture = build();
    let lake = fixture.lake();
    corrupt_day(&lake);

    // Folders of other days are not opened: the corrupt file does not matter.
    let out = sql(
        &lake,
        "SELECT SUM(points) AS points FROM daily_totals WHERE day = DATE '2026-11-03'",
    )
    .await
    .unwrap();
    assert!(out.contains("| 5      |"), "{out}");
    let out = sql(
        &lake,
        "SELECT SUM(points) AS points FROM daily_scores \
         WHERE day BETWEEN DATE '2026-11-01' AND DATE '2026-11-04'",
    )
    .await
    .unwrap();
    assert!(out.contains("| 7      |"), "{out}");
    let out = sql(
        &lake,
        "SELECT count(*) AS n FROM daily_scores WHERE day = '2026-11-04'",
    )
    .await
    .unwrap();
    assert!(out.contains("| 2 |"), "{out}");

    // The plan lists the files of that day only.
    let plan = sql(
        &lake,
        "EXPLAIN SELECT user_id, points FROM daily_scores WHERE day = DATE '2026-11-04'",
    )
    .await
    .unwrap();
    assert!(
        plan.contains("day=2026-11-04/part-00002-c.parquet"),
        "{plan}"
    );
    assert!(!plan.contains("day=2026-11-03"), "{plan}");
    assert!(!plan.contains("day=2026-11-05"), "{plan}");

    // Reading every day does hit the corrupt file: a lake error.
    let error = sql(&lake, "SELECT SUM(points) FROM daily_scores")
        .await
        .unwrap_err();
    assert!(
        matches!(error, QueryError::Lake(_) | QueryError::Sql(_)),
        "{error:?}"
    );
    // what a user sees names the file
    let error = query_error(&lake, "SELECT SUM(points) FROM daily_scores").await;
    assert!(
        matches!(&error, QueryError::Lake(m)
            if m.starts_with("daily_scores/day=2026-11-05/part-00003-broken.parquet: ")),
        "{error:?}"
    );
}

/// The error `sql` fails with, as a user of the lake sees it ([`Lake::query`]).
async fn query_error(lake: &std::path::Path, sql: &str) -> QueryError {
    Lake::open(lake, QueryConfig::default())
        .unwrap()
        .query(sql, None)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_stray_folder_that_is_not_a_day_is_named() {
    let fixture = build();
    let lake = fixture.lake();
    common::write_scores(
        &lake,
        "day=2026-11-03.bak/part-00000-a.parquet",
        &[("t-1003", "3333000001", "login", 1, 1)],
    );
    let error = query_error(&lake, "SELECT SUM(points) FROM daily_scores").await;
    assert!(
        matches!(&error, QueryError::Lake(m)
            if m == "daily_scores/day=2026-11-03.bak: not a day folder (day=YYYY-MM-DD); move it out of the lake"),
        "{error:?}"
    );
    // hidden, it is not listed: the table reads again
    std::fs::rename(
        lake.join("daily_scores/day=2026-11-03.bak"),
        lake.join("daily_scores/_day=2026-11-03.bak"),
    )
    .unwrap();
    let out = sql(&lake, "SELECT SUM(points) AS points FROM daily_scores")
        .await
        .unwrap();
    assert!(out.contains("| 7      |"), "{out}");
}

#[tokio::test]
async fn a_missing_lake_is_named() {
    let error = Lake::open("/nonexistent/huoyue-lake", QueryConfig::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "lake directory /nonexistent/huoyue-lake does not exist or is not a directory"
    );
    let ctx = session(&QueryConfig::default());
    assert!(matches!(
        register_lake(&ctx, std::path::Path::new("/nonexistent/huoyue-lake")).await,
        Err(QueryError::LakeMissing(_))
    ));
}

#[tokio::test]
async fn the_gate_refuses_writes_and_foreign_files() {
    let fixture = build();
    let lake = Lake::open(fixture.lake(), QueryConfig::default()).unwrap();
    let refused = [
        (
            "CREATE TABLE t (a INT)",
            "read-only: CREATE TABLE is not allowed",
        ),
        (
            "INSERT INTO daily_scores VALUES ('u', 's', 'r', 1, 1, DATE '2026-11-03')",
            "read-only: INSERT is not allowed",
        ),
        (
            "COPY daily_scores TO '/tmp/huoyue-copy.parquet'",
            "read-only: COPY is not allowed",
        ),
        (
            "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc'",
            "read-only: CREATE EXTERNAL TABLE is not allowed",
        ),
        ("DROP TABLE events", "read-only: DROP is not allowed"),
        (
            "SET datafusion.execution.target_partitions = 1",
            "read-only: SET is not allowed",
        ),
        (
            "SELECT 1; SELECT 2",
            "read-only: one statement at a time is allowed, got 2",
        ),
    ];
    for (statement, message) in refused {
        let error = lake.query(statement, None).await.unwrap_err();
        assert_eq!(error.to_string(), message, "{statement}");
    }
    for (statement, fragment) in [
        ("SELECT * FROM '/etc/passwd'", "not found"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet"),
        ("SELECT * FROM 'file:///etc/passwd'", "not found"),
    ] {
        let error = lake.query(statement, None).await.unwrap_err();
        assert!(
            matches!(error, QueryError::Sql(_)),
            "{statement}: {error:?}"
        );
        assert!(error.to_string().contains(fragment), "{statement}: {error}");
    }
    assert!(!std::path::Path::new("/tmp/huoyue-copy.parquet").exists());
}

#[tokio::test]
async fn reads_that_are_not_select_work() {
    let fixture = build();
    let lake = Lake::open(fixture.lake(), QueryConfig::default()).unwrap();
    for statement in [
        "SHOW TABLES",
        "SHOW COLUMNS FROM daily_scores",
        "DESCRIBE events",
        "EXPLAIN SELECT * FROM daily_totals",
        "WITH t AS (SELECT * FROM daily_totals) SELECT count(*) FROM t",
    ] {
        let output = lake.query(statement, None).await.unwrap();
        assert!(output.num_rows() > 0, "{statement}");
    }
}

#[tokio::test]
async fn max_rows_is_enforced() {
    let fixture = build();
    let lake = Lake::open(fixture.lake(), QueryConfig::default()).unwrap();
    assert_eq!(
        lake.query("SELECT * FROM daily_scores", Some(7))
            .await
            .unwrap()
            .num_rows(),
        7
    );
    let error = lake
        .query("SELECT * FROM daily_scores", Some(6))
        .await
        .unwrap_err();
    assert!(
        matches!(error, QueryError::TooManyRows { limit: 6 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_memory_limit_holds() {
    let config = QueryConfig {
        memory_limit: Some(1 << 20),
        ..QueryConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path(), config).unwrap();
    let error = lake
        .query(
            "SELECT array_agg(value) FROM generate_series(1, 5000000)",
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::MemoryLimit(_)), "{error:?}");
    assert!(
        error.to_string().starts_with("memory limit exceeded"),
        "{error}"
    );
}

#[tokio::test]
async fn a_parquet_roster_wins_over_csv_and_ids_become_strings() {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;

    let fixture = build();
    let lake = fixture.lake();
    // A roster exported with numeric school ids and no role-less rows.
    let batch = RecordBatch::try_from_iter(vec![
        (
            "user_id",
            Arc::new(StringArray::from(vec!["t-9"])) as ArrayRef,
        ),
        (
            "school_id",
            Arc::new(Int64Array::from(vec![3333000001_i64])) as ArrayRef,
        ),
        (
            "role",
            Arc::new(StringArray::from(vec!["teacher"])) as ArrayRef,
        ),
        (
            "phone",
            Arc::new(StringArray::from(vec!["123"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(lake.join("dims/users.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let out = sql(&lake, "SELECT *, arrow_typeof(school_id) AS t FROM users")
        .await
        .unwrap();
    assert_eq!(
        out,
        golden(
            "
            +---------+------------+---------+------+-------+------+
            | user_id | school_id  | role    | name | phone | t    |
            +---------+------------+---------+------+-------+------+
            | t-9     | 3333000001 | teacher |      | 123   | Utf8 |
            +---------+------------+---------+------+-------+------+"
        )
    );
}

#[tokio::test]
async fn a_roster_without_its_ids_is_a_lake_error() {
    let fixture = build();
    let lake = fixture.lake();
    std::fs::write(lake.join("dims/users.csv"), "name,role\nA,teacher\n").unwrap();
    let error = sql(&lake, "SELECT 1").await.unwrap_err();
    assert!(matches!(error, QueryError::Lake(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("the users roster has no column user_id"),
        "{error}"
    );
}

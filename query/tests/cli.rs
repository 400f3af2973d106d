//! The `huoyue-query` binary: one statement, the shell, errors, serve.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_huoyue-query");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HUOYUE_HISTORY", "/dev/null")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Exactly one line on stderr, starting with `error: `.
fn assert_one_error_line(output: &Output) -> String {
    assert!(!output.status.success());
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    err.trim_end().to_owned()
}

const TOTALS: &str =
    "SELECT day, user_id, points FROM daily_totals WHERE rule = 'login' ORDER BY day, user_id";

#[test]
fn one_statement_as_a_table() {
    let fixture = common::build();
    let lake = fixture.lake();
    let output = run(&["--lake", lake.to_str().unwrap(), "-c", TOTALS]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "\
+------------+---------+--------+
| day        | user_id | points |
+------------+---------+--------+
| 2026-11-03 | t-1001  | 3      |
| 2026-11-03 | t-1002  | 1      |
| 2026-11-04 | t-1001  | 1      |
| 2026-11-04 | t-1002  | 1      |
+------------+---------+--------+
"
    );
}

#[test]
fn one_statement_as_csv_and_json() {
    let fixture = common::build();
    let lake = fixture.lake();
    let lake = lake.to_str().unwrap();
    let output = run(&["--lake", lake, "-c", TOTALS, "--format", "csv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "day,user_id,points\n2026-11-03,t-1001,3\n2026-11-03,t-1002,1\n\
         2026-11-04,t-1001,1\n2026-11-04,t-1002,1\n"
    );

    let output = run(&["--lake", lake, "--format", "json", "-c", TOTALS]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"day": "2026-11-03", "user_id": "t-1001", "points": 3},
            {"day": "2026-11-03", "user_id": "t-1002", "points": 1},
            {"day": "2026-11-04", "user_id": "t-1001", "points": 1},
            {"day": "2026-11-04", "user_id": "t-1002", "points": 1}
        ])
    );

    // Nested and null values in CSV and JSON.
    let sql = "SELECT event_id, items, stage FROM events ORDER BY event_id";
    let output = run(&["--lake", lake, "--format", "csv", "-c", sql]);
    assert_eq!(
        stdout(&output),
        "event_id,items,stage\ne-000001,,\ne-000002,\"[avatar, contact]\",\n"
    );
    let output = run(&["--lake", lake, "--format", "json", "-c", sql]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"event_id": "e-000001", "items": null, "stage": null},
            {"event_id": "e-000002", "items": ["avatar", "contact"], "stage": null}
        ])
    );

    // An empty result still has its header (CSV) or is an empty array (JSON).
    let empty = "SELECT user_id, points FROM daily_scores WHERE false";
    assert_eq!(
        stdout(&run(&["--lake", lake, "--format", "csv", "-c", empty])),
        "user_id,points\n"
    );
    assert_eq!(
        stdout(&run(&["--lake", lake, "--format", "json", "-c", empty])).trim(),
        "[]"
    );
    // a JSON object keeps one value per name: two columns of one name are
    // refused, not one of them dropped
    let twice = "SELECT s.user_id, t.user_id FROM daily_scores s JOIN daily_scores t ON s.user_id = t.user_id";
    let err = assert_one_error_line(&run(&["--lake", lake, "--format", "json", "-c", twice]));
    assert!(err.contains("two columns named \"user_id\""), "{err}");
    // a statement may start with a comment (it was taken for a flag)
    let commented = "-- the rows\nSELECT count(*) AS n FROM daily_scores";
    let output = run(&["--lake", lake, "--format", "csv", "-c", commented]);
    assert_eq!(stdout(&output), "n\n7\n", "{}", stderr(&output));
}

#[test]
fn refusals_are_one_line_errors() {
    let fixture = common::build();
    let lake = fixture.lake();
    let lake = lake.to_str().unwrap();
    let cases = [
        (
            "CREATE TABLE t (a INT)",
            "error: read-only: CREATE TABLE is not allowed",
        ),
        (
            "INSERT INTO daily_scores SELECT * FROM daily_scores",
            "error: read-only: INSERT is not allowed",
        ),
        (
            "COPY (SELECT 1) TO '/tmp/huoyue-cli-copy.csv'",
            "error: read-only: COPY is not allowed",
        ),
        (
            "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc'",
            "error: read-only: CREATE EXTERNAL TABLE is not allowed",
        ),
        ("DROP TABLE events", "error: read-only: DROP is not allowed"),
        (
            "SET datafusion.execution.batch_size = 1",
            "error: read-only: SET is not allowed",
        ),
        (
            "SELECT 1; SELECT 2",
            "error: read-only: one statement at a time is allowed, got 2",
        ),
    ];
    for (sql, message) in cases {
        let output = run(&["--lake", lake, "-c", sql]);
        assert_eq!(output.status.code(), Some(1), "{sql}");
        assert_eq!(assert_one_error_line(&output), message, "{sql}");
    }
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ] {
        let output = run(&["--lake", lake, "-c", sql]);
        let line = assert_one_error_line(&output);
        assert!(!stdout(&output).contains("root"), "{sql}");
        assert!(line.contains("not found"), "{sql}: {line}");
    }
    assert!(!std::path::Path::new("/tmp/huoyue-cli-copy.csv").exists());
}

#[test]
fn bad_flag_and_missing_lake_are_one_line() {
    let output = run(&["--lake", "/tmp", "--bogus"]);
    assert_eq!(output.status.code(), Some(2));
    let line = assert_one_error_line(&output);
    assert!(line.contains("--bogus"), "{line}");

    let output = run(&["-c", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(assert_one_error_line(&output).contains("--lake"));

    let output = run(&["--lake", "/tmp", "--format", "xml", "-c", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(2));
    assert_one_error_line(&output);

    let output = run(&["--lake", "/nonexistent/huoyue-lake", "-c", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        assert_one_error_line(&output),
        "error: lake directory /nonexistent/huoyue-lake does not exist or is not a directory"
    );

    let output = run(&[
        "serve",
        "--lake",
        "/nonexistent/huoyue-lake",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        assert_one_error_line(&output),
        "error: lake directory /nonexistent/huoyue-lake does not exist or is not a directory"
    );

    let output = run(&["--help"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("serve"));
}

#[test]
fn sql_errors_are_one_line() {
    let fixture = common::build();
    let lake = fixture.lake();
    let output = run(&[
        "--lake",
        lake.to_str().unwrap(),
        "-c",
        "SELECT nope FROM events",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(assert_one_error_line(&output).contains("nope"));
}

#[test]
fn the_shell_reads_statements_until_semicolons() {
    let fixture = common::build();
    let lake = fixture.lake();
    let history = fixture.dir.path().join("history");
    let mut child = Command::new(BIN)
        .args(["--lake", lake.to_str().unwrap()])
        .env("HUOYUE_HISTORY", &history)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"SELECT 'first' AS a;\n\
              SELECT 'x;\ny' AS s; SELECT 'third' AS c;\n\
              SELEC oops;\n\
              SELECT rule,\n  SUM(points) AS total\nFROM daily_totals\nGROUP BY rule ORDER BY rule;\n\
              CREATE TABLE t (a INT);\n\
              \\q\n\
              SELECT 'never' AS b;\n",
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let err = stderr(&output);
    assert!(out.contains("| first |"), "{out}");
    // two statements on a line, a `;` inside a string
    assert!(out.contains("| x;"), "{out}");
    assert!(out.contains("| third |"), "{out}");
    assert!(out.contains("| login     | 6     |"), "{out}");
    assert!(out.contains("| space_use | 1     |"), "{out}");
    assert!(!out.contains("never"), "{out}");
    assert!(err.contains("error: "), "{err}");
    assert!(err.contains("SELEC"), "{err}");
    assert!(
        err.contains("error: read-only: CREATE TABLE is not allowed"),
        "{err}"
    );
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("SELECT 'first' AS a;"), "{saved}");
}

/// `SELECT count(*) AS n FROM daily_scores WHERE user_id = 'u0' OR …`, `terms` terms.
fn long_or_chain(terms: usize) -> String {
    let or: Vec<String> = (0..terms).map(|i| format!("user_id = 'u{i}'")).collect();
    format!(
        "SELECT count(*) AS n FROM daily_scores WHERE {}",
        or.join(" OR ")
    )
}

/// The CLI runs a statement on a thread with a large stack (the main
/// thread's 8 MiB overflowed at a few thousand terms).
#[test]
fn a_long_chain_of_terms_is_answered() {
    let fixture = common::build();
    let lake = fixture.lake();
    let sql = long_or_chain(3_000);
    let output = run(&[
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        &sql,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "n\n0\n");
}

/// `huoyue-query serve --lake LAKE --listen 127.0.0.1:0 ARGS…`, and the
/// address it listens on.
fn serve(lake: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--lake",
            lake.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    // the rest of its log is read, or its writes would fail on a closed pipe
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, addr)
}

/// Sends `request` (whole, with `Connection: close`) to `addr`; the reply.
fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn serve_listens_and_answers() {
    let fixture = common::build();
    let lake = fixture.lake();
    let token_file = fixture.dir.path().join("token");
    std::fs::write(&token_file, "  abc123\n").unwrap();
    let (mut child, addr) = serve(&lake, &["--token-file", token_file.to_str().unwrap()]);
    let get = |request: &str| http(&addr, request);
    let health = get(HEALTH);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    let post_csv = |body: &str| {
        get(&format!(
            "POST /sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer abc123\r\n\
             Accept: text/csv\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    };
    let body = "SELECT count(*) AS n FROM daily_scores";
    let sql = post_csv(body);
    assert!(sql.starts_with("HTTP/1.1 200"), "{sql}");
    assert!(sql.ends_with("n\n7\n"), "{sql}");
    let denied = get(&format!(
        "POST /sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    // An analyst's long OR chain (DataFusion plans it by recursion: it
    // overflowed a 2 MiB worker stack and aborted the server).
    let long = post_csv(&long_or_chain(1_500));
    assert!(long.starts_with("HTTP/1.1 200"), "{long}");
    assert!(long.ends_with("n\n0\n"), "{long}");
    let health = get(HEALTH);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // SIGTERM stops it cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A query that keeps every query thread busy for seconds between two
/// yields (a large nested-loop join) runs beside the requests, not on their
/// threads: `/health` answers at once meanwhile (a liveness probe must not
/// fail on a busy server) and the query's timeout is answered on time. On
/// the requests' threads, both waited for the join's next yield: seconds.
#[test]
fn a_busy_server_answers_health_and_times_out_on_time() {
    let fixture = common::build();
    let (mut child, addr) = serve(&fixture.lake(), &["--query-timeout", "2s"]);
    let join = "SELECT count(*) AS n FROM generate_series(1, 40000) a \
                JOIN generate_series(1, 40000) b ON a.value + b.value = 3 OR a.value * 7 = b.value";
    let request = format!(
        "POST /sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{join}",
        join.len()
    );
    let started = std::time::Instant::now();
    let busy = {
        let addr = addr.clone();
        std::thread::spawn(move || (http(&addr, &request), started.elapsed()))
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let asked = std::time::Instant::now();
    let health = http(&addr, HEALTH);
    let health_took = asked.elapsed();
    let answered_at = started.elapsed();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let (reply, replied_at) = busy.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
    assert!(reply.contains(r#""code":"timeout""#), "{reply}");
    // the health check came back while the query still ran, at once
    assert!(answered_at < replied_at, "{answered_at:?} {replied_at:?}");
    assert!(
        health_took < std::time::Duration::from_millis(1500),
        "{health_took:?}"
    );
    // and the timeout's answer came when due, not at the join's next yield
    assert!(
        replied_at < std::time::Duration::from_millis(3500),
        "{replied_at:?}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

//! The HTTP server, bound on 127.0.0.1:0, spoken to over plain TCP.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};
use datafusion::arrow::ipc::reader::StreamReader;
use huoyue_query::server::{ServerConfig, bind, serve};
use huoyue_query::{Lake, QueryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const TOKEN: &str = "s3cret-token";

struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _fixture: common::Fixture,
}

async fn start(config: ServerConfig, query: QueryConfig) -> Server {
    let fixture = common::build();
    let lake = Lake::open(fixture.lake(), query).unwrap();
    let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, lake, config, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        _stop: stop,
        _fixture: fixture,
    }
}

async fn start_default() -> Server {
    start(
        ServerConfig {
            token: Some(TOKEN.to_owned()),
            ..ServerConfig::default()
        },
        QueryConfig::default(),
    )
    .await
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

async fn post_sql(server: &Server, accept: Option<&str>, sql: &str) -> Reply {
    let (name, value) = auth();
    let mut headers = vec![(name, value.as_str())];
    if let Some(accept) = accept {
        headers.push(("Accept", accept));
    }
    request(server.addr, "POST", "/sql", &headers, sql).await
}

const TOTALS: &str =
    "SELECT day, user_id, points FROM daily_totals WHERE rule = 'login' ORDER BY day, user_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token() {
    let server = start_default().await;
    let reply = request(server.addr, "GET", "/health", &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_needs_the_right_token() {
    let server = start_default().await;
    let none = request(server.addr, "POST", "/sql", &[], "SELECT 1").await;
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert!(none.json()["error"].as_str().unwrap().contains("token"));
    let wrong = request(
        server.addr,
        "POST",
        "/sql",
        &[("Authorization", "Bearer nope")],
        "SELECT 1",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let right = post_sql(&server, None, "SELECT 1 AS one").await;
    assert_eq!(right.status, 200, "{}", right.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_by_default() {
    let server = start_default().await;
    for accept in [None, Some("application/json"), Some("*/*")] {
        let reply = post_sql(&server, accept, TOTALS).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            reply.json(),
            serde_json::json!({
                "columns": [
                    {"name": "day", "type": "Date32"},
                    {"name": "user_id", "type": "Utf8"},
                    {"name": "points", "type": "Int64"}
                ],
                "rows": [
                    ["2026-11-03", "t-1001", 3],
                    ["2026-11-03", "t-1002", 1],
                    ["2026-11-04", "t-1001", 1],
                    ["2026-11-04", "t-1002", 1]
                ]
            })
        );
    }
    let empty = post_sql(
        &server,
        None,
        "SELECT user_id FROM daily_scores WHERE false",
    )
    .await;
    assert_eq!(
        empty.json(),
        serde_json::json!({"columns": [{"name": "user_id", "type": "Utf8"}], "rows": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_by_accept() {
    let server = start_default().await;
    let reply = post_sql(&server, Some("text/csv"), TOTALS).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        reply.text(),
        "day,user_id,points\n2026-11-03,t-1001,3\n2026-11-03,t-1002,1\n\
         2026-11-04,t-1001,1\n2026-11-04,t-1002,1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_ipc_by_accept() {
    let server = start_default().await;
    let reply = post_sql(&server, Some("application/vnd.apache.arrow.stream"), TOTALS).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.apache.arrow.stream")
    );
    let reader = StreamReader::try_new(Cursor::new(reply.body), None).unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let mut days = Vec::new();
    let mut users = Vec::new();
    let mut points = Vec::new();
    for batch in &batches {
        let day = batch
            .column(0)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap();
        let user = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let point = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            days.push(day.value_as_date(i).unwrap().to_string());
            users.push(user.value(i).to_owned());
            points.push(point.value(i));
        }
    }
    assert_eq!(
        days,
        ["2026-11-03", "2026-11-03", "2026-11-04", "2026-11-04"]
    );
    assert_eq!(users, ["t-1001", "t-1002", "t-1001", "t-1002"]);
    assert_eq!(points, [3, 1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_accept_is_406() {
    let server = start_default().await;
    let reply = post_sql(&server, Some("text/html"), "SELECT 1").await;
    assert_eq!(reply.status, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_are_400_with_datafusion_message() {
    let server = start_default().await;
    let reply = post_sql(&server, None, "SELECT nope FROM daily_scores").await;
    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!(body["code"], "sql");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    let reply = post_sql(&server, None, "SELEC 1").await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("SELEC"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_400() {
    let server = start_default().await;
    let cases = [
        (
            "CREATE TABLE t (a INT)",
            "read-only: CREATE TABLE is not allowed",
        ),
        (
            "INSERT INTO daily_scores SELECT * FROM daily_scores",
            "read-only: INSERT is not allowed",
        ),
        (
            "COPY (SELECT 1) TO '/tmp/huoyue-http-copy.csv'",
            "read-only: COPY is not allowed",
        ),
        (
            "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc'",
            "read-only: CREATE EXTERNAL TABLE is not allowed",
        ),
        ("DROP TABLE events", "read-only: DROP is not allowed"),
        (
            "SET datafusion.execution.batch_size = 1",
            "read-only: SET is not allowed",
        ),
        (
            "SELECT 1; SELECT 2",
            "read-only: one statement at a time is allowed, got 2",
        ),
    ];
    for (sql, message) in cases {
        let reply = post_sql(&server, None, sql).await;
        assert_eq!(reply.status, 400, "{sql}");
        assert_eq!(reply.json()["error"], message, "{sql}");
        assert_eq!(reply.json()["code"], "read_only", "{sql}");
    }
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ] {
        let reply = post_sql(&server, None, sql).await;
        assert_eq!(reply.status, 400, "{sql}");
        assert!(!reply.text().contains("root:"), "{sql}");
    }
    assert!(!std::path::Path::new("/tmp/huoyue-http-copy.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_times_out() {
    let server = start(
        ServerConfig {
            token: Some(TOKEN.to_owned()),
            query_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
        QueryConfig::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let reply = post_sql(
        &server,
        None,
        "SELECT sum(value) FROM generate_series(1, 100000000000)",
    )
    .await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(reply.json()["code"], "timeout");
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The server still answers.
    let reply = post_sql(&server, None, "SELECT 1").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_413() {
    let server = start(
        ServerConfig {
            token: Some(TOKEN.to_owned()),
            max_rows: 3,
            ..ServerConfig::default()
        },
        QueryConfig {
            memory_limit: Some(1 << 20),
            ..QueryConfig::default()
        },
    )
    .await;
    let reply = post_sql(&server, None, "SELECT * FROM daily_scores").await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["code"], "too_many_rows");
    let reply = post_sql(
        &server,
        None,
        "SELECT array_agg(value) FROM generate_series(1, 5000000)",
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["code"], "memory_limit");
}

/// A body over the limit gets a JSON error like every other (it was axum's
/// plain text), after the token check; an empty one is `empty`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_empty_body_is_a_json_error() {
    let server = start_default().await;
    let body = format!("SELECT 1 -- {}", "x".repeat(3 << 20));
    let (name, value) = auth();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{name}: {value}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // the server may answer and close before it has read it all
    let _ = stream.write_all(body.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["code"], "too_large");

    let reply = post_sql(&server, None, "").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["code"], "empty");
}

/// An unknown path or another method gets the JSON error every other answer
/// uses, not an empty body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_are_json_errors() {
    let server = start_default().await;
    for (method, path, status, code) in [
        ("GET", "/nosuch", 404, "not_found"),
        ("POST", "/sq", 404, "not_found"),
        ("GET", "/sql", 405, "method_not_allowed"),
        ("POST", "/health", 405, "method_not_allowed"),
    ] {
        let reply = request(server.addr, method, path, &[], "").await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        assert_eq!(reply.json()["code"], code, "{method} {path}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("POST /sql")
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    // a 405 still says what the path takes
    let reply = request(server.addr, "GET", "/sql", &[], "").await;
    assert_eq!(reply.header("allow"), Some("POST"));
}

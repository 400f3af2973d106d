//! The HTTP server: `POST /sql` and `GET /health` (axum). Only this module
//! of huoyue knows HTTP.
//!
//! - `POST /sql`, body: one SQL statement (UTF-8). The answer follows
//!   `Accept`: `application/json` (default, also for `*/*` or no header):
//!   `{"columns":[{"name","type"}…],"rows":[[…]…]}`; `text/csv`;
//!   `application/vnd.apache.arrow.stream` (Arrow IPC stream). Any other
//!   `Accept` → 406.
//! - `GET /health` → 200 `ok`, never authenticated.
//! - With a token configured, `/sql` needs `Authorization: Bearer <token>` → else 401.
//! - Errors are `{"error": "<message>", "code": "<code>"}`: SQL errors and
//!   read-only refusals 400, memory limit and too many rows 413, timeout 504,
//!   lake problems and bugs 500; an unknown path 404 and another method 405
//!   answer the same way.
//!
//! Each request runs in a fresh session (so it sees every file and table
//! written before it), with all requests sharing one memory pool.

mod auth;
mod negotiate;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::error::QueryError;
use crate::lake::Lake;

pub use negotiate::ResponseFormat;

/// Settings of the server beyond the lake's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token required on `/sql`; `None`: no authentication.
    pub token: Option<String>,
    /// Wall-clock limit of one request's query; it is cancelled beyond it.
    pub query_timeout: Duration,
    /// Largest result in rows; beyond it the request fails with 413.
    pub max_rows: usize,
    /// The runtime the queries run on; `None`: the server's own. `serve`
    /// gives them one of their own: a query keeps its threads for seconds
    /// between two yields (a large join), and on the server's threads it
    /// would hold back `/health` (a liveness probe failing on a busy but
    /// healthy server) and its own timeout's answer.
    pub queries: Option<tokio::runtime::Handle>,
}

/// Default query timeout: 30 s, the figure of the brief's `serve` example.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default row limit of a response: one million rows, about 100 MB of JSON —
/// an export, not a page; aggregate or use `LIMIT` for more.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            token: None,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            max_rows: DEFAULT_MAX_ROWS,
            queries: None,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
struct AppState {
    lake: Lake,
    config: ServerConfig,
}

/// The axum router of the server (without a listener), for embedding and tests.
pub fn router(lake: Lake, config: ServerConfig) -> Router {
    let state = Arc::new(AppState { lake, config });
    Router::new()
        .route("/health", get(routes::health))
        .route("/sql", post(routes::sql))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
}

/// Serve the lake on `listener` until `shutdown` completes, then finish the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    lake: Lake,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueryError> {
    let app = router(lake, config);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| QueryError::Internal(format!("http server: {e}")))
}

/// Bind `addr` (port 0 picks a free port) and return the listener with the
/// address actually bound.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), QueryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| QueryError::Io(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| QueryError::Internal(format!("listener address: {e}")))?;
    Ok((listener, local))
}

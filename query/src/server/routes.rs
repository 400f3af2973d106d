//! The request handlers.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::AbortHandle;

use super::AppState;
use super::auth::authorized;
use super::negotiate::{ResponseFormat, negotiate};
use crate::error::{Fault, QueryError};
use crate::format::{write_arrow_ipc, write_csv, write_json_columns_rows};
use crate::run::QueryOutput;

/// `GET /health`.
pub(super) async fn health() -> &'static str {
    "ok"
}

/// Any other path: the JSON error of every other answer, not an empty body.
pub(super) async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such path: the server answers POST /sql and GET /health",
    )
}

/// `/sql` or `/health` with another method.
pub(super) async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "the server answers POST /sql and GET /health",
    )
}

/// `POST /sql`.
pub(super) async fn sql(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !authorized(&headers, app.config.token.as_deref()) {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let Some(format) = negotiate(&headers) else {
        return json_error(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "supported Accept types: application/json, text/csv, application/vnd.apache.arrow.stream",
        );
    };
    // a body over the limit (2 MB) gets a JSON error like every other
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "bad_request"
            };
            return json_error(status, code, &rejection.body_text());
        }
    };
    let Ok(sql) = String::from_utf8(body.to_vec()) else {
        return json_error(StatusCode::BAD_REQUEST, "sql", "the body is not UTF-8");
    };

    let started = Instant::now();
    let result = run_with_timeout(&app, sql).await;
    let result = match result {
        Ok(output) => encode(output, format).await,
        Err(e) => Err(e),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((rows, bytes)) => {
            tracing::info!(status = 200, rows, elapsed_ms, "sql");
            ([(CONTENT_TYPE, format.content_type())], Body::from(bytes)).into_response()
        }
        Err(error) => {
            let status = status_of(&error);
            if error.fault() == Fault::User {
                tracing::info!(status = status.as_u16(), elapsed_ms, %error, "sql");
            } else {
                tracing::warn!(status = status.as_u16(), elapsed_ms, %error, "sql");
            }
            json_error(status, error.code(), &error.to_string())
        }
    }
}

/// Aborts the query task when the request ends for any reason (answered,
/// timed out, or the client went away).
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_with_timeout(app: &AppState, sql: String) -> Result<QueryOutput, QueryError> {
    let lake = app.lake.clone();
    let max_rows = app.config.max_rows;
    let timeout = app.config.query_timeout;
    let run = async move { lake.query(&sql, Some(max_rows)).await };
    let task = match &app.config.queries {
        Some(queries) => queries.spawn(run),
        None => tokio::spawn(run),
    };
    let _abort = AbortOnDrop(task.abort_handle());
    match tokio::time::timeout(timeout, task).await {
        Err(_elapsed) => Err(QueryError::Timeout(timeout)),
        Ok(Err(join)) => Err(QueryError::Internal(format!("query task failed: {join}"))),
        Ok(Ok(result)) => result,
    }
}

/// Encode off the async threads (a large result takes a while).
async fn encode(
    output: QueryOutput,
    format: ResponseFormat,
) -> Result<(usize, Vec<u8>), QueryError> {
    tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        match format {
            ResponseFormat::Json => write_json_columns_rows(&output, &mut bytes)?,
            ResponseFormat::Csv => write_csv(&output, &mut bytes)?,
            ResponseFormat::ArrowStream => write_arrow_ipc(&output, &mut bytes)?,
        }
        Ok((output.num_rows(), bytes))
    })
    .await
    .map_err(|e| QueryError::Internal(format!("encoding task failed: {e}")))?
}

fn status_of(error: &QueryError) -> StatusCode {
    match error {
        QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        QueryError::MemoryLimit(_) | QueryError::TooManyRows { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        _ => match error.fault() {
            Fault::User => StatusCode::BAD_REQUEST,
            Fault::Limit => StatusCode::PAYLOAD_TOO_LARGE,
            Fault::Lake | Fault::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "code": code });
    (status, axum::Json(body)).into_response()
}

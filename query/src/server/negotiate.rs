//! Choosing the response format from `Accept`.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;

/// Formats of `POST /sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `application/json`: `{"columns":[…],"rows":[[…]…]}`.
    Json,
    /// `text/csv` with a header row.
    Csv,
    /// `application/vnd.apache.arrow.stream`.
    ArrowStream,
}

impl ResponseFormat {
    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }
}

/// The format `Accept` asks for: the supported media range with the highest
/// quality, earlier ones first on ties; JSON when there is no `Accept`;
/// `None` when nothing acceptable is supported (→ 406).
pub(super) fn negotiate(headers: &HeaderMap) -> Option<ResponseFormat> {
    let mut best: Option<(ResponseFormat, f32)> = None;
    let mut any_header = false;
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            any_header = true;
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/json" | "application/*" | "*/*" | "" => ResponseFormat::Json,
                "text/csv" | "text/*" => ResponseFormat::Csv,
                "application/vnd.apache.arrow.stream" => ResponseFormat::ArrowStream,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
                best = Some((format, quality));
            }
        }
    }
    match best {
        Some((format, _)) => Some(format),
        None if !any_header => Some(ResponseFormat::Json),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn pick(accept: Option<&str>) -> Option<ResponseFormat> {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        negotiate(&h)
    }

    #[test]
    fn picks_by_accept() {
        assert_eq!(pick(None), Some(ResponseFormat::Json));
        assert_eq!(pick(Some("*/*")), Some(ResponseFormat::Json));
        assert_eq!(pick(Some("application/json")), Some(ResponseFormat::Json));
        assert_eq!(pick(Some("text/csv")), Some(ResponseFormat::Csv));
        assert_eq!(
            pick(Some("application/vnd.apache.arrow.stream")),
            Some(ResponseFormat::ArrowStream)
        );
        assert_eq!(
            pick(Some("text/csv;q=0.5, application/json")),
            Some(ResponseFormat::Json)
        );
        assert_eq!(pick(Some("text/html, text/csv")), Some(ResponseFormat::Csv));
        assert_eq!(pick(Some("text/html")), None);
        assert_eq!(pick(Some("text/csv;q=0")), None);
    }
}

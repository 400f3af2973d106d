//! Bearer-token authentication of `/sql`.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// Whether `headers` carry `Authorization: Bearer <expected>`. Always true
/// when no token is configured.
pub(super) fn authorized(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
    else {
        return false;
    };
    constant_time_eq(given.as_bytes(), expected.as_bytes())
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 6750).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compare without an early exit, so the time taken does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn checks_the_bearer_token() {
        assert!(authorized(&HeaderMap::new(), None));
        assert!(!authorized(&HeaderMap::new(), Some("s3cret")));
        assert!(authorized(&headers("Bearer s3cret"), Some("s3cret")));
        assert!(authorized(&headers("bearer  s3cret "), Some("s3cret")));
        assert!(!authorized(&headers("Bearer s3cre"), Some("s3cret")));
        assert!(!authorized(&headers("Basic s3cret"), Some("s3cret")));
        assert!(!authorized(&headers("Bearer"), Some("s3cret")));
    }
}

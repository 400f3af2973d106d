//! Shared helpers of the generator tests: an independent validator of
//! events.md and a small RFC 3339 parser (std and serde_json only).

#![allow(dead_code)]

use serde_json::{Map, Value};

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |a, &c| a * 10 + (c - b'0') as i64))
}

/// Parses RFC 3339 with an offset or `Z` (optional fraction) to µs since
/// the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (
        num(&b[0..4])?,
        num(&b[5..7])? as u32,
        num(&b[8..10])? as u32,
    );
    let (h, mi, se) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_us = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &b[start..i];
        let mut f = 0i64;
        for k in 0..6 {
            f = f * 10 + digits.get(k).map_or(0, |c| (c - b'0') as i64);
        }
        frac_us = f;
    }
    let offset = match &b[i..] {
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let o = num(&[*h1, *h2])? * 3600 + num(&[*m1, *m2])? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs * 1_000_000 + frac_us)
}

/// The China-time day (since 1970-01-01) of an instant.
pub fn china_day(us: i64) -> i64 {
    (us.div_euclid(1_000_000) + 8 * 3600).div_euclid(86_400)
}

fn is_id(v: &Value) -> bool {
    matches!(v, Value::String(s) if !s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control))
}

fn is_school(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.len() == 10 && s.bytes().all(|c| c.is_ascii_digit()))
}

fn one_of(v: &Value, set: &[&str]) -> bool {
    matches!(v, Value::String(s) if set.contains(&s.as_str()))
}

/// The reason events.md gives a line, or `Ok(object)` when it is valid.
/// `now_us` is the ingest's wall clock (for `future_timestamp`).
pub fn validate(bytes: &[u8], now_us: i64) -> Result<Map<String, Value>, &'static str> {
    if bytes.len() > 64 * 1024 {
        return Err("too_large");
    }
    let s = std::str::from_utf8(bytes).map_err(|_| "bad_utf8")?;
    let v: Value = serde_json::from_str(s).map_err(|_| "bad_json")?;
    let Value::Object(o) = v else {
        return Err("bad_json");
    };
    let get = |k: &str| o.get(k).filter(|v| !v.is_null());
    for k in ["event_id", "ts", "user_id", "role", "school_id", "action"] {
        if get(k).is_none() {
            return Err("missing_field");
        }
    }
    match get("event_id").unwrap() {
        Value::String(s)
            if !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c)) => {}
        _ => return Err("bad_value"),
    }
    let Value::String(ts) = get("ts").unwrap() else {
        return Err("bad_value");
    };
    let ts_us = parse_rfc3339(ts).ok_or("bad_timestamp")?;
    if !is_id(get("user_id").unwrap()) {
        return Err("bad_value");
    }
    if !one_of(
        get("role").unwrap(),
        &["teacher", "student", "parent", "admin"],
    ) {
        return Err("bad_value");
    }
    if !is_school(get("school_id").unwrap()) {
        return Err("bad_value");
    }
    let Value::String(action) = get("action").unwrap() else {
        return Err("bad_value");
    };
    if let Some(c) = get("client")
        && !one_of(c, &["pc", "mobile"])
    {
        return Err("bad_value");
    }
    let need = |k: &str| get(k).ok_or("missing_field");
    match action.as_str() {
        "register" => {
            if let Some(st) = get("stage")
                && !one_of(st, &["primary", "junior", "senior"])
            {
                return Err("bad_value");
            }
        }
        "login" => {}
        "profile_update" => match need("items")? {
            Value::Array(a)
                if a.iter()
                    .all(|i| one_of(i, &["avatar", "contact", "school", "subject"])) => {}
            _ => return Err("bad_value"),
        },
        "space_op" => match need("op")? {
            Value::String(s) if !s.is_empty() && s.chars().count() <= 32 => {}
            _ => return Err("bad_value"),
        },
        "resource_interact" | "resource_review" => {
            let (r, ow, os) = (
                need("resource_id")?,
                need("owner_id")?,
                need("owner_school_id")?,
            );
            if action == "resource_interact" {
                let op = need("op")?;
                if !one_of(op, &["download", "favorite", "share", "comment", "view"]) {
                    return Err("bad_value");
                }
            } else {
                let (l, out) = (need("level")?, need("outcome")?);
                if !one_of(l, &["county", "city", "province"])
                    || !one_of(out, &["approved", "deleted"])
                {
                    return Err("bad_value");
                }
            }
            if !is_id(r) || !is_id(ow) || !is_school(os) {
                return Err("bad_value");
            }
        }
        "teach" => {
            if !is_id(need("lesson_id")?) {
                return Err("bad_value");
            }
            if let Some(d) = get("duration_s")
                && d.as_u64().is_none()
            {
                return Err("bad_value");
            }
        }
        "task_publish" => {
            let (t, k) = (need("task_id")?, need("kind")?);
            if !is_id(t) || !one_of(k, &["homework", "activity"]) {
                return Err("bad_value");
            }
        }
        "task_progress" => {
            let (t, ow, os, p, st) = (
                need("task_id")?,
                need("owner_id")?,
                need("owner_school_id")?,
                need("published_at")?,
                need("status")?,
            );
            if !is_id(t) || !is_id(ow) || !is_school(os) || !one_of(st, &["read", "completed"]) {
                return Err("bad_value");
            }
            let Value::String(p) = p else {
                return Err("bad_value");
            };
            parse_rfc3339(p).ok_or("bad_timestamp")?;
        }
        "interaction" => {
            let (c, r) = (need("counterpart_id")?, need("counterpart_role")?);
            if !is_id(c) || !one_of(r, &["student", "parent"]) {
                return Err("bad_value");
            }
        }
        "app_use" => match need("app_id")? {
            Value::String(s) if !s.is_empty() && s.chars().count() <= 32 => {}
            _ => return Err("bad_value"),
        },
        _ => return Err("unknown_action"),
    }
    if ts_us > now_us + 24 * 3600 * 1_000_000 {
        return Err("future_timestamp");
    }
    Ok(o)
}

/// A string field of a valid event.
pub fn s<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

//! Raw bytes to a valid [`Event`] or a [`Rejection`] with its stable reason code.
//!
//! Decoding is the hot path. The JSON object is read once into a struct of borrowed
//! slots, one per known field; each slot is then checked against its rule in the order
//! of events.md's tables, so the first broken rule names the rejection.
//!
//! Two readers fill the slots. The scanner of `scan.rs` handles the common shape of an
//! event (a flat object of unescaped strings, small integers, `null`, booleans and
//! arrays of those) and gives up on anything else; serde_json then reads the same text
//! from the start, so every unusual input, and every error message, is serde_json's.
//! Both readers must produce the same slots; `differential.rs` checks that they do.

mod scan;

#[cfg(test)]
mod differential;

use std::borrow::Cow;
use std::fmt;
use std::mem::take;
use std::ops::Range;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::event::{Action, Client, Event, Extra, Role};
use crate::reason::{Reason, Rejection};
use crate::time::{EVENT_INSTANTS, MICROS_PER_SECOND, parse_rfc3339};

/// The largest message accepted, in bytes (events.md: at most 64 KiB).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// How far in the future of the ingest's clock an event may be (events.md: 24 hours).
pub const MAX_FUTURE_MICROS: i64 = 24 * 3600 * MICROS_PER_SECOND;

/// Decodes and validates one message. `now` is the ingest's wall clock in microseconds
/// since the epoch (for `future_timestamp`); the decoder itself reads no clock.
pub fn decode(bytes: &[u8], now: i64) -> Result<Event<'_>, Rejection> {
    let text = checked_text(bytes)?;
    let mut raw = RawEvent::default();
    let owns = match scan::scan_into(text, &mut raw) {
        Some(arrays) => arrays,
        None => {
            raw = parse_serde(text)?;
            true
        }
    };
    let event = raw.validate(now);
    if owns {
        drop(raw);
    } else {
        // nothing in the slots owns memory (the scanner read no array), so
        // there is nothing to free: skip checking two dozen slots for it
        std::mem::forget(raw);
    }
    event
}

/// [`decode`] without the fast path: what `decode` must agree with.
#[cfg(test)]
fn decode_serde(bytes: &[u8], now: i64) -> Result<Event<'_>, Rejection> {
    parse_serde(checked_text(bytes)?)?.validate(now)
}

/// The message as text, if it is small enough and valid UTF-8.
fn checked_text(bytes: &[u8]) -> Result<&str, Rejection> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!("{} bytes", bytes.len()),
        ));
    }
    // the SIMD check first (several times faster on these short lines); std's
    // for the position of a bad byte
    if let Ok(text) = simdutf8::basic::from_utf8(bytes) {
        return Ok(text);
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            Reason::BadUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

/// Reads the slots with serde_json: any JSON at all, and the error message of bad JSON.
fn parse_serde(text: &str) -> Result<RawEvent<'_>, Rejection> {
    serde_json::from_str(text).map_err(|e| {
        let detail = if text.starts_with('\u{feff}') {
            // serde_json would say "expected value at line 1 column 1"
            "starts with a byte order mark (U+FEFF), which a JSON message must not carry".to_owned()
        } else {
            e.to_string()
        };
        Rejection::new(Reason::BadJson, detail)
    })
}

/// One JSON value as far as validation needs to see it.
#[derive(Debug, Default)]
enum Val<'a> {
    /// The field was not in the object.
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Arr(Vec<Val<'a>>),
    /// Any other JSON value: a bool, a float (serde_json reads `-0` as one), an object,
    /// an integer beyond `i64`.
    Other,
}

impl<'de> serde::Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
                Ok(Val::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
                Ok(i64::try_from(v).map_or(Val::Other, Val::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Val<'de>, E> {
                Ok(Val::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
                Ok(Val::Other)
            }
            fn visit_unit<E>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Val<'de>>()? {
                    out.push(v);
                }
                Ok(Val::Arr(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Val::Other)
            }
        }
        d.deserialize_any(V)
    }
}

macro_rules! raw_fields {
    ($($field:ident),+ $(,)?) => {
        /// The known fields of an event object, undecided.
        #[derive(Debug, Default)]
        struct RawEvent<'a> { $($field: Val<'a>),+ }

        #[derive(Clone, Copy)]
        #[allow(non_camel_case_types)]
        enum Key { $($field,)+ Unknown }

        impl Key {
            /// The field named `name`, compared as integers ([`crate::words`]).
            fn of(name: &str) -> Key {
                const TABLE: crate::words::Table<Key, 128> =
                    crate::words::Table::new(&[$((stringify!($field), Key::$field)),+]);
                TABLE.get(name).unwrap_or(Key::Unknown)
            }
        }

        impl<'a> RawEvent<'a> {
            /// The slot of a known field; `None` for a key the contract does not know.
            fn slot(&mut self, key: Key) -> Option<&mut Val<'a>> {
                match key { $(Key::$field => Some(&mut self.$field),)+ Key::Unknown => None }
            }

            /// Every slot with its field name, in order (for comparing two readers).
            #[cfg(test)]
            fn slots(&self) -> Vec<(&'static str, &Val<'a>)> {
                vec![$((stringify!($field), &self.$field)),+]
            }
        }
    };
}

raw_fields!(
    event_id,
    ts,
    user_id,
    role,
    school_id,
    action,
    client,
    stage,
    items,
    op,
    resource_id,
    owner_id,
    owner_school_id,
    level,
    outcome,
    lesson_id,
    duration_s,
    task_id,
    kind,
    published_at,
    status,
    counterpart_id,
    counterpart_role,
    app_id,
);

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawEvent<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
        let mut raw = RawEvent::default();
        while let Some(KeyName(key)) = map.next_key()? {
            match raw.slot(key) {
                Some(slot) => *slot = map.next_value()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

impl<'de> serde::Deserialize<'de> for RawEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawVisitor)
    }
}

/// A key of the event object, resolved to a known field without allocating.
struct KeyName(Key);

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(Key::of(v)))
            }
        }
        d.deserialize_identifier(V)
    }
}

#[cold]
fn missing(field: &str) -> Rejection {
    Rejection::new(Reason::MissingField, field.to_owned())
}

#[cold]
fn bad(field: &str, why: &str) -> Rejection {
    Rejection::new(Reason::BadValue, format!("{field}: {why}"))
}

/// Takes a required string field.
#[inline]
fn required<'a>(v: Val<'a>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    match v {
        Val::Absent | Val::Null => Err(missing(field)),
        Val::Str(s) => Ok(s),
        _ => Err(bad(field, "not a string")),
    }
}

/// Takes an optional string field (`null` is absent).
#[inline]
fn optional<'a>(v: Val<'a>, field: &str) -> Result<Option<Cow<'a, str>>, Rejection> {
    match v {
        Val::Absent | Val::Null => Ok(None),
        Val::Str(s) => Ok(Some(s)),
        _ => Err(bad(field, "not a string")),
    }
}

/// The id rule: 1–64 characters, no control characters.
#[inline]
fn id<'a>(v: Val<'a>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    let s = required(v, field)?;
    check_id(&s, field)?;
    Ok(s)
}

fn check_id(s: &str, field: &str) -> Result<(), Rejection> {
    // printable ASCII, as nearly every id is: one pass over the bytes
    if (1..=64).contains(&s.len()) && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    let n = char_len(s, 64);
    if n == 0 || n > 64 {
        return Err(bad(field, "must be 1 to 64 characters"));
    }
    // the ASCII control characters are those below 0x20 and 0x7f
    let control = if s.is_ascii() {
        s.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        s.chars().any(char::is_control)
    };
    if control {
        return Err(bad(field, "control character"));
    }
    Ok(())
}

/// Characters in `s`, counting no further than `limit + 1`.
fn char_len(s: &str, limit: usize) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().take(limit + 1).count()
    }
}

#[inline]
fn short_text<'a>(v: Val<'a>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    let s = required(v, field)?;
    let n = char_len(&s, 32);
    if n == 0 || n > 32 {
        return Err(bad(field, "must be 1 to 32 characters"));
    }
    Ok(s)
}

#[inline]
fn school<'a>(v: Val<'a>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    let s = required(v, field)?;
    if !crate::event::is_school_id(&s) {
        return Err(bad(field, "must be exactly 10 digits"));
    }
    Ok(s)
}

#[inline]
fn one_of<'a>(v: Val<'a>, field: &str, allowed: &[&str]) -> Result<Cow<'a, str>, Rejection> {
    let s = required(v, field)?;
    check_one_of(&s, field, allowed)?;
    Ok(s)
}

fn check_one_of(s: &str, field: &str, allowed: &[&str]) -> Result<(), Rejection> {
    if allowed.contains(&s) {
        Ok(())
    } else {
        Err(bad(
            field,
            &format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

/// A required RFC 3339 field whose instant must lie in `within`.
#[inline]
fn timestamp(v: Val<'_>, field: &str, within: Range<i64>) -> Result<i64, Rejection> {
    let s = required(v, field)?;
    match parse_rfc3339(&s) {
        Some(t) if within.contains(&t) => Ok(t),
        Some(_) => Err(Rejection::new(
            Reason::BadTimestamp,
            format!("{field}: {s:.40} is outside the years 0001-9999"),
        )),
        None => Err(Rejection::new(
            Reason::BadTimestamp,
            format!("{field}: {s:.40}"),
        )),
    }
}

/// The values of the enumerated fields, as events.md lists them.
pub mod values {
    pub const STAGES: &[&str] = &["primary", "junior", "senior"];
    pub const ITEMS: &[&str] = &["avatar", "contact", "school", "subject"];
    pub const INTERACT_OPS: &[&str] = &["download", "favorite", "share", "comment", "view"];
    pub const LEVELS: &[&str] = &["county", "city", "province"];
    pub const OUTCOMES: &[&str] = &["approved", "deleted"];
    pub const TASK_KINDS: &[&str] = &["homework", "activity"];
    pub const STATUSES: &[&str] = &["read", "completed"];
    pub const COUNTERPART_ROLES: &[&str] = &["student", "parent"];
}

impl<'a> RawEvent<'a> {
    /// Takes the slots it needs (the caller drops the rest).
    #[inline]
    fn validate(&mut self, now: i64) -> Result<Event<'a>, Rejection> {
        use values::*;
        let event_id = required(take(&mut self.event_id), "event_id")?;
        if event_id.is_empty()
            || event_id.len() > 64
            || !event_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(bad(
                "event_id",
                "must be 1 to 64 characters of [A-Za-z0-9._:-]",
            ));
        }
        // (a `ts` past the years 0001-9999 is in the future: `future_timestamp`
        // says so once the rest is checked)
        let ts = timestamp(take(&mut self.ts), "ts", EVENT_INSTANTS.start..i64::MAX)?;
        let user_id = id(take(&mut self.user_id), "user_id")?;
        let role = required(take(&mut self.role), "role")?;
        let role = Role::from_str(&role)
            .ok_or_else(|| bad("role", "must be teacher, student, parent or admin"))?;
        let school_id = school(take(&mut self.school_id), "school_id")?;
        let action = required(take(&mut self.action), "action")?;
        let action = Action::from_str(&action)
            .ok_or_else(|| Rejection::new(Reason::UnknownAction, format!("{action:.64}")))?;
        let client = match optional(take(&mut self.client), "client")? {
            None => Client::Pc,
            Some(c) => Client::from_str(&c).ok_or_else(|| bad("client", "must be pc or mobile"))?,
        };
        let mut x = Extra::default();
        match action {
            Action::Register => {
                x.stage = optional(take(&mut self.stage), "stage")?;
                if let Some(s) = &x.stage {
                    check_one_of(s, "stage", STAGES)?;
                }
            }
            Action::Login => {}
            Action::ProfileUpdate => {
                x.items = Some(match take(&mut self.items) {
                    Val::Absent | Val::Null => return Err(missing("items")),
                    Val::Arr(values) => values
                        .into_iter()
                        .map(|v| match v {
                            Val::Str(s) if ITEMS.contains(&&*s) => Ok(s),
                            _ => Err(bad(
                                "items",
                                "elements must be avatar, contact, school or subject",
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(bad("items", "not an array")),
                });
            }
            Action::SpaceOp => x.op = Some(short_text(take(&mut self.op), "op")?),
            Action::ResourceInteract => {
                x.resource_id = Some(id(take(&mut self.resource_id), "resource_id")?);
                x.owner_id = Some(id(take(&mut self.owner_id), "owner_id")?);
                x.owner_school_id =
                    Some(school(take(&mut self.owner_school_id), "owner_school_id")?);
                x.op = Some(one_of(take(&mut self.op), "op", INTERACT_OPS)?);
            }
            Action::ResourceReview => {
                x.resource_id = Some(id(take(&mut self.resource_id), "resource_id")?);
                x.owner_id = Some(id(take(&mut self.owner_id), "owner_id")?);
                x.owner_school_id =
                    Some(school(take(&mut self.owner_school_id), "owner_school_id")?);
                x.level = Some(one_of(take(&mut self.level), "level", LEVELS)?);
                x.outcome = Some(one_of(take(&mut self.outcome), "outcome", OUTCOMES)?);
            }
            Action::Teach => {
                x.lesson_id = Some(id(take(&mut self.lesson_id), "lesson_id")?);
                x.duration_s = match take(&mut self.duration_s) {
                    Val::Absent | Val::Null => None,
                    Val::Int(n) if n >= 0 => Some(n),
                    _ => return Err(bad("duration_s", "must be an integer >= 0")),
                };
            }
            Action::TaskPublish => {
                x.task_id = Some(id(take(&mut self.task_id), "task_id")?);
                x.kind = Some(one_of(take(&mut self.kind), "kind", TASK_KINDS)?);
            }
            Action::TaskProgress => {
                x.task_id = Some(id(take(&mut self.task_id), "task_id")?);
                x.owner_id = Some(id(take(&mut self.owner_id), "owner_id")?);
                x.owner_school_id =
                    Some(school(take(&mut self.owner_school_id), "owner_school_id")?);
                x.published_at = Some(timestamp(
                    take(&mut self.published_at),
                    "published_at",
                    EVENT_INSTANTS,
                )?);
                x.status = Some(one_of(take(&mut self.status), "status", STATUSES)?);
            }
            Action::Interaction => {
                x.counterpart_id = Some(id(take(&mut self.counterpart_id), "counterpart_id")?);
                x.counterpart_role = Some(one_of(
                    take(&mut self.counterpart_role),
                    "counterpart_role",
                    COUNTERPART_ROLES,
                )?);
            }
            Action::AppUse => x.app_id = Some(short_text(take(&mut self.app_id), "app_id")?),
        }
        if ts > now.saturating_add(MAX_FUTURE_MICROS) {
            return Err(Rejection::new(
                Reason::FutureTimestamp,
                "ts is more than 24 hours ahead of the ingest clock",
            ));
        }
        Ok(Event {
            event_id,
            ts,
            user_id,
            role,
            school_id,
            action,
            client,
            extra: x,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000 * MICROS_PER_SECOND;

    fn reason(line: &str) -> (Reason, Option<String>) {
        match decode(line.as_bytes(), NOW) {
            Ok(e) => panic!("accepted {e:?}"),
            Err(r) => (r.reason, r.detail),
        }
    }

    const LOGIN: &str = r#"{"event_id":"e-1","ts":"2026-11-03T08:15:30+08:00","user_id":"t-1001","role":"teacher","school_id":"3333000001","action":"login","client":"mobile"}"#;

    /// The rejection of [`LOGIN`] with `ts` in place of its timestamp.
    fn ts_reason(ts: &str) -> Reason {
        reason(&LOGIN.replace("2026-11-03T08:15:30+08:00", ts)).0
    }

    #[test]
    fn field_names_are_told_apart() {
        let mut raw = RawEvent::default();
        let names: Vec<&str> = raw.slots().into_iter().map(|(n, _)| n).collect();
        for name in &names {
            // each name finds its own slot
            *raw.slot(Key::of(name)).unwrap() = Val::Str(Cow::Borrowed(*name));
        }
        for (name, v) in raw.slots() {
            assert!(matches!(v, Val::Str(s) if s == name), "{name}");
        }
        for near in [
            "",
            "t",
            "tss",
            "event_i",
            "event_idd",
            "ts\0",
            "ts\0\0",
            "Ts",
            "counterpart_role_",
            "owner_school_id2",
        ] {
            assert!(raw.slot(Key::of(near)).is_none(), "{near:?}");
        }
    }

    #[test]
    fn decodes_the_example() {
        let e = decode(LOGIN.as_bytes(), NOW).unwrap();
        assert_eq!(e.action, Action::Login);
        assert_eq!(e.client, Client::Mobile);
        assert!(matches!(e.user_id, Cow::Borrowed(_)));
        let line = r#"{"event_id":"e-000002","ts":"2026-11-03T09:02:11+08:00","user_id":"s-2001","role":"student","school_id":"3333000001","action":"resource_interact","resource_id":"r-77","owner_id":"t-1001","owner_school_id":"3333000001","op":"download","extra":{"a":[1,2]},"n":1.5}"#;
        let e = decode(line.as_bytes(), NOW).unwrap();
        assert_eq!(e.scored_user(), Some("t-1001"));
        assert_eq!(e.extra.op.as_deref(), Some("download"));
        assert_eq!(e.client, Client::Pc);
    }

    #[test]
    fn escapes_decode() {
        let line = LOGIN.replace("t-1001", r"t-\u4e2d1");
        let e = decode(line.as_bytes(), NOW).unwrap();
        assert_eq!(e.user_id, "t-中1");
    }

    #[test]
    fn every_reason() {
        assert_eq!(reason(&"x".repeat(MAX_EVENT_BYTES + 1)).0, Reason::TooLarge);
        assert_eq!(
            decode(b"\xff\xfe{}", NOW).unwrap_err().reason,
            Reason::BadUtf8
        );
        assert_eq!(reason("[1,2,3]").0, Reason::BadJson);
        let bom = reason(&format!("\u{feff}{LOGIN}"));
        assert_eq!(bom.0, Reason::BadJson);
        assert!(
            bom.1
                .as_deref()
                .is_some_and(|d| d.contains("byte order mark")),
            "{bom:?}"
        );
        assert_eq!(reason("").0, Reason::BadJson);
        assert_eq!(reason(r#"{"event_id": "bad-1", "ts": "#).0, Reason::BadJson);
        assert_eq!(reason(&format!("{LOGIN} x")).0, Reason::BadJson);
        assert_eq!(
            reason(&LOGIN.replace(r#""user_id":"t-1001","#, "")),
            (Reason::MissingField, Some("user_id".into()))
        );
        assert_eq!(
            reason(&LOGIN.replace(r#""t-1001""#, "null")),
            (Reason::MissingField, Some("user_id".into()))
        );
        assert_eq!(
            reason(&LOGIN.replace("3333000001", "33330")).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace(r#""teacher""#, r#""principal""#)).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace(r#""mobile""#, r#""tablet""#)).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace(r#""t-1001""#, "7")).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace(r#""e-1""#, r#""e 1""#)).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace("t-1001", &"x".repeat(65))).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace("t-1001", "t\\u0007")).0,
            Reason::BadValue
        );
        assert_eq!(
            reason(&LOGIN.replace(r#""login""#, r#""dance""#)),
            (Reason::UnknownAction, Some("dance".into()))
        );
        assert_eq!(ts_reason("2026/10/05 10:00"), Reason::BadTimestamp);
        assert_eq!(
            ts_reason("2099-01-01T00:00:00+08:00"),
            Reason::FutureTimestamp
        );
        // days outside the years 0001-9999 in some time zone: no partition holds them
        assert_eq!(ts_reason("0000-12-31T23:00:00Z"), Reason::BadTimestamp);
        assert_eq!(ts_reason("0001-01-01T12:00:00Z"), Reason::BadTimestamp);
        // the far future is the future
        assert_eq!(
            ts_reason("9999-12-31T23:59:59-23:59"),
            Reason::FutureTimestamp
        );
    }

    #[test]
    fn action_fields() {
        let base = r#""event_id":"e-1","ts":"2026-11-03T08:15:30+08:00","user_id":"t-1","role":"teacher","school_id":"3333000001""#;
        let ok = |rest: &str| {
            decode(format!("{{{base},{rest}}}").as_bytes(), NOW)
                .map(|_| ())
                .map_err(|r| r.reason)
        };
        assert_eq!(ok(r#""action":"profile_update","items":[]"#), Ok(()));
        assert_eq!(
            ok(r#""action":"profile_update","items":["avatar","face"]"#),
            Err(Reason::BadValue)
        );
        assert_eq!(
            ok(r#""action":"profile_update""#),
            Err(Reason::MissingField)
        );
        assert_eq!(ok(r#""action":"space_op","op":"""#), Err(Reason::BadValue));
        assert_eq!(
            ok(r#""action":"teach","lesson_id":"l","duration_s":-1"#),
            Err(Reason::BadValue)
        );
        assert_eq!(
            ok(r#""action":"teach","lesson_id":"l","duration_s":null"#),
            Ok(())
        );
        assert_eq!(
            ok(r#""action":"teach","lesson_id":"l","duration_s":1.5"#),
            Err(Reason::BadValue)
        );
        assert_eq!(
            ok(
                r#""action":"task_progress","task_id":"k","owner_id":"t","owner_school_id":"3333000001","published_at":"yesterday","status":"read""#
            ),
            Err(Reason::BadTimestamp)
        );
        assert_eq!(
            ok(
                r#""action":"task_progress","task_id":"k","owner_id":"t","owner_school_id":"3333000001","published_at":"2026-11-01T08:00:00Z","status":"read""#
            ),
            Ok(())
        );
        for far in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
            let task = format!(
                r#""action":"task_progress","task_id":"k","owner_id":"t","owner_school_id":"3333000001","published_at":"{far}","status":"read""#
            );
            assert_eq!(ok(&task), Err(Reason::BadTimestamp), "{far}");
        }
        assert_eq!(
            ok(
                r#""action":"task_progress","task_id":"k","owner_id":"t","owner_school_id":"3333000001","published_at":"9999-12-30T23:59:59Z","status":"read""#
            ),
            Ok(())
        );
        assert_eq!(
            ok(r#""action":"interaction","counterpart_id":"s","counterpart_role":"admin""#),
            Err(Reason::BadValue)
        );
        assert_eq!(
            ok(r#""action":"register","stage":"college""#),
            Err(Reason::BadValue)
        );
        assert_eq!(ok(r#""action":"register""#), Ok(()));
        assert_eq!(ok(r#""action":"app_use","app_id":"jiaoyan""#), Ok(()));
        assert_eq!(
            ok(
                r#""action":"resource_review","resource_id":"r","owner_id":"t","owner_school_id":"3333000001","level":"nation","outcome":"approved""#
            ),
            Err(Reason::BadValue)
        );
    }

    #[test]
    fn the_id_rule_counts_characters_and_finds_every_control_character() {
        // the rule as events.md states it, one character at a time
        let rule = |s: &str| {
            let n = s.chars().count();
            (1..=64).contains(&n) && !s.chars().any(char::is_control)
        };
        let mut cases: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", b as char)).collect();
        for c in ['\u{80}', '\u{85}', '\u{9f}', '\u{a0}', '中', '\u{2028}'] {
            cases.push(format!("x{c}"));
        }
        for n in [63, 64, 65] {
            cases.push("a".repeat(n));
            cases.push("中".repeat(n));
        }
        cases.push(String::new());
        for s in cases {
            assert_eq!(super::check_id(&s, "user_id").is_ok(), rule(&s), "{s:?}");
        }
    }

    #[test]
    fn bad_utf8_names_the_first_bad_byte() {
        let r = super::decode(b"{\"event_id\":\"e\xff\"}", 0).unwrap_err();
        assert_eq!(r.reason, Reason::BadUtf8);
        assert_eq!(r.detail.as_deref(), Some("invalid UTF-8 at byte 14"));
    }
}

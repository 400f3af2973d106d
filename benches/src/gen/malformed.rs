//! Malformed lines: one of every kind of rejected input of events.md, made
//! from a real-looking event so that each line breaks exactly one rule.

use super::calendar::{CHINA_OFFSET_SECS, SECS_PER_DAY, US_PER_SEC};
use super::event::{Event, Field, Mutation};
use super::fmt::{push_date, push_padded, push_u64};
use super::rng::Rng;
use super::roster::Roster;

/// A kind of malformed line, with the reason code an ingest must give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MalformedKind {
    /// Binary garbage, not UTF-8 (`bad_utf8`).
    GarbageBytes,
    /// An event whose `user_id` holds bytes that are not UTF-8 (`bad_utf8`).
    InvalidUtf8,
    /// A JSON array instead of an object (`bad_json`).
    JsonArray,
    /// An event cut off in the middle (`bad_json`).
    Truncated,
    /// A line of plain text (`bad_json`).
    NotJson,
    /// A common required field left out (`missing_field`).
    MissingField,
    /// A common required field set to `null` (`missing_field`).
    NullField,
    /// A required field of the action left out, e.g. `owner_id`
    /// (`missing_field`).
    MissingExtra,
    /// `school_id` of 5 digits (`bad_value`).
    BadSchoolId,
    /// `role` = `principal` (`bad_value`).
    BadRole,
    /// `client` = `tablet` (`bad_value`).
    BadClient,
    /// `user_id` as a JSON number (`bad_value`).
    BadType,
    /// An action not in the table (`unknown_action`).
    UnknownAction,
    /// `ts` not RFC 3339 (`2026/11/03 10:00`, or no offset) (`bad_timestamp`).
    BadTimestamp,
    /// `ts` in 2099 (`future_timestamp`).
    FutureTimestamp,
    /// A line over 64 KiB (`too_large`); only with an oversize share.
    TooLarge,
}

impl MalformedKind {
    /// The kinds drawn for the malformed share (all but [`TooLarge`]).
    ///
    /// [`TooLarge`]: MalformedKind::TooLarge
    pub const REGULAR: [MalformedKind; 15] = [
        MalformedKind::GarbageBytes,
        MalformedKind::InvalidUtf8,
        MalformedKind::JsonArray,
        MalformedKind::Truncated,
        MalformedKind::NotJson,
        MalformedKind::MissingField,
        MalformedKind::NullField,
        MalformedKind::MissingExtra,
        MalformedKind::BadSchoolId,
        MalformedKind::BadRole,
        MalformedKind::BadClient,
        MalformedKind::BadType,
        MalformedKind::UnknownAction,
        MalformedKind::BadTimestamp,
        MalformedKind::FutureTimestamp,
    ];

    /// The reason code of events.md an ingest must reject this line with.
    pub fn reason(self) -> &'static str {
        match self {
            MalformedKind::GarbageBytes | MalformedKind::InvalidUtf8 => "bad_utf8",
            MalformedKind::JsonArray | MalformedKind::Truncated | MalformedKind::NotJson => {
                "bad_json"
            }
            MalformedKind::MissingField
            | MalformedKind::NullField
            | MalformedKind::MissingExtra => "missing_field",
            MalformedKind::BadSchoolId
            | MalformedKind::BadRole
            | MalformedKind::BadClient
            | MalformedKind::BadType => "bad_value",
            MalformedKind::UnknownAction => "unknown_action",
            MalformedKind::BadTimestamp => "bad_timestamp",
            MalformedKind::FutureTimestamp => "future_timestamp",
            MalformedKind::TooLarge => "too_large",
        }
    }

    /// A short stable name (`garbage_bytes`, `truncated`, …).
    pub fn name(self) -> &'static str {
        match self {
            MalformedKind::GarbageBytes => "garbage_bytes",
            MalformedKind::InvalidUtf8 => "invalid_utf8",
            MalformedKind::JsonArray => "json_array",
            MalformedKind::Truncated => "truncated",
            MalformedKind::NotJson => "not_json",
            MalformedKind::MissingField => "missing_field",
            MalformedKind::NullField => "null_field",
            MalformedKind::MissingExtra => "missing_extra",
            MalformedKind::BadSchoolId => "bad_school_id",
            MalformedKind::BadRole => "bad_role",
            MalformedKind::BadClient => "bad_client",
            MalformedKind::BadType => "bad_type",
            MalformedKind::UnknownAction => "unknown_action",
            MalformedKind::BadTimestamp => "bad_timestamp",
            MalformedKind::FutureTimestamp => "future_timestamp",
            MalformedKind::TooLarge => "too_large",
        }
    }
}

/// The common required fields.
const COMMON: [Field; 6] = [
    Field::EventId,
    Field::Ts,
    Field::UserId,
    Field::Role,
    Field::SchoolId,
    Field::Action,
];

/// Appends a malformed line of `kind` made from `template` (whose `seq`
/// should already be a `bad-` number). `scratch` is a reused buffer.
pub fn write(
    kind: MalformedKind,
    template: &Event,
    roster: &Roster,
    rng: &mut Rng,
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) {
    scratch.clear();
    let m = match kind {
        MalformedKind::GarbageBytes => {
            buf.push(0xff);
            for _ in 0..rng.range(16, 80) {
                let b = rng.below(256) as u8;
                buf.push(if b == b'\n' || b == b'\r' { 0xfe } else { b });
            }
            return;
        }
        MalformedKind::JsonArray => {
            match rng.below(3) {
                0 => buf.extend_from_slice(b"[1,2,3]"),
                1 => {
                    buf.extend_from_slice(b"[\"login\",\"");
                    template.actor.write_id(roster, buf);
                    buf.extend_from_slice(b"\"]");
                }
                _ => {
                    buf.push(b'[');
                    template.write_json(roster, buf);
                    buf.push(b']');
                }
            }
            return;
        }
        MalformedKind::NotJson => {
            buf.extend_from_slice(b"login ");
            template.actor.write_id(roster, buf);
            buf.push(b' ');
            push_china_time(buf, template.ts_us, b' ', true);
            return;
        }
        MalformedKind::Truncated => {
            template.write_json(roster, buf);
            let len = buf.len();
            let cut = rng.range(len as u64 / 3, len as u64 - 2) as usize;
            buf.truncate(cut);
            return;
        }
        MalformedKind::InvalidUtf8 => {
            scratch.extend_from_slice(b"\"\xe5\xbc\xa0\xff\xfe");
            template.actor.write_id(roster, scratch);
            scratch.push(b'"');
            Mutation::Replace(Field::UserId, scratch)
        }
        MalformedKind::MissingField => Mutation::Omit(COMMON[rng.below(6) as usize]),
        MalformedKind::NullField => Mutation::Null(COMMON[rng.below(6) as usize]),
        MalformedKind::MissingExtra => {
            let extras = template.required_extras();
            if extras.is_empty() {
                Mutation::Omit(Field::UserId)
            } else {
                Mutation::Omit(extras[rng.below(extras.len() as u64) as usize])
            }
        }
        MalformedKind::BadSchoolId => {
            scratch.push(b'"');
            scratch.extend_from_slice(&roster.school(template.school as usize).id[..5]);
            scratch.push(b'"');
            Mutation::Replace(Field::SchoolId, scratch)
        }
        MalformedKind::BadRole => Mutation::Replace(Field::Role, b"\"principal\""),
        MalformedKind::BadClient => Mutation::Replace(Field::Client, b"\"tablet\""),
        MalformedKind::BadType => {
            push_u64(scratch, 10_000 + rng.below(90_000));
            Mutation::Replace(Field::UserId, scratch)
        }
        MalformedKind::UnknownAction => Mutation::Replace(
            Field::Action,
            [&b"\"dance\""[..], b"\"logout\""][rng.below(2) as usize],
        ),
        MalformedKind::BadTimestamp => {
            scratch.push(b'"');
            if rng.chance(0.5) {
                // 2026/11/03 10:00
                push_china_time(scratch, template.ts_us, b' ', false);
                for b in scratch.iter_mut() {
                    if *b == b'-' {
                        *b = b'/';
                    }
                }
            } else {
                // 2026-11-03T10:00:00 (no offset)
                push_china_time(scratch, template.ts_us, b'T', true);
            }
            scratch.push(b'"');
            Mutation::Replace(Field::Ts, scratch)
        }
        MalformedKind::FutureTimestamp => {
            Mutation::Replace(Field::Ts, b"\"2099-01-01T00:00:00+08:00\"")
        }
        MalformedKind::TooLarge => {
            scratch.extend_from_slice(b"\"note\":\"");
            scratch.resize(scratch.len() + 66 * 1024, b'x');
            scratch.push(b'"');
            Mutation::Append(scratch)
        }
    };
    template.write_json_with(roster, buf, m);
}

/// `YYYY-MM-DD<sep>HH:MM[:SS]` in China time, without an offset.
fn push_china_time(buf: &mut Vec<u8>, us: i64, sep: u8, seconds: bool) {
    let secs = us.div_euclid(US_PER_SEC) + CHINA_OFFSET_SECS;
    let sod = secs.rem_euclid(SECS_PER_DAY) as u64;
    push_date(buf, secs.div_euclid(SECS_PER_DAY));
    buf.push(sep);
    push_padded(buf, sod / 3600, 2);
    buf.push(b':');
    push_padded(buf, sod / 60 % 60, 2);
    if seconds {
        buf.push(b':');
        push_padded(buf, sod % 60, 2);
    }
}

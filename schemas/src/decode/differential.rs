//! The scanner against serde_json: on every input, `decode` (scanner first) and
//! `decode_serde` give the same result, and whenever the scanner reads an input its
//! slots equal serde_json's, down to whether each string is borrowed.
//!
//! `tests/data/conformance_sample.ndjson` is a sample of
//! `testdata/conformance/events.ndjson`: every malformed or rejected line, and the
//! first valid lines of each action.

use std::borrow::Cow;

use super::scan::scan;
use super::*;

const NOW: i64 = 1_800_000_000 * MICROS_PER_SECOND;

const SAMPLE: &str = include_str!("../../tests/data/conformance_sample.ndjson");

/// The slots of a reader, with each string marked borrowed (`B`) or owned (`O`).
fn show(raw: &RawEvent<'_>) -> String {
    fn val(v: &Val<'_>) -> String {
        match v {
            Val::Str(Cow::Borrowed(s)) => format!("B{s:?}"),
            Val::Str(Cow::Owned(s)) => format!("O{s:?}"),
            Val::Arr(vs) => format!("[{}]", vs.iter().map(val).collect::<Vec<_>>().join(",")),
            other => format!("{other:?}"),
        }
    }
    raw.slots()
        .into_iter()
        .map(|(name, v)| format!("{name}={} ", val(v)))
        .collect()
}

/// Checks one input both ways; true if the scanner read it.
fn check(input: &[u8]) -> bool {
    let both = format!("{:?}", decode(input, NOW));
    let serde = format!("{:?}", decode_serde(input, NOW));
    let shown = || String::from_utf8_lossy(input).into_owned();
    assert_eq!(both, serde, "decode differs on {:?}", shown());
    let Ok(text) = std::str::from_utf8(input) else {
        return false;
    };
    let Some(raw) = scan(text) else {
        return false;
    };
    match parse_serde(text) {
        Ok(serde) => assert_eq!(show(&raw), show(&serde), "slots differ on {:?}", shown()),
        Err(e) => panic!("scanner read {:?}, serde_json rejects it: {e:?}", shown()),
    }
    true
}

/// How many inputs a run checked, and how many of them the scanner read.
#[derive(Default, Debug)]
struct Tally {
    checked: usize,
    scanned: usize,
}

impl Tally {
    fn check(&mut self, input: &[u8]) {
        self.checked += 1;
        self.scanned += usize::from(check(input));
    }
}

/// An event object from `(key, raw JSON value)` pairs.
fn object(fields: &[(&str, &str)]) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

const BASE: &[(&str, &str)] = &[
    ("event_id", r#""e-1""#),
    ("ts", r#""2026-11-03T08:15:30+08:00""#),
    ("user_id", r#""t-1001""#),
    ("role", r#""teacher""#),
    ("school_id", r#""3333000001""#),
    ("client", r#""mobile""#),
];

/// The action-specific fields of a valid event of every action.
const ACTIONS: &[&[(&str, &str)]] = &[
    &[("action", r#""login""#)],
    &[("action", r#""register""#), ("stage", r#""junior""#)],
    &[
        ("action", r#""profile_update""#),
        ("items", r#"["avatar","contact"]"#),
    ],
    &[("action", r#""space_op""#), ("op", r#""post""#)],
    &[
        ("action", r#""resource_interact""#),
        ("resource_id", r#""r-77""#),
        ("owner_id", r#""t-1002""#),
        ("owner_school_id", r#""3333000002""#),
        ("op", r#""download""#),
    ],
    &[
        ("action", r#""resource_review""#),
        ("resource_id", r#""r-77""#),
        ("owner_id", r#""t-1002""#),
        ("owner_school_id", r#""3333000002""#),
        ("level", r#""city""#),
        ("outcome", r#""approved""#),
    ],
    &[
        ("action", r#""teach""#),
        ("lesson_id", r#""l-9""#),
        ("duration_s", "2400"),
    ],
    &[
        ("action", r#""task_publish""#),
        ("task_id", r#""k-1""#),
        ("kind", r#""homework""#),
    ],
    &[
        ("action", r#""task_progress""#),
        ("task_id", r#""k-1""#),
        ("owner_id", r#""t-1002""#),
        ("owner_school_id", r#""3333000002""#),
        ("published_at", r#""2026-11-01T08:00:00Z""#),
        ("status", r#""completed""#),
    ],
    &[
        ("action", r#""interaction""#),
        ("counterpart_id", r#""p-3""#),
        ("counterpart_role", r#""parent""#),
    ],
    &[("action", r#""app_use""#), ("app_id", r#""jiaoyan""#)],
];

/// One valid event of every action, as fields.
fn valid_events() -> Vec<Vec<(&'static str, &'static str)>> {
    ACTIONS
        .iter()
        .map(|action| BASE.iter().chain(action.iter()).copied().collect())
        .collect()
}

/// JSON values (and near-JSON) to put in every field.
const VALUES: &[&str] = &[
    r#""s""#,
    r#""""#,
    r#""t-1001""#,
    r#""3333000001""#,
    r#""a\"b""#,
    r#""a\\b""#,
    r#""a\/b""#,
    r#""\u0000""#,
    r#""t\u0007""#,
    r#""\u4e2d""#,
    r#""\ud800""#,
    r#""\ud83d\ude00""#,
    r#""\x""#,
    "\"中文-1\"",
    "\"a\tb\"",
    "\"a\u{1}b\"",
    "\"a\u{7f}b\"",
    "\"a\u{85}b\"",
    "\"login\"",
    "\"avatar\"",
    "\"2026-11-01T08:00:00Z\"",
    "\"unterminated",
    "0",
    "-0",
    "00",
    "01",
    "-01",
    "1",
    "-1",
    "1.0",
    "1.",
    "-0.0",
    "1e3",
    "1E3",
    "1e",
    "-",
    "--1",
    "+1",
    ".5",
    "0x10",
    "2400",
    "123456789012345678",
    "-123456789012345678",
    "999999999999999999",
    "1234567890123456789",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "12345678901234567890",
    "18446744073709551616",
    "true",
    "false",
    "null",
    "nul",
    "nulll",
    "tru",
    "True",
    "NULL",
    "NaN",
    "Infinity",
    "undefined",
    "[]",
    "[ ]",
    "[\n]",
    "[1,2]",
    "[ 1 , 2 ]",
    r#"["avatar","contact"]"#,
    r#"["avatar","face"]"#,
    r#"["avatar",]"#,
    "[,]",
    "[1,,2]",
    "[1 2]",
    "[",
    "]",
    "[[1],[[]],[[[null]]]]",
    "[[[[[[[[[[1]]]]]]]]]]",
    "[{}]",
    r#"[{"a":1}]"#,
    "[null,true,false,-0,0,1.5]",
    r#"["\u0041"]"#,
    "{}",
    r#"{"a":1}"#,
    r#"{"a":[1,{"b":null}]}"#,
    "{",
    "}",
    "",
    "\"a\" \"b\"",
    "1 2",
];

fn values_in_every_field(t: &mut Tally) {
    for event in valid_events() {
        for i in 0..event.len() {
            let mut without = event.clone();
            without.remove(i);
            t.check(object(&without).as_bytes());
            for value in VALUES {
                let mut fields = event.clone();
                fields[i].1 = value;
                t.check(object(&fields).as_bytes());
                // Duplicates: the last one is kept, either way round.
                let mut twice = event.clone();
                twice.insert(i + 1, (event[i].0, value));
                t.check(object(&twice).as_bytes());
                twice.swap(i, i + 1);
                t.check(object(&twice).as_bytes());
            }
        }
        for value in VALUES {
            for key in ["zz", "", "中", "event_id ", "Event_id"] {
                let mut fields = event.clone();
                fields.insert(fields.len() / 2, (key, value));
                t.check(object(&fields).as_bytes());
            }
        }
    }
}

#[test]
fn every_value_in_every_field_agrees() {
    let mut t = Tally::default();
    values_in_every_field(&mut t);
    assert!(t.checked > 20_000, "{t:?}");
    assert!(t.scanned > 5_000, "{t:?}");
}

#[test]
fn documents_agree() {
    let login = object(&valid_events()[0]);
    let mut docs: Vec<String> = [
        "",
        " ",
        "\n",
        "{}",
        "{ }",
        " \t\r\n{ \t\r\n} \t\r\n",
        "{,}",
        "{}}",
        "{}{}",
        "{} x",
        "{}\u{0}",
        "{}\u{c}",
        "{}\u{a0}",
        "\u{feff}{}",
        "\u{c}{}",
        "[]",
        "[1,2,3]",
        "\"s\"",
        "1",
        "-0",
        "null",
        "true",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{\"a\";1}",
        "{1:2}",
        "{null:2}",
        "{'a':1}",
        "{a:1}",
        "{\"a\":1}",
        "{\"a\":1}\n",
        "{\"a\":1} \t\r\n",
        "{\"a\":1} x",
        "{\"a\":1}}",
        "{\"a\":1}]",
        "{\"a\":1}{}",
        "{\"a\":1,\"a\":2}",
        "{\"a\\\"\":1}",
        "{\"a\u{1}\":1}",
        "{\"\u{4e2d}\":\"\u{6587}\"}",
        "{\"event\\u005fid\":\"e-1\"}",
        "{\"event_id\":\"e-1\"",
        "{\"event_id\":\"e-1\",",
        "{\"event_id\":\"e-1\",\"",
        "{\"event_id\":\"e-1\",\"ts",
        "{\"event_id\":\"e-1\",\"ts\"",
        "{\"event_id\":\"e-1\",\"ts\":",
        "{\"event_id\":\"e-1\",\"ts\":\"",
        r#"{"event_id": "bad-1", "ts": "#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    docs.push(format!("{login} x"));
    docs.push(format!("{login}\n"));
    docs.push(format!("\r\n{login}\r\n"));
    docs.push(format!("[{login}]"));
    docs.push(format!("{{\"outer\":{login}}}"));
    docs.push(login.replacen('{', "{\"a\":1,", 1));
    docs.push(login.replace(':', " : ").replace(',', " ,\n\t"));
    docs.push(login.replace(':', "\r:\r").replace(',', "\r,\r"));
    docs.push(login.replace(':', "\u{c}:"));
    docs.push(login.replace(',', ",,"));
    docs.push(login.replace('"', "'"));
    docs.push(login.replace("t-1001", "t-\\u4e2d1"));
    docs.push(login.replace("t-1001", "t-中1"));
    docs.push(login.replace("t-1001", "t\\u0007"));
    docs.push(login.replace("t-1001", "\\u0000"));
    docs.push(login.replace("t-1001", &"x".repeat(65)));
    docs.push(login.replace("t-1001", &"中".repeat(64)));
    docs.push(login.replace("t-1001", &"中".repeat(65)));
    docs.push(login.replace("2026-11-03T08:15:30+08:00", "2099-01-01T00:00:00+08:00"));
    docs.push(login.replace("\"login\"", "\"dance\""));
    docs.push(format!("{}{}", "[".repeat(200), "]".repeat(200)));
    docs.push(format!(
        "{{\"zz\":{}1{}}}",
        "[".repeat(130),
        "]".repeat(130)
    ));
    docs.push(format!(
        "{{\"items\":{}{}}}",
        "[".repeat(127),
        "]".repeat(127)
    ));
    docs.push(format!("{{\"zz\":\"{}\"}}", "x".repeat(MAX_EVENT_BYTES)));
    for doc in &docs {
        check(doc.as_bytes());
    }
    for bytes in [
        &b"\xff\xfe{}"[..],
        b"{\"a\":\"\xc3\"}",
        b"{\"a\xe4\xb8\":1}",
    ] {
        check(bytes);
    }
}

#[test]
fn sample_lines_agree_and_take_the_fast_path() {
    let mut t = Tally::default();
    for line in SAMPLE.lines() {
        t.check(line.as_bytes());
        // The scanner reads every line of the sample that is JSON at all.
        assert_eq!(
            scan(line).is_some(),
            parse_serde(line).is_ok(),
            "fast path on {line:?}"
        );
    }
    assert!(t.checked > 300, "{t:?}");
    assert_eq!(t.scanned, t.checked - 2, "{t:?}");
}

#[test]
fn the_fast_path_reads_what_it_should() {
    let line = r#" {"event_id" :"e-1", "items":[ "avatar" ,[], [null,true,false] ],"duration_s":-42,
        "zz":[1,2],"op":"a","op":"中文", "stage":null, "client":0}
    "#;
    let raw = scan(line).unwrap();
    assert!(matches!(raw.event_id, Val::Str(Cow::Borrowed("e-1"))));
    assert!(matches!(raw.duration_s, Val::Int(-42)));
    assert!(matches!(raw.op, Val::Str(Cow::Borrowed("中文"))));
    assert!(matches!(raw.stage, Val::Null));
    assert!(matches!(raw.client, Val::Int(0)));
    assert!(matches!(raw.ts, Val::Absent));
    let Val::Arr(items) = &raw.items else {
        panic!("{:?}", raw.items)
    };
    assert_eq!(
        format!("{items:?}"),
        r#"[Str("avatar"), Arr([]), Arr([Null, Other, Other])]"#
    );
    assert!(scan("{}").is_some());
    for unusual in [
        r#"{"a":"\n"}"#,
        r#"{"a\n":1}"#,
        r#"{"a":-0}"#,
        r#"{"a":1.0}"#,
        r#"{"a":1e3}"#,
        r#"{"a":01}"#,
        r#"{"a":1234567890123456789}"#,
        r#"{"a":{}}"#,
        r#"{"a":[{}]}"#,
        r#"{"a":[[[[[[[[[1]]]]]]]]]}"#,
        r#"{"a":1,}"#,
        "{} x",
        "[]",
    ] {
        assert!(scan(unusual).is_none(), "{unusual}");
    }
    assert!(scan(r#"{"a":123456789012345678}"#).is_some());
    assert!(scan(r#"{"a":[[[[[[[[1]]]]]]]]}"#).is_some());
}

/// Lines to mutate: one valid event of every action, some in odd spacing, and the
/// first lines of the sample.
fn lines_to_mutate() -> Vec<String> {
    let mut lines: Vec<String> = valid_events().iter().map(|e| object(e)).collect();
    lines[1] = lines[1].replace(':', ": ").replace(',', ",\n");
    lines[2] = lines[2].replace("\"mobile\"", "null").replace(',', " ,\t");
    lines[6] = lines[6].replacen('{', "{\"zz\":[0,-7,true,[\"中\"]],", 1);
    lines.extend(SAMPLE.lines().take(4).map(str::to_owned));
    lines
}

const MUTANTS: &[u8] = b"\"\\,:{}[] 0-.en\x01";

#[test]
fn mutations_agree() {
    let mut t = Tally::default();
    for line in lines_to_mutate() {
        let bytes = line.as_bytes();
        assert!(check(bytes), "{line}");
        for end in 0..bytes.len() {
            t.check(&bytes[..end]);
        }
        for at in 0..bytes.len() {
            let mut deleted = bytes.to_vec();
            deleted.remove(at);
            t.check(&deleted);
            for &b in MUTANTS {
                let mut replaced = bytes.to_vec();
                replaced[at] = b;
                t.check(&replaced);
                let mut inserted = bytes.to_vec();
                inserted.insert(at, b);
                t.check(&inserted);
            }
        }
    }
    assert!(t.checked > 50_000, "{t:?}");
    assert!(t.scanned > 5_000, "{t:?}");
}

/// A small deterministic generator (xorshift64), so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn random_mutations_agree() {
    const ALPHABET: &[u8] = b"\"\\,:{}[] \t\r\n0123456789-+.eEnulltruefalse\x00\x01\x1fa/";
    let lines = lines_to_mutate();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t = Tally::default();
    for _ in 0..20_000 {
        let mut bytes = lines[rng.below(lines.len())].as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            let b = ALPHABET[rng.below(ALPHABET.len())];
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = b,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, b),
            }
        }
        t.check(&bytes);
    }
    assert!(t.scanned > 1_000, "{t:?}");
}

//! The fast path of decoding: a hand-written scanner for the common shape of an event.
//!
//! It reads a flat JSON object whose values are strings without escapes or control
//! characters, integers of at most 18 digits, `null`, `true`, `false`, and arrays of
//! those, and fills the same slots serde_json would. On anything else (an escape, a
//! float, a nested object, bad JSON of any kind) it returns `None` without a reason,
//! and the caller reads the text again with serde_json. It never rejects: every
//! rejection and its message comes from serde_json or from validation.
//!
//! What the slots must hold, to equal serde_json's through `Val`'s visitor:
//! - a string without escapes is `Str(Cow::Borrowed)` of the text between the quotes;
//! - an integer that fits an `i64` is `Int`, except `-0` (a float to serde_json: `Other`,
//!   but the scanner leaves it to serde_json);
//! - `null` is `Null`; `true` and `false` are `Other`;
//! - an array is `Arr` of its elements;
//! - a key read twice keeps its last value.

use std::borrow::Cow;

use super::{Key, RawEvent, Val};

/// The deepest nesting of arrays the scanner reads itself (serde_json's limit is 128).
const MAX_DEPTH: usize = 8;

/// The most digits of an integer the scanner reads itself: any 18 digits fit an `i64`.
const MAX_DIGITS: usize = 18;

/// Reads the slots of an event object in the common shape, or `None` if the text is
/// anything unusual (then serde_json must read it).
#[cfg(test)]
pub(super) fn scan(text: &str) -> Option<RawEvent<'_>> {
    let mut raw = RawEvent::default();
    scan_into(text, &mut raw).map(|_| raw)
}

/// [`scan`] into slots the caller holds (all absent), so that the slots are
/// not moved on their way to validation. `Some(true)` when it read an array:
/// otherwise the slots own no memory (borrowed strings, numbers). On `None`
/// they hold whatever was read before the scanner gave up.
#[inline]
pub(super) fn scan_into<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> Option<bool> {
    let mut s = Scanner {
        text,
        pos: 0,
        arrays: false,
    };
    s.skip_whitespace();
    s.expect(b'{')?;
    s.skip_whitespace();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.expect(b'"')?;
            let key = s.string_rest()?;
            s.skip_whitespace();
            s.expect(b':')?;
            s.skip_whitespace();
            let value = s.value(0)?;
            if let Some(slot) = raw.slot(Key::of(key)) {
                if matches!(slot, Val::Absent) {
                    // the usual case, a key read once: nothing to drop
                    std::mem::forget(std::mem::replace(slot, value));
                } else {
                    *slot = value;
                }
            }
            s.skip_whitespace();
            match s.bump()? {
                b',' => s.skip_whitespace(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_whitespace();
    (s.pos == text.len()).then_some(s.arrays)
}

/// A position in the text. It only ever stops on an ASCII byte or at the end, so
/// slicing the text at it is always on a character boundary.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    /// An array was read (the only value that owns memory).
    arrays: bool,
}

impl<'a> Scanner<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.bump()? == want).then_some(())
    }

    /// Skips JSON whitespace: space, tab, line feed, carriage return.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Reads `word`, the rest of a literal whose first letter was read.
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.rest()
            .starts_with(word)
            .then(|| self.pos += word.len())
    }

    /// Reads the rest of a string whose opening quote was read, through the closing
    /// quote; `None` at an escape, a control character or the end of the text.
    #[inline]
    fn string_rest(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let end = start + string_end(bytes.get(start..)?)?;
        if bytes[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        self.text.get(start..end)
    }

    /// Reads one value; `depth` is how many arrays enclose it. A string,
    /// nearly every value, is read inline; the rest through a call
    /// ([`Scanner::other_value`]: recursive, so never inlined).
    #[inline]
    fn value(&mut self, depth: usize) -> Option<Val<'a>> {
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Some(Val::Str(Cow::Borrowed(self.string_rest()?)));
        }
        self.other_value(depth)
    }

    /// Reads a value that is not a string.
    fn other_value(&mut self, depth: usize) -> Option<Val<'a>> {
        match self.bump()? {
            b'n' => self.literal(b"ull").map(|()| Val::Null),
            b't' => self.literal(b"rue").map(|()| Val::Other),
            b'f' => self.literal(b"alse").map(|()| Val::Other),
            b'[' => self.array(depth + 1),
            b'-' => self
                .integer()
                .and_then(|n| (n != 0).then_some(Val::Int(-n))),
            b'0'..=b'9' => {
                self.pos -= 1;
                self.integer().map(Val::Int)
            }
            _ => None,
        }
    }

    /// Reads the digits of an integer: `0` or a non-zero digit and up to
    /// [`MAX_DIGITS`] in all, followed by whitespace, `,`, `}` or `]`.
    fn integer(&mut self) -> Option<i64> {
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.rest()[..digits];
        if digits == 0 || digits > MAX_DIGITS || (digits > 1 && text[0] == b'0') {
            return None;
        }
        self.pos += digits;
        if !matches!(
            self.peek(),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']')
        ) {
            return None;
        }
        Some(text.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
    }

    /// Reads the rest of an array whose `[` was read; `depth` counts this array.
    fn array(&mut self, depth: usize) -> Option<Val<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.arrays = true;
        let mut values = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(Val::Arr(values));
        }
        loop {
            values.push(self.value(depth)?);
            self.skip_whitespace();
            match self.bump()? {
                b',' => self.skip_whitespace(),
                b']' => return Some(Val::Arr(values)),
                _ => return None,
            }
        }
    }
}

/// The index of the first `"`, `\\` or control character of `bytes`, eight
/// bytes at a time.
#[inline]
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // a byte of `x` is zero: its high bit in the result (exact for the first
    // zero byte, which is the one wanted)
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(c) = bytes.get(at..at + 8) {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        // bytes below 0x20; quotes; backslashes (a byte's high bit set is
        // never below 0x20, so `!w` masks those out)
        let hit = (w.wrapping_sub(0x20 * ONES) & !w & HIGH)
            | zero(w ^ (u64::from(b'"') * ONES))
            | zero(w ^ (u64::from(b'\\') * ONES));
        if hit != 0 {
            return Some(at + (hit.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::string_end;

    #[test]
    fn string_end_finds_the_first_stop_byte() {
        let naive = |b: &[u8]| b.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        for background in [b'a', 0x20, 0x21, 0x7f, 0x80, 0xe4, 0xff] {
            for len in 0..20 {
                for p in 0..len {
                    for special in [
                        b'"', b'\\', 0x00, 0x01, 0x1f, 0x20, 0x5b, 0x5d, 0x80, 0xa2, 0xdc,
                    ] {
                        let mut b = vec![background; len];
                        b[p] = special;
                        assert_eq!(string_end(&b), naive(&b), "{b:?}");
                        // a second stop byte after the first
                        if p + 1 < len {
                            b[p + 1] = b'"';
                            assert_eq!(string_end(&b), naive(&b), "{b:?}");
                        }
                    }
                }
            }
        }
    }
}

//! The order of scoring.md's ground rule 3: ascending `(ts, event_id as bytes)`.

use serde::{Deserialize, Serialize};

/// A sortable key: the instant, then the first 32 bytes of the event id (ids are
/// at most 64 bytes of `[A-Za-z0-9._:-]`, all above NUL, so zero padding sorts a
/// prefix before its extensions, as byte order does). Two ids that agree on their
/// first 32 bytes and share a microsecond compare equal; the engine then keeps
/// arrival order among them.
///
/// The id bytes are held as four big-endian words, so the derived order is byte
/// order and a comparison is four integer compares, not a `memcmp` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub ts: i64,
    pub id: [u64; 4],
}

impl OrderKey {
    #[inline]
    pub fn new(ts: i64, event_id: &str) -> Self {
        let b = event_id.as_bytes();
        // Whole words are read straight from the id; the last, partial one
        // byte by byte (a copy into a zeroed buffer first would stall the
        // loads on the copy's stores).
        let word = |i: usize| match b.get(i * 8..i * 8 + 8) {
            Some(w) => u64::from_be_bytes(w.try_into().expect("8 bytes")),
            None => (0..8).fold(0u64, |w, k| {
                w << 8 | u64::from(b.get(i * 8 + k).copied().unwrap_or(0))
            }),
        };
        OrderKey {
            ts,
            id: [word(0), word(1), word(2), word(3)],
        }
    }

    /// Sorts before every real key.
    pub const MIN: OrderKey = OrderKey {
        ts: i64::MIN,
        id: [0; 4],
    };
}

#[cfg(test)]
mod tests {
    use super::OrderKey;

    #[test]
    fn orders_as_ts_then_id_bytes() {
        let ids = [
            "a",
            "a.",
            "a0",
            "ab",
            "b",
            "B",
            "01234567",
            "012345678",
            "01234567-9abcdef",
            "01234567-9abcdeg0",
            "0123456789abcdef0123456789abcdeX",
        ];
        for x in ids {
            for y in ids {
                for (tx, ty) in [(5, 5), (4, 5), (5, 4)] {
                    let want = (tx, x.as_bytes()).cmp(&(ty, y.as_bytes()));
                    let got = OrderKey::new(tx, x).cmp(&OrderKey::new(ty, y));
                    assert_eq!(got, want, "({tx}, {x:?}) vs ({ty}, {y:?})");
                }
            }
        }
        assert!(OrderKey::MIN < OrderKey::new(i64::MIN, "0"));
    }
}

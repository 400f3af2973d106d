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
        OrderKey {
            ts,
            id: [word(b, 0), word(b, 1), word(b, 2), word(b, 3)],
        }
    }

    /// Sorts before every real key.
    pub const MIN: OrderKey = OrderKey {
        ts: i64::MIN,
        id: [0; 4],
    };
}

/// The `i`-th big-endian word of an id, zero-padded. Whole words are read
/// straight from the id. The last, partial one is the id's last eight bytes
/// shifted up so that the bytes before it fall off and zeros come in (byte
/// by byte for ids under eight bytes); a copy into a zeroed buffer would
/// stall the loads on the copy's stores. Inlined always: a call per word
/// cost as much as the word (callgrind).
#[inline(always)]
fn word(b: &[u8], i: usize) -> u64 {
    let load = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let at = i * 8;
    if b.len() >= at + 8 {
        load(at)
    } else if b.len() <= at {
        0
    } else if b.len() >= 8 {
        load(b.len() - 8) << (8 * (at + 8 - b.len()))
    } else {
        (0..8).fold(0u64, |w, k| {
            w << 8 | u64::from(b.get(k).copied().unwrap_or(0))
        })
    }
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
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0",
            "0123456",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdef0123456789abcd",
        ];
        for x in ids {
            for y in ids {
                for (tx, ty) in [(5, 5), (4, 5), (5, 4)] {
                    let first = |s: &'static str| &s.as_bytes()[..s.len().min(32)];
                    let want = (tx, first(x)).cmp(&(ty, first(y)));
                    let got = OrderKey::new(tx, x).cmp(&OrderKey::new(ty, y));
                    assert_eq!(got, want, "({tx}, {x:?}) vs ({ty}, {y:?})");
                }
            }
        }
        assert!(OrderKey::MIN < OrderKey::new(i64::MIN, "0"));
    }

    /// The words are the id's first 32 bytes, zero padded, read big-endian,
    /// at every length around the word boundaries.
    #[test]
    fn words_are_the_padded_id() {
        let long = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
        for len in 0..=long.len() {
            let id = &long[..len];
            let mut padded = [0u8; 32];
            let n = len.min(32);
            padded[..n].copy_from_slice(&id.as_bytes()[..n]);
            let want: [u64; 4] = std::array::from_fn(|i| {
                u64::from_be_bytes(padded[i * 8..i * 8 + 8].try_into().unwrap())
            });
            assert_eq!(OrderKey::new(7, id).id, want, "{id:?}");
        }
    }
}

//! Short names compared as integers: the field names and enum values of the
//! contract are matched on every event, and a string comparison (a `memcmp`
//! call per candidate) cost more than the rest of the match. A name is found
//! in a [`Table`] by one multiplicative hash and one comparison, not by trying
//! every candidate.

/// A string's length and up to 24 of its bytes as three words: equal for two
/// strings of up to 24 bytes exactly when the strings are equal.
///
/// The words are read as whole loads, overlapping for lengths between the
/// load sizes: bytes `[0, 8)`, `[8, 16)` and the last 8 from 16 bytes on; the
/// first and the last 8 from 8 bytes on; the first and the last 4 from 4
/// bytes on; the bytes themselves below. Every byte of a string of up to 24
/// bytes is in some word, so two such strings of one length that differ
/// differ in a word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Words {
    len: usize,
    a: u64,
    b: u64,
    c: u64,
}

/// The little-endian `u64` of `b[at..at + n]` (`n` ≤ 8), at compile time too.
const fn load(b: &[u8], at: usize, n: usize) -> u64 {
    let mut w = 0u64;
    let mut i = n;
    while i > 0 {
        i -= 1;
        w = (w << 8) | b[at + i] as u64;
    }
    w
}

impl Words {
    #[inline]
    pub fn of(s: &str) -> Words {
        let b = s.as_bytes();
        let n = b.len();
        let w8 = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let w4 = |at: usize| {
            u64::from(u32::from_le_bytes(
                b[at..at + 4].try_into().expect("4 bytes"),
            ))
        };
        let (a, b2, c) = match n {
            16.. => (w8(0), w8(8), w8(n - 8)),
            8.. => (w8(0), w8(n - 8), 0),
            4.. => (w4(0), w4(n - 4), 0),
            _ => (load(b, 0, n), 0, 0),
        };
        Words {
            len: n,
            a,
            b: b2,
            c,
        }
    }

    /// [`Words::of`] at compile time, for names of at most 24 bytes.
    pub const fn of_const(s: &str) -> Words {
        let b = s.as_bytes();
        let n = b.len();
        assert!(n <= 24, "names compared as words fit 24 bytes");
        let (a, b2, c) = if n >= 16 {
            (load(b, 0, 8), load(b, 8, 8), load(b, n - 8, 8))
        } else if n >= 8 {
            (load(b, 0, 8), load(b, n - 8, 8), 0)
        } else if n >= 4 {
            (load(b, 0, 4), load(b, n - 4, 4), 0)
        } else {
            (load(b, 0, n), 0, 0)
        };
        Words {
            len: n,
            a,
            b: b2,
            c,
        }
    }

    /// The slot of these words in a table of `2^bits` slots hashed with `mul`.
    #[inline]
    const fn slot(&self, mul: u64, bits: u32) -> usize {
        let h = self.a ^ self.b.rotate_left(21) ^ self.c.rotate_left(42) ^ self.len as u64;
        (h.wrapping_mul(mul) >> (64 - bits)) as usize
    }
}

/// A set of names with a value each, found by [`Table::get`] with one hash
/// and one comparison. Built at compile time: [`Table::new`] looks for a
/// multiplier under which no two names share a slot.
pub struct Table<T: Copy + 'static, const N: usize> {
    mul: u64,
    bits: u32,
    slots: [Option<(Words, T)>; N],
}

impl<T: Copy + 'static, const N: usize> Table<T, N> {
    /// The table of `names`; `N` must be a power of two. Fails to compile if
    /// no multiplier tried separates the names (then make `N` larger).
    pub const fn new(names: &[(&str, T)]) -> Self {
        assert!(N.is_power_of_two(), "a table has a power-of-two size");
        let bits = N.trailing_zeros();
        let mut mul: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut tries = 0;
        while tries < 10_000 {
            let mut slots: [Option<(Words, T)>; N] = [None; N];
            let mut ok = true;
            let mut i = 0;
            while i < names.len() {
                let w = Words::of_const(names[i].0);
                let at = w.slot(mul, bits);
                if slots[at].is_some() {
                    ok = false;
                    break;
                }
                slots[at] = Some((w, names[i].1));
                i += 1;
            }
            if ok {
                return Table { mul, bits, slots };
            }
            mul = mul.wrapping_add(0x2545_F491_4F6C_DD1D);
            tries += 1;
        }
        panic!("no multiplier separates these names");
    }

    /// The value of `name`, if it is one of the table's names.
    #[inline]
    pub fn get(&self, name: &str) -> Option<T> {
        let w = Words::of(name);
        match self.slots[w.slot(self.mul, self.bits)] {
            Some((k, v)) if k == w => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Table, Words};

    const NAMES: &[&str] = &[
        "",
        "a",
        "ab",
        "a\0",
        "abc",
        "abcd",
        "abce",
        "login",
        "teach",
        "teacher",
        "teachex",
        "event_id",
        "event_ie",
        "resource_interact",
        "resource_interacT",
        "resource_interac",
        "counterpart_id",
        "counterpart_role",
        "0123456789abcdef",
        "0123456789abcdeF",
        "0123456789abcdefg",
        "0123456789abcdefghijklmn",
        "0123456789abcdefghijklmN",
        "0123456789abcdefGhijklmn",
        "0123456789Abcdefghijklmn",
    ];

    #[test]
    fn equal_words_are_equal_strings() {
        for x in NAMES {
            assert_eq!(Words::of(x), Words::of_const(x), "{x:?}");
            for y in NAMES {
                assert_eq!(Words::of(x) == Words::of(y), x == y, "{x:?} {y:?}");
            }
        }
        // every length up to 24, a byte changed at every position
        for n in 0..=24 {
            let base = vec![b'x'; n];
            for p in 0..n {
                let mut other = base.clone();
                other[p] = b'y';
                let (x, y) = (
                    std::str::from_utf8(&base).unwrap(),
                    std::str::from_utf8(&other).unwrap(),
                );
                assert_ne!(Words::of(x), Words::of(y), "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn a_table_finds_its_names_and_nothing_else() {
        const T: Table<u8, 64> = Table::new(&[
            ("event_id", 0),
            ("counterpart_id", 1),
            ("counterpart_role", 2),
            ("owner_id", 3),
            ("owner_school_id", 4),
            ("ts", 5),
            ("op", 6),
        ]);
        let names = [
            "event_id",
            "counterpart_id",
            "counterpart_role",
            "owner_id",
            "owner_school_id",
            "ts",
            "op",
        ];
        for (i, name) in names.into_iter().enumerate() {
            assert_eq!(T.get(name), Some(i as u8), "{name}");
        }
        let others = ["event_i", "event_idx", "t", "tss", "Op", "owner_ix"];
        for other in NAMES.iter().chain(&others) {
            if !names.contains(other) {
                assert_eq!(T.get(other), None, "{other}");
            }
        }
    }
}

//! Short names compared as integers: the field names and enum values of the
//! contract are matched on every event, and a string comparison (a `memcmp`
//! call per candidate) cost more than the rest of the match.

/// A string's length and its first 24 bytes, zero padded: equal for two
/// strings of up to 24 bytes exactly when the strings are equal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Words {
    len: usize,
    lo: u128,
    hi: u64,
}

impl Words {
    pub fn of(s: &str) -> Words {
        let b = s.as_bytes();
        let pack = |bytes: &[u8]| {
            bytes
                .iter()
                .rev()
                .fold(0u128, |w, &x| (w << 8) | u128::from(x))
        };
        let (lo, hi) = b.split_at(b.len().min(16));
        Words {
            len: b.len(),
            lo: match lo.first_chunk::<16>() {
                Some(w) => u128::from_le_bytes(*w),
                None => pack(lo),
            },
            hi: pack(&hi[..hi.len().min(8)]) as u64,
        }
    }

    /// [`Words::of`] at compile time, for names of at most 24 bytes.
    pub const fn of_const(s: &str) -> Words {
        let b = s.as_bytes();
        assert!(b.len() <= 24, "names compared as words fit 24 bytes");
        let mut lo = 0u128;
        let mut hi = 0u64;
        let mut i = b.len();
        while i > 0 {
            i -= 1;
            if i < 16 {
                lo = (lo << 8) | b[i] as u128;
            } else {
                hi = (hi << 8) | b[i] as u64;
            }
        }
        Words {
            len: b.len(),
            lo,
            hi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Words;

    #[test]
    fn equal_words_are_equal_strings() {
        let names = [
            "",
            "a",
            "ab",
            "a\0",
            "login",
            "teach",
            "teacher",
            "resource_interact",
            "resource_interacT",
            "resource_interac",
            "counterpart_role",
            "0123456789abcdef",
            "0123456789abcdefg",
            "0123456789abcdefghijklmn",
            "0123456789abcdefghijklmN",
        ];
        for x in names {
            assert_eq!(Words::of(x), Words::of_const(x), "{x:?}");
            for y in names {
                assert_eq!(Words::of(x) == Words::of(y), x == y, "{x:?} {y:?}");
            }
        }
    }
}

//! Keys to dense ids without a second copy of the key.

use hashbrown::HashTable;

/// 64-bit hash of a string, stable across versions and restarts (xxh3).
pub fn hash64(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// Maps keys to dense `u32` ids; the key itself lives with the caller's value, so
/// the table holds only (hash, id) and the caller says how to compare.
#[derive(Default, Clone)]
pub struct Index {
    table: HashTable<(u64, u32)>,
}

impl Index {
    /// The id whose key has `hash` and satisfies `eq`.
    pub fn find(&self, hash: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        self.table
            .find(hash, |&(h, id)| h == hash && eq(id))
            .map(|&(_, id)| id)
    }

    /// Records a new key's `hash` under `id`.
    pub fn insert(&mut self, hash: u64, id: u32) {
        self.table.insert_unique(hash, (hash, id), |&(h, _)| h);
    }

    /// Forgets every key, keeping the table's allocation.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// Rebuilds the index from the hashes of keys numbered in order.
    pub fn rebuild(hashes: impl Iterator<Item = u64>) -> Index {
        let mut index = Index::default();
        for (i, h) in hashes.enumerate() {
            index.insert(h, i as u32);
        }
        index
    }

    /// Bytes held by the table itself.
    pub fn heap_bytes(&self) -> usize {
        table_bytes::<(u64, u32)>(self.table.capacity())
    }
}

/// The bytes of a hash table (std's, or hashbrown's) of entries `T` that
/// reports `capacity`: its buckets, each an entry and a control byte. A table
/// of 8 buckets or more holds 7/8 as many entries as buckets, and grows by
/// doubling them, so it takes between 8/7 and 16/7 buckets per entry held.
pub fn table_bytes<T>(capacity: usize) -> usize {
    let buckets = if capacity < 7 {
        capacity + usize::from(capacity > 0)
    } else {
        capacity / 7 * 8
    };
    buckets * (std::mem::size_of::<T>() + 1)
}

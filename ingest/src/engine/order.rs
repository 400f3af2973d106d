//! The order of scoring.md's ground rule 3: ascending `(ts, event_id as bytes)`.

use serde::{Deserialize, Serialize};

/// A sortable key: the instant, then the first 32 bytes of the event id (ids are
/// at most 64 bytes of `[A-Za-z0-9._:-]`, all above NUL, so zero padding sorts a
/// prefix before its extensions, as byte order does). Two ids that agree on their
/// first 32 bytes and share a microsecond compare equal; the engine then keeps
/// arrival order among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub ts: i64,
    pub id: [u8; 32],
}

impl OrderKey {
    pub fn new(ts: i64, event_id: &str) -> Self {
        let mut id = [0u8; 32];
        let b = event_id.as_bytes();
        let n = b.len().min(32);
        id[..n].copy_from_slice(&b[..n]);
        OrderKey { ts, id }
    }

    /// Sorts before every real key.
    pub const MIN: OrderKey = OrderKey {
        ts: i64::MIN,
        id: [0; 32],
    };
}

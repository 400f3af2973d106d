//! `daily_activity`: per (day, actor) usage counts, rolled up between flushes.

use serde::{Deserialize, Serialize};

use super::interner::{Index, hash_day};
use super::order::OrderKey;
use huoyue_schemas::event::{Action, Event, Role};

/// The counts of one (day, user) since the last flush.
#[derive(Clone, Serialize, Deserialize)]
pub struct ActivityRow {
    pub day: i32,
    pub user_id: Box<str>,
    pub role: Role,
    pub school_id: Box<str>,
    /// The first event in order among those counted here (it gives role and school).
    pub first: OrderKey,
    pub logins: i64,
    pub deep_actions: i64,
    pub registers: i64,
    pub events: i64,
}

/// The rows of the current flush.
#[derive(Default, Serialize, Deserialize)]
pub struct Activity {
    rows: Vec<ActivityRow>,
    #[serde(skip)]
    index: Index,
}

impl Activity {
    pub fn add(&mut self, day: i32, key: OrderKey, e: &Event<'_>) {
        let h = hash_day(day, &e.user_id);
        let rows = &self.rows;
        let i = match self.index.find(h, |i| {
            let r = &rows[i as usize];
            r.day == day && *r.user_id == *e.user_id
        }) {
            Some(i) => i as usize,
            None => {
                self.rows.push(ActivityRow {
                    day,
                    user_id: e.user_id.as_ref().into(),
                    role: e.role,
                    school_id: e.school_id.as_ref().into(),
                    first: key,
                    logins: 0,
                    deep_actions: 0,
                    registers: 0,
                    events: 0,
                });
                self.index.insert(h, (self.rows.len() - 1) as u32);
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[i];
        if key < row.first {
            row.first = key;
            row.role = e.role;
            if *row.school_id != *e.school_id {
                row.school_id = e.school_id.as_ref().into();
            }
        }
        row.events += 1;
        match e.action {
            Action::Login => row.logins += 1,
            Action::Register => row.registers += 1,
            a if a.is_deep() => row.deep_actions += 1,
            _ => {}
        }
    }

    /// Takes the rows of this flush, leaving the roll-up empty.
    pub fn take(&mut self) -> Vec<ActivityRow> {
        self.index.clear();
        // the next flush has about as many rows: start at that capacity
        let capacity = self.rows.len();
        std::mem::replace(&mut self.rows, Vec::with_capacity(capacity))
    }

    /// Rebuilds the lookup after a restore.
    pub fn rebuild_index(&mut self) {
        self.index = Index::rebuild(self.rows.iter().map(|r| hash_day(r.day, &r.user_id)));
    }
}

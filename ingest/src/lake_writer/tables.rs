//! Row builders of the small tables, one per partition day (also
//! `huoyue-aggregate rescore`'s, so that its files are the ingest's).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use huoyue_schemas::columns::Lineage;
use huoyue_schemas::lake;

use crate::engine::ActivityRow;

/// `daily_scores` rows of one day.
#[derive(Default)]
pub struct ScoreRows {
    user_id: StringBuilder,
    school_id: StringBuilder,
    rule: StringBuilder,
    points: Int64Builder,
    events: Int64Builder,
    pub len: usize,
}

impl ScoreRows {
    pub fn push(&mut self, user_id: &str, school_id: &str, rule: &str, points: i64, events: i64) {
        self.user_id.append_value(user_id);
        self.school_id.append_value(school_id);
        self.rule.append_value(rule);
        self.points.append_value(points);
        self.events.append_value(events);
        self.len += 1;
    }

    pub fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.school_id.finish()),
            Arc::new(self.rule.finish()),
            Arc::new(self.points.finish()),
            Arc::new(self.events.finish()),
        ];
        RecordBatch::try_new(lake::daily_scores(), cols).expect("daily_scores columns")
    }
}

/// `daily_activity` rows of one day.
#[derive(Default)]
pub struct ActivityRows {
    user_id: StringBuilder,
    role: StringBuilder,
    school_id: StringBuilder,
    counts: [Int64Builder; 4],
    pub len: usize,
}

impl ActivityRows {
    pub fn push(&mut self, r: &ActivityRow<'_>) {
        self.user_id.append_value(r.user_id);
        self.role.append_value(r.role.as_str());
        self.school_id.append_value(r.school_id);
        for (b, v) in self
            .counts
            .iter_mut()
            .zip([r.logins, r.deep_actions, r.registers, r.events])
        {
            b.append_value(v);
        }
        self.len += 1;
    }

    pub fn finish(mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.school_id.finish()),
        ];
        for b in &mut self.counts {
            cols.push(Arc::new(b.finish()));
        }
        RecordBatch::try_new(lake::daily_activity(), cols).expect("daily_activity columns")
    }
}

/// `rejected` rows of one ingest day.
pub struct RejectedRows {
    ingested_at: TimestampMicrosecondBuilder,
    reason: StringBuilder,
    detail: StringBuilder,
    raw: BinaryBuilder,
    source: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    pub len: usize,
}

impl Default for RejectedRows {
    fn default() -> Self {
        RejectedRows {
            ingested_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            reason: StringBuilder::new(),
            detail: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            source: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            len: 0,
        }
    }
}

impl RejectedRows {
    pub fn push(
        &mut self,
        ingested_at: i64,
        reason: &str,
        detail: Option<&str>,
        raw: &[u8],
        lineage: Lineage<'_>,
    ) {
        self.ingested_at.append_value(ingested_at);
        self.reason.append_value(reason);
        self.detail.append_option(detail);
        self.raw.append_value(raw);
        self.source.append_value(lineage.source);
        self.partition.append_option(lineage.partition);
        self.offset.append_option(lineage.offset);
        self.len += 1;
    }

    pub fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ingested_at.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        RecordBatch::try_new(lake::rejected(), cols).expect("rejected columns")
    }
}

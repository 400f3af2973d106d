//! Events as Arrow columns: the `events` table's rows are built here from decoded
//! events, and read back here as borrowed [`Event`]s (by the engine, after a
//! decoder thread, and by re-scoring from the lake).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, Int64Array, Int64Builder, ListArray, ListBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use crate::event::{Action, Client, Event, EventView, Extra, ExtraStr, Kinds, Role, is_school_id};
use crate::lake;

/// Where a row came from: the `source`, `partition` and `offset` columns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lineage<'a> {
    pub source: &'a str,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

macro_rules! extra_strings {
    ($m:ident) => {
        $m! {
            stage, op, resource_id, owner_id, owner_school_id, level, outcome, lesson_id, task_id, kind, status,
            counterpart_id, counterpart_role, app_id
        }
    };
}

macro_rules! builder_struct {
    ($($f:ident),*) => {
        /// Builds `events` rows.
        pub struct EventBatchBuilder {
            event_id: StringBuilder,
            ts: TimestampMicrosecondBuilder,
            user_id: StringBuilder,
            role: StringBuilder,
            school_id: StringBuilder,
            action: StringBuilder,
            client: StringBuilder,
            items: ListBuilder<StringBuilder>,
            duration_s: Int64Builder,
            published_at: TimestampMicrosecondBuilder,
            $($f: StringBuilder,)*
            source: StringBuilder,
            partition: Int32Builder,
            offset: Int64Builder,
            owed: OwedNulls,
            len: usize,
        }

        /// Nulls owed to each action-specific string column: most events leave
        /// most of them empty, and a run of nulls is appended in one go before
        /// the column's next value (or at the finish), not one call per event.
        #[derive(Default)]
        struct OwedNulls {
            $($f: usize,)*
        }

        impl EventBatchBuilder {
            pub fn with_capacity(rows: usize) -> Self {
                let s = || StringBuilder::with_capacity(rows, rows * 8);
                EventBatchBuilder {
                    event_id: s(),
                    ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
                    user_id: s(),
                    role: s(),
                    school_id: s(),
                    action: s(),
                    client: s(),
                    items: ListBuilder::new(StringBuilder::new())
                        .with_field(Arc::new(arrow::datatypes::Field::new("item", arrow::datatypes::DataType::Utf8, true))),
                    duration_s: Int64Builder::with_capacity(rows),
                    published_at: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
                    $($f: StringBuilder::with_capacity(rows, 0),)*
                    source: s(),
                    partition: Int32Builder::with_capacity(rows),
                    offset: Int64Builder::with_capacity(rows),
                    owed: OwedNulls::default(),
                    len: 0,
                }
            }

            /// Appends one event.
            pub fn append(&mut self, e: &Event<'_>, lineage: Lineage<'_>) {
                self.event_id.append_value(&e.event_id);
                self.ts.append_value(e.ts);
                self.user_id.append_value(&e.user_id);
                self.role.append_value(e.role.as_str());
                self.school_id.append_value(&e.school_id);
                self.action.append_value(e.action.as_str());
                self.client.append_value(e.client.as_str());
                let x = &e.extra;
                match &x.items {
                    Some(items) => {
                        for i in items {
                            self.items.values().append_value(i);
                        }
                        self.items.append(true);
                    }
                    None => self.items.append(false),
                }
                self.duration_s.append_option(x.duration_s);
                self.published_at.append_option(x.published_at);
                $(match x.$f.as_deref() {
                    Some(v) => {
                        let owed = std::mem::take(&mut self.owed.$f);
                        if owed > 0 {
                            self.$f.append_nulls(owed);
                        }
                        self.$f.append_value(v);
                    }
                    None => self.owed.$f += 1,
                })*
                self.source.append_value(lineage.source);
                self.partition.append_option(lineage.partition);
                self.offset.append_option(lineage.offset);
                self.len += 1;
            }

            pub fn len(&self) -> usize {
                self.len
            }

            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            /// The rows so far as a batch of the `events` schema; the builder is reset.
            pub fn finish(&mut self) -> RecordBatch {
                self.len = 0;
                $(
                    let owed = std::mem::take(&mut self.owed.$f);
                    if owed > 0 {
                        self.$f.append_nulls(owed);
                    }
                )*
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(27);
                columns.push(Arc::new(self.event_id.finish()));
                columns.push(Arc::new(self.ts.finish()));
                columns.push(Arc::new(self.user_id.finish()));
                columns.push(Arc::new(self.role.finish()));
                columns.push(Arc::new(self.school_id.finish()));
                columns.push(Arc::new(self.action.finish()));
                columns.push(Arc::new(self.client.finish()));
                let mut extra: Vec<(&str, ArrayRef)> = vec![
                    ("items", Arc::new(self.items.finish())),
                    ("duration_s", Arc::new(self.duration_s.finish())),
                    ("published_at", Arc::new(self.published_at.finish())),
                    $((stringify!($f), Arc::new(self.$f.finish())),)*
                ];
                for name in lake::EVENT_EXTRA_COLUMNS {
                    let i = extra.iter().position(|(n, _)| n == name).expect("every extra column is built");
                    columns.push(extra.swap_remove(i).1);
                }
                columns.push(Arc::new(self.source.finish()));
                columns.push(Arc::new(self.partition.finish()));
                columns.push(Arc::new(self.offset.finish()));
                RecordBatch::try_new(lake::events(), columns).expect("builder columns match the events schema")
            }
        }
    };
}

extra_strings!(builder_struct);

/// Reads `events` rows back: built into borrowed [`Event`]s
/// ([`EventRows::get`]), or read in place ([`EventRows::row`]).
pub struct EventRows<'b> {
    event_id: &'b StringArray,
    ts: &'b TimestampMicrosecondArray,
    user_id: &'b StringArray,
    role: &'b StringArray,
    school_id: &'b StringArray,
    action: &'b StringArray,
    client: &'b StringArray,
    items: &'b ListArray,
    duration_s: &'b Int64Array,
    published_at: &'b TimestampMicrosecondArray,
    /// The action-specific string columns, by `ExtraStr as usize`.
    strs: [&'b StringArray; ExtraStr::ALL.len()],
    /// Per action (by `Action as usize`): the [`Field::bit`]s of the fields
    /// the action carries.
    masks: [u32; Action::ALL.len()],
    len: usize,
}

impl<'b> EventRows<'b> {
    /// Views a batch of the `events` schema (extra columns may be missing).
    pub fn new(batch: &'b RecordBatch) -> Result<Self, ArrowError> {
        fn col<'c>(b: &'c RecordBatch, name: &str) -> Result<&'c ArrayRef, ArrowError> {
            b.column_by_name(name).ok_or_else(|| {
                ArrowError::SchemaError(format!("events batch has no column {name}"))
            })
        }
        fn strings<'c>(b: &'c RecordBatch, name: &str) -> Result<&'c StringArray, ArrowError> {
            col(b, name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| ArrowError::SchemaError(format!("events column {name} is not Utf8")))
        }
        let ts_of = |name: &str| -> Result<&'b TimestampMicrosecondArray, ArrowError> {
            col(batch, name)?
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| {
                    ArrowError::SchemaError(format!("events column {name} is not Timestamp(µs)"))
                })
        };
        let mut strs = Vec::with_capacity(ExtraStr::ALL.len());
        for (_, name) in ExtraStr::ALL {
            strs.push(strings(batch, name)?);
        }
        let mut masks = [0; Action::ALL.len()];
        for (a, mask) in Action::ALL.iter().zip(&mut masks) {
            *mask = action_fields(*a).iter().fold(0, |m, f| m | f.bit());
        }
        Ok(EventRows {
            event_id: strings(batch, "event_id")?,
            ts: ts_of("ts")?,
            user_id: strings(batch, "user_id")?,
            role: strings(batch, "role")?,
            school_id: strings(batch, "school_id")?,
            action: strings(batch, "action")?,
            client: strings(batch, "client")?,
            items: col(batch, "items")?.as_list_opt::<i32>().ok_or_else(|| {
                ArrowError::SchemaError("events column items is not a List".into())
            })?,
            duration_s: col(batch, "duration_s")?
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
                .ok_or_else(|| {
                    ArrowError::SchemaError("events column duration_s is not Int64".into())
                })?,
            published_at: ts_of("published_at")?,
            strs: strs.try_into().expect("one column per field"),
            masks,
            len: batch.num_rows(),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `i` as an event; `None` if a stored value is not one of events.md
    /// (a lake written by something else). Only the columns of the row's
    /// action are read: the decoder leaves the others empty (events.md).
    pub fn get(&self, i: usize) -> Option<Event<'b>> {
        let kinds = Kinds {
            action: Action::from_str(self.action.value(i))?,
            role: Role::from_str(self.role.value(i))?,
            client: Client::from_str(self.client.value(i))?,
        };
        self.get_as(i, kinds)
    }

    /// [`EventRows::get`] of a row whose `action`, `role` and `client`
    /// are known (read by the decoder that built the batch): they are
    /// not parsed again.
    pub fn get_as(&self, i: usize, kinds: Kinds) -> Option<Event<'b>> {
        let Kinds {
            action,
            role,
            client,
        } = kinds;
        let mut extra = Extra::default();
        for f in action_fields(action) {
            match *f {
                Field::Items => {
                    extra.items = self.items.is_valid(i).then(|| {
                        let mut items = Vec::new();
                        self.each_item(i, |v| items.push(Cow::Borrowed(v)));
                        items
                    })
                }
                Field::DurationS => {
                    extra.duration_s = self
                        .duration_s
                        .is_valid(i)
                        .then(|| self.duration_s.value(i))
                }
                Field::PublishedAt => {
                    extra.published_at = self
                        .published_at
                        .is_valid(i)
                        .then(|| self.published_at.value(i))
                }
                Field::Str(f) => {
                    let c = self.strs[f as usize];
                    *extra.str_mut(f) = c.is_valid(i).then(|| Cow::Borrowed(c.value(i)));
                }
            }
        }
        let school_id = self.school_id.value(i);
        if !is_school_id(school_id) || !extra.owner_school_id.as_deref().is_none_or(is_school_id) {
            return None;
        }
        Some(Event {
            event_id: Cow::Borrowed(self.event_id.value(i)),
            ts: self.ts.value(i),
            user_id: Cow::Borrowed(self.user_id.value(i)),
            role,
            school_id: Cow::Borrowed(school_id),
            action,
            client,
            extra,
        })
    }

    /// Row `i`, whose `action`, `role` and `client` are known, read in place:
    /// what [`EventRows::get_as`] builds, without building it. For rows the
    /// decoder wrote, whose school ids it checked ([`EventRows::get_as`]
    /// checks them again for rows read from a lake).
    pub fn row(&self, i: usize, kinds: Kinds) -> EventRow<'_, 'b> {
        debug_assert!(i < self.len);
        EventRow {
            rows: self,
            i,
            kinds,
        }
    }

    /// The non-null items of row `i`, in order.
    fn each_item(&self, i: usize, mut each: impl FnMut(&'b str)) {
        let values: &'b StringArray = self.items.values().as_string::<i32>();
        let offsets = self.items.value_offsets();
        for j in offsets[i] as usize..offsets[i + 1] as usize {
            if values.is_valid(j) {
                each(values.value(j));
            }
        }
    }
}

/// A row of an [`EventRows`] read in place ([`EventRows::row`]).
#[derive(Clone, Copy)]
pub struct EventRow<'r, 'b> {
    rows: &'r EventRows<'b>,
    i: usize,
    kinds: Kinds,
}

impl EventRow<'_, '_> {
    /// Whether the row's action carries `f` ([`EventRows::get_as`] reads no other).
    fn has(&self, f: Field) -> bool {
        self.rows.masks[self.kinds.action as usize] & f.bit() != 0
    }
}

impl EventView for EventRow<'_, '_> {
    #[inline]
    fn event_id(&self) -> &str {
        self.rows.event_id.value(self.i)
    }
    #[inline]
    fn ts(&self) -> i64 {
        self.rows.ts.value(self.i)
    }
    #[inline]
    fn user_id(&self) -> &str {
        self.rows.user_id.value(self.i)
    }
    #[inline]
    fn school_id(&self) -> &str {
        self.rows.school_id.value(self.i)
    }
    #[inline]
    fn kinds(&self) -> Kinds {
        self.kinds
    }
    #[inline]
    fn str(&self, f: ExtraStr) -> Option<&str> {
        let (rows, i) = (self.rows, self.i);
        let c = rows.strs[f as usize];
        (self.has(Field::Str(f)) && c.is_valid(i)).then(|| c.value(i))
    }
    #[inline]
    fn published_at(&self) -> Option<i64> {
        let (rows, i) = (self.rows, self.i);
        (self.has(Field::PublishedAt) && rows.published_at.is_valid(i))
            .then(|| rows.published_at.value(i))
    }
    fn each_item(&self, each: &mut dyn FnMut(&str)) {
        if self.has(Field::Items) && self.rows.items.is_valid(self.i) {
            self.rows.each_item(self.i, each);
        }
    }
}

/// A column of [`Extra`].
#[derive(Clone, Copy, Debug)]
enum Field {
    Items,
    DurationS,
    PublishedAt,
    Str(ExtraStr),
}

impl Field {
    /// The field's bit in a mask of fields.
    fn bit(self) -> u32 {
        match self {
            Field::Str(f) => 1 << f as u32,
            Field::Items => 1 << 16,
            Field::DurationS => 1 << 17,
            Field::PublishedAt => 1 << 18,
        }
    }
}

/// The [`Extra`] fields an action carries (events.md; the decoder sets no other).
fn action_fields(action: Action) -> &'static [Field] {
    use ExtraStr::*;
    use Field::{DurationS, Items, PublishedAt, Str};
    match action {
        Action::Register => &[Str(Stage)],
        Action::Login => &[],
        Action::ProfileUpdate => &[Items],
        Action::SpaceOp => &[Str(Op)],
        Action::ResourceInteract => &[Str(ResourceId), Str(OwnerId), Str(OwnerSchoolId), Str(Op)],
        Action::ResourceReview => &[
            Str(ResourceId),
            Str(OwnerId),
            Str(OwnerSchoolId),
            Str(Level),
            Str(Outcome),
        ],
        Action::Teach => &[Str(LessonId), DurationS],
        Action::TaskPublish => &[Str(TaskId), Str(Kind)],
        Action::TaskProgress => &[
            Str(TaskId),
            Str(OwnerId),
            Str(OwnerSchoolId),
            PublishedAt,
            Str(Status),
        ],
        Action::Interaction => &[Str(CounterpartId), Str(CounterpartRole)],
        Action::AppUse => &[Str(AppId)],
    }
}

/// The schema of built batches.
pub fn schema() -> SchemaRef {
    lake::events()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;

    /// Every action's fields survive the trip through the columns: what
    /// [`EventRows::get`] reads is what the decoder produced.
    #[test]
    fn rows_read_back_as_decoded() {
        let sample = include_str!("../tests/data/conformance_sample.ndjson");
        let now = 1_900_000_000_000_000;
        let events: Vec<Event<'_>> = sample
            .lines()
            .filter_map(|l| decode(l.as_bytes(), now).ok())
            .collect();
        let actions: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions.len(),
            Action::ALL.len(),
            "the sample has every action"
        );
        let mut b = EventBatchBuilder::with_capacity(events.len());
        for e in &events {
            b.append(e, Lineage::default());
        }
        let batch = b.finish();
        let rows = EventRows::new(&batch).unwrap();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(rows.get(i).as_ref(), Some(e), "row {i}");
            assert_eq!(rows.get_as(i, e.kinds()).as_ref(), Some(e), "row {i}");
            assert_eq!(view(&rows.row(i, e.kinds())), view(e), "row {i} in place");
        }
    }

    /// A value in a column its row's action does not carry (a lake written by
    /// something else) is not read, in place or built.
    #[test]
    fn columns_of_other_actions_are_not_read() {
        let line = r#"{"event_id":"e","ts":"2026-11-03T08:15:30+08:00","user_id":"u","role":"teacher","school_id":"3333000001","action":"login"}"#;
        let mut e = decode(line.as_bytes(), 1_900_000_000_000_000).unwrap();
        let clean = e.clone();
        e.extra.app_id = Some(Cow::Borrowed("app"));
        e.extra.published_at = Some(1);
        e.extra.items = Some(vec![Cow::Borrowed("avatar")]);
        let mut b = EventBatchBuilder::with_capacity(1);
        b.append(&e, Lineage::default());
        let batch = b.finish();
        let rows = EventRows::new(&batch).unwrap();
        assert_eq!(rows.get(0), Some(clean.clone()));
        assert_eq!(view(&rows.row(0, e.kinds())), view(&clean));
    }

    /// Everything an [`EventView`] shows.
    fn view(e: &impl EventView) -> String {
        let mut items = Vec::new();
        e.each_item(&mut |i| items.push(i.to_owned()));
        let strs: Vec<_> = ExtraStr::ALL.iter().map(|(f, _)| e.str(*f)).collect();
        format!(
            "{} {} {} {} {:?} {:?} {:?} {:?} {}",
            e.event_id(),
            e.ts(),
            e.user_id(),
            e.school_id(),
            e.kinds(),
            strs,
            e.published_at(),
            items,
            e.scored_school(),
        )
    }

    #[test]
    fn a_school_id_that_is_not_10_digits_is_not_an_event() {
        let line = r#"{"event_id":"e","ts":"2026-11-03T08:15:30+08:00","user_id":"u","role":"teacher","school_id":"3333000001","action":"login"}"#;
        let e = decode(line.as_bytes(), 1_900_000_000_000_000).unwrap();
        for (school, ok) in [
            ("3333000001", true),
            ("333300001", false),
            ("333300000a", false),
        ] {
            let mut e = e.clone();
            e.school_id = Cow::Borrowed(school);
            let mut b = EventBatchBuilder::with_capacity(1);
            b.append(&e, Lineage::default());
            let batch = b.finish();
            assert_eq!(
                EventRows::new(&batch).unwrap().get(0).is_some(),
                ok,
                "{school}"
            );
        }
    }
}

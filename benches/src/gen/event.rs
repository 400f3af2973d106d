//! The compact in-memory event and its NDJSON serialisation.
//!
//! An [`Event`] holds indices and small codes only (no strings), so that a
//! month of events can be produced without allocating per event; ids are
//! written straight from the roster's numbers into a reused buffer.

use super::fmt::{TsStyle, push_date_compact, push_padded, push_ts, push_u64};
use super::roster::Roster;

/// The role of a user (`role` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// 教师, scored.
    Teacher,
    /// 学生.
    Student,
    /// 家长.
    Parent,
    /// A county bureau's reviewer (`resource_review` actor).
    Admin,
}

impl Role {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Student => "student",
            Role::Parent => "parent",
            Role::Admin => "admin",
        }
    }
}

/// A user by numbers: `t<school>-<num>`, `s<school>-<num>`, `p<school>-<num>`
/// (the parent of student `num`), or `admin-<county code>` (then `num` is the
/// county index and `school` the school its events state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRef {
    /// The role.
    pub role: Role,
    /// Global index of the user's school.
    pub school: u32,
    /// Number within the school (county index for admins).
    pub num: u32,
}

impl UserRef {
    /// Teacher `num` of school `school`.
    pub fn teacher(school: u32, num: u32) -> Self {
        UserRef {
            role: Role::Teacher,
            school,
            num,
        }
    }
    /// Student `num` of school `school`.
    pub fn student(school: u32, num: u32) -> Self {
        UserRef {
            role: Role::Student,
            school,
            num,
        }
    }
    /// The parent of student `num` of school `school`.
    pub fn parent(school: u32, num: u32) -> Self {
        UserRef {
            role: Role::Parent,
            school,
            num,
        }
    }

    /// Appends the user id.
    #[inline]
    pub fn write_id(&self, roster: &Roster, buf: &mut Vec<u8>) {
        match self.role {
            Role::Admin => {
                buf.extend_from_slice(b"admin-");
                buf.extend_from_slice(roster.county(self.num as usize).code.as_bytes());
            }
            role => {
                buf.push(match role {
                    Role::Teacher => b't',
                    Role::Student => b's',
                    _ => b'p',
                });
                push_padded(buf, self.school as u64, 4);
                buf.push(b'-');
                push_padded(
                    buf,
                    self.num as u64,
                    if role == Role::Teacher { 3 } else { 4 },
                );
            }
        }
    }

    /// The user id as a `String` (for tests and rosters; not the hot path).
    pub fn id(&self, roster: &Roster) -> String {
        let mut b = Vec::with_capacity(16);
        self.write_id(roster, &mut b);
        String::from_utf8(b).expect("ids are ASCII")
    }
}

/// The actions of events.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `register`
    Register,
    /// `login`
    Login,
    /// `profile_update`
    ProfileUpdate,
    /// `space_op`
    SpaceOp,
    /// `resource_interact`
    ResourceInteract,
    /// `resource_review`
    ResourceReview,
    /// `teach`
    Teach,
    /// `task_publish`
    TaskPublish,
    /// `task_progress`
    TaskProgress,
    /// `interaction`
    Interaction,
    /// `app_use`
    AppUse,
}

impl Action {
    /// Every action, in the order of events.md.
    pub const ALL: [Action; 11] = [
        Action::Register,
        Action::Login,
        Action::ProfileUpdate,
        Action::SpaceOp,
        Action::ResourceInteract,
        Action::ResourceReview,
        Action::Teach,
        Action::TaskPublish,
        Action::TaskProgress,
        Action::Interaction,
        Action::AppUse,
    ];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
            Action::ProfileUpdate => "profile_update",
            Action::SpaceOp => "space_op",
            Action::ResourceInteract => "resource_interact",
            Action::ResourceReview => "resource_review",
            Action::Teach => "teach",
            Action::TaskPublish => "task_publish",
            Action::TaskProgress => "task_progress",
            Action::Interaction => "interaction",
            Action::AppUse => "app_use",
        }
    }

    /// True when the event is scored for its owner (`owner_id`) rather than
    /// its actor (events.md, last column).
    pub fn scored_for_owner(self) -> bool {
        matches!(
            self,
            Action::ResourceInteract | Action::ResourceReview | Action::TaskProgress
        )
    }
}

/// `client`: absent (the spec's default is `pc`), `pc` or `mobile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// The field is left out.
    Absent,
    /// `pc`
    Pc,
    /// `mobile`
    Mobile,
}

/// Profile items, bit `i` set for `PROFILE_ITEMS[i]`.
pub const PROFILE_ITEMS: [&str; 4] = ["avatar", "contact", "school", "subject"];
/// All four profile items.
pub const PROFILE_ALL: u8 = 0b1111;
/// `op` values of `space_op`.
pub const SPACE_OPS: [&str; 6] = ["message", "upload", "blog", "album", "comment", "share"];
/// `op` values of `resource_interact`.
pub const RESOURCE_OPS: [&str; 5] = ["download", "favorite", "share", "comment", "view"];
/// `level` values of `resource_review`.
pub const LEVELS: [&str; 3] = ["county", "city", "province"];
/// `outcome` values of `resource_review`.
pub const OUTCOMES: [&str; 2] = ["approved", "deleted"];
/// `kind` values of `task_publish`.
pub const TASK_KINDS: [&str; 2] = ["homework", "activity"];
/// `status` values of `task_progress`.
pub const STATUSES: [&str; 2] = ["read", "completed"];
/// `app_id`s: the five of the profile's list first, then others that earn
/// nothing.
pub const APPS: [&str; 9] = [
    "mingshi", "jidi", "jiaoyan", "weike", "xueke", "zuoye", "yuejuan", "kebiao", "zhiyuan",
];
/// How many of [`APPS`] are in the `zhejiang-2018` list.
pub const SCORED_APPS: usize = 5;

/// Marks an event number as one of a malformed line (`bad-<YYYYMM>-<n>`,
/// never colliding with the `ev-<YYYYMM>-<n>` of a real event).
pub const BAD_SEQ: u64 = 1 << 63;

/// One event. The meaning of `n1`, `n2`, `a`, `b`, `other` and `aux_us`
/// depends on `action`:
///
/// | action | other | n1, n2 | a, b | aux |
/// | --- | --- | --- | --- | --- |
/// | register | – | – | a: stage (0 none, 1–3) | – |
/// | profile_update | – | – | a: item bits, b: rotation | – |
/// | space_op | – | – | a: op | – |
/// | resource_interact | owner | n1: resource number | a: op | – |
/// | resource_review | owner | n1: resource number | a: level, b: outcome | – |
/// | teach | – | n1: lesson, n2: duration_s | a: 1 if duration_s present | – |
/// | task_publish | owner (= actor) | n1: publish day, n2: task number | a: kind | – |
/// | task_progress | owner | n1: publish day, n2: task number | a: status | published_at |
/// | interaction | counterpart | – | – | – |
/// | app_use | – | – | a: app | – |
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// The instant, µs since the epoch (already truncated to `style`).
    pub ts_us: i64,
    /// The event number of its month: `event_id` is `ev-<YYYYMM>-<seq>`.
    pub seq: u64,
    /// `published_at` of a `task_progress`.
    pub aux_us: i64,
    /// The actor (`user_id`, `role`).
    pub actor: UserRef,
    /// Owner or counterpart, see the table.
    pub other: UserRef,
    /// The school the event states (`school_id`); the actor's own school
    /// except for a teacher on secondment.
    pub school: u32,
    /// See the table.
    pub n1: u32,
    /// See the table.
    pub n2: u32,
    /// The action.
    pub action: Action,
    /// `client`.
    pub client: Client,
    /// How `ts` is written.
    pub style: TsStyle,
    /// How `published_at` is written.
    pub aux_style: TsStyle,
    /// See the table.
    pub a: u8,
    /// See the table.
    pub b: u8,
}

impl Event {
    /// A bare event of `action` by `actor`; callers fill the rest.
    pub fn new(action: Action, actor: UserRef, ts_us: i64, style: TsStyle) -> Self {
        Event {
            ts_us,
            seq: 0,
            aux_us: 0,
            actor,
            other: actor,
            school: actor.school,
            n1: 0,
            n2: 0,
            action,
            client: Client::Absent,
            style,
            aux_style: style,
            a: 0,
            b: 0,
        }
    }

    /// The user the event is scored for: the Kafka key.
    pub fn scored_user(&self) -> UserRef {
        if self.action.scored_for_owner() {
            self.other
        } else {
            self.actor
        }
    }

    /// Appends the Kafka key (the id of [`Event::scored_user`]).
    pub fn write_key(&self, roster: &Roster, buf: &mut Vec<u8>) {
        self.scored_user().write_id(roster, buf);
    }

    /// Appends the event's JSON object (no newline).
    #[inline]
    pub fn write_json(&self, roster: &Roster, buf: &mut Vec<u8>) {
        self.write_json_with(roster, buf, Mutation::None);
    }

    /// Appends the event's JSON object with one field altered (used to make
    /// malformed lines from real-looking events).
    pub fn write_json_with(&self, roster: &Roster, buf: &mut Vec<u8>, m: Mutation<'_>) {
        let mut w = Writer {
            buf,
            m,
            first: true,
        };
        if w.key(Field::EventId) {
            w.buf.push(b'"');
            if self.seq & BAD_SEQ != 0 {
                w.buf.extend_from_slice(b"bad-");
            } else {
                w.buf.extend_from_slice(b"ev-");
            }
            push_u64(w.buf, u64::from(roster.month()));
            w.buf.push(b'-');
            push_u64(w.buf, self.seq & !BAD_SEQ);
            w.buf.push(b'"');
        }
        if w.key(Field::Ts) {
            w.buf.push(b'"');
            push_ts(w.buf, self.ts_us, self.style);
            w.buf.push(b'"');
        }
        if w.key(Field::UserId) {
            w.buf.push(b'"');
            self.actor.write_id(roster, w.buf);
            w.buf.push(b'"');
        }
        if w.key(Field::Role) {
            w.str(self.actor.role.as_str());
        }
        if w.key(Field::SchoolId) {
            w.buf.push(b'"');
            w.buf
                .extend_from_slice(&roster.school(self.school as usize).id);
            w.buf.push(b'"');
        }
        if w.key(Field::Action) {
            w.str(self.action.as_str());
        }
        match self.client {
            Client::Absent => {
                if let Mutation::Replace(Field::Client, _) = w.m {
                    w.key(Field::Client);
                }
            }
            Client::Pc => {
                if w.key(Field::Client) {
                    w.str("pc");
                }
            }
            Client::Mobile => {
                if w.key(Field::Client) {
                    w.str("mobile");
                }
            }
        }
        match self.action {
            Action::Register => {
                if self.a > 0 && w.key(Field::Stage) {
                    w.str(["primary", "junior", "senior"][(self.a - 1) as usize % 3]);
                }
            }
            Action::Login => {}
            Action::ProfileUpdate => {
                if w.key(Field::Items) {
                    w.buf.push(b'[');
                    let mut first = true;
                    for k in 0..4 {
                        let i = (k + self.b as usize) % 4;
                        if self.a & (1 << i) != 0 {
                            if !first {
                                w.buf.push(b',');
                            }
                            first = false;
                            w.buf.push(b'"');
                            w.buf.extend_from_slice(PROFILE_ITEMS[i].as_bytes());
                            w.buf.push(b'"');
                        }
                    }
                    w.buf.push(b']');
                }
            }
            Action::SpaceOp => {
                if w.key(Field::Op) {
                    w.str(SPACE_OPS[self.a as usize % SPACE_OPS.len()]);
                }
            }
            Action::ResourceInteract | Action::ResourceReview => {
                if w.key(Field::ResourceId) {
                    w.buf.extend_from_slice(b"\"r-");
                    self.other.write_id(roster, w.buf);
                    w.buf.push(b'-');
                    push_u64(w.buf, self.n1 as u64);
                    w.buf.push(b'"');
                }
                self.write_owner(roster, &mut w);
                if self.action == Action::ResourceInteract {
                    if w.key(Field::Op) {
                        w.str(RESOURCE_OPS[self.a as usize % RESOURCE_OPS.len()]);
                    }
                } else {
                    if w.key(Field::Level) {
                        w.str(LEVELS[self.a as usize % 3]);
                    }
                    if w.key(Field::Outcome) {
                        w.str(OUTCOMES[self.b as usize % 2]);
                    }
                }
            }
            Action::Teach => {
                if w.key(Field::LessonId) {
                    w.buf.extend_from_slice(b"\"l-");
                    push_u64(w.buf, self.n1 as u64);
                    w.buf.push(b'"');
                }
                if self.a == 1 && w.key(Field::DurationS) {
                    push_u64(w.buf, self.n2 as u64);
                }
            }
            Action::TaskPublish | Action::TaskProgress => {
                if w.key(Field::TaskId) {
                    w.buf.extend_from_slice(b"\"task-");
                    self.other.write_id(roster, w.buf);
                    w.buf.push(b'-');
                    push_date_compact(w.buf, self.n1 as i64);
                    w.buf.push(b'-');
                    push_u64(w.buf, self.n2 as u64);
                    w.buf.push(b'"');
                }
                if self.action == Action::TaskPublish {
                    if w.key(Field::Kind) {
                        w.str(TASK_KINDS[self.a as usize % 2]);
                    }
                } else {
                    self.write_owner(roster, &mut w);
                    if w.key(Field::PublishedAt) {
                        w.buf.push(b'"');
                        push_ts(w.buf, self.aux_us, self.aux_style);
                        w.buf.push(b'"');
                    }
                    if w.key(Field::Status) {
                        w.str(STATUSES[self.a as usize % 2]);
                    }
                }
            }
            Action::Interaction => {
                if w.key(Field::CounterpartId) {
                    w.buf.push(b'"');
                    self.other.write_id(roster, w.buf);
                    w.buf.push(b'"');
                }
                if w.key(Field::CounterpartRole) {
                    w.str(self.other.role.as_str());
                }
            }
            Action::AppUse => {
                if w.key(Field::AppId) {
                    w.str(APPS[self.a as usize % APPS.len()]);
                }
            }
        }
        if let Mutation::Append(raw) = w.m {
            w.buf.push(b',');
            w.buf.extend_from_slice(raw);
        }
        w.buf.push(b'}');
    }

    fn write_owner(&self, roster: &Roster, w: &mut Writer<'_, '_>) {
        if w.key(Field::OwnerId) {
            w.buf.push(b'"');
            self.other.write_id(roster, w.buf);
            w.buf.push(b'"');
        }
        if w.key(Field::OwnerSchoolId) {
            w.buf.push(b'"');
            w.buf
                .extend_from_slice(&roster.school(self.other.school as usize).id);
            w.buf.push(b'"');
        }
    }

    /// The required extra fields of this event's action (events.md).
    pub fn required_extras(&self) -> &'static [Field] {
        match self.action {
            Action::Register | Action::Login => &[],
            Action::ProfileUpdate => &[Field::Items],
            Action::SpaceOp => &[Field::Op],
            Action::ResourceInteract => &[
                Field::ResourceId,
                Field::OwnerId,
                Field::OwnerSchoolId,
                Field::Op,
            ],
            Action::ResourceReview => &[
                Field::ResourceId,
                Field::OwnerId,
                Field::OwnerSchoolId,
                Field::Level,
                Field::Outcome,
            ],
            Action::Teach => &[Field::LessonId],
            Action::TaskPublish => &[Field::TaskId, Field::Kind],
            Action::TaskProgress => &[
                Field::TaskId,
                Field::OwnerId,
                Field::OwnerSchoolId,
                Field::PublishedAt,
                Field::Status,
            ],
            Action::Interaction => &[Field::CounterpartId, Field::CounterpartRole],
            Action::AppUse => &[Field::AppId],
        }
    }
}

/// A field of the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    EventId,
    Ts,
    UserId,
    Role,
    SchoolId,
    Action,
    Client,
    Stage,
    Items,
    Op,
    ResourceId,
    OwnerId,
    OwnerSchoolId,
    Level,
    Outcome,
    LessonId,
    DurationS,
    TaskId,
    Kind,
    PublishedAt,
    Status,
    CounterpartId,
    CounterpartRole,
    AppId,
}

impl Field {
    /// The JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Field::EventId => "event_id",
            Field::Ts => "ts",
            Field::UserId => "user_id",
            Field::Role => "role",
            Field::SchoolId => "school_id",
            Field::Action => "action",
            Field::Client => "client",
            Field::Stage => "stage",
            Field::Items => "items",
            Field::Op => "op",
            Field::ResourceId => "resource_id",
            Field::OwnerId => "owner_id",
            Field::OwnerSchoolId => "owner_school_id",
            Field::Level => "level",
            Field::Outcome => "outcome",
            Field::LessonId => "lesson_id",
            Field::DurationS => "duration_s",
            Field::TaskId => "task_id",
            Field::Kind => "kind",
            Field::PublishedAt => "published_at",
            Field::Status => "status",
            Field::CounterpartId => "counterpart_id",
            Field::CounterpartRole => "counterpart_role",
            Field::AppId => "app_id",
        }
    }
}

/// One alteration applied while serialising.
#[derive(Clone, Copy, Debug)]
pub enum Mutation<'a> {
    /// None: the event as it is.
    None,
    /// Leave the field out.
    Omit(Field),
    /// Write `null` as the field's value.
    Null(Field),
    /// Write these raw JSON bytes as the field's value (adds the field if
    /// the event would not have it, e.g. `client`).
    Replace(Field, &'a [u8]),
    /// Append these raw bytes (`"key":value`) as a last member.
    Append(&'a [u8]),
}

struct Writer<'b, 'm> {
    buf: &'b mut Vec<u8>,
    m: Mutation<'m>,
    first: bool,
}

impl Writer<'_, '_> {
    /// Writes the key of `f` (and handles the mutation); returns true when
    /// the caller should write the value.
    #[inline]
    fn key(&mut self, f: Field) -> bool {
        if let Mutation::Omit(g) = self.m
            && g == f
        {
            return false;
        }
        self.buf.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(f.name().as_bytes());
        self.buf.extend_from_slice(b"\":");
        match self.m {
            Mutation::Null(g) if g == f => {
                self.buf.extend_from_slice(b"null");
                false
            }
            Mutation::Replace(g, raw) if g == f => {
                self.buf.extend_from_slice(raw);
                false
            }
            _ => true,
        }
    }

    #[inline]
    fn str(&mut self, s: &str) {
        self.buf.push(b'"');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::GenConfig;
    use super::super::fmt::TsStyle;
    use super::*;

    fn roster() -> Roster {
        Roster::new(&GenConfig {
            schools: 2,
            ..GenConfig::default()
        })
        .unwrap()
    }

    fn json(r: &Roster, ev: &Event, m: Mutation<'_>) -> String {
        let mut b = Vec::new();
        ev.write_json_with(r, &mut b, m);
        String::from_utf8(b).unwrap()
    }

    /// 2026-11-03T08:15:30+08:00
    const TS: i64 = 1_793_664_930_000_000;

    #[test]
    fn wire_format_is_pinned() {
        let r = roster();
        let t = UserRef::teacher(0, 7);
        let st = UserRef::student(1, 42);
        let mut login = Event::new(Action::Login, t, TS, TsStyle::China);
        login.seq = 1;
        login.client = Client::Mobile;
        assert_eq!(
            json(&r, &login, Mutation::None),
            r#"{"event_id":"ev-202611-1","ts":"2026-11-03T08:15:30+08:00","user_id":"t0000-007","role":"teacher","school_id":"3303810001","action":"login","client":"mobile"}"#
        );
        let mut ri = Event::new(
            Action::ResourceInteract,
            st,
            TS + 250_000,
            TsStyle::UtcMillis,
        );
        ri.seq = 2;
        ri.other = t;
        ri.n1 = 3;
        ri.a = 0;
        assert_eq!(
            json(&r, &ri, Mutation::None),
            r#"{"event_id":"ev-202611-2","ts":"2026-11-03T00:15:30.250Z","user_id":"s0001-0042","role":"student","school_id":"3303810002","action":"resource_interact","resource_id":"r-t0000-007-3","owner_id":"t0000-007","owner_school_id":"3303810001","op":"download"}"#
        );
        let mut key = Vec::new();
        ri.write_key(&r, &mut key);
        assert_eq!(key, b"t0000-007");
        let mut tp = Event::new(Action::TaskProgress, st, TS, TsStyle::China);
        tp.seq = 3;
        tp.other = t;
        tp.n1 = super::super::calendar::days_from_civil(2026, 11, 2) as u32;
        tp.n2 = 1;
        tp.aux_us = TS - 3_600_000_000;
        tp.aux_style = TsStyle::Utc;
        tp.a = 1;
        assert_eq!(
            json(&r, &tp, Mutation::None),
            r#"{"event_id":"ev-202611-3","ts":"2026-11-03T08:15:30+08:00","user_id":"s0001-0042","role":"student","school_id":"3303810002","action":"task_progress","task_id":"task-t0000-007-20261102-1","owner_id":"t0000-007","owner_school_id":"3303810001","published_at":"2026-11-02T23:15:30Z","status":"completed"}"#
        );
        let mut pu = Event::new(Action::ProfileUpdate, t, TS, TsStyle::China);
        pu.seq = 4;
        pu.a = 0b1010;
        pu.b = 2;
        assert!(
            json(&r, &pu, Mutation::None)
                .ends_with(r#""action":"profile_update","items":["subject","contact"]}"#)
        );
        pu.a = 0;
        assert!(json(&r, &pu, Mutation::None).ends_with(r#""items":[]}"#));
        let admin = r.admin(0);
        let mut rv = Event::new(Action::ResourceReview, admin, TS, TsStyle::China);
        rv.seq = 5;
        rv.other = t;
        rv.a = 2;
        rv.b = 1;
        let s = json(&r, &rv, Mutation::None);
        assert!(s.contains(r#""user_id":"admin-330381","role":"admin","school_id":"3303810001","action":"resource_review""#), "{s}");
        assert!(
            s.ends_with(r#""level":"province","outcome":"deleted"}"#),
            "{s}"
        );
    }

    #[test]
    fn mutations_touch_one_field() {
        let r = roster();
        let mut ev = Event::new(
            Action::Interaction,
            UserRef::teacher(0, 1),
            TS,
            TsStyle::China,
        );
        ev.other = UserRef::parent(0, 5);
        let full = json(&r, &ev, Mutation::None);
        assert!(full.ends_with(r#""counterpart_id":"p0000-0005","counterpart_role":"parent"}"#));
        let omit = json(&r, &ev, Mutation::Omit(Field::EventId));
        assert!(omit.starts_with(r#"{"ts":"#), "{omit}");
        let null = json(&r, &ev, Mutation::Null(Field::Role));
        assert!(null.contains(r#""role":null,"#));
        let client = json(&r, &ev, Mutation::Replace(Field::Client, b"\"tablet\""));
        assert!(
            client.contains(r#""action":"interaction","client":"tablet","#),
            "{client}"
        );
        for s in [omit, null, client] {
            assert!(s.starts_with('{') && s.ends_with('}'));
        }
    }
}

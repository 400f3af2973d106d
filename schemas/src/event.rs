//! Typed events of `events.md`, borrowed from the bytes they were decoded from.

use std::borrow::Cow;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[repr(u8)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in the order of the spec's table.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire name (compared as integers, [`crate::words`]).
            #[allow(clippy::should_implement_trait)]
            pub fn from_str(s: &str) -> Option<Self> {
                const TABLE: crate::words::Table<$name, 32> =
                    crate::words::Table::new(&[$(($text, $name::$variant)),+]);
                TABLE.get(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The `action` of an event.
    Action {
        Register => "register",
        Login => "login",
        ProfileUpdate => "profile_update",
        SpaceOp => "space_op",
        ResourceInteract => "resource_interact",
        ResourceReview => "resource_review",
        Teach => "teach",
        TaskPublish => "task_publish",
        TaskProgress => "task_progress",
        Interaction => "interaction",
        AppUse => "app_use",
    }
);

string_enum!(
    /// The actor's `role`.
    Role { Teacher => "teacher", Student => "student", Parent => "parent", Admin => "admin" }
);

string_enum!(
    /// The `client` an event came from.
    Client { Pc => "pc", Mobile => "mobile" }
);

/// Whose score an action feeds (events.md, last column of the action table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoredBy {
    /// Nobody (`register`).
    Nobody,
    /// The actor, `user_id`.
    Actor,
    /// The owner named in `owner_id`.
    Owner,
}

impl Action {
    /// Whose score this action feeds.
    pub fn scored_by(self) -> ScoredBy {
        match self {
            Action::Register => ScoredBy::Nobody,
            Action::ResourceInteract | Action::ResourceReview | Action::TaskProgress => {
                ScoredBy::Owner
            }
            _ => ScoredBy::Actor,
        }
    }

    /// Whether the action is a "deep use" action of monthly.md's `deep_index`.
    pub fn is_deep(self) -> bool {
        matches!(
            self,
            Action::SpaceOp
                | Action::Teach
                | Action::TaskPublish
                | Action::Interaction
                | Action::AppUse
        )
    }
}

/// A valid event. Strings borrow from the decoded bytes unless they held JSON escapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    /// `ts`, microseconds since the epoch.
    pub ts: i64,
    pub user_id: Cow<'a, str>,
    pub role: Role,
    pub school_id: Cow<'a, str>,
    pub action: Action,
    /// `client`; `pc` when absent.
    pub client: Client,
    /// The action's own fields; those that do not belong to the action are `None`.
    pub extra: Extra<'a>,
}

/// The action-specific fields of events.md, each validated against its rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extra<'a> {
    pub stage: Option<Cow<'a, str>>,
    pub items: Option<Vec<Cow<'a, str>>>,
    pub op: Option<Cow<'a, str>>,
    pub resource_id: Option<Cow<'a, str>>,
    pub owner_id: Option<Cow<'a, str>>,
    pub owner_school_id: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub outcome: Option<Cow<'a, str>>,
    pub lesson_id: Option<Cow<'a, str>>,
    pub duration_s: Option<i64>,
    pub task_id: Option<Cow<'a, str>>,
    pub kind: Option<Cow<'a, str>>,
    /// `published_at`, microseconds since the epoch.
    pub published_at: Option<i64>,
    pub status: Option<Cow<'a, str>>,
    pub counterpart_id: Option<Cow<'a, str>>,
    pub counterpart_role: Option<Cow<'a, str>>,
    pub app_id: Option<Cow<'a, str>>,
}

/// Read access to a valid event: a decoded [`Event`], or a row of a decoded
/// batch ([`crate::columns::EventRow`]), which is read in place rather than
/// built into an [`Event`]. The engine reads events through it.
pub trait EventView {
    fn event_id(&self) -> &str;
    /// `ts`, microseconds since the epoch.
    fn ts(&self) -> i64;
    fn user_id(&self) -> &str;
    fn school_id(&self) -> &str;
    fn kinds(&self) -> Kinds;
    /// An action-specific string field; `None` when absent.
    fn str(&self, f: ExtraStr) -> Option<&str>;
    /// `published_at`, microseconds since the epoch.
    fn published_at(&self) -> Option<i64>;
    /// Calls `each` with every item of `items`, in order.
    fn each_item(&self, each: &mut dyn FnMut(&str));

    /// The school the scored user belongs to as this event states it.
    fn scored_school(&self) -> &str {
        match self.kinds().action.scored_by() {
            ScoredBy::Owner => self
                .str(ExtraStr::OwnerSchoolId)
                .unwrap_or(self.school_id()),
            _ => self.school_id(),
        }
    }
}

impl EventView for Event<'_> {
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn ts(&self) -> i64 {
        self.ts
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn school_id(&self) -> &str {
        &self.school_id
    }
    fn kinds(&self) -> Kinds {
        Event::kinds(self)
    }
    fn str(&self, f: ExtraStr) -> Option<&str> {
        self.extra.str(f)
    }
    fn published_at(&self) -> Option<i64> {
        self.extra.published_at
    }
    fn each_item(&self, each: &mut dyn FnMut(&str)) {
        for i in self.extra.items.iter().flatten() {
            each(i);
        }
    }
}

/// An action-specific string field of [`Extra`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraStr {
    Stage,
    Op,
    ResourceId,
    OwnerId,
    OwnerSchoolId,
    Level,
    Outcome,
    LessonId,
    TaskId,
    Kind,
    Status,
    CounterpartId,
    CounterpartRole,
    AppId,
}

impl ExtraStr {
    /// Every field with its column name.
    pub const ALL: [(ExtraStr, &'static str); 14] = [
        (ExtraStr::Stage, "stage"),
        (ExtraStr::Op, "op"),
        (ExtraStr::ResourceId, "resource_id"),
        (ExtraStr::OwnerId, "owner_id"),
        (ExtraStr::OwnerSchoolId, "owner_school_id"),
        (ExtraStr::Level, "level"),
        (ExtraStr::Outcome, "outcome"),
        (ExtraStr::LessonId, "lesson_id"),
        (ExtraStr::TaskId, "task_id"),
        (ExtraStr::Kind, "kind"),
        (ExtraStr::Status, "status"),
        (ExtraStr::CounterpartId, "counterpart_id"),
        (ExtraStr::CounterpartRole, "counterpart_role"),
        (ExtraStr::AppId, "app_id"),
    ];

    /// The field of a column name.
    pub fn of(name: &str) -> Option<ExtraStr> {
        ExtraStr::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }
}

/// `$e.<field f>` behind `$r` (`&` or `&mut`).
macro_rules! extra_str {
    ($e:ident, $f:ident, $($r:tt)+) => {
        match $f {
            ExtraStr::Stage => $($r)+ $e.stage,
            ExtraStr::Op => $($r)+ $e.op,
            ExtraStr::ResourceId => $($r)+ $e.resource_id,
            ExtraStr::OwnerId => $($r)+ $e.owner_id,
            ExtraStr::OwnerSchoolId => $($r)+ $e.owner_school_id,
            ExtraStr::Level => $($r)+ $e.level,
            ExtraStr::Outcome => $($r)+ $e.outcome,
            ExtraStr::LessonId => $($r)+ $e.lesson_id,
            ExtraStr::TaskId => $($r)+ $e.task_id,
            ExtraStr::Kind => $($r)+ $e.kind,
            ExtraStr::Status => $($r)+ $e.status,
            ExtraStr::CounterpartId => $($r)+ $e.counterpart_id,
            ExtraStr::CounterpartRole => $($r)+ $e.counterpart_role,
            ExtraStr::AppId => $($r)+ $e.app_id,
        }
    };
}

impl<'a> Extra<'a> {
    /// The field `f`.
    pub fn str(&self, f: ExtraStr) -> Option<&str> {
        extra_str!(self, f, &).as_deref()
    }

    /// The field `f`, to set.
    pub fn str_mut(&mut self, f: ExtraStr) -> &mut Option<Cow<'a, str>> {
        extra_str!(self, f, &mut)
    }
}

/// Whether `s` is a school id as events.md has it: exactly 10 ASCII digits.
pub fn is_school_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The enumerated fields of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    pub action: Action,
    pub role: Role,
    pub client: Client,
}

impl Event<'_> {
    pub fn kinds(&self) -> Kinds {
        Kinds {
            action: self.action,
            role: self.role,
            client: self.client,
        }
    }

    /// The user this event is scored for, if any (before the role rule of scoring.md).
    pub fn scored_user(&self) -> Option<&str> {
        match self.action.scored_by() {
            ScoredBy::Nobody => None,
            ScoredBy::Actor => Some(&self.user_id),
            ScoredBy::Owner => self.extra.owner_id.as_deref(),
        }
    }
}

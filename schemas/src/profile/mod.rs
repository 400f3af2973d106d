//! Rule profiles: the TOML format of scoring.md, checked into a [`Profile`] the
//! engine can honour, or refused with a message naming the rule and the parameter.

mod file;

use std::path::Path;

use crate::event::{Action, Client, Role};
use crate::time::parse_offset;

pub use file::{ProfileFile, RuleFile, RuleTable};

/// The profile used when none is named (scoring.md).
pub const DEFAULT_PROFILE: &str = "zhejiang-2018";

/// The profiles built into the binaries, by name.
pub const BUILTIN: &[(&str, &str)] = &[(
    "zhejiang-2018",
    include_str!("../../profiles/zhejiang-2018.toml"),
)];

/// A profile that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("profile {origin}: rule {rule:?}: parameter {parameter:?} {problem}")]
    Rule {
        origin: String,
        rule: String,
        parameter: String,
        problem: String,
    },
    #[error("profile {origin}: parameter {parameter:?} {problem}")]
    Top {
        origin: String,
        parameter: String,
        problem: String,
    },
    #[error(
        "no built-in profile named {0:?} (built in: zhejiang-2018); give a path to a TOML file"
    )]
    UnknownName(String),
}

/// A checked rule profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub title: String,
    /// The profile's time zone as written (`+08:00`).
    pub timezone: String,
    /// Seconds east of UTC of the time zone.
    pub offset_seconds: i32,
    /// The role whose actor-scored events earn points.
    pub scored_role: Role,
    pub rules: Vec<Rule>,
}

/// One rule: an id (the lake's `rule` value), the action it reads, its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub id: String,
    pub action: Action,
    pub kind: RuleKind,
}

/// The rule kinds the engine offers, with their parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    /// `points` on a day with an event; `streak_points` when the streak of such days
    /// ending that day is `streak_days` or more.
    DailyStreak {
        points: i64,
        streak_days: u32,
        streak_points: i64,
    },
    /// `points` per event (optionally only from one `client`), at most `daily_cap` a day.
    PerEvent {
        points: i64,
        daily_cap: Option<i64>,
        client: Option<Client>,
    },
    /// `points` once in a lifetime, on the day the union of `items` reaches `required`.
    OnceWhenComplete { points: i64, required: Vec<String> },
    /// `points` to the owner per new (item, actor) pair; caps per owner-day and per item.
    DistinctPair {
        points: i64,
        daily_cap: Option<i64>,
        lifetime_cap_per_item: Option<i64>,
    },
    /// Points for the first approval at each level; a deletion takes them back.
    ReviewLevels { levels: Vec<(String, i64)> },
    /// `points` on the publish day of an item reaching `threshold` distinct actors of
    /// `counted_role` within `window_days`; at most `daily_cap` per publish day.
    ThresholdDistinct {
        points: i64,
        threshold: u32,
        counted_role: Role,
        window_days: u32,
        daily_cap: Option<i64>,
    },
    /// Points of the highest tier whose `at_least` the day's distinct `field` values reach.
    DailyDistinctTiers { field: String, tiers: Vec<Tier> },
    /// `points` per distinct listed value of `field` on a day.
    DailyDistinctItems {
        field: String,
        points: i64,
        items: Vec<String>,
    },
}

/// A tier of [`RuleKind::DailyDistinctTiers`].
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Distinct values needed.
    pub at_least: u32,
    /// Points earned.
    pub points: i64,
}

impl RuleKind {
    /// The kind as a profile file names it (`kind = "daily_streak"`).
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::DailyStreak { .. } => "daily_streak",
            RuleKind::PerEvent { .. } => "per_event",
            RuleKind::OnceWhenComplete { .. } => "once_when_complete",
            RuleKind::DistinctPair { .. } => "distinct_pair",
            RuleKind::ReviewLevels { .. } => "review_levels",
            RuleKind::ThresholdDistinct { .. } => "threshold_distinct",
            RuleKind::DailyDistinctTiers { .. } => "daily_distinct_tiers",
            RuleKind::DailyDistinctItems { .. } => "daily_distinct_items",
        }
    }
}

impl Profile {
    /// What the engine's state is laid out by: each rule's id, kind and action,
    /// in order (`login:daily_streak:login`), then the time zone its days are
    /// counted in (`timezone +08:00`, as an offset) and the scored role
    /// (`scored_role teacher`). Its parameters may change under the same
    /// state; these may not.
    pub fn rule_shape(&self) -> Vec<String> {
        let off = self.offset_seconds;
        let (sign, abs) = if off < 0 { ('-', -off) } else { ('+', off) };
        self.rules
            .iter()
            .map(|r| format!("{}:{}:{}", r.id, r.kind.name(), r.action.as_str()))
            .chain([
                format!("timezone {sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60),
                format!("scored_role {}", self.scored_role.as_str()),
            ])
            .collect()
    }

    /// The built-in profile `name`.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ProfileError::UnknownName(name.to_owned()))?;
        Profile::from_toml(text, name)
    }

    /// `--profile FILE|NAME`: a built-in profile's name is that profile, even
    /// when a file of that name is in the working directory (`./NAME` reads
    /// the file); anything else is a path when it names an existing file or
    /// looks like one (contains `/` or ends in `.toml`).
    pub fn load(spec: &str) -> Result<Profile, ProfileError> {
        let path = Path::new(spec);
        let builtin = BUILTIN.iter().any(|(n, _)| *n == spec);
        if !builtin && (path.exists() || spec.contains('/') || spec.ends_with(".toml")) {
            let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
                path: spec.to_owned(),
                source,
            })?;
            Profile::from_toml(&text, spec)
        } else {
            Profile::builtin(spec)
        }
    }

    /// Parses and checks a profile; `origin` names it in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let file: ProfileFile<RuleTable> =
            toml::from_str(text).map_err(|e| ProfileError::Parse {
                origin: origin.to_owned(),
                message: e.message().to_owned() + &location(text, e.span()),
            })?;
        file.read_rules(text, origin)?.check(origin)
    }

    /// The position of a rule id.
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// The rule ids in profile order (the `points_<rule>` columns of monthly.md).
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.id.as_str()).collect()
    }
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!(" (line {})", file::line_of(text, span.start)),
        None => String::new(),
    }
}

/// Whether `field` is a string field that `action` carries (the fields a distinct
/// count can read).
pub fn action_has_field(action: Action, field: &str) -> bool {
    countable_fields(action).contains(&field)
}

/// The string fields of `action`'s events whose distinct values a rule may
/// count: the actor, and the action's own ids and words.
pub fn countable_fields(action: Action) -> &'static [&'static str] {
    match action {
        Action::Register => &["user_id", "stage"],
        Action::Login => &["user_id"],
        Action::ProfileUpdate => &["user_id"],
        Action::SpaceOp => &["user_id", "op"],
        Action::ResourceInteract => &["user_id", "resource_id", "op"],
        Action::ResourceReview => &["user_id", "resource_id", "level"],
        Action::Teach => &["user_id", "lesson_id"],
        Action::TaskPublish => &["user_id", "task_id", "kind"],
        Action::TaskProgress => &["user_id", "task_id", "status"],
        Action::Interaction => &["user_id", "counterpart_id", "counterpart_role"],
        Action::AppUse => &["user_id", "app_id"],
    }
}

pub(crate) fn check_offset(tz: &str) -> Option<i32> {
    parse_offset(tz)
}

#[cfg(test)]
mod tests;

//! The TOML shape of a profile, and its checks.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    Profile, ProfileError, Rule, RuleKind, Tier, action_has_field, check_offset, countable_fields,
};
use crate::decode::values;
use crate::event::{Action, Client, Role, ScoredBy};

/// A profile file as written. Its rules are read in two steps: first each
/// `[[rule]]` as a TOML table with its place in the file (`R` =
/// [`RuleTable`]), then each table as a [`RuleFile`] ([`RuleFile::from_table`]),
/// so that a mistake is named by its rule and parameter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "R: Deserialize<'de>"))]
pub struct ProfileFile<R = RuleFile> {
    /// The profile's name (`zhejiang-2018`).
    pub name: String,
    /// A human title, usually the rule document's.
    #[serde(default)]
    pub title: String,
    /// Fixed UTC offset of the profile's days (`+08:00`). Default `+08:00`: every
    /// Chinese profile, China has no daylight saving.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The role whose actor-scored events earn points. Default `teacher` (scoring.md).
    #[serde(default = "default_scored_role")]
    pub scored_role: String,
    /// The rules, in the order of the monthly `points_<rule>` columns.
    #[serde(default, rename = "rule")]
    pub rules: Vec<R>,
}

/// A `[[rule]]` table as written, with its place in the file.
pub type RuleTable = toml::Spanned<toml::Table>;

impl ProfileFile<RuleTable> {
    /// Reads each rule table as a [`RuleFile`]; `text` is the file (for line
    /// numbers), `origin` names it in messages.
    pub fn read_rules(self, text: &str, origin: &str) -> Result<ProfileFile, ProfileError> {
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(n, table)| {
                let line = line_of(text, table.span().start);
                RuleFile::from_table(table.into_inner(), n + 1, line, origin)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProfileFile {
            name: self.name,
            title: self.title,
            timezone: self.timezone,
            scored_role: self.scored_role,
            rules,
        })
    }
}

/// The 1-based line of byte `at` of `text`.
pub(super) fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

fn default_timezone() -> String {
    "+08:00".to_owned()
}

fn default_scored_role() -> String {
    "teacher".to_owned()
}

/// One `[[rule]]` table; the parameters allowed depend on `kind`. Read by
/// [`RuleFile::from_table`] (`kind` is the variant), not derived from the
/// table as it stands: serde's internally tagged enums lose the place of a
/// mistake.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleFile {
    DailyStreak {
        id: String,
        action: String,
        points: i64,
        streak_days: u32,
        streak_points: i64,
    },
    PerEvent {
        id: String,
        action: String,
        points: i64,
        daily_cap: Option<i64>,
        client: Option<String>,
    },
    OnceWhenComplete {
        id: String,
        action: String,
        points: i64,
        required_items: Vec<String>,
    },
    DistinctPair {
        id: String,
        action: String,
        points: i64,
        daily_cap: Option<i64>,
        lifetime_cap_per_item: Option<i64>,
    },
    ReviewLevels {
        id: String,
        action: String,
        levels: BTreeMap<String, i64>,
    },
    ThresholdDistinct {
        id: String,
        action: String,
        points: i64,
        threshold: u32,
        #[serde(default = "default_counted_role")]
        counted_role: String,
        window_days: u32,
        daily_cap: Option<i64>,
    },
    DailyDistinctTiers {
        id: String,
        action: String,
        field: String,
        tiers: Vec<Tier>,
    },
    DailyDistinctItems {
        id: String,
        action: String,
        field: String,
        points: i64,
        items: Vec<String>,
    },
}

/// The most points a rule may give at once (per event, level, tier or
/// item): far above any real rule, and low enough that sums over billions of
/// events fit the lake's Int64 (a profile giving 2^63 - 1 crashed the engine).
pub const MAX_POINTS: i64 = 1_000_000;

/// The rule kinds, for messages.
const KINDS: &str = "daily_streak, per_event, once_when_complete, distinct_pair, review_levels, \
threshold_distinct, daily_distinct_tiers, daily_distinct_items";

fn default_counted_role() -> String {
    "student".to_owned()
}

impl RuleFile {
    /// Reads the `n`th rule table, written at `line`: a mistake is named by
    /// the rule (its `id`, else its number and line) and the parameter.
    pub fn from_table(
        mut table: toml::Table,
        n: usize,
        line: usize,
        origin: &str,
    ) -> Result<RuleFile, ProfileError> {
        let rule = match table.get("id") {
            Some(toml::Value::String(id)) => id.clone(),
            _ => format!("#{n} (line {line})"),
        };
        let fail = |parameter: &str, problem: String| ProfileError::Rule {
            origin: origin.to_owned(),
            rule: rule.clone(),
            parameter: parameter.to_owned(),
            problem,
        };
        let kind = match table.remove("kind") {
            Some(toml::Value::String(kind)) => kind,
            Some(other) => {
                return Err(fail(
                    "kind",
                    format!("must be a string like \"per_event\", not {other}"),
                ));
            }
            None => return Err(fail("kind", format!("is missing (one of {KINDS})"))),
        };
        // the externally tagged form, {kind = {parameters}}: serde reads the
        // parameters straight from the table, so the path names the one at fault
        let tagged = toml::Value::Table(toml::Table::from_iter([(
            kind.clone(),
            toml::Value::Table(table),
        )]));
        serde_path_to_error::deserialize(tagged).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            if message.starts_with("unknown variant") {
                return fail("kind", format!("must be one of {KINDS}, not {kind:?}"));
            }
            // the parameter: where serde was (`per_event.daily_cap`), or the
            // one a missing or unknown field message names
            let named = message.split('`').nth(1).unwrap_or("");
            if message.starts_with("missing field") {
                // inside a parameter's table (a tier): `tiers[0].points`
                return match path.split_once('.') {
                    Some((_, within)) => {
                        fail(&format!("{within}.{named}"), "is missing".to_owned())
                    }
                    None => fail(named, format!("is missing (a {kind} rule needs it)")),
                };
            }
            if message.starts_with("unknown field") {
                let expected = message.split_once(", ").map_or("", |(_, rest)| rest);
                return fail(
                    named,
                    format!("is not a parameter of {kind} rules ({expected})"),
                );
            }
            match path.split_once('.') {
                Some((_, parameter)) => fail(parameter, format!("is wrong: {message}")),
                None => fail("kind", format!("is wrong: {message}")),
            }
        })
    }

    fn id_action(&self) -> (&str, &str) {
        match self {
            RuleFile::DailyStreak { id, action, .. }
            | RuleFile::PerEvent { id, action, .. }
            | RuleFile::OnceWhenComplete { id, action, .. }
            | RuleFile::DistinctPair { id, action, .. }
            | RuleFile::ReviewLevels { id, action, .. }
            | RuleFile::ThresholdDistinct { id, action, .. }
            | RuleFile::DailyDistinctTiers { id, action, .. }
            | RuleFile::DailyDistinctItems { id, action, .. } => (id, action),
        }
    }
}

struct Checker<'a> {
    origin: &'a str,
    rule: &'a str,
}

impl Checker<'_> {
    fn fail<T>(&self, parameter: &str, problem: impl Into<String>) -> Result<T, ProfileError> {
        Err(ProfileError::Rule {
            origin: self.origin.to_owned(),
            rule: self.rule.to_owned(),
            parameter: parameter.to_owned(),
            problem: problem.into(),
        })
    }

    /// A number of points: 0 to [`MAX_POINTS`], so that no sum of them over
    /// any number of events can overflow.
    fn points(&self, parameter: &str, v: i64) -> Result<i64, ProfileError> {
        if (0..=MAX_POINTS).contains(&v) {
            Ok(v)
        } else {
            self.fail(parameter, format!("must be 0 to {MAX_POINTS}, not {v}"))
        }
    }

    fn non_negative(&self, parameter: &str, v: i64) -> Result<i64, ProfileError> {
        if v < 0 {
            self.fail(parameter, format!("must be 0 or more, not {v}"))
        } else {
            Ok(v)
        }
    }

    fn cap(&self, parameter: &str, v: Option<i64>) -> Result<Option<i64>, ProfileError> {
        v.map(|v| self.non_negative(parameter, v)).transpose()
    }

    fn needs_action(&self, action: Action, wanted: Action) -> Result<(), ProfileError> {
        if action == wanted {
            Ok(())
        } else {
            self.fail(
                "action",
                format!(
                    "must be {wanted} for this kind (it reads {wanted}'s fields), not {action}"
                ),
            )
        }
    }

    fn field(&self, action: Action, field: &str) -> Result<String, ProfileError> {
        if action_has_field(action, field) {
            Ok(field.to_owned())
        } else {
            self.fail(
                "field",
                format!(
                    "{field:?} is not a field a rule can count the values of in {action} events (one of: {})",
                    countable_fields(action).join(", ")
                ),
            )
        }
    }
}

impl ProfileFile {
    /// Checks the file into a [`Profile`].
    pub fn check(self, origin: &str) -> Result<Profile, ProfileError> {
        let top = |parameter: &str, problem: String| ProfileError::Top {
            origin: origin.to_owned(),
            parameter: parameter.to_owned(),
            problem,
        };
        if self.name.trim().is_empty() {
            return Err(top("name", "must not be empty".into()));
        }
        let offset_seconds = check_offset(&self.timezone).ok_or_else(|| {
            top(
                "timezone",
                format!(
                    "must be a fixed offset like +08:00, not {:?}",
                    self.timezone
                ),
            )
        })?;
        let scored_role = Role::from_str(&self.scored_role).ok_or_else(|| {
            top(
                "scored_role",
                format!(
                    "must be teacher, student, parent or admin, not {:?}",
                    self.scored_role
                ),
            )
        })?;
        if self.rules.is_empty() {
            return Err(top("rule", "the profile has no rules".into()));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for file in self.rules {
            let (id, action_name) = file.id_action();
            let c = Checker { origin, rule: id };
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return c.fail(
                    "id",
                    "must be lowercase letters, digits and _ (it names a column)",
                );
            }
            if rules.iter().any(|r| r.id == id) {
                return c.fail("id", "is used by two rules");
            }
            let Some(action) = Action::from_str(action_name) else {
                return c.fail(
                    "action",
                    format!("{action_name:?} is not an action of events.md"),
                );
            };
            if action.scored_by() == ScoredBy::Nobody {
                return c.fail("action", format!("{action} scores nobody"));
            }
            let kind = match &file {
                RuleFile::DailyStreak {
                    points,
                    streak_days,
                    streak_points,
                    ..
                } => {
                    if *streak_days == 0 {
                        return c.fail("streak_days", "must be at least 1");
                    }
                    RuleKind::DailyStreak {
                        points: c.points("points", *points)?,
                        streak_days: *streak_days,
                        streak_points: c.points("streak_points", *streak_points)?,
                    }
                }
                RuleFile::PerEvent {
                    points,
                    daily_cap,
                    client,
                    ..
                } => RuleKind::PerEvent {
                    points: c.points("points", *points)?,
                    daily_cap: c.cap("daily_cap", *daily_cap)?,
                    client: match client {
                        None => None,
                        Some(name) => match Client::from_str(name) {
                            Some(cl) => Some(cl),
                            None => {
                                return c
                                    .fail("client", format!("must be pc or mobile, not {name:?}"));
                            }
                        },
                    },
                },
                RuleFile::OnceWhenComplete {
                    points,
                    required_items,
                    ..
                } => {
                    c.needs_action(action, Action::ProfileUpdate)?;
                    if required_items.is_empty() {
                        return c.fail("required_items", "must name at least one item");
                    }
                    if let Some(bad) = required_items
                        .iter()
                        .find(|i| !values::ITEMS.contains(&i.as_str()))
                    {
                        return c.fail(
                            "required_items",
                            format!(
                                "{bad:?} is not a profile item (avatar, contact, school, subject)"
                            ),
                        );
                    }
                    RuleKind::OnceWhenComplete {
                        points: c.points("points", *points)?,
                        required: required_items.clone(),
                    }
                }
                RuleFile::DistinctPair {
                    points,
                    daily_cap,
                    lifetime_cap_per_item,
                    ..
                } => {
                    c.needs_action(action, Action::ResourceInteract)?;
                    RuleKind::DistinctPair {
                        points: c.points("points", *points)?,
                        daily_cap: c.cap("daily_cap", *daily_cap)?,
                        lifetime_cap_per_item: c
                            .cap("lifetime_cap_per_item", *lifetime_cap_per_item)?,
                    }
                }
                RuleFile::ReviewLevels { levels, .. } => {
                    c.needs_action(action, Action::ResourceReview)?;
                    if levels.is_empty() {
                        return c.fail("levels", "must give points for at least one level");
                    }
                    let mut out = Vec::new();
                    for (level, points) in levels {
                        if !values::LEVELS.contains(&level.as_str()) {
                            return c.fail(
                                "levels",
                                format!("{level:?} is not a level (county, city, province)"),
                            );
                        }
                        out.push((level.clone(), c.points("levels", *points)?));
                    }
                    RuleKind::ReviewLevels { levels: out }
                }
                RuleFile::ThresholdDistinct {
                    points,
                    threshold,
                    counted_role,
                    window_days,
                    daily_cap,
                    ..
                } => {
                    c.needs_action(action, Action::TaskProgress)?;
                    if *threshold == 0 {
                        return c.fail("threshold", "must be at least 1");
                    }
                    if *window_days == 0 || *window_days > 366 {
                        return c.fail("window_days", "must be 1 to 366");
                    }
                    let Some(role) = Role::from_str(counted_role) else {
                        return c.fail("counted_role", format!("{counted_role:?} is not a role"));
                    };
                    RuleKind::ThresholdDistinct {
                        points: c.points("points", *points)?,
                        threshold: *threshold,
                        counted_role: role,
                        window_days: *window_days,
                        daily_cap: c.cap("daily_cap", *daily_cap)?,
                    }
                }
                RuleFile::DailyDistinctTiers { field, tiers, .. } => {
                    let field = c.field(action, field)?;
                    if tiers.is_empty() {
                        return c.fail("tiers", "must have at least one tier");
                    }
                    let mut tiers = tiers.clone();
                    for t in &tiers {
                        if t.at_least == 0 || t.at_least > 10_000 {
                            return c.fail("tiers", "at_least must be 1 to 10000");
                        }
                        c.points("tiers", t.points)?;
                    }
                    tiers.sort_by_key(|t| std::cmp::Reverse(t.at_least));
                    if let Some(w) = tiers.windows(2).find(|w| w[0].at_least == w[1].at_least) {
                        return c.fail(
                            "tiers",
                            format!("has two tiers at_least {}: which one pays?", w[0].at_least),
                        );
                    }
                    RuleKind::DailyDistinctTiers { field, tiers }
                }
                RuleFile::DailyDistinctItems {
                    field,
                    points,
                    items,
                    ..
                } => {
                    let field = c.field(action, field)?;
                    if items.is_empty() || items.len() > 64 {
                        return c.fail("items", "must list 1 to 64 values");
                    }
                    RuleKind::DailyDistinctItems {
                        field,
                        points: c.points("points", *points)?,
                        items: items.clone(),
                    }
                }
            };
            rules.push(Rule {
                id: id.to_owned(),
                action,
                kind,
            });
        }
        if rules.len() > 64 {
            return Err(top("rule", "at most 64 rules".into()));
        }
        Ok(Profile {
            name: self.name,
            title: self.title,
            timezone: self.timezone,
            offset_seconds,
            scored_role,
            rules,
        })
    }
}

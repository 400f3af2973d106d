//! A profile's rules, compiled for the engine: parameters in the engine's units and
//! the fields each rule reads resolved once.

use huoyue_schemas::event::{Action, Client, EventView, ExtraStr, Role, ScoredBy};
use huoyue_schemas::profile::{Profile, RuleKind, Tier};
use huoyue_schemas::time::MICROS_PER_DAY;

use super::EventKeys;
use super::task::TaskParams;

/// A string field of an event that a distinct count reads.
#[derive(Clone, Copy, Debug)]
pub enum FieldSel {
    UserId,
    Extra(ExtraStr),
}

impl FieldSel {
    /// The field of a name a profile accepted (`action_has_field`).
    fn of(name: &str) -> FieldSel {
        ExtraStr::of(name).map_or(FieldSel::UserId, FieldSel::Extra)
    }

    pub fn get<E: EventView + ?Sized>(self, e: &E) -> Option<&str> {
        match self {
            FieldSel::UserId => Some(e.user_id()),
            FieldSel::Extra(f) => e.str(f),
        }
    }
}

/// One rule kind with its parameters.
#[derive(Clone, Debug)]
pub enum Kind {
    Streak {
        points: i64,
        days: u32,
        streak_points: i64,
    },
    PerEvent {
        points: i64,
        cap: i64,
        client: Option<Client>,
    },
    Once {
        points: i64,
        required: u8,
    },
    Pair {
        points: i64,
        cap: i64,
        item_cap: i64,
    },
    Review {
        level_points: [i64; 3],
        has_level: [bool; 3],
    },
    Threshold {
        points: i64,
        counted_role: Role,
        cap: i64,
        /// The threshold, the window and what they are read with.
        task: TaskParams,
    },
    Tiers {
        field: FieldSel,
        tiers: Vec<Tier>,
        keep: usize,
    },
    Items {
        field: FieldSel,
        points: i64,
        items: Vec<Box<str>>,
    },
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    pub id: Box<str>,
    pub action: Action,
    pub kind: Kind,
}

/// The compiled profile.
#[derive(Clone, Debug)]
pub struct Rules {
    pub rules: Vec<CompiledRule>,
    /// Rule indices reading each action (by `Action as usize`).
    pub by_action: Vec<Vec<u8>>,
    pub offset_seconds: i32,
    pub scored_role: Role,
    /// The longest a rule may correct a day for, in days (the task window).
    pub max_correction_days: i32,
}

/// A profile item's bit in a completion mask.
pub fn item_bit(item: &str) -> u8 {
    match item {
        "avatar" => 1,
        "contact" => 2,
        "school" => 4,
        "subject" => 8,
        _ => 0,
    }
}

/// A review level's index.
pub fn level_index(level: &str) -> Option<usize> {
    match level {
        "county" => Some(0),
        "city" => Some(1),
        "province" => Some(2),
        _ => None,
    }
}

const NO_CAP: i64 = i64::MAX;

impl Rules {
    /// The profile's rules in engine units; `lateness_days`: the engine's
    /// allowed lateness ([`super::EngineConfig`]), which keeps an unqualified
    /// task that much longer ([`TaskParams`]).
    pub fn compile(profile: &Profile, lateness_days: i32) -> Rules {
        let mut rules = Vec::new();
        let mut by_action = vec![Vec::new(); Action::ALL.len()];
        let mut max_correction_days = 0;
        for (i, r) in profile.rules.iter().enumerate() {
            let kind = match &r.kind {
                RuleKind::DailyStreak {
                    points,
                    streak_days,
                    streak_points,
                } => Kind::Streak {
                    points: *points,
                    days: *streak_days,
                    streak_points: *streak_points,
                },
                RuleKind::PerEvent {
                    points,
                    daily_cap,
                    client,
                } => Kind::PerEvent {
                    points: *points,
                    cap: daily_cap.unwrap_or(NO_CAP),
                    client: *client,
                },
                RuleKind::OnceWhenComplete { points, required } => Kind::Once {
                    points: *points,
                    required: required.iter().map(|s| item_bit(s)).fold(0, |a, b| a | b),
                },
                RuleKind::DistinctPair {
                    points,
                    daily_cap,
                    lifetime_cap_per_item,
                } => Kind::Pair {
                    points: *points,
                    cap: daily_cap.unwrap_or(NO_CAP),
                    item_cap: lifetime_cap_per_item.unwrap_or(NO_CAP),
                },
                RuleKind::ReviewLevels { levels } => {
                    let mut level_points = [0; 3];
                    let mut has_level = [false; 3];
                    for (level, points) in levels {
                        if let Some(i) = level_index(level) {
                            level_points[i] = *points;
                            has_level[i] = true;
                        }
                    }
                    Kind::Review {
                        level_points,
                        has_level,
                    }
                }
                RuleKind::ThresholdDistinct {
                    points,
                    threshold,
                    counted_role,
                    window_days,
                    daily_cap,
                } => {
                    max_correction_days = max_correction_days.max(*window_days as i32 + 1);
                    Kind::Threshold {
                        points: *points,
                        counted_role: *counted_role,
                        cap: daily_cap.unwrap_or(NO_CAP),
                        task: TaskParams {
                            threshold: *threshold,
                            window: i64::from(*window_days) * MICROS_PER_DAY,
                            offset_seconds: profile.offset_seconds,
                            lateness_days,
                        },
                    }
                }
                RuleKind::DailyDistinctTiers { field, tiers } => Kind::Tiers {
                    field: FieldSel::of(field),
                    keep: tiers.iter().map(|t| t.at_least as usize).max().unwrap_or(0),
                    tiers: tiers.clone(),
                },
                RuleKind::DailyDistinctItems {
                    field,
                    points,
                    items,
                } => Kind::Items {
                    field: FieldSel::of(field),
                    points: *points,
                    items: items.iter().map(|s| s.as_str().into()).collect(),
                },
            };
            by_action[r.action as usize].push(i as u8);
            rules.push(CompiledRule {
                id: r.id.as_str().into(),
                action: r.action,
                kind,
            });
        }
        Rules {
            rules,
            by_action,
            offset_seconds: profile.offset_seconds,
            scored_role: profile.scored_role,
            max_correction_days,
        }
    }

    /// The user `e` scores under `rule`, if any, with its key: the owner for
    /// owner-scored actions, else the actor when their role is the profile's
    /// scored role.
    pub fn scored_user<'e, E: EventView + ?Sized>(
        &self,
        e: &'e E,
        keys: &EventKeys,
    ) -> Option<(&'e str, u128)> {
        let kinds = e.kinds();
        match kinds.action.scored_by() {
            ScoredBy::Nobody => None,
            ScoredBy::Owner => Some((e.str(ExtraStr::OwnerId)?, keys.owner)),
            ScoredBy::Actor if kinds.role == self.scored_role => Some((e.user_id(), keys.user)),
            ScoredBy::Actor => None,
        }
    }
}

/// `min(points × n, cap)` without overflow.
pub fn capped(points: i64, n: u64, cap: i64) -> i64 {
    points.saturating_mul(n as i64).min(cap)
}

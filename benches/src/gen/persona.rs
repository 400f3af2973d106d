//! Who does what: per-teacher habits and per-resource fates, derived from a
//! hash of the seed and the entity's numbers so that nothing per user needs
//! to be stored.
//!
//! Every county's first school has a handful of *showcase* teachers whose
//! habits are fixed, so that each edge case of scoring.md occurs even in a
//! tiny data set; everyone else is drawn.

use super::event::PROFILE_ALL;
use super::rng::{Rng, exp, hash, unit};
use super::roster::Roster;

/// How often a teacher logs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Habit {
    /// Never logs in and does nothing (an idle account).
    Never,
    /// Every day, weekends and holidays included: long login streaks.
    Daily,
    /// Most school days, now and then at weekends.
    Regular,
    /// Now and then.
    Occasional,
}

/// How a teacher fills in the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfilePlan {
    /// No `profile_update` at all.
    None,
    /// One update with all four items.
    OneShot,
    /// The four items spread over 2–3 updates on different days (some
    /// updates repeat an item or are empty); complete after the last.
    Split,
    /// 1–3 updates that never cover all four items.
    Partial,
}

/// A teacher's habits.
#[derive(Clone, Copy, Debug)]
pub struct Teacher {
    /// Login habit.
    pub habit: Habit,
    /// Multiplies how much the teacher does on an active day.
    pub zeal: f64,
    /// Resources the teacher owns (`r-<id>-0 …`).
    pub resources: u32,
    /// Profile plan.
    pub profile: ProfilePlan,
    /// On secondment: some events state this other school's id.
    pub seconded_to: Option<u32>,
    /// First student of the teacher's class and its size (students of the
    /// school that receive tasks and interactions).
    pub class_start: u32,
    /// Class size (0 when the school has no students).
    pub class_size: u32,
    /// The interaction tier is forced high on most active days.
    pub chatty: bool,
    /// Probability that an active day is a *deep* day, with space
    /// operations, lessons, tasks, interactions and apps; on other days the
    /// teacher only logs in. Most teachers only log in (as in real 通报,
    /// where the share of teachers reaching 30 points a month is targeted at
    /// 15%); how many do more depends on the school's adoption.
    pub depth: f64,
}

/// Showcase teacher numbers in each county's first school.
pub mod showcase {
    /// Daily logins (streaks over the month start), profile split in two,
    /// chatty (≥10 distinct counterparts most days).
    pub const STREAKER: u32 = 0;
    /// Daily logins; owns one very popular resource (hits the 50-point
    /// lifetime cap).
    pub const POPULAR: u32 = 1;
    /// Owns a resource approved at county then city level, then deleted.
    pub const REVIEWED: u32 = 2;
    /// Never completes the profile.
    pub const PARTIAL: u32 = 3;
    /// Never logs in.
    pub const IDLE: u32 = 4;
    /// On secondment to the county's second school.
    pub const SECONDED: u32 = 5;
}

impl Teacher {
    /// The habits of teacher `num` of `school`.
    pub fn of(roster: &Roster, seed: u64, school: u32, num: u32) -> Teacher {
        let s = roster.school(school as usize);
        let c = &roster.counties()[s.county as usize];
        let mut r = Rng::derive(&[seed, 0x7465_6163, school as u64, num as u64]);
        let mut habit = match r.weighted(&[8, 5, 65, 22]) {
            0 => Habit::Never,
            1 => Habit::Daily,
            2 => Habit::Regular,
            _ => Habit::Occasional,
        };
        let zeal = exp(r.normal() * 0.35).clamp(0.4, 2.5);
        let mut resources = [0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6][r.below(12) as usize];
        if habit == Habit::Never {
            resources = resources.min(1);
        }
        let mut profile = match r.weighted(&[40, 10, 35, 15]) {
            0 => ProfilePlan::None,
            1 => ProfilePlan::OneShot,
            2 => ProfilePlan::Split,
            _ => ProfilePlan::Partial,
        };
        let mut chatty = r.chance(0.15);
        let a = s.adoption;
        let u = r.f64();
        let heavy = 0.02 + 0.25 * a * a;
        let moderate = 0.05 + 0.25 * a;
        let mut depth = if u < heavy {
            0.8
        } else if u < heavy + moderate {
            0.06
        } else {
            0.01
        };
        let class_size = s.students.min(30 + r.below(16) as u32);
        let class_start = r.below(s.students as u64) as u32;
        let mut seconded_to = None;
        if !roster.teacher_listed(school, num) && habit == Habit::Never {
            // Unlisted teachers exist in the data only through their events.
            habit = Habit::Regular;
        }
        if school == c.first_school {
            match num {
                showcase::STREAKER => {
                    habit = Habit::Daily;
                    profile = ProfilePlan::Split;
                    chatty = true;
                }
                showcase::POPULAR => {
                    habit = Habit::Daily;
                    resources = 1;
                }
                showcase::REVIEWED => {
                    habit = Habit::Regular;
                    resources = resources.max(1);
                }
                showcase::PARTIAL => {
                    habit = Habit::Regular;
                    profile = ProfilePlan::Partial;
                }
                showcase::IDLE if roster.teacher_listed(school, num) => {
                    habit = Habit::Never;
                    resources = 0;
                }
                showcase::SECONDED if c.schools >= 2 => {
                    habit = Habit::Regular;
                    seconded_to = Some(school + 1);
                }
                _ => {}
            }
        }
        if school == c.first_school && num <= showcase::SECONDED && num != showcase::IDLE {
            depth = 0.8;
        }
        if habit == Habit::Never {
            profile = ProfilePlan::None;
        }
        Teacher {
            habit,
            zeal,
            resources,
            profile,
            seconded_to,
            class_start,
            class_size,
            chatty,
            depth,
        }
    }

    /// Probability of logging in (and so being active) on a day.
    pub fn login_probability(&self, school_day: bool) -> f64 {
        match (self.habit, school_day) {
            (Habit::Never, _) => 0.0,
            (Habit::Daily, _) => 1.0,
            (Habit::Regular, true) => 0.85,
            (Habit::Regular, false) => 0.15,
            (Habit::Occasional, true) => 0.3,
            (Habit::Occasional, false) => 0.05,
        }
    }

    /// The window days (indices) and item bits of the teacher's
    /// `profile_update` events, at most three, in day order.
    pub fn profile_updates(
        &self,
        seed: u64,
        school: u32,
        num: u32,
        days: u32,
        out: &mut Vec<(u32, u8)>,
    ) {
        out.clear();
        if days == 0 {
            return;
        }
        let mut r = Rng::derive(&[seed, 0x7072_6f66, school as u64, num as u64]);
        let showcase = num == showcase::STREAKER || num == showcase::PARTIAL;
        let k = match self.profile {
            ProfilePlan::None => return,
            ProfilePlan::OneShot => 1,
            ProfilePlan::Split if showcase => 2,
            ProfilePlan::Split => 2 + r.below(2) as usize,
            ProfilePlan::Partial if showcase => 2,
            ProfilePlan::Partial => 1 + r.below(3) as usize,
        };
        // k distinct days.
        let mut picked = [u32::MAX; 3];
        for i in 0..k.min(days as usize) {
            loop {
                let d = r.below(days as u64) as u32;
                if !picked[..i].contains(&d) {
                    picked[i] = d;
                    break;
                }
            }
        }
        let k = k.min(days as usize);
        let picked = &mut picked[..k];
        picked.sort_unstable();
        let mut bits = [0u8; 3];
        match self.profile {
            ProfilePlan::OneShot => bits[0] = PROFILE_ALL,
            ProfilePlan::Split => {
                for item in 0..4 {
                    bits[r.below(k as u64) as usize] |= 1 << item;
                }
                // The last update completes the profile: make sure it adds
                // an item, so completion falls on its day.
                let last = k - 1;
                let before: u8 = bits[..last].iter().fold(0, |a, b| a | b);
                if before == 0b1111 {
                    let item = r.below(4) as u8;
                    bits[last] |= 1 << item;
                    for b in &mut bits[..last] {
                        *b &= !(1 << item);
                    }
                }
                if r.chance(0.3) && k >= 2 {
                    // A repeated item.
                    bits[0] |= 1 << r.below(4);
                }
            }
            ProfilePlan::Partial => {
                let missing = r.below(4) as u8;
                for item in 0..4u8 {
                    if item != missing && r.chance(0.7) {
                        bits[r.below(k as u64) as usize] |= 1 << item;
                    }
                }
            }
            ProfilePlan::None => {}
        }
        for (i, &d) in picked.iter().enumerate() {
            out.push((d, bits[i]));
        }
    }
}

/// How often a resource is propagated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resource {
    /// Expected `resource_interact` events per day.
    pub rate: f64,
    /// Propagated across the whole county (most actors are new each day).
    pub popular: bool,
}

impl Resource {
    /// Resource `n` of teacher `num` of `school`.
    pub fn of(seed: u64, school: u32, num: u32, n: u32, showcase_popular: bool) -> Resource {
        if showcase_popular {
            return Resource {
                rate: 6.0,
                popular: true,
            };
        }
        let u = unit(hash(&[
            seed,
            0x7265_736f,
            school as u64,
            num as u64,
            n as u64,
        ]));
        if u < 0.015 {
            Resource {
                rate: 5.0,
                popular: true,
            }
        } else if u < 0.115 {
            Resource {
                rate: 2.0,
                popular: false,
            }
        } else if u < 0.415 {
            Resource {
                rate: 0.5,
                popular: false,
            }
        } else {
            Resource {
                rate: 0.08,
                popular: false,
            }
        }
    }
}

/// One step of a resource's review history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Review {
    /// Window day index.
    pub day: u32,
    /// 0 county, 1 city, 2 province.
    pub level: u8,
    /// 0 approved, 1 deleted.
    pub outcome: u8,
}

/// The review history of a resource within the generated days (up to six
/// steps; empty for most resources).
pub fn reviews(
    seed: u64,
    school: u32,
    num: u32,
    n: u32,
    days: u32,
    showcase: bool,
    out: &mut Vec<Review>,
) {
    out.clear();
    if days == 0 {
        return;
    }
    let h = hash(&[seed, 0x7265_7669, school as u64, num as u64, n as u64]);
    if showcase && n == 0 {
        // county +3, city +7, deleted −10, and a city approval after the
        // deletion that must earn nothing.
        let base = days.saturating_sub(20).min(3);
        for (k, level, outcome) in [(0, 0, 0), (5, 1, 0), (12, 1, 1), (14, 1, 0)] {
            if base + k < days {
                out.push(Review {
                    day: base + k,
                    level,
                    outcome,
                });
            }
        }
        return;
    }
    if unit(h) >= 0.3 {
        return;
    }
    let mut r = Rng::new(h);
    let mut day = r.below(days as u64) as u32;
    let swapped = r.chance(0.08);
    let first = if swapped { 1 } else { 0 };
    let push = |day: u32, level: u8, outcome: u8, out: &mut Vec<Review>| {
        if day < days {
            out.push(Review {
                day,
                level,
                outcome,
            });
        }
    };
    push(day, first, 0, out);
    let mut last_level = first;
    if r.chance(0.55) {
        day += r.range(2, 9) as u32;
        last_level = 1 - first;
        push(day, last_level, 0, out);
        if r.chance(0.35) {
            day += r.range(3, 10) as u32;
            last_level = 2;
            push(day, 2, 0, out);
        }
    }
    if r.chance(0.06) {
        day += r.range(1, 3) as u32;
        push(day, last_level, 0, out);
    }
    if r.chance(0.12) {
        day += r.range(1, 7) as u32;
        push(day, last_level, 1, out);
        if r.chance(0.3) {
            day += r.range(1, 4) as u32;
            push(day, 2, 0, out);
        }
    }
}

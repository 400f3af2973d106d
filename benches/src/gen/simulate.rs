//! The day-by-day model of a county: what every teacher, student, parent and
//! reviewer does on one day, and the tasks that live across days.
//!
//! [`Simulator::day`] appends one China-time day of events, in generation
//! order, to a buffer; the only state carried between days is the list of
//! tasks still being read.

use super::calendar::{SECS_PER_DAY, US_PER_SEC, china_day_start_us, is_school_day};
use super::clock::{instant, later_second, student_second, style, teacher_second};
use super::config::GenConfig;
use super::event::{APPS, Action, Client, Event, Role, SCORED_APPS, UserRef};
use super::fmt::TsStyle;
use super::names::Stage;
use super::persona::{Habit, Resource, Review, Teacher, reviews, showcase};
use super::rng::{Rng, hash, unit};
use super::roster::{Registration, Roster};

/// A published task, alive while students may still read it.
#[derive(Clone, Debug)]
struct Task {
    owner: UserRef,
    day: i64,
    num: u32,
    publish_us: i64,
    style: TsStyle,
    class_start: u32,
    class_size: u32,
    students: u32,
    /// Probability that a class student ever reads it.
    reach: f64,
    /// Only the first this many class students may read it.
    max_readers: u32,
    seed: u64,
    /// 0: none; 1: a read 29 days after publishing (inside the 30-day
    /// window); 2: a read just after 30 days (outside it).
    straggler: u8,
}

/// Days after publishing during which class students read a task.
const READ_DAYS: i64 = 7;

/// Generates the events of each day.
pub struct Simulator {
    seed: u64,
    activity: f64,
    first_day: i64,
    days: u32,
    tasks: Vec<Task>,
    next_seq: u64,
    profile_buf: Vec<(u32, u8)>,
    review_buf: Vec<Review>,
}

impl Simulator {
    /// A simulator for the configuration's window: `lead_days` before the
    /// month, then the whole month.
    pub fn new(cfg: &GenConfig) -> Self {
        let (first_day, days) = window(cfg);
        Simulator {
            seed: cfg.seed,
            activity: cfg.activity,
            first_day,
            days,
            tasks: Vec::new(),
            next_seq: 1,
            profile_buf: Vec::with_capacity(3),
            review_buf: Vec::with_capacity(6),
        }
    }

    /// Number of days in the window.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// The absolute day (since 1970-01-01) of window day `wi`.
    pub fn day_of(&self, wi: u32) -> i64 {
        self.first_day + wi as i64
    }

    fn push(&mut self, out: &mut Vec<Event>, mut ev: Event) {
        ev.seq = self.next_seq;
        self.next_seq += 1;
        out.push(ev);
    }

    /// Appends every event of window day `wi` to `out`.
    pub fn day(&mut self, roster: &Roster, wi: u32, out: &mut Vec<Event>) {
        let day = self.day_of(wi);
        let school_day = is_school_day(day);
        let start = china_day_start_us(day);
        for s in 0..roster.schools().len() as u32 {
            let mut rng = Rng::derive(&[self.seed, 0x6461_7973, day as u64, s as u64]);
            let teachers = roster.school(s as usize).teachers;
            for t in 0..teachers {
                self.teacher_day(roster, &mut rng, s, t, wi, start, school_day, out);
            }
            self.students_day(roster, &mut rng, s, wi, start, school_day, out);
        }
        self.tasks_day(roster, day, start, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn teacher_day(
        &mut self,
        roster: &Roster,
        rng: &mut Rng,
        s: u32,
        num: u32,
        wi: u32,
        start: i64,
        school_day: bool,
        out: &mut Vec<Event>,
    ) {
        let seed = self.seed;
        let t = Teacher::of(roster, seed, s, num);
        let me = UserRef::teacher(s, num);
        let first_school =
            roster.counties()[roster.school(s as usize).county as usize].first_school;
        let showcase_school = s == first_school;

        let mut profile_today = None;
        if t.habit != Habit::Never {
            t.profile_updates(seed, s, num, self.days, &mut self.profile_buf);
            profile_today = self.profile_buf.iter().find(|p| p.0 == wi).map(|p| p.1);
        }
        let active = rng.chance(t.login_probability(school_day)) || profile_today.is_some();
        if active {
            let a = t.zeal * self.activity;
            let deep = rng.chance(t.depth);
            let stated = |rng: &mut Rng| match t.seconded_to {
                Some(o) if rng.chance(0.4) => o,
                _ => s,
            };
            let first = teacher_second(rng, school_day).min(20 * 3600);
            let logins = 1 + rng.poisson(1.2 * a).min(7);
            for i in 0..logins {
                let sod = if i == 0 {
                    first
                } else {
                    later_second(rng, first)
                };
                let st = style(rng);
                let mut ev = Event::new(Action::Login, me, instant(rng, start, sod, st), st);
                ev.client = client(rng, 0.5);
                ev.school = stated(rng);
                self.push(out, ev);
            }
            if let Some(bits) = profile_today {
                let sod = later_second(rng, first);
                let st = style(rng);
                let mut ev =
                    Event::new(Action::ProfileUpdate, me, instant(rng, start, sod, st), st);
                ev.a = bits;
                ev.b = rng.below(4) as u8;
                ev.client = client(rng, 0.5);
                ev.school = stated(rng);
                self.push(out, ev);
            }
            let spaces = if deep { rng.poisson(1.5 * a) } else { 0 };
            for _ in 0..spaces {
                let sod = later_second(rng, first);
                let st = style(rng);
                let mut ev = Event::new(Action::SpaceOp, me, instant(rng, start, sod, st), st);
                ev.a = rng.weighted(&[30, 25, 10, 10, 15, 10]) as u8;
                ev.client = match rng.weighted(&[55, 35, 10]) {
                    0 => Client::Mobile,
                    1 => Client::Pc,
                    _ => Client::Absent,
                };
                ev.school = stated(rng);
                self.push(out, ev);
            }
            let lessons = if !deep {
                0
            } else if school_day && rng.chance(0.6) {
                1 + rng.poisson(1.0 * a).min(5)
            } else if !school_day && rng.chance(0.05) {
                1
            } else {
                0
            };
            for _ in 0..lessons {
                let sod = later_second(rng, first);
                let st = style(rng);
                let mut ev = Event::new(Action::Teach, me, instant(rng, start, sod, st), st);
                ev.n1 = rng.below(1_000_000) as u32;
                if rng.chance(0.8) {
                    ev.a = 1;
                    ev.n2 = rng.range(1800, 2700) as u32;
                }
                ev.client = client(rng, 0.2);
                ev.school = stated(rng);
                self.push(out, ev);
            }
            if deep && school_day && t.class_size > 0 {
                let tasks = if rng.chance((0.3 * a).min(0.9)) {
                    1 + u32::from(rng.chance(0.1))
                } else {
                    0
                };
                for k in 0..tasks {
                    let sod = (8 * 3600 + rng.below(10 * 3600) as u32).max(first);
                    let st = style(rng);
                    let ts = instant(rng, start, sod, st);
                    let mut ev = Event::new(Action::TaskPublish, me, ts, st);
                    ev.other = me;
                    ev.n1 = self.day_of(wi) as u32;
                    ev.n2 = k + 1;
                    ev.a = u8::from(rng.chance(0.3));
                    ev.school = s;
                    self.push(out, ev);
                    let (reach, max_readers) = match rng.weighted(&[45, 30, 25]) {
                        0 => (0.65 + 0.25 * rng.f64(), u32::MAX),
                        1 => (0.25 + 0.2 * rng.f64(), u32::MAX),
                        _ => (0.5, 1 + rng.below(6) as u32),
                    };
                    let straggler = match rng.weighted(&[94, 3, 3]) {
                        0 => 0,
                        1 => 1,
                        _ => 2,
                    };
                    self.tasks.push(Task {
                        owner: me,
                        day: self.day_of(wi),
                        num: k + 1,
                        publish_us: ts,
                        style: st,
                        class_start: t.class_start,
                        class_size: t.class_size,
                        students: roster.school(s as usize).students,
                        reach,
                        max_readers,
                        seed: rng.next_u64(),
                        straggler,
                    });
                }
            }
            if deep && t.class_size > 0 {
                let tier = if t.chatty && rng.chance(0.7) {
                    3
                } else {
                    rng.weighted(&[15, 30, 30, 25])
                };
                let distinct = match tier {
                    0 => 0,
                    1 => rng.range(1, 4),
                    2 => rng.range(5, 9),
                    _ => rng.range(10, 16),
                } as u32;
                let distinct = distinct.min(t.class_size);
                let repeats = if distinct > 0 {
                    rng.poisson(distinct as f64 * 0.4 * a)
                } else {
                    0
                };
                let offset = rng.below(t.class_size as u64) as u32;
                let students = roster.school(s as usize).students;
                for i in 0..distinct + repeats {
                    let k = if i < distinct {
                        i
                    } else {
                        rng.below(distinct as u64) as u32
                    };
                    let n = (t.class_start + (offset + k) % t.class_size) % students;
                    let other = if rng.chance(0.3) && roster.has_parent(s, n) {
                        UserRef::parent(s, n)
                    } else {
                        UserRef::student(s, n)
                    };
                    let sod = later_second(rng, first);
                    let st = style(rng);
                    let mut ev =
                        Event::new(Action::Interaction, me, instant(rng, start, sod, st), st);
                    ev.other = other;
                    ev.client = client(rng, 0.7);
                    ev.school = stated(rng);
                    self.push(out, ev);
                }
            }
            if deep && rng.chance(0.5) {
                for _ in 0..1 + rng.poisson(0.8 * a).min(6) {
                    let sod = later_second(rng, first);
                    let st = style(rng);
                    let mut ev = Event::new(Action::AppUse, me, instant(rng, start, sod, st), st);
                    ev.a = if rng.chance(0.8) {
                        rng.weighted(&[20, 15, 30, 20, 15]) as u8
                    } else {
                        (SCORED_APPS as u64 + rng.below((APPS.len() - SCORED_APPS) as u64)) as u8
                    };
                    ev.client = client(rng, 0.3);
                    ev.school = stated(rng);
                    self.push(out, ev);
                }
            }
        }

        // Other people act on the teacher's resources whether or not the
        // teacher logs in today.
        for r in 0..t.resources {
            let popular_showcase = showcase_school && num == showcase::POPULAR && r == 0;
            let res = Resource::of(seed, s, num, r, popular_showcase);
            let rate = if res.popular || school_day {
                res.rate
            } else {
                res.rate * 0.6
            };
            let n = rng.poisson(rate * self.activity);
            for _ in 0..n {
                let Some(actor) = self.propagator(roster, rng, s, num, res.popular) else {
                    continue;
                };
                let owner_self = actor == me;
                let sod = if actor.role == Role::Teacher {
                    teacher_second(rng, school_day)
                } else {
                    student_second(rng)
                };
                let st = style(rng);
                let mut ev = Event::new(
                    Action::ResourceInteract,
                    actor,
                    instant(rng, start, sod, st),
                    st,
                );
                ev.other = me;
                ev.n1 = r;
                ev.a = if owner_self {
                    4
                } else {
                    rng.weighted(&[25, 15, 10, 15, 35]) as u8
                };
                ev.client = client(rng, 0.6);
                let again = rng.chance(0.2);
                self.push(out, ev);
                if again {
                    // The same user again: a repeated pair, no new propagation.
                    let st = style(rng);
                    let mut ev2 = ev;
                    ev2.style = st;
                    ev2.ts_us = st.truncate(
                        (ev.ts_us + rng.range(30, 1800) as i64 * US_PER_SEC)
                            .min(start + (SECS_PER_DAY - 1) * US_PER_SEC),
                    );
                    ev2.a = rng.below(5) as u8;
                    self.push(out, ev2);
                }
            }
            let showcase_review = showcase_school && num == showcase::REVIEWED;
            reviews(
                seed,
                s,
                num,
                r,
                self.days,
                showcase_review,
                &mut self.review_buf,
            );
            for i in 0..self.review_buf.len() {
                let step = self.review_buf[i];
                if step.day != wi {
                    continue;
                }
                let admin = roster.admin(roster.school(s as usize).county as usize);
                let sod = 9 * 3600 + rng.below(8 * 3600 + 1800) as u32;
                if rng.chance(0.5) {
                    let st = style(rng);
                    let ev =
                        Event::new(Action::Login, admin, instant(rng, start, sod - 300, st), st);
                    self.push(out, ev);
                }
                let st = style(rng);
                let mut ev = Event::new(
                    Action::ResourceReview,
                    admin,
                    instant(rng, start, sod, st),
                    st,
                );
                ev.other = me;
                ev.n1 = r;
                ev.a = step.level;
                ev.b = step.outcome;
                self.push(out, ev);
            }
        }
    }

    /// Who propagates a resource of teacher `num` of school `s`: students
    /// and colleagues (never a teacher who never logs in), sometimes the
    /// owner.
    fn propagator(
        &self,
        roster: &Roster,
        rng: &mut Rng,
        s: u32,
        num: u32,
        popular: bool,
    ) -> Option<UserRef> {
        let school = roster.school(s as usize);
        let who = if popular {
            let c = &roster.counties()[school.county as usize];
            let o = c.first_school + rng.below(c.schools as u64) as u32;
            let other = roster.school(o as usize);
            if other.students > 0 && rng.chance(0.85) {
                UserRef::student(o, rng.below(other.students as u64) as u32)
            } else {
                UserRef::teacher(o, rng.below(other.teachers as u64) as u32)
            }
        } else {
            let u = rng.f64();
            if u < 0.7 && school.students > 0 {
                UserRef::student(s, rng.below(school.students as u64) as u32)
            } else if u < 0.95 {
                UserRef::teacher(s, rng.below(school.teachers as u64) as u32)
            } else {
                UserRef::teacher(s, num)
            }
        };
        if who.role == Role::Teacher
            && who != UserRef::teacher(s, num)
            && Teacher::of(roster, self.seed, who.school, who.num).habit == Habit::Never
        {
            return None;
        }
        Some(who)
    }

    #[allow(clippy::too_many_arguments)]
    fn students_day(
        &mut self,
        roster: &Roster,
        rng: &mut Rng,
        s: u32,
        wi: u32,
        start: i64,
        school_day: bool,
        out: &mut Vec<Event>,
    ) {
        let seed = self.seed;
        let school = roster.school(s as usize).clone();
        let days = self.days as u64;
        let weekday_factor = if school_day { 1.0 } else { 0.35 };
        let stage_code = match school.stage {
            Stage::Primary => 1,
            Stage::Junior => 2,
            Stage::Senior => 3,
        };
        let register = |this: &mut Self, rng: &mut Rng, who: UserRef, out: &mut Vec<Event>| {
            let sod = student_second(rng);
            let st = style(rng);
            let mut ev = Event::new(Action::Register, who, instant(rng, start, sod, st), st);
            if rng.chance(0.8) {
                ev.a = stage_code;
            }
            ev.client = client(rng, 0.4);
            this.push(out, ev);
        };
        for n in 0..school.students {
            let h = hash(&[seed, 0x7374_7564, s as u64, n as u64]);
            let propensity = 0.3 + 1.4 * unit(h);
            if rng.chance((school.engagement * propensity * weekday_factor).min(1.0)) {
                let me = UserRef::student(s, n);
                let first = student_second(rng).min(21 * 3600);
                for i in 0..1 + rng.poisson(0.4 * self.activity).min(4) {
                    let sod = if i == 0 {
                        first
                    } else {
                        later_second(rng, first)
                    };
                    let st = style(rng);
                    let mut ev = Event::new(Action::Login, me, instant(rng, start, sod, st), st);
                    ev.client = client(rng, 0.6);
                    self.push(out, ev);
                }
                // Students use apps and their space too; these are valid
                // events that earn nobody anything (only teachers are scored).
                let odd = rng.f64();
                let action = if odd < 0.08 {
                    Some(Action::AppUse)
                } else if odd < 0.12 {
                    Some(Action::SpaceOp)
                } else if odd < 0.125 {
                    Some(Action::Teach)
                } else {
                    None
                };
                if let Some(action) = action {
                    let sod = later_second(rng, first);
                    let st = style(rng);
                    let mut ev = Event::new(action, me, instant(rng, start, sod, st), st);
                    ev.client = Client::Mobile;
                    match action {
                        Action::AppUse => {
                            ev.a = if rng.chance(0.7) {
                                4
                            } else {
                                rng.below(APPS.len() as u64) as u8
                            };
                        }
                        Action::SpaceOp => ev.a = rng.below(6) as u8,
                        _ => ev.n1 = rng.below(1_000_000) as u32,
                    }
                    self.push(out, ev);
                }
            }
            // Registration: on one day of the window, for some students.
            let registers = match school.registration {
                Registration::Share(p) => unit(hash(&[h, 1])) < p,
                Registration::Overflow(_) => true,
            };
            if registers {
                let reg_day = (h >> 20) % days;
                let again = (h >> 8) & 63 == 0;
                if reg_day == wi as u64 || (again && reg_day + 1 == wi as u64) {
                    register(self, rng, UserRef::student(s, n), out);
                }
            }
            // Parents: now and then, more at weekends.
            if rng.chance(if school_day { 0.02 } else { 0.03 }) && roster.has_parent(s, n) {
                let sod = student_second(rng);
                let st = style(rng);
                let mut ev = Event::new(
                    Action::Login,
                    UserRef::parent(s, n),
                    instant(rng, start, sod, st),
                    st,
                );
                ev.client = Client::Mobile;
                self.push(out, ev);
            }
        }
        if let Registration::Overflow(extra) = school.registration {
            // New students not yet on the roster register too.
            for n in school.students..school.students + extra {
                let h = hash(&[seed, 0x6e65_7773, s as u64, n as u64]);
                if h % days == wi as u64 {
                    register(self, rng, UserRef::student(s, n), out);
                }
            }
        }
    }

    fn tasks_day(&mut self, roster: &Roster, day: i64, start: i64, out: &mut Vec<Event>) {
        let end = start + SECS_PER_DAY * US_PER_SEC;
        let mut tasks = std::mem::take(&mut self.tasks);
        tasks.retain(|t| day - t.day <= 31);
        for task in &tasks {
            let o = day - task.day;
            let mut rng = Rng::derive(&[task.seed, day as u64]);
            if o < READ_DAYS {
                let readers = task.class_size.min(task.max_readers);
                for j in 0..readers {
                    let h = hash(&[task.seed, j as u64]);
                    if unit(h) >= task.reach {
                        continue;
                    }
                    let x = (h >> 8) & 0xff;
                    let ro = match x {
                        0..64 => 0,
                        64..154 => 1,
                        154..205 => 2,
                        205..230 => 3,
                        230..243 => 4,
                        _ => 5 + (x & 1) as i64,
                    };
                    let completes = (h >> 16) & 0xff < 150;
                    let co = ro + [0, 0, 1, 2][((h >> 24) & 3) as usize];
                    let n = (task.class_start + j) % task.students;
                    let who = UserRef::student(task.owner.school, n);
                    let mut read_at = None;
                    if ro == o {
                        let t = self.progress_time(&mut rng, task, o, start, end, None);
                        read_at = Some(t);
                        self.progress(out, &mut rng, task, who, t, 0);
                        if (h >> 28) & 15 == 0 {
                            // Reads it again: same student, no new count.
                            let t2 = self.progress_time(&mut rng, task, o, start, end, Some(t));
                            self.progress(out, &mut rng, task, who, t2, 0);
                        }
                        if (h >> 32) & 31 == 0 && roster.has_parent(task.owner.school, n) {
                            // A parent reads it: role parent does not count.
                            let t2 = self.progress_time(&mut rng, task, o, start, end, Some(t));
                            self.progress(
                                out,
                                &mut rng,
                                task,
                                UserRef::parent(task.owner.school, n),
                                t2,
                                0,
                            );
                        }
                    }
                    if completes && co == o {
                        let t = self.progress_time(&mut rng, task, o, start, end, read_at);
                        self.progress(out, &mut rng, task, who, t, 1);
                    }
                }
            }
            if task.straggler > 0 && task.students > 0 {
                // 29 days + 1 h (counts), or 30 days + 1–3 h (too late).
                let late_us = if task.straggler == 1 {
                    (29 * SECS_PER_DAY + 3600) * US_PER_SEC
                } else {
                    (30 * SECS_PER_DAY + 3600 + (task.seed % 7200) as i64) * US_PER_SEC
                };
                let at = task.publish_us + late_us;
                if at >= start && at < end {
                    let n = (task.class_start + task.class_size.saturating_sub(1)) % task.students;
                    let who = UserRef::student(task.owner.school, n);
                    self.progress(out, &mut rng, task, who, at, 0);
                }
            }
        }
        self.tasks = tasks;
    }

    /// When a class student reads or completes: after the publish instant on
    /// the publish day, else in student hours; after `after` if given.
    fn progress_time(
        &self,
        rng: &mut Rng,
        task: &Task,
        o: i64,
        start: i64,
        end: i64,
        after: Option<i64>,
    ) -> i64 {
        let last = end - US_PER_SEC;
        let t = match after {
            Some(a) => a + rng.range(60, 3 * 3600) as i64 * US_PER_SEC,
            None if o == 0 => task.publish_us + rng.range(120, 6 * 3600) as i64 * US_PER_SEC,
            None => start + student_second(rng) as i64 * US_PER_SEC,
        };
        t.min(last) + rng.below(1000) as i64
    }

    fn progress(
        &mut self,
        out: &mut Vec<Event>,
        rng: &mut Rng,
        task: &Task,
        who: UserRef,
        at: i64,
        status: u8,
    ) {
        let st = style(rng);
        let mut ev = Event::new(Action::TaskProgress, who, st.truncate(at), st);
        ev.other = task.owner;
        ev.school = who.school;
        ev.n1 = task.day as u32;
        ev.n2 = task.num;
        ev.aux_us = task.publish_us;
        // The same instant, sometimes written in UTC.
        ev.aux_style = match task.style {
            TsStyle::China if rng.chance(0.15) => TsStyle::Utc,
            TsStyle::ChinaMillis if rng.chance(0.15) => TsStyle::UtcMillis,
            s => s,
        };
        ev.a = status;
        ev.client = client(rng, 0.7);
        self.push(out, ev);
    }
}

/// The first day (since 1970-01-01) and the number of days generated.
pub fn window(cfg: &GenConfig) -> (i64, u32) {
    use super::calendar::{days_from_civil, days_in_month};
    let month_start = days_from_civil(cfg.year as i64, cfg.month, 1);
    let first = month_start - cfg.lead_days as i64;
    (
        first,
        cfg.lead_days + days_in_month(cfg.year as i64, cfg.month),
    )
}

/// `client`: mobile with probability `mobile`, else mostly pc, sometimes
/// left out (the spec's default, pc).
fn client(rng: &mut Rng, mobile: f64) -> Client {
    if rng.chance(mobile) {
        Client::Mobile
    } else if rng.chance(0.7) {
        Client::Pc
    } else {
        Client::Absent
    }
}

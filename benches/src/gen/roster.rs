//! Counties, schools and users, and the two roster CSVs.
//!
//! Only schools are stored; users are numbered within their school and every
//! per-user fact (whether a teacher is on the roster, whether a student's
//! parent has an account, names) is derived from a hash of the seed and the
//! user's numbers, so memory stays proportional to the number of schools.

use std::collections::HashSet;
use std::io::{self, Write};

use super::config::GenConfig;
use super::event::UserRef;
use super::names::{
    County, GIVEN, SCHOOL_KINDS, SURNAMES, Stage, TOWNS, pick_counties, short_name,
};
use super::rng::{Rng, exp, hash, unit};

/// `category` of a school.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// 示范校/创建校: held to a 20% daily-active target.
    Demo,
    /// Every other school.
    Regular,
}

impl Category {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Demo => "demo",
            Category::Regular => "regular",
        }
    }
}

/// How a school's students register during the generated days.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Registration {
    /// This share of the roster students send a `register` event.
    Share(f64),
    /// Every roster student registers, and this many more students who are
    /// not (yet) on the roster: registered students exceed `student_base`,
    /// so the registration rate caps at 100%.
    Overflow(u32),
}

/// One school of the roster.
#[derive(Clone, Debug)]
pub struct School {
    /// The 10-digit 学校标识码: the county code's last four digits after
    /// `33`, then a 4-digit number (e.g. `3303810007`).
    pub id: [u8; 10],
    /// Global index (the number in user ids).
    pub index: u32,
    /// Index of its county in [`Roster::counties`].
    pub county: u32,
    /// Chinese name.
    pub name: String,
    /// `demo` or `regular`.
    pub category: Category,
    /// Its stage, for `register` events.
    pub stage: Stage,
    /// Roster teachers `t<index>-000 …`.
    pub teachers: u32,
    /// Roster students `s<index>-0000 …`.
    pub students: u32,
    /// Enrolled students (≥ `students`).
    pub student_base: u32,
    /// Base probability that a student logs in on a school day.
    pub engagement: f64,
    /// How far the school has adopted the platform (0–1): the share of its
    /// teachers who use more than the login.
    pub adoption: f64,
    /// Registrations during the generated days.
    pub registration: Registration,
}

impl School {
    /// The school id as text.
    pub fn id_str(&self) -> &str {
        std::str::from_utf8(&self.id).expect("digits")
    }
}

/// A county of the roster and its schools.
#[derive(Clone, Debug)]
pub struct CountyInfo {
    /// Code, name and city.
    pub county: County,
    /// Global index of its first school.
    pub first_school: u32,
    /// Number of its schools (consecutive indices).
    pub schools: u32,
}

/// All counties, schools and (implicitly) users.
#[derive(Clone, Debug)]
pub struct Roster {
    seed: u64,
    /// The generated month as `YYYYMM`, part of every `event_id`, so that
    /// the months of one county can go into one lake.
    month: u32,
    counties: Vec<CountyInfo>,
    schools: Vec<School>,
}

/// Share of teachers left out of `users.csv` although they produce events.
const UNLISTED_SHARE: f64 = 0.02;
/// Share of students whose parent has an account.
const PARENT_SHARE: f64 = 0.6;

impl Roster {
    /// Builds the roster of a configuration (cheap: one record per school);
    /// the error names an invalid option ([`GenConfig::validate`]).
    pub fn new(cfg: &GenConfig) -> Result<Self, String> {
        cfg.validate()?;
        let mut rng = Rng::derive(&[cfg.seed, 0x726f_7374_6572]);
        let picked = pick_counties(cfg.counties as usize);
        let n = cfg.schools as usize;
        let k = picked.len();
        let mut counties = Vec::with_capacity(k);
        let mut schools = Vec::with_capacity(n);
        for (ci, county) in picked.into_iter().enumerate() {
            let count = n / k + usize::from(ci < n % k);
            let first = schools.len() as u32;
            let short = short_name(county.name);
            let mut used = HashSet::new();
            for local in 0..count {
                let index = schools.len() as u32;
                let mut id = [b'0'; 10];
                id[..2].copy_from_slice(b"33");
                id[2..6].copy_from_slice(&county.code.as_bytes()[2..6]);
                let num = (local + 1) as u32;
                for (j, d) in id[6..].iter_mut().rev().enumerate() {
                    *d = b'0' + (num / 10u32.pow(j as u32) % 10) as u8;
                }
                let (kind, stage) = SCHOOL_KINDS[rng.below(SCHOOL_KINDS.len() as u64) as usize];
                let town = TOWNS[local % TOWNS.len()];
                let mut name = format!("{short}{town}{kind}");
                let mut suffix = 2;
                while !used.insert(name.clone()) {
                    name = format!("{short}{town}{kind}第{suffix}校区");
                    suffix += 1;
                }
                // Sizes vary around the means: a few big town schools, many
                // small village ones.
                let f = exp(rng.normal() * 0.45).clamp(0.3, 2.5);
                let teachers = ((cfg.teachers_per_school as f64 * f).round() as u32).max(1);
                let sf = f * (0.8 + 0.4 * rng.f64());
                let students = (cfg.students_per_school as f64 * sf).round() as u32;
                let student_base = students + (students as f64 * 0.12 * rng.f64()).round() as u32;
                let category = if rng.chance(0.2) {
                    Category::Demo
                } else {
                    Category::Regular
                };
                let engagement =
                    0.05 + 0.42 * {
                        let u = rng.f64();
                        u * u.sqrt()
                    } + if category == Category::Demo {
                        0.08
                    } else {
                        0.0
                    };
                let adoption = rng.f64();
                // The first schools of a county carry the registration edge
                // cases for sure; the rest are drawn.
                let registration = match (local, rng.weighted(&[50, 30, 12, 8])) {
                    (0, _) | (_, 2) => Registration::Share(0.6 + 0.35 * rng.f64()),
                    (1, _) | (_, 3) => Registration::Overflow(
                        student_base - students
                            + 1
                            + (student_base as f64 * 0.1 * rng.f64()) as u32,
                    ),
                    (_, 0) => Registration::Share(0.01 + 0.07 * rng.f64()),
                    _ => Registration::Share(0.1 + 0.3 * rng.f64()),
                };
                schools.push(School {
                    id,
                    index,
                    county: ci as u32,
                    name,
                    category,
                    stage,
                    teachers,
                    students,
                    student_base,
                    engagement,
                    adoption,
                    registration,
                });
            }
            counties.push(CountyInfo {
                county,
                first_school: first,
                schools: count as u32,
            });
        }
        Ok(Roster {
            seed: cfg.seed,
            month: cfg.year as u32 * 100 + cfg.month,
            counties,
            schools,
        })
    }

    /// The generated month, `YYYYMM`.
    pub fn month(&self) -> u32 {
        self.month
    }

    /// The counties.
    pub fn counties(&self) -> &[CountyInfo] {
        &self.counties
    }

    /// County `i`.
    pub fn county(&self, i: usize) -> &County {
        &self.counties[i].county
    }

    /// The schools, by global index.
    pub fn schools(&self) -> &[School] {
        &self.schools
    }

    /// School `i`.
    #[inline]
    pub fn school(&self, i: usize) -> &School {
        &self.schools[i]
    }

    /// The reviewer of county `i`: `admin-<code>`, stating the county's
    /// first school as its `school_id`.
    pub fn admin(&self, county: usize) -> UserRef {
        UserRef {
            role: super::event::Role::Admin,
            school: self.counties[county].first_school,
            num: county as u32,
        }
    }

    /// Whether teacher `num` of `school` is in `users.csv`. About 2% are not
    /// (they still produce events), and in every county the last teacher of
    /// its first school with at least two teachers is left out for sure.
    pub fn teacher_listed(&self, school: u32, num: u32) -> bool {
        let s = &self.schools[school as usize];
        let c = &self.counties[s.county as usize];
        if school == c.first_school && s.teachers >= 2 && num == s.teachers - 1 {
            return false;
        }
        num < 8
            || unit(hash(&[self.seed, 0x756e_6c69, school as u64, num as u64])) >= UNLISTED_SHARE
    }

    /// Whether the parent of student `num` of `school` has an account (and
    /// is in `users.csv`).
    pub fn has_parent(&self, school: u32, num: u32) -> bool {
        unit(hash(&[self.seed, 0x7061_7265, school as u64, num as u64])) < PARENT_SHARE
    }

    /// A teacher's Chinese name.
    pub fn teacher_name(&self, school: u32, num: u32) -> String {
        let h = hash(&[self.seed, 0x6e61_6d65, school as u64, num as u64]);
        let mut s = String::with_capacity(9);
        s.push_str(SURNAMES[(h % SURNAMES.len() as u64) as usize]);
        s.push_str(GIVEN[((h >> 16) % GIVEN.len() as u64) as usize]);
        if !(h >> 32).is_multiple_of(3) {
            s.push_str(GIVEN[((h >> 40) % GIVEN.len() as u64) as usize]);
        }
        s
    }

    /// Total roster teachers (listed or not).
    pub fn teacher_count(&self) -> u64 {
        self.schools.iter().map(|s| s.teachers as u64).sum()
    }

    /// Teachers left out of `users.csv` ([`Roster::teacher_listed`]).
    pub fn unlisted_teacher_count(&self) -> u64 {
        self.schools
            .iter()
            .map(|s| {
                (0..s.teachers)
                    .filter(|&t| !self.teacher_listed(s.index, t))
                    .count() as u64
            })
            .sum()
    }

    /// Total roster students.
    pub fn student_count(&self) -> u64 {
        self.schools.iter().map(|s| s.students as u64).sum()
    }

    /// Writes `schools.csv` (header `school_id,name,county_code,county_name,
    /// city_code,category,student_base`).
    pub fn write_schools_csv(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "school_id,name,county_code,county_name,city_code,category,student_base"
        )?;
        for s in &self.schools {
            let c = &self.counties[s.county as usize].county;
            writeln!(
                w,
                "{},{},{},{},{},{},{}",
                s.id_str(),
                s.name,
                c.code,
                c.name,
                c.city_code,
                s.category.as_str(),
                s.student_base
            )?;
        }
        Ok(())
    }

    /// Writes `users.csv` (header `user_id,school_id,role,name`): per school
    /// its listed teachers, students and parents; each county's reviewer
    /// (role `admin`) after the county's first school. Students and parents
    /// have no name (minors' names are not exported).
    pub fn write_users_csv(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "user_id,school_id,role,name")?;
        let mut buf = Vec::with_capacity(64);
        for s in &self.schools {
            let sid = s.id_str();
            for t in 0..s.teachers {
                if !self.teacher_listed(s.index, t) {
                    continue;
                }
                buf.clear();
                UserRef::teacher(s.index, t).write_id(self, &mut buf);
                buf.push(b',');
                buf.extend_from_slice(sid.as_bytes());
                buf.extend_from_slice(b",teacher,");
                buf.extend_from_slice(self.teacher_name(s.index, t).as_bytes());
                buf.push(b'\n');
                w.write_all(&buf)?;
            }
            for (role, parents) in [("student", false), ("parent", true)] {
                for n in 0..s.students {
                    if parents && !self.has_parent(s.index, n) {
                        continue;
                    }
                    buf.clear();
                    let u = if parents {
                        UserRef::parent(s.index, n)
                    } else {
                        UserRef::student(s.index, n)
                    };
                    u.write_id(self, &mut buf);
                    buf.push(b',');
                    buf.extend_from_slice(sid.as_bytes());
                    buf.push(b',');
                    buf.extend_from_slice(role.as_bytes());
                    buf.extend_from_slice(b",\n");
                    w.write_all(&buf)?;
                }
            }
            let c = &self.counties[s.county as usize];
            if c.first_school == s.index {
                let short = short_name(c.county.name);
                writeln!(
                    w,
                    "admin-{},{sid},admin,{short}教育局资源审核员",
                    c.county.code
                )?;
            }
        }
        Ok(())
    }
}

//! Builds the 通报: one report per county of the roster (its schools ranked)
//! and one for the province (its counties ranked by the same measures).
//!
//! County-level measures (province report, and each report's overview) are
//! the natural aggregates of the schools' raw sums, never means of rates:
//! `avg_points = Σ points_total / Σ teachers`, `active_ratio = Σ
//! active_teachers / Σ teachers`, `daily_active_rate = Σ user-days / (Σ users
//! · D)`, `target_rate` = the users-weighted mean of the schools' targets (so a
//! county meets it exactly when its active user-days reach the sum of its
//! schools' targets), `avg_daily_logins = Σ logins / D`, `deep_index = Σ deep
//! actions / Σ teachers`, `registration_rate = min(1, Σ registered / Σ
//! student_base)`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use super::model::{Cell, Report, Section, Table, fixed2, format_pct};
use crate::month::{Day, Month};
use crate::monthly::compute::{DEMO_TARGET_RATE, MONTHLY_TARGET_POINTS};
use crate::monthly::facts::{DayFacts, SchoolFacts, TeacherFacts};

/// Share of active teacher spaces a school should reach (scoring.md: 15%).
pub const ACTIVE_RATIO_TARGET: f64 = 0.15;
/// Rows of the top and bottom tables (ties at the boundary add rows).
pub const TOP_N: i64 = 10;
/// Rows of the top-teachers table.
pub const TOP_TEACHERS: i64 = 20;

/// What the report needs besides the figures.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The month reported.
    pub month: Month,
    /// The platform's name in titles (`之江汇教育广场`).
    pub platform: String,
    /// The title of the rule profile, cited in the preface when known.
    pub rules_title: Option<String>,
}

/// A ranked unit: a school (county report) or a county (province report).
#[derive(Debug, Clone)]
struct Unit {
    id: String,
    name: String,
    /// `示范校` / `普通校` for a school; None for a county.
    category: Option<String>,
    schools: i64,
    users: i64,
    teachers: i64,
    points_total: i64,
    active_teachers: i64,
    /// The daily active rate: a school's own (`school_monthly`), a county's
    /// pooled over its schools (Σ user-days / (users · D)).
    daily_active_rate: Option<f64>,
    /// Σ users · target of the schools (for the weighted target).
    target_weight: f64,
    logins: i64,
    deep_actions: i64,
    registered: i64,
    base: i64,
    days: f64,
}

impl Unit {
    fn school(s: &SchoolFacts, days: u32) -> Self {
        let mut u = Self::aggregate(&s.school_id, s.display_name(), &[s], days);
        u.daily_active_rate = s.daily_active_rate;
        u.category = Some(
            if s.category == "demo" {
                "示范校"
            } else {
                "普通校"
            }
            .to_string(),
        );
        u
    }

    fn aggregate(id: &str, name: &str, schools: &[&SchoolFacts], days: u32) -> Self {
        let sum = |f: fn(&SchoolFacts) -> i64| schools.iter().map(|s| f(s)).sum::<i64>();
        let (users, user_days) = (sum(|s| s.users), sum(|s| s.user_days));
        Self {
            id: id.to_string(),
            name: name.to_string(),
            category: None,
            schools: schools.len() as i64,
            users,
            teachers: sum(|s| s.teachers),
            points_total: sum(|s| s.points_total),
            active_teachers: sum(|s| s.active_teachers),
            daily_active_rate: (users > 0)
                .then(|| user_days as f64 / (users as f64 * f64::from(days))),
            target_weight: schools.iter().map(|s| s.users as f64 * s.target_rate).sum(),
            logins: sum(|s| s.logins),
            deep_actions: sum(|s| s.deep_actions),
            registered: sum(|s| s.registered_students),
            base: sum(|s| s.student_base),
            days: f64::from(days),
        }
    }

    fn per_teacher(&self, v: i64) -> Option<f64> {
        (self.teachers > 0).then(|| v as f64 / self.teachers as f64)
    }
    fn avg_points(&self) -> Option<f64> {
        self.per_teacher(self.points_total)
    }
    fn active_ratio(&self) -> Option<f64> {
        self.per_teacher(self.active_teachers)
    }
    fn deep_index(&self) -> Option<f64> {
        self.per_teacher(self.deep_actions)
    }
    fn daily_active_rate(&self) -> Option<f64> {
        self.daily_active_rate
    }
    fn target_rate(&self) -> Option<f64> {
        (self.users > 0).then(|| self.target_weight / self.users as f64)
    }
    fn rate_gap(&self) -> Option<f64> {
        Some(self.daily_active_rate()? - self.target_rate()?)
    }
    fn avg_daily_logins(&self) -> f64 {
        self.logins as f64 / self.days
    }
    fn registration_rate(&self) -> Option<f64> {
        (self.base > 0).then(|| (self.registered as f64 / self.base as f64).min(1.0))
    }
}

/// Competition ranks ("1224"), higher values first, absent values last
/// (sharing the last rank). O(n log n).
pub fn competition_ranks(values: &[Option<f64>]) -> Vec<i64> {
    ranks_by(values, cmp_desc)
}

/// Ranks from the bottom: the worst value (absent first, then lowest) is 1.
fn bottom_ranks(values: &[Option<f64>]) -> Vec<i64> {
    ranks_by(values, |a, b| cmp_desc(b, a))
}

/// Orders values best first: higher first, absent last.
fn cmp_desc(a: &Option<f64>, b: &Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Competition ranks for the order `cmp` ("first" = rank 1); equal values
/// share a rank and the next rank skips.
fn ranks_by(
    values: &[Option<f64>],
    cmp: impl Fn(&Option<f64>, &Option<f64>) -> Ordering,
) -> Vec<i64> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| cmp(&values[a], &values[b]));
    let mut ranks = vec![0i64; values.len()];
    for (pos, &i) in idx.iter().enumerate() {
        ranks[i] = if pos > 0 && cmp(&values[idx[pos - 1]], &values[i]) == Ordering::Equal {
            ranks[idx[pos - 1]]
        } else {
            pos as i64 + 1
        };
    }
    ranks
}

/// Indices of the top `n` by competition rank (ties at the boundary all in),
/// best first, ties by id.
fn top(units: &[Unit], ranks: &[i64], n: i64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..units.len()).filter(|&i| ranks[i] <= n).collect();
    idx.sort_by(|&a, &b| {
        ranks[a]
            .cmp(&ranks[b])
            .then_with(|| units[a].id.cmp(&units[b].id))
    });
    idx
}

/// Indices of the bottom `n` (ties at the boundary all in), worst first,
/// ties by id.
fn bottom(units: &[Unit], values: &[Option<f64>], ranks: &[i64], n: i64) -> Vec<usize> {
    let from_bottom = bottom_ranks(values);
    let mut idx: Vec<usize> = (0..units.len()).filter(|&i| from_bottom[i] <= n).collect();
    idx.sort_by(|&a, &b| {
        ranks[b]
            .cmp(&ranks[a])
            .then_with(|| units[a].id.cmp(&units[b].id))
    });
    idx
}

/// The reporting scope: a county (its schools) or the province (its counties).
struct Scope<'a> {
    province: bool,
    /// `瑞安市`, or `全省` for the province.
    name: String,
    /// `全市`, `全县`, `全区`, `全省`.
    whole: String,
    units: Vec<Unit>,
    total: Unit,
    /// Teacher rows of the scope with their rank in the scope.
    teachers: Vec<(&'a TeacherFacts, i64)>,
    /// Login events per day of the month (index 0 = day 1).
    daily_logins: Vec<i64>,
    school_names: HashMap<&'a str, &'a str>,
    county_names: HashMap<&'a str, &'a str>,
}

impl Scope<'_> {
    fn unit_noun(&self) -> &'static str {
        if self.province {
            "县（市、区）"
        } else {
            "学校"
        }
    }
    /// The measure word for counting units: 3所学校, 3个县（市、区）.
    fn measure_word(&self) -> &'static str {
        if self.province { "个" } else { "所" }
    }
    fn id_header(&self) -> &'static str {
        if self.province {
            "行政区划代码"
        } else {
            "学校标识码"
        }
    }
    fn name_header(&self) -> &'static str {
        if self.province {
            "县（市、区）"
        } else {
            "学校名称"
        }
    }
    /// Header and cell of the column after the name: a school's category, or
    /// a county's number of schools.
    fn kind_header(&self) -> &'static str {
        if self.province { "学校数" } else { "类别" }
    }
    fn kind_cell(&self, u: &Unit) -> Cell {
        match &u.category {
            Some(c) => Cell::text(c),
            None => Cell::Int(u.schools),
        }
    }
}

/// `全市` for 瑞安市, `全县` for 永嘉县, `全区` for 鹿城区; else `全县（市、区）`.
fn whole_of(county_name: &str) -> String {
    match county_name.chars().last() {
        Some(c @ ('市' | '县' | '区' | '旗')) => format!("全{c}"),
        _ => "全县（市、区）".to_string(),
    }
}

/// The reports of every county of the roster (by county code) and of the
/// province.
pub fn build_reports(
    opts: &ReportOptions,
    schools: &[SchoolFacts],
    teachers: &[TeacherFacts],
    days: &[DayFacts],
) -> (Vec<(String, Report)>, Report) {
    let d = opts.month.days();
    let mut by_county: BTreeMap<&str, Vec<&SchoolFacts>> = BTreeMap::new();
    for s in schools {
        by_county.entry(s.county_code.as_str()).or_default().push(s);
    }
    let school_names: HashMap<&str, &str> = schools
        .iter()
        .map(|s| (s.school_id.as_str(), s.display_name()))
        .collect();
    let county_names: HashMap<&str, &str> = by_county
        .iter()
        .map(|(code, ss)| (*code, county_display(code, ss)))
        .collect();
    let school_county: HashMap<&str, &str> = schools
        .iter()
        .map(|s| (s.school_id.as_str(), s.county_code.as_str()))
        .collect();
    let logins_of = |filter: &dyn Fn(&str) -> bool| {
        let mut v = vec![0i64; d as usize];
        for f in days.iter().filter(|f| filter(&f.school_id)) {
            if let Some(slot) = v.get_mut(f.day as usize - 1) {
                *slot += f.logins;
            }
        }
        v
    };

    let mut counties = Vec::new();
    for (code, ss) in &by_county {
        let name = county_names[code].to_string();
        let scope = Scope {
            province: false,
            whole: whole_of(&name),
            units: ss.iter().map(|s| Unit::school(s, d)).collect(),
            total: Unit::aggregate(code, &name, ss, d),
            teachers: teachers
                .iter()
                .filter(|t| t.county_code.as_deref() == Some(*code))
                .map(|t| (t, t.rank_in_county.unwrap_or(0)))
                .collect(),
            daily_logins: logins_of(&|s| school_county.get(s) == Some(code)),
            school_names: school_names.clone(),
            county_names: county_names.clone(),
            name,
        };
        counties.push((code.to_string(), build(opts, &scope)));
    }

    let all: Vec<&SchoolFacts> = schools.iter().collect();
    let points: Vec<Option<f64>> = teachers.iter().map(|t| Some(t.points as f64)).collect();
    let province_ranks = competition_ranks(&points);
    let province = Scope {
        province: true,
        name: "全省".to_string(),
        whole: "全省".to_string(),
        units: by_county
            .iter()
            .map(|(code, ss)| Unit::aggregate(code, county_names[code], ss, d))
            .collect(),
        total: Unit::aggregate("province", "全省", &all, d),
        teachers: teachers.iter().zip(province_ranks).collect(),
        daily_logins: logins_of(&|s| school_county.contains_key(s)),
        school_names,
        county_names,
    };
    let province = build(opts, &province);
    (counties, province)
}

fn county_display<'a>(code: &'a str, schools: &[&'a SchoolFacts]) -> &'a str {
    schools
        .iter()
        .find_map(|s| s.county_name.as_deref().filter(|n| !n.is_empty()))
        .unwrap_or(code)
}

fn build(opts: &ReportOptions, scope: &Scope<'_>) -> Report {
    let month = opts.month;
    let d = month.days();
    let title = format!(
        "{}{}应用情况通报（{}）",
        scope.name,
        opts.platform,
        month.chinese()
    );
    let addressee = if scope.province {
        "各县（市、区）教育局"
    } else {
        "各学校"
    };
    let basis = opts
        .rules_title
        .as_ref()
        .map(|t| format!("根据《{t}》，"))
        .unwrap_or_default();
    let preface = vec![
        format!("{addressee}："),
        format!(
            "{basis}现将{}（{}月1日至{}月{}日，共{}天）{}{}应用情况通报如下。",
            month.chinese(),
            month.month,
            month.month,
            d,
            d,
            scope.whole,
            opts.platform
        ),
    ];
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let sections = vec![
        overview(scope, month, next()),
        overall_rank(scope, &mut next),
        daily_active(scope, &mut next),
        deep_use(scope, &mut next),
        registration(scope, month, next()),
        teacher_space(scope, &mut next),
    ];
    let footer = vec![format!(
        "数据来源：{}平台使用数据（huoyue 月度汇总），统计期间 {} 至 {}。",
        opts.platform,
        month.first_day(),
        month.last_day()
    )];
    Report {
        month,
        title,
        preface,
        sections,
        footer,
    }
}

fn section(number: usize, title: &str, stem: &str, text: String, tables: Vec<Table>) -> Section {
    Section {
        number,
        title: title.to_string(),
        file_stem: format!("{number}-{stem}"),
        text,
        tables,
    }
}

fn table(number: usize, title: String, columns: &[&str], rows: Vec<Vec<Cell>>) -> Table {
    Table {
        number,
        title,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

fn overview(scope: &Scope<'_>, month: Month, n: usize) -> Section {
    let t = &scope.total;
    let (peak_day, peak) =
        scope
            .daily_logins
            .iter()
            .enumerate()
            .fold((None, 0i64), |(bd, best), (i, &v)| {
                if v > best {
                    (Some(i as u32 + 1), v)
                } else {
                    (bd, best)
                }
            });
    let peak_label = peak_day.map(|day| {
        Day {
            year: month.year,
            month: month.month,
            day,
        }
        .chinese_short()
    });
    let mut rows = Vec::new();
    if scope.province {
        rows.push(vec![
            Cell::text("县（市、区）数"),
            Cell::Int(scope.units.len() as i64),
        ]);
    }
    rows.extend([
        vec![Cell::text("学校数"), Cell::Int(t.schools)],
        vec![Cell::text("用户数"), Cell::Int(t.users)],
        vec![Cell::text("教师数"), Cell::Int(t.teachers)],
        vec![Cell::text("日均活跃度"), Cell::pct(t.daily_active_rate())],
        vec![Cell::text("日均访问量"), Cell::Num(t.avg_daily_logins())],
        vec![Cell::text("单日最高访问量"), Cell::Int(peak)],
        vec![
            Cell::text("最高访问日"),
            peak_label.clone().map_or(Cell::Empty, Cell::Text),
        ],
        vec![
            Cell::text("空间活跃度（教师人均积分）"),
            Cell::num(t.avg_points()),
        ],
        vec![Cell::text("活跃空间数"), Cell::Int(t.active_teachers)],
        vec![Cell::text("活跃空间比例"), Cell::pct(t.active_ratio())],
        vec![Cell::text("深度空间应用指数"), Cell::num(t.deep_index())],
        vec![Cell::text("学生注册率"), Cell::pct(t.registration_rate())],
    ]);
    let pct = |v: Option<f64>| v.map_or("—".to_string(), format_pct);
    let num = |v: Option<f64>| v.map_or("—".to_string(), fixed2);
    let peak_text = match &peak_label {
        Some(day) => format!("{day}访问量最高，为{peak}次"),
        None => "本月无访问记录".to_string(),
    };
    let counties = if scope.province {
        format!("{}个县（市、区）", scope.units.len())
    } else {
        String::new()
    };
    let text = format!(
        "本月{whole}{counties}共有学校{}所、用户{}人，其中教师{}人。{whole}日均活跃度为{}，\
         日均访问量为{}次，{peak_text}。教师空间活跃度（人均积分）为{}分，活跃空间{}个，占{}。",
        t.schools,
        t.users,
        t.teachers,
        pct(t.daily_active_rate()),
        fixed2(t.avg_daily_logins()),
        num(t.avg_points()),
        t.active_teachers,
        pct(t.active_ratio()),
        whole = scope.whole,
    );
    let tables = vec![table(
        n,
        format!("{}概况", scope.whole),
        &["指标", "数值"],
        rows,
    )];
    section(1, "概况", "overview", text, tables)
}

fn overall_rank(scope: &Scope<'_>, next: &mut impl FnMut() -> usize) -> Section {
    let values: Vec<Option<f64>> = scope.units.iter().map(Unit::avg_points).collect();
    let ranks = competition_ranks(&values);
    let columns = [
        "排名",
        scope.id_header(),
        scope.name_header(),
        scope.kind_header(),
        "教师数",
        "空间活跃度",
        "活跃空间数",
        "活跃空间比例",
    ];
    let row = |i: usize| {
        let u = &scope.units[i];
        vec![
            Cell::Int(ranks[i]),
            Cell::text(&u.id),
            Cell::text(&u.name),
            scope.kind_cell(u),
            Cell::Int(u.teachers),
            Cell::num(u.avg_points()),
            Cell::Int(u.active_teachers),
            Cell::pct(u.active_ratio()),
        ]
    };
    let (a, b) = (next(), next());
    let tables = vec![
        table(
            a,
            format!("综合排名前{TOP_N}位"),
            &columns,
            top(&scope.units, &ranks, TOP_N)
                .into_iter()
                .map(row)
                .collect(),
        ),
        table(
            b,
            format!("综合排名后{TOP_N}位"),
            &columns,
            bottom(&scope.units, &values, &ranks, TOP_N)
                .into_iter()
                .map(row)
                .collect(),
        ),
    ];
    let text = format!(
        "综合排名按各{unit}空间活跃度（教师人均活跃度积分）由高到低排列，并列者名次相同。\
         前{TOP_N}位和后{TOP_N}位{unit}见表{a}、表{b}。",
        unit = scope.unit_noun()
    );
    section(2, "综合排名", "overall-rank", text, tables)
}

fn daily_active(scope: &Scope<'_>, next: &mut impl FnMut() -> usize) -> Section {
    let values: Vec<Option<f64>> = scope.units.iter().map(Unit::daily_active_rate).collect();
    let ranks = competition_ranks(&values);
    let columns = [
        "排名",
        scope.id_header(),
        scope.name_header(),
        scope.kind_header(),
        "用户数",
        "日均活跃度",
        "达标线",
        "完成情况",
    ];
    let row = |i: usize| {
        let u = &scope.units[i];
        vec![
            Cell::Int(ranks[i]),
            Cell::text(&u.id),
            Cell::text(&u.name),
            scope.kind_cell(u),
            Cell::Int(u.users),
            Cell::pct(u.daily_active_rate()),
            Cell::pct(u.target_rate()),
            Cell::pct(u.rate_gap()),
        ]
    };
    let mut below: Vec<usize> = (0..scope.units.len())
        .filter(|&i| scope.units[i].rate_gap().is_some_and(|g| g < 0.0))
        .collect();
    below.sort_by(|&a, &b| {
        let (ga, gb) = (scope.units[a].rate_gap(), scope.units[b].rate_gap());
        ga.partial_cmp(&gb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| scope.units[a].id.cmp(&scope.units[b].id))
    });
    let (a, b) = (next(), next());
    let unit = scope.unit_noun();
    let target = if scope.province {
        format!(
            "各县（市、区）达标线为所辖学校达标线按用户数的加权平均（示范校、创建校{}，其他学校{}）",
            format_pct(DEMO_TARGET_RATE),
            format_pct(crate::monthly::compute::REGULAR_TARGET_RATE)
        )
    } else {
        format!(
            "示范校、创建校日均活跃度达标线为{}，其他学校为{}",
            format_pct(DEMO_TARGET_RATE),
            format_pct(crate::monthly::compute::REGULAR_TARGET_RATE)
        )
    };
    let below_text = if below.is_empty() {
        format!("本月各{unit}均已达标。")
    } else {
        format!(
            "本月有{}{}{unit}未达标，按差距由大到小列于表{b}。",
            below.len(),
            scope.measure_word()
        )
    };
    let text = format!(
        "日均活跃度为本月每日登录用户数占用户总数比例的平均值。{target}。\
         日均活跃度前{TOP_N}位见表{a}；{below_text}"
    );
    let tables = vec![
        table(
            a,
            format!("日均活跃度前{TOP_N}位"),
            &columns,
            top(&scope.units, &ranks, TOP_N)
                .into_iter()
                .map(row)
                .collect(),
        ),
        table(
            b,
            "日均活跃度不达标单位".to_string(),
            &columns,
            below.into_iter().map(row).collect(),
        ),
    ];
    section(3, "日均活跃度", "daily-active", text, tables)
}

fn deep_use(scope: &Scope<'_>, next: &mut impl FnMut() -> usize) -> Section {
    let values: Vec<Option<f64>> = scope.units.iter().map(Unit::deep_index).collect();
    let ranks = competition_ranks(&values);
    let columns = [
        "排名",
        scope.id_header(),
        scope.name_header(),
        "教师数",
        "深度应用次数",
        "深度空间应用指数",
    ];
    let row = |i: usize| {
        let u = &scope.units[i];
        vec![
            Cell::Int(ranks[i]),
            Cell::text(&u.id),
            Cell::text(&u.name),
            Cell::Int(u.teachers),
            Cell::Int(u.deep_actions),
            Cell::num(u.deep_index()),
        ]
    };
    let (a, b) = (next(), next());
    let text = format!(
        "空间深度应用指数为本月教师空间使用、课堂教学、发布学习任务、师生互动和省级应用的次数除以教师数。\
         前{TOP_N}位和后{TOP_N}位{}见表{a}、表{b}。",
        scope.unit_noun()
    );
    let tables = vec![
        table(
            a,
            format!("空间深度应用指数前{TOP_N}位"),
            &columns,
            top(&scope.units, &ranks, TOP_N)
                .into_iter()
                .map(row)
                .collect(),
        ),
        table(
            b,
            format!("空间深度应用指数后{TOP_N}位"),
            &columns,
            bottom(&scope.units, &values, &ranks, TOP_N)
                .into_iter()
                .map(row)
                .collect(),
        ),
    ];
    section(4, "空间深度应用指数", "deep-index", text, tables)
}

fn registration(scope: &Scope<'_>, month: Month, n: usize) -> Section {
    let mut idx: Vec<usize> = (0..scope.units.len()).collect();
    let rate = |i: usize| scope.units[i].registration_rate();
    idx.sort_by(|&a, &b| {
        let ord = match (rate(a), rate(b)) {
            (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        ord.then_with(|| scope.units[a].id.cmp(&scope.units[b].id))
    });
    let rows = idx
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let u = &scope.units[i];
            vec![
                Cell::Int(k as i64 + 1),
                Cell::text(&u.id),
                Cell::text(&u.name),
                Cell::Int(u.registered),
                Cell::Int(u.base),
                Cell::pct(u.registration_rate()),
            ]
        })
        .collect();
    let t = &scope.total;
    let text = format!(
        "截至{}月{}日，{}共注册学生{}人，学生基数{}人，注册率{}（注册率以100%封顶）。各{}注册情况按注册率由高到低见表{n}。",
        month.month,
        month.days(),
        scope.whole,
        t.registered,
        t.base,
        t.registration_rate().map_or("—".to_string(), format_pct),
        scope.unit_noun()
    );
    let columns = [
        "序号",
        scope.id_header(),
        scope.name_header(),
        "注册数",
        "学生基数",
        "注册率",
    ];
    section(
        5,
        "注册情况",
        "registration",
        text,
        vec![table(n, "学生注册情况".to_string(), &columns, rows)],
    )
}

fn teacher_space(scope: &Scope<'_>, next: &mut impl FnMut() -> usize) -> Section {
    let mut idx: Vec<usize> = (0..scope.units.len()).collect();
    let values: Vec<Option<f64>> = scope.units.iter().map(Unit::active_ratio).collect();
    let ranks = competition_ranks(&values);
    idx.sort_by(|&a, &b| {
        ranks[a]
            .cmp(&ranks[b])
            .then_with(|| scope.units[a].id.cmp(&scope.units[b].id))
    });
    let reached = values
        .iter()
        .filter(|v| v.is_some_and(|r| r >= ACTIVE_RATIO_TARGET))
        .count();
    let rows: Vec<Vec<Cell>> = idx
        .iter()
        .map(|&i| {
            let u = &scope.units[i];
            let status = match values[i] {
                Some(r) if r >= ACTIVE_RATIO_TARGET => Cell::text("达标"),
                Some(_) => Cell::text("未达标"),
                None => Cell::Empty,
            };
            vec![
                Cell::Int(ranks[i]),
                Cell::text(&u.id),
                Cell::text(&u.name),
                Cell::Int(u.teachers),
                Cell::Int(u.active_teachers),
                Cell::pct(values[i]),
                status,
            ]
        })
        .collect();
    let mut top_teachers: Vec<&(&TeacherFacts, i64)> = scope
        .teachers
        .iter()
        .filter(|(_, r)| *r >= 1 && *r <= TOP_TEACHERS)
        .collect();
    top_teachers.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.user_id.cmp(&b.0.user_id)));
    let mut teacher_columns = vec!["排名", "姓名", "用户ID", "学校名称"];
    if scope.province {
        teacher_columns.push("县（市、区）");
    }
    teacher_columns.extend(["本月活跃度", "本年累计活跃度", "登录天数"]);
    let teacher_rows = top_teachers
        .iter()
        .map(|(t, r)| {
            let school = t.school_id.as_deref().unwrap_or("");
            let mut row = vec![
                Cell::Int(*r),
                Cell::text(t.name.as_deref().unwrap_or("（未在名册）")),
                Cell::text(&t.user_id),
                Cell::text(*scope.school_names.get(school).unwrap_or(&school)),
            ];
            if scope.province {
                let county = t.county_code.as_deref().unwrap_or("");
                row.push(match scope.county_names.get(county) {
                    Some(n) => Cell::text(*n),
                    None => Cell::Empty,
                });
            }
            row.extend([
                Cell::Int(t.points),
                Cell::Int(t.ytd_points),
                Cell::Int(t.login_days),
            ]);
            row
        })
        .collect();
    let (a, b) = (next(), next());
    let unit = scope.unit_noun();
    let text = format!(
        "教师本月活跃度达到{MONTHLY_TARGET_POINTS}分的空间为活跃空间，活跃空间比例目标为{}。\
         本月{reached}{}{unit}达到目标，各{unit}情况见表{a}；{}教师空间活跃度前{TOP_TEACHERS}名见表{b}。",
        format_pct(ACTIVE_RATIO_TARGET),
        scope.measure_word(),
        scope.whole,
    );
    let tables = vec![
        table(
            a,
            format!("各{unit}教师空间活跃情况"),
            &[
                "排名",
                scope.id_header(),
                scope.name_header(),
                "教师数",
                "活跃空间数",
                "活跃空间比例",
                "目标完成情况",
            ],
            rows,
        ),
        table(
            b,
            format!("教师空间活跃度前{TOP_TEACHERS}名"),
            &teacher_columns,
            teacher_rows,
        ),
    ];
    section(6, "教师空间", "teacher-space", text, tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn competition_ranking_is_1224_with_absent_last() {
        let v = [Some(5.0), Some(7.0), Some(5.0), None, Some(1.0), None];
        assert_eq!(competition_ranks(&v), vec![2, 1, 2, 5, 4, 5]);
        assert_eq!(bottom_ranks(&v), vec![4, 6, 4, 1, 3, 1]);
    }

    #[test]
    fn whole_follows_the_county_suffix() {
        assert_eq!(whole_of("瑞安市"), "全市");
        assert_eq!(whole_of("永嘉县"), "全县");
        assert_eq!(whole_of("鹿城区"), "全区");
        assert_eq!(whole_of("331081"), "全县（市、区）");
    }
}

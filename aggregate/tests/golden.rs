//! Golden test: a small hand-built lake (tests/common/mod.rs, `golden_lake`)
//! and every column of both monthly tables checked against values computed
//! by hand from it.

mod common;

use common::*;

const TEACHER_COLUMNS: [&str; 17] = [
    "user_id",
    "name",
    "school_id",
    "points",
    "points_login",
    "points_profile",
    "points_space_use",
    "points_resource_spread",
    "points_resource_submit",
    "points_teach",
    "points_task",
    "points_interaction",
    "points_app",
    "login_days",
    "ytd_points",
    "meets_monthly_target",
    "rank_in_school",
];

/// Hand-computed `teacher_monthly` of 2026-11, ordered by user_id; the last
/// field is `rank_in_county`.
///
/// * t1: login 1+1 (a correction in a second file), teach 10, resource_submit
///   +3 −3, app 2+2 → 16; ytd adds 10 of March (not 2025-12-31, not
///   2026-12-01); login days 11-02 (two delta rows) and 11-05, not 11-10
///   (logins 0).
/// * t2: exactly 30 → meets the target; login days 11-03, 11-04 at S1 and
///   11-06 at S2.
/// * t3, t4: tie at 20 → both rank 1 in school, 2 in county.
/// * t5: no points this month, 10 in October (ytd); logins 11-06, 11-07.
/// * t6: the other county, 45, logged in every day.
/// * tw: not in the roster, +3 on 11-05 and −3 on 11-25: keys with non-zero
///   sums, so a row with 0 points; school of its last row (11-25, S4).
/// * tx: not in the roster, last day 11-28 has rows at S2 and S1 → S1
///   (smallest school_id).
/// * ty: not in the roster, +3 −3 on the same key → no points → no row.
#[rustfmt::skip]
const TEACHERS: [[&str; 18]; 8] = [
    ["t1", "张一", S1, "16", "2", "0", "0", "0", "0", "10", "0", "0", "4", "2", "26", "False", "2", "4"],
    ["t2", "张二", S1, "30", "0", "5", "0", "0", "0", "20", "0", "5", "0", "3", "30", "True", "1", "1"],
    ["t3", "李三", S2, "20", "1", "0", "2", "2", "0", "10", "5", "0", "0", "1", "21", "False", "1", "2"],
    ["t4", "李四", S2, "20", "0", "0", "0", "0", "0", "20", "0", "0", "0", "0", "20", "False", "1", "2"],
    ["t5", "李五", S2, "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "2", "10", "False", "3", "6"],
    ["t6", "王六", S4, "45", "0", "0", "0", "0", "0", "40", "0", "5", "0", "30", "45", "True", "1", "1"],
    ["tw", "", S4, "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "False", "2", "2"],
    ["tx", "", S1, "12", "1", "0", "0", "1", "0", "10", "0", "0", "0", "1", "12", "False", "3", "5"],
];

#[test]
fn teacher_monthly_matches_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-11");
    let t = read_month(lake, "teacher_monthly", "2026-11");
    let schema = t.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut expected_names = TEACHER_COLUMNS.to_vec();
    expected_names.push("rank_in_county");
    assert_eq!(
        names, expected_names,
        "columns in monthly.md order, no partition column"
    );
    assert_eq!(t.num_rows(), TEACHERS.len());
    for (row, want) in TEACHERS.iter().enumerate() {
        for (c, col) in expected_names.iter().enumerate() {
            assert_eq!(
                cell(&t, col, row),
                want[c],
                "teacher {} column {col}",
                want[0]
            );
        }
    }
}

/// Hand-computed `school_monthly` of 2026-11 (D = 30).
///
/// * S1 (demo): users 4, teachers t1, t2 → points 16 + 30 (tx is not a roster
///   teacher); active user-days 3 (11-02) + 1 + 1 + 1 = 6 → 6/120; logins 7;
///   teachers' deep actions 3 + 4 + 2 = 9 (a student's 5 do not count, t2's
///   deep action at S2 counts at S2); registered s1a, s1b (October) — not
///   t1 (a teacher), not s1c (December).
/// * S2: users 5; user-days 2 (t2 counted here, t5) + 2 + 1 + 1 (tx) = 6 →
///   6/150; logins 2 + 4 + 1 + 1 = 8; deep 1 + 2 + 6 = 9 over 3 teachers.
/// * S3: no teachers (null averages); registered 2 > base 1 → rate 1.
/// * S4: the other county; registered in 2025 counts.
/// * Ranks in county 330102: avg_points 23 > 13.3 > null (last);
///   daily_active_rate 0.05 = 0.05 > 0.04 → 1, 1, 3.
#[test]
fn school_monthly_matches_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-11");
    let s = read_month(lake, "school_monthly", "2026-11");
    let schema = s.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "school_id",
            "name",
            "county_code",
            "county_name",
            "category",
            "teachers",
            "points_total",
            "avg_points",
            "active_teachers",
            "active_ratio",
            "daily_active_rate",
            "target_rate",
            "rate_gap",
            "avg_daily_logins",
            "deep_index",
            "registered_students",
            "student_base",
            "registration_rate",
            "rank_points",
            "rank_active_rate"
        ]
    );
    #[rustfmt::skip]
    let text: [[&str; 8]; 4] = [
        // school_id, name, county_code, county_name, category, teachers, points_total, active_teachers
        [S1, "甲校", "330102", "测试区", "demo", "2", "46", "1"],
        [S2, "乙校", "330102", "测试区", "regular", "3", "40", "0"],
        [S3, "丙校", "330102", "测试区", "regular", "0", "0", "0"],
        [S4, "丁校", "330103", "另一县", "regular", "1", "45", "1"],
    ];
    // registered_students, student_base, rank_points, rank_active_rate
    let ints: [[&str; 4]; 4] = [
        ["2", "4", "1", "1"],
        ["0", "10", "2", "3"],
        ["2", "1", "3", "1"],
        ["1", "5", "1", "1"],
    ];
    // avg_points, active_ratio, daily_active_rate, target_rate, rate_gap,
    // avg_daily_logins, deep_index, registration_rate
    let floats: [[Option<f64>; 8]; 4] = [
        [
            Some(23.0),
            Some(0.5),
            Some(6.0 / 120.0),
            Some(0.2),
            Some(0.05 - 0.2),
            Some(7.0 / 30.0),
            Some(4.5),
            Some(0.5),
        ],
        [
            Some(40.0 / 3.0),
            Some(0.0),
            Some(6.0 / 150.0),
            Some(0.1),
            Some(0.04 - 0.1),
            Some(8.0 / 30.0),
            Some(3.0),
            Some(0.0),
        ],
        [
            None,
            None,
            Some(3.0 / 60.0),
            Some(0.1),
            Some(0.05 - 0.1),
            Some(3.0 / 30.0),
            None,
            Some(1.0),
        ],
        [
            Some(45.0),
            Some(1.0),
            Some(45.0 / 60.0),
            Some(0.1),
            Some(0.75 - 0.1),
            Some(45.0 / 30.0),
            Some(30.0),
            Some(0.2),
        ],
    ];
    assert_eq!(s.num_rows(), 4);
    let text_cols = [
        "school_id",
        "name",
        "county_code",
        "county_name",
        "category",
        "teachers",
        "points_total",
        "active_teachers",
    ];
    let int_cols = [
        "registered_students",
        "student_base",
        "rank_points",
        "rank_active_rate",
    ];
    for r in 0..4 {
        for (c, col) in text_cols.iter().enumerate() {
            assert_eq!(
                cell(&s, col, r),
                text[r][c],
                "school {} column {col}",
                text[r][0]
            );
        }
        for (c, col) in int_cols.iter().enumerate() {
            assert_eq!(
                cell(&s, col, r),
                ints[r][c],
                "school {} column {col}",
                text[r][0]
            );
        }
        for (c, col) in FLOAT_COLUMNS.iter().enumerate() {
            let got = float(&s, col, r);
            match (got, floats[r][c]) {
                (Some(g), Some(w)) => assert!(
                    (g - w).abs() < 1e-12,
                    "school {} {col}: {g} != {w}",
                    text[r][0]
                ),
                (g, w) => assert_eq!(g, w, "school {} {col}", text[r][0]),
            }
        }
    }
}

#[test]
fn column_types_follow_monthly_md() {
    use datafusion::arrow::datatypes::DataType;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-11");
    let t = read_month(lake, "teacher_monthly", "2026-11");
    for f in t.schema().fields() {
        let want = match f.name().as_str() {
            "user_id" | "name" | "school_id" => DataType::Utf8,
            "meets_monthly_target" => DataType::Boolean,
            _ => DataType::Int64,
        };
        assert_eq!(f.data_type(), &want, "teacher_monthly.{}", f.name());
    }
    let s = read_month(lake, "school_monthly", "2026-11");
    for f in s.schema().fields() {
        let want = match f.name().as_str() {
            "school_id" | "name" | "county_code" | "county_name" | "category" => DataType::Utf8,
            "avg_points" | "active_ratio" | "daily_active_rate" | "target_rate" | "rate_gap"
            | "avg_daily_logins" | "deep_index" | "registration_rate" => DataType::Float64,
            _ => DataType::Int64,
        };
        assert_eq!(f.data_type(), &want, "school_monthly.{}", f.name());
    }
}

#[test]
fn reports_are_written_per_county_and_for_the_province() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-11");
    let reports = lake.join("reports/2026-11");
    let mut folders: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    assert_eq!(folders, ["330102", "330103", "province"]);
    for f in &folders {
        let mut files: Vec<String> = std::fs::read_dir(reports.join(f))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "1-overview.csv",
                "2-overall-rank.csv",
                "3-daily-active.csv",
                "4-deep-index.csv",
                "5-registration.csv",
                "6-teacher-space.csv",
                "report.md",
                "report.xlsx"
            ]
        );
    }
    let md = std::fs::read_to_string(reports.join("330102/report.md")).unwrap();
    assert!(
        md.starts_with("# 测试区之江汇教育广场应用情况通报（2026年11月）\n"),
        "{md}"
    );
    // 不达标: S1 (demo) −15.00% is the worst, then S2 −6.00%, S3 −5.00%.
    let below = md.split("日均活跃度不达标单位").nth(1).unwrap();
    let (p1, p2, p3) = (
        below.find("-15.00%").unwrap(),
        below.find("-6.00%").unwrap(),
        below.find("-5.00%").unwrap(),
    );
    assert!(p1 < p2 && p2 < p3, "{below}");
    let csv = std::fs::read_to_string(reports.join("330102/3-daily-active.csv")).unwrap();
    assert!(csv.contains(",甲校,示范校,4,5.00%,20.00%,-15.00%"), "{csv}");
    let province = std::fs::read_to_string(reports.join("province/report.md")).unwrap();
    assert!(province.starts_with("# 全省之江汇教育广场应用情况通报（2026年11月）\n"));
    // Counties ranked by avg points: 另一县 45 > 测试区 86/5 = 17.20.
    let rank = province.split("综合排名前10位").nth(1).unwrap();
    assert!(rank.find("另一县").unwrap() < rank.find("测试区").unwrap());
    assert!(rank.contains("17.20"));
}

/// A non-roster teacher's school is that of their last (day, school) whose
/// rows do not sum to nothing: the rows a move left under another school
/// (the ingest writes what it had written there again, negated, when an
/// earlier event of the day states another school) do not count, though
/// that school's id is the smaller. One flush of every event gives the same.
#[test]
fn a_moved_days_old_school_is_not_a_non_roster_teachers_last() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    write_scores(lake, "2026-11-29", "moved-1", &[("tm", S1, "teach", 5, 1)]);
    write_scores(
        lake,
        "2026-11-29",
        "moved-2",
        &[("tm", S1, "teach", -5, -1), ("tm", S3, "teach", 10, 2)],
    );
    monthly(lake, "2026-11");
    let batch = read_month(lake, "teacher_monthly", "2026-11");
    let row = (0..batch.num_rows())
        .find(|&i| cell(&batch, "user_id", i) == "tm")
        .expect("a row for tm");
    assert_eq!(cell(&batch, "school_id", row), S3);
    assert_eq!(cell(&batch, "points", row), "10");
    // the second implementation reads it alike
    let o = script("reference_monthly.py", &[lake.to_str().unwrap(), "2026-11"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("; 0 differences"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

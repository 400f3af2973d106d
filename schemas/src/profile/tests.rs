use super::*;

#[test]
fn builtin_zhejiang_parses() {
    let p = Profile::builtin("zhejiang-2018").unwrap();
    assert_eq!(p.offset_seconds, 8 * 3600);
    assert_eq!(
        p.rule_ids(),
        [
            "login",
            "profile",
            "space_use",
            "resource_spread",
            "resource_submit",
            "teach",
            "task",
            "interaction",
            "app"
        ]
    );
    assert_eq!(p, Profile::load("zhejiang-2018").unwrap());
}

#[test]
fn every_shipped_profile_parses() {
    let dir =
        std::path::Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
            .join("profiles");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let p = Profile::load(path.to_str().unwrap()).unwrap();
        assert!(!p.rules.is_empty());
    }
}

fn refusal(text: &str) -> String {
    Profile::from_toml(text, "p.toml").unwrap_err().to_string()
}

const HEAD: &str = "name = \"x\"\n";

#[test]
fn refusals_name_the_rule_and_the_parameter() {
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"t\"\nkind = \"per_event\"\naction = \"teach\"\npoints = -5\n"
    ));
    assert!(e.contains("rule \"t\"") && e.contains("\"points\""), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"t\"\nkind = \"per_event\"\naction = \"teach\"\npoints = 5\ncap = 3\n"
    ));
    assert!(e.contains("cap"), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"t\"\nkind = \"teleport\"\naction = \"teach\"\n"
    ));
    assert!(e.contains("teleport"), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"s\"\nkind = \"distinct_pair\"\naction = \"teach\"\npoints = 1\n"
    ));
    assert!(e.contains("rule \"s\"") && e.contains("\"action\""), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"i\"\nkind = \"daily_distinct_tiers\"\naction = \"interaction\"\nfield = \"app_id\"\ntiers = [{{ at_least = 5, points = 3 }}]\n"
    ));
    assert!(e.contains("\"field\"") && e.contains("app_id"), "{e}");
    let e = refusal(&format!(
        "{HEAD}timezone = \"Asia/Shanghai\"\n[[rule]]\nid = \"t\"\nkind = \"per_event\"\naction = \"teach\"\npoints = 5\n"
    ));
    assert!(e.contains("timezone"), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"r\"\nkind = \"per_event\"\naction = \"register\"\npoints = 5\n"
    ));
    assert!(e.contains("scores nobody"), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"t\"\nkind = \"per_event\"\naction = \"teach\"\npoints = 5\n[[rule]]\nid = \"t\"\nkind = \"per_event\"\naction = \"login\"\npoints = 1\n"
    ));
    assert!(e.contains("two rules"), "{e}");
    let e = refusal(&format!(
        "{HEAD}[[rule]]\nid = \"i\"\nkind = \"daily_distinct_tiers\"\naction = \"interaction\"\nfield = \"counterpart_id\"\ntiers = [{{ at_least = 5, points = 3 }}, {{ at_least = 5, points = 4 }}]\n"
    ));
    assert!(
        e.contains("rule \"i\"") && e.contains("two tiers at_least 5"),
        "{e}"
    );
    // points that would overflow a sum (the engine panicked on them)
    for (rule, parameter) in [
        (
            "kind = \"per_event\"\naction = \"teach\"\npoints = 9223372036854775807",
            "\"points\"",
        ),
        (
            "kind = \"review_levels\"\naction = \"resource_review\"\nlevels = { county = 9223372036854775807 }",
            "\"levels\"",
        ),
        (
            "kind = \"daily_distinct_tiers\"\naction = \"interaction\"\nfield = \"counterpart_id\"\ntiers = [{ at_least = 5, points = 1000001 }]",
            "\"tiers\"",
        ),
        (
            "kind = \"daily_streak\"\naction = \"login\"\npoints = 1\nstreak_days = 7\nstreak_points = 2000000",
            "\"streak_points\"",
        ),
    ] {
        let e = refusal(&format!("{HEAD}[[rule]]\nid = \"big\"\n{rule}\n"));
        assert!(
            e.contains("rule \"big\"") && e.contains(parameter) && e.contains("0 to 1000000"),
            "{e}"
        );
    }
    assert!(
        Profile::load("no-such-profile")
            .unwrap_err()
            .to_string()
            .contains("no-such-profile")
    );
    assert!(
        Profile::load("/nonexistent/p.toml")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/p.toml")
    );
}

/// Mistakes of type, kind and presence are named by rule and parameter too,
/// not only those the checks after reading find.
#[test]
fn mistakes_in_reading_name_the_rule_and_the_parameter() {
    let rule = |body: &str| refusal(&format!("{HEAD}\n[[rule]]\nid = \"t\"\n{body}"));
    let cases = [
        (
            "kind = \"per_event\"\naction = \"teach\"\npoints = 5\ndaily_cap = \"two\"\n",
            "rule \"t\": parameter \"daily_cap\" is wrong: invalid type: string \"two\"",
        ),
        (
            "kind = \"threshold_distinct\"\naction = \"task_progress\"\npoints = 1\nthreshold = 3\nwindow_days = -30\n",
            "rule \"t\": parameter \"window_days\" is wrong: invalid value: integer `-30`",
        ),
        (
            "kind = \"per_evnt\"\naction = \"teach\"\npoints = 5\n",
            "rule \"t\": parameter \"kind\" must be one of daily_streak, per_event",
        ),
        (
            "action = \"teach\"\npoints = 5\n",
            "rule \"t\": parameter \"kind\" is missing",
        ),
        (
            "kind = \"per_event\"\naction = \"teach\"\n",
            "rule \"t\": parameter \"points\" is missing (a per_event rule needs it)",
        ),
        (
            "kind = \"daily_distinct_tiers\"\naction = \"interaction\"\nfield = \"counterpart_id\"\ntiers = [{ at_least = 10, points = 5 }, { at_least = 5 }]\n",
            "rule \"t\": parameter \"tiers[1].points\" is missing",
        ),
        (
            "kind = \"per_event\"\naction = \"teach\"\npoints = 5\ncap = 3\n",
            "rule \"t\": parameter \"cap\" is not a parameter of per_event rules",
        ),
        (
            "kind = 7\naction = \"teach\"\npoints = 5\n",
            "rule \"t\": parameter \"kind\" must be a string",
        ),
    ];
    for (body, wanted) in cases {
        let e = rule(body);
        assert!(e.contains(wanted), "{body:?}: {e}");
    }
    // a rule without an id is named by its number and line
    let e = refusal(&format!(
        "{HEAD}\n[[rule]]\nid = \"a\"\nkind = \"per_event\"\naction = \"teach\"\npoints = 5\n\n[[rule]]\nkind = \"per_event\"\naction = \"login\"\n"
    ));
    assert!(e.contains("rule \"#2 (line 9)\""), "{e}");
}

#[test]
fn a_second_profile_needs_no_rust() {
    let text = r#"
name = "other-province"
timezone = "+08:00"
[[rule]]
id = "login"
kind = "per_event"
action = "login"
points = 2
daily_cap = 2
[[rule]]
id = "apps"
kind = "daily_distinct_items"
action = "app_use"
field = "app_id"
points = 1
items = ["a", "b"]
"#;
    let p = Profile::from_toml(text, "inline").unwrap();
    assert_eq!(p.rules.len(), 2);
}

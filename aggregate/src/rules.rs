//! The rule ids that become `points_<rule>` columns.
//!
//! The profile loader lives in `huoyue-schemas` (being written); until it is
//! available this module knows the built-in profile's rule ids and reads the
//! `[[rule]] id` entries of a profile file itself. Replace [`rule_ids`] by
//! `Profile::load(spec)?.rule_ids()` when the loader lands.

use std::path::Path;

use serde::Deserialize;

use crate::error::{AggregateError, Result};

/// The name of the built-in default profile.
pub const DEFAULT_PROFILE: &str = "zhejiang-2018";

/// The rule ids of the built-in profile `zhejiang-2018`, in profile order
/// (scoring.md). This is the one place the list is hard-coded: it stands in
/// for the loaded profile's rule ids.
pub const ZHEJIANG_2018_RULES: [&str; 9] = [
    "login",
    "profile",
    "space_use",
    "resource_spread",
    "resource_submit",
    "teach",
    "task",
    "interaction",
    "app",
];

/// The title of the built-in profile (scoring.md).
pub const ZHEJIANG_2018_TITLE: &str = "之江汇教育广场平台活跃度规则（试行）";

/// What the monthly job needs of a rule profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    /// Rule ids in profile order.
    pub rule_ids: Vec<String>,
    /// The profile's title, if it has one.
    pub title: Option<String>,
}

/// The rule ids of a profile given as `--profile` (a built-in name or a path
/// to a TOML profile), in profile order.
pub fn rule_ids(profile: &str) -> Result<Vec<String>> {
    Ok(self::profile(profile)?.rule_ids)
}

/// Reads a profile given as `--profile` (a built-in name or a TOML file).
pub fn profile(profile: &str) -> Result<ProfileInfo> {
    if profile == DEFAULT_PROFILE {
        return Ok(ProfileInfo {
            rule_ids: ZHEJIANG_2018_RULES.iter().map(|r| r.to_string()).collect(),
            title: Some(ZHEJIANG_2018_TITLE.to_string()),
        });
    }
    let path = Path::new(profile);
    if !path.is_file() {
        return Err(AggregateError::Profile(format!(
            "{profile:?} is neither a built-in profile ({DEFAULT_PROFILE}) nor a file"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| AggregateError::Profile(format!("{profile}: {e}")))?;
    profile_from_toml(&text).map_err(|e| AggregateError::Profile(format!("{profile}: {e}")))
}

/// Parses `--rules a,b,c`.
pub fn parse_rule_list(list: &str) -> Result<Vec<String>> {
    let rules: Vec<String> = list
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    check(&rules).map_err(AggregateError::Profile)?;
    Ok(rules)
}

#[derive(Deserialize)]
struct ProfileRules {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    rule: Vec<RuleId>,
}

#[derive(Deserialize)]
struct RuleId {
    id: String,
}

fn profile_from_toml(text: &str) -> Result<ProfileInfo, String> {
    let parsed: ProfileRules = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    let rule_ids: Vec<String> = parsed.rule.into_iter().map(|r| r.id).collect();
    check(&rule_ids)?;
    Ok(ProfileInfo {
        rule_ids,
        title: parsed.title,
    })
}

fn check(rules: &[String]) -> Result<(), String> {
    if rules.is_empty() {
        return Err("has no rules".into());
    }
    for (i, r) in rules.iter().enumerate() {
        if !r
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("rule id {r:?} is not [a-z0-9_]+"));
        }
        if rules[..i].contains(r) {
            return Err(format!("rule id {r:?} appears twice"));
        }
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_and_file_profiles() {
        assert_eq!(rule_ids("zhejiang-2018").unwrap().len(), 9);
        let text = "name = \"x\"\n[[rule]]\nid = \"login\"\nkind = \"daily_streak\"\n[[rule]]\nid = \"teach\"\n";
        assert_eq!(
            profile_from_toml(text).unwrap().rule_ids,
            vec!["login", "teach"]
        );
        assert!(rule_ids("no-such-profile").is_err());
        assert!(parse_rule_list("login, teach").is_ok());
        assert!(parse_rule_list("login,login").is_err());
        assert!(parse_rule_list("a-b").is_err());
    }
}

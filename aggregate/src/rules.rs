//! The rule ids that become `points_<rule>` columns, from the rule profile
//! (`huoyue_schemas::Profile`: a built-in name or a TOML file).

use huoyue_schemas::Profile;

use crate::error::{AggregateError, Result, one_line};

pub use huoyue_schemas::DEFAULT_PROFILE;

/// What the monthly job needs of a rule profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    /// Rule ids in profile order.
    pub rule_ids: Vec<String>,
    /// The profile's title (cited in the reports).
    pub title: Option<String>,
}

/// Loads `--profile FILE|NAME` (see `Profile::load`).
pub fn profile(spec: &str) -> Result<ProfileInfo> {
    let p = Profile::load(spec).map_err(|e| AggregateError::Profile(one_line(&e.to_string())))?;
    Ok(ProfileInfo {
        rule_ids: p.rule_ids().into_iter().map(str::to_string).collect(),
        title: Some(p.title.clone()).filter(|t| !t.is_empty()),
    })
}

/// The rule ids of a profile, in profile order.
pub fn rule_ids(spec: &str) -> Result<Vec<String>> {
    Ok(profile(spec)?.rule_ids)
}

/// Parses `--rules a,b,c`: ids of `[a-z0-9_]`, no repeats, each a rule of
/// `profile` (a typo would otherwise be a column of zeros).
pub fn parse_rule_list(list: &str, profile: &ProfileInfo) -> Result<Vec<String>> {
    let rules: Vec<String> = list
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if rules.is_empty() {
        return Err(AggregateError::Profile("--rules lists no rule".into()));
    }
    for (i, r) in rules.iter().enumerate() {
        if !r
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(AggregateError::Profile(format!(
                "rule id {r:?} is not [a-z0-9_]+"
            )));
        }
        if rules[..i].contains(r) {
            return Err(AggregateError::Profile(format!(
                "rule id {r:?} appears twice"
            )));
        }
        if !profile.rule_ids.contains(r) {
            return Err(AggregateError::Profile(format!(
                "--rules: {r:?} is not a rule of the profile (its rules: {})",
                profile.rule_ids.join(", ")
            )));
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profile_gives_the_nine_zhejiang_rules_in_order() {
        assert_eq!(
            rule_ids(DEFAULT_PROFILE).unwrap(),
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
        assert!(profile(DEFAULT_PROFILE).unwrap().title.is_some());
        assert!(rule_ids("no-such-profile").is_err());
        assert!(rule_ids("/no/such/profile.toml").is_err());
    }

    #[test]
    fn rule_lists() {
        let p = profile(DEFAULT_PROFILE).unwrap();
        assert_eq!(
            parse_rule_list("login, teach", &p).unwrap(),
            ["login", "teach"]
        );
        assert!(parse_rule_list("login,login", &p).is_err());
        assert!(parse_rule_list("a-b", &p).is_err());
        assert!(parse_rule_list(" , ", &p).is_err());
        let err = parse_rule_list("login,nosuch", &p).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "--rules: \"nosuch\" is not a rule of the profile (its rules: login, profile,"
            ),
            "{err}"
        );
    }
}

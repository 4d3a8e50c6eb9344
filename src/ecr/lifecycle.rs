//! Lifecycle policies: the ECR policy JSON for the configured rules, and a check of the rules
//! against the tags ocibuild itself writes, so a policy that never expires anything ocibuild
//! pushes is caught before storage grows without bound. Pure: no SDK calls.

use crate::config::{LifecycleRule, TagStatus};
use serde_json::{json, Value};

/// The ECR lifecycle policy document for `rules`.
pub fn policy_json(rules: &[LifecycleRule]) -> Value {
    let mut sorted: Vec<&LifecycleRule> = rules.iter().collect();
    sorted.sort_by_key(|r| r.priority);
    let rules: Vec<Value> = sorted
        .into_iter()
        .map(|r| {
            let mut selection = json!({
                "tagStatus": match r.tag_status {
                    TagStatus::Tagged => "tagged",
                    TagStatus::Untagged => "untagged",
                    TagStatus::Any => "any",
                },
            });
            if !r.tag_prefixes.is_empty() {
                selection["tagPrefixList"] = json!(r.tag_prefixes);
            }
            if !r.tag_patterns.is_empty() {
                selection["tagPatternList"] = json!(r.tag_patterns);
            }
            match (r.keep_last, r.expire_after_days) {
                (Some(n), _) => {
                    selection["countType"] = json!("imageCountMoreThan");
                    selection["countNumber"] = json!(n);
                }
                (None, Some(d)) => {
                    selection["countType"] = json!("sinceImagePushed");
                    selection["countUnit"] = json!("days");
                    selection["countNumber"] = json!(d);
                }
                (None, None) => {}
            }
            json!({
                "rulePriority": r.priority,
                "description": r.description,
                "selection": selection,
                "action": {"type": "expire"},
            })
        })
        .collect();
    json!({ "rules": rules })
}

/// An example of each kind of tag ocibuild writes, named as in `--tag`.
fn examples(tag_policy: &[String]) -> Vec<(String, String)> {
    tag_policy
        .iter()
        .map(|t| {
            let example = match t.as_str() {
                "sha" => "3f9a1c2".to_string(),
                "timestamp" => "20260101-120000".to_string(),
                "pr" => "pr-123".to_string(),
                "release" => "v1.2.3".to_string(),
                other => other.to_string(),
            };
            (t.clone(), example)
        })
        .collect()
}

/// `*` and `?` wildcard match, as ECR's tagPatternList uses. Linear in practice: on a
/// mismatch only the last `*` is retried one byte further (a recursive matcher takes
/// exponential time on patterns such as `*a*a*a*a*b`).
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The position after the last `*` seen, and where in the text it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((after, from)) => {
                    pi = after;
                    ti = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

fn rule_matches(rule: &LifecycleRule, tag: &str) -> bool {
    match rule.tag_status {
        TagStatus::Any => true,
        TagStatus::Untagged => false,
        TagStatus::Tagged => {
            rule.tag_prefixes
                .iter()
                .any(|p| tag.starts_with(p.as_str()))
                || rule.tag_patterns.iter().any(|p| wildcard(p, tag))
        }
    }
}

/// Warnings about `rules` for images tagged by `tag_policy` (e.g. `sha,timestamp,latest`):
/// which kinds of tag no rule ever expires, with a rule that fixes it.
pub fn check_against_tags(rules: &[LifecycleRule], tag_policy: &[String]) -> Vec<String> {
    let ex = examples(tag_policy);
    // `latest` moves to the newest image: the older ones lose it, so it never pins storage.
    let unmatched: Vec<&(String, String)> = ex
        .iter()
        .filter(|(kind, example)| {
            kind != "latest" && !rules.iter().any(|r| rule_matches(r, example))
        })
        .collect();
    let mut out = Vec::new();
    for r in rules.iter().filter(|r| r.tag_status == TagStatus::Tagged) {
        if !ex.iter().any(|(_, e)| rule_matches(r, e)) {
            out.push(format!(
                "lifecycle rule {} ({}) matches none of the tags ocibuild writes ({}): it never expires anything pushed with them",
                r.priority,
                r.description,
                tag_policy.join(", ")
            ));
        }
    }
    if !unmatched.is_empty() {
        let kinds: Vec<&str> = unmatched.iter().map(|(k, _)| k.as_str()).collect();
        let next = rules.iter().map(|r| r.priority).max().unwrap_or(0) + 1;
        out.push(format!(
            "no lifecycle rule matches images tagged {}: they are kept forever and storage grows without bound. \
             Add a rule that keeps the last N images whatever their tags, e.g.\n\
             [[repositories.lifecycle]]\npriority = {next}\ndescription = \"keep the last 50 images\"\ntag_status = \"any\"\nkeep_last = 50",
            kinds.join(" and ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_lifecycle;

    fn tags(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn default_policy_document() {
        let v = policy_json(&default_lifecycle());
        assert_eq!(
            v,
            json!({"rules": [
                {"rulePriority": 1, "description": "keep the last 10 v-tagged (release) images",
                 "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 10},
                 "action": {"type": "expire"}},
                {"rulePriority": 2, "description": "expire untagged images after 7 days",
                 "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
                 "action": {"type": "expire"}}
            ]})
        );
    }

    #[test]
    fn default_rules_against_the_sha_timestamp_policy_warn_with_a_fix() {
        let w = check_against_tags(&default_lifecycle(), &tags("sha,timestamp,latest"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("rule 1") && w[0].contains("matches none"),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("sha and timestamp") && w[1].contains("grows without bound"),
            "{}",
            w[1]
        );
        assert!(
            w[1].contains("priority = 3") && w[1].contains("tag_status = \"any\""),
            "{}",
            w[1]
        );
        // Following the advice silences the warning about unbounded growth.
        let mut fixed = default_lifecycle();
        fixed.push(crate::config::LifecycleRule {
            priority: 3,
            description: "keep the last 50 images".into(),
            tag_status: TagStatus::Any,
            tag_prefixes: vec![],
            tag_patterns: vec![],
            keep_last: Some(50),
            expire_after_days: None,
        });
        let w = check_against_tags(&fixed, &tags("sha,timestamp,latest"));
        assert!(
            w.iter().all(|m| !m.contains("grows without bound")),
            "{w:?}"
        );
        // A release policy that writes v-tags is fine with the defaults.
        assert!(check_against_tags(&default_lifecycle(), &tags("v1.2.3")).is_empty());
    }

    #[test]
    fn wildcard_agrees_with_the_definition() {
        /// The definition, exponential but exact, for short inputs.
        fn naive(p: &[u8], t: &[u8]) -> bool {
            match (p.first(), t.first()) {
                (None, None) => true,
                (Some(b'*'), _) => naive(&p[1..], t) || (!t.is_empty() && naive(p, &t[1..])),
                (Some(b'?'), Some(_)) => naive(&p[1..], &t[1..]),
                (Some(a), Some(b)) if a == b => naive(&p[1..], &t[1..]),
                _ => false,
            }
        }
        proptest::proptest!(|(p in "[ab*?]{0,8}", t in "[ab]{0,10}")| {
            proptest::prop_assert_eq!(wildcard(&p, &t), naive(p.as_bytes(), t.as_bytes()));
        });
    }

    #[test]
    fn wildcards() {
        // Pathological for a backtracking matcher: must answer at once.
        let many = "*a".repeat(40) + "b";
        assert!(!wildcard(&many, &"a".repeat(128)));
        assert!(wildcard(&many, &("a".repeat(60) + "b")));
        assert!(wildcard("a*", "a"));
        assert!(!wildcard("a?", "a"));
        assert!(wildcard("*?", "x"));
        assert!(!wildcard("", "x"));
        assert!(wildcard("", ""));
        assert!(wildcard("pr-*", "pr-12"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("2026????-*", "20260101-120000"));
        assert!(!wildcard("v*", "3f9a1c2"));
    }

    #[test]
    fn release_tags_start_with_v_so_the_default_rule_covers_them() {
        let w = check_against_tags(
            &default_lifecycle(),
            &tags("sha,timestamp,latest,pr,release"),
        );
        assert!(!w.iter().any(|w| w.contains("rule 1")), "{w:?}");
        assert!(
            w.iter().any(|w| w.contains("sha and timestamp and pr")),
            "{w:?}"
        );
        let w = check_against_tags(&default_lifecycle(), &tags("release,latest"));
        assert!(w.is_empty(), "{w:?}");
    }
}

//! The lifecycle check of `repos ensure` (and alone, `repos ensure --check-lifecycle`): before
//! a repository that holds images gets the config's lifecycle policy, ECR's preview of that
//! policy must not expire anything a kept image needs (the platform manifests of a tagged
//! index that stays, the artifacts and signatures of an image that stays).

use super::{access, AppError, Event, Events};
use crate::config::{Config, LifecycleRule, TagStatus};
use crate::ecr::images;
use crate::ecr::preview::{self, AtRisk};
use crate::ecr::{lifecycle, Ecr, EcrError};
use serde::Serialize;
use std::time::Duration;

/// How long a preview may take.
const WAIT: Duration = Duration::from_secs(180);

/// One repository's check.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleCheck {
    /// Repository name.
    pub repository: String,
    /// Images it holds (indexes, platform manifests and artifacts, each counted).
    pub images: usize,
    /// How many of them the policy would expire.
    pub expiring: usize,
    /// Those a kept image needs.
    pub at_risk: Vec<AtRisk>,
}

/// Preview `policy_text` on `repository` (nothing to preview when it holds no image).
pub async fn check(
    ecr: &Ecr,
    repository: &str,
    policy_text: &str,
) -> Result<LifecycleCheck, EcrError> {
    let all = images::describe_all(ecr, repository).await?;
    let mut out = LifecycleCheck {
        repository: repository.to_string(),
        images: all.len(),
        expiring: 0,
        at_risk: vec![],
    };
    if all.is_empty() {
        return Ok(out);
    }
    let indexes: Vec<String> = all
        .iter()
        .filter(|i| i.is_index() && !i.tags.is_empty())
        .map(|i| i.digest.clone())
        .collect();
    let children = images::index_children(ecr, repository, &indexes).await?;
    if let Some(missing) = indexes.iter().find(|d| !children.contains_key(*d)) {
        return Err(EcrError::new(
            "BatchGetImage",
            format!("{repository}: the tagged index {missing} cannot be read, so which manifests it needs is unknown; check the repository (ecr:BatchGetImage) and try again"),
        ));
    }
    let expiring = preview::preview(ecr, repository, policy_text, WAIT).await?;
    out.expiring = expiring.len();
    out.at_risk = preview::at_risk(&all, &children, &expiring);
    Ok(out)
}

/// Check each of `repositories` against the config's policy. `strict`: a preview that cannot
/// run is an error (else a warning). Fails, naming every image at risk, when any is.
pub async fn check_all(
    ecr: &Ecr,
    config: &Config,
    repositories: &[String],
    strict: bool,
    events: Events<'_>,
) -> Result<Vec<LifecycleCheck>, AppError> {
    let policy = lifecycle::policy_json(&config.repositories.lifecycle).to_string();
    let runs = repositories.iter().map(|r| check(ecr, r, &policy));
    let mut checks = Vec::new();
    for (r, result) in repositories
        .iter()
        .zip(futures_util::future::join_all(runs).await)
    {
        match result {
            Ok(c) => {
                if c.images > 0 && c.at_risk.is_empty() {
                    events(Event::Note(format!(
                        "{r}: the lifecycle policy would expire {} of {} images, none that a kept image needs",
                        c.expiring, c.images
                    )));
                }
                checks.push(c);
            }
            Err(e) if strict => {
                return Err(AppError::Refused(format!(
                    "{r}: the lifecycle check could not run: {e}"
                )))
            }
            Err(e) => events(Event::Warning(format!(
                "{r}: the lifecycle preview could not run, so whether the policy spares images in use is unchecked: {e}"
            ))),
        }
    }
    let risky: Vec<&LifecycleCheck> = checks.iter().filter(|c| !c.at_risk.is_empty()).collect();
    if risky.is_empty() {
        return Ok(checks);
    }
    Err(AppError::Refused(refusal(
        &risky,
        &config.repositories.lifecycle,
    )))
}

/// The error naming every image at risk, then the rules that would expire them and what to
/// change in each.
fn refusal(risky: &[&LifecycleCheck], rules: &[LifecycleRule]) -> String {
    let mut text = String::from(
        "the lifecycle policy would expire images that kept images need (nothing was changed):",
    );
    let mut priorities = std::collections::BTreeSet::new();
    for c in risky {
        for a in &c.at_risk {
            let rule = a.rule.map(|p| format!(", by rule {p}")).unwrap_or_default();
            text.push_str(&format!(
                "\n  {}: {} ({}{rule})",
                c.repository, a.digest, a.needed_by
            ));
            priorities.extend(a.rule);
        }
    }
    for p in priorities {
        let Some(r) = rules.iter().find(|r| i64::from(r.priority) == i64::from(p)) else {
            continue;
        };
        let fix = match (r.tag_status, r.keep_last) {
            (TagStatus::Untagged, _) => "platform manifests and attachments are untagged, so it takes them for unused: drop this rule and expire by tags instead",
            (TagStatus::Any, Some(_)) => "it counts platform manifests and attachments as images: raise keep_last well above the images you keep (each is several manifests), or select by tags (tag_status = \"tagged\")",
            (TagStatus::Any, None) => "it ages platform manifests and attachments with everything else: select by tags (tag_status = \"tagged\") instead",
            (TagStatus::Tagged, _) => "it expires signature or referrers tags of kept images: narrow its tag_prefixes / tag_patterns to image tags",
        };
        let status = match r.tag_status {
            TagStatus::Tagged => "tagged",
            TagStatus::Untagged => "untagged",
            TagStatus::Any => "any",
        };
        text.push_str(&format!(
            "\nrule {} ({:?}, tag_status = \"{status}\"): {fix}",
            r.priority, r.description
        ));
    }
    text.push_str("\nSee the README: \"Lifecycle rules and multi-platform images\".");
    text
}

/// `repos ensure --check-lifecycle`: only the check, strictly, on the requested services'
/// repositories that exist.
pub fn check_only(
    req: &super::repos::EnsureRequest,
    events: Events<'_>,
) -> Result<Vec<LifecycleCheck>, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    let (registry, repositories) = super::repos::repositories(&config, req)?;
    let runtime = super::runtime()?;
    let ecr = runtime.block_on(access::connect_ecr(&registry))?;
    runtime.block_on(check_all(&ecr, &config, &repositories, true, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_each_image_and_fits_the_fix_to_the_rule() {
        let check = LifecycleCheck {
            repository: "shop/cart".into(),
            images: 5,
            expiring: 2,
            at_risk: vec![
                AtRisk {
                    digest: "sha256:aa".into(),
                    needed_by: "linux/arm64 manifest of index sha256:ii (tags v1)".into(),
                    rule: Some(2),
                },
                AtRisk {
                    digest: "sha256:bb".into(),
                    needed_by: "signatures of sha256:ii, which is kept".into(),
                    rule: Some(3),
                },
            ],
        };
        let mut rules = crate::config::default_lifecycle();
        rules.push(LifecycleRule {
            priority: 3,
            description: "keep 50".into(),
            tag_status: TagStatus::Any,
            tag_prefixes: vec![],
            tag_patterns: vec![],
            keep_last: Some(50),
            expire_after_days: None,
        });
        let text = refusal(&[&check], &rules);
        assert!(text.contains("shop/cart: sha256:aa (linux/arm64 manifest of index sha256:ii (tags v1), by rule 2)"), "{text}");
        assert!(text.contains("shop/cart: sha256:bb"), "{text}");
        assert!(
            text.contains(
                "tag_status = \"untagged\"): platform manifests and attachments are untagged"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rule 3 (\"keep 50\", tag_status = \"any\"): it counts platform manifests"
            ),
            "{text}"
        );
        assert!(!text.contains("rule 1 "), "only the rules involved: {text}");
    }
}

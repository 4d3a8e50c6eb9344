//! Does the lifecycle policy eat images still in use? ECR's lifecycle policy preview
//! (`StartLifecyclePolicyPreview`, then `GetLifecyclePolicyPreview` until it completes, every
//! page) says which images a policy would expire; [`at_risk`] (pure) names those that a kept
//! image still needs: the platform manifests of a tagged index that stays, and the artifacts
//! (SBOMs, provenance, signatures, referrers indexes) of an image that stays. No AWS document
//! settles whether the `untagged` rule spares an index's children, so ocibuild asks the
//! preview instead of assuming either way.

use super::images::EcrImage;
use super::{Ecr, EcrError};
use aws_sdk_ecr::types::{ImageActionType, LifecyclePolicyPreviewStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Results per `GetLifecyclePolicyPreview` page (ECR's maximum).
const PAGE: i32 = 100;

/// An image the preview would expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// Its digest.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The priority of the rule that expires it.
    pub rule: Option<i32>,
}

/// An image in use that the policy would expire, and why it is in use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AtRisk {
    /// Its digest.
    pub digest: String,
    /// What needs it: `linux/arm64 manifest of index sha256:... (tags v1)`, ...
    pub needed_by: String,
    /// The priority of the rule that would expire it.
    pub rule: Option<i32>,
}

/// The images `policy_text` would expire in `repository`, from ECR's preview; waits up to
/// `wait` for it to complete. A preview already running (one per repository at a time) is
/// waited for; if it was of another policy, ours is started after it, once.
pub async fn preview(
    ecr: &Ecr,
    repository: &str,
    policy_text: &str,
    wait: Duration,
) -> Result<Vec<Expiring>, EcrError> {
    let ours: Option<serde_json::Value> = serde_json::from_str(policy_text).ok();
    let mut others = start(ecr, repository, policy_text).await?;
    let mut restarted = false;
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(500);
    loop {
        match read_preview(ecr, repository).await? {
            Some((found, text)) => {
                let theirs = text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                let same = match theirs {
                    Some(t) => Some(t) == ours,
                    None => !others,
                };
                if same {
                    return Ok(found);
                }
                if restarted {
                    return Err(EcrError::new(
                        "GetLifecyclePolicyPreview",
                        format!("{repository}: another lifecycle preview (of another policy) keeps running; try again later"),
                    ));
                }
                others = start(ecr, repository, policy_text).await?;
                restarted = true;
            }
            None if Instant::now() + delay > deadline => {
                return Err(EcrError::new(
                    "GetLifecyclePolicyPreview",
                    format!("the preview of {repository} did not complete within {wait:?}: run `ocibuild repos ensure --check-lifecycle` again later"),
                ))
            }
            None => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Start the preview of `policy_text`; `true` when another one was running already.
async fn start(ecr: &Ecr, repository: &str, policy_text: &str) -> Result<bool, EcrError> {
    let started = ecr
        .sdk()
        .start_lifecycle_policy_preview()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(repository)
        .lifecycle_policy_text(policy_text)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("StartLifecyclePolicyPreview", e));
    match started {
        Ok(_) => Ok(false),
        Err(e) if e.code.as_deref() == Some("LifecyclePolicyPreviewInProgressException") => {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Every page of the preview once it is complete, with the policy it previewed; `None` while
/// it runs.
async fn read_preview(
    ecr: &Ecr,
    repository: &str,
) -> Result<Option<(Vec<Expiring>, Option<String>)>, EcrError> {
    let mut out = Vec::new();
    let mut text: Option<String> = None;
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = ecr
            .sdk()
            .get_lifecycle_policy_preview()
            .set_registry_id(ecr.registry_id.clone())
            .repository_name(repository)
            .max_results(PAGE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| EcrError::from_sdk("GetLifecyclePolicyPreview", e))?;
        match page.status() {
            Some(LifecyclePolicyPreviewStatus::Complete) => {
                text = text.or_else(|| page.lifecycle_policy_text().map(str::to_string));
            }
            Some(LifecyclePolicyPreviewStatus::InProgress) | None => return Ok(None),
            Some(other) => {
                return Err(EcrError::new(
                    "GetLifecyclePolicyPreview",
                    format!("the preview of {repository} ended {}", other.as_str()),
                ))
            }
        }
        out.extend(
            page.preview_results()
                .iter()
                .filter(|r| {
                    r.action()
                        .and_then(|a| a.r#type())
                        .is_some_and(|t| *t == ImageActionType::Expire)
                })
                .filter_map(|r| {
                    Some(Expiring {
                        digest: r.image_digest()?.to_string(),
                        tags: r.image_tags().to_vec(),
                        rule: r.applied_rule_priority(),
                    })
                }),
        );
        if out.len() > super::images::MAX_IMAGES {
            return Err(EcrError::new(
                "GetLifecyclePolicyPreview",
                format!("the preview of {repository} lists too many images"),
            ));
        }
        match super::images::next(
            page.next_token(),
            &mut seen,
            "GetLifecyclePolicyPreview",
            repository,
        )? {
            Some(t) => token = Some(t),
            None => return Ok(Some((out, text))),
        }
    }
}

/// The subject a tag of the referrers schema or of cosign's signatures names.
fn tag_subject(tag: &str) -> Option<String> {
    crate::inventory::schema_tag(tag).map(|(s, _)| s)
}

/// What an image is about when it is an attachment: its `subject`, or the subject its
/// referrers or signature tag names.
fn subject_of(image: &EcrImage) -> Option<String> {
    image
        .subject
        .clone()
        .or_else(|| image.tags.iter().find_map(|t| tag_subject(t)))
}

/// The images of `images` that `expiring` would remove although a kept image needs them.
/// `children`: the platform manifests of each tagged index (digest → (child digest,
/// platform)). A kept image is a tagged image (not an attachment) the policy keeps.
pub fn at_risk(
    images: &[EcrImage],
    children: &BTreeMap<String, Vec<(String, String)>>,
    expiring: &[Expiring],
) -> Vec<AtRisk> {
    let gone: BTreeMap<&str, &Expiring> = expiring.iter().map(|e| (e.digest.as_str(), e)).collect();
    let kept: Vec<&EcrImage> = images
        .iter()
        .filter(|i| !i.tags.is_empty() && subject_of(i).is_none())
        .filter(|i| !gone.contains_key(i.digest.as_str()))
        .collect();
    // Who needs each digest in use: a kept image itself, or its index.
    let mut needed: BTreeMap<String, String> = BTreeMap::new();
    let mut in_use: BTreeSet<String> = BTreeSet::new();
    for k in &kept {
        in_use.insert(k.digest.clone());
        for (child, platform) in children.get(&k.digest).into_iter().flatten() {
            in_use.insert(child.clone());
            needed.insert(
                child.clone(),
                format!(
                    "{platform} manifest of index {} (tags {})",
                    k.digest,
                    k.tags.join(", ")
                ),
            );
        }
    }
    let mut out = Vec::new();
    for i in images {
        let Some(e) = gone.get(i.digest.as_str()) else {
            continue;
        };
        let why = match (needed.get(&i.digest), subject_of(i)) {
            (Some(n), _) => n.clone(),
            (None, Some(s)) if in_use.contains(&s) => {
                let what = match (
                    &i.artifact_type,
                    i.tags.iter().find(|t| tag_subject(t).is_some()),
                ) {
                    (_, Some(t)) if t.ends_with(".sig") => "signatures".to_string(),
                    (_, Some(_)) => "referrers index".to_string(),
                    (Some(t), None) => format!("{t} artifact"),
                    (None, None) => "artifact".to_string(),
                };
                format!("{what} of {s}, which is kept")
            }
            _ => continue,
        };
        out.push(AtRisk {
            digest: i.digest.clone(),
            needed_by: why,
            rule: e.rule,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(digest: &str, tags: &[&str]) -> EcrImage {
        EcrImage {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..EcrImage::default()
        }
    }

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn children_and_attachments_of_kept_images_are_at_risk_orphans_are_not() {
        let (index, old) = (
            format!("sha256:{}", hex('a')),
            format!("sha256:{}", hex('b')),
        );
        let images = vec![
            img(&index, &["v1"]),
            img("sha256:amd", &[]),
            img("sha256:arm", &[]),
            EcrImage {
                subject: Some("sha256:arm".into()),
                artifact_type: Some("application/spdx+json".into()),
                ..img("sha256:sbom", &[])
            },
            img("sha256:sig", &[&format!("sha256-{}.sig", hex('a'))]),
            img(&old, &["v0"]),
            img("sha256:oldchild", &[]),
            img("sha256:orphan", &[]),
        ];
        let children = BTreeMap::from([
            (
                index.clone(),
                vec![
                    ("sha256:amd".to_string(), "linux/amd64".to_string()),
                    ("sha256:arm".to_string(), "linux/arm64".to_string()),
                ],
            ),
            (
                old.clone(),
                vec![("sha256:oldchild".into(), "linux/amd64".into())],
            ),
        ]);
        let expire = |d: &str| Expiring {
            digest: d.into(),
            tags: vec![],
            rule: Some(2),
        };
        // v0 expires with its child; the orphan goes; v1 stays but loses arm64, its SBOM and
        // its signatures.
        let expiring: Vec<Expiring> = [
            &old[..],
            "sha256:oldchild",
            "sha256:orphan",
            "sha256:arm",
            "sha256:sbom",
            "sha256:sig",
        ]
        .iter()
        .map(|d| expire(d))
        .collect();
        let risk = at_risk(&images, &children, &expiring);
        let got: Vec<(&str, &str)> = risk
            .iter()
            .map(|r| (r.digest.as_str(), r.needed_by.as_str()))
            .collect();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(got[0].0, "sha256:arm");
        assert!(
            got[0]
                .1
                .starts_with("linux/arm64 manifest of index sha256:aaaa"),
            "{got:?}"
        );
        assert!(got[0].1.ends_with("(tags v1)"));
        assert_eq!(
            got[1],
            (
                "sha256:sbom",
                "application/spdx+json artifact of sha256:arm, which is kept"
            )
        );
        assert_eq!(got[2].0, "sha256:sig");
        assert!(got[2].1.starts_with("signatures of sha256:aaaa"));
        assert!(risk.iter().all(|r| r.rule == Some(2)));
        // Nothing kept needs what the policy expires: no risk.
        let safe = at_risk(&images, &children, &expiring[..3]);
        assert!(safe.is_empty(), "{safe:?}");
    }
}

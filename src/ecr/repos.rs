//! `ocibuild repos ensure`: make every service's ECR repository exist and match the config
//! (scan on push, encryption, tag mutability, resource tags, lifecycle policy), idempotently.
//! A plan is computed first (read-only calls), then applied; settings that cannot change after
//! creation (encryption) are reported as drift, never silently ignored.

use super::lifecycle::policy_json;
use super::{Ecr, EcrError};
use crate::config::{Encryption, RepositorySettings, TagMutability};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType, Repository, Tag,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Create the repository with every setting.
    Create,
    /// Turn scan on push on or off.
    ScanOnPush {
        /// Wanted value.
        to: bool,
    },
    /// Set tag mutability.
    TagMutability {
        /// Current value.
        from: String,
        /// Wanted value.
        to: String,
    },
    /// Add or update resource tags.
    Tags {
        /// Tags to set.
        set: BTreeMap<String, String>,
    },
    /// Put the lifecycle policy.
    Lifecycle {
        /// Whether one existed (and differed).
        replace: bool,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Create => f.write_str("create the repository"),
            Change::ScanOnPush { to } => write!(f, "set scan on push to {to}"),
            Change::TagMutability { from, to } => write!(f, "set tag mutability {from} -> {to}"),
            Change::Tags { set } => write!(
                f,
                "set tags {}",
                set.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Change::Lifecycle { replace: false } => f.write_str("put the lifecycle policy"),
            Change::Lifecycle { replace: true } => f.write_str("replace the lifecycle policy"),
        }
    }
}

/// What `ensure` will do (or did) for one repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoPlan {
    /// Repository name.
    pub repository: String,
    /// Its URI (`<account>.dkr.ecr.<region>.amazonaws.com/<name>`, as ECR says it); `None`
    /// until the repository exists (a dry run of one to create).
    pub uri: Option<String>,
    /// Its ARN, as ECR says it; `None` until the repository exists.
    pub arn: Option<String>,
    /// Changes to make, in order.
    pub changes: Vec<Change>,
    /// Differences that cannot be changed in place.
    pub drift: Vec<String>,
}

fn mutability(m: TagMutability) -> ImageTagMutability {
    ImageTagMutability::from(m.as_str())
}

fn exclusion_filters(
    settings: &RepositorySettings,
) -> Result<Vec<ImageTagMutabilityExclusionFilter>, EcrError> {
    settings
        .tag_mutability_exclusions
        .iter()
        .map(|f| {
            ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(f)
                .build()
                .map_err(|e| EcrError::new("configuration", e.to_string()))
        })
        .collect()
}

/// Compute the plan for `repositories` (read-only calls only).
pub async fn plan(
    ecr: &Ecr,
    repositories: &[String],
    settings: &RepositorySettings,
) -> Result<Vec<RepoPlan>, EcrError> {
    let checks = repositories.iter().map(|r| plan_one(ecr, r, settings));
    futures_util::future::try_join_all(checks).await
}

async fn plan_one(
    ecr: &Ecr,
    name: &str,
    settings: &RepositorySettings,
) -> Result<RepoPlan, EcrError> {
    let mut plan = RepoPlan {
        repository: name.to_string(),
        uri: None,
        arn: None,
        changes: vec![],
        drift: vec![],
    };
    let Some(repo) = describe_repository(ecr, name).await? else {
        plan.changes.push(Change::Create);
        plan.changes.push(Change::Lifecycle { replace: false });
        return Ok(plan);
    };
    plan.uri = repo.repository_uri().map(str::to_string);
    plan.arn = repo.repository_arn().map(str::to_string);
    plan.changes.extend(setting_changes(&repo, settings));
    plan.drift
        .extend(encryption_drift(&repo, &settings.encryption));
    if !settings.tags.is_empty() {
        let arn = repo.repository_arn().unwrap_or_default().to_string();
        let have = resource_tags(ecr, &arn).await?;
        let set = tags_to_set(&have, &settings.tags);
        if !set.is_empty() {
            plan.changes.push(Change::Tags { set });
        }
    }
    plan.changes
        .extend(lifecycle_change(ecr, name, settings).await?);
    Ok(plan)
}

/// The repository `name`, or `None` if there is none.
async fn describe_repository(ecr: &Ecr, name: &str) -> Result<Option<Repository>, EcrError> {
    let found = ecr
        .sdk()
        .describe_repositories()
        .set_registry_id(ecr.registry_id.clone())
        .repository_names(name)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("DescribeRepositories", e));
    match found {
        Ok(out) => Ok(out.repositories().first().cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The scan-on-push and tag-mutability changes `repo` needs to match `settings`.
fn setting_changes(repo: &Repository, settings: &RepositorySettings) -> Vec<Change> {
    let mut changes = vec![];
    let scan = repo
        .image_scanning_configuration()
        .map(|c| c.scan_on_push())
        .unwrap_or(false);
    if scan != settings.scan_on_push {
        changes.push(Change::ScanOnPush {
            to: settings.scan_on_push,
        });
    }
    let current = repo
        .image_tag_mutability()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "MUTABLE".into());
    if current != settings.tag_mutability.as_str() {
        changes.push(Change::TagMutability {
            from: current,
            to: settings.tag_mutability.as_str().into(),
        });
    }
    changes
}

/// How the encryption of `repo` differs from `want`, which cannot be changed in place; a KMS
/// key is compared only when the config names one.
fn encryption_drift(repo: &Repository, want: &Encryption) -> Option<String> {
    let enc = repo.encryption_configuration();
    let (have_type, have_key) = (
        enc.map(|e| e.encryption_type().as_str().to_string())
            .unwrap_or_else(|| "AES256".into()),
        enc.and_then(|e| e.kms_key().map(str::to_string)),
    );
    let (want_type, want_key) = match want {
        Encryption::Aes256 => ("AES256", None),
        Encryption::Kms(k) => ("KMS", k.clone()),
    };
    if have_type != want_type || (want_key.is_some() && have_key != want_key) {
        return Some(format!(
            "encryption is {have_type}{} but the config asks for {want_type}{}: encryption is fixed when a repository is created; \
             recreate the repository (after copying its images) or change the config",
            have_key.map(|k| format!(" ({k})")).unwrap_or_default(),
            want_key.map(|k| format!(" ({k})")).unwrap_or_default(),
        ));
    }
    None
}

/// The resource tags of `arn`.
async fn resource_tags(ecr: &Ecr, arn: &str) -> Result<BTreeMap<String, String>, EcrError> {
    Ok(ecr
        .sdk()
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("ListTagsForResource", e))?
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// The tags of `want` that `have` lacks or holds with another value (tags not in `want` are
/// left alone).
fn tags_to_set(
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The lifecycle change `name` needs: none when its policy already equals the configured one
/// (compared as JSON).
async fn lifecycle_change(
    ecr: &Ecr,
    name: &str,
    settings: &RepositorySettings,
) -> Result<Option<Change>, EcrError> {
    let policy = ecr
        .sdk()
        .get_lifecycle_policy()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(name)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("GetLifecyclePolicy", e));
    let want = policy_json(&settings.lifecycle);
    match policy {
        Ok(p) => {
            let have: Option<serde_json::Value> = p
                .lifecycle_policy_text()
                .and_then(|t| serde_json::from_str(t).ok());
            Ok((have.as_ref() != Some(&want)).then_some(Change::Lifecycle { replace: true }))
        }
        Err(e) if e.is_not_found() => Ok(Some(Change::Lifecycle { replace: false })),
        Err(e) => Err(e),
    }
}

/// Carry out `plans`.
pub async fn apply(
    ecr: &Ecr,
    plans: &mut [RepoPlan],
    settings: &RepositorySettings,
) -> Result<(), EcrError> {
    for p in plans {
        for c in &p.changes {
            apply_one(ecr, &p.repository, c, settings).await?;
        }
        if p.arn.is_none() {
            // Created just now: its URI and ARN as ECR gives them.
            if let Some(repo) = describe_repository(ecr, &p.repository).await? {
                p.uri = repo.repository_uri().map(str::to_string);
                p.arn = repo.repository_arn().map(str::to_string);
            }
        }
    }
    Ok(())
}

async fn apply_one(
    ecr: &Ecr,
    name: &str,
    change: &Change,
    settings: &RepositorySettings,
) -> Result<(), EcrError> {
    match change {
        Change::Create => create_repository(ecr, name, settings).await,
        Change::ScanOnPush { to } => put_scan_on_push(ecr, name, *to).await,
        Change::TagMutability { .. } => put_tag_mutability(ecr, name, settings).await,
        Change::Tags { set } => tag_repository(ecr, name, set).await,
        Change::Lifecycle { .. } => put_lifecycle_policy(ecr, name, settings).await,
    }
}

/// A resource tag.
fn tag(k: &str, v: &str) -> Result<Tag, EcrError> {
    Tag::builder()
        .key(k)
        .value(v)
        .build()
        .map_err(|e| EcrError::new("configuration", e.to_string()))
}

/// `CreateRepository` with every setting.
async fn create_repository(
    ecr: &Ecr,
    name: &str,
    settings: &RepositorySettings,
) -> Result<(), EcrError> {
    let enc = match &settings.encryption {
        Encryption::Aes256 => {
            EncryptionConfiguration::builder().encryption_type(EncryptionType::Aes256)
        }
        Encryption::Kms(k) => EncryptionConfiguration::builder()
            .encryption_type(EncryptionType::Kms)
            .set_kms_key(k.clone()),
    }
    .build()
    .map_err(|e| EcrError::new("configuration", e.to_string()))?;
    let mut req = ecr
        .sdk()
        .create_repository()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(name)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(settings.scan_on_push)
                .build(),
        )
        .encryption_configuration(enc)
        .image_tag_mutability(mutability(settings.tag_mutability));
    for f in exclusion_filters(settings)? {
        req = req.image_tag_mutability_exclusion_filters(f);
    }
    for (k, v) in &settings.tags {
        req = req.tags(tag(k, v)?);
    }
    req.send()
        .await
        .map_err(|e| EcrError::from_sdk("CreateRepository", e))?;
    Ok(())
}

/// `PutImageScanningConfiguration`: scan on push `to`.
async fn put_scan_on_push(ecr: &Ecr, name: &str, to: bool) -> Result<(), EcrError> {
    ecr.sdk()
        .put_image_scanning_configuration()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(name)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(to)
                .build(),
        )
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("PutImageScanningConfiguration", e))?;
    Ok(())
}

/// `PutImageTagMutability` with the configured mutability and exclusions.
async fn put_tag_mutability(
    ecr: &Ecr,
    name: &str,
    settings: &RepositorySettings,
) -> Result<(), EcrError> {
    let mut req = ecr
        .sdk()
        .put_image_tag_mutability()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(name)
        .image_tag_mutability(mutability(settings.tag_mutability));
    for f in exclusion_filters(settings)? {
        req = req.image_tag_mutability_exclusion_filters(f);
    }
    req.send()
        .await
        .map_err(|e| EcrError::from_sdk("PutImageTagMutability", e))?;
    Ok(())
}

/// `TagResource` on the repository `name` (its ARN looked up) with `set`.
async fn tag_repository(
    ecr: &Ecr,
    name: &str,
    set: &BTreeMap<String, String>,
) -> Result<(), EcrError> {
    let sdk = ecr.sdk();
    let arn = sdk
        .describe_repositories()
        .set_registry_id(ecr.registry_id.clone())
        .repository_names(name)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("DescribeRepositories", e))?
        .repositories()
        .first()
        .and_then(|r| r.repository_arn().map(str::to_string))
        .unwrap_or_default();
    let mut req = sdk.tag_resource().resource_arn(arn);
    for (k, v) in set {
        req = req.tags(tag(k, v)?);
    }
    req.send()
        .await
        .map_err(|e| EcrError::from_sdk("TagResource", e))?;
    Ok(())
}

/// `PutLifecyclePolicy` with the configured rules.
async fn put_lifecycle_policy(
    ecr: &Ecr,
    name: &str,
    settings: &RepositorySettings,
) -> Result<(), EcrError> {
    ecr.sdk()
        .put_lifecycle_policy()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(name)
        .lifecycle_policy_text(policy_json(&settings.lifecycle).to_string())
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("PutLifecyclePolicy", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::types::ImageScanningConfiguration as Scanning;

    fn repo(
        scan: bool,
        mutability: &str,
        enc: Option<(EncryptionType, Option<&str>)>,
    ) -> Repository {
        let mut r = Repository::builder()
            .image_scanning_configuration(Scanning::builder().scan_on_push(scan).build())
            .image_tag_mutability(ImageTagMutability::from(mutability));
        if let Some((t, key)) = enc {
            r = r.encryption_configuration(
                EncryptionConfiguration::builder()
                    .encryption_type(t)
                    .set_kms_key(key.map(str::to_string))
                    .build()
                    .unwrap(),
            );
        }
        r.build()
    }

    #[test]
    fn settings_that_differ_become_changes() {
        let settings = RepositorySettings {
            scan_on_push: true,
            tag_mutability: TagMutability::Immutable,
            ..RepositorySettings::default()
        };
        assert_eq!(
            setting_changes(&repo(true, "IMMUTABLE", None), &settings),
            vec![]
        );
        assert_eq!(
            setting_changes(&repo(false, "MUTABLE", None), &settings),
            vec![
                Change::ScanOnPush { to: true },
                Change::TagMutability {
                    from: "MUTABLE".into(),
                    to: "IMMUTABLE".into()
                }
            ]
        );
    }

    #[test]
    fn encryption_differences_are_drift() {
        let aes = repo(true, "MUTABLE", None);
        assert_eq!(encryption_drift(&aes, &Encryption::Aes256), None);
        assert_eq!(
            encryption_drift(&aes, &Encryption::Kms(Some("k1".into()))).as_deref(),
            Some(
                "encryption is AES256 but the config asks for KMS (k1): encryption is fixed when \
                 a repository is created; recreate the repository (after copying its images) or \
                 change the config"
            )
        );
        let kms = repo(true, "MUTABLE", Some((EncryptionType::Kms, Some("k1"))));
        assert_eq!(encryption_drift(&kms, &Encryption::Kms(None)), None);
        assert_eq!(
            encryption_drift(&kms, &Encryption::Kms(Some("k1".into()))),
            None
        );
        let drift = encryption_drift(&kms, &Encryption::Kms(Some("k2".into()))).unwrap();
        assert!(
            drift.starts_with("encryption is KMS (k1) but the config asks for KMS (k2): "),
            "{drift}"
        );
        assert!(encryption_drift(&kms, &Encryption::Aes256).is_some());
    }

    #[test]
    fn only_missing_or_different_tags_are_set() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let have = map(&[("team", "a"), ("env", "prod"), ("extra", "x")]);
        let want = map(&[("team", "b"), ("env", "prod"), ("owner", "me")]);
        assert_eq!(
            tags_to_set(&have, &want),
            map(&[("owner", "me"), ("team", "b")])
        );
        assert!(tags_to_set(&want, &want).is_empty());
    }
}

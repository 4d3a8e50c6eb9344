//! `ocibuild repos ensure`: make every service's ECR repository exist and match the config
//! (scan on push, encryption, tag mutability, resource tags, lifecycle policy), idempotently.
//! A plan is computed first (read-only calls), then applied; settings that cannot change after
//! creation (encryption) are reported as drift, never silently ignored.

use super::lifecycle::policy_json;
use super::{Ecr, EcrError};
use crate::config::{Encryption, RepositorySettings, TagMutability};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType, Tag,
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
        changes: vec![],
        drift: vec![],
    };
    let found = ecr
        .sdk()
        .describe_repositories()
        .set_registry_id(ecr.registry_id.clone())
        .repository_names(name)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("DescribeRepositories", e));
    let repo = match found {
        Ok(out) => out.repositories().first().cloned(),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let Some(repo) = repo else {
        plan.changes.push(Change::Create);
        plan.changes.push(Change::Lifecycle { replace: false });
        return Ok(plan);
    };
    let scan = repo
        .image_scanning_configuration()
        .map(|c| c.scan_on_push())
        .unwrap_or(false);
    if scan != settings.scan_on_push {
        plan.changes.push(Change::ScanOnPush {
            to: settings.scan_on_push,
        });
    }
    let current = repo
        .image_tag_mutability()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "MUTABLE".into());
    if current != settings.tag_mutability.as_str() {
        plan.changes.push(Change::TagMutability {
            from: current,
            to: settings.tag_mutability.as_str().into(),
        });
    }
    let enc = repo.encryption_configuration();
    let (have_type, have_key) = (
        enc.map(|e| e.encryption_type().as_str().to_string())
            .unwrap_or_else(|| "AES256".into()),
        enc.and_then(|e| e.kms_key().map(str::to_string)),
    );
    let (want_type, want_key) = match &settings.encryption {
        Encryption::Aes256 => ("AES256", None),
        Encryption::Kms(k) => ("KMS", k.clone()),
    };
    if have_type != want_type || (want_key.is_some() && have_key != want_key) {
        plan.drift.push(format!(
            "encryption is {have_type}{} but the config asks for {want_type}{}: encryption is fixed when a repository is created; \
             recreate the repository (after copying its images) or change the config",
            have_key.map(|k| format!(" ({k})")).unwrap_or_default(),
            want_key.map(|k| format!(" ({k})")).unwrap_or_default(),
        ));
    }
    if !settings.tags.is_empty() {
        let arn = repo.repository_arn().unwrap_or_default().to_string();
        let have: BTreeMap<String, String> = ecr
            .sdk()
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| EcrError::from_sdk("ListTagsForResource", e))?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let set: BTreeMap<String, String> = settings
            .tags
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !set.is_empty() {
            plan.changes.push(Change::Tags { set });
        }
    }
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
            if have.as_ref() != Some(&want) {
                plan.changes.push(Change::Lifecycle { replace: true });
            }
        }
        Err(e) if e.is_not_found() => plan.changes.push(Change::Lifecycle { replace: false }),
        Err(e) => return Err(e),
    }
    Ok(plan)
}

/// Carry out `plans`.
pub async fn apply(
    ecr: &Ecr,
    plans: &[RepoPlan],
    settings: &RepositorySettings,
) -> Result<(), EcrError> {
    for p in plans {
        for c in &p.changes {
            apply_one(ecr, &p.repository, c, settings).await?;
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
    let sdk = ecr.sdk();
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .key(k)
            .value(v)
            .build()
            .map_err(|e| EcrError::new("configuration", e.to_string()))
    };
    match change {
        Change::Create => {
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
            let mut req = sdk
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
        }
        Change::ScanOnPush { to } => {
            sdk.put_image_scanning_configuration()
                .set_registry_id(ecr.registry_id.clone())
                .repository_name(name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(*to)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| EcrError::from_sdk("PutImageScanningConfiguration", e))?;
        }
        Change::TagMutability { .. } => {
            let mut req = sdk
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
        }
        Change::Tags { set } => {
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
        }
        Change::Lifecycle { .. } => {
            sdk.put_lifecycle_policy()
                .set_registry_id(ecr.registry_id.clone())
                .repository_name(name)
                .lifecycle_policy_text(policy_json(&settings.lifecycle).to_string())
                .send()
                .await
                .map_err(|e| EcrError::from_sdk("PutLifecyclePolicy", e))?;
        }
    }
    Ok(())
}

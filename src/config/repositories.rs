//! Repository settings ocibuild enforces on every service's repository (`[repositories]`,
//! applied by `ocibuild repos ensure`): encryption, tag mutability, resource tags and the
//! lifecycle rules, with the checks ECR would make on those rules. Pure values; imports only
//! `serde` (the enums are read straight from the file).

use serde::Deserialize;
use std::collections::BTreeMap;

/// Encryption of a repository (fixed at creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// AES-256, keys managed by ECR.
    Aes256,
    /// AWS KMS, with this key (None: the AWS managed key).
    Kms(Option<String>),
}

/// Tag mutability of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    /// Tags can move.
    Mutable,
    /// Tags cannot move.
    Immutable,
    /// Immutable except tags matching the exclusions.
    ImmutableWithExclusion,
    /// Mutable except tags matching the exclusions.
    MutableWithExclusion,
}

impl TagMutability {
    /// The ECR API's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }
}

/// Which images a lifecycle rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    /// Images with a tag matching the rule's prefixes or patterns.
    Tagged,
    /// Images without tags.
    Untagged,
    /// All images.
    Any,
}

/// One lifecycle rule: expire what is beyond `keep_last` images, or older than `expire_after_days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    /// Evaluation order, unique; lowest first.
    pub priority: u32,
    /// Shown in the console.
    pub description: String,
    /// Which images.
    pub tag_status: TagStatus,
    /// Tag prefixes (with `tagged`).
    pub tag_prefixes: Vec<String>,
    /// Tag wildcard patterns (with `tagged`).
    pub tag_patterns: Vec<String>,
    /// Keep this many images, expire older ones (`imageCountMoreThan`).
    pub keep_last: Option<u32>,
    /// Expire images pushed more than this many days ago (`sinceImagePushed`).
    pub expire_after_days: Option<u32>,
}

/// The repository settings ocibuild enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    /// Scan images on push.
    pub scan_on_push: bool,
    /// Encryption at creation.
    pub encryption: Encryption,
    /// Tag mutability.
    pub tag_mutability: TagMutability,
    /// Tag filters for the `*_WITH_EXCLUSION` mutabilities.
    pub tag_mutability_exclusions: Vec<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
    /// Lifecycle rules.
    pub lifecycle: Vec<LifecycleRule>,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        RepositorySettings {
            scan_on_push: true,
            encryption: Encryption::Aes256,
            tag_mutability: TagMutability::Mutable,
            tag_mutability_exclusions: vec![],
            tags: BTreeMap::new(),
            lifecycle: default_lifecycle(),
        }
    }
}

impl RepositorySettings {
    /// The settings of the registry layer cache's repository: the same encryption and
    /// resource tags, no scanning (it holds cache documents, not images), mutable tags (a
    /// branch's document is replaced on each write), and its own lifecycle
    /// ([`cache_lifecycle`]): the services' rules never apply to it.
    pub fn for_cache(&self) -> RepositorySettings {
        RepositorySettings {
            scan_on_push: false,
            encryption: self.encryption.clone(),
            tag_mutability: TagMutability::Mutable,
            tag_mutability_exclusions: vec![],
            tags: self.tags.clone(),
            lifecycle: cache_lifecycle(),
        }
    }
}

/// How many cache documents (service x branch) the cache repository keeps, newest first.
pub const CACHE_DOCUMENTS_KEPT: u32 = 500;

/// The cache repository's lifecycle: replaced (untagged) documents expire after a day; of
/// the tagged ones the newest [`CACHE_DOCUMENTS_KEPT`] are kept (the default branch's are
/// rewritten whenever their service changes, so they stay among the newest).
pub fn cache_lifecycle() -> Vec<LifecycleRule> {
    vec![
        LifecycleRule {
            priority: 1,
            description: "expire replaced layer cache documents after 1 day".into(),
            tag_status: TagStatus::Untagged,
            tag_prefixes: vec![],
            tag_patterns: vec![],
            keep_last: None,
            expire_after_days: Some(1),
        },
        LifecycleRule {
            priority: 2,
            description: format!("keep the newest {CACHE_DOCUMENTS_KEPT} layer cache documents"),
            tag_status: TagStatus::Any,
            tag_prefixes: vec![],
            tag_patterns: vec![],
            keep_last: Some(CACHE_DOCUMENTS_KEPT),
            expire_after_days: None,
        },
    ]
}

/// Keep the last 10 images tagged `v*`; expire untagged images after 7 days.
pub fn default_lifecycle() -> Vec<LifecycleRule> {
    vec![
        LifecycleRule {
            priority: 1,
            description: "keep the last 10 v-tagged (release) images".into(),
            tag_status: TagStatus::Tagged,
            tag_prefixes: vec!["v".into()],
            tag_patterns: vec![],
            keep_last: Some(10),
            expire_after_days: None,
        },
        LifecycleRule {
            priority: 2,
            description: "expire untagged images after 7 days".into(),
            tag_status: TagStatus::Untagged,
            tag_prefixes: vec![],
            tag_patterns: vec![],
            keep_last: None,
            expire_after_days: Some(7),
        },
    ]
}

/// Check lifecycle rules as ECR would, before any call: unique priorities >= 1, the `any` rule
/// last, counts >= 1, exactly one of `keep_last` / `expire_after_days`, prefixes or patterns
/// only (and required) with `tagged`.
pub fn validate_lifecycle(rules: &[LifecycleRule]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        let name = format!("lifecycle rule {} (priority {})", i + 1, r.priority);
        if r.priority == 0 {
            return Err(format!("{name}: priority must be 1 or more"));
        }
        if rules[..i].iter().any(|o| o.priority == r.priority) {
            return Err(format!(
                "{name}: priority {} is used twice; priorities must be unique",
                r.priority
            ));
        }
        match (r.keep_last, r.expire_after_days) {
            (Some(0), _) | (_, Some(0)) => return Err(format!("{name}: counts must be 1 or more")),
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!(
                    "{name}: give exactly one of keep_last or expire_after_days"
                ))
            }
            _ => {}
        }
        let filtered = !r.tag_prefixes.is_empty() || !r.tag_patterns.is_empty();
        match r.tag_status {
            TagStatus::Tagged if !filtered => {
                return Err(format!(
                    "{name}: tag_status = \"tagged\" needs tag_prefixes or tag_patterns"
                ))
            }
            TagStatus::Untagged | TagStatus::Any if filtered => {
                return Err(format!(
                    "{name}: tag_prefixes and tag_patterns only go with tag_status = \"tagged\""
                ))
            }
            _ => {}
        }
        if !r.tag_prefixes.is_empty() && !r.tag_patterns.is_empty() {
            return Err(format!(
                "{name}: use tag_prefixes or tag_patterns, not both"
            ));
        }
    }
    if let Some(any) = rules.iter().find(|r| r.tag_status == TagStatus::Any) {
        if rules.iter().any(|r| r.priority > any.priority) {
            return Err(format!(
                "lifecycle rule with tag_status = \"any\" (priority {}) must have the highest priority number",
                any.priority
            ));
        }
        if rules
            .iter()
            .filter(|r| r.tag_status == TagStatus::Any)
            .count()
            > 1
        {
            return Err("only one lifecycle rule may have tag_status = \"any\"".into());
        }
    }
    Ok(())
}

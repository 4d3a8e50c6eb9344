//! `ocibuild images`: per service, what its repository holds (see [`crate::inventory`]). On
//! ECR from `DescribeImages` (every page; sizes, push and pull times, scan summaries, and the
//! `subject` of each artifact) and `BatchGetImage` of the indexes (their children); on any
//! other registry from the tag list (every page), the manifests, the configs' `created`, and
//! the referrers API or the referrers tag schema, plus the signature tags.

use super::{access, AppError};
use crate::config::{AuthMode, Config};
use crate::digest::Digest;
use crate::ecr::images as ecr_images;
use crate::ecr::Ecr;
use crate::inventory::{self, Listing, Record};
use crate::registry::client::RegistryClient;
use crate::registry::error::RegistryError;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Requests in flight at once against a registry.
const PARALLEL: usize = 8;
/// Most platform manifests read per index (a registry's answer is not trusted to be small).
const MAX_PLATFORMS: usize = 64;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ImagesRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// Images per service, newest first.
    pub limit: usize,
}

/// One service's repository.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceImages {
    /// Service name.
    pub service: String,
    /// `host/repository`.
    pub repository: String,
    /// Where the listing came from: `ecr` or `registry`.
    pub source: &'static str,
    /// Its images and untagged leftovers.
    #[serde(flatten)]
    pub listing: Listing,
    /// Why it could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// List the requested services' images.
pub fn images(req: &ImagesRequest) -> Result<Vec<ServiceImages>, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    if req.limit == 0 {
        return Err(AppError::Usage("--limit must be 1 or more".into()));
    }
    let registry = access::destination(&config, req.registry.as_deref(), req.insecure)?;
    let runtime = super::runtime()?;
    let connected = access::Connected::open(&runtime, &registry)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    for s in config.select(&req.services)? {
        let repository = registry.repository_path(&s.repository);
        let records = runtime.block_on(async {
            match (&connected.ecr, registry.auth_mode()) {
                (Some(ecr), AuthMode::Ecr) => from_ecr(ecr, &repository).await,
                _ => from_registry(&connected.client, &repository).await,
            }
        });
        let (listing, error) = match records {
            Ok(r) => (inventory::group(r, now, req.limit), None),
            Err(e) => (Listing::default(), Some(e)),
        };
        out.push(ServiceImages {
            service: s.name.clone(),
            repository: format!("{}/{repository}", registry.host),
            source: if connected.ecr.is_some() {
                "ecr"
            } else {
                "registry"
            },
            listing,
            error,
        });
    }
    Ok(out)
}

/// Every image of `repository` as ECR describes it, indexes with their children.
async fn from_ecr(ecr: &Ecr, repository: &str) -> Result<Vec<Record>, String> {
    let all = ecr_images::describe_all(ecr, repository)
        .await
        .map_err(|e| e.to_string())?;
    let indexes: Vec<String> = all
        .iter()
        .filter(|i| i.is_index())
        .map(|i| i.digest.clone())
        .collect();
    let children: BTreeMap<String, Vec<(String, String)>> =
        ecr_images::manifests(ecr, repository, &indexes)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(d, _, body)| (d, ecr_images::children_of(&body)))
            .collect();
    Ok(all
        .into_iter()
        .map(|i| Record {
            children: children.get(&i.digest).cloned().unwrap_or_default(),
            size: i.size.and_then(|s| u64::try_from(s).ok()),
            media_type: i.media_type.unwrap_or_default(),
            via: i.subject.as_ref().map(|_| "referrers API".to_string()),
            digest: i.digest,
            tags: i.tags,
            pushed_at: i.pushed_at,
            last_pull: i.last_pull,
            scan_status: i.scan_status,
            severities: i.severities,
            subject: i.subject,
            artifact_type: i.artifact_type,
        })
        .collect())
}

/// Every tagged image of `repository` read through the registry API.
async fn from_registry(client: &RegistryClient, repository: &str) -> Result<Vec<Record>, String> {
    let text = |e: RegistryError| e.to_string();
    let Some(tags) = client.list_tags(repository).await.map_err(text)? else {
        return Err(format!(
            "{repository}: no such repository (push to it first)"
        ));
    };
    let (schema, plain): (Vec<String>, Vec<String>) = tags
        .into_iter()
        .partition(|t| inventory::schema_tag(t).is_some());
    // What each plain tag names, then each distinct image once.
    let named: Vec<(String, Result<Option<Digest>, RegistryError>)> = stream::iter(plain)
        .map(|t| async move {
            let d = client.manifest_digest(repository, &t).await;
            (t, d)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (tag, d) in named {
        if let Some(d) = d.map_err(text)? {
            by_digest.entry(d).or_default().push(tag);
        }
    }
    let schema = &schema;
    let tops: Vec<Vec<Record>> = stream::iter(by_digest)
        .map(|(d, mut tags)| async move {
            tags.sort();
            image_records(client, repository, &d, tags, schema).await
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(text)?;
    Ok(tops.into_iter().flatten().collect())
}

/// The records of the image `digest` (tagged `tags`): its top document, its platform
/// manifests and what is attached to each (`schema`: the repository's schema tags).
async fn image_records(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
    tags: Vec<String>,
    schema: &[String],
) -> Result<Vec<Record>, RegistryError> {
    let Some(top) = client.get_manifest(repo, digest.as_str()).await? else {
        return Ok(vec![]);
    };
    let doc: Value = serde_json::from_slice(&top.bytes).unwrap_or_default();
    let mut out = Vec::new();
    let mut record = Record {
        digest: digest.to_string(),
        media_type: top.media_type.clone(),
        tags,
        pushed_at: doc
            .pointer("/annotations/org.opencontainers.image.created")
            .and_then(Value::as_str)
            .and_then(crate::spec::parse_rfc3339),
        ..Record::default()
    };
    if crate::oci::read::is_index(&top.media_type) {
        record.children = ecr_images::children_of(&String::from_utf8_lossy(&top.bytes));
        if record.children.len() > MAX_PLATFORMS {
            return Err(RegistryError::new(
                "GET",
                format!("{repo}@{digest}"),
                format!(
                    "the index lists {} manifests; ocibuild lists images of at most {MAX_PLATFORMS} platforms",
                    record.children.len()
                ),
            ));
        }
        for (child, _) in &record.children {
            let Ok(child) = child.parse::<Digest>() else {
                continue;
            };
            let (r, created) = platform_record(client, repo, &child).await?;
            record.pushed_at = record.pushed_at.or(created);
            out.push(r);
        }
    } else {
        let (r, created) = platform_record(client, repo, digest).await?;
        record.size = r.size;
        record.pushed_at = record.pushed_at.or(created);
    }
    let subjects: Vec<String> = std::iter::once(record.digest.clone())
        .chain(record.children.iter().map(|(c, _)| c.clone()))
        .collect();
    out.insert(0, record);
    for s in subjects {
        out.extend(attached(client, repo, &s, schema).await?);
    }
    Ok(out)
}

/// A platform manifest's record (its compressed size: config and layers) and its config's
/// `created`.
async fn platform_record(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
) -> Result<(Record, Option<i64>), RegistryError> {
    let mut r = Record {
        digest: digest.to_string(),
        ..Record::default()
    };
    let Some(m) = client.get_manifest(repo, digest.as_str()).await? else {
        return Ok((r, None));
    };
    r.media_type = m.media_type;
    let doc: Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
    let sizes = doc
        .pointer("/config/size")
        .into_iter()
        .chain(
            doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| &l["size"]),
        )
        .filter_map(Value::as_u64);
    r.size = Some(sizes.sum());
    let created = match doc
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .and_then(|d| d.parse::<Digest>().ok())
    {
        Some(config) => client
            .get_blob(repo, &config)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|c| c["created"].as_str().and_then(crate::spec::parse_rfc3339)),
        None => None,
    };
    Ok((r, created))
}

/// What is attached to `subject`: the referrers API's list, else the referrers tag's index;
/// and its signature tag.
async fn attached(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
    schema: &[String],
) -> Result<Vec<Record>, RegistryError> {
    let Ok(digest) = subject.parse::<Digest>() else {
        return Ok(vec![]);
    };
    let hex = digest.hex();
    let referrers_tag = format!("sha256-{hex}");
    let (list, via) = match client.referrers(repo, &digest).await? {
        Some(list) => (Some(list), "referrers API".to_string()),
        None if schema.contains(&referrers_tag) => (
            client
                .get_manifest(repo, &referrers_tag)
                .await?
                .map(|m| m.bytes),
            format!("tag {referrers_tag}"),
        ),
        None => (None, String::new()),
    };
    let mut out: Vec<Record> = list
        .and_then(|l| crate::oci::referrers::parse_index(&l).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| Record {
            digest: r.digest.to_string(),
            media_type: r.media_type,
            size: Some(r.size),
            subject: Some(subject.to_string()),
            artifact_type: Some(r.artifact_type),
            via: Some(via.clone()),
            ..Record::default()
        })
        .collect();
    let sig_tag = format!("{referrers_tag}.sig");
    if schema.contains(&sig_tag) {
        if let Some(d) = client.manifest_digest(repo, &sig_tag).await? {
            out.push(Record {
                digest: d.to_string(),
                tags: vec![sig_tag],
                ..Record::default()
            });
        }
    }
    Ok(out)
}

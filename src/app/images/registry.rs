//! `ocibuild images` on a registry other than ECR: the tag list (every page), what each tag
//! names, each image's top document and time, then, for the newest images only (the limit),
//! their platform manifests (sizes), configs (`created`) and attachments (the referrers API,
//! else the referrers tag schema; the signature tags). Requests are bounded by the limit, not
//! by how many tags the repository has, apart from one `HEAD` per tag.

use crate::digest::Digest;
use crate::ecr::images::children_of;
use crate::inventory::{self, Record};
use crate::registry::client::RegistryClient;
use crate::registry::error::RegistryError;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Requests in flight at once.
const PARALLEL: usize = 8;
/// Most platform manifests read per index (a registry's answer is not trusted to be small).
const MAX_PLATFORMS: usize = 64;

/// The records of the newest `limit` images of `repository`, and how many were left out.
pub async fn records(
    client: &RegistryClient,
    repository: &str,
    limit: usize,
) -> Result<(Vec<Record>, usize), String> {
    let text = |e: RegistryError| e.to_string();
    let Some(tags) = client.list_tags(repository).await.map_err(text)? else {
        return Err(format!(
            "{repository}: no such repository (push to it first)"
        ));
    };
    let (schema, plain): (Vec<String>, Vec<String>) = tags
        .into_iter()
        .partition(|t| inventory::schema_tag(t).is_some());
    let schema: HashSet<String> = schema.into_iter().collect();
    let by_digest = named(client, repository, plain).await.map_err(text)?;
    let mut tops: Vec<Record> = stream::iter(by_digest)
        .map(|(d, tags)| top(client, repository, d, tags))
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<Option<Record>>, _>>()
        .map_err(text)?
        .into_iter()
        .flatten()
        .collect();
    tops.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.digest.cmp(&b.digest)));
    let left_out = tops.len().saturating_sub(limit);
    tops.truncate(limit);
    let schema = &schema;
    let expanded: Vec<Vec<Record>> = stream::iter(tops)
        .map(|t| expand(client, repository, t, schema))
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(text)?;
    Ok((expanded.into_iter().flatten().collect(), left_out))
}

/// What each of `tags` names (one `HEAD` each), grouped by digest.
async fn named(
    client: &RegistryClient,
    repository: &str,
    tags: Vec<String>,
) -> Result<BTreeMap<Digest, Vec<String>>, RegistryError> {
    // A name that is not a tag cannot be asked for (nor pushed by anyone): it is skipped.
    let tags = tags.into_iter().filter(|t| crate::spec::is_valid_tag(t));
    let named: Vec<(String, Result<Option<Digest>, RegistryError>)> = stream::iter(tags)
        .map(|t| async move {
            let d = client.manifest_digest(repository, &t).await;
            (t, d)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (tag, d) in named {
        if let Some(d) = d? {
            by_digest.entry(d).or_default().push(tag);
        }
    }
    for tags in by_digest.values_mut() {
        tags.sort();
    }
    Ok(by_digest)
}

/// The top document of image `digest` (tagged `tags`) with its entries and its time: the
/// `org.opencontainers.image.created` annotation, else its (first) platform's config.
async fn top(
    client: &RegistryClient,
    repo: &str,
    digest: Digest,
    tags: Vec<String>,
) -> Result<Option<Record>, RegistryError> {
    let Some(top) = client.get_manifest(repo, digest.as_str()).await? else {
        return Ok(None);
    };
    let broken = |why: String| {
        RegistryError::new(
            "GET",
            format!("{repo}@{digest}"),
            format!("tag {} names a broken manifest: {why}", tags.join(", ")),
        )
    };
    let doc: Value = serde_json::from_slice(&top.bytes).map_err(|e| broken(e.to_string()))?;
    let children = match crate::oci::read::is_index(&top.media_type) {
        true => children_of(&String::from_utf8_lossy(&top.bytes)),
        false => vec![],
    };
    if let Some((bad, _)) = children.iter().find(|(c, _)| c.parse::<Digest>().is_err()) {
        return Err(broken(format!("it lists {bad:?}, which is not a digest")));
    }
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
        record.children = children;
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
    }
    if record.pushed_at.is_none() {
        let first = match record.children.first() {
            Some((c, _)) => c.parse::<Digest>().ok(),
            None => Some(digest),
        };
        if let Some(first) = first {
            record.pushed_at = platform_record(client, repo, &first).await?.1;
        }
    }
    Ok(Some(record))
}

/// An image's records: its top document, its platform manifests (with sizes) and what is
/// attached to each (`schema`: the repository's schema tags).
async fn expand(
    client: &RegistryClient,
    repo: &str,
    mut top: Record,
    schema: &HashSet<String>,
) -> Result<Vec<Record>, RegistryError> {
    let mut out = Vec::new();
    if top.children.is_empty() {
        if let Ok(d) = top.digest.parse::<Digest>() {
            top.size = platform_record(client, repo, &d).await?.0.size;
        }
    }
    for (child, platform) in &top.children {
        if let Ok(child) = child.parse::<Digest>() {
            let (r, _) = platform_record(client, repo, &child).await?;
            if r.media_type.is_empty() && r.size.is_none() {
                return Err(RegistryError::new(
                    "GET",
                    format!("{repo}@{child}"),
                    format!(
                        "tag {} names an index whose {platform} manifest {child} is not in the repository: the image is broken; push it again",
                        top.tags.join(", ")
                    ),
                ));
            }
            out.push(r);
        }
    }
    let subjects: Vec<String> = std::iter::once(top.digest.clone())
        .chain(top.children.iter().map(|(c, _)| c.clone()))
        .collect();
    out.insert(0, top);
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
    r.size = Some(sizes.fold(0u64, u64::saturating_add));
    let config = doc
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .and_then(|d| d.parse::<Digest>().ok());
    let created = match config {
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
    schema: &HashSet<String>,
) -> Result<Vec<Record>, RegistryError> {
    let Ok(digest) = subject.parse::<Digest>() else {
        return Ok(vec![]);
    };
    let referrers_tag = crate::oci::referrers::referrers_tag(&digest);
    let tagged = schema.contains(&referrers_tag);
    let (list, via) = match crate::transfer::referrers_list(client, repo, &digest, tagged).await? {
        Some((list, via)) => (Some(list), via),
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
    let sig_tag = crate::sign::cosign::signature_tag(&digest);
    if schema.contains(&sig_tag) {
        if let Some(d) = client.manifest_digest(repo, &sig_tag).await? {
            out.push(Record {
                digest: d.to_string(),
                tags: vec![sig_tag],
                artifact_type: Some(crate::sign::cosign::MEDIA_TYPE_SIMPLESIGNING.into()),
                ..Record::default()
            });
        }
    }
    Ok(out)
}

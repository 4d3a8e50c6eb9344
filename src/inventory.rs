//! What a repository holds, grouped as people think of it: images (an index with its tags and
//! its platform manifests, or a single manifest), what is attached to each (SBOMs, provenance,
//! signatures, other artifacts), and the truly untagged leftovers that nothing references. The
//! sources (ECR's `DescribeImages`, a registry's tag list and manifests) hand over flat
//! [`Record`]s; [`group`] does the rest. Pure: no I/O. Imports `spec` (time formats).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One manifest (an index, a platform manifest or an artifact) as a source sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Compressed size (a manifest's config and layers, as the registry counts them).
    pub size: Option<u64>,
    /// When it was pushed (seconds since the epoch), or, where the registry does not say, when
    /// it says it was created.
    pub pushed_at: Option<i64>,
    /// When it was last pulled (seconds since the epoch).
    pub last_pull: Option<i64>,
    /// Scan status, if scanned.
    pub scan_status: Option<String>,
    /// Findings by severity.
    pub severities: BTreeMap<String, i64>,
    /// The manifest it is about, for an artifact.
    pub subject: Option<String>,
    /// An artifact's type.
    pub artifact_type: Option<String>,
    /// For an index: its entries (digest, platform).
    pub children: Vec<(String, String)>,
    /// How an artifact was found (`referrers API`, `tag sha256-...`, `subject`).
    pub via: Option<String>,
}

/// One platform of an image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Platform {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Its manifest's digest.
    pub digest: String,
    /// Its compressed size.
    pub size: Option<u64>,
    /// Its scan status.
    pub scan_status: Option<String>,
    /// Its findings by severity.
    pub severities: BTreeMap<String, i64>,
}

/// Something attached to an image or one of its platforms.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attached {
    /// `sbom`, `provenance`, `signature` or `artifact`.
    pub kind: &'static str,
    /// Its artifact type.
    pub artifact_type: String,
    /// Its digest.
    pub digest: String,
    /// What it is about (the index or a platform manifest).
    pub subject: String,
    /// How it was found.
    pub via: String,
}

/// One image: its top document and everything under it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Image {
    /// The top document's digest (what a deployment pins).
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was pushed (RFC 3339, UTC).
    pub pushed_at: Option<String>,
    /// When any of it was last pulled (RFC 3339, UTC).
    pub last_pull: Option<String>,
    /// Its platforms (one, `unknown`, for a single manifest without a declared platform).
    pub platforms: Vec<Platform>,
    /// What is attached to it or to its platforms.
    pub attached: Vec<Attached>,
}

/// A manifest that no tag names and nothing references.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Untagged {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// When it was pushed (RFC 3339).
    pub pushed_at: Option<String>,
    /// Its age in whole days.
    pub age_days: Option<i64>,
}

/// A repository's images, newest first, and its untagged leftovers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Listing {
    /// Images, newest first (at most the limit asked for).
    pub images: Vec<Image>,
    /// Images left out by the limit.
    pub more: usize,
    /// Untagged manifests nothing references (only a source that lists every manifest, such
    /// as ECR, can see them).
    pub untagged: Vec<Untagged>,
}

/// The subject that a tag of the referrers schema (`sha256-<hex>`) or of cosign's signatures
/// (`sha256-<hex>.sig`) names, and whether it is a signature tag.
pub fn schema_tag(tag: &str) -> Option<(String, bool)> {
    let hex = tag.strip_prefix("sha256-")?;
    let (hex, sig) = match hex.strip_suffix(".sig") {
        Some(h) => (h, true),
        None => (hex, false),
    };
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (format!("sha256:{hex}"), sig))
}

/// What an artifact type says an artifact is.
pub fn kind_of(artifact_type: &str) -> &'static str {
    match artifact_type {
        "application/spdx+json" | "application/vnd.cyclonedx+json" => "sbom",
        "application/vnd.in-toto+json" => "provenance",
        t if t.contains("cosign") || t.contains("sigstore") || t.contains("simplesigning") => {
            "signature"
        }
        _ => "artifact",
    }
}

/// RFC 3339 (UTC) of `secs` since the epoch (times before 1970 read as 1970).
fn rfc3339(secs: i64) -> String {
    crate::spec::rfc3339_utc(u64::try_from(secs).unwrap_or(0))
}

/// Group `records` of one repository: tagged top documents become images (newest first, at
/// most `limit`), their children and attachments go under them, and what is untagged and
/// unreferenced is listed as such with its age at `now`. Signature and referrers-schema tags
/// are attachments, not images.
pub fn group(records: Vec<Record>, now: i64, limit: usize) -> Listing {
    let records = merged(records);
    let by_digest: BTreeMap<&str, &Record> =
        records.iter().map(|r| (r.digest.as_str(), r)).collect();
    let attachments = attachments_by_subject(&records);
    let mut images: Vec<Image> = records
        .iter()
        .filter(|r| !r.tags.is_empty() && subject_of(r).is_none())
        .map(|top| image(top, &by_digest, &attachments))
        .collect();
    images.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.digest.cmp(&b.digest)));
    let more = images.len().saturating_sub(limit);
    images.truncate(limit);
    Listing {
        images,
        more,
        untagged: leftovers(&records, &by_digest, now),
    }
}

/// One record per (digest, subject): a manifest both tagged on its own and listed by an index,
/// or found through two images, is one record with everything either said of it.
fn merged(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    let mut at: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
    for r in records {
        let key = (r.digest.clone(), r.subject.clone());
        let Some(&i) = at.get(&key) else {
            at.insert(key, out.len());
            out.push(r);
            continue;
        };
        let m = &mut out[i];
        for t in r.tags {
            if !m.tags.contains(&t) {
                m.tags.push(t);
            }
        }
        if m.children.is_empty() {
            m.children = r.children;
        }
        if m.media_type.is_empty() {
            m.media_type = r.media_type;
        }
        if m.severities.is_empty() {
            m.severities = r.severities;
        }
        m.size = m.size.or(r.size);
        m.pushed_at = m.pushed_at.or(r.pushed_at);
        m.last_pull = m.last_pull.max(r.last_pull);
        m.scan_status = m.scan_status.take().or(r.scan_status);
        m.artifact_type = m.artifact_type.take().or(r.artifact_type);
        m.via = m.via.take().or(r.via);
    }
    out
}

/// What a record is attached to, and whether it is a signature tag: its `subject`, else the
/// subject its signature or referrers-schema tag names.
fn subject_of(r: &Record) -> Option<(String, bool)> {
    match &r.subject {
        Some(s) => Some((s.clone(), false)),
        None => r.tags.iter().find_map(|t| schema_tag(t)),
    }
}

/// The attachments of each subject.
fn attachments_by_subject(records: &[Record]) -> BTreeMap<String, Vec<&Record>> {
    let mut attachments: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        match subject_of(r) {
            // A referrers-schema index lists attachments; it is not one itself.
            Some((_, false)) if r.subject.is_none() && crate::spec::is_index(&r.media_type) => {}
            Some((s, _)) => attachments.entry(s).or_default().push(r),
            None => {}
        }
    }
    attachments
}

/// Untagged records nothing references (no index lists them; an attachment whose subject is
/// still there stays with it), oldest first, with their age at `now`.
fn leftovers(records: &[Record], by_digest: &BTreeMap<&str, &Record>, now: i64) -> Vec<Untagged> {
    let referenced: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.children.iter().map(|(c, _)| c.as_str()))
        .collect();
    let mut untagged: Vec<Untagged> = records
        .iter()
        .filter(|r| r.tags.is_empty() && !referenced.contains(r.digest.as_str()))
        .filter(|r| match subject_of(r) {
            Some((s, _)) => !by_digest.contains_key(s.as_str()),
            None => true,
        })
        .map(|r| Untagged {
            digest: r.digest.clone(),
            media_type: r.media_type.clone(),
            pushed_at: r.pushed_at.map(rfc3339),
            age_days: r.pushed_at.map(|p| (now - p).max(0) / 86_400),
        })
        .collect();
    untagged.sort_by(|a, b| b.age_days.cmp(&a.age_days).then(a.digest.cmp(&b.digest)));
    untagged
}

/// One tagged top document with its platforms and attachments.
fn image(
    top: &Record,
    by_digest: &BTreeMap<&str, &Record>,
    attachments: &BTreeMap<String, Vec<&Record>>,
) -> Image {
    let platforms: Vec<Platform> =
        if crate::spec::is_index(&top.media_type) && top.children.is_empty() {
            vec![]
        } else if top.children.is_empty() {
            vec![platform(top, "unknown")]
        } else {
            top.children
                .iter()
                .map(|(c, p)| match by_digest.get(c.as_str()) {
                    Some(r) => platform(r, p),
                    None => Platform {
                        platform: p.clone(),
                        digest: c.clone(),
                        size: None,
                        scan_status: None,
                        severities: BTreeMap::new(),
                    },
                })
                .collect()
        };
    let subjects =
        std::iter::once(top.digest.as_str()).chain(top.children.iter().map(|(c, _)| c.as_str()));
    let mut attached = Vec::new();
    let mut last_pull = top.last_pull;
    for s in subjects {
        if let Some(r) = by_digest.get(s) {
            last_pull = last_pull.max(r.last_pull);
        }
        for a in attachments.get(s).into_iter().flatten() {
            attached.push(attachment(a, s));
        }
    }
    Image {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        tags: top.tags.clone(),
        pushed_at: top.pushed_at.map(rfc3339),
        last_pull: last_pull.map(rfc3339),
        platforms,
        attached,
    }
}

/// Attachment `a` of `subject`, as listed.
fn attachment(a: &Record, subject: &str) -> Attached {
    let signature = a
        .tags
        .iter()
        .find_map(|t| schema_tag(t))
        .is_some_and(|(_, sig)| sig);
    let artifact_type = a.artifact_type.clone().unwrap_or_default();
    Attached {
        kind: if signature {
            "signature"
        } else {
            kind_of(&artifact_type)
        },
        artifact_type,
        digest: a.digest.clone(),
        subject: subject.to_string(),
        via: a.via.clone().unwrap_or_else(|| match a.tags.first() {
            Some(t) => format!("tag {t}"),
            None => "subject".to_string(),
        }),
    }
}

fn platform(r: &Record, name: &str) -> Platform {
    Platform {
        platform: name.to_string(),
        digest: r.digest.clone(),
        size: r.size,
        scan_status: r.scan_status.clone(),
        severities: r.severities.clone(),
    }
}

#[cfg(test)]
mod tests;

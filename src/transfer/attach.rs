//! Attaching artifacts (SBOMs, provenance) and signatures to an image that is in the registry:
//! after its manifests, before its tags, so a tag never names an image without them.
//!
//! Signatures follow cosign's scheme: per signed manifest, the tag `sha256-<hex>.sig` holds an
//! image manifest with one layer per signature (read, merged, written back when it changed).
//!
//! An artifact's blobs go first (skipped when there), then its manifest by digest. A registry
//! that answers that PUT with `OCI-Subject` indexes it for the referrers API; for one that does
//! not, the subject's referrers tag (`sha256-<hex>`) is read, the artifact appended where
//! missing, and written back (entries of other tools are kept). Everything here is idempotent:
//! a rerun writes nothing new.

use super::{Registry, Source, TransferError};
use crate::digest::Digest;
use crate::oci::referrers::{self, Artifact};
use crate::oci::{BlobAt, BlobRef};
use crate::registry::error::RegistryError;
use crate::sign::cosign::{self, Signature};
use crate::spec::{MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use serde::Serialize;
use std::collections::BTreeMap;

/// What an artifact is, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachKind {
    /// A software bill of materials.
    Sbom,
    /// A provenance statement.
    Provenance,
    /// A signature (cosign's scheme).
    Signature,
    /// Another artifact (another tool's), carried by a copy as it is.
    Other,
}

/// One artifact to attach.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// What it is.
    pub kind: AttachKind,
    /// The artifact.
    pub artifact: Artifact,
}

/// Where an attachment went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attached {
    /// What it is.
    pub kind: AttachKind,
    /// Its artifact type (signatures: cosign's simple-signing type).
    pub artifact_type: String,
    /// The manifest it is about.
    pub subject: String,
    /// The digest of the manifest holding it.
    pub digest: String,
    /// How it can be found: `referrers API`, `tag sha256-...`, `tag sha256-....sig`; on a
    /// dry run, what would be done.
    pub stored: String,
}

/// What storing one artifact found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    /// Stored, and the registry answered `OCI-Subject`: indexed for the referrers API.
    Indexed,
    /// Stored without `OCI-Subject`: the registry has no referrers API.
    Unindexed,
    /// Already there (a rerun): how it is found is settled per subject.
    Existed,
}

/// Put `items` into `repo` (or, on a dry run, say what would be put): every artifact at once
/// (a `HEAD` first, so a rerun writes nothing), then, per subject at once, the referrers tag
/// where the registry has no referrers API.
pub(super) async fn artifacts<R: Registry>(
    registry: &R,
    repo: &str,
    items: &[Attachment],
    dry_run: bool,
) -> Result<Vec<Attached>, TransferError> {
    let report = |item: &Attachment, stored: String| Attached {
        kind: item.kind,
        artifact_type: item.artifact.artifact_type.clone(),
        subject: item.artifact.subject.digest.to_string(),
        digest: item.artifact.digest.to_string(),
        stored,
    };
    if dry_run {
        return Ok(items
            .iter()
            .map(|i| report(i, "would attach".into()))
            .collect());
    }
    let puts = store(registry, repo, items).await?;
    // Per subject, the artifacts the referrers API has not (or not known to have) indexed.
    let mut pending: BTreeMap<&Digest, Vec<usize>> = BTreeMap::new();
    for (i, put) in puts.iter().enumerate() {
        if *put != Put::Indexed {
            pending
                .entry(&items[i].artifact.subject.digest)
                .or_default()
                .push(i);
        }
    }
    let schema = pending.iter().map(|(subject, which)| {
        let add: Vec<&Artifact> = which.iter().map(|&i| &items[i].artifact).collect();
        let known = which.iter().any(|&i| puts[i] == Put::Unindexed);
        async move {
            let api = tag_schema(registry, repo, subject, &add, known).await?;
            Ok::<_, TransferError>((*subject, api))
        }
    });
    let by_api: BTreeMap<&Digest, bool> = futures_util::future::try_join_all(schema)
        .await?
        .into_iter()
        .collect();
    Ok(items
        .iter()
        .map(|i| {
            let subject = &i.artifact.subject.digest;
            let api = by_api.get(subject).copied().unwrap_or(true);
            let stored = match api {
                true => "referrers API".to_string(),
                false => format!("tag {}", referrers::referrers_tag(subject)),
            };
            report(i, stored)
        })
        .collect())
}

/// Every artifact: nothing for those whose manifest the registry has; for the others their
/// blobs (each digest once: uploads of one blob at the same time into one repository race in
/// distribution's storage), then their manifests.
async fn store<R: Registry>(
    registry: &R,
    repo: &str,
    items: &[Attachment],
) -> Result<Vec<Put>, TransferError> {
    let heads = items
        .iter()
        .map(|i| registry.manifest_exists(repo, i.artifact.digest.as_str()));
    let there = futures_util::future::try_join_all(heads)
        .await
        .map_err(TransferError::Manifest)?;
    let mut blobs: Vec<&(Digest, Vec<u8>)> = Vec::new();
    for (i, _) in items.iter().zip(&there).filter(|(_, t)| !**t) {
        for b in &i.artifact.blobs {
            if !blobs.iter().any(|x| x.0 == b.0) {
                blobs.push(b);
            }
        }
    }
    put_blobs(registry, repo, blobs).await?;
    let puts = items.iter().zip(&there).map(|(i, &there)| async move {
        if there {
            return Ok(Put::Existed);
        }
        let a = &i.artifact;
        let stored = registry
            .put_manifest(repo, a.digest.as_str(), MEDIA_TYPE_MANIFEST, &a.manifest)
            .await
            .map_err(TransferError::Manifest)?;
        Ok(match stored.referrers_api {
            true => Put::Indexed,
            false => Put::Unindexed,
        })
    });
    futures_util::future::try_join_all(puts).await
}

/// Upload each of `blobs` (distinct digests) that `repo` lacks, from memory, all at once.
pub(super) async fn put_blobs<'a, R: Registry>(
    registry: &R,
    repo: &str,
    blobs: impl IntoIterator<Item = &'a (Digest, Vec<u8>)>,
) -> Result<(), TransferError> {
    let each = blobs.into_iter().map(|(digest, bytes)| async move {
        let size = bytes.len() as u64;
        let failed = |source: RegistryError| TransferError::Blob {
            digest: digest.clone(),
            source,
        };
        if registry
            .blob_exists(repo, digest, size)
            .await
            .map_err(failed)?
        {
            return Ok(());
        }
        let blob = BlobRef {
            digest: digest.clone(),
            size,
            media_type: String::new(),
            at: Vec::<BlobAt>::new(),
        };
        registry
            .upload(repo, &blob, Source::Bytes(bytes), None)
            .await
            .map_err(failed)
    });
    futures_util::future::try_join_all(each).await?;
    Ok(())
}

/// The referrers of `subject` that the API has not indexed: read-append-write of its
/// referrers tag. `no_api`: a PUT just showed the registry has no referrers API. When every
/// artifact was already there and the tag is missing, the registry is asked whether it has
/// the API (then it indexed them, and no tag is made). Returns whether the API serves them.
async fn tag_schema<R: Registry>(
    registry: &R,
    repo: &str,
    subject: &Digest,
    add: &[&Artifact],
    no_api: bool,
) -> Result<bool, TransferError> {
    let tag = referrers::referrers_tag(subject);
    let now = registry
        .get_manifest(repo, &tag)
        .await
        .map_err(TransferError::Manifest)?;
    if now.is_none() && !no_api {
        let listed = registry
            .referrers(repo, subject)
            .await
            .map_err(TransferError::Manifest)?;
        if listed.is_some() {
            return Ok(true);
        }
    }
    let merged =
        referrers::merge_index(now.as_ref().map(|m| m.bytes.as_slice()), add).map_err(|e| {
            TransferError::Attach {
                what: format!("the referrers tag {tag} of {repo}"),
                why: e.to_string(),
            }
        })?;
    if let Some(bytes) = merged {
        registry
            .put_manifest(repo, &tag, MEDIA_TYPE_INDEX, &bytes)
            .await
            .map_err(TransferError::Manifest)?;
    }
    Ok(false)
}

/// A signature of one manifest of the image (cosign's scheme).
#[derive(Debug, Clone)]
pub struct Signed {
    /// The manifest (or index) signed.
    pub subject: Digest,
    /// The payload naming it and the signature over that payload.
    pub signature: Signature,
}

/// Add `sigs` to their subjects' signature tags (`sha256-<hex>.sig`) in `repo`: read what the
/// tag holds, merge (another key's or tool's signatures are kept; one already there is not
/// added again), upload the new payloads and write the tag only when it changed.
pub(super) async fn signatures<R: Registry>(
    registry: &R,
    repo: &str,
    sigs: &[Signed],
    dry_run: bool,
) -> Result<Vec<Attached>, TransferError> {
    // Per subject, in the image's order (the index first).
    let mut by_subject: Vec<(&Digest, Vec<Signature>)> = Vec::new();
    for s in sigs {
        match by_subject.iter_mut().find(|(d, _)| *d == &s.subject) {
            Some((_, v)) => v.push(s.signature.clone()),
            None => by_subject.push((&s.subject, vec![s.signature.clone()])),
        }
    }
    let each = by_subject.into_iter().map(|(subject, new)| async move {
        let tag = cosign::signature_tag(subject);
        let mut attached = Attached {
            kind: AttachKind::Signature,
            artifact_type: cosign::MEDIA_TYPE_SIMPLESIGNING.to_string(),
            subject: subject.to_string(),
            digest: String::new(),
            stored: format!("tag {tag}"),
        };
        if dry_run {
            attached.stored = format!("would sign (tag {tag})");
            return Ok(attached);
        }
        let now = registry
            .get_manifest(repo, &tag)
            .await
            .map_err(TransferError::Manifest)?;
        let existing = now.as_ref().map(|m| m.bytes.as_slice());
        let merged =
            cosign::merge_signatures(existing, &new).map_err(|e| TransferError::Attach {
                what: format!("the signature tag {tag} of {repo}"),
                why: e.to_string(),
            })?;
        attached.digest = Digest::of(&merged.manifest).to_string();
        if existing != Some(merged.manifest.as_slice()) {
            put_blobs(registry, repo, &merged.blobs).await?;
            registry
                .put_manifest(repo, &tag, &merged.media_type, &merged.manifest)
                .await
                .map_err(TransferError::Manifest)?;
        }
        Ok::<_, TransferError>(attached)
    });
    futures_util::future::try_join_all(each).await
}

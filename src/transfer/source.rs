//! What `ocibuild copy` carries, read from the source registry: the image graph (every entry of
//! the index, as it is; blobs left at the source repository, to be mounted or streamed, never
//! stored here), the artifacts that refer to the index or a platform manifest (the referrers
//! API, else the referrers tag schema) and the cosign-format signatures under their `.sig`
//! tags. Artifact and signature blobs are small documents, read whole (bounded).

use super::{AttachKind, Attachment, Signed, TransferError};
use crate::digest::Digest;
use crate::oci::read::{GraphReader, Want};
use crate::oci::referrers::{self, Artifact, Subject};
use crate::oci::{BlobAt, Doc, ImageGraph, RepoAt};
use crate::registry::client::RegistryClient;
use crate::sign::cosign::{self, Signature};
use crate::spec::{MEDIA_TYPE_CYCLONEDX, MEDIA_TYPE_IN_TOTO, MEDIA_TYPE_SPDX};
use serde_json::Value;

/// Largest number of artifacts copied per subject.
const MAX_ARTIFACTS: usize = 256;
/// Most blobs one artifact may name (its config and documents).
const MAX_ARTIFACT_BLOBS: usize = 16;
/// Most bytes of artifact and signature blobs one copy holds in memory.
pub const MAX_CARRIED: usize = 256 << 20;

/// What a copy may still hold in memory of attachments' blobs.
#[derive(Debug)]
pub struct Budget {
    left: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { left: MAX_CARRIED }
    }
}

impl Budget {
    /// Count `n` bytes of `what`; an error once the budget is spent.
    fn take(&mut self, n: usize, what: &str) -> Result<(), TransferError> {
        self.left = self.left.checked_sub(n).ok_or_else(|| {
            failed(
                what,
                format!("the attachments of this image exceed {} MiB; ocibuild copies at most that much of them", MAX_CARRIED >> 20),
            )
        })?;
        Ok(())
    }
}

fn failed(what: impl Into<String>, why: impl ToString) -> TransferError {
    TransferError::Source {
        what: what.into(),
        why: why.to_string(),
    }
}

/// The image `reference` (a tag or digest) of `at`, every entry, blobs placed at `at`.
pub async fn read_image(
    client: &RegistryClient,
    at: &RepoAt,
    reference: &str,
) -> Result<ImageGraph, TransferError> {
    let repo = at.repository.as_str();
    let name = format!("{}/{repo}:{reference}", at.host);
    let top = client
        .get_manifest(repo, reference)
        .await
        .map_err(TransferError::Check)?
        .ok_or_else(|| TransferError::Missing {
            repository: repo.to_string(),
            reference: reference.to_string(),
        })?;
    let top = Doc {
        digest: top.digest,
        media_type: top.media_type,
        bytes: top.bytes,
    };
    let mut reader = GraphReader::new(&name, top, Want::Every).map_err(|e| failed(&name, e))?;
    loop {
        let wanted = reader.wanted().map_err(|e| failed(&name, e))?;
        if wanted.is_empty() {
            break;
        }
        let reads = wanted.iter().map(|n| async move {
            match n.kind {
                crate::oci::read::DocKind::Manifest => client
                    .get_manifest(repo, n.digest.as_str())
                    .await?
                    .map(|m| m.bytes)
                    .ok_or_else(|| {
                        crate::registry::error::RegistryError::new(
                            "GET",
                            format!("{}/v2/{repo}/manifests/{}", at.host, n.digest),
                            "the index names a manifest the repository does not have",
                        )
                    }),
                crate::oci::read::DocKind::Config => client.get_blob(repo, &n.digest).await,
            }
        });
        let fetched = futures_util::future::join_all(reads).await;
        for (n, bytes) in wanted.iter().zip(fetched) {
            let bytes = bytes.map_err(TransferError::Check)?;
            reader.give(n, bytes).map_err(|e| failed(&name, e))?;
        }
    }
    reader
        .finish(&mut |_| Ok(vec![BlobAt::Registry(at.clone())]))
        .map_err(|e| failed(&name, e))
}

/// The subjects of `graph` (its top document, then each platform manifest), as artifacts
/// name them.
pub fn subjects(graph: &ImageGraph) -> Vec<Subject> {
    let top = Subject {
        media_type: graph.top.media_type.clone(),
        digest: graph.top.digest.clone(),
        size: graph.top.bytes.len() as u64,
    };
    let children = graph
        .images
        .iter()
        .filter(|_| graph.is_index())
        .map(|i| Subject {
            media_type: i.doc.media_type.clone(),
            digest: i.doc.digest.clone(),
            size: i.doc.bytes.len() as u64,
        });
    std::iter::once(top).chain(children).collect()
}

/// What the artifact type says an artifact is.
fn kind_of(artifact_type: &str) -> AttachKind {
    match artifact_type {
        MEDIA_TYPE_SPDX | MEDIA_TYPE_CYCLONEDX => AttachKind::Sbom,
        MEDIA_TYPE_IN_TOTO => AttachKind::Provenance,
        _ => AttachKind::Other,
    }
}

/// The artifacts referring to `subject` in `repo`, with their blobs.
pub async fn read_artifacts(
    client: &RegistryClient,
    repo: &str,
    subject: &Subject,
    budget: &mut Budget,
) -> Result<Vec<Attachment>, TransferError> {
    let what = format!("the artifacts of {}", subject.digest);
    let list = match client
        .referrers(repo, &subject.digest)
        .await
        .map_err(TransferError::Check)?
    {
        Some(index) => Some(index),
        None => client
            .get_manifest(repo, &referrers::referrers_tag(&subject.digest))
            .await
            .map_err(TransferError::Check)?
            .map(|m| m.bytes),
    };
    let Some(list) = list else {
        return Ok(vec![]);
    };
    let found = referrers::parse_index(&list).map_err(|e| failed(&what, e))?;
    if found.len() > MAX_ARTIFACTS {
        return Err(failed(
            &what,
            format!(
                "{} artifacts (at most {MAX_ARTIFACTS} are copied)",
                found.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for r in found {
        out.push(read_artifact(client, repo, subject, &r.digest, budget).await?);
    }
    Ok(out)
}

/// One artifact manifest of `repo` and every blob it names.
async fn read_artifact(
    client: &RegistryClient,
    repo: &str,
    subject: &Subject,
    digest: &Digest,
    budget: &mut Budget,
) -> Result<Attachment, TransferError> {
    let what = format!("artifact {digest}");
    let m = client
        .get_manifest(repo, digest.as_str())
        .await
        .map_err(TransferError::Check)?
        .ok_or_else(|| failed(&what, "listed as a referrer but not in the repository"))?;
    budget.take(m.bytes.len(), &what)?;
    let doc: Value = serde_json::from_slice(&m.bytes).map_err(|e| failed(&what, e))?;
    let artifact_type = doc
        .get("artifactType")
        .or_else(|| doc.pointer("/config/mediaType"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let named = doc.pointer("/config/digest").into_iter().chain(
        doc["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| &l["digest"]),
    );
    let mut blobs = Vec::new();
    for d in named {
        let d: Digest = d
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| failed(&what, "a blob descriptor without a valid digest"))?;
        if blobs.iter().any(|(have, _)| *have == d) {
            continue;
        }
        if blobs.len() == MAX_ARTIFACT_BLOBS {
            return Err(failed(
                &what,
                format!("it names more than {MAX_ARTIFACT_BLOBS} blobs"),
            ));
        }
        let bytes = client
            .get_blob(repo, &d)
            .await
            .map_err(TransferError::Check)?;
        budget.take(bytes.len(), &what)?;
        blobs.push((d, bytes));
    }
    Ok(Attachment {
        kind: kind_of(&artifact_type),
        artifact: Artifact {
            artifact_type,
            subject: subject.clone(),
            manifest: m.bytes,
            digest: m.digest,
            blobs,
        },
    })
}

/// The signatures of `subject` in `repo` (its `.sig` tag), payloads read.
pub async fn read_signatures(
    client: &RegistryClient,
    repo: &str,
    subject: &Digest,
    budget: &mut Budget,
) -> Result<Vec<Signed>, TransferError> {
    let tag = cosign::signature_tag(subject);
    let Some(m) = client
        .get_manifest(repo, &tag)
        .await
        .map_err(TransferError::Check)?
    else {
        return Ok(vec![]);
    };
    budget.take(m.bytes.len(), &tag)?;
    let found = cosign::signatures_in(&m.bytes).map_err(|e| failed(&tag, e))?;
    if found.len() > MAX_ARTIFACTS {
        return Err(failed(
            &tag,
            format!(
                "{} signatures (at most {MAX_ARTIFACTS} are copied)",
                found.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (payload, signature_b64) in found {
        let payload = client
            .get_blob(repo, &payload)
            .await
            .map_err(TransferError::Check)?;
        budget.take(payload.len(), &tag)?;
        out.push(Signed {
            subject: subject.clone(),
            signature: Signature {
                payload,
                signature_b64,
            },
        });
    }
    Ok(out)
}

//! What `ocibuild copy` carries, read from the source registry: the image graph (every entry of
//! the index, as it is; blobs left at the source repository, to be mounted or streamed, never
//! stored here), the artifacts that refer to the index or a platform manifest (the referrers
//! API, else the referrers tag schema) and the cosign-format signatures under their `.sig`
//! tags. Artifact and signature blobs are small documents, read whole (bounded).

use super::{AttachKind, Attachment, Signed, TransferError};
use crate::digest::Digest;
use crate::oci::read::{GraphReader, Want};
use crate::oci::referrers::{self, Artifact, Subject};
use crate::oci::{BlobAt, BlobRef, Doc, ImageGraph, RepoAt};
use crate::registry::client::RegistryClient;
use crate::registry::error::RegistryError;
use crate::sign::cosign::{self, Signature};
use crate::spec::{MEDIA_TYPE_CYCLONEDX, MEDIA_TYPE_IN_TOTO, MEDIA_TYPE_SPDX};
use serde_json::Value;

/// Largest number of artifacts copied per subject.
const MAX_ARTIFACTS: usize = 1024;
/// Largest number of signatures copied per subject.
const MAX_SIGNATURES: usize = 1024;
/// Most blobs one artifact may name (its config and documents).
const MAX_ARTIFACT_BLOBS: usize = 256;
/// Biggest attachment blob read whole; bigger ones are streamed by the transfer.
const SMALL_BLOB: u64 = 64 << 10;
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

/// The referrers list of `digest` in `repo`, and how it was found: the referrers API's
/// answer, else the index under the referrers tag (asked only when `ask_tag`: a caller that
/// has the tag list knows whether it is there); `None` when there is neither.
pub async fn referrers_list(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
    ask_tag: bool,
) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
    if let Some(list) = client.referrers(repo, digest).await? {
        return Ok(Some((list, "referrers API".to_string())));
    }
    if !ask_tag {
        return Ok(None);
    }
    let tag = referrers::referrers_tag(digest);
    let found = client.get_manifest(repo, &tag).await?;
    Ok(found.map(|m| (m.bytes, format!("tag {tag}"))))
}

/// The artifacts referring to `subject` in `at`, and the blobs of theirs too big to hold
/// (streamed or mounted by the transfer like image layers, before the artifacts are stored).
pub async fn read_artifacts(
    client: &RegistryClient,
    at: &RepoAt,
    subject: &Subject,
    budget: &mut Budget,
) -> Result<(Vec<Attachment>, Vec<BlobRef>), TransferError> {
    let repo = at.repository.as_str();
    let what = format!("the artifacts of {}", subject.digest);
    let list = referrers_list(client, repo, &subject.digest, true)
        .await
        .map_err(TransferError::Check)?;
    let Some((list, _)) = list else {
        return Ok((vec![], vec![]));
    };
    let found = referrers::parse_index(&list).map_err(|e| failed(&what, e))?;
    if found.len() > MAX_ARTIFACTS {
        return Err(failed(
            &what,
            format!(
                "{} artifacts refer to it, more than the {MAX_ARTIFACTS} a copy carries; nothing was copied (copy the image without them with another tool, or prune the artifacts)",
                found.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut streamed = Vec::new();
    for r in found {
        let (a, big) = read_artifact(client, at, subject, &r.digest, budget).await?;
        out.push(a);
        streamed.extend(big);
    }
    Ok((out, streamed))
}

/// One artifact manifest of `at`: its small blobs read (the empty config, a document of a few
/// KiB), its bigger ones named for the transfer to stream.
async fn read_artifact(
    client: &RegistryClient,
    at: &RepoAt,
    subject: &Subject,
    digest: &Digest,
    budget: &mut Budget,
) -> Result<(Attachment, Vec<BlobRef>), TransferError> {
    let repo = at.repository.as_str();
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
    let named = doc
        .get("config")
        .into_iter()
        .chain(doc["layers"].as_array().into_iter().flatten());
    let mut blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
    let mut big: Vec<BlobRef> = Vec::new();
    for (n, desc) in named.enumerate() {
        if n > MAX_ARTIFACT_BLOBS {
            return Err(failed(
                &what,
                format!("it names more than {MAX_ARTIFACT_BLOBS} blobs"),
            ));
        }
        let d: Digest = desc["digest"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| failed(&what, "a blob descriptor without a valid digest"))?;
        let size = desc["size"].as_u64().unwrap_or(u64::MAX);
        if blobs.iter().any(|(have, _)| *have == d) || big.iter().any(|b| b.digest == d) {
            continue;
        }
        if size > SMALL_BLOB {
            big.push(BlobRef {
                digest: d,
                size,
                media_type: desc["mediaType"].as_str().unwrap_or_default().to_string(),
                at: vec![BlobAt::Registry(at.clone())],
            });
            continue;
        }
        let bytes = client
            .get_blob(repo, &d)
            .await
            .map_err(TransferError::Check)?;
        budget.take(bytes.len(), &what)?;
        blobs.push((d, bytes));
    }
    let attachment = Attachment {
        kind: kind_of(&artifact_type),
        artifact: Artifact {
            artifact_type,
            subject: subject.clone(),
            manifest: m.bytes,
            digest: m.digest,
            blobs,
        },
    };
    Ok((attachment, big))
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
    if found.len() > MAX_SIGNATURES {
        return Err(failed(
            &tag,
            format!(
                "{} signatures, more than the {MAX_SIGNATURES} a copy carries; nothing was copied",
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

//! Copies image graphs into a registry. All blobs of all images go through one bounded pool;
//! each digest is handled by one task that serves every repository needing it in turn: HEAD
//! (skip what exists), else mount (from a repository that got it earlier in this run, or from
//! the registry base's repository in the same registry; a 202 falls back to an upload), else a
//! one-request streamed upload from its file, else a stream from the base's registry. Then,
//! per image whose blobs all arrived: platform manifests by digest, the index by digest, then
//! each tag, so a tag never points at anything incomplete.
//!
//! A registry that already has an image's index by digest has everything under it (the
//! registry checks references on manifest PUT): such an image only gets its tags.
//!
//! The registry is behind the [`Registry`] trait: [`Remote`] is the real one; the unit tests
//! use an in-memory one. Never parses layouts or annotations: where each blob can be had is
//! carried by the graph (`oci::BlobAt`). Imports `digest`, `oci`, `registry`, `sign` (the
//! signature tags), `spec`.

#![allow(clippy::result_large_err)] // RegistryError travels in results; see registry::client.

mod attach;
mod cache;
#[cfg(test)]
pub(crate) mod memory;
mod promote;
mod remote;
mod report;
mod source;
#[cfg(test)]
mod tests;

pub use attach::{AttachKind, Attached, Attachment, Signed};
pub use cache::{store_cache, CacheDoc};
pub use promote::{retag, Retagged};
pub use remote::Remote;
pub use report::{BlobOutcome, Event, PushReport, TransferError};

pub use source::{read_artifacts, read_image, read_signatures, referrers_list, subjects, Budget};

use crate::digest::Digest;
use crate::oci::{BlobRef, ImageGraph, RepoAt};
use crate::registry::client::Mount;
use crate::registry::error::RegistryError;
use crate::registry::manifests::{FetchedManifest, Stored};
use futures_util::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;
use url::Url;

/// One image to copy: whose it is, where it goes, and its tags.
#[derive(Debug, Clone)]
pub struct TransferImage {
    /// Service name.
    pub service: String,
    /// Full repository path in the registry (prefix included).
    pub repository: String,
    /// The image, with where each blob can be had.
    pub graph: ImageGraph,
    /// Tags to write.
    pub tags: Vec<String>,
    /// Artifacts to attach after the manifests, before the tags.
    pub attachments: Vec<Attachment>,
    /// Signatures to add after the manifests, before the tags.
    pub signatures: Vec<Signed>,
    /// Blobs the attachments need beyond the image's own (a copy's big SBOMs, left at the
    /// source to be streamed): sent even when the registry has the image already.
    pub attachment_blobs: Vec<BlobRef>,
}

/// Settings of a transfer.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Blob operations in flight at once.
    pub jobs: usize,
    /// Only look (HEAD requests); write nothing.
    pub dry_run: bool,
}

/// Where the bytes of an upload come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A file holding the blob.
    File(&'a Path),
    /// A repository, perhaps of another registry: streamed from there, never stored.
    Registry(&'a RepoAt),
    /// A small document made for this push (an attachment's blob).
    Bytes(&'a [u8]),
}

/// The destination registry: the operations a transfer needs, nothing more.
#[allow(async_fn_in_trait)] // used with concrete types on the caller's runtime; no Send bound needed
pub trait Registry: Sync {
    /// `host[:port]`, as reports and references spell it.
    fn host(&self) -> &str;
    /// Whether `repo` has the manifest `reference` (a digest).
    async fn manifest_exists(&self, repo: &str, reference: &str) -> Result<bool, RegistryError>;
    /// What tag `tag` of `repo` names now (`None`: no such tag).
    async fn tag_digest(&self, repo: &str, tag: &str) -> Result<Option<Digest>, RegistryError>;
    /// Whether `repo` has blob `digest`.
    async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, RegistryError>;
    /// Mount `digest` into `repo` from repository `from` of the same registry.
    async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount, RegistryError>;
    /// Upload `blob` into `repo` from `source`, into `session` if a mount opened one.
    async fn upload(
        &self,
        repo: &str,
        blob: &BlobRef,
        source: Source<'_>,
        session: Option<Url>,
    ) -> Result<(), RegistryError>;
    /// Put a manifest or index under `reference` (a digest or a tag).
    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Stored, RegistryError>;
    /// The referrers index of `digest` from the referrers API (`None`: no such API).
    async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError>;
    /// The manifest `reference` (a tag or digest) of `repo`, if there is one.
    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError>;
}

/// One blob and the repositories needing it, in image order.
struct Work {
    blob: BlobRef,
    repositories: Vec<String>,
}

/// Each (repository, digest)'s outcome, with the blob's size.
type Outcomes = HashMap<(String, Digest), (Result<BlobOutcome, RegistryError>, u64)>;

/// Copy `images` into `registry`. Returns one report per image, in order (failed ones carry
/// `error` and no tags).
pub async fn transfer<R: Registry>(
    registry: &R,
    images: &[TransferImage],
    opts: &TransferOptions,
    progress: &(dyn Fn(Event) + Send + Sync),
) -> Vec<PushReport> {
    let started = Instant::now();
    let mut reports: Vec<PushReport> = images
        .iter()
        .map(|i| PushReport::new(i, registry.host(), opts.dry_run))
        .collect();
    let complete = present(registry, images, &mut reports).await;
    let work = plan(images, &complete, &mut reports, progress);
    let outcomes = send_blobs(registry, work, opts, progress).await;
    let finish = images.iter().enumerate().map(|(i, img)| {
        let report = reports[i].clone();
        let outcomes = &outcomes;
        let done = Finish {
            registry,
            image: img,
            complete: complete[i],
            dry_run: opts.dry_run,
        };
        async move {
            let mut report = done.run(report, outcomes).await;
            report.duration_ms = started.elapsed().as_millis() as u64;
            progress(Event::Service {
                service: img.service.clone(),
                error: report.error.clone(),
            });
            report
        }
    });
    futures_util::future::join_all(finish).await
}

/// Which images' indexes are already in their repositories (checked all at once: on a warm
/// push this is nearly all the work). A failed check fails that image.
async fn present<R: Registry>(
    registry: &R,
    images: &[TransferImage],
    reports: &mut [PushReport],
) -> Vec<bool> {
    let checks = images
        .iter()
        .map(|img| registry.manifest_exists(&img.repository, img.graph.top.digest.as_str()));
    let found = futures_util::future::join_all(checks).await;
    found
        .into_iter()
        .zip(reports.iter_mut())
        .map(|(r, report)| match r {
            Ok(found) => found,
            Err(e) => {
                report.error = Some(TransferError::Check(e).to_string());
                false
            }
        })
        .collect()
}

/// The blobs to send, once per digest, each with the repositories needing it in image order;
/// announces each image's share.
fn plan(
    images: &[TransferImage],
    complete: &[bool],
    reports: &mut [PushReport],
    progress: &(dyn Fn(Event) + Send + Sync),
) -> BTreeMap<Digest, Work> {
    let mut work: BTreeMap<Digest, Work> = BTreeMap::new();
    for (i, img) in images.iter().enumerate() {
        if reports[i].error.is_some() {
            continue;
        }
        let own: &[BlobRef] = if complete[i] { &[] } else { &img.graph.blobs };
        let blobs: Vec<&BlobRef> = own.iter().chain(&img.attachment_blobs).collect();
        let (n, bytes) = (blobs.len(), blobs.iter().map(|b| b.size).sum());
        progress(Event::Planned {
            service: img.service.clone(),
            repository: img.repository.clone(),
            blobs: n,
            bytes,
        });
        if complete[i] {
            reports[i].blobs_skipped = img.graph.blobs.len();
        }
        for b in blobs {
            let w = work.entry(b.digest.clone()).or_insert_with(|| Work {
                blob: b.clone(),
                repositories: Vec::new(),
            });
            // Every place any image can have it from (a file wins over a registry).
            for at in &b.at {
                if !w.blob.at.contains(at) {
                    w.blob.at.push(at.clone());
                }
            }
            w.blob
                .at
                .sort_by_key(|a| !matches!(a, crate::oci::BlobAt::File(_)));
            if !w.repositories.contains(&img.repository) {
                w.repositories.push(img.repository.clone());
            }
        }
    }
    work
}

/// One task per digest, at most `jobs` at once, each serving its repositories in order (the
/// first that gets the blob is where the next ones mount it from).
async fn send_blobs<R: Registry>(
    registry: &R,
    work: BTreeMap<Digest, Work>,
    opts: &TransferOptions,
    progress: &(dyn Fn(Event) + Send + Sync),
) -> Outcomes {
    let tasks = work.into_values().map(|w| async move {
        let mut have_from: Option<String> = None;
        let mut out = Vec::new();
        for repo in w.repositories {
            let r = put_blob(registry, &repo, &w.blob, have_from.as_deref(), opts.dry_run).await;
            if let Ok(outcome) = &r {
                progress(Event::Blob {
                    repository: repo.clone(),
                    digest: w.blob.digest.to_string(),
                    size: w.blob.size,
                    outcome: *outcome,
                });
                have_from = Some(repo.clone());
            }
            out.push(((repo, w.blob.digest.clone()), (r, w.blob.size)));
        }
        out
    });
    let results: Vec<_> = stream::iter(tasks)
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

/// Put one blob into `repo`: skip it if there, else mount it (from `from`, a repository of
/// this run that has it, or from the base's repository in the same registry), else upload it
/// from its file, else stream it from the base's registry.
async fn put_blob<R: Registry>(
    registry: &R,
    repo: &str,
    blob: &BlobRef,
    from: Option<&str>,
    dry_run: bool,
) -> Result<BlobOutcome, RegistryError> {
    let digest = &blob.digest;
    if registry.blob_exists(repo, digest, blob.size).await? {
        return Ok(BlobOutcome::Skipped);
    }
    let same_registry = blob.registry().filter(|b| b.host == registry.host());
    let mount_from = from.or(same_registry.map(|b| b.repository.as_str()));
    if dry_run {
        return Ok(match (mount_from, blob.file()) {
            (Some(_), _) => BlobOutcome::WouldMount,
            (None, Some(_)) => BlobOutcome::WouldUpload,
            (None, None) => BlobOutcome::WouldCopy,
        });
    }
    let mut session = None;
    if let Some(from) = mount_from {
        // A mount that fails or answers 202 falls back to an upload.
        match registry.mount(repo, digest, from).await {
            Ok(Mount::Mounted) => return Ok(BlobOutcome::Mounted),
            Ok(Mount::Upload(s)) => session = Some(s),
            Err(_) => {}
        }
    }
    if let Some(path) = blob.file() {
        registry
            .upload(repo, blob, Source::File(path), session)
            .await?;
        return Ok(BlobOutcome::Uploaded);
    }
    let Some(base) = blob.registry() else {
        return Err(RegistryError::new(
            "PUT",
            format!("{}/v2/{repo}/blobs/uploads/", registry.host()),
            format!("blob {digest} has neither a file nor a repository to come from"),
        ));
    };
    registry
        .upload(repo, blob, Source::Registry(base), session)
        .await
        .map_err(|mut e| {
            if e.status == Some(404) {
                e.hint = Some(format!(
                    "base layer {digest} is no longer in {}/{}: rebuild with `--pull` against the base as it is now",
                    base.host, base.repository
                ));
            }
            e
        })?;
    Ok(BlobOutcome::Copied)
}

/// The end of one image: account for its blobs, then write manifests, index and tags.
struct Finish<'a, R> {
    registry: &'a R,
    image: &'a TransferImage,
    complete: bool,
    dry_run: bool,
}

impl<R: Registry> Finish<'_, R> {
    async fn run(&self, mut report: PushReport, outcomes: &Outcomes) -> PushReport {
        // A complete image's own blobs were not sent (no outcomes); its attachments' were.
        if report.error.is_none() {
            if let Err(e) = self.account(&mut report, outcomes) {
                report.error = Some(e.to_string());
            }
        }
        if report.error.is_none() {
            if let Err(e) = self.write_manifests(&mut report).await {
                report.error = Some(e.to_string());
            }
        }
        if report.error.is_some() {
            // Nothing was tagged: the report must not claim tags.
            report.tags.clear();
        }
        report
    }

    /// Count what happened to each blob of this image; the first failure fails the image.
    fn account(&self, report: &mut PushReport, outcomes: &Outcomes) -> Result<(), TransferError> {
        let repo = &self.image.repository;
        let mut first_error = None;
        for b in self
            .image
            .graph
            .blobs
            .iter()
            .chain(&self.image.attachment_blobs)
        {
            match outcomes.get(&(repo.clone(), b.digest.clone())) {
                Some((Ok(o), size)) => report.count(*o, *size),
                Some((Err(e), _)) => {
                    first_error.get_or_insert_with(|| TransferError::Blob {
                        digest: b.digest.clone(),
                        source: e.clone(),
                    });
                }
                None => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Platform manifests by digest, then the index by digest (unless the registry has it),
    /// then the attachments, then each tag. A dry run only says what would be attached.
    async fn write_manifests(&self, report: &mut PushReport) -> Result<(), TransferError> {
        let (registry, repo, graph) = (self.registry, &self.image.repository, &self.image.graph);
        let top = &graph.top;
        if !self.complete && !self.dry_run {
            for m in graph.manifest_docs() {
                registry
                    .put_manifest(repo, m.digest.as_str(), &m.media_type, &m.bytes)
                    .await
                    .map_err(TransferError::Manifest)?;
            }
            registry
                .put_manifest(repo, top.digest.as_str(), &top.media_type, &top.bytes)
                .await
                .map_err(TransferError::Manifest)?;
        }
        // Artifacts and signatures at once; the tags wait for both.
        let (artifacts, sigs) = (&self.image.attachments, &self.image.signatures);
        let (a, s) = futures_util::try_join!(
            attach::artifacts(registry, repo, artifacts, self.dry_run),
            attach::signatures(registry, repo, sigs, self.dry_run)
        )?;
        report.attached = a.into_iter().chain(s).collect();
        if self.dry_run {
            return Ok(());
        }
        for t in &self.image.tags {
            self.write_tag(t).await?;
        }
        Ok(())
    }

    /// Point tag `t` at the image (see [`put_tag`]).
    async fn write_tag(&self, t: &str) -> Result<(), TransferError> {
        let (registry, repo, top) = (self.registry, &self.image.repository, &self.image.graph.top);
        put_tag(registry, repo, top, t).await.map(|_| ())
    }
}

/// What writing a tag did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagWrite {
    /// It named the image already: nothing written.
    Unchanged,
    /// Written; it named nothing before.
    Written,
    /// Written; it named this other image before.
    Moved(Digest),
}

/// Point tag `t` of `repo` at `top`, unless it already does (a rerun: an immutable repository
/// refuses even the same write). A tag that names another image in a repository that refuses
/// to move it is an error naming both digests.
pub async fn put_tag<R: Registry>(
    registry: &R,
    repo: &str,
    top: &crate::oci::Doc,
    t: &str,
) -> Result<TagWrite, TransferError> {
    // A failed look is no reason to stop: the PUT says what the registry thinks.
    let now = registry.tag_digest(repo, t).await.ok().flatten();
    if now.as_ref() == Some(&top.digest) {
        return Ok(TagWrite::Unchanged);
    }
    match registry
        .put_manifest(repo, t, &top.media_type, &top.bytes)
        .await
    {
        Ok(_) => Ok(now.map_or(TagWrite::Written, TagWrite::Moved)),
        Err(e) if e.is_immutable_tag() => Err(TransferError::TagImmutable {
            tag: t.to_string(),
            repository: repo.to_string(),
            existing: now.map_or_else(|| "another image".to_string(), |d| d.to_string()),
            wanted: top.digest.clone(),
        }),
        Err(e) => Err(TransferError::Manifest(e)),
    }
}

//! `ocibuild push`: copies images from OCI layouts to a registry. All blobs of all services go
//! through one bounded pool; each digest is handled by one task that serves every repository
//! needing it in turn: HEAD (skip what exists), else mount from a repository that got it
//! earlier in this run (a 202 falls back to an upload), else a one-request streamed upload.
//! Then, per service whose blobs all arrived: platform manifests by digest, the index by
//! digest, then each tag, so a tag never points at anything incomplete.
//!
//! Layers of a registry base (left out of the layout by `build`; found through the manifests'
//! `org.opencontainers.image.base.name` annotation) are never downloaded: in the same registry
//! they are mounted from the base's repository; otherwise, or if the mount is refused, they
//! are streamed from the base's registry straight into the upload.
//!
//! A registry that already has a service's index by digest has everything under it (the
//! registry checks references on manifest PUT): such a service only gets its tags.
//! Imports `digest`, `layout`, `reference`, `registry`, `spec`.

#![allow(clippy::result_large_err)] // RegistryError travels in results; see registry::client.

use crate::digest::Digest;
use crate::layout::Layout;
use crate::reference::ImageRef;
use crate::registry::client::{BlobSource, Mount, RegistryClient};
use crate::registry::clients::Clients;
use crate::registry::error::RegistryError;
use crate::spec::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_INDEX,
};
use futures_util::stream::{self, StreamExt};
use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// One service's image to push.
#[derive(Debug, Clone)]
pub struct PushImage {
    /// Service name.
    pub service: String,
    /// Full repository path in the registry (prefix included).
    pub repository: String,
    /// The service's OCI layout.
    pub layout: PathBuf,
    /// Tags to write; empty: the layout's own ref names.
    pub tags: Vec<String>,
}

/// Settings of a push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blob operations in flight at once.
    pub jobs: usize,
    /// Only look (HEAD requests); write nothing.
    pub dry_run: bool,
}

/// What happened to one blob in one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobOutcome {
    /// Uploaded.
    Uploaded,
    /// Mounted from another repository of this run, or from the base image's repository.
    Mounted,
    /// Streamed from the base image's registry into this one (never stored locally).
    Copied,
    /// Already there.
    Skipped,
    /// (dry run) would be uploaded.
    WouldUpload,
    /// (dry run) would be mounted.
    WouldMount,
    /// (dry run) would be copied from the base image's registry.
    WouldCopy,
}

/// Progress events, rendered by the CLI.
#[derive(Debug, Clone)]
pub enum Event {
    /// What a service will transfer: its blob count and bytes (0 when the registry has it all).
    Planned {
        /// Service name.
        service: String,
        /// Repository.
        repository: String,
        /// Blobs to check, mount or upload.
        blobs: usize,
        /// Their total size.
        bytes: u64,
    },
    /// One blob done in one repository.
    Blob {
        /// Repository.
        repository: String,
        /// Blob digest.
        digest: String,
        /// Blob size.
        size: u64,
        /// What happened.
        outcome: BlobOutcome,
    },
    /// A service finished (tags written) or failed.
    Service {
        /// Service name.
        service: String,
        /// Error, if it failed.
        error: Option<String>,
    },
}

/// The result for one service.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Service name.
    pub service: String,
    /// Full repository path.
    pub repository: String,
    /// Registry host.
    pub registry: String,
    /// Digest of what the tags point at (the image index).
    pub index_digest: String,
    /// The immutable reference for deployment: `registry/repository@digest`.
    pub reference: String,
    /// Platform manifest digests.
    pub manifest_digests: Vec<String>,
    /// Tags written (or, on a dry run, that would be).
    pub tags: Vec<String>,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Base layers streamed from the base image's registry.
    pub blobs_copied: usize,
    /// Bytes streamed from the base image's registry.
    pub bytes_copied: u64,
    /// Blobs already present.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Wall time of this service's push, in milliseconds.
    pub duration_ms: u64,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Why the service failed; `None` on success.
    pub error: Option<String>,
    /// The registry base the image was built on (`org.opencontainers.image.base.name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_name: Option<String>,
    /// The digest of that base (`org.opencontainers.image.base.digest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    /// Scan results, when asked for (`push --scan`; filled in by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<serde_json::Value>,
}

/// One digest's outcome in each repository that needed it.
type DigestResult = (
    Digest,
    u64,
    Vec<(String, Result<BlobOutcome, RegistryError>)>,
);

/// Where a registry base lives: its registry's API host and its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BaseRepo {
    host: String,
    repository: String,
}

/// One blob to push: its file in the layout, and/or the base repository holding it.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    size: u64,
    file: Option<PathBuf>,
    base: Option<BaseRepo>,
}

struct Loaded {
    index: (Digest, Vec<u8>, String),
    manifests: Vec<(Digest, Vec<u8>, String)>,
    blobs: Vec<Blob>,
    tags: Vec<String>,
    base: Option<(String, String)>,
}

/// The base named in `annotations`, if any.
fn base_of(
    annotations: Option<&HashMap<String, String>>,
    layout: &std::path::Path,
) -> Result<Option<BaseRepo>, String> {
    let Some(name) = annotations.and_then(|a| a.get(ANNOTATION_BASE_NAME)) else {
        return Ok(None);
    };
    let r = ImageRef::parse(name).map_err(|e| {
        format!(
            "{}: annotation {ANNOTATION_BASE_NAME}: {e}; rebuild the layout",
            layout.display()
        )
    })?;
    Ok(Some(BaseRepo {
        host: r.api_host().to_string(),
        repository: r.repository.clone(),
    }))
}

fn load(img: &PushImage) -> Result<Loaded, String> {
    let layout = Layout::open(&img.layout).map_err(|e| e.to_string())?;
    let top = layout.find(None).map_err(|e| e.to_string())?.clone();
    let digest = Digest::from_oci(top.digest()).map_err(|e| e.to_string())?;
    let media = top.media_type().to_string();
    let bytes = layout.read_blob(&digest).map_err(|e| e.to_string())?;
    let tags = if img.tags.is_empty() {
        let mut refs = layout.refs();
        refs.dedup();
        if refs.is_empty() {
            vec!["latest".to_string()]
        } else {
            refs
        }
    } else {
        img.tags.clone()
    };
    let mut manifests = Vec::new();
    let mut manifest_bytes = Vec::new();
    let is_index = media == MEDIA_TYPE_INDEX || media == MEDIA_TYPE_DOCKER_LIST;
    // The top document's annotations name the registry base, if any.
    let mut top_annotations = None;
    if is_index {
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: invalid image index: {e}", img.layout.display()))?;
        top_annotations = index.annotations().clone();
        for m in index.manifests() {
            let d = Digest::from_oci(m.digest()).map_err(|e| e.to_string())?;
            let b = layout.read_blob(&d).map_err(|e| e.to_string())?;
            manifest_bytes.push(b.clone());
            manifests.push((d, b, m.media_type().to_string()));
        }
    } else {
        manifest_bytes.push(bytes.clone());
    }
    let mut blobs: Vec<Blob> = Vec::new();
    for b in &manifest_bytes {
        let m: ImageManifest = serde_json::from_slice(b)
            .map_err(|e| format!("{}: invalid manifest: {e}", img.layout.display()))?;
        if !is_index {
            top_annotations = m.annotations().clone();
        }
        let base = base_of(m.annotations().as_ref(), &img.layout)?;
        for (i, d) in std::iter::once(m.config()).chain(m.layers()).enumerate() {
            let digest = Digest::from_oci(d.digest()).map_err(|e| e.to_string())?;
            let path = layout.blob_path(&digest);
            let len = std::fs::metadata(&path).map(|m| m.len()).ok();
            let file = (len == Some(d.size())).then_some(path);
            // Only layers may be left in the base's registry (the config is always ours).
            let base = base.clone().filter(|_| i > 0);
            if file.is_none() && base.is_none() {
                return Err(format!(
                    "{}: blob {digest} is missing or has the wrong size; rebuild the layout",
                    img.layout.display()
                ));
            }
            if !blobs.iter().any(|x| x.digest == digest) {
                blobs.push(Blob {
                    digest,
                    size: d.size(),
                    file,
                    base,
                });
            }
        }
    }
    let base = top_annotations.and_then(|a| {
        Some((
            a.get(ANNOTATION_BASE_NAME)?.clone(),
            a.get(ANNOTATION_BASE_DIGEST).cloned().unwrap_or_default(),
        ))
    });
    Ok(Loaded {
        index: (digest, bytes, media),
        manifests,
        blobs,
        tags,
        base,
    })
}

/// Push `images` through `client`; base layers held by other registries are read through
/// `sources`. Returns one report per image (failed ones carry `error`).
pub async fn push(
    client: &RegistryClient,
    sources: &Clients,
    images: &[PushImage],
    opts: &PushOptions,
    progress: &(dyn Fn(Event) + Send + Sync),
) -> Vec<PushReport> {
    let started = Instant::now();
    let host = client
        .base()
        .host_str()
        .map_or(String::new(), |h| match client.base().port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        });
    let mut reports: Vec<PushReport> = Vec::new();
    let mut loaded: Vec<Option<Loaded>> = Vec::new();
    for img in images {
        let mut r = PushReport {
            service: img.service.clone(),
            repository: img.repository.clone(),
            registry: host.clone(),
            index_digest: String::new(),
            reference: String::new(),
            manifest_digests: vec![],
            tags: vec![],
            blobs_uploaded: 0,
            blobs_mounted: 0,
            blobs_copied: 0,
            bytes_copied: 0,
            blobs_skipped: 0,
            bytes_uploaded: 0,
            duration_ms: 0,
            dry_run: opts.dry_run,
            error: None,
            base_name: None,
            base_digest: None,
            scan: None,
        };
        match load(img) {
            Ok(l) => {
                r.index_digest = l.index.0.to_string();
                r.reference = format!("{host}/{}@{}", img.repository, l.index.0);
                r.manifest_digests = l.manifests.iter().map(|m| m.0.to_string()).collect();
                r.tags = l.tags.clone();
                if let Some((name, digest)) = &l.base {
                    r.base_name = Some(name.clone());
                    r.base_digest = Some(digest.clone());
                }
                loaded.push(Some(l));
            }
            Err(e) => {
                r.error = Some(format!("reading layout: {e}"));
                loaded.push(None);
            }
        }
        reports.push(r);
    }

    // Services whose index is already in their repository need only their tags.
    // (Checked for all services at once: on a warm push this is nearly all the work.)
    let checks = loaded.iter().enumerate().map(|(i, l)| async move {
        match l {
            Some(l) => Some(
                client
                    .manifest_exists(&images[i].repository, l.index.0.as_str())
                    .await,
            ),
            None => None,
        }
    });
    let mut complete = vec![false; images.len()];
    for (i, c) in futures_util::future::join_all(checks)
        .await
        .into_iter()
        .enumerate()
    {
        match c {
            Some(Ok(found)) => complete[i] = found,
            Some(Err(e)) => reports[i].error = Some(e.to_string()),
            None => {}
        }
    }

    // One task per digest, serving every repository that needs it, in service order.
    let mut by_digest: BTreeMap<Digest, (Blob, Vec<String>)> = BTreeMap::new();
    for (i, l) in loaded.iter().enumerate() {
        let Some(l) = l else { continue };
        if reports[i].error.is_some() {
            continue;
        }
        let (n, bytes) = if complete[i] {
            (0, 0)
        } else {
            (l.blobs.len(), l.blobs.iter().map(|b| b.size).sum())
        };
        progress(Event::Planned {
            service: images[i].service.clone(),
            repository: images[i].repository.clone(),
            blobs: n,
            bytes,
        });
        if complete[i] {
            reports[i].blobs_skipped = l.blobs.len();
            continue;
        }
        for b in &l.blobs {
            let e = by_digest
                .entry(b.digest.clone())
                .or_insert_with(|| (b.clone(), Vec::new()));
            // A layout holding the file wins over one that left it in the base's registry.
            if e.0.file.is_none() {
                e.0.file = b.file.clone();
            }
            if e.0.base.is_none() {
                e.0.base = b.base.clone();
            }
            if !e.1.contains(&images[i].repository) {
                e.1.push(images[i].repository.clone());
            }
        }
    }
    let host = &host;
    let results: Vec<DigestResult> = stream::iter(by_digest.into_iter().map(
        |(digest, (blob, repos))| async move {
            let size = blob.size;
            let mut have_from: Option<String> = None;
            let mut out = Vec::new();
            for repo in repos {
                let r = push_blob(
                    Target {
                        client,
                        host,
                        sources,
                        dry_run: opts.dry_run,
                    },
                    &repo,
                    &blob,
                    have_from.as_deref(),
                )
                .await;
                if let Ok(outcome) = &r {
                    progress(Event::Blob {
                        repository: repo.clone(),
                        digest: digest.to_string(),
                        size,
                        outcome: *outcome,
                    });
                    have_from = Some(repo.clone());
                }
                out.push((repo, r));
            }
            (digest, size, out)
        },
    ))
    .buffer_unordered(opts.jobs.max(1))
    .collect()
    .await;

    let mut outcome: HashMap<(String, Digest), (Result<BlobOutcome, RegistryError>, u64)> =
        HashMap::new();
    for (digest, size, per_repo) in results {
        for (repo, r) in per_repo {
            outcome.insert((repo, digest.clone()), (r, size));
        }
    }

    // Per service: account for its blobs, then manifests, index, tags.
    let finish = images.iter().enumerate().map(|(i, img)| {
        let l = loaded[i].as_ref();
        let mut report = reports[i].clone();
        let outcome = &outcome;
        let is_complete = complete[i];
        async move {
            if let (Some(l), None) = (l, &report.error) {
                if !is_complete {
                    for Blob { digest: d, .. } in &l.blobs {
                        match outcome.get(&(img.repository.clone(), d.clone())) {
                            Some((Ok(o), size)) => match o {
                                BlobOutcome::Uploaded | BlobOutcome::WouldUpload => {
                                    report.blobs_uploaded += 1;
                                    report.bytes_uploaded += size;
                                }
                                BlobOutcome::Mounted | BlobOutcome::WouldMount => {
                                    report.blobs_mounted += 1
                                }
                                BlobOutcome::Copied | BlobOutcome::WouldCopy => {
                                    report.blobs_copied += 1;
                                    report.bytes_copied += size;
                                }
                                BlobOutcome::Skipped => report.blobs_skipped += 1,
                            },
                            Some((Err(e), _)) if report.error.is_none() => {
                                report.error = Some(format!("blob {d}: {e}"));
                            }
                            _ => {}
                        }
                    }
                }
                if report.error.is_none() && !opts.dry_run {
                    if let Err(e) = write_manifests(client, &img.repository, l, is_complete).await {
                        report.error = Some(e.to_string());
                    }
                }
            }
            report.duration_ms = started.elapsed().as_millis() as u64;
            if report.error.is_some() {
                // Nothing was tagged: the report must not claim tags.
                report.tags.clear();
            }
            progress(Event::Service {
                service: img.service.clone(),
                error: report.error.clone(),
            });
            report
        }
    });
    futures_util::future::join_all(finish).await
}

/// Where blobs go: the destination client (and its `host[:port]`), the clients of base
/// registries, and whether to write at all.
#[derive(Clone, Copy)]
struct Target<'a> {
    client: &'a RegistryClient,
    host: &'a str,
    sources: &'a Clients,
    dry_run: bool,
}

/// Put one blob into `repo`: skip it if there, else mount it (from `from`, a repository of
/// this run that has it, or from the base's repository in the same registry), else upload it
/// from its file, else stream it from the base's registry.
async fn push_blob(
    to: Target<'_>,
    repo: &str,
    blob: &Blob,
    from: Option<&str>,
) -> Result<BlobOutcome, RegistryError> {
    let Target {
        client,
        host,
        sources,
        ..
    } = to;
    let digest = &blob.digest;
    if client.blob_exists(repo, digest).await? {
        return Ok(BlobOutcome::Skipped);
    }
    let same_registry_base = blob
        .base
        .as_ref()
        .filter(|b| b.host == host)
        .map(|b| b.repository.as_str());
    let mount_from = from.or(same_registry_base);
    if to.dry_run {
        return Ok(match (mount_from, &blob.file) {
            (Some(_), _) => BlobOutcome::WouldMount,
            (None, Some(_)) => BlobOutcome::WouldUpload,
            (None, None) => BlobOutcome::WouldCopy,
        });
    }
    let mut session = None;
    if let Some(from) = mount_from {
        // A mount that fails or answers 202 falls back to an upload.
        match client.mount_blob(repo, digest, from).await {
            Ok(Mount::Mounted) => return Ok(BlobOutcome::Mounted),
            Ok(Mount::Upload(s)) => session = Some(s),
            Err(_) => {}
        }
    }
    if let Some(path) = &blob.file {
        client
            .upload_blob(repo, digest, BlobSource::File(path), blob.size, session)
            .await?;
        return Ok(BlobOutcome::Uploaded);
    }
    let Some(base) = &blob.base else {
        unreachable!("push::load keeps only blobs with a file or a base repository")
    };
    let gone = |mut e: RegistryError| {
        if e.status == Some(404) {
            e.hint = Some(format!(
                "base layer {digest} is no longer in {}/{}: rebuild with `--pull` against the base as it is now",
                base.host, base.repository
            ));
        }
        e
    };
    let other;
    let source: &RegistryClient = if base.host == host {
        client
    } else {
        other = sources
            .get(&base.host)
            .await
            .map_err(|message| RegistryError::new("GET", base.host.clone(), message))?;
        &other
    };
    let source = BlobSource::Registry {
        client: source,
        repository: &base.repository,
    };
    client
        .upload_blob(repo, digest, source, blob.size, session)
        .await
        .map_err(gone)?;
    Ok(BlobOutcome::Copied)
}

async fn write_manifests(
    client: &RegistryClient,
    repo: &str,
    l: &Loaded,
    index_present: bool,
) -> Result<(), RegistryError> {
    let (index_digest, index_bytes, index_media) = &l.index;
    if !index_present {
        for (d, bytes, media) in &l.manifests {
            client.put_manifest(repo, d.as_str(), media, bytes).await?;
        }
        client
            .put_manifest(repo, index_digest.as_str(), index_media, index_bytes)
            .await?;
    }
    for t in &l.tags {
        client
            .put_manifest(repo, t, index_media, index_bytes)
            .await?;
    }
    Ok(())
}

//! What a transfer tells: progress events as it goes, a report per image at the end, and the
//! typed reasons an image failed.

use super::TransferImage;
use crate::digest::Digest;
use crate::registry::error::RegistryError;
use serde::Serialize;

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
    /// What an image will transfer: its blob count and bytes (0 when the registry has it all).
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
    /// An image finished (tags written) or failed.
    Service {
        /// Service name.
        service: String,
        /// Error, if it failed.
        error: Option<String>,
    },
}

/// Why an image was not (completely) copied.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Asking whether the registry has the image failed.
    #[error("{0}")]
    Check(RegistryError),
    /// A blob could not be put into the repository.
    #[error("blob {digest}: {source}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// Why.
        source: RegistryError,
    },
    /// A manifest, the index or a tag could not be written.
    #[error("{0}")]
    Manifest(RegistryError),
    /// An attachment could not be stored.
    #[error("{what}: {why}")]
    Attach {
        /// What was being written.
        what: String,
        /// Why not.
        why: String,
    },
    /// The image to copy, or what is attached to it, could not be read from its registry.
    #[error("reading {what}: {why}")]
    Source {
        /// What was being read.
        what: String,
        /// Why it failed.
        why: String,
    },
    /// The image to promote or copy is not in the repository.
    #[error("{repository} has no image {reference}: check the tag or digest (`ocibuild verify --tag T` shows what a tag names)")]
    Missing {
        /// The repository.
        repository: String,
        /// The tag or digest asked for.
        reference: String,
    },
    /// A tag names another image and the repository refuses to move tags.
    #[error("tag {tag} in {repository} already names {existing}, not this image ({wanted}), and the repository refuses to move tags (IMMUTABLE): push under a tag that changes with each build (sha, timestamp), or make the repository MUTABLE (tag_mutability in [repositories])")]
    TagImmutable {
        /// The tag.
        tag: String,
        /// The repository.
        repository: String,
        /// What the tag names now (a digest, or "another image" when it could not be read).
        existing: String,
        /// What it was to name.
        wanted: Digest,
    },
}

/// The result for one image.
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
    /// The platform of each of `manifest_digests` (`os/arch[/variant]`).
    pub manifest_platforms: Vec<String>,
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
    /// Wall time of this image's push, in milliseconds.
    pub duration_ms: u64,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Why the image failed; `None` on success.
    pub error: Option<String>,
    /// The registry base the image was built on (`org.opencontainers.image.base.name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_name: Option<String>,
    /// The digest of that base (`org.opencontainers.image.base.digest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    /// What was attached (SBOMs, provenance, signatures), or on a dry run would be.
    pub attached: Vec<super::Attached>,
}

impl PushReport {
    /// The report of `image` before anything was sent, for registry `host`.
    pub fn new(image: &TransferImage, host: &str, dry_run: bool) -> Self {
        let g = &image.graph;
        let (manifests, platforms) = if g.is_index() {
            let d = g.images.iter().map(|i| i.doc.digest.to_string()).collect();
            (d, g.images.iter().map(|i| i.platform.clone()).collect())
        } else {
            (vec![], vec![])
        };
        PushReport {
            reference: format!("{host}/{}@{}", image.repository, g.top.digest),
            manifest_digests: manifests,
            manifest_platforms: platforms,
            tags: image.tags.clone(),
            base_name: g.base.as_ref().map(|b| b.name.clone()),
            base_digest: g.base.as_ref().map(|b| b.digest.clone()),
            index_digest: g.top.digest.to_string(),
            ..PushReport::failed(&image.service, &image.repository, host, dry_run, None)
        }
    }

    /// The report of an image that could not even be read (`error`), or an empty one.
    pub fn failed(
        service: &str,
        repository: &str,
        host: &str,
        dry_run: bool,
        error: Option<String>,
    ) -> Self {
        PushReport {
            service: service.to_string(),
            repository: repository.to_string(),
            registry: host.to_string(),
            index_digest: String::new(),
            reference: String::new(),
            manifest_digests: vec![],
            manifest_platforms: vec![],
            tags: vec![],
            blobs_uploaded: 0,
            blobs_mounted: 0,
            blobs_copied: 0,
            bytes_copied: 0,
            blobs_skipped: 0,
            bytes_uploaded: 0,
            duration_ms: 0,
            dry_run,
            error,
            base_name: None,
            base_digest: None,
            attached: vec![],
        }
    }

    /// Count one blob's outcome (`size` bytes).
    pub fn count(&mut self, outcome: BlobOutcome, size: u64) {
        match outcome {
            BlobOutcome::Uploaded | BlobOutcome::WouldUpload => {
                self.blobs_uploaded += 1;
                self.bytes_uploaded += size;
            }
            BlobOutcome::Mounted | BlobOutcome::WouldMount => self.blobs_mounted += 1,
            BlobOutcome::Copied | BlobOutcome::WouldCopy => {
                self.blobs_copied += 1;
                self.bytes_copied += size;
            }
            BlobOutcome::Skipped => self.blobs_skipped += 1,
        }
    }
}

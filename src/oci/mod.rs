//! The image graph: what an image is once read, wherever it was read from, and ONE reader.
//!
//! An [`ImageGraph`] is the top document (an index, a Docker manifest list, or a single
//! manifest), the platform images chosen from it (manifest + config), and every blob they
//! reference with where it can be had ([`BlobAt`]: a file of a layout, a repository of a
//! registry, or both). Builds read base images into graphs; pushes send graphs; nothing else
//! parses manifests.
//!
//! - `read`: the reader, without I/O: it says which documents it needs next and takes their
//!   bytes, so the same code serves a layout on disk (sync) and a registry (async). Media types,
//!   digests and the layers-versus-diff_ids count are checked there, once.
//! - `select`: the one platform rule (declared platform of an index entry, else its config's;
//!   arm64 matches v8 or none; attestations never chosen or offered).
//! - `layout`: the reader driven over an OCI image layout.
//!
//! Imports `digest`, `layout`, `platform`, `reference`, `spec`.

pub mod layer_cache;
pub mod layout;
pub mod read;
pub mod referrers;
pub mod select;
#[cfg(test)]
mod tests;

use crate::digest::Digest;
use crate::layout::LayoutError;
use crate::platform::Platform;
use oci_spec::image::{ImageConfiguration, ImageManifest};
use std::path::{Path, PathBuf};

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The layout could not be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The image lacks a platform.
    #[error("no image for {platform} in it (it has: {available}); build the base for that platform or drop the platform")]
    MissingPlatform {
        /// The image as named by the caller.
        image: String,
        /// What was asked for.
        platform: Platform,
        /// What it has.
        available: String,
    },
    /// The image's content is not usable.
    #[error("{message}")]
    Invalid {
        /// The image as named by the caller.
        image: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A result of this module.
pub type Result<T> = std::result::Result<T, OciError>;

/// A stored JSON document (index or manifest): its digest, media type and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Media type, as its descriptor (or, lacking one, the document itself) declares it.
    pub media_type: String,
    /// The bytes, as stored (never re-serialized: the digest is of these).
    pub bytes: Vec<u8>,
}

/// A repository of a registry: where a blob can be read or mounted from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoAt {
    /// The registry's API host (`host[:port]`).
    pub host: String,
    /// The repository path.
    pub repository: String,
}

impl RepoAt {
    /// Where image `r`'s blobs are: its registry's API host and its repository.
    pub fn of(r: &crate::reference::ImageRef) -> RepoAt {
        RepoAt {
            host: r.api_host().to_string(),
            repository: r.repository.clone(),
        }
    }
}

/// One place a blob can be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobAt {
    /// A file holding exactly the blob's bytes (a layout's `blobs/sha256/<hex>`).
    File(PathBuf),
    /// A registry repository holding it (a registry base's layers).
    Registry(RepoAt),
}

/// A blob referenced by the graph, once (deduplicated by digest), and where it can be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Media type of its first descriptor.
    pub media_type: String,
    /// Where it can be had, best first; never empty.
    pub at: Vec<BlobAt>,
}

impl BlobRef {
    /// The file holding it, if any.
    pub fn file(&self) -> Option<&Path> {
        self.at.iter().find_map(|a| match a {
            BlobAt::File(p) => Some(p.as_path()),
            BlobAt::Registry(_) => None,
        })
    }

    /// The registry repository holding it, if any.
    pub fn registry(&self) -> Option<&RepoAt> {
        self.at.iter().find_map(|a| match a {
            BlobAt::Registry(r) => Some(r),
            BlobAt::File(_) => None,
        })
    }
}

/// The registry base an image says it was built on (`org.opencontainers.image.base.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseOrigin {
    /// `base.name` as written.
    pub name: String,
    /// `base.digest` as written (empty when absent).
    pub digest: String,
    /// Its repository, when `name` is a reference with a registry.
    pub at: Option<RepoAt>,
}

/// One platform's image: its manifest document, parsed manifest and config.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// The manifest as stored.
    pub doc: Doc,
    /// The manifest, parsed.
    pub manifest: ImageManifest,
    /// The image config, parsed.
    pub config: ImageConfiguration,
    /// The platform it serves, `os/arch[/variant]` (declared by the index, else its config's).
    pub platform: String,
    /// The registry base it names in its annotations.
    pub base: Option<BaseOrigin>,
}

/// An image read from a layout or a registry.
#[derive(Debug, Clone)]
pub struct ImageGraph {
    /// What the caller calls it (a layout path, a reference as written), for messages.
    pub name: String,
    /// The top document: an index (or Docker list), or a single manifest.
    pub top: Doc,
    /// The platform images: one per requested platform, in that order; or, when every image
    /// was asked for, the index's entries in order.
    pub images: Vec<PlatformImage>,
    /// Every config and layer blob of `images`, once, in order of first reference.
    pub blobs: Vec<BlobRef>,
    /// The registry base named by the top document's annotations.
    pub base: Option<BaseOrigin>,
}

impl ImageGraph {
    /// Whether the top document is an index (or Docker manifest list).
    pub fn is_index(&self) -> bool {
        read::is_index(&self.top.media_type)
    }

    /// The blob with digest `d`.
    pub fn blob(&self, d: &Digest) -> Option<&BlobRef> {
        self.blobs.iter().find(|b| &b.digest == d)
    }

    /// The platform manifests' documents, in order, once each (empty for a single manifest,
    /// which is the top document itself).
    pub fn manifest_docs(&self) -> Vec<&Doc> {
        if !self.is_index() {
            return vec![];
        }
        let mut out: Vec<&Doc> = Vec::new();
        for i in &self.images {
            if !out.iter().any(|d| d.digest == i.doc.digest) {
                out.push(&i.doc);
            }
        }
        out
    }
}

/// `os/arch[/variant]`.
pub fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

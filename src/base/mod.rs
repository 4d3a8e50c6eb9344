//! Base images: resolve a service's `base` to an [`ImageGraph`] holding, for each requested
//! platform in order, the base's manifest and config, with where its layer blobs are.
//!
//! Bases come from a local OCI image layout (`oci:<dir>[:<tag>]`, here) or a registry
//! (`<registry>/<repo>:<tag>` or `@sha256:...`, in `remote`), holding an image index, a Docker
//! manifest list, or a single manifest; or from `scratch`. Both are read by the one reader in
//! `oci` (platform rule, media types, digests). Base layers are reused as they are (never
//! recompressed, media types kept). A registry base's layers stay in the registry: the push
//! copies or mounts them. Imports `config`, `digest`, `layout`, `oci`, `platform`,
//! `reference`, `registry`, `spec`.

pub mod remote;

use crate::config::BaseRef;
use crate::oci::layout::Blobs;
use crate::oci::read::Want;
use crate::oci::{ImageGraph, OciError};
use crate::platform::Platform;
use remote::{RemoteBase, RemoteOptions};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Why a base could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// The base image could not be read or lacks a platform.
    #[error(transparent)]
    Image(#[from] OciError),
    /// The registry has no such image.
    #[error("{message}")]
    NotFound {
        /// The base as written.
        base: String,
        /// What is missing and what to do.
        message: String,
    },
    /// Reading the base from its registry failed.
    #[error("reading it from {host}")]
    Registry {
        /// The registry.
        host: String,
        /// Cause.
        #[source]
        source: Box<crate::registry::error::RegistryError>,
    },
    /// A registry base where no registry access was given (a library caller's omission).
    #[error("registry bases need registry access, which this caller did not set up")]
    NoAccess,
    /// The base could not be reached or stored.
    #[error("{message}")]
    Invalid {
        /// The base as written.
        base: String,
        /// What is wrong.
        message: String,
    },
}

/// A resolved base: the image, one platform image per requested platform in order; and where
/// it came from if a registry.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    /// The base image (its `images` follow the requested platforms).
    pub graph: ImageGraph,
    /// For a registry base: the reference and the digest it resolved to.
    pub remote: Option<RemoteBase>,
}

/// What each base resolved to (`None` for scratch), or why it failed.
pub type Resolved = HashMap<BaseRef, Result<Option<ResolvedBase>, Arc<BaseError>>>;

/// Resolve every distinct base of `bases` for `platforms`, registry ones all at once on
/// `remote`'s runtime. `cache_root` holds cached registry documents (none: always ask).
pub fn resolve_all(
    bases: &[&BaseRef],
    platforms: &[Platform],
    remote: Option<&RemoteOptions>,
    cache_root: Option<&Path>,
) -> Resolved {
    let mut out: Resolved = HashMap::new();
    let mut registry = Vec::new();
    for b in bases {
        if out.contains_key(*b) || registry.contains(b) {
            continue;
        }
        match b {
            BaseRef::Registry(_) if remote.is_some() => registry.push(b),
            BaseRef::Registry(_) => {
                out.insert((*b).clone(), Err(Arc::new(BaseError::NoAccess)));
            }
            _ => {
                let r = resolve(b, platforms).map(|g| {
                    g.map(|graph| ResolvedBase {
                        graph,
                        remote: None,
                    })
                });
                out.insert((*b).clone(), r.map_err(Arc::new));
            }
        }
    }
    if let (Some(opts), false) = (remote, registry.is_empty()) {
        let all = registry.iter().map(|b| async move {
            let BaseRef::Registry(image) = b else {
                unreachable!("only registry bases are listed")
            };
            remote::resolve(image, platforms, opts, cache_root).await
        });
        let results = opts.runtime.block_on(futures_util::future::join_all(all));
        for (b, r) in registry.into_iter().zip(results) {
            out.insert((*b).clone(), r.map(Some).map_err(Arc::new));
        }
    }
    out
}

/// Resolve a layout `base` for each of `platforms` (in order). `None` for scratch.
pub fn resolve(base: &BaseRef, platforms: &[Platform]) -> Result<Option<ImageGraph>, BaseError> {
    match base {
        BaseRef::Scratch => Ok(None),
        BaseRef::Registry(_) => Err(BaseError::NoAccess),
        BaseRef::Layout {
            spelled,
            dir,
            reference,
        } => {
            let want = Want::Platforms(platforms.to_vec());
            let image =
                crate::oci::layout::read(dir, reference.as_deref(), want, Blobs::AllHere, spelled)?;
            Ok(Some(image.graph))
        }
    }
}

//! Base images: resolve a service's `base` to, for each requested platform, the base's config
//! and layer descriptors, and where its layer blobs can be read.
//!
//! Bases come from a local OCI image layout (`oci:<dir>[:<tag>]`, here) or a registry
//! (`<registry>/<repo>:<tag>` or `@sha256:...`, in `remote`), holding an image index, a Docker
//! manifest list, or a single manifest; or from `scratch`. Base layers are reused as they are
//! (never recompressed, media types kept). A registry base's layers stay in the registry: the
//! push copies or mounts them. Imports `config`, `digest`, `layout`, `platform`, `reference`,
//! `registry`, `spec`.

pub mod remote;

use crate::config::BaseRef;
use crate::digest::Digest;
use crate::layout::{Layout, LayoutError};
use crate::platform::Platform;
use crate::spec::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use remote::{RemoteBase, RemoteOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a base could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// The layout could not be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The base lacks a platform.
    #[error("no image for {platform} in it (it has: {available}); build the base for that platform or drop the platform")]
    MissingPlatform {
        /// The base as written.
        base: String,
        /// What was asked for.
        platform: Platform,
        /// What it has.
        available: String,
    },
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
    /// The base's content is not usable.
    #[error("{message}")]
    Invalid {
        /// The base as written.
        base: String,
        /// What is wrong.
        message: String,
    },
}

/// The base for one platform.
#[derive(Debug, Clone)]
pub struct PlatformBase {
    /// The base's image config.
    pub config: ImageConfiguration,
    /// The base's layers, descriptors as they are in its manifest.
    pub layers: Vec<Descriptor>,
    /// Where each layer blob is: the base layout's `blobs/sha256/<hex>`; `None` for a layer
    /// left in the base's registry.
    pub layer_files: Vec<Option<PathBuf>>,
    /// The base manifest's digest.
    pub manifest_digest: Digest,
}

fn digest_of(d: &Descriptor, base: &str) -> Result<Digest, BaseError> {
    Digest::from_oci(d.digest()).map_err(|e| BaseError::Invalid {
        base: base.to_string(),
        message: format!("unsupported digest: {e}"),
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    base: &str,
) -> Result<T, BaseError> {
    serde_json::from_slice(bytes).map_err(|e| BaseError::Invalid {
        base: base.to_string(),
        message: format!("invalid {what}: {e}"),
    })
}

/// A resolved base: per requested platform, in order; and where it came from if a registry.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    /// One per requested platform.
    pub platforms: Vec<PlatformBase>,
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
                out.insert(
                    (*b).clone(),
                    resolve(b, platforms)
                        .map(|p| {
                            p.map(|platforms| ResolvedBase {
                                platforms,
                                remote: None,
                            })
                        })
                        .map_err(Arc::new),
                );
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
            out.insert(
                (*b).clone(),
                r.map(|(platforms, remote)| {
                    Some(ResolvedBase {
                        platforms,
                        remote: Some(remote),
                    })
                })
                .map_err(Arc::new),
            );
        }
    }
    out
}

/// `base` has no image for `platform`; it has images for `available` (as `os/arch[/variant]`).
fn missing_platform(base: &str, platform: &Platform, available: &[String]) -> BaseError {
    BaseError::MissingPlatform {
        base: base.to_string(),
        platform: platform.clone(),
        available: if available.is_empty() {
            "no images with a platform".into()
        } else {
            available.join(", ")
        },
    }
}

fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// Resolve a layout `base` for each of `platforms` (in order). `None` for scratch.
pub fn resolve(
    base: &BaseRef,
    platforms: &[Platform],
) -> Result<Option<Vec<PlatformBase>>, BaseError> {
    let (spelled, dir, reference) = match base {
        BaseRef::Scratch => return Ok(None),
        BaseRef::Registry(_) => return Err(BaseError::NoAccess),
        BaseRef::Layout {
            spelled,
            dir,
            reference,
        } => (spelled.as_str(), dir, reference.as_deref()),
    };
    let layout = Layout::open(dir)?;
    let top = layout.find(reference)?.clone();
    let top_digest = digest_of(&top, spelled)?;
    let media = top.media_type().to_string();

    // Candidates: (descriptor, platform as declared in the index, if any).
    let candidates: Vec<Descriptor> = if media == MEDIA_TYPE_INDEX
        || media == MEDIA_TYPE_DOCKER_LIST
    {
        let index: ImageIndex = parse(&layout.read_blob(&top_digest)?, "image index", spelled)?;
        index.manifests().clone()
    } else if media == MEDIA_TYPE_MANIFEST || media == MEDIA_TYPE_DOCKER_MANIFEST {
        vec![top]
    } else {
        return Err(BaseError::Invalid {
            base: spelled.to_string(),
            message: format!("unsupported media type {media}: expected an image index or manifest"),
        });
    };

    let mut loaded = Vec::new();
    for d in &candidates {
        let dm = d.media_type().to_string();
        if dm != MEDIA_TYPE_MANIFEST && dm != MEDIA_TYPE_DOCKER_MANIFEST {
            continue; // attestations, nested indexes: not images we can build on
        }
        loaded.push(load_manifest(&layout, d, spelled)?);
    }

    let mut out = Vec::new();
    for p in platforms {
        let found = loaded.iter().find(|(b, (os, arch, variant))| {
            let _ = b;
            p.matches(os, arch, variant.as_deref())
        });
        match found {
            Some((b, _)) => out.push(b.clone()),
            None => {
                let available = loaded
                    .iter()
                    .map(|(_, (o, a, v))| platform_string(o, a, v.as_deref()))
                    .collect::<Vec<_>>();
                return Err(missing_platform(spelled, p, &available));
            }
        }
    }
    Ok(Some(out))
}

type Declared = (String, String, Option<String>);

fn load_manifest(
    layout: &Layout,
    d: &Descriptor,
    spelled: &str,
) -> Result<(PlatformBase, Declared), BaseError> {
    let digest = digest_of(d, spelled)?;
    let manifest: ImageManifest = parse(&layout.read_blob(&digest)?, "image manifest", spelled)?;
    let config_digest = digest_of(manifest.config(), spelled)?;
    let config: ImageConfiguration =
        parse(&layout.read_blob(&config_digest)?, "image config", spelled)?;
    if config.rootfs().diff_ids().len() != manifest.layers().len() {
        return Err(BaseError::Invalid {
            base: spelled.to_string(),
            message: format!(
                "manifest {digest} has {} layers but its config lists {} diff_ids",
                manifest.layers().len(),
                config.rootfs().diff_ids().len()
            ),
        });
    }
    let mut layer_files = Vec::new();
    for l in manifest.layers() {
        let ld = digest_of(l, spelled)?;
        let path = layout.blob_path(&ld);
        let len = std::fs::metadata(&path).map(|m| m.len()).ok();
        if len != Some(l.size()) {
            return Err(BaseError::Invalid {
                base: spelled.to_string(),
                message: format!(
                    "layer blob {ld} is missing from {} or has the wrong size: re-create the base layout",
                    layout.root().display()
                ),
            });
        }
        layer_files.push(Some(path));
    }
    // The platform the index declares, else the config's own.
    let declared = match d.platform() {
        Some(p) => (
            p.os().to_string(),
            p.architecture().to_string(),
            p.variant().clone(),
        ),
        None => (
            config.os().to_string(),
            config.architecture().to_string(),
            config.variant().clone(),
        ),
    };
    Ok((
        PlatformBase {
            config,
            layers: manifest.layers().clone(),
            layer_files,
            manifest_digest: digest,
        },
        declared,
    ))
}

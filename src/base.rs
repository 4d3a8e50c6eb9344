//! Base images: resolve a service's `base` to, for each requested platform, the base's config
//! and layer descriptors, and where its layer blobs can be read.
//!
//! Bases come from a local OCI image layout (`oci:<dir>[:<tag>]`) holding an image index, a
//! Docker manifest list, or a single manifest; or from `scratch`. Base layers are reused as
//! they are (never recompressed). Imports `config`, `digest`, `layout`, `platform`, `spec`.

use crate::config::BaseRef;
use crate::digest::Digest;
use crate::layout::{Layout, LayoutError};
use crate::platform::Platform;
use crate::spec::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::path::PathBuf;

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
    /// Where each layer blob is: the base layout's `blobs/sha256/<hex>`.
    pub layer_files: Vec<PathBuf>,
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

fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// Resolve `base` for each of `platforms` (in order). `None` for scratch.
pub fn resolve(
    base: &BaseRef,
    platforms: &[Platform],
) -> Result<Option<Vec<PlatformBase>>, BaseError> {
    let (spelled, dir, reference) = match base {
        BaseRef::Scratch => return Ok(None),
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
                return Err(BaseError::MissingPlatform {
                    base: spelled.to_string(),
                    platform: p.clone(),
                    available: if available.is_empty() {
                        "no images".into()
                    } else {
                        available.join(", ")
                    },
                });
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
        layer_files.push(path);
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

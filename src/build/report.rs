//! What a build reports: per service its layout, index, base and, per platform, the layers
//! with where each came from (`cache`), the packages in them and what could not be read.

use super::make::Origin;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One layer in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Blob digest.
    pub digest: String,
    /// Blob size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Media type.
    pub media_type: String,
    /// Whether it comes from the base image.
    pub from_base: bool,
    /// Whether it came from a layer cache, local or registry (nothing was compressed).
    pub cached: bool,
    /// Where it came from: `local` (this machine's cache), `registry` (the registry cache:
    /// the blob stays in the registry), `built`; `null` for a base's layer.
    pub cache: Option<Origin>,
    /// The fingerprint of its inputs (`layer::fingerprint`), when a registry cache is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Whether the blob is in the layout (`false`: a registry base's layer, left in its
    /// registry; the push mounts or copies it).
    pub in_layout: bool,
    /// The packages found in the layer (sorted; the service's own layers only, never a
    /// base's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<crate::attest::packages::Package>,
    /// Files that looked like package sources but could not be read (no package from them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub package_warnings: Vec<String>,
}

/// The registry base a service was built on.
#[derive(Debug, Clone, Serialize)]
pub struct BaseReport {
    /// The reference as configured.
    pub name: String,
    /// What it resolved to (the index or manifest digest).
    pub digest: String,
    /// Whether the tag's digest came from the cache rather than the registry (`--pull` asks).
    pub from_cache: bool,
}

/// One platform's image in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    /// e.g. `linux/arm64/v8`.
    pub platform: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Config digest.
    pub config_digest: String,
    /// Layers, base first.
    pub layers: Vec<LayerReport>,
}

/// One service's result.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// Service name.
    pub name: String,
    /// Repository name.
    pub repository: String,
    /// Where its layout is.
    pub layout: PathBuf,
    /// Digest of the image index.
    pub index_digest: String,
    /// Tags written in `index.json`.
    pub tags: Vec<String>,
    /// Per platform.
    pub platforms: Vec<PlatformReport>,
    /// The registry base, if the service has one.
    pub base: Option<BaseReport>,
}

impl fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) -> {} [{}]",
            self.name,
            self.repository,
            self.layout.display(),
            self.tags.join(", ")
        )?;
        writeln!(f, "  index {}", self.index_digest)?;
        if let Some(b) = &self.base {
            let how = if b.from_cache {
                " (tag resolved earlier, from the cache; --pull asks the registry)"
            } else {
                ""
            };
            writeln!(f, "  base {} -> {}{how}", b.name, b.digest)?;
        }
        for p in &self.platforms {
            let total: u64 = p.layers.iter().map(|l| l.size).sum();
            writeln!(
                f,
                "  {:<16} {}  {} layers, {} bytes",
                p.platform,
                p.manifest_digest,
                p.layers.len(),
                total
            )?;
        }
        writeln!(f, "  own layers: {}", self.origins())
    }
}

/// How many of a service's own layers (distinct blobs) came from where, with their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Origins {
    /// Compressed in this run: (layers, bytes).
    pub built: (usize, u64),
    /// From the local cache.
    pub local: (usize, u64),
    /// From the registry cache.
    pub registry: (usize, u64),
}

/// One of a service's own layers and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerOrigin {
    /// Blob digest.
    pub digest: String,
    /// Blob size.
    pub size: u64,
    /// `local`, `registry` or `built`.
    pub cache: Origin,
}

impl ServiceReport {
    /// Its own layers (not the base's), each distinct blob once, in order.
    pub fn own_layers(&self) -> Vec<LayerOrigin> {
        let mut out: Vec<LayerOrigin> = Vec::new();
        for l in self.platforms.iter().flat_map(|p| &p.layers) {
            let Some(cache) = l.cache else { continue };
            if !out.iter().any(|o| o.digest == l.digest) {
                out.push(LayerOrigin {
                    digest: l.digest.clone(),
                    size: l.size,
                    cache,
                });
            }
        }
        out
    }

    /// How many of its own layers, and bytes, came from where.
    pub fn origins(&self) -> Origins {
        let mut o = Origins::default();
        for l in self.own_layers() {
            let slot = match l.cache {
                Origin::Built => &mut o.built,
                Origin::Local => &mut o.local,
                Origin::Registry => &mut o.registry,
            };
            slot.0 += 1;
            slot.1 += l.size;
        }
        o
    }
}

impl fmt::Display for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |(n, bytes): (usize, u64), what: &str| format!("{n} {what} ({bytes} bytes)");
        write!(
            f,
            "{}, {}, {}",
            part(self.built, "built"),
            part(self.local, "from the local cache"),
            part(self.registry, "from the registry cache")
        )
    }
}

//! The services the file describes: what each image holds (layers, base) and how it runs, how
//! layers are compressed, and the rules values follow (repository names, absolute image
//! paths). Pure values; imports `platform`, `reference` and `spec`, nothing else outside
//! `config`.

use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::spec::is_valid_tag;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// One service: what its image holds and how it runs.
#[derive(Debug, Clone)]
pub struct Service {
    /// The service name (the key under `[services]`).
    pub name: String,
    /// Repository name in the registry, e.g. `retail-store-catalog`.
    pub repository: String,
    /// Source paths (globs) whose changes mark the service changed.
    pub paths: Vec<String>,
    /// The base image.
    pub base: BaseRef,
    /// Image entrypoint; `None` keeps the base's.
    pub entrypoint: Option<Vec<String>>,
    /// Image cmd; `None` keeps the base's, unless `entrypoint` is set, which clears it.
    pub cmd: Option<Vec<String>>,
    /// Environment, added to (and overriding) the base's.
    pub env: BTreeMap<String, String>,
    /// Working directory; `None` keeps the base's.
    pub workdir: Option<String>,
    /// User (`uid`, `uid:gid`, `name`); `None` keeps the base's.
    pub user: Option<String>,
    /// Exposed ports, normalised to `port/proto`.
    pub ports: Vec<String>,
    /// Image labels, added to (and overriding) the base's.
    pub labels: BTreeMap<String, String>,
    /// Layers on top of the base, in order.
    pub layers: Vec<LayerConfig>,
}

/// One layer of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerConfig {
    /// Source path template, relative to the config directory, as written.
    pub source: SourceTemplate,
    /// Absolute, normalised path in the image where the source lands.
    pub target: String,
    /// Owner of every entry.
    pub uid: u64,
    /// Group of every entry.
    pub gid: u64,
    /// Globs (relative to the source) left out of the layer.
    pub exclude: Vec<String>,
    /// Mode overrides: glob (relative to the source) -> permission bits.
    pub modes: Vec<(String, u32)>,
    /// Keep the files' permission bits as they are instead of normalising them.
    pub preserve_modes: bool,
    /// Keep setuid/setgid bits found on files.
    pub setid: bool,
}

impl LayerConfig {
    /// A layer from `source` to `target` with every option at its default (root-owned,
    /// normalised modes, nothing excluded).
    pub fn new(source: SourceTemplate, target: &str) -> Self {
        LayerConfig {
            source,
            target: target.to_string(),
            uid: 0,
            gid: 0,
            exclude: vec![],
            modes: vec![],
            preserve_modes: false,
            setid: false,
        }
    }
}

/// Where a service's base image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BaseRef {
    /// No base: the image holds only the service's layers.
    Scratch,
    /// A local OCI image layout; `reference` selects a tag in its `index.json`.
    Layout {
        /// As written in the config.
        spelled: String,
        /// The layout directory (resolved against the config directory when loaded).
        dir: PathBuf,
        /// Tag to select; `None`: the only image, or `latest`.
        reference: Option<String>,
    },
    /// An image in a registry, by tag or digest (resolved once per run).
    Registry(ImageRef),
}

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseRef::Scratch => f.write_str("scratch"),
            BaseRef::Layout { spelled, .. } => f.write_str(spelled),
            BaseRef::Registry(r) => f.write_str(&r.spelled),
        }
    }
}

impl TryFrom<String> for BaseRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "scratch" {
            return Ok(BaseRef::Scratch);
        }
        let Some(rest) = s.strip_prefix("oci:") else {
            return ImageRef::parse(&s).map(BaseRef::Registry).map_err(|e| {
                format!("unsupported base {s:?}: use \"scratch\", \"oci:<layout-dir>[:<tag>]\" or a registry image ({e})")
            });
        };
        let (dir, reference) = match rest.rsplit_once(':') {
            Some((d, r)) if !r.contains('/') => (d, Some(r.to_string())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(format!("base {s:?} names no layout directory"));
        }
        if let Some(r) = &reference {
            if !is_valid_tag(r) {
                return Err(format!("base {s:?}: {r:?} is not a valid tag"));
            }
        }
        Ok(BaseRef::Layout {
            spelled: s.clone(),
            dir: PathBuf::from(dir),
            reference,
        })
    }
}

/// A source path with `{os}`, `{arch}` and `{variant}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceTemplate(String);

impl TryFrom<String> for SourceTemplate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty layer source".into());
        }
        let mut rest = s.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in layer source {s:?}"))?;
            let name = &rest[open + 1..open + close];
            if !matches!(name, "os" | "arch" | "variant") {
                return Err(format!(
                    "unknown placeholder {{{name}}} in layer source {s:?}: use {{os}}, {{arch}} or {{variant}}"
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray '}}' in layer source {s:?}"));
        }
        Ok(SourceTemplate(s))
    }
}

impl SourceTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether the source is the same for every platform.
    pub fn is_platform_independent(&self) -> bool {
        !self.0.contains('{')
    }
    /// The path for one platform.
    pub fn expand(&self, platform: &Platform) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').unwrap_or(0);
            let name = &rest[open + 1..close];
            out.push_str(platform.placeholder(name).unwrap_or(""));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Normalise an absolute path in the image (`/app//x/` -> `/app/x`), refusing `.` and `..`.
pub fn normalise_image_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?} is not an absolute path in the image (start it with /)"
        ));
    }
    let mut parts = Vec::new();
    for c in s.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(format!("path {s:?} may not contain '.' or '..'"));
        }
        if c.contains('\0') {
            return Err(format!("path {s:?} contains a NUL byte"));
        }
        parts.push(c);
    }
    Ok(format!("/{}", parts.join("/")))
}

pub use crate::spec::is_valid_repository;

/// How layers are compressed (`[build] compression` and `compression_level`). Config terms
/// only: the `layer` module maps this to its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (RFC 1952), levels 1-12 (libdeflate's scale).
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// zstd (RFC 8878), levels 1-19.
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Compression {
    /// gzip level when none is given: libdeflate 6 gives smaller output than `pigz -6` at
    /// higher speed.
    pub const DEFAULT_GZIP_LEVEL: u32 = 6;
    /// zstd level when none is given.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: Self::DEFAULT_GZIP_LEVEL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in [
            "a",
            "retail-store-catalog",
            "team/app",
            "a.b",
            "a__b",
            "a---b",
        ] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "-a", "a-", "a/", "/a", "a..b", "a___b", "a b", "a:b",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
    }
}

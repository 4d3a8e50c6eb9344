//! The one image reader, without I/O. A caller starts it with the top document, asks
//! [`GraphReader::wanted`] which documents it needs next (manifests, then configs), hands them
//! over with [`GraphReader::give`] (each checked against its digest), and ends with
//! [`GraphReader::finish`], saying where each blob can be had. A layout on disk and a registry
//! drive the same reader, so media types, digests, the platform rule and the layers-versus-
//! diff_ids check are written once. Imports `digest`, `platform`, `reference`, `spec`.

use super::select::{self, Declared};
use super::{
    BaseOrigin, BlobAt, BlobRef, Doc, ImageGraph, OciError, PlatformImage, RepoAt, Result,
};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::spec::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::collections::HashMap;

/// Which images of the top document to read.
#[derive(Debug, Clone)]
pub enum Want {
    /// One per platform, in this order, chosen by the platform rule.
    Platforms(Vec<Platform>),
    /// Every image entry of the index (or the single manifest), as it is: what a push sends.
    Every,
}

/// What kind of document a wanted digest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A platform manifest (read as a manifest from a registry).
    Manifest,
    /// An image config (read as a blob from a registry).
    Config,
}

/// A document the reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// Its digest.
    pub digest: Digest,
    /// What it is.
    pub kind: DocKind,
}

/// What the caller's locator is asked about: one blob of the graph.
#[derive(Debug)]
pub struct BlobNeed<'a> {
    /// Its descriptor's digest.
    pub digest: &'a Digest,
    /// Its descriptor's size.
    pub size: u64,
    /// Whether it is an image config (else a layer).
    pub is_config: bool,
    /// The registry base its manifest names, if any.
    pub base: Option<&'a BaseOrigin>,
}

/// Whether `media` is an image index or Docker manifest list.
pub fn is_index(media: &str) -> bool {
    crate::spec::is_index(media)
}

/// Whether `media` is an image manifest (OCI or Docker schema 2).
pub fn is_manifest(media: &str) -> bool {
    media == MEDIA_TYPE_MANIFEST || media == MEDIA_TYPE_DOCKER_MANIFEST
}

/// What a document is, by its `mediaType` (or its shape when it has none).
pub fn kind_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return Some(t.to_string());
    }
    Some(if v.get("manifests").is_some() {
        MEDIA_TYPE_INDEX.to_string()
    } else {
        MEDIA_TYPE_MANIFEST.to_string()
    })
}

/// The digest of a descriptor, or why it is not one we take.
pub fn descriptor_digest(d: &Descriptor, image: &str) -> Result<Digest> {
    Digest::from_oci(d.digest()).map_err(|e| invalid(image, format!("unsupported digest: {e}")))
}

fn invalid(image: &str, message: String) -> OciError {
    OciError::Invalid {
        image: image.to_string(),
        message,
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str, image: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| invalid(image, format!("invalid {what}: {e}")))
}

/// The registry base named by `annotations`.
fn base_origin(annotations: Option<&HashMap<String, String>>) -> Option<BaseOrigin> {
    let a = annotations?;
    let name = a.get(ANNOTATION_BASE_NAME)?.clone();
    let at = ImageRef::parse(&name).ok().map(|r| RepoAt::of(&r));
    Some(BaseOrigin {
        digest: a.get(ANNOTATION_BASE_DIGEST).cloned().unwrap_or_default(),
        name,
        at,
    })
}

/// An image entry of the top document.
#[derive(Debug)]
struct Entry {
    digest: Digest,
    media_type: String,
    declared: Option<Declared>,
}

/// A reader part way through one image.
#[derive(Debug)]
pub struct GraphReader {
    name: String,
    want: Want,
    top: Doc,
    top_base: Option<BaseOrigin>,
    entries: Vec<Entry>,
    manifests: HashMap<Digest, (Doc, ImageManifest)>,
    configs: HashMap<Digest, ImageConfiguration>,
}

impl GraphReader {
    /// Start reading `top` (called `name` in messages) for `want`.
    pub fn new(name: &str, top: Doc, want: Want) -> Result<Self> {
        check_digest(name, &top.digest, &top.bytes)?;
        let mut r = GraphReader {
            name: name.to_string(),
            want,
            top_base: None,
            entries: vec![],
            manifests: HashMap::new(),
            configs: HashMap::new(),
            top: top.clone(),
        };
        if is_index(&top.media_type) {
            let index: ImageIndex = parse(&top.bytes, "image index", name)?;
            r.top_base = base_origin(index.annotations().as_ref());
            r.entries = r.index_entries(&index)?;
        } else if is_manifest(&top.media_type) {
            r.entries.push(Entry {
                digest: top.digest.clone(),
                media_type: top.media_type.clone(),
                declared: None,
            });
            r.give_manifest(top.digest.clone(), top.bytes.clone())?;
            r.top_base = base_origin(r.manifests[&top.digest].1.annotations().as_ref());
        } else {
            return Err(invalid(
                name,
                format!(
                    "unsupported media type {:?}: expected an image index or manifest (OCI or Docker schema 2)",
                    top.media_type
                ),
            ));
        }
        Ok(r)
    }

    /// Declare the platform of a single-manifest top document (as the descriptor that named it
    /// says); without one, its config's counts.
    pub fn declare_top(mut self, platform: Option<Declared>) -> Self {
        if let (Some(e), false) = (self.entries.first_mut(), is_index(&self.top.media_type)) {
            e.declared = platform;
        }
        self
    }

    /// The image entries of `index`: manifests only (nested indexes are not images we read;
    /// when every image is wanted, one is an error).
    fn index_entries(&self, index: &ImageIndex) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for d in index.manifests() {
            let media = d.media_type().to_string();
            if !is_manifest(&media) {
                if matches!(self.want, Want::Every) {
                    return Err(invalid(
                        &self.name,
                        format!(
                            "the index lists a {media:?} entry: only image manifests are supported"
                        ),
                    ));
                }
                continue;
            }
            out.push(Entry {
                digest: descriptor_digest(d, &self.name)?,
                media_type: media,
                declared: d.platform().as_ref().map(|p| Declared {
                    os: p.os().to_string(),
                    arch: p.architecture().to_string(),
                    variant: p.variant().clone(),
                }),
            });
        }
        Ok(out)
    }

    /// The documents needed next (empty: ready to finish). Entries without a declared platform
    /// are read first (their config says it), then the chosen ones.
    pub fn wanted(&self) -> Result<Vec<Needed>> {
        let undeclared: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].declared.is_none())
            .collect();
        let need = self.needed_for(&undeclared)?;
        if !need.is_empty() {
            return Ok(need);
        }
        self.needed_for(&self.chosen()?)
    }

    /// For the entries at `positions`: missing manifests, else missing configs.
    fn needed_for(&self, positions: &[usize]) -> Result<Vec<Needed>> {
        let mut need: Vec<Needed> = Vec::new();
        for &i in positions {
            let d = &self.entries[i].digest;
            let next = match self.manifests.get(d) {
                None => Needed {
                    digest: d.clone(),
                    kind: DocKind::Manifest,
                },
                Some((_, m)) => {
                    let c = descriptor_digest(m.config(), &self.name)?;
                    if self.configs.contains_key(&c) {
                        continue;
                    }
                    Needed {
                        digest: c,
                        kind: DocKind::Config,
                    }
                }
            };
            if !need.contains(&next) {
                need.push(next);
            }
        }
        Ok(need)
    }

    /// The platform of entry `e`: declared, else its config's (once read).
    fn platform_of(&self, e: &Entry) -> Declared {
        if let Some(d) = &e.declared {
            return d.clone();
        }
        let config = self
            .manifests
            .get(&e.digest)
            .and_then(|(_, m)| Digest::from_oci(m.config().digest()).ok())
            .and_then(|c| self.configs.get(&c));
        match config {
            Some(c) => Declared {
                os: c.os().to_string(),
                arch: c.architecture().to_string(),
                variant: c.variant().clone(),
            },
            None => Declared {
                os: "unknown".into(),
                arch: "unknown".into(),
                variant: None,
            },
        }
    }

    /// Positions of the chosen entries: one per wanted platform, or all.
    fn chosen(&self) -> Result<Vec<usize>> {
        match &self.want {
            Want::Every => Ok((0..self.entries.len()).collect()),
            Want::Platforms(ps) => {
                let declared: Vec<Declared> =
                    self.entries.iter().map(|e| self.platform_of(e)).collect();
                select::choose(&declared, ps, &self.name)
            }
        }
    }

    /// Take the bytes of a document [`wanted`](Self::wanted) named.
    pub fn give(&mut self, needed: &Needed, bytes: Vec<u8>) -> Result<()> {
        check_digest(&self.name, &needed.digest, &bytes)?;
        match needed.kind {
            DocKind::Manifest => self.give_manifest(needed.digest.clone(), bytes),
            DocKind::Config => {
                let config: ImageConfiguration = parse(&bytes, "image config", &self.name)?;
                self.configs.insert(needed.digest.clone(), config);
                Ok(())
            }
        }
    }

    fn give_manifest(&mut self, digest: Digest, bytes: Vec<u8>) -> Result<()> {
        let media = kind_of(&bytes).unwrap_or_default();
        if !is_manifest(&media) {
            return Err(invalid(
                &self.name,
                format!("{digest} is a {media:?}, not an image manifest"),
            ));
        }
        let manifest: ImageManifest = parse(&bytes, "image manifest", &self.name)?;
        let declared = self
            .entries
            .iter()
            .find(|e| e.digest == digest)
            .map_or(media, |e| e.media_type.clone());
        let doc = Doc {
            digest: digest.clone(),
            media_type: declared,
            bytes,
        };
        self.manifests.insert(digest, (doc, manifest));
        Ok(())
    }

    /// The graph, each blob placed by `locate` (which may refuse one).
    pub fn finish(
        self,
        locate: &mut dyn FnMut(&BlobNeed<'_>) -> Result<Vec<BlobAt>>,
    ) -> Result<ImageGraph> {
        let mut images = Vec::new();
        for i in self.chosen()? {
            images.push(self.platform_image(&self.entries[i])?);
        }
        let mut blobs: Vec<BlobRef> = Vec::new();
        for img in &images {
            let descriptors = std::iter::once(img.manifest.config()).chain(img.manifest.layers());
            for (n, d) in descriptors.enumerate() {
                let digest = descriptor_digest(d, &self.name)?;
                if blobs.iter().any(|b| b.digest == digest) {
                    continue;
                }
                let at = locate(&BlobNeed {
                    digest: &digest,
                    size: d.size(),
                    is_config: n == 0,
                    base: img.base.as_ref(),
                })?;
                blobs.push(BlobRef {
                    size: d.size(),
                    media_type: d.media_type().to_string(),
                    digest,
                    at,
                });
            }
        }
        Ok(ImageGraph {
            name: self.name,
            top: self.top,
            images,
            blobs,
            base: self.top_base,
        })
    }

    /// Entry `e` as a platform image, checked: its config lists one diff_id per layer.
    fn platform_image(&self, e: &Entry) -> Result<PlatformImage> {
        let not_read = || invalid(&self.name, format!("{} was not read", e.digest));
        let (doc, manifest) = self.manifests.get(&e.digest).ok_or_else(not_read)?;
        let config_digest = descriptor_digest(manifest.config(), &self.name)?;
        let config = self.configs.get(&config_digest).ok_or_else(not_read)?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            return Err(invalid(
                &self.name,
                format!(
                    "manifest {} has {} layers but its config lists {} diff_ids",
                    e.digest,
                    manifest.layers().len(),
                    config.rootfs().diff_ids().len()
                ),
            ));
        }
        Ok(PlatformImage {
            doc: doc.clone(),
            manifest: manifest.clone(),
            config: config.clone(),
            platform: self.platform_of(e).spelled(),
            base: base_origin(manifest.annotations().as_ref()),
        })
    }
}

fn check_digest(image: &str, want: &Digest, bytes: &[u8]) -> Result<()> {
    let got = Digest::of(bytes);
    if &got == want {
        return Ok(());
    }
    Err(invalid(
        image,
        format!("document {want} was read back as {got}: it is damaged; fetch or rebuild it again"),
    ))
}

#[cfg(test)]
#[path = "read_props.rs"]
mod props;

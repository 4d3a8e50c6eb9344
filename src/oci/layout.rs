//! The image reader driven over an OCI image layout on disk: the top document from
//! `index.json` (by ref name, else the only image, else `latest`), then manifests and configs
//! from `blobs/`, each checked against its digest. Every blob is placed at its file; layers of
//! a registry base that a build left out of the layout are placed at the base's repository
//! (named by the manifest's `org.opencontainers.image.base.name`) when the caller allows it.
//! Imports `layout`.

use super::read::{BlobNeed, GraphReader, Want};
use super::select::Declared;
use super::RepoAt;
use super::{BlobAt, Doc, ImageGraph, OciError, Result};
use crate::layout::Layout;
use crate::spec::ANNOTATION_BASE_NAME;
use std::path::Path;

/// Where a layout's blobs must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs<'a> {
    /// Every blob in the layout (a base image layout).
    AllHere,
    /// Layers may be left in a registry (what `build` writes; the push mounts or copies
    /// them): a registry base's, when that base is one of `bases` (the registry bases the
    /// config names), and any other layer when `cache` is given (the registry layer cache the
    /// push uses, where a build found it). A layout is not trusted to make the pusher read,
    /// with its credentials, from any repository it likes.
    MayBeRemote {
        /// The registry bases the config names.
        bases: &'a [RepoAt],
        /// The registry layer cache's repository, if one is used.
        cache: Option<&'a RepoAt>,
    },
}

/// An image read from a layout, with the layout's ref names.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// The image.
    pub graph: ImageGraph,
    /// The ref names (tags) in `index.json`, in order, repeated names once.
    pub refs: Vec<String>,
}

/// Read image `reference` (`None`: the only image, else `latest`) of the layout at `root`,
/// called `name` in messages.
pub fn read(
    root: &Path,
    reference: Option<&str>,
    want: Want,
    blobs: Blobs<'_>,
    name: &str,
) -> Result<LayoutImage> {
    let layout = Layout::open(root)?;
    let top = layout.find(reference)?.clone();
    let digest = super::read::descriptor_digest(&top, name)?;
    let doc = Doc {
        bytes: layout.read_blob(&digest)?,
        digest,
        media_type: top.media_type().to_string(),
    };
    let declared = top.platform().as_ref().map(|p| Declared {
        os: p.os().to_string(),
        arch: p.architecture().to_string(),
        variant: p.variant().clone(),
    });
    let mut reader = GraphReader::new(name, doc, want)?.declare_top(declared);
    loop {
        let wanted = reader.wanted()?;
        if wanted.is_empty() {
            break;
        }
        for n in wanted {
            let bytes = layout.read_blob(&n.digest)?;
            reader.give(&n, bytes)?;
        }
    }
    let graph = reader.finish(&mut |need| locate(&layout, need, blobs))?;
    let mut refs = layout.refs();
    refs.dedup();
    Ok(LayoutImage { graph, refs })
}

/// Where blob `need` of `layout` is.
fn locate(layout: &Layout, need: &BlobNeed<'_>, blobs: Blobs<'_>) -> Result<Vec<BlobAt>> {
    let path = layout.blob_path(need.digest);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(OciError::Invalid {
            image: layout.root().display().to_string(),
            message: format!(
                "blob {} ({}) is a symbolic link: a layout's blobs must be regular files; re-create the layout",
                need.digest,
                path.display()
            ),
        });
    }
    let mut at = Vec::new();
    // A regular file of the right size, never a symlink (which could make a host file a blob).
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == need.size) {
        at.push(BlobAt::File(path));
    }
    if let (Blobs::MayBeRemote { bases, cache }, false) = (blobs, need.is_config) {
        if let Some(repo) = need.base.and_then(|b| b.at.clone()) {
            if bases.contains(&repo) {
                at.push(BlobAt::Registry(repo));
            }
        }
        if let (Some(cache), true) = (cache, at.is_empty()) {
            at.push(BlobAt::Registry(cache.clone()));
        }
    }
    if at.is_empty() {
        return Err(missing(layout, need, blobs));
    }
    Ok(at)
}

/// Blob `need` is not in `layout` and cannot be had elsewhere.
fn missing(layout: &Layout, need: &BlobNeed<'_>, blobs: Blobs<'_>) -> OciError {
    let root = layout.root().display();
    let (digest, what) = (need.digest, if need.is_config { "config" } else { "layer" });
    let message = match (blobs, need.base) {
        (Blobs::AllHere, _) => format!(
            "{what} blob {digest} is missing from {root} or has the wrong size: re-create the base layout"
        ),
        (Blobs::MayBeRemote { .. }, Some(b)) if b.at.is_none() && !need.is_config => format!(
            "{what} blob {digest} is not in the layout, and its base's annotation {ANNOTATION_BASE_NAME} ({:?}) names no registry to read it from; rebuild the layout",
            b.name
        ),
        (Blobs::MayBeRemote { .. }, Some(b)) if !need.is_config => format!(
            "{what} blob {digest} is not in the layout, and its base {:?} is not a registry base of the config: a layout may leave out only the layers of a base the config names; rebuild the layout (or build with --materialize)",
            b.name
        ),
        (Blobs::MayBeRemote { cache: None, .. }, _) if !need.is_config => format!(
            "{what} blob {digest} is not in the layout: if a build took it from the registry layer cache, push with that cache (not --no-cache or --no-registry-cache, the same --cache-repository); else rebuild the layout"
        ),
        (Blobs::MayBeRemote { .. }, _) => format!(
            "{what} blob {digest} is missing or has the wrong size; rebuild the layout"
        ),
    };
    OciError::Invalid {
        image: root.to_string(),
        message,
    }
}

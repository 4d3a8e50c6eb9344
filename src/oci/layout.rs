//! The image reader driven over an OCI image layout on disk: the top document from
//! `index.json` (by ref name, else the only image, else `latest`), then manifests and configs
//! from `blobs/`, each checked against its digest. Every blob is placed at its file; layers of
//! a registry base that a build left out of the layout are placed at the base's repository
//! (named by the manifest's `org.opencontainers.image.base.name`) when the caller allows it.
//! Imports `layout`.

use super::read::{BlobNeed, GraphReader, Want};
use super::{BlobAt, Doc, ImageGraph, OciError, Result};
use crate::digest::Digest;
use crate::layout::Layout;
use std::path::Path;

/// Where a layout's blobs must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    /// Every blob in the layout (a base image layout).
    AllHere,
    /// Layers of the registry base the image names may be left in that registry (what `build`
    /// writes; the push mounts or copies them).
    BaseLayersMayBeRemote,
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
    blobs: Blobs,
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
    let mut reader = GraphReader::new(name, doc, want)?;
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
fn locate(layout: &Layout, need: &BlobNeed<'_>, blobs: Blobs) -> Result<Vec<BlobAt>> {
    let path = layout.blob_path(need.digest);
    let mut at = Vec::new();
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == need.size) {
        at.push(BlobAt::File(path));
    }
    if let (Blobs::BaseLayersMayBeRemote, false) = (blobs, need.is_config) {
        if let Some(repo) = need.base.and_then(|b| b.at.clone()) {
            at.push(BlobAt::Registry(repo));
        }
    }
    if at.is_empty() {
        return Err(missing(layout, need.digest, blobs));
    }
    Ok(at)
}

fn missing(layout: &Layout, digest: &Digest, blobs: Blobs) -> OciError {
    let root = layout.root().display();
    OciError::Invalid {
        image: root.to_string(),
        message: match blobs {
            Blobs::AllHere => format!(
                "layer blob {digest} is missing from {root} or has the wrong size: re-create the base layout"
            ),
            Blobs::BaseLayersMayBeRemote => {
                format!("{root}: blob {digest} is missing or has the wrong size; rebuild the layout")
            }
        },
    }
}

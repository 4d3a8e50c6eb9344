//! OCI image layouts on disk: a writer (blobs by digest, written to a temp file and renamed
//! into place; `index.json` replaced atomically) and a reader (refs, blobs verified against
//! their digests).
//!
//! Invariants: a blob file's name is the digest of its bytes; blob files are read-only (a
//! hard link never lets anyone write through to another layout or the layer cache); a reader
//! never trusts a JSON blob it has not hashed; nothing is read outside `blobs/sha256/` of the
//! layout: blobs, `oci-layout` and `index.json` are opened without following symlinks, must
//! be regular files, and documents are read with a size bound; a blob taken from another
//! layout is copied with its digest checked on the way.
//! Imports `digest` and `spec`.

use crate::digest::file::{open_regular, read_bounded, ReadError};
use crate::digest::Digest;
use crate::spec::{canonical_json, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX};
use oci_spec::image::{Descriptor, ImageIndex};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Content of the `oci-layout` file.
pub const OCI_LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest manifest, index, config, `index.json` or `oci-layout` accepted from a layout.
pub const MAX_JSON_BLOB: u64 = 4 << 20;

/// A layout could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// An I/O failure on a named path.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The layout's content is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// The file or layout at fault.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(digest.hex())
}

/// Writes a new layout.
pub struct LayoutWriter {
    root: PathBuf,
}

impl LayoutWriter {
    /// Create a layout at `root` (a directory that must not exist yet).
    pub fn create(root: &Path) -> Result<Self, LayoutError> {
        fs::create_dir(root).map_err(io_err("creating layout directory", root))?;
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
        let w = LayoutWriter {
            root: root.to_path_buf(),
        };
        w.write_file_atomic("oci-layout", OCI_LAYOUT_FILE.as_bytes())?;
        Ok(w)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory for temp files that become blobs (same file system as the blobs).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// Whether the layout has this blob (as a regular file, not a symlink).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Move a finished temp file (whose bytes have the digest `digest`) into place as that
    /// blob, read-only.
    pub fn commit_temp(&self, tmp: NamedTempFile, digest: &Digest) -> Result<(), LayoutError> {
        let dest = self.blob_path(digest);
        crate::digest::file::make_read_only(tmp.as_file())
            .map_err(io_err("storing blob", &dest))?;
        tmp.persist(&dest).map_err(|e| LayoutError::Io {
            action: "storing blob",
            path: dest,
            source: e.error,
        })?;
        Ok(())
    }

    /// Store `bytes` as a blob; returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            let dir = self.tmp_dir();
            let mut tmp = NamedTempFile::with_prefix_in(".blob-", &dir)
                .map_err(io_err("creating a temp file in", &dir))?;
            tmp.write_all(bytes)
                .and_then(|_| tmp.as_file().sync_all())
                .map_err(io_err("writing", &dir))?;
            self.commit_temp(tmp, &digest)?;
        }
        Ok(digest)
    }

    /// Bring in a blob this run vouches for (built in this run, or a layer cache entry whose
    /// digest the cache verified): a hard link to the read-only file when possible, else a
    /// copy whose digest and size are checked. Never a symlink.
    pub fn link_blob(&self, src: &Path, digest: &Digest, size: u64) -> Result<(), LayoutError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let dest = self.blob_path(digest);
        let read_only_file = fs::symlink_metadata(src)
            .is_ok_and(|m| m.is_file() && m.permissions().readonly() && m.len() == size);
        if read_only_file && fs::hard_link(src, &dest).is_ok() {
            return Ok(());
        }
        self.copy_blob(src, digest, size)
    }

    /// Copy a blob in from `src` (a regular file, never followed through a symlink), checking
    /// its digest and size on the way: how blobs of another layout (a base) are brought in.
    pub fn copy_blob(&self, src: &Path, digest: &Digest, size: u64) -> Result<(), LayoutError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let dest = self.blob_path(digest);
        let dir = self.tmp_dir();
        let mut tmp = NamedTempFile::with_prefix_in(".blob-", &dir)
            .map_err(io_err("creating a temp file in", &dir))?;
        let mut input = open_regular(src).map_err(io_err("reading blob", src))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            let n = input.read(&mut buf).map_err(io_err("reading blob", src))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            n_total = n_total.saturating_add(n as u64);
            tmp.write_all(&buf[..n])
                .map_err(io_err("writing blob", &dest))?;
        }
        let got = Digest::of_hash(hasher.finalize().into());
        if &got != digest || n_total != size {
            return Err(LayoutError::Invalid {
                path: src.to_path_buf(),
                message: format!(
                    "blob is corrupt: expected {digest} ({size} bytes), found {got} ({n_total} bytes); re-create the layout it comes from"
                ),
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(io_err("writing blob", &dest))?;
        self.commit_temp(tmp, digest)
    }

    /// Write `index.json` listing `manifests` (each usually annotated with a ref name).
    pub fn write_index_json(&self, manifests: Vec<Descriptor>) -> Result<(), LayoutError> {
        let mut index = ImageIndex::default();
        index.set_schema_version(2);
        index.set_media_type(Some(MEDIA_TYPE_INDEX.into()));
        index.set_manifests(manifests);
        let bytes = canonical_json(&index).map_err(|e| LayoutError::Invalid {
            path: self.root.join("index.json"),
            message: format!("serializing: {e}"),
        })?;
        self.write_file_atomic("index.json", &bytes)
    }

    fn write_file_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let dest = self.root.join(name);
        let mut tmp = NamedTempFile::with_prefix_in(".tmp-", &self.root)
            .map_err(io_err("creating a temp file in", &self.root))?;
        tmp.write_all(bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(io_err("writing", &dest))?;
        tmp.persist(&dest).map_err(|e| LayoutError::Io {
            action: "writing",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// A layout opened for reading.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    index: ImageIndex,
}

impl Layout {
    /// Open the layout at `root`, checking `oci-layout` and reading `index.json`.
    pub fn open(root: &Path) -> Result<Self, LayoutError> {
        if !root.is_dir() {
            return Err(LayoutError::Invalid {
                path: root.to_path_buf(),
                message: "no such OCI layout directory".into(),
            });
        }
        crate::digest::file::no_symlinked_dirs(root, &["blobs", "blobs/sha256"]).map_err(|e| {
            LayoutError::Invalid {
                path: root.to_path_buf(),
                message: format!("{e}: blobs must be inside the layout"),
            }
        })?;
        let marker = root.join("oci-layout");
        let text = read_bounded(&marker, MAX_JSON_BLOB).map_err(|e| LayoutError::Invalid {
            path: marker.clone(),
            message: format!("not an OCI image layout ({e})"),
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| LayoutError::Invalid {
                path: marker.clone(),
                message: format!("invalid JSON: {e}"),
            })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(LayoutError::Invalid {
                path: marker,
                message: "unsupported imageLayoutVersion (expected 1.0.0)".into(),
            });
        }
        let index_path = root.join("index.json");
        let bytes = read_limited(&index_path, MAX_JSON_BLOB)?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                path: index_path,
                message: format!("invalid image index: {e}"),
            })?;
        Ok(Layout {
            root: root.to_path_buf(),
            index,
        })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The top-level `index.json`.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// The ref names in `index.json`.
    pub fn refs(&self) -> Vec<String> {
        self.index
            .manifests()
            .iter()
            .filter_map(|d| d.annotations().as_ref()?.get(ANNOTATION_REF_NAME).cloned())
            .collect()
    }

    /// The `index.json` entry for `reference`; without one, the only entry or else `latest`.
    pub fn find(&self, reference: Option<&str>) -> Result<&Descriptor, LayoutError> {
        let by_ref = |r: &str| {
            self.index.manifests().iter().find(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME))
                    .is_some_and(|n| n == r)
            })
        };
        let all = self.index.manifests();
        let found = match reference {
            Some(r) => by_ref(r),
            // One image (perhaps under several tags): take it.
            None if !all.is_empty() && all.iter().all(|d| d.digest() == all[0].digest()) => {
                all.first()
            }
            None => by_ref("latest"),
        };
        found.ok_or_else(|| LayoutError::Invalid {
            path: self.root.clone(),
            message: format!(
                "no image {} in this layout; it has {}",
                reference.map_or(
                    "tagged latest (and it holds several images: name one with :<tag>)".to_string(),
                    |r| { format!("tagged {r:?}") }
                ),
                match self.refs() {
                    r if r.is_empty() => "no tagged images".to_string(),
                    r => format!("tags: {}", r.join(", ")),
                }
            ),
        })
    }

    /// Read a JSON blob, checking its size and digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let bytes = read_limited(&path, MAX_JSON_BLOB)?;
        let got = Digest::of(&bytes);
        if &got != digest {
            return Err(LayoutError::Invalid {
                path,
                message: format!("blob is corrupt: its digest is {got}"),
            });
        }
        Ok(bytes)
    }
}

fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, LayoutError> {
    read_bounded(path, max).map_err(|e| match e {
        ReadError::Io(e) => io_err("reading", path)(e),
        ReadError::TooLarge(_) => LayoutError::Invalid {
            path: path.to_path_buf(),
            message: format!("larger than {max} bytes: not a manifest, index or config"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("l");
        let w = LayoutWriter::create(&root).unwrap();
        let d = w.write_blob(b"{}").unwrap();
        assert_eq!(fs::read(w.blob_path(&d)).unwrap(), b"{}");
        let desc = Descriptor::new(oci_spec::image::MediaType::ImageIndex, 2, d.to_oci());
        let mut tagged = desc.clone();
        tagged.set_annotations(Some(
            [(ANNOTATION_REF_NAME.to_string(), "v1".to_string())].into(),
        ));
        w.write_index_json(vec![tagged]).unwrap();
        let l = Layout::open(&root).unwrap();
        assert_eq!(l.refs(), ["v1"]);
        assert_eq!(l.find(None).unwrap().digest().to_string(), d.to_string());
        assert!(l
            .find(Some("v2"))
            .unwrap_err()
            .to_string()
            .contains("tags: v1"));
        assert_eq!(l.read_blob(&d).unwrap(), b"{}");
        // no temp files left behind
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn corrupt_blob_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let w = LayoutWriter::create(&t.path().join("l")).unwrap();
        let d = w.write_blob(b"{\"a\":1}").unwrap();
        fs::remove_file(w.blob_path(&d)).unwrap();
        fs::write(w.blob_path(&d), b"{\"a\":2}").unwrap();
        fs::write(
            t.path().join("l/index.json"),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        let l = Layout::open(&t.path().join("l")).unwrap();
        assert!(l.read_blob(&d).unwrap_err().to_string().contains("corrupt"));
        // a copy from a corrupt source stores nothing
        let other = LayoutWriter::create(&t.path().join("m")).unwrap();
        let e = other.copy_blob(&w.blob_path(&d), &d, 7).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        assert!(!other.has_blob(&d));
        fs::remove_file(w.blob_path(&d)).unwrap();
        fs::write(w.blob_path(&d), b"{\"a\":1}").unwrap();
        other.copy_blob(&w.blob_path(&d), &d, 7).unwrap();
        assert!(other.has_blob(&d));
    }

    #[test]
    fn open_errors_name_the_problem() {
        let t = tempfile::tempdir().unwrap();
        let e = Layout::open(&t.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such OCI layout"), "{e}");
        let e = Layout::open(t.path()).unwrap_err().to_string();
        assert!(e.contains("not an OCI image layout"), "{e}");
    }
}

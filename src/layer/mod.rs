//! Layers: from a source directory (or file) to a gzip-compressed tar blob in one streaming
//! pass: walk -> tar -> sha256 (diff_id) -> gzip -> sha256 + size (digest) -> temp file.
//!
//! Invariants: the bytes depend only on the entries (paths, kinds, contents, normalised modes),
//! the layer's settings and the epoch, never on the host, the checkout directory, mtimes or
//! owners. Memory stays bounded whatever the size of the files. A failed build leaves no blob:
//! the temp file is deleted when dropped. Imports `config`, `digest`, `spec`.

pub mod cache;
pub mod compress;
pub mod tar;
pub mod walk;

use crate::config::LayerConfig;
use crate::digest::{DiffId, Digest};
use compress::{Codec, StreamError};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Why a layer could not be built. Messages name the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The source does not exist.
    #[error(
        "layer source {0} does not exist: run the build step that produces it, or fix `source`"
    )]
    SourceMissing(PathBuf),
    /// The source directory has nothing in it (after excludes).
    #[error(
        "layer source {0} is empty (after excludes): check that the build step produced its output"
    )]
    SourceEmpty(PathBuf),
    /// A socket, fifo or device.
    #[error("{0} is {1}: special files cannot go into a layer; remove it or add it to `exclude`")]
    Special(PathBuf, &'static str),
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
    /// A file's contents could not be read into the layer.
    #[error("{path}")]
    File {
        /// The file on disk.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: tar::DataError,
    },
    /// Any other invalid layer setting.
    #[error("{0}")]
    Invalid(String),
}

impl LayerError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        LayerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A built layer: its blob's descriptor data and its diff_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: DiffId,
    /// Media type of the blob.
    pub media_type: String,
}

/// How layers are written: the codec and how many compression threads to use (the bytes do
/// not depend on the thread count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerOptions {
    /// Codec and level.
    pub codec: Codec,
    /// Compression threads.
    pub threads: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            codec: Codec::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Build one layer from `source` with the settings of `cfg`, timestamps `epoch`, into a new
/// temp file in `tmp_dir` (which the caller renames to its digest once it wants it).
pub fn build(
    source: &Path,
    cfg: &LayerConfig,
    epoch: u64,
    tmp_dir: &Path,
    opts: &LayerOptions,
) -> Result<(LayerBlob, NamedTempFile), LayerError> {
    let entries = walk::entries(source, cfg)?;
    build_entries(
        &entries,
        epoch,
        tmp_dir,
        opts.codec,
        &compress::Workers::new(opts.threads),
    )
}

/// Build a layer from entries already walked (see [`walk::entries`]), compressing on
/// `workers` (which other layers may share).
pub fn build_entries(
    entries: &[walk::Entry],
    epoch: u64,
    tmp_dir: &Path,
    codec: Codec,
    workers: &compress::Workers,
) -> Result<(LayerBlob, NamedTempFile), LayerError> {
    let tmp = NamedTempFile::with_prefix_in(".layer-", tmp_dir)
        .map_err(|e| LayerError::io("creating a temp file in", tmp_dir, e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| LayerError::io("opening", tmp.path(), e))?;
    let write_err = |e: io::Error| LayerError::io("writing layer to", tmp.path(), e);

    let result = compress::compress_stream(
        codec,
        workers,
        BufWriter::with_capacity(1 << 20, file),
        |chunks| {
            let mut tar = tar::TarWriter::new(chunks);
            for e in entries {
                let meta = tar::Meta {
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    mtime: epoch,
                };
                let kind = match &e.kind {
                    walk::EntryKind::Dir => tar::Kind::Dir,
                    walk::EntryKind::Symlink(l) => tar::Kind::Symlink(l),
                    walk::EntryKind::Hardlink(l) => tar::Kind::Hardlink(l),
                    walk::EntryKind::File { size, .. } => tar::Kind::File(*size),
                };
                if let walk::EntryKind::File { size, path, .. } = &e.kind {
                    let mut f =
                        File::open(path).map_err(|err| LayerError::io("reading", path, err))?;
                    tar.append_header(&e.path, kind, &meta).map_err(write_err)?;
                    tar.write_file_data(&mut f, *size)
                        .map_err(|err| match err {
                            tar::DataError::Write(e) => write_err(e),
                            other => LayerError::File {
                                path: path.clone(),
                                source: other,
                            },
                        })?;
                } else {
                    tar.append_header(&e.path, kind, &meta).map_err(write_err)?;
                }
            }
            tar.finish().map_err(write_err)?;
            Ok(())
        },
    );
    let done = result.map_err(|e| match e {
        StreamError::Produce(e) => e,
        StreamError::Io(e) => write_err(e),
    })?;
    let file = done
        .sink
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    Ok((
        LayerBlob {
            digest: done.digest,
            size: done.size,
            diff_id: done.diff_id,
            media_type: codec.media_type().to_string(),
        },
        tmp,
    ))
}

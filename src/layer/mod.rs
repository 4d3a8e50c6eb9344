//! Layers: from a source directory (or file) to a gzip-compressed tar blob in one streaming
//! pass: walk -> tar -> sha256 (diff_id) -> gzip -> sha256 + size (digest) -> temp file.
//!
//! Invariants: the bytes depend only on the entries (paths, kinds, contents, normalised modes),
//! the layer's settings and the epoch, never on the host, the checkout directory, mtimes or
//! owners. Memory stays bounded whatever the size of the files. A failed build leaves no blob:
//! the temp file is deleted when dropped. Imports `config`, `digest`, `spec`.

pub mod cache;
pub mod compress;
pub mod fingerprint;
pub mod tar;
pub mod walk;

use crate::config::LayerConfig;
use crate::digest::{DiffId, Digest};
use compress::{Codec, StreamError};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;
use xxhash_rust::xxh3::Xxh3;

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
    let built = build_entries(
        &entries,
        epoch,
        tmp_dir,
        opts.codec,
        &compress::Workers::new(opts.threads),
    )?;
    Ok((built.blob, built.file))
}

/// A layer just built: its blob, the temp file holding it, and the content hash of each
/// regular file as it was read into the layer (entry order), from which the layer cache's
/// content key is computed, so key and layer come from the same bytes.
#[derive(Debug)]
pub struct Built {
    /// Digest, size, diff_id, media type.
    pub blob: LayerBlob,
    /// The compressed layer.
    pub file: NamedTempFile,
    /// xxh3-128 of each regular file's bytes as they went into the tar, in entry order.
    pub contents: Vec<u128>,
}

/// Build a layer from entries already walked (see [`walk::entries`]), compressing on
/// `workers` (which other layers may share). A file that changed since it was walked (size,
/// identity, modification or change time, checked after reading it) fails the build: its
/// bytes would not be the ones the entry and the cache keys describe.
pub fn build_entries(
    entries: &[walk::Entry],
    epoch: u64,
    tmp_dir: &Path,
    codec: Codec,
    workers: &compress::Workers,
) -> Result<Built, LayerError> {
    let tmp = NamedTempFile::with_prefix_in(".layer-", tmp_dir)
        .map_err(|e| LayerError::io("creating a temp file in", tmp_dir, e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| LayerError::io("opening", tmp.path(), e))?;
    let write_err = |e: io::Error| LayerError::io("writing layer to", tmp.path(), e);
    let mut contents = Vec::new();

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
                tar.append_header(&e.path, kind, &meta).map_err(write_err)?;
                if let walk::EntryKind::File { size, path, stamp } = &e.kind {
                    let hash =
                        file_data(&mut tar, path, *size, stamp).map_err(|err| match err {
                            tar::DataError::Write(e) => write_err(e),
                            other => LayerError::File {
                                path: path.clone(),
                                source: other,
                            },
                        })?;
                    contents.push(hash);
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
    Ok(Built {
        blob: LayerBlob {
            digest: done.digest,
            size: done.size,
            diff_id: done.diff_id,
            media_type: codec.media_type().to_string(),
        },
        file: tmp,
        contents,
    })
}

/// Copy file `path` (walked with `size` and `stamp`) into `tar`; the xxh3-128 of the bytes
/// copied. Fails if the file, once read, is not the one walked (identity, size or times).
fn file_data<W: io::Write>(
    tar: &mut tar::TarWriter<W>,
    path: &Path,
    size: u64,
    stamp: &walk::FileStamp,
) -> Result<u128, tar::DataError> {
    // Never through a symlink that replaced the file since the walk.
    let f = crate::digest::file::open_regular(path).map_err(tar::DataError::Read)?;
    let mut reader = HashingReader {
        inner: &f,
        hash: Xxh3::new(),
    };
    tar.write_file_data(&mut reader, size)?;
    let after = f.metadata().map_err(tar::DataError::Read)?;
    if walk::FileStamp::of(&after) != *stamp || after.len() != size {
        return Err(tar::DataError::Changed);
    }
    Ok(reader.hash.digest128())
}

/// Hashes (xxh3) what is read through it.
struct HashingReader<R> {
    inner: R,
    hash: Xxh3,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceTemplate;
    use std::fs;
    use std::time::{Duration, SystemTime};

    fn cfg() -> LayerConfig {
        LayerConfig::new(SourceTemplate::try_from("x".to_string()).unwrap(), "/app")
    }

    /// Rewrite `path` with `bytes` (same size) and a modification time unlike the walk's.
    fn change(path: &Path, bytes: &[u8]) {
        fs::write(path, bytes).unwrap();
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .unwrap();
    }

    #[test]
    fn the_content_key_is_computed_from_the_bytes_that_went_into_the_layer() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a.txt"), b"first").unwrap();
        fs::write(src.join("b.txt"), b"second").unwrap();
        let entries = walk::entries(&src, &cfg()).unwrap();
        let opts = LayerOptions::default();
        let workers = compress::Workers::new(1);
        let built = build_entries(&entries, 0, t.path(), opts.codec, &workers).unwrap();
        assert_eq!(built.contents.len(), 2);
        let of_layer = cache::content_key_of(&entries, &built.contents, &cfg(), 0, &opts);
        let of_files = cache::key(cache::KeyKind::Content, &entries, &cfg(), 0, &opts).unwrap();
        assert_eq!(of_layer.as_deref(), Some(of_files.as_str()));
        // One hash per file, or no key at all.
        assert!(cache::content_key_of(&entries, &built.contents[..1], &cfg(), 0, &opts).is_none());
    }

    #[test]
    fn a_file_changed_between_the_walk_and_its_reads_fails_the_key_and_the_build() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a.txt"), b"before").unwrap();
        let entries = walk::entries(&src, &cfg()).unwrap();
        let opts = LayerOptions::default();
        // The lookup read sees the walked file.
        let looked_up = cache::key(cache::KeyKind::Content, &entries, &cfg(), 0, &opts).unwrap();
        // The file changes (same size) before the layer is built: the layer's bytes would not
        // be those the lookup key describes, so the build fails instead of caching them.
        change(&src.join("a.txt"), b"after!");
        let workers = compress::Workers::new(1);
        let e = build_entries(&entries, 0, t.path(), opts.codec, &workers).unwrap_err();
        assert!(
            matches!(
                &e,
                LayerError::File {
                    source: tar::DataError::Changed,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("a.txt"), "{e}");
        // A content key read after the change is refused too (the stamp is not the walk's).
        assert!(cache::key(cache::KeyKind::Content, &entries, &cfg(), 0, &opts).is_err());
        // Walked again, the tree builds, under a key other than the stale lookup's.
        let entries = walk::entries(&src, &cfg()).unwrap();
        let built = build_entries(&entries, 0, t.path(), opts.codec, &workers).unwrap();
        let key = cache::content_key_of(&entries, &built.contents, &cfg(), 0, &opts).unwrap();
        assert_ne!(key, looked_up);
    }
}

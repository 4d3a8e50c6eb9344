//! A layer's fingerprint: SHA-256 over everything that decides its bytes, so that two machines
//! with the same inputs agree on it and a registry can remember which blob those inputs make.
//!
//! Hashed, each field length-prefixed: the layer format version, the codec and level, the
//! chunk size, `SOURCE_DATE_EPOCH`, the layer's settings (target, owner, excludes, modes,
//! setid handling), the platform when the source path depends on it, and per entry its path,
//! kind, mode, owner, link target and, for a regular file, its size and the SHA-256 of its
//! content. Unlike the local cache's keys (`cache`), nothing here depends on the machine, and
//! the hash resists collisions: the fingerprint is what a shared, remote cache is keyed by.
//! Imports `config`, `digest`, `platform`.

use super::compress::{Codec, CHUNK};
use super::walk::{Entry, EntryKind, FileStamp};
use crate::config::LayerConfig;
use crate::digest::Digest;
use crate::platform::Platform;
use sha2::{Digest as _, Sha256};
use std::io;
use std::path::Path;

/// What a fingerprint covers besides the entries.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The layer's settings.
    pub cfg: &'a LayerConfig,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: u64,
    /// Codec and level.
    pub codec: Codec,
    /// The platform the source path was expanded for.
    pub platform: &'a Platform,
}

/// Length-prefixed fields into one SHA-256.
struct Fields(Sha256);

impl Fields {
    fn put(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
}

/// The fingerprint of the layer made of `entries` with `inputs`, reading every regular file.
/// A file that changes while it is read (its stamp differs from the walk's) is an error: it
/// has no one content to stand for.
pub fn fingerprint(entries: &[Entry], inputs: &Inputs<'_>) -> io::Result<Digest> {
    let mut buf = vec![0u8; 1 << 20];
    let mut read = |path: &Path, stamp: &FileStamp| -> io::Result<[u8; 32]> {
        let mut h = Sha256::new();
        super::walk::read_unchanged(path, stamp, &mut buf, &mut |b| h.update(b))?;
        Ok(h.finalize().into())
    };
    fingerprint_with(entries, inputs, &mut read)
}

/// The fingerprint with each file's content hash from `content`.
fn fingerprint_with(
    entries: &[Entry],
    inputs: &Inputs<'_>,
    content: &mut dyn FnMut(&Path, &FileStamp) -> io::Result<[u8; 32]>,
) -> io::Result<Digest> {
    let mut f = Fields(Sha256::new());
    let cfg = inputs.cfg;
    f.put(super::cache::FORMAT.as_bytes());
    f.put(format!("{:?}", inputs.codec).as_bytes());
    f.put(&(CHUNK as u64).to_le_bytes());
    f.put(&inputs.epoch.to_le_bytes());
    f.put(cfg.target.as_bytes());
    f.put(&cfg.uid.to_le_bytes());
    f.put(&cfg.gid.to_le_bytes());
    f.put(&(cfg.exclude.len() as u64).to_le_bytes());
    for e in &cfg.exclude {
        f.put(e.as_bytes());
    }
    f.put(&(cfg.modes.len() as u64).to_le_bytes());
    for (g, m) in &cfg.modes {
        f.put(g.as_bytes());
        f.put(&m.to_le_bytes());
    }
    f.put(&[u8::from(cfg.preserve_modes), u8::from(cfg.setid)]);
    match cfg.source.is_platform_independent() {
        true => f.put(b""),
        false => f.put(inputs.platform.to_string().as_bytes()),
    }
    for e in entries {
        f.put(&e.path);
        f.put(&e.mode.to_le_bytes());
        f.put(&e.uid.to_le_bytes());
        f.put(&e.gid.to_le_bytes());
        match &e.kind {
            EntryKind::Dir => f.put(b"d"),
            EntryKind::Symlink(t) => {
                f.put(b"s");
                f.put(t);
            }
            EntryKind::Hardlink(t) => {
                f.put(b"h");
                f.put(t);
            }
            EntryKind::File { size, path, stamp } => {
                f.put(b"f");
                f.put(&size.to_le_bytes());
                f.put(&content(path, stamp)?);
            }
        }
    }
    Ok(Digest::of_hash(f.0.finalize().into()))
}

#[cfg(test)]
#[path = "fingerprint_tests.rs"]
mod tests;

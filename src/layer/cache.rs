//! A content-addressed cache of built layers, so the same work is never done twice.
//!
//! A layer's key hashes everything that decides its bytes: the format version, the codec and
//! level, the epoch, the layer settings, and every entry's path, kind, mode, owner, link target
//! and size, plus either the files' identities and mtimes (the *stat* key: a rebuild on the same
//! machine costs a stat walk) or a fast hash of their contents (the *content* key: survives a
//! fresh checkout or the cache being copied to another machine). A hit on the content key
//! records the stat key too.
//!
//! Layout: `<dir>/v1/keys/<key>` (JSON: digest, diff_id, size, media type) and
//! `<dir>/v1/blobs/sha256/<hex>`; every file is written to a temp file and renamed, so builds
//! sharing the cache never see half a file.

use super::walk::{Entry, EntryKind};
use super::{LayerBlob, LayerOptions};
use crate::config::LayerConfig;
use crate::digest::Digest;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;
use xxhash_rust::xxh3::Xxh3;

/// Bumped whenever the bytes of a layer for the same inputs change (tar or compression).
const FORMAT: &str = "ocibuild-layer-v2";

/// The cache directory.
#[derive(Debug, Clone)]
pub struct LayerCache {
    root: PathBuf,
}

/// Where the cache lives by default: `$OCIBUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/ocibuild`,
/// else `~/.cache/ocibuild`.
pub fn default_dir(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = var("OCIBUILD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("ocibuild"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache").join("ocibuild"))
}

/// Which kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Files by identity and modification time.
    Stat,
    /// Files by content.
    Content,
}

fn common(h: &mut Xxh3, cfg: &LayerConfig, epoch: u64, opts: &LayerOptions) {
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(FORMAT.as_bytes());
    field(format!("{:?}", opts.codec).as_bytes());
    field(&epoch.to_le_bytes());
    field(cfg.target.as_bytes());
    field(&cfg.uid.to_le_bytes());
    field(&cfg.gid.to_le_bytes());
    for e in &cfg.exclude {
        field(e.as_bytes());
    }
    field(b"|modes");
    for (g, m) in &cfg.modes {
        field(g.as_bytes());
        field(&m.to_le_bytes());
    }
    field(&[u8::from(cfg.preserve_modes), u8::from(cfg.setid)]);
}

/// The key of a layer made of `entries`. The content key reads every file.
pub fn key(
    kind: KeyKind,
    entries: &[Entry],
    cfg: &LayerConfig,
    epoch: u64,
    opts: &LayerOptions,
) -> io::Result<String> {
    let mut h = Xxh3::new();
    common(&mut h, cfg, epoch, opts);
    h.update(match kind {
        KeyKind::Stat => b"stat",
        KeyKind::Content => b"cont",
    });
    let mut buf = vec![0u8; 1 << 20];
    for e in entries {
        h.update(&(e.path.len() as u64).to_le_bytes());
        h.update(&e.path);
        h.update(&e.mode.to_le_bytes());
        h.update(&e.uid.to_le_bytes());
        h.update(&e.gid.to_le_bytes());
        match &e.kind {
            EntryKind::Dir => h.update(b"d"),
            EntryKind::Symlink(t) => {
                h.update(b"s");
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t);
            }
            EntryKind::Hardlink(t) => {
                h.update(b"h");
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t);
            }
            EntryKind::File { size, path, stamp } => {
                h.update(b"f");
                h.update(&size.to_le_bytes());
                match kind {
                    KeyKind::Stat => {
                        h.update(&stamp.dev.to_le_bytes());
                        h.update(&stamp.ino.to_le_bytes());
                        h.update(&stamp.mtime_ns.to_le_bytes());
                        h.update(&stamp.ctime_ns.to_le_bytes());
                    }
                    KeyKind::Content => {
                        let mut f = fs::File::open(path)?;
                        let mut content = Xxh3::new();
                        loop {
                            let n = f.read(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            content.update(&buf[..n]);
                        }
                        h.update(&content.digest128().to_le_bytes());
                    }
                }
            }
        }
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// Whether any file changed so recently (within 2 s of `now_ns`) that a later change could
/// keep the same modification time: such a tree is looked up by content only (as git treats
/// "racily clean" files).
pub fn racy(entries: &[Entry], now_ns: i64) -> bool {
    entries.iter().any(|e| match &e.kind {
        EntryKind::File { stamp, .. } => {
            stamp.mtime_ns.max(stamp.ctime_ns) >= now_ns - 2_000_000_000
        }
        _ => false,
    })
}

impl LayerCache {
    /// Open (creating it if needed) the cache at `dir`.
    pub fn open(dir: &Path) -> io::Result<LayerCache> {
        let root = dir.join("v1");
        fs::create_dir_all(root.join("keys"))?;
        fs::create_dir_all(root.join("blobs").join("sha256"))?;
        // Fail now, not half way, if we cannot write there.
        NamedTempFile::with_prefix_in(".probe-", root.join("keys"))?;
        Ok(LayerCache { root })
    }

    /// The cache directory as given to [`LayerCache::open`] (other caches live beside ours).
    pub fn dir(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    /// The layer stored under `key`, with its blob file, if both are there and consistent.
    pub fn get(&self, key: &str) -> Option<(LayerBlob, PathBuf)> {
        let text = fs::read_to_string(self.root.join("keys").join(key)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let blob = LayerBlob {
            digest: v["digest"].as_str()?.parse().ok()?,
            diff_id: v["diff_id"].as_str()?.parse().ok()?,
            size: v["size"].as_u64()?,
            media_type: v["media_type"].as_str()?.to_string(),
        };
        let path = self.blob_path(&blob.digest);
        (fs::metadata(&path).ok()?.len() == blob.size).then_some((blob, path))
    }

    /// Record `blob` (whose bytes are at `file`) under `keys`.
    pub fn put(&self, keys: &[&str], blob: &LayerBlob, file: &Path) -> io::Result<()> {
        let dest = self.blob_path(&blob.digest);
        if fs::metadata(&dest).map(|m| m.len()).ok() != Some(blob.size) {
            let dir = self.root.join("blobs");
            let tmp = NamedTempFile::with_prefix_in(".blob-", &dir)?;
            let _ = fs::remove_file(tmp.path());
            if fs::hard_link(file, tmp.path()).is_err() {
                fs::copy(file, tmp.path())?;
            }
            tmp.persist(&dest).map_err(|e| e.error)?;
        }
        let record = serde_json::json!({
            "digest": blob.digest.to_string(),
            "diff_id": blob.diff_id.to_string(),
            "size": blob.size,
            "media_type": blob.media_type,
        })
        .to_string();
        for key in keys {
            let mut tmp = NamedTempFile::with_prefix_in(".key-", self.root.join("keys"))?;
            tmp.write_all(record.as_bytes())?;
            tmp.persist(self.root.join("keys").join(key))
                .map_err(|e| e.error)?;
        }
        Ok(())
    }
}

//! A content-addressed cache of built layers, so the same work is never done twice.
//!
//! A layer's key hashes everything that decides its bytes: the format version, the codec and
//! level, the epoch, the layer settings, and every entry's path, kind, mode, owner, link target
//! and size, plus either the files' identities and mtimes (the *stat* key: a rebuild on the same
//! machine costs a stat walk) or a fast hash of their contents (the *content* key: survives a
//! fresh checkout or the cache being copied to another machine). A hit on the content key
//! records the stat key too.
//!
//! Layout: `<dir>/v1/keys/<key>` (JSON: digest, diff_id, size, media type),
//! `<dir>/v1/blobs/sha256/<hex>` (read-only) and `<dir>/v1/checked/<hex>` (the blob file's
//! device, inode, size and modification time when its digest was last verified); every file is
//! written to a temp file and renamed, so builds sharing the cache never see half a file, and
//! no file is ever written in place (layouts hard-link the read-only blob files).
//!
//! Integrity: a blob is served only if it verifies: hashed once, then trusted while its stamp
//! is the one recorded; a damaged blob is removed (and built and stored again).

use super::walk::{Entry, EntryKind, FileStamp};
use super::{LayerBlob, LayerOptions};
use crate::config::LayerConfig;
use crate::digest::file::read_bounded;
use crate::digest::Digest;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;
use xxhash_rust::xxh3::Xxh3;

/// Bumped whenever the bytes of a layer for the same inputs change (tar or compression).
pub(crate) const FORMAT: &str = "ocibuild-layer-v2";

/// A layer found in the cache: its blob and the file holding its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLayer {
    /// Digest, diff_id, size and media type.
    pub blob: LayerBlob,
    /// The blob's file in the cache.
    pub file: PathBuf,
}

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

/// The key of a layer made of `entries`. The content key reads every file (for a lookup; the
/// content key a built layer is stored under comes from [`content_key_of`]).
pub fn key(
    kind: KeyKind,
    entries: &[Entry],
    cfg: &LayerConfig,
    epoch: u64,
    opts: &LayerOptions,
) -> io::Result<String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut read = |path: &Path, stamp: &FileStamp| -> io::Result<u128> {
        let mut content = Xxh3::new();
        // A file written while it was read has no one content: no content key for it.
        super::walk::read_unchanged(path, stamp, &mut buf, &mut |b| content.update(b))?;
        Ok(content.digest128())
    };
    key_with(kind, entries, cfg, epoch, opts, &mut read)
}

/// The content key of a layer built from `entries`, from `contents`: the hash of each regular
/// file's bytes as they went into the layer (see [`super::Built`]), so a file that changed
/// between the lookup and the build can never store the layer under another content's key.
/// `None` if `contents` does not have one hash per file.
pub fn content_key_of(
    entries: &[Entry],
    contents: &[u128],
    cfg: &LayerConfig,
    epoch: u64,
    opts: &LayerOptions,
) -> Option<String> {
    let files = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .count();
    if files != contents.len() {
        return None;
    }
    let mut next = contents.iter();
    let mut given = |_: &Path, _: &FileStamp| {
        next.next()
            .copied()
            .ok_or_else(|| io::Error::other("short"))
    };
    key_with(KeyKind::Content, entries, cfg, epoch, opts, &mut given).ok()
}

fn key_with(
    kind: KeyKind,
    entries: &[Entry],
    cfg: &LayerConfig,
    epoch: u64,
    opts: &LayerOptions,
    content: &mut dyn FnMut(&Path, &FileStamp) -> io::Result<u128>,
) -> io::Result<String> {
    let mut h = Xxh3::new();
    common(&mut h, cfg, epoch, opts);
    h.update(match kind {
        KeyKind::Stat => b"stat",
        KeyKind::Content => b"cont",
    });
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
                    KeyKind::Content => h.update(&content(path, stamp)?.to_le_bytes()),
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
        let inner = ["v1", "v1/keys", "v1/blobs", "v1/blobs/sha256", "v1/checked"];
        crate::digest::file::no_symlinked_dirs(dir, &inner)?;
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

    /// The layer stored under `key`, with its blob file, if both are there and the file holds
    /// the bytes of its digest (see [`LayerCache::verified`]). A damaged blob is removed, so
    /// the layer is built again and stored afresh.
    pub fn get(&self, key: &str) -> Option<CachedLayer> {
        let text = read_bounded(&self.root.join("keys").join(key), MAX_RECORD).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        let blob = LayerBlob {
            digest: v["digest"].as_str()?.parse().ok()?,
            diff_id: v["diff_id"].as_str()?.parse().ok()?,
            size: v["size"].as_u64()?,
            media_type: v["media_type"].as_str()?.to_string(),
        };
        // A record filed under another key, or damaged in a way JSON still takes, is a miss.
        if v["check"].as_str() != Some(record_check(key, &blob).as_str()) {
            return None;
        }
        let path = self.blob_path(&blob.digest);
        self.verified(&blob)
            .then_some(CachedLayer { blob, file: path })
    }

    /// Whether the blob file of `blob` is a read-only regular file holding exactly its bytes.
    /// A file is hashed once, then trusted while its device, inode, size, modification and
    /// change times are those recorded (a write changes both times; one that puts the
    /// modification time back still changes the change time). A file found damaged is removed
    /// with its record.
    pub fn verified(&self, blob: &LayerBlob) -> bool {
        let path = self.blob_path(&blob.digest);
        let checked = self.root.join("checked").join(blob.digest.hex());
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return false;
        };
        let stamp = stamp_of(&meta);
        if meta.is_file() && meta.len() == blob.size && meta.permissions().readonly() {
            let recorded = read_bounded(&checked, MAX_RECORD).ok();
            if recorded.as_deref() == Some(stamp.as_bytes()) {
                return true;
            }
        }
        let good = meta.is_file()
            && crate::digest::file::hash_file(&path)
                .is_ok_and(|(d, n)| d == blob.digest && n == blob.size);
        if !good {
            let _ = fs::remove_file(&checked);
            let _ = fs::remove_file(&path);
            return false;
        }
        self.record_checked(&path, &blob.digest).is_ok()
    }

    /// After this run verified `blob`'s file, linked it into layouts and removed older ones
    /// (which changes its link count and change time, not its bytes): record the new stamp if
    /// the file, its size and modification time are unchanged, so the next run does not hash
    /// it again. Call it only for blobs this run verified or stored: a write between runs,
    /// even one that puts the modification time back, is caught by the next run's check,
    /// before any refresh (only a write racing with this very run, mtime restored, is not).
    pub fn refresh(&self, blob: &LayerBlob) {
        let path = self.blob_path(&blob.digest);
        let checked = self.root.join("checked").join(blob.digest.hex());
        let (Ok(meta), Ok(recorded)) = (
            fs::symlink_metadata(&path),
            read_bounded(&checked, MAX_RECORD),
        ) else {
            return;
        };
        let now = stamp_of(&meta);
        let was = String::from_utf8_lossy(&recorded).into_owned();
        let (now, was): (Vec<&str>, Vec<&str>) =
            (now.split(' ').collect(), was.split(' ').collect());
        // Same file, size and modification time: only links made or removed by this run.
        if now.len() == 6 && was.len() == 6 && now[..4] == was[..4] && now != was {
            let _ = self.record_checked(&path, &blob.digest);
        }
    }

    /// Make the blob file at `path` read-only and record its stamp as verified.
    fn record_checked(&self, path: &Path, digest: &Digest) -> io::Result<()> {
        let file = crate::digest::file::open_regular(path)?;
        crate::digest::file::make_read_only(&file)?;
        let stamp = stamp_of(&file.metadata()?);
        let dir = self.root.join("checked");
        fs::create_dir_all(&dir)?;
        let mut tmp = NamedTempFile::with_prefix_in(".checked-", &dir)?;
        tmp.write_all(stamp.as_bytes())?;
        tmp.persist(dir.join(digest.hex())).map_err(|e| e.error)?;
        Ok(())
    }

    /// Record `blob` (whose bytes are at `file`, built in this run) under `keys`. A blob file
    /// already in the cache is kept only if it verifies; otherwise it is replaced (by a new
    /// file renamed over it: nothing is ever written into a file that layouts may link to).
    pub fn put(&self, keys: &[&str], blob: &LayerBlob, file: &Path) -> io::Result<()> {
        let dest = self.blob_path(&blob.digest);
        if !self.verified(blob) {
            let dir = self.root.join("blobs");
            let tmp = NamedTempFile::with_prefix_in(".blob-", &dir)?;
            let linked = fs::symlink_metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().readonly())
                && {
                    let _ = fs::remove_file(tmp.path());
                    fs::hard_link(file, tmp.path()).is_ok()
                };
            if !linked {
                let mut src = crate::digest::file::open_regular(file)?;
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .create(true)
                    .open(tmp.path())?;
                io::copy(&mut src, &mut out)?;
                out.sync_all()?;
            }
            tmp.persist(&dest).map_err(|e| e.error)?;
            self.record_checked(&dest, &blob.digest)?;
        }
        for key in keys {
            let record = serde_json::json!({
                "digest": blob.digest.to_string(),
                "diff_id": blob.diff_id.to_string(),
                "size": blob.size,
                "media_type": blob.media_type,
                "check": record_check(key, blob),
            })
            .to_string();
            let mut tmp = NamedTempFile::with_prefix_in(".key-", self.root.join("keys"))?;
            tmp.write_all(record.as_bytes())?;
            tmp.persist(self.root.join("keys").join(key))
                .map_err(|e| e.error)?;
        }
        Ok(())
    }
}

/// What binds a key record to its key and its fields: a record copied under another key, or
/// damaged in a way that still parses, no longer matches. (It protects against damage, not
/// against someone who can write the cache and recompute it; see the README's security model.)
fn record_check(key: &str, blob: &LayerBlob) -> String {
    let text = format!(
        "{key}\0{}\0{}\0{}\0{}",
        blob.digest, blob.diff_id, blob.size, blob.media_type
    );
    Digest::of(text.as_bytes()).hex().to_string()
}

/// Largest key or verification record read.
const MAX_RECORD: u64 = 64 << 10;

/// What identifies a blob file's bytes once hashed: device, inode, size, modification time,
/// link count and change time.
fn stamp_of(m: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {} {}.{:09} {} {}.{:09}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.nlink(),
        m.ctime(),
        m.ctime_nsec()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceTemplate;
    use crate::digest::DiffId;
    use crate::layer::compress::Codec;
    use crate::layer::walk::FileStamp;
    use std::io::Read;

    fn cfg() -> LayerConfig {
        LayerConfig::new(SourceTemplate::try_from("app".to_string()).unwrap(), "/app")
    }

    fn opts() -> LayerOptions {
        LayerOptions {
            codec: Codec::Gzip(6),
            threads: 1,
        }
    }

    fn stamp(mtime_ns: i64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 2,
            mtime_ns,
            ctime_ns: mtime_ns,
        }
    }

    fn real(path: &Path) -> FileStamp {
        FileStamp::of(&fs::metadata(path).unwrap())
    }

    fn file_entry(name: &str, path: &Path, stamp: FileStamp) -> Entry {
        Entry {
            path: name.as_bytes().to_vec(),
            kind: EntryKind::File {
                size: fs::metadata(path).unwrap().len(),
                path: path.to_path_buf(),
                stamp,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn dir_entry(name: &str) -> Entry {
        Entry {
            path: name.as_bytes().to_vec(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    /// A layer file with `bytes` at `dir/name`, and its blob record.
    fn layer_file(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, LayerBlob) {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let blob = LayerBlob {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            diff_id: DiffId::of(b"the tar"),
            media_type: crate::spec::MEDIA_TYPE_LAYER_GZIP.into(),
        };
        (path, blob)
    }

    #[test]
    fn put_then_get_by_either_key_returns_the_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&tmp.path().join("cache")).unwrap();
        assert_eq!(cache.dir(), tmp.path().join("cache"));
        let (file, blob) = layer_file(tmp.path(), "layer.tgz", b"compressed layer bytes");
        assert!(cache.get("stat-key").is_none());
        cache
            .put(&["stat-key", "content-key"], &blob, &file)
            .unwrap();
        for key in ["stat-key", "content-key"] {
            let CachedLayer {
                blob: got,
                file: path,
            } = cache.get(key).expect(key);
            assert_eq!(got, blob);
            assert_eq!(fs::read(&path).unwrap(), b"compressed layer bytes");
            assert!(path.starts_with(tmp.path().join("cache")));
        }
        assert!(cache.get("another-key").is_none());
        // The source stays where it was; a second cache at the same place sees the entry.
        assert!(file.exists());
        let again = LayerCache::open(&tmp.path().join("cache")).unwrap();
        assert_eq!(again.get("stat-key").unwrap().blob, blob);
    }

    #[test]
    fn a_cache_whose_inner_directories_are_symlinks_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::create_dir_all(tmp.path().join("cache/v1")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, tmp.path().join("cache/v1/keys")).unwrap();
        let e = LayerCache::open(&tmp.path().join("cache")).unwrap_err();
        assert!(e.to_string().contains("keys"), "{e}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn a_record_moved_to_another_key_or_edited_is_a_miss() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&tmp.path().join("cache")).unwrap();
        let (file, blob) = layer_file(tmp.path(), "layer.tgz", b"layer one");
        cache.put(&["a", "b"], &blob, &file).unwrap();
        let keys = tmp.path().join("cache/v1/keys");
        // Filed under another key (a swapped or copied record).
        fs::copy(keys.join("a"), keys.join("other")).unwrap();
        assert!(cache.get("other").is_none());
        // Another diff_id, still valid JSON and a valid digest.
        let text = fs::read_to_string(keys.join("a")).unwrap();
        let forged = text.replace(&blob.diff_id.hex().to_string(), &"d".repeat(64));
        assert_ne!(forged, text);
        fs::write(keys.join("a"), forged).unwrap();
        assert!(cache.get("a").is_none());
        assert_eq!(cache.get("b").unwrap().blob, blob);
    }

    #[test]
    fn a_blob_that_no_longer_matches_its_record_is_not_served_and_put_repairs_it() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&tmp.path().join("cache")).unwrap();
        let bytes = b"0123456789 layer";
        let (file, blob) = layer_file(tmp.path(), "layer.tgz", bytes);
        cache.put(&["k"], &blob, &file).unwrap();
        let path = cache.get("k").unwrap().file;

        // Putting the layer again (from a fresh file) restores the blob under the same key.
        let (fresh, _) = layer_file(tmp.path(), "again.tgz", bytes);
        let repaired = || {
            cache.put(&["k"], &blob, &fresh).unwrap();
            let CachedLayer {
                blob: got,
                file: path,
            } = cache.get("k").unwrap();
            assert_eq!(got, blob);
            assert_eq!(fs::read(path).unwrap(), bytes);
        };

        // Truncated (a new file: the cache's may be a hard link to the source).
        fs::remove_file(&path).unwrap();
        fs::write(&path, &bytes[..5]).unwrap();
        assert!(cache.get("k").is_none());
        repaired();

        // Gone.
        fs::remove_file(&path).unwrap();
        assert!(cache.get("k").is_none());
        repaired();
    }

    /// Flip a byte of `path` in place (same inode, same size), then put its modification
    /// time back: only the change time tells.
    fn flip_in_place(path: &Path) {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::PermissionsExt;
        let mtime = fs::metadata(path).unwrap().modified().unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&[b[0] ^ 1]).unwrap();
        f.set_modified(mtime).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o444)).unwrap();
    }

    #[test]
    fn a_blob_damaged_in_place_is_detected_removed_and_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&tmp.path().join("cache")).unwrap();
        let bytes = b"a layer of some bytes";
        let (file, blob) = layer_file(tmp.path(), "layer.tgz", bytes);
        cache.put(&["k"], &blob, &file).unwrap();
        let path = cache.get("k").unwrap().file;
        assert!(fs::metadata(&path).unwrap().permissions().readonly());
        // Verified once: served again from the record without change.
        assert!(cache.get("k").is_some());
        // A hard link (what a layout makes) changes only the change time: refreshed, kept.
        fs::hard_link(&path, tmp.path().join("layout-link")).unwrap();
        cache.refresh(&blob);
        assert!(cache.get("k").is_some());

        flip_in_place(&path);
        assert!(cache.get("k").is_none(), "a damaged blob was served");
        assert!(!path.exists(), "a damaged blob was kept");
        // Damaged again between runs (no refresh in between): caught again.
        let (fresh, _) = layer_file(tmp.path(), "again.tgz", bytes);
        cache.put(&["k"], &blob, &fresh).unwrap();
        flip_in_place(&cache.get("k").unwrap().file);
        assert!(cache.get("k").is_none());
        // put replaces it (with a new file: nothing written through old links).
        cache.put(&["k"], &blob, &fresh).unwrap();
        assert_eq!(fs::read(cache.get("k").unwrap().file).unwrap(), bytes);
    }

    #[test]
    fn a_damaged_key_record_is_not_served() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&tmp.path().join("cache")).unwrap();
        let (file, blob) = layer_file(tmp.path(), "layer.tgz", b"bytes");
        cache.put(&["k"], &blob, &file).unwrap();
        let record = tmp.path().join("cache/v1/keys/k");
        assert!(cache.get("k").is_some());
        fs::write(&record, b"{not json").unwrap();
        assert!(cache.get("k").is_none());
        fs::write(
            &record,
            serde_json::json!({"digest": blob.digest.to_string(), "size": blob.size}).to_string(),
        )
        .unwrap();
        assert!(cache.get("k").is_none(), "a record without diff_id");
        fs::write(
            &record,
            serde_json::json!({
                "digest": "sha256:nothex",
                "diff_id": blob.diff_id.to_string(),
                "size": blob.size,
                "media_type": blob.media_type,
            })
            .to_string(),
        )
        .unwrap();
        assert!(cache.get("k").is_none(), "a record with a bad digest");
    }

    #[test]
    fn keys_differ_when_any_setting_differs() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a.txt");
        fs::write(&f, b"hello").unwrap();
        let entries = vec![dir_entry("app"), file_entry("app/a.txt", &f, real(&f))];
        let k = |kind, cfg: &LayerConfig, epoch, opts: &LayerOptions| {
            key(kind, &entries, cfg, epoch, opts).unwrap()
        };
        let base = k(KeyKind::Stat, &cfg(), 0, &opts());
        assert_eq!(base, k(KeyKind::Stat, &cfg(), 0, &opts()), "deterministic");
        assert_eq!(base.len(), 32);

        let mut variants = vec![
            k(KeyKind::Content, &cfg(), 0, &opts()),
            k(KeyKind::Stat, &cfg(), 1, &opts()),
        ];
        for codec in [Codec::Gzip(9), Codec::Zstd(3)] {
            variants.push(k(
                KeyKind::Stat,
                &cfg(),
                0,
                &LayerOptions { codec, threads: 1 },
            ));
        }
        let changes: Vec<fn(&mut LayerConfig)> = vec![
            |c| c.target = "/srv".into(),
            |c| c.uid = 1000,
            |c| c.gid = 1000,
            |c| c.exclude = vec!["*.log".into()],
            |c| c.modes = vec![("bin/*".into(), 0o755)],
            |c| c.preserve_modes = true,
            |c| c.setid = true,
        ];
        for change in changes {
            let mut c = cfg();
            change(&mut c);
            variants.push(k(KeyKind::Stat, &c, 0, &opts()));
        }
        // The thread count does not change the bytes, so not the key either.
        assert_eq!(
            base,
            k(
                KeyKind::Stat,
                &cfg(),
                0,
                &LayerOptions {
                    threads: 8,
                    ..opts()
                }
            )
        );
        let mut all = variants.clone();
        all.push(base.clone());
        all.sort();
        all.dedup();
        assert_eq!(all.len(), variants.len() + 1, "{variants:?} vs {base}");
    }

    #[test]
    fn content_key_follows_the_bytes_and_stat_key_the_stamps() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a.txt");
        fs::write(&f, b"hello").unwrap();
        // The content key checks each file kept the stamp it was walked with: give it the real one.
        let keys = |entries: &[Entry]| {
            let mut now = entries.to_vec();
            for e in &mut now {
                if let EntryKind::File { path, stamp, .. } = &mut e.kind {
                    *stamp = real(path);
                }
            }
            (
                key(KeyKind::Stat, entries, &cfg(), 0, &opts()).unwrap(),
                key(KeyKind::Content, &now, &cfg(), 0, &opts()).unwrap(),
            )
        };
        let (stat, content) = keys(&[file_entry("a.txt", &f, stamp(1))]);

        // Touched, same bytes: the stat key changes, the content key does not.
        let (stat2, content2) = keys(&[file_entry("a.txt", &f, stamp(2))]);
        assert_ne!(stat, stat2);
        assert_eq!(content, content2);

        // Same size and stamp, other bytes: only the content key sees it.
        fs::write(&f, b"HELLO").unwrap();
        let (stat3, content3) = keys(&[file_entry("a.txt", &f, stamp(1))]);
        assert_eq!(stat, stat3);
        assert_ne!(content, content3);

        // The path, mode and owner of an entry are in both keys.
        let mut moved = file_entry("b.txt", &f, stamp(1));
        let (s, c) = keys(std::slice::from_ref(&moved));
        assert!(s != stat3 && c != content3);
        moved.path = b"a.txt".to_vec();
        moved.mode = 0o755;
        let (s, c) = keys(std::slice::from_ref(&moved));
        assert!(s != stat3 && c != content3);
        moved.mode = 0o644;
        moved.uid = 1;
        let (s, c) = keys(&[moved]);
        assert!(s != stat3 && c != content3);

        // A missing file fails the content key, not the stat key.
        let gone = file_entry("a.txt", &f, stamp(1));
        fs::remove_file(&f).unwrap();
        assert!(key(
            KeyKind::Content,
            std::slice::from_ref(&gone),
            &cfg(),
            0,
            &opts()
        )
        .is_err());
        assert_eq!(
            key(KeyKind::Stat, &[gone], &cfg(), 0, &opts()).unwrap(),
            stat
        );
    }

    #[test]
    fn recently_changed_files_are_racy() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a.txt");
        fs::write(&f, b"x").unwrap();
        let now = 100_000_000_000;
        let old = file_entry("a", &f, stamp(now - 3_000_000_000));
        assert!(!racy(&[dir_entry("d"), old.clone()], now));
        assert!(racy(
            &[old.clone(), file_entry("b", &f, stamp(now - 1_000_000_000))],
            now
        ));
        let mut changed = stamp(now - 10_000_000_000);
        changed.ctime_ns = now;
        assert!(racy(&[file_entry("c", &f, changed)], now));
        assert!(!racy(&[dir_entry("d")], now));
    }

    #[test]
    fn default_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let all = env(&[
            ("OCIBUILD_CACHE_DIR", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(default_dir(&all), Some(PathBuf::from("/c")));
        let xdg = env(&[
            ("OCIBUILD_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(default_dir(&xdg), Some(PathBuf::from("/x/ocibuild")));
        let home = env(&[("XDG_CACHE_HOME", ""), ("HOME", "/h")]);
        assert_eq!(
            default_dir(&home),
            Some(PathBuf::from("/h/.cache/ocibuild"))
        );
        assert_eq!(default_dir(&env(&[])), None);
    }
}

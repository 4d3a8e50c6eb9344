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
    pub fn get(&self, key: &str) -> Option<CachedLayer> {
        let text = fs::read_to_string(self.root.join("keys").join(key)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let blob = LayerBlob {
            digest: v["digest"].as_str()?.parse().ok()?,
            diff_id: v["diff_id"].as_str()?.parse().ok()?,
            size: v["size"].as_u64()?,
            media_type: v["media_type"].as_str()?.to_string(),
        };
        let path = self.blob_path(&blob.digest);
        (fs::metadata(&path).ok()?.len() == blob.size).then_some(CachedLayer { blob, file: path })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceTemplate;
    use crate::digest::DiffId;
    use crate::layer::compress::Codec;
    use crate::layer::walk::FileStamp;

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
        let entries = vec![dir_entry("app"), file_entry("app/a.txt", &f, stamp(1))];
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
        let keys = |entries: &[Entry]| {
            (
                key(KeyKind::Stat, entries, &cfg(), 0, &opts()).unwrap(),
                key(KeyKind::Content, entries, &cfg(), 0, &opts()).unwrap(),
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

//! Turns a layer source (a directory or a single file) into the sorted list of entries of the
//! layer: paths in the image, kinds, normalised modes, hardlinks resolved in sorted order.
//!
//! Invariants: entries are sorted by their full path bytes (so parents precede children);
//! the target's parent directories are included; nothing in an entry depends on mtimes, owners
//! or the umask of the checkout (unless `preserve_modes` asks for the exact bits).

use super::LayerError;
use crate::config::LayerConfig;
use globset::{Glob, GlobBuilder, GlobMatcher};
use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file: its size and where to read it.
    File {
        /// Size when walked.
        size: u64,
        /// The file on disk.
        path: PathBuf,
        /// Its identity and times when walked (for the layer cache's stat key).
        stamp: FileStamp,
    },
    /// A symlink to this target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry (its path in the layer).
    Hardlink(Vec<u8>),
}

/// A file's identity and times: if none of these changed, neither did its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStamp {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Modification time, nanoseconds.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds.
    pub ctime_ns: i64,
}

impl FileStamp {
    /// The stamp of a file's metadata. Times beyond the year 2262 (or before 1678) do not fit
    /// in nanoseconds: they saturate, and a saturated time, always "recent", makes the cache
    /// trust the file only by its content.
    pub fn of(m: &fs::Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Read the regular file `path` through `buf` into `feed`, and check it still has the stamp
/// the walk saw: a file written while it was read has no one content to stand for.
pub fn read_unchanged(
    path: &Path,
    stamp: &FileStamp,
    buf: &mut [u8],
    feed: &mut dyn FnMut(&[u8]),
) -> std::io::Result<()> {
    use std::io::Read;
    let mut f = crate::digest::file::open_regular(path)?;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        feed(&buf[..n]);
    }
    if FileStamp::of(&f.metadata()?) != *stamp {
        return Err(std::io::Error::other(format!(
            "{} changed while it was read",
            path.display()
        )));
    }
    Ok(())
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path in the image, relative to `/`, no trailing slash.
    pub path: Vec<u8>,
    /// Kind and payload.
    pub kind: EntryKind,
    /// Permission bits written.
    pub mode: u32,
    /// Owner written.
    pub uid: u64,
    /// Group written.
    pub gid: u64,
}

struct Rules {
    exclude: Vec<(GlobMatcher, bool)>,
    modes: Vec<(GlobMatcher, bool, u32)>,
    preserve: bool,
    setid: bool,
}

fn matcher(pattern: &str) -> Result<(GlobMatcher, bool), globset::Error> {
    let g: Glob = GlobBuilder::new(pattern).literal_separator(true).build()?;
    // A pattern without '/' matches a name at any depth, as in .gitignore.
    Ok((g.compile_matcher(), !pattern.contains('/')))
}

fn matches(m: &GlobMatcher, basename_only: bool, rel: &Path) -> bool {
    m.is_match(rel) || (basename_only && rel.file_name().is_some_and(|n| m.is_match(n)))
}

impl Rules {
    fn new(cfg: &LayerConfig) -> Result<Self, globset::Error> {
        let exclude = cfg
            .exclude
            .iter()
            .map(|p| matcher(p))
            .collect::<Result<_, _>>()?;
        let mut modes = cfg
            .modes
            .iter()
            .map(|(p, m)| matcher(p).map(|(g, b)| (g, b, *m, p.len())))
            .collect::<Result<Vec<_>, _>>()?;
        // The longest (most specific) pattern wins when several match.
        modes.sort_by_key(|m| std::cmp::Reverse(m.3));
        Ok(Rules {
            exclude,
            modes: modes.into_iter().map(|(g, b, m, _)| (g, b, m)).collect(),
            preserve: cfg.preserve_modes,
            setid: cfg.setid,
        })
    }

    fn excluded(&self, rel: &Path) -> bool {
        self.exclude.iter().any(|(m, b)| matches(m, *b, rel))
    }

    fn mode(&self, rel: &Path, is_dir: bool, raw: u32) -> u32 {
        if let Some((_, _, m)) = self.modes.iter().find(|(m, b, _)| matches(m, *b, rel)) {
            return *m;
        }
        let mut mode = if self.preserve {
            raw & 0o1777
        } else if is_dir || raw & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        if self.setid && !is_dir {
            mode |= raw & 0o6000;
        }
        mode
    }
}

fn join(target: &str, rel: &[u8]) -> Vec<u8> {
    let t = target.trim_start_matches('/').as_bytes();
    match (t.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_vec(),
        (false, true) => t.to_vec(),
        (false, false) => [t, b"/", rel].concat(),
    }
}

/// List the entries of one layer. `source` is the expanded source path on disk, `cfg` the
/// layer's settings (target, ownership, modes, excludes).
pub fn entries(source: &Path, cfg: &LayerConfig) -> Result<Vec<Entry>, LayerError> {
    let rules = Rules::new(cfg).map_err(|e| LayerError::Invalid(format!("layer glob: {e}")))?;
    let root_meta = fs::metadata(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LayerError::SourceMissing(source.to_path_buf())
        } else {
            LayerError::io("reading", source, e)
        }
    })?;
    let mut out = Vec::new();
    let uid = cfg.uid;
    let gid = cfg.gid;

    let target_parts: Vec<&str> = cfg.target.split('/').filter(|c| !c.is_empty()).collect();
    out.extend(target_parents(&target_parts));

    let mut inodes: Vec<(Vec<u8>, (u64, u64))> = Vec::new();
    if root_meta.is_file() {
        if target_parts.is_empty() {
            return Err(LayerError::Invalid(format!(
                "layer source {} is a file: its target must name a file path, not /",
                source.display()
            )));
        }
        let name = source.file_name().map(Path::new).unwrap_or(Path::new(""));
        out.push(Entry {
            path: join(&cfg.target, b""),
            kind: EntryKind::File {
                size: root_meta.len(),
                path: source.to_path_buf(),
                stamp: FileStamp::of(&root_meta),
            },
            mode: rules.mode(name, false, root_meta.mode()),
            uid,
            gid,
        });
    } else if root_meta.is_dir() {
        if !target_parts.is_empty() {
            out.push(Entry {
                path: join(&cfg.target, b""),
                kind: EntryKind::Dir,
                mode: rules.mode(Path::new(""), true, root_meta.mode()),
                uid,
                gid,
            });
        }
        let found = walk_tree(source, cfg, &rules)?;
        if found.entries.is_empty() {
            return Err(LayerError::SourceEmpty(source.to_path_buf()));
        }
        out.extend(found.entries);
        inodes = found.inodes;
    } else {
        return Err(LayerError::Special(
            source.to_path_buf(),
            kind_name(&root_meta),
        ));
    }

    out.sort_by(|a, b| a.path.cmp(&b.path));
    link_hardlinks(&mut out, &inodes);
    Ok(out)
}

/// Hard links: of the sorted entries `out` sharing an inode (`inodes`: path and (dev, ino) of
/// each file with several links), the first path in sorted order holds the data, later ones
/// become links to it.
fn link_hardlinks(out: &mut [Entry], inodes: &[(Vec<u8>, (u64, u64))]) {
    let by_path: HashMap<&[u8], (u64, u64)> =
        inodes.iter().map(|(p, i)| (p.as_slice(), *i)).collect();
    let mut first: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for e in out {
        if let Some(ino) = by_path.get(e.path.as_slice()) {
            match first.get(ino) {
                Some(p) => e.kind = EntryKind::Hardlink(p.clone()),
                None => {
                    first.insert(*ino, e.path.clone());
                }
            }
        }
    }
}

/// The parent directories of the target (its `/`-separated `parts`), owned by root.
fn target_parents(parts: &[&str]) -> Vec<Entry> {
    (1..parts.len())
        .map(|i| Entry {
            path: parts[..i].join("/").into_bytes(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        })
        .collect()
}

fn kind_name(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_socket() {
        "a socket"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "not a regular file, directory or symlink"
    }
}

/// What the walk of one directory adds: its entries, its files with several links, and its
/// subdirectories still to walk (absolute path, path relative to the source).
#[derive(Default)]
struct Found {
    entries: Vec<Entry>,
    inodes: Vec<(Vec<u8>, (u64, u64))>,
    subdirs: Vec<(PathBuf, PathBuf)>,
}

/// The directories of a parallel walk still to list, how many are being listed, and the
/// first failure.
struct Shared {
    queue: Vec<(PathBuf, PathBuf)>,
    busy: usize,
    failed: Option<LayerError>,
}

/// Walk the tree under `root` on up to four threads (a stat per entry is most of the cost
/// of a warm build of many small files, and the kernel serves them in parallel). The order
/// of the entries is the caller's to fix (it sorts them).
fn walk_tree(root: &Path, cfg: &LayerConfig, rules: &Rules) -> Result<Found, LayerError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let shared = std::sync::Mutex::new(Shared {
        queue: vec![(root.to_path_buf(), PathBuf::new())],
        busy: 0,
        failed: None,
    });
    let wake = std::sync::Condvar::new();
    let results: Vec<Found> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| walk_worker(&shared, &wake, cfg, rules)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let shared = shared.into_inner().map_err(|_| {
        LayerError::Invalid(format!(
            "walking {}: a walker thread failed",
            root.display()
        ))
    })?;
    if let Some(e) = shared.failed {
        return Err(e);
    }
    let mut out = Found::default();
    for f in results {
        out.entries.extend(f.entries);
        out.inodes.extend(f.inodes);
    }
    Ok(out)
}

/// One walker: take a directory, list it, queue its subdirectories; stop when nothing is
/// queued or being listed, or something failed.
fn walk_worker(
    shared: &std::sync::Mutex<Shared>,
    wake: &std::sync::Condvar,
    cfg: &LayerConfig,
    rules: &Rules,
) -> Found {
    let mut mine = Found::default();
    loop {
        let Ok(mut g) = shared.lock() else {
            return mine;
        };
        while g.queue.is_empty() && g.busy > 0 && g.failed.is_none() {
            g = match wake.wait(g) {
                Ok(g) => g,
                Err(_) => return mine,
            };
        }
        let Some((abs, rel)) = g.queue.pop().filter(|_| g.failed.is_none()) else {
            wake.notify_all();
            return mine;
        };
        g.busy += 1;
        drop(g);
        let listed = list_dir(&abs, &rel, cfg, rules, &mut mine);
        let Ok(mut g) = shared.lock() else {
            return mine;
        };
        g.busy -= 1;
        match listed {
            Ok(()) => g.queue.append(&mut mine.subdirs),
            Err(e) => {
                g.failed.get_or_insert(e);
            }
        }
        wake.notify_all();
    }
}

/// List directory `dir` (at `rel` in the source) into `found`.
fn list_dir(
    dir: &Path,
    rel: &Path,
    cfg: &LayerConfig,
    rules: &Rules,
    found: &mut Found,
) -> Result<(), LayerError> {
    let read = fs::read_dir(dir).map_err(|e| LayerError::io("listing", dir, e))?;
    for item in read {
        let item = item.map_err(|e| LayerError::io("listing", dir, e))?;
        let abs = item.path();
        let rel = rel.join(item.file_name());
        if rules.excluded(&rel) {
            continue;
        }
        // The entry's own metadata, links not followed, asked relative to the open directory.
        let meta = item
            .metadata()
            .map_err(|e| LayerError::io("reading", &abs, e))?;
        let rel_bytes = rel.as_os_str().as_bytes();
        let path = join(&cfg.target, rel_bytes);
        let ft = meta.file_type();
        let (kind, is_dir) = if ft.is_dir() {
            (EntryKind::Dir, true)
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                found.inodes.push((path.clone(), (meta.dev(), meta.ino())));
            }
            (
                EntryKind::File {
                    size: meta.len(),
                    path: abs.clone(),
                    stamp: FileStamp::of(&meta),
                },
                false,
            )
        } else if ft.is_symlink() {
            let link = fs::read_link(&abs).map_err(|e| LayerError::io("reading link", &abs, e))?;
            // Stored as it is, never followed: the runtime resolves it inside the image.
            (
                EntryKind::Symlink(link.as_os_str().as_bytes().to_vec()),
                false,
            )
        } else {
            return Err(LayerError::Special(abs, kind_name(&meta)));
        };
        let mode = if matches!(kind, EntryKind::Symlink(_)) {
            0o777
        } else {
            rules.mode(&rel, is_dir, meta.mode())
        };
        found.entries.push(Entry {
            path,
            kind,
            mode,
            uid: cfg.uid,
            gid: cfg.gid,
        });
        if is_dir {
            found.subdirs.push((abs, rel));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_from_the_far_future_has_a_saturated_stamp_not_a_panic() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        let file = fs::File::create(&f).unwrap();
        let year_2300 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(10_413_792_000);
        file.set_modified(year_2300).unwrap();
        let stamp = FileStamp::of(&fs::metadata(&f).unwrap());
        assert_eq!(stamp.mtime_ns, i64::MAX);
    }
    use crate::config::SourceTemplate;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn cfg(target: &str) -> LayerConfig {
        LayerConfig::new(SourceTemplate::try_from("x".to_string()).unwrap(), target)
    }

    fn write(p: &Path, mode: u32) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"data").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn paths(es: &[Entry]) -> Vec<String> {
        es.iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect()
    }

    #[test]
    fn sorted_with_parents_and_normalised_modes() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("b/z"), 0o600);
        write(&t.path().join("a-c"), 0o700);
        write(&t.path().join("a/b"), 0o4775);
        fs::create_dir(t.path().join("empty")).unwrap();
        let es = entries(t.path(), &cfg("/srv/app")).unwrap();
        assert_eq!(
            paths(&es),
            [
                "srv",
                "srv/app",
                "srv/app/a",
                "srv/app/a-c",
                "srv/app/a/b",
                "srv/app/b",
                "srv/app/b/z",
                "srv/app/empty"
            ]
        );
        let mode = |p: &str| es.iter().find(|e| e.path == p.as_bytes()).unwrap().mode;
        assert_eq!(mode("srv/app/b/z"), 0o644);
        assert_eq!(mode("srv/app/a-c"), 0o755);
        assert_eq!(mode("srv/app/a/b"), 0o755, "setuid dropped by default");
        assert_eq!(mode("srv/app/empty"), 0o755);
    }

    #[test]
    fn excludes_modes_and_setid() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bin/tool"), 0o4755);
        write(&t.path().join("logs/x.log"), 0o644);
        write(&t.path().join("deep/er/y.log"), 0o644);
        write(&t.path().join("secret.conf"), 0o644);
        let mut c = cfg("/");
        c.exclude = vec!["logs".into(), "*.log".into()];
        c.modes = vec![("secret.conf".into(), 0o600), ("bin/*".into(), 0o750)];
        c.setid = true;
        let es = entries(t.path(), &c).unwrap();
        assert_eq!(
            paths(&es),
            ["bin", "bin/tool", "deep", "deep/er", "secret.conf"]
        );
        assert_eq!(es[1].mode, 0o750);
        assert_eq!(es[4].mode, 0o600);
        c.modes.clear();
        let es = entries(t.path(), &c).unwrap();
        assert_eq!(es[1].mode, 0o4755, "setid kept when asked");
    }

    #[test]
    fn every_symlink_is_stored_verbatim_and_never_followed() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("lib/real"), 0o644);
        let links: [(&str, &str); 6] = [
            ("lib/ok", "real"),
            ("lib/abs", "/etc/java-17-openjdk/accessibility.properties"),
            ("lib/up", "../../shared/y"),
            ("lib/dangling", "nowhere/x"),
            ("lib/loop-a", "loop-b"),
            ("lib/loop-b", "loop-a"),
        ];
        for (at, to) in links {
            symlink(to, t.path().join(at)).unwrap();
        }
        symlink("/etc", t.path().join("etc-dir")).unwrap();
        let es = entries(t.path(), &cfg("/app")).unwrap();
        for (at, to) in links {
            let path = format!("app/{at}");
            let l = es.iter().find(|e| e.path == path.as_bytes()).unwrap();
            assert_eq!(l.kind, EntryKind::Symlink(to.as_bytes().to_vec()), "{at}");
            assert_eq!(l.mode, 0o777);
        }
        // A link to a directory is a link: nothing under /etc is walked.
        assert!(es.iter().any(|e| e.path == b"app/etc-dir"));
        assert!(!es.iter().any(|e| e.path.starts_with(b"app/etc-dir/")));
    }

    #[test]
    fn hardlinks_point_at_first_sorted_path() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("z"), 0o644);
        fs::hard_link(t.path().join("z"), t.path().join("a")).unwrap();
        let es = entries(t.path(), &cfg("/d")).unwrap();
        assert!(matches!(es[1].kind, EntryKind::File { .. }));
        assert_eq!(es[2].kind, EntryKind::Hardlink(b"d/a".to_vec()));
    }

    #[test]
    fn bad_sources() {
        let t = tempfile::tempdir().unwrap();
        let e = entries(&t.path().join("missing"), &cfg("/app")).unwrap_err();
        assert!(matches!(e, LayerError::SourceMissing(_)));
        let e = entries(t.path(), &cfg("/app")).unwrap_err();
        assert!(matches!(e, LayerError::SourceEmpty(_)));
        std::os::unix::net::UnixListener::bind(t.path().join("sock")).unwrap();
        let e = entries(t.path(), &cfg("/app")).unwrap_err();
        assert!(
            e.to_string().contains("socket") && e.to_string().contains("sock"),
            "{e}"
        );
    }

    #[test]
    fn single_file_source() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bin"), 0o755);
        let es = entries(&t.path().join("bin"), &cfg("/usr/local/bin/app")).unwrap();
        assert_eq!(
            paths(&es),
            ["usr", "usr/local", "usr/local/bin", "usr/local/bin/app"]
        );
        assert_eq!(es[3].mode, 0o755);
    }
}

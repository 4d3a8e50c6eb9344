//! How a build gets each layer: from the local cache, else from the registry cache (the blob
//! stays in the registry; nothing is compressed), else built on the shared compression
//! workers. Every distinct layer of a run is made once, all at once (`prebuild`), and the
//! packages in it are found once, from the walk, however it was obtained.

use super::BuildError;
use crate::attest::packages;
use crate::config::{Config, LayerConfig, Service};
use crate::digest::Digest;
use crate::layer::{self, fingerprint, LayerError};
use crate::layout::{LayoutError, LayoutWriter};
use crate::platform::Platform;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A registry cache as a build sees it (the app implements it over a registry): a fingerprint
/// in, a layer that need not be built out. Only a hint: a layer it does not give is built.
pub trait RemoteLayers: Send + Sync + std::fmt::Debug {
    /// The layer the inputs with `fingerprint` made, if the cache knows one whose blob the
    /// registry still holds (the push mounts or copies it from there).
    fn find(&self, fingerprint: &Digest) -> Option<layer::LayerBlob>;
}

/// Where a layer of this run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The local layer cache.
    Local,
    /// The registry cache: the blob is in the registry, not in the layout.
    Registry,
    /// Compressed in this run.
    Built,
}

/// How this run gets a layer: the local cache, the registry cache, else built on the shared
/// compression workers.
pub(super) struct LayerMaker<'a> {
    pub epoch: u64,
    pub opts: &'a layer::LayerOptions,
    pub cache: Option<&'a layer::cache::LayerCache>,
    pub remote: Option<&'a dyn RemoteLayers>,
    /// Rebuild the registry cache's hits and refuse any whose digest differs.
    pub verify_remote: bool,
    pub workers: &'a layer::compress::Workers,
}

/// A layer made in this run: its blob, the file holding it (none: in the registry), where it
/// came from, its fingerprint (when a registry cache is used), the packages found in it.
#[derive(Debug, Clone)]
pub(super) struct MadeLayer {
    pub blob: layer::LayerBlob,
    pub file: Option<PathBuf>,
    pub origin: Origin,
    pub fingerprint: Option<Digest>,
    pub found: packages::Detected,
}

/// The layers already made in this run, by source and settings.
pub(super) type BuiltLayers = HashMap<(PathBuf, LayerConfig), MadeLayer>;

/// The packages in a layer's regular files (see `attest::packages` for what is looked at),
/// with a line for each file that looked like a package source but could not be read.
fn packages_in(entries: &[layer::walk::Entry]) -> packages::Detected {
    let files: Vec<packages::LayerFile> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            layer::walk::EntryKind::File { size, path, .. } => Some(packages::LayerFile {
                image_path: format!("/{}", String::from_utf8_lossy(&e.path)),
                disk_path: path.clone(),
                size: *size,
                executable: e.mode & 0o111 != 0,
            }),
            _ => None,
        })
        .collect();
    packages::detect(&files)
}

/// Why a layer could not be made.
pub(super) enum MakeError {
    Layer(LayerError),
    Layout(LayoutError),
    /// `--verify-cache`: the registry cache named another blob than the inputs make.
    Poisoned {
        cached: Digest,
        built: Digest,
    },
}

/// What the lookups found before building.
struct Looked {
    hit: Option<(layer::LayerBlob, Option<PathBuf>, Origin)>,
    stat_key: Option<String>,
    fingerprint: Option<Digest>,
}

impl LayerMaker<'_> {
    /// The layer of `source` with settings `lc` for `platform`, and the packages in it (found
    /// on a thread of their own while the layer is looked up or built, so detection adds no
    /// wall time to a layer's critical path).
    pub fn make(
        &self,
        source: &Path,
        lc: &LayerConfig,
        platform: &Platform,
        store: &LayoutWriter,
    ) -> Result<MadeLayer, MakeError> {
        let entries = layer::walk::entries(source, lc).map_err(MakeError::Layer)?;
        std::thread::scope(|s| {
            let detection = s.spawn(|| packages_in(&entries));
            let made = self.obtain(&entries, lc, platform, store);
            let found = detection.join().unwrap_or_default();
            made.map(|m| MadeLayer { found, ..m })
        })
    }

    /// The walked layer `entries`: from a cache, else built into `store` and recorded in the
    /// local cache.
    fn obtain(
        &self,
        entries: &[layer::walk::Entry],
        lc: &LayerConfig,
        platform: &Platform,
        store: &LayoutWriter,
    ) -> Result<MadeLayer, MakeError> {
        let looked = self.look_up(entries, lc, platform);
        let verify = self.verify_remote;
        match looked.hit {
            Some((blob, file, origin)) if !(verify && origin == Origin::Registry) => {
                return Ok(MadeLayer {
                    blob,
                    file,
                    origin,
                    fingerprint: looked.fingerprint,
                    found: packages::Detected::default(),
                });
            }
            _ => {}
        }
        let (blob, path) = self.build(entries, lc, store, looked.stat_key.as_deref())?;
        if let Some((cached, _, Origin::Registry)) = &looked.hit {
            if cached.digest != blob.digest {
                return Err(MakeError::Poisoned {
                    cached: cached.digest.clone(),
                    built: blob.digest,
                });
            }
        }
        Ok(MadeLayer {
            blob,
            file: Some(path),
            origin: Origin::Built,
            fingerprint: looked.fingerprint,
            found: packages::Detected::default(),
        })
    }

    /// The local cache, then (with a registry cache) the fingerprint and the registry cache.
    /// An audit (`verify_remote`) asks the registry cache first and, on a hit, skips the
    /// local cache: the layer is built and compared.
    fn look_up(
        &self,
        entries: &[layer::walk::Entry],
        lc: &LayerConfig,
        platform: &Platform,
    ) -> Looked {
        // Unreadable files surface when the layer is built, with their path.
        let fingerprint = self.remote.and_then(|_| {
            let inputs = fingerprint::Inputs {
                cfg: lc,
                epoch: self.epoch,
                codec: self.opts.codec,
                platform,
            };
            fingerprint::fingerprint(entries, &inputs).ok()
        });
        let remote = || match (self.remote, &fingerprint) {
            (Some(r), Some(f)) => r.find(f).map(|b| (b, None, Origin::Registry)),
            _ => None,
        };
        if self.verify_remote {
            if let Some(hit) = remote() {
                return Looked {
                    hit: Some(hit),
                    stat_key: None,
                    fingerprint,
                };
            }
        }
        let (hit, stat_key) = match self.cache {
            Some(c) => from_cache(c, entries, lc, self.epoch, self.opts),
            None => (None, None),
        };
        let local = hit.map(|h| (h.blob, Some(h.file), Origin::Local));
        let hit = match (local, self.verify_remote) {
            (Some(l), _) => Some(l),
            (None, false) => remote(),
            (None, true) => None,
        };
        Looked {
            hit,
            stat_key,
            fingerprint,
        }
    }

    /// Build the layer into `store`; record it in the local cache.
    fn build(
        &self,
        entries: &[layer::walk::Entry],
        lc: &LayerConfig,
        store: &LayoutWriter,
        stat_key: Option<&str>,
    ) -> Result<(layer::LayerBlob, PathBuf), MakeError> {
        let layer::Built {
            blob,
            file: tmp,
            contents,
        } = layer::build_entries(
            entries,
            self.epoch,
            &store.tmp_dir(),
            self.opts.codec,
            self.workers,
        )
        .map_err(MakeError::Layer)?;
        store
            .commit_temp(tmp, &blob.digest)
            .map_err(MakeError::Layout)?;
        let path = store.blob_path(&blob.digest);
        if let Some(c) = self.cache {
            // The content key of the bytes that went into the layer (not of an earlier read);
            // the stat key is the walk's, and the build checked every file kept that stamp.
            let content =
                layer::cache::content_key_of(entries, &contents, lc, self.epoch, self.opts);
            let keys: Vec<&str> = stat_key.into_iter().chain(content.as_deref()).collect();
            // A cache that cannot be written only costs speed next time.
            let _ = c.put(&keys, &blob, &path);
        }
        Ok((blob, path))
    }
}

/// Build every distinct layer of `services` at once: up to one layer per core, all sharing one
/// pool of compression workers (so small layers fill the cores and big ones do not
/// oversubscribe them), into the blob store `dir`. A layer that fails here is simply left out:
/// the per-service pass builds it again and reports the failure with its service and
/// platform.
pub(super) fn prebuild(
    config: &Config,
    services: &[&Service],
    platforms: &[Platform],
    maker: &LayerMaker<'_>,
    dir: &Path,
) -> BuiltLayers {
    let Ok(store) = LayoutWriter::create(dir) else {
        return HashMap::new();
    };
    let mut jobs: Vec<(PathBuf, LayerConfig, &Platform)> = Vec::new();
    for svc in services {
        for p in platforms {
            for lc in &svc.layers {
                let source = config.dir.join(lc.source.expand(p));
                if !jobs.iter().any(|(s, l, _)| *s == source && l == lc) {
                    jobs.push((source, lc.clone(), p));
                }
            }
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(HashMap::new());
    let producers = maker.workers.threads().min(jobs.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..producers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((source, lc, platform)) = jobs.get(i) else {
                    return;
                };
                if let Ok(made) = maker.make(source, lc, platform, &store) {
                    if let Ok(mut d) = done.lock() {
                        d.insert((source.clone(), lc.clone()), made);
                    }
                }
            });
        }
    });
    done.into_inner().unwrap_or_default()
}

/// Look a layer up in the cache: by stat key, then by content key (recording the stat key on a
/// content hit). On a miss, the stat key to record once the layer is built (none for a tree
/// changed too recently to trust its stamps).
fn from_cache(
    cache: &layer::cache::LayerCache,
    entries: &[layer::walk::Entry],
    cfg: &LayerConfig,
    epoch: u64,
    opts: &layer::LayerOptions,
) -> (Option<layer::cache::CachedLayer>, Option<String>) {
    use layer::cache::{key, racy, KeyKind};
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(i64::MAX, |d| d.as_nanos() as i64);
    // Files written just now could change again within the same mtime tick: trust only content.
    let stat = if racy(entries, now_ns) {
        None
    } else {
        key(KeyKind::Stat, entries, cfg, epoch, opts).ok()
    };
    if let Some(hit) = stat.as_deref().and_then(|k| cache.get(k)) {
        return (Some(hit), None);
    }
    // Unreadable files surface when the layer is built, with their path.
    let Ok(content) = key(KeyKind::Content, entries, cfg, epoch, opts) else {
        return (None, stat);
    };
    if let Some(hit) = cache.get(&content) {
        if let Some(stat) = &stat {
            let _ = cache.put(&[stat], &hit.blob, &hit.file);
        }
        return (Some(hit), None);
    }
    (None, stat)
}

/// The build error for a layer that could not be made.
pub(super) fn layer_error(
    e: MakeError,
    service: &str,
    platform: &Platform,
    rel: &str,
    lc: &LayerConfig,
    layout: impl FnOnce(LayoutError) -> BuildError,
) -> BuildError {
    let layer = |source| BuildError::Layer {
        service: service.to_string(),
        platform: platform.to_string(),
        source_path: rel.to_string(),
        target: lc.target.clone(),
        source: Box::new(source),
    };
    match e {
        MakeError::Layer(e) => layer(e),
        MakeError::Layout(e) => layout(e),
        MakeError::Poisoned { cached, built } => layer(LayerError::Invalid(format!(
            "the registry layer cache names blob {cached} for these inputs, but they make {built}: \
             the cache was written by a different build or tampered with; rebuild it (push with \
             --cache-write) and find out who can push to the cache repository"
        ))),
    }
}

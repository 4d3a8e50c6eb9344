//! `ocibuild build`: for each selected service, resolve its base, build its layers for every
//! platform, write config, manifests and the image index into an OCI layout `OUT/<service>/`.
//!
//! All-or-nothing: every layout is written into a staging directory inside `OUT`; only when
//! every service succeeded are they moved into place (replacing earlier layouts), each by one
//! atomic exchange (`place`): at any instant, even after a kill, each `OUT/<service>` is the
//! old complete layout or the new one, a failed move restores every old one, and a dead run's
//! staging directory is removed by the next. On any failure nothing in `OUT` changes and
//! every failure is reported. `OUT` and the cache directory must lie outside every layer
//! source. A layer whose source and settings are the same for several platforms (or services)
//! is built once, and the packages in it (`attest::packages`) are found once, from the walk,
//! whether the layer came from the cache or not.
//! Imports `attest`, `base`, `config`, `digest`, `image`, `layer`, `layout`, `platform`, `spec`.

mod out;
mod place;

/// The latest `SOURCE_DATE_EPOCH` a build accepts (see [`image::MAX_EPOCH`]).
pub use crate::image::MAX_EPOCH;

use crate::attest::packages::{self, Package};
use crate::base::{self, remote::RemoteOptions, BaseError, ResolvedBase};
use crate::config::{Config, ConfigError, LayerConfig, Service};
use crate::digest::Digest;
use crate::image::{self, AddedLayer};
use crate::layer::{self, LayerError};
use crate::layout::{LayoutError, LayoutWriter};
use crate::platform::Platform;
use crate::spec::{
    canonical_json, check_tag, ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME,
    MEDIA_TYPE_INDEX,
};
pub use out::check_dirs;
use out::{outside_sources, prepare_out};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Services to build; empty: all.
    pub services: Vec<String>,
    /// Platforms to build; `None`: the config's.
    pub platforms: Option<Vec<Platform>>,
    /// Output directory; each service gets `OUT/<service>/`.
    pub out: PathBuf,
    /// Tags written as ref names in each layout's `index.json`.
    pub tags: Vec<String>,
    /// Timestamp for files, config and history (SOURCE_DATE_EPOCH).
    pub epoch: u64,
    /// Compression settings; `None`: the config's.
    pub layer: Option<layer::LayerOptions>,
    /// The layer cache, if one is used (registry base documents are cached beside it).
    pub cache: Option<layer::cache::LayerCache>,
    /// How to reach registry bases; `None`: a registry base is an error.
    pub remote: Option<RemoteOptions>,
    /// Copy registry base layers into the layouts (self-contained, offline layouts).
    pub materialize: bool,
}

/// How this run gets a layer: from the cache, else built on the shared compression workers.
struct LayerMaker<'a> {
    epoch: u64,
    opts: &'a layer::LayerOptions,
    cache: Option<&'a layer::cache::LayerCache>,
    workers: &'a layer::compress::Workers,
}

/// A layer made in this run: its blob, the file holding it, whether the cache had it, the
/// packages found in it.
#[derive(Debug, Clone)]
struct MadeLayer {
    blob: layer::LayerBlob,
    file: PathBuf,
    cached: bool,
    found: packages::Detected,
}

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
enum MakeError {
    Layer(LayerError),
    Layout(LayoutError),
}

impl LayerMaker<'_> {
    /// The layer of `source` with settings `lc`: its blob, the file holding it (in the cache or
    /// in `store`), whether it came from the cache, and the packages in it (found on a thread
    /// of their own while the layer is looked up or built, so detection adds no wall time
    /// to a layer's critical path).
    fn make(
        &self,
        source: &Path,
        lc: &LayerConfig,
        store: &LayoutWriter,
    ) -> Result<MadeLayer, MakeError> {
        let entries = layer::walk::entries(source, lc).map_err(MakeError::Layer)?;
        std::thread::scope(|s| {
            let detection = s.spawn(|| packages_in(&entries));
            let made = self.obtain(&entries, lc, store);
            let found = detection.join().unwrap_or_default();
            made.map(|(blob, file, cached)| MadeLayer {
                blob,
                file,
                cached,
                found,
            })
        })
    }

    /// The walked layer `entries` from the cache, else built into `store` and recorded in the
    /// cache: its blob, its file, whether the cache had it.
    fn obtain(
        &self,
        entries: &[layer::walk::Entry],
        lc: &LayerConfig,
        store: &LayoutWriter,
    ) -> Result<(layer::LayerBlob, PathBuf, bool), MakeError> {
        let (hit, stat_key) = match self.cache {
            Some(c) => from_cache(c, entries, lc, self.epoch, self.opts),
            None => (None, None),
        };
        if let Some(layer::cache::CachedLayer { blob, file }) = hit {
            return Ok((blob, file, true));
        }
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
            let keys: Vec<&str> = stat_key
                .iter()
                .chain(&content)
                .map(String::as_str)
                .collect();
            // A cache that cannot be written only costs speed next time.
            let _ = c.put(&keys, &blob, &path);
        }
        Ok((blob, path, false))
    }
}

/// Build every distinct layer of `services` at once: up to one layer per core, all sharing one
/// pool of compression workers (so small layers fill the cores and big ones do not
/// oversubscribe them), into the blob store `dir`. A layer that fails here is simply left out:
/// the per-service pass builds it again and reports the failure with its service and
/// platform.
fn prebuild_layers(
    config: &Config,
    services: &[&Service],
    platforms: &[Platform],
    maker: &LayerMaker<'_>,
    dir: &Path,
) -> BuiltLayers {
    let Ok(store) = LayoutWriter::create(dir) else {
        return HashMap::new();
    };
    let mut jobs: Vec<(PathBuf, LayerConfig)> = Vec::new();
    for svc in services {
        for p in platforms {
            for lc in &svc.layers {
                let job = (config.dir.join(lc.source.expand(p)), lc.clone());
                if !jobs.contains(&job) {
                    jobs.push(job);
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
                let Some((source, lc)) = jobs.get(i) else {
                    return;
                };
                if let Ok(made) = maker.make(source, lc, &store) {
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

/// A build failure. Its message names the service, platform and path concerned.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Invalid config or arguments.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A layer could not be built.
    #[error("service {service} ({platform}): layer {source_path} -> {target}")]
    Layer {
        /// Service name.
        service: String,
        /// Platform, e.g. `linux/arm64/v8`.
        platform: String,
        /// The layer source (as expanded, relative to the config).
        source_path: String,
        /// The layer target.
        target: String,
        /// Cause.
        #[source]
        source: Box<LayerError>,
    },
    /// The base could not be used.
    #[error("service {service}: base {base}")]
    Base {
        /// Service name.
        service: String,
        /// The base as written.
        base: String,
        /// Cause.
        #[source]
        source: std::sync::Arc<BaseError>,
    },
    /// Writing the output failed.
    #[error("service {service}: writing its layout")]
    Layout {
        /// Service name.
        service: String,
        /// Cause.
        #[source]
        source: LayoutError,
    },
    /// The output directory is unusable.
    #[error("output directory {path}: {message}")]
    Output {
        /// The directory.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Several services failed; nothing was written.
    #[error("{} failed; nothing was written:{}", plural(.0.len()), list(.0))]
    Several(Vec<BuildError>),
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 service".into()
    } else {
        format!("{n} services")
    }
}

fn list(errors: &[BuildError]) -> String {
    errors
        .iter()
        .map(|e| format!("\n  - {}", chain(e)))
        .collect()
}

/// An error and its sources, joined with ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One layer in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Blob digest.
    pub digest: String,
    /// Blob size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Media type.
    pub media_type: String,
    /// Whether it comes from the base image.
    pub from_base: bool,
    /// Whether it came from the layer cache (nothing was compressed).
    pub cached: bool,
    /// Whether the blob is in the layout (`false`: a registry base's layer, left in its
    /// registry; the push mounts or copies it).
    pub in_layout: bool,
    /// The packages found in the layer (sorted; the service's own layers only, never a
    /// base's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// Files that looked like package sources but could not be read (no package from them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub package_warnings: Vec<String>,
}

/// The registry base a service was built on.
#[derive(Debug, Clone, Serialize)]
pub struct BaseReport {
    /// The reference as configured.
    pub name: String,
    /// What it resolved to (the index or manifest digest).
    pub digest: String,
    /// Whether the tag's digest came from the cache rather than the registry (`--pull` asks).
    pub from_cache: bool,
}

/// One platform's image in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    /// e.g. `linux/arm64/v8`.
    pub platform: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Config digest.
    pub config_digest: String,
    /// Layers, base first.
    pub layers: Vec<LayerReport>,
}

/// One service's result.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// Service name.
    pub name: String,
    /// Repository name.
    pub repository: String,
    /// Where its layout is.
    pub layout: PathBuf,
    /// Digest of the image index.
    pub index_digest: String,
    /// Tags written in `index.json`.
    pub tags: Vec<String>,
    /// Per platform.
    pub platforms: Vec<PlatformReport>,
    /// The registry base, if the service has one.
    pub base: Option<BaseReport>,
}

impl fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) -> {} [{}]",
            self.name,
            self.repository,
            self.layout.display(),
            self.tags.join(", ")
        )?;
        writeln!(f, "  index {}", self.index_digest)?;
        if let Some(b) = &self.base {
            let how = if b.from_cache {
                " (tag resolved earlier, from the cache; --pull asks the registry)"
            } else {
                ""
            };
            writeln!(f, "  base {} -> {}{how}", b.name, b.digest)?;
        }
        for p in &self.platforms {
            let total: u64 = p.layers.iter().map(|l| l.size).sum();
            writeln!(
                f,
                "  {:<16} {}  {} layers, {} bytes",
                p.platform,
                p.manifest_digest,
                p.layers.len(),
                total
            )?;
        }
        Ok(())
    }
}

/// The layers already made in this run, by source and settings.
type BuiltLayers = HashMap<(PathBuf, LayerConfig), MadeLayer>;

/// Build the selected services of `config` into OCI layouts under `opts.out`.
pub fn build(config: &Config, opts: &BuildOptions) -> Result<Vec<ServiceReport>, BuildError> {
    let services = config.select(&opts.services)?;
    let platforms = opts
        .platforms
        .clone()
        .unwrap_or_else(|| config.platforms.clone());
    let tags = if opts.tags.is_empty() {
        vec!["latest".to_string()]
    } else {
        opts.tags.clone()
    };
    for t in &tags {
        check_tag(t).map_err(ConfigError)?;
    }
    if opts.epoch > image::MAX_EPOCH {
        return Err(BuildError::Config(ConfigError(format!(
            "SOURCE_DATE_EPOCH {} is after 9999-12-31T23:59:59Z: use a time from 0 to {}",
            opts.epoch,
            image::MAX_EPOCH
        ))));
    }

    let out = &opts.out;
    let cache_dir = opts.cache.as_ref().map(|c| c.dir());
    outside_sources(config, &services, &platforms, out, cache_dir)?;
    let created_out = !out.exists();
    let result = build_into(config, opts, &services, &platforms, &tags);
    if result.is_err() && created_out {
        // Leave no trace of a failed build: remove the output directory we created (if empty).
        let _ = fs::remove_dir(out);
    }
    result
}

fn build_into(
    config: &Config,
    opts: &BuildOptions,
    services: &[&Service],
    platforms: &[Platform],
    tags: &[String],
) -> Result<Vec<ServiceReport>, BuildError> {
    let out = &opts.out;
    prepare_out(out, services)?;
    place::remove_leftovers(out);
    let staging = place::Staging::create(out).map_err(|e| BuildError::Output {
        path: out.clone(),
        message: format!("cannot write into it ({e}): choose a writable --out"),
    })?;

    let layer_opts = opts.layer.unwrap_or(layer::LayerOptions {
        codec: config.compression.into(),
        ..layer::LayerOptions::default()
    });
    let wanted: Vec<_> = services.iter().map(|s| &s.base).collect();
    let cache_root = opts.cache.as_ref().map(|c| c.dir().to_path_buf());
    let remote = opts.remote.clone().map(|mut r| {
        if opts.materialize {
            r.materialize_into = Some(match &cache_root {
                Some(c) => base::remote::cache_blob_dir(c),
                None => staging.path().join(".base"),
            });
        }
        r
    });
    let bases = base::resolve_all(&wanted, platforms, remote.as_ref(), cache_root.as_deref());
    let ok: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| bases.get(&s.base).is_some_and(|b| b.is_ok()))
        .collect();
    let workers = layer::compress::Workers::new(layer_opts.threads);
    let maker = LayerMaker {
        epoch: opts.epoch,
        opts: &layer_opts,
        cache: opts.cache.as_ref(),
        workers: &workers,
    };
    let mut built = prebuild_layers(
        config,
        &ok,
        platforms,
        &maker,
        &staging.path().join(".layers"),
    );
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for svc in services {
        let base = match bases.get(&svc.base) {
            Some(Ok(b)) => b.as_ref(),
            Some(Err(e)) => {
                errors.push(BuildError::Base {
                    service: svc.name.clone(),
                    base: svc.base.to_string(),
                    source: e.clone(),
                });
                continue;
            }
            None => None,
        };
        let dir = staging.path().join(&svc.name);
        match build_service(config, svc, platforms, base, &dir, tags, &mut built, &maker) {
            Ok(mut r) => {
                r.layout = out.join(&svc.name);
                reports.push(r);
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => return Err(BuildError::Several(errors)),
    }

    let moves: Vec<(&str, &Path)> = reports
        .iter()
        .map(|r| (r.name.as_str(), r.layout.as_path()))
        .collect();
    place::move_into_place(staging.path(), &moves, &mut place::System)?;
    // The old layouts go with the staging directory; then the cache records the change
    // times our links and removals gave its blob files, so the next run need not hash them.
    let _ = staging.close();
    if let Some(c) = &opts.cache {
        for made in built.values() {
            c.refresh(&made.blob);
        }
    }
    Ok(reports)
}

/// One service's image being written into its layout.
struct ServiceBuild<'a> {
    config: &'a Config,
    svc: &'a Service,
    base: Option<&'a ResolvedBase>,
    dir: &'a Path,
    maker: &'a LayerMaker<'a>,
    layout: LayoutWriter,
}

/// One platform's layers: descriptors for the manifest, reports, and what the config adds.
#[derive(Default)]
struct PlatformLayers {
    descriptors: Vec<oci_spec::image::Descriptor>,
    reports: Vec<LayerReport>,
    added: Vec<AddedLayer>,
}

#[allow(clippy::too_many_arguments)]
fn build_service(
    config: &Config,
    svc: &Service,
    platforms: &[Platform],
    base: Option<&ResolvedBase>,
    dir: &Path,
    tags: &[String],
    built: &mut BuiltLayers,
    maker: &LayerMaker<'_>,
) -> Result<ServiceReport, BuildError> {
    let layout = LayoutWriter::create(dir).map_err(|source| BuildError::Layout {
        service: svc.name.clone(),
        source,
    })?;
    let b = ServiceBuild {
        config,
        svc,
        base,
        dir,
        maker,
        layout,
    };
    let mut manifests = Vec::new();
    let mut platform_reports = Vec::new();
    for (i, platform) in platforms.iter().enumerate() {
        let (report, digest, size) = b.platform(i, platform, built)?;
        manifests.push(image::IndexEntry {
            platform: platform.clone(),
            digest,
            size,
        });
        platform_reports.push(report);
    }
    b.finish(&manifests, tags, platform_reports)
}

impl ServiceBuild<'_> {
    fn layout_err(&self, source: LayoutError) -> BuildError {
        BuildError::Layout {
            service: self.svc.name.clone(),
            source,
        }
    }

    fn json_err(&self, e: serde_json::Error) -> BuildError {
        self.layout_err(LayoutError::Invalid {
            path: self.dir.to_path_buf(),
            message: format!("serializing JSON: {e}"),
        })
    }

    /// Write `value` as canonical JSON into the layout; its digest and size.
    fn write_json<T: Serialize>(&self, value: &T) -> Result<(Digest, u64), BuildError> {
        let bytes = canonical_json(value).map_err(|e| self.json_err(e))?;
        let digest = self
            .layout
            .write_blob(&bytes)
            .map_err(|e| self.layout_err(e))?;
        Ok((digest, bytes.len() as u64))
    }

    /// Platform `i`'s image: base layers, our layers, config, manifest.
    fn platform(
        &self,
        i: usize,
        platform: &Platform,
        built: &mut BuiltLayers,
    ) -> Result<(PlatformReport, Digest, u64), BuildError> {
        let pbase = self.base.map(|b| (&b.graph, &b.graph.images[i]));
        let mut layers = PlatformLayers::default();
        if let Some((graph, b)) = pbase {
            self.base_layers(graph, b, &mut layers)?;
        }
        for lc in &self.svc.layers {
            self.own_layer(lc, platform, built, &mut layers)?;
        }
        let epoch = self.maker.epoch;
        let base_config = pbase.map(|(_, b)| &b.config);
        let cfg = image::config(base_config, self.svc, platform, &layers.added, epoch);
        let (cfg_digest, cfg_size) = self.write_json(&cfg)?;
        let mut manifest = image::manifest(
            image::config_descriptor(&cfg_digest, cfg_size),
            layers.descriptors,
        );
        let remote = self.base.and_then(|b| b.remote.as_ref());
        if let (Some(r), Some((_, b))) = (remote, pbase) {
            manifest.set_annotations(Some(base_annotations(r, &b.doc.digest)));
        }
        let (m_digest, m_size) = self.write_json(&manifest)?;
        let report = PlatformReport {
            platform: platform.to_string(),
            manifest_digest: m_digest.to_string(),
            config_digest: cfg_digest.to_string(),
            layers: layers.reports,
        };
        Ok((report, m_digest, m_size))
    }

    /// The base's layers, reused as they are; copied into the layout when we have the file (a
    /// registry base's layers stay in its registry unless materialized).
    fn base_layers(
        &self,
        graph: &crate::oci::ImageGraph,
        b: &crate::oci::PlatformImage,
        out: &mut PlatformLayers,
    ) -> Result<(), BuildError> {
        for (d, diff_id) in b.manifest.layers().iter().zip(b.config.rootfs().diff_ids()) {
            let digest = Digest::from_oci(d.digest()).map_err(|e| {
                self.layout_err(LayoutError::Invalid {
                    path: self.dir.to_path_buf(),
                    message: format!("base layer: {e}"),
                })
            })?;
            let file = graph.blob(&digest).and_then(|b| b.file());
            if let Some(file) = file {
                self.layout
                    .copy_blob(file, &digest, d.size())
                    .map_err(|e| self.layout_err(e))?;
            }
            out.descriptors.push(d.clone());
            out.reports.push(LayerReport {
                digest: digest.to_string(),
                size: d.size(),
                diff_id: diff_id.clone(),
                media_type: d.media_type().to_string(),
                from_base: true,
                cached: false,
                in_layout: file.is_some(),
                packages: Vec::new(),
                package_warnings: Vec::new(),
            });
        }
        Ok(())
    }

    /// One of the service's layers for `platform`: made once per source and settings.
    fn own_layer(
        &self,
        lc: &LayerConfig,
        platform: &Platform,
        built: &mut BuiltLayers,
        out: &mut PlatformLayers,
    ) -> Result<(), BuildError> {
        let rel = lc.source.expand(platform);
        let source = self.config.dir.join(&rel);
        let key = (source.clone(), lc.clone());
        let MadeLayer {
            blob,
            file,
            cached,
            found,
        } = match built.get(&key) {
            Some(made) => made.clone(),
            None => {
                let made = self
                    .maker
                    .make(&source, lc, &self.layout)
                    .map_err(|e| match e {
                        MakeError::Layer(e) => BuildError::Layer {
                            service: self.svc.name.clone(),
                            platform: platform.to_string(),
                            source_path: rel.clone(),
                            target: lc.target.clone(),
                            source: Box::new(e),
                        },
                        MakeError::Layout(e) => self.layout_err(e),
                    })?;
                built.insert(key, made.clone());
                made
            }
        };
        self.layout
            .link_blob(&file, &blob.digest, blob.size)
            .map_err(|e| self.layout_err(e))?;
        out.descriptors
            .push(image::descriptor(&blob.media_type, &blob.digest, blob.size));
        out.reports.push(LayerReport {
            digest: blob.digest.to_string(),
            size: blob.size,
            diff_id: blob.diff_id.to_string(),
            media_type: blob.media_type.clone(),
            from_base: false,
            cached,
            in_layout: true,
            packages: found.packages,
            package_warnings: found.warnings,
        });
        out.added.push(AddedLayer {
            diff_id: blob.diff_id.to_string(),
            created_by: format!("ocibuild layer {rel} -> {}", lc.target),
        });
        Ok(())
    }

    /// The index (annotated with a registry base), `index.json` with the tags, the report.
    fn finish(
        &self,
        manifests: &[image::IndexEntry],
        tags: &[String],
        platforms: Vec<PlatformReport>,
    ) -> Result<ServiceReport, BuildError> {
        let remote = self.base.and_then(|b| b.remote.as_ref());
        let mut index = image::index(manifests);
        if let Some(r) = remote {
            index.set_annotations(Some(base_annotations(r, &r.digest)));
        }
        let (i_digest, i_size) = self.write_json(&index)?;
        let refs = tags
            .iter()
            .map(|t| {
                let mut d = image::descriptor(MEDIA_TYPE_INDEX, &i_digest, i_size);
                d.set_annotations(Some([(ANNOTATION_REF_NAME.to_string(), t.clone())].into()));
                d
            })
            .collect();
        self.layout
            .write_index_json(refs)
            .map_err(|e| self.layout_err(e))?;
        Ok(ServiceReport {
            name: self.svc.name.clone(),
            repository: self.svc.repository.clone(),
            layout: self.dir.to_path_buf(),
            index_digest: i_digest.to_string(),
            tags: tags.to_vec(),
            platforms,
            base: remote.map(|r| BaseReport {
                name: r.image.spelled.clone(),
                digest: r.digest.to_string(),
                from_cache: r.from_cache,
            }),
        })
    }
}

/// The annotations naming a registry base: where it is (so a push can read its layers) and
/// the digest of what was built on.
fn base_annotations(
    r: &base::remote::RemoteBase,
    digest: &Digest,
) -> std::collections::HashMap<String, String> {
    [
        (ANNOTATION_BASE_NAME.to_string(), r.image.canonical()),
        (ANNOTATION_BASE_DIGEST.to_string(), digest.to_string()),
    ]
    .into()
}

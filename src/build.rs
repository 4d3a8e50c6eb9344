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

mod make;
mod out;
mod place;
mod report;

/// The latest `SOURCE_DATE_EPOCH` a build accepts (see [`image::MAX_EPOCH`]).
pub use crate::image::MAX_EPOCH;

use crate::base::{self, remote::RemoteOptions, BaseError, ResolvedBase};
use crate::config::{Config, ConfigError, LayerConfig, Service};
use crate::digest::Digest;
use crate::image::{self, AddedLayer};
use crate::layer::{self, LayerError};
use crate::layout::{LayoutError, LayoutWriter};
use crate::platform::Platform;
use crate::spec::{
    canonical_json, ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME,
    MEDIA_TYPE_INDEX,
};
use make::{BuiltLayers, LayerMaker, MadeLayer};
pub use make::{Origin, RemoteLayers};
pub use out::check_dirs;
use out::{outside_sources, prepare_out};
pub use report::{BaseReport, LayerOrigin, LayerReport, Origins, PlatformReport, ServiceReport};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// A registry layer cache to read: a layer it has is not built, its blob left in the
    /// registry (and its fingerprint reported, for writing the cache after a push).
    pub remote_cache: Option<Arc<dyn RemoteLayers>>,
    /// Rebuild the registry cache's hits and fail if a digest differs (`--verify-cache`).
    pub verify_cache: bool,
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
        crate::spec::check_image_tag(t).map_err(ConfigError)?;
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
        remote: opts.remote_cache.as_deref(),
        verify_remote: opts.verify_cache,
        workers: &workers,
    };
    let mut built = make::prebuild(
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
        for made in built.values().filter(|m| m.file.is_some()) {
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
                cache: None,
                fingerprint: None,
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
            origin,
            fingerprint,
            found,
            ..
        } = match built.get(&key) {
            Some(made) => made.clone(),
            None => {
                let made = self
                    .maker
                    .make(&source, lc, platform, &self.layout)
                    .map_err(|e| {
                        let name = &self.svc.name;
                        make::layer_error(e, name, platform, &rel, lc, |e| self.layout_err(e))
                    })?;
                built.insert(key, made.clone());
                made
            }
        };
        // A registry cache's layer stays in the registry: the push mounts or copies it.
        if let Some(file) = &file {
            self.layout
                .link_blob(file, &blob.digest, blob.size)
                .map_err(|e| self.layout_err(e))?;
        }
        out.descriptors
            .push(image::descriptor(&blob.media_type, &blob.digest, blob.size));
        out.reports.push(LayerReport {
            digest: blob.digest.to_string(),
            size: blob.size,
            diff_id: blob.diff_id.to_string(),
            media_type: blob.media_type.clone(),
            from_base: false,
            cached: origin != Origin::Built,
            cache: Some(origin),
            fingerprint: fingerprint.map(|f| f.to_string()),
            in_layout: file.is_some(),
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

//! `ocibuild build`: the config, the layer settings, registry access for bases, then
//! `build::build`. Also the pieces `publish` shares: layer options, the cache, base access.

use super::{access, AppError, Env, Event, Events, LayerSettings};
use crate::base::remote::RemoteOptions;
use crate::build::{self as builder, BuildOptions, RemoteLayers, ServiceReport};
use crate::config::{Compression, Config};
use crate::layer::cache::LayerCache;
use crate::layer::compress::Codec;
use crate::layer::LayerOptions;
use crate::platform::Platform;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// Config file (default: found from the working directory).
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Platforms (empty: the config's).
    pub platforms: Vec<String>,
    /// Layer and cache settings.
    pub layers: LayerSettings,
    /// Output directory.
    pub out: PathBuf,
    /// Ref names written into each layout.
    pub tags: Vec<String>,
    /// Copy registry bases' layers into the layouts.
    pub materialize: bool,
}

/// Build the requested services into layouts.
pub fn build(
    req: &BuildRequest,
    env: Env<'_>,
    events: Events<'_>,
) -> Result<Vec<ServiceReport>, AppError> {
    let epoch = super::source_date_epoch(env)?;
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_tags(&req.tags, false)?;
    super::check_services(&config, &req.services)?;
    let platforms = super::parse_platforms(&req.platforms)?;
    let runtime = super::runtime()?;
    let cache = cache(
        &config,
        &req.services,
        &platforms,
        &req.out,
        &req.layers,
        env,
        events,
    )?;
    let opts = BuildOptions {
        services: req.services.clone(),
        platforms,
        out: req.out.clone(),
        tags: req.tags.clone(),
        epoch,
        layer: layer_options(&req.layers, &config),
        cache,
        remote: Some(remote_options(&config, &runtime, &req.layers)),
        materialize: req.materialize,
        remote_cache: registry_cache(&config, req, &runtime, env, events)?,
        verify_cache: req.layers.verify_cache,
    };
    let built = builder::build(&config, &opts)?;
    package_warnings(&built, events);
    Ok(built)
}

/// The registry layer cache of the config's registry, read for the requested services (none
/// when the config names no registry, the cache is off, the layouts must hold every blob
/// (`--materialize`), or the registry cannot be reached: that last with a warning).
fn registry_cache(
    config: &Config,
    req: &BuildRequest,
    runtime: &tokio::runtime::Runtime,
    env: Env<'_>,
    events: Events<'_>,
) -> Result<Option<Arc<dyn RemoteLayers>>, AppError> {
    if req.materialize {
        if req.layers.verify_cache {
            return Err(AppError::Usage(
                "--materialize builds without the registry layer cache (a layout must hold every blob), so there is nothing for --verify-cache to check".into(),
            ));
        }
        return Ok(None);
    }
    let Some(registry) = &config.registry else {
        if req.layers.verify_cache {
            return Err(AppError::Usage(format!(
                "--verify-cache checks the registry layer cache, and {} names no registry ([registry] url)",
                config.file.display()
            )));
        }
        return Ok(None);
    };
    let ctx = super::tags::ci_context(env)?;
    let git = crate::plan::git::Git::open(&config.dir).ok();
    let branch = ctx.branch.clone().or_else(|| git.and_then(|g| g.branch()));
    let Some(place) = super::cache::place(config, registry, &req.layers, branch)? else {
        return Ok(None);
    };
    let connected = match access::Connected::open(runtime, registry) {
        Ok(c) => c,
        Err(e) => {
            events(Event::Warning(format!(
                "registry layer cache not read ({e}): every layer not in the local cache is built"
            )));
            return Ok(None);
        }
    };
    let names: Vec<String> = match req.services.is_empty() {
        true => config.services.keys().cloned().collect(),
        false => req.services.clone(),
    };
    Ok(Some(super::cache::open(
        &place,
        connected.client,
        &names,
        runtime,
        events,
    )))
}

/// A warning for each file that looked like a package source but could not be read, once
/// per service and file (a layer shared by platforms has the same ones).
pub fn package_warnings(built: &[ServiceReport], events: Events<'_>) {
    for s in built {
        let mut seen = std::collections::BTreeSet::new();
        let layers = s.platforms.iter().flat_map(|p| &p.layers);
        for w in layers.flat_map(|l| &l.package_warnings) {
            if seen.insert(w) {
                events(Event::Warning(format!(
                    "{}: no package read from {w}; the SBOM will not list it",
                    s.name
                )));
            }
        }
    }
}

/// The layer cache to use, if any (one that cannot be opened is skipped with a warning).
/// First, before anything is created, the output and cache directories of building `names`
/// into `out` are checked to lie outside every layer source.
pub fn cache(
    config: &Config,
    names: &[String],
    platforms: &Option<Vec<Platform>>,
    out: &Path,
    s: &LayerSettings,
    env: Env<'_>,
    events: Events<'_>,
) -> Result<Option<LayerCache>, AppError> {
    let dir = match s.no_cache {
        true => None,
        false => s
            .cache_dir
            .clone()
            .or_else(|| crate::layer::cache::default_dir(&|k| env(k))),
    };
    builder::check_dirs(config, names, platforms.as_deref(), out, dir.as_deref())?;
    let Some(dir) = dir else { return Ok(None) };
    match LayerCache::open(&dir) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            events(Event::Warning(format!(
                "layer cache {} unusable ({e}): building without it",
                dir.display()
            )));
            Ok(None)
        }
    }
}

/// Layer options other than the config's, when `--fast` asks for them.
pub fn layer_options(s: &LayerSettings, config: &Config) -> Option<LayerOptions> {
    s.fast.then(|| LayerOptions {
        codec: match config.compression {
            Compression::Gzip { .. } => Codec::Gzip(1),
            Compression::Zstd { .. } => Codec::Zstd(1),
        },
        ..LayerOptions::default()
    })
}

/// Registry access for the bases of a build, on `runtime`.
pub fn remote_options(
    config: &Config,
    runtime: &tokio::runtime::Runtime,
    s: &LayerSettings,
) -> RemoteOptions {
    RemoteOptions {
        runtime: runtime.handle().clone(),
        clients: access::base_registries(config),
        pull: s.pull,
        materialize_into: None,
    }
}

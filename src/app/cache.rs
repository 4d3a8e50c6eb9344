//! The registry layer cache of `push` and `build`: before the build, each selected service's
//! cache document for this branch (else the default branch's) is read from the cache
//! repository, and a layer whose fingerprint it names is taken from the registry, once a HEAD
//! has shown its blob is still there; after a successful push (`--cache-write`), each pushed
//! service's document is written, its blobs mounted into the cache repository first.
//!
//! The cache is a hint, never a reason to fail: a document that cannot be read, a blob that is
//! gone, a write that is refused is a warning, and the layer is built.

use super::{AppError, Event, Events, LayerSettings};
use crate::build::{RemoteLayers, ServiceReport};
use crate::config::{Config, RegistryConfig};
use crate::digest::Digest;
use crate::layer::LayerBlob;
use crate::oci::layer_cache::{self, CacheEntry};
use crate::oci::{BlobAt, BlobRef, RepoAt};
use crate::registry::client::RegistryClient;
use crate::transfer::{CacheDoc, Registry};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Where the cache is and which documents a run reads.
#[derive(Debug, Clone)]
pub struct CachePlace {
    /// The cache repository (registry host and full path, prefix included).
    pub at: RepoAt,
    /// The branch being built, if known.
    pub branch: Option<String>,
    /// The project's default branch (the fallback document).
    pub default_branch: String,
}

impl CachePlace {
    /// The tags to try for `service`, best first.
    fn tags(&self, service: &str) -> Vec<String> {
        let mut tags: Vec<String> = self
            .branch
            .iter()
            .map(|b| layer_cache::tag(service, b))
            .collect();
        let default = layer_cache::tag(service, &self.default_branch);
        if !tags.contains(&default) {
            tags.push(default);
        }
        tags
    }

    /// The tag a write goes to: this branch's (the default branch's when none is known).
    pub fn write_tag(&self, service: &str) -> String {
        layer_cache::tag(
            service,
            self.branch.as_ref().unwrap_or(&self.default_branch),
        )
    }
}

/// The cache documents read for this run, as the build asks them.
pub struct RegistryCache {
    at: RepoAt,
    client: Arc<RegistryClient>,
    handle: tokio::runtime::Handle,
    entries: HashMap<Digest, CacheEntry>,
    /// Per blob digest, whether the registry still has it (asked once).
    present: Mutex<HashMap<Digest, bool>>,
}

impl RegistryCache {
    /// Read the documents of `services` (concurrently): for each, the first of its tags that
    /// holds a cache document. What cannot be read is a warning.
    pub async fn read(
        place: &CachePlace,
        client: Arc<RegistryClient>,
        services: &[String],
        events: Events<'_>,
    ) -> RegistryCache {
        let repo = &place.at.repository;
        let reads = services.iter().map(|s| {
            let (client, tags) = (&client, place.tags(s));
            async move {
                for t in &tags {
                    match client.get_manifest(repo, t).await {
                        Ok(Some(m)) => return (s, t.clone(), Ok(Some(m.bytes))),
                        Ok(None) => continue,
                        Err(e) => return (s, t.clone(), Err(e.to_string())),
                    }
                }
                (s, String::new(), Ok(None))
            }
        });
        let mut entries = HashMap::new();
        for (service, tag, read) in futures_util::future::join_all(reads).await {
            let parsed = read.and_then(|b| b.map(|b| layer_cache::parse(&b)).transpose());
            match parsed {
                Ok(Some(list)) => {
                    for e in list {
                        entries.insert(e.fingerprint.clone(), e);
                    }
                }
                Ok(None) => {}
                Err(e) => events(Event::Warning(format!(
                    "{service}: registry layer cache {}/{repo}:{tag} not used ({e}); its layers are built",
                    place.at.host
                ))),
            }
        }
        RegistryCache {
            at: place.at.clone(),
            client,
            handle: tokio::runtime::Handle::current(),
            entries,
            present: Mutex::new(HashMap::new()),
        }
    }

    /// How many layers the documents name.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the documents name no layer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the cache repository still has `e`'s blob (asked once per digest; a failed
    /// question counts as no).
    fn has_blob(&self, e: &CacheEntry) -> bool {
        if let Some(known) = self
            .present
            .lock()
            .ok()
            .and_then(|p| p.get(&e.digest).copied())
        {
            return known;
        }
        let ask = self
            .client
            .blob_exists(&self.at.repository, &e.digest, e.size);
        let found = self.handle.block_on(ask).unwrap_or(false);
        if let Ok(mut p) = self.present.lock() {
            p.insert(e.digest.clone(), found);
        }
        found
    }
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("at", &self.at)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl RemoteLayers for RegistryCache {
    fn find(&self, fingerprint: &Digest) -> Option<LayerBlob> {
        let e = self.entries.get(fingerprint)?;
        if !self.has_blob(e) {
            return None;
        }
        Some(LayerBlob {
            digest: e.digest.clone(),
            size: e.size,
            diff_id: e.diff_id.clone(),
            media_type: e.media_type.clone(),
        })
    }
}

/// The cache document of one built service, with where each of its blobs can be had (the
/// service's repository it was just pushed to, and its layout file when it has one).
pub fn document(
    built: &ServiceReport,
    pushed_to: &RepoAt,
    layouts: &Path,
) -> Option<(Vec<u8>, Vec<BlobRef>)> {
    let mut entries = Vec::new();
    let mut blobs: Vec<BlobRef> = Vec::new();
    let own = built.platforms.iter().flat_map(|p| &p.layers);
    for l in own.filter(|l| !l.from_base) {
        let fingerprint = l.fingerprint.as_deref()?.parse().ok()?;
        let digest: Digest = l.digest.parse().ok()?;
        entries.push(CacheEntry {
            fingerprint,
            digest: digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            diff_id: l.diff_id.parse().ok()?,
        });
        if blobs.iter().any(|b| b.digest == digest) {
            continue;
        }
        let mut at = vec![BlobAt::Registry(pushed_to.clone())];
        if l.in_layout {
            let file = layouts
                .join(&built.name)
                .join("blobs/sha256")
                .join(digest.hex());
            at.push(BlobAt::File(file));
        }
        blobs.push(BlobRef {
            digest,
            size: l.size,
            media_type: l.media_type.clone(),
            at,
        });
    }
    (!entries.is_empty()).then(|| (layer_cache::manifest(&entries), blobs))
}

/// Write the cache document of each service in `written` (service, document, blobs) to the
/// cache repository; a failure is a warning.
pub async fn write<R: Registry>(
    registry: &R,
    place: &CachePlace,
    written: Vec<(String, Vec<u8>, Vec<BlobRef>)>,
    events: Events<'_>,
) {
    let repo = &place.at.repository;
    let docs: Vec<CacheDoc> = written
        .iter()
        .map(|(service, manifest, blobs)| CacheDoc {
            tag: place.write_tag(service),
            manifest: manifest.clone(),
            blobs: blobs.clone(),
        })
        .collect();
    let stored = crate::transfer::store_cache(registry, repo, &docs).await;
    for ((service, _, _), (d, r)) in written.iter().zip(docs.iter().zip(stored)) {
        let (tag, n) = (&d.tag, d.blobs.len());
        let at = format!("{}/{repo}:{tag}", place.at.host);
        events(match r {
            Ok(true) => Event::Note(format!("{service}: layer cache {at} written ({n} layers)")),
            Ok(false) => Event::Note(format!("{service}: layer cache {at} already up to date")),
            Err(e) => Event::Warning(format!(
                "{service}: layer cache {at} not written ({e}); the next run builds these layers"
            )),
        });
    }
}

/// Where the registry cache of a run pushing to `registry` is, building `branch`; `None` when
/// it is off (`--no-cache`, `--no-registry-cache`, `[cache] registry = false`).
pub fn place(
    config: &Config,
    registry: &RegistryConfig,
    s: &LayerSettings,
    branch: Option<String>,
) -> Result<Option<CachePlace>, AppError> {
    if s.no_cache || s.no_registry_cache || !config.cache.registry {
        if s.verify_cache {
            return Err(AppError::Usage(
                "--verify-cache checks the registry layer cache, which --no-cache, --no-registry-cache or [cache] registry = false turn off".into(),
            ));
        }
        return Ok(None);
    }
    let name = s
        .cache_repository
        .clone()
        .unwrap_or_else(|| config.cache.repository.clone());
    if !crate::spec::is_valid_repository(&name) {
        return Err(AppError::Usage(format!(
            "--cache-repository {name:?} is not a valid repository name: use lowercase letters, digits and separators (., _, -, /)"
        )));
    }
    if let Some(s) = config.services.values().find(|s| s.repository == name) {
        return Err(AppError::Usage(format!(
            "the layer cache repository {name:?} is service {}'s repository: cache tags would mix with its image tags; choose another ([cache] repository or --cache-repository)",
            s.name
        )));
    }
    Ok(Some(CachePlace {
        at: RepoAt {
            host: registry.host.clone(),
            repository: registry.repository_path(&name),
        },
        branch,
        default_branch: config.default_branch.clone(),
    }))
}

/// Read the registry cache of `services` at `place` through `client` (on `runtime`): what
/// the build is given.
pub fn open(
    place: &CachePlace,
    client: Arc<RegistryClient>,
    services: &[String],
    runtime: &tokio::runtime::Runtime,
    events: Events<'_>,
) -> Arc<dyn RemoteLayers> {
    let cache = runtime.block_on(RegistryCache::read(place, client, services, events));
    Arc::new(cache)
}

//! Base images in a registry: resolve a reference (a tag to a digest, once per run) and read
//! only the index, the manifests of the requested platforms and their configs. Layers are
//! never read here, unless the caller asks to materialize them (an offline layout).
//!
//! Documents are cached by digest under `<cache>/base-v1/blobs/sha256/<hex>` (checked against
//! the digest when read back) and tag resolutions under `<cache>/base-v1/tags/`: without
//! `pull`, a tag resolved earlier is not asked again, so a warm rebuild needs no network.
//! Files are written to a temp file and renamed. Imports `digest`, `platform`, `reference`,
//! `registry`, `spec`.

use super::{digest_of, missing_platform, parse, platform_string, BaseError, PlatformBase};
use crate::digest::{Digest, HashingWriter};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::registry::client::RegistryClient;
use crate::registry::clients::Clients;
use crate::registry::error::RegistryError;
use crate::spec::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use futures_util::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How registry bases are reached.
#[derive(Clone)]
pub struct RemoteOptions {
    /// The runtime the registry calls run on (the caller's, so connections outlive the build).
    pub runtime: tokio::runtime::Handle,
    /// Clients per registry host (credentials are the connector's business).
    pub clients: Arc<Clients>,
    /// Ask the registry what tags point at now, even when the cache knows an answer.
    pub pull: bool,
    /// Download the base layers too, into this directory (files named by digest hex).
    pub materialize_into: Option<PathBuf>,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("pull", &self.pull)
            .field("materialize_into", &self.materialize_into)
            .finish_non_exhaustive()
    }
}

/// What a registry base resolved to.
#[derive(Debug, Clone)]
pub struct RemoteBase {
    /// The reference as configured.
    pub image: ImageRef,
    /// The digest the reference designates (its index, or its single manifest).
    pub digest: Digest,
    /// Whether the tag's digest came from the cache (no registry asked; `--pull` asks).
    pub from_cache: bool,
}

/// The cache of base documents: `<cache>/base-v1`.
pub fn cache_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("base-v1")
}

/// Where materialized layers go in the cache.
pub fn cache_blob_dir(cache_root: &Path) -> PathBuf {
    cache_dir(cache_root).join("blobs").join("sha256")
}

struct Store {
    root: PathBuf,
}

impl Store {
    fn blob(&self, d: &Digest) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.root.join("blobs/sha256").join(d.hex())).ok()?;
        (Digest::of(&bytes) == *d).then_some(bytes)
    }

    fn tag_file(&self, image: &ImageRef, tag: &str) -> PathBuf {
        let key = Digest::of(format!("{}:{tag}", image.name()).as_bytes());
        self.root.join("tags").join(key.hex())
    }

    fn tag(&self, image: &ImageRef, tag: &str) -> Option<Digest> {
        std::fs::read_to_string(self.tag_file(image, tag))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Best effort: a cache that cannot be written only costs a request next time.
    fn put(&self, rel: &Path, bytes: &[u8]) {
        let path = self.root.join(rel);
        let Some(dir) = path.parent() else { return };
        let _ = std::fs::create_dir_all(dir).and_then(|_| {
            let mut tmp = tempfile::NamedTempFile::with_prefix_in(".tmp-", dir)?;
            tmp.write_all(bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
    }

    fn put_blob(&self, d: &Digest, bytes: &[u8]) {
        self.put(&Path::new("blobs/sha256").join(d.hex()), bytes);
    }

    fn put_tag(&self, image: &ImageRef, tag: &str, d: &Digest) {
        let rel = self
            .tag_file(image, tag)
            .strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        self.put(&rel, d.as_str().as_bytes());
    }
}

/// Reads documents of one base repository: the cache first, then the registry.
struct Reader<'a> {
    image: &'a ImageRef,
    client: Arc<RegistryClient>,
    store: Option<&'a Store>,
}

impl Reader<'_> {
    fn err(&self, e: RegistryError) -> BaseError {
        BaseError::Registry {
            host: self.image.host.clone(),
            source: Box::new(e),
        }
    }

    fn not_found(&self, reference: &str) -> BaseError {
        BaseError::NotFound {
            base: self.image.spelled.clone(),
            message: format!(
                "{} has no image {reference} in repository {}: check the name and tag, or push the base image first",
                self.image.host, self.image.repository
            ),
        }
    }

    /// A manifest or index by tag or digest: its bytes and digest.
    async fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Digest), BaseError> {
        if let (Ok(d), Some(store)) = (reference.parse::<Digest>(), self.store) {
            if let Some(bytes) = store.blob(&d) {
                return Ok((bytes, d));
            }
        }
        let m = self
            .client
            .get_manifest(&self.image.repository, reference)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.not_found(reference))?;
        if let Some(store) = self.store {
            store.put_blob(&m.digest, &m.bytes);
        }
        Ok((m.bytes, m.digest))
    }

    /// A config blob by digest.
    async fn blob(&self, d: &Digest) -> Result<Vec<u8>, BaseError> {
        if let Some(bytes) = self.store.and_then(|s| s.blob(d)) {
            return Ok(bytes);
        }
        let bytes = self
            .client
            .get_blob(&self.image.repository, d)
            .await
            .map_err(|e| self.err(e))?;
        if let Some(store) = self.store {
            store.put_blob(d, &bytes);
        }
        Ok(bytes)
    }

    /// Download layer `d` (`size` bytes) into `dir/<hex>` unless a file with its digest is
    /// there, checking what arrives against the digest.
    async fn download(&self, d: &Digest, size: u64, dir: &Path) -> Result<PathBuf, BaseError> {
        let dest = dir.join(d.hex());
        if file_digest(&dest).is_ok_and(|(got, n)| got == *d && n == size) {
            return Ok(dest);
        }
        let io = |e: std::io::Error| BaseError::Invalid {
            base: self.image.spelled.clone(),
            message: format!("writing layer {d} into {}: {e}", dir.display()),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Local failures end the retries (Ok(Err(..))); transfer failures are retried.
        let tmp = self
            .client
            .retry(|| async {
                let resp = self.client.open_blob(&self.image.repository, d).await?;
                let url = self.client.base().clone();
                let mut out = match tempfile::NamedTempFile::with_prefix_in(".download-", dir) {
                    Ok(t) => HashingWriter::new(t),
                    Err(e) => return Ok(Err(e)),
                };
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| RegistryError::transport("GET", &url, &e))?;
                    if let Err(e) = out.write_all(&chunk) {
                        return Ok(Err(e));
                    }
                }
                let (tmp, got, n) = out.finish_digest();
                if got != *d || n != size {
                    // A damaged transfer: worth another try.
                    return Err(RegistryError::new(
                        "GET",
                        format!("{}v2/{}/blobs/{d}", url, self.image.repository),
                        format!("the registry served {got} ({n} bytes), not {d} ({size} bytes)"),
                    ));
                }
                Ok(Ok(tmp))
            })
            .await
            .map_err(|e| self.err(e))?
            .map_err(io)?;
        tmp.persist(&dest).map_err(|e| io(e.error))?;
        Ok(dest)
    }
}

/// The digest and size of the file at `path`.
fn file_digest(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut w = HashingWriter::new(std::io::sink());
    std::io::copy(&mut std::fs::File::open(path)?, &mut w)?;
    let (_, d, n) = w.finish_digest();
    Ok((d, n))
}

/// What a document is, by its `mediaType` (or its shape when it has none).
fn kind(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return Some(t.to_string());
    }
    Some(if v.get("manifests").is_some() {
        MEDIA_TYPE_INDEX.to_string()
    } else {
        MEDIA_TYPE_MANIFEST.to_string()
    })
}

/// Resolve registry base `image` for each of `platforms` (in order).
pub async fn resolve(
    image: &ImageRef,
    platforms: &[Platform],
    opts: &RemoteOptions,
    cache_root: Option<&Path>,
) -> Result<(Vec<PlatformBase>, RemoteBase), BaseError> {
    let client = opts
        .clients
        .get(image.api_host())
        .await
        .map_err(|message| BaseError::Invalid {
            base: image.spelled.clone(),
            message,
        })?;
    let store = cache_root.map(|c| Store { root: cache_dir(c) });
    let reader = Reader {
        image,
        client,
        store: store.as_ref(),
    };

    // The top document: pinned, cached from an earlier resolution, or asked for now.
    let (top, digest, from_cache) = match (&image.digest, &image.tag) {
        (Some(d), _) => {
            let (bytes, d) = reader.manifest(d.as_str()).await?;
            (bytes, d, false)
        }
        (None, tag) => {
            let tag = tag.as_deref().unwrap_or("latest");
            let cached = match (&store, opts.pull) {
                (Some(s), false) => s.tag(image, tag).and_then(|d| s.blob(&d).map(|b| (b, d))),
                _ => None,
            };
            match cached {
                Some((bytes, d)) => (bytes, d, true),
                None => {
                    let (bytes, d) = reader.manifest(tag).await?;
                    if let Some(s) = &store {
                        s.put_tag(image, tag, &d);
                    }
                    (bytes, d, false)
                }
            }
        }
    };

    let media = kind(&top).unwrap_or_default();
    // Which manifest serves each platform.
    let chosen: Vec<Digest> = if media == MEDIA_TYPE_INDEX || media == MEDIA_TYPE_DOCKER_LIST {
        let index: ImageIndex = parse(&top, "image index", &image.spelled)?;
        choose(&index, platforms, &image.spelled)?
    } else if media == MEDIA_TYPE_MANIFEST || media == MEDIA_TYPE_DOCKER_MANIFEST {
        vec![digest.clone(); platforms.len()]
    } else {
        return Err(BaseError::Invalid {
            base: image.spelled.clone(),
            message: format!(
                "unsupported media type {media:?}: expected an image index or manifest (OCI or Docker schema 2)"
            ),
        });
    };

    // Each chosen manifest and its config, once, all at once.
    let mut distinct: Vec<Digest> = chosen.clone();
    distinct.sort();
    distinct.dedup();
    let loaded: Vec<PlatformBase> =
        futures_util::future::join_all(distinct.iter().map(|d| load(&reader, d)))
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (p, d) in platforms.iter().zip(&chosen) {
        let i = distinct.iter().position(|x| x == d).unwrap_or(0);
        let pb = loaded[i].clone();
        if media != MEDIA_TYPE_INDEX && media != MEDIA_TYPE_DOCKER_LIST {
            // A single manifest: its config says which platform it is.
            let (os, arch) = (
                pb.config.os().to_string(),
                pb.config.architecture().to_string(),
            );
            if !p.matches(&os, &arch, pb.config.variant().as_deref()) {
                return Err(missing_platform(
                    &image.spelled,
                    p,
                    &[platform_string(&os, &arch, pb.config.variant().as_deref())],
                ));
            }
        }
        out.push(pb);
    }

    if let Some(dir) = &opts.materialize_into {
        let mut layers: Vec<(Digest, u64)> = Vec::new();
        for pb in &out {
            for l in &pb.layers {
                let d = digest_of(l, &image.spelled)?;
                if !layers.iter().any(|(x, _)| *x == d) {
                    layers.push((d, l.size()));
                }
            }
        }
        let files: Vec<Result<(Digest, PathBuf), BaseError>> =
            futures_util::stream::iter(layers.into_iter().map(|(d, size)| {
                let reader = &reader;
                async move { reader.download(&d, size, dir).await.map(|p| (d, p)) }
            }))
            .buffer_unordered(8)
            .collect()
            .await;
        let mut paths = std::collections::HashMap::new();
        for f in files {
            let (d, p) = f?;
            paths.insert(d, p);
        }
        for pb in &mut out {
            for (l, file) in pb.layers.iter().zip(pb.layer_files.iter_mut()) {
                *file = Digest::from_oci(l.digest())
                    .ok()
                    .and_then(|d| paths.get(&d).cloned());
            }
        }
    }

    Ok((
        out,
        RemoteBase {
            image: image.clone(),
            digest,
            from_cache,
        },
    ))
}

/// The manifest of `index` that serves each of `platforms`: the first image manifest whose
/// declared platform matches (arm64 takes variant v8 or none). Entries that are not images
/// (attestations, declared `unknown/unknown`; nested indexes) are never chosen or offered.
fn choose(
    index: &ImageIndex,
    platforms: &[Platform],
    base: &str,
) -> Result<Vec<Digest>, BaseError> {
    let images: Vec<(&oci_spec::image::Descriptor, String, String, Option<String>)> = index
        .manifests()
        .iter()
        .filter(|d| {
            let t = d.media_type().to_string();
            t == MEDIA_TYPE_MANIFEST || t == MEDIA_TYPE_DOCKER_MANIFEST
        })
        .filter_map(|d| {
            let p = d.platform().as_ref()?;
            let (os, arch) = (p.os().to_string(), p.architecture().to_string());
            (os != "unknown" && arch != "unknown").then(|| (d, os, arch, p.variant().clone()))
        })
        .collect();
    platforms
        .iter()
        .map(|p| {
            let Some((d, ..)) = images
                .iter()
                .find(|(_, os, arch, v)| p.matches(os, arch, v.as_deref()))
            else {
                let available: Vec<String> = images
                    .iter()
                    .map(|(_, os, arch, v)| platform_string(os, arch, v.as_deref()))
                    .collect();
                return Err(missing_platform(base, p, &available));
            };
            digest_of(d, base)
        })
        .collect()
}

/// One platform manifest and its config (layers stay in the registry).
async fn load(reader: &Reader<'_>, d: &Digest) -> Result<PlatformBase, BaseError> {
    let image = reader.image;
    let (bytes, _) = reader.manifest(d.as_str()).await?;
    let media = kind(&bytes).unwrap_or_default();
    if media != MEDIA_TYPE_MANIFEST && media != MEDIA_TYPE_DOCKER_MANIFEST {
        return Err(BaseError::Invalid {
            base: image.spelled.clone(),
            message: format!("{d} is a {media:?}, not an image manifest"),
        });
    }
    let manifest: ImageManifest = parse(&bytes, "image manifest", &image.spelled)?;
    let config_digest = digest_of(manifest.config(), &image.spelled)?;
    let config: ImageConfiguration = parse(
        &reader.blob(&config_digest).await?,
        "image config",
        &image.spelled,
    )?;
    if config.rootfs().diff_ids().len() != manifest.layers().len() {
        return Err(BaseError::Invalid {
            base: image.spelled.clone(),
            message: format!(
                "manifest {d} has {} layers but its config lists {} diff_ids",
                manifest.layers().len(),
                config.rootfs().diff_ids().len()
            ),
        });
    }
    Ok(PlatformBase {
        config,
        layer_files: vec![None; manifest.layers().len()],
        layers: manifest.layers().clone(),
        manifest_digest: d.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_media_type_or_shape() {
        assert_eq!(
            kind(br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#)
                .as_deref(),
            Some(MEDIA_TYPE_DOCKER_LIST)
        );
        assert_eq!(
            kind(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(MEDIA_TYPE_INDEX)
        );
        assert_eq!(
            kind(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).as_deref(),
            Some(MEDIA_TYPE_MANIFEST)
        );
        assert_eq!(kind(b"not json"), None);
    }

    #[test]
    fn platforms_are_chosen_from_the_index_and_attestations_skipped() {
        let d = |n: u8| format!("sha256:{}", format!("{n:02x}").repeat(32));
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_DOCKER_LIST,
            "manifests": [
                {"mediaType": MEDIA_TYPE_DOCKER_MANIFEST, "digest": d(1), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": MEDIA_TYPE_MANIFEST, "digest": d(2), "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"}},
                {"mediaType": MEDIA_TYPE_DOCKER_MANIFEST, "digest": d(3), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": MEDIA_TYPE_DOCKER_MANIFEST, "digest": d(4), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64"}}
            ]
        }))
        .unwrap();
        let p = |s: &str| s.parse::<Platform>().unwrap();
        let got = choose(&index, &[p("linux/arm64"), p("linux/amd64")], "b").unwrap();
        assert_eq!(
            got.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            [d(4), d(1)],
            "arm64/v8 takes an arm64 entry without variant"
        );
        let e = choose(&index, &[p("linux/s390x")], "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no image for linux/s390x"), "{e}");
        assert!(
            e.contains("(it has: linux/amd64, linux/arm/v7, linux/arm64)"),
            "attestations are not offered: {e}"
        );
    }

    #[test]
    fn cache_reads_back_only_what_matches_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            root: cache_dir(dir.path()),
        };
        let image = ImageRef::parse("127.0.0.1:5000/base/static:1").unwrap();
        let doc = br#"{"schemaVersion":2,"manifests":[]}"#;
        let d = Digest::of(doc);
        assert!(store.blob(&d).is_none());
        store.put_blob(&d, doc);
        store.put_tag(&image, "1", &d);
        assert_eq!(store.blob(&d).as_deref(), Some(&doc[..]));
        assert_eq!(store.tag(&image, "1"), Some(d.clone()));
        assert_eq!(store.tag(&image, "2"), None);
        // A damaged cache entry is not served.
        std::fs::write(store.root.join("blobs/sha256").join(d.hex()), b"{}").unwrap();
        assert!(store.blob(&d).is_none());
    }
}

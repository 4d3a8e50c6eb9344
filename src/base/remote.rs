//! Base images in a registry: resolve a reference (a tag to a digest, once per run) and read
//! only the index, the manifests of the requested platforms and their configs. Layers are
//! never read here, unless the caller asks to materialize them (an offline layout).
//!
//! Documents are cached by digest under `<cache>/base-v1/blobs/sha256/<hex>` (checked against
//! the digest when read back) and tag resolutions under `<cache>/base-v1/tags/`: without
//! `pull`, a tag resolved earlier is not asked again, so a warm rebuild needs no network.
//! Files are written to a temp file and renamed. The documents are read by `oci::read` (the one
//! reader), driven here over the registry. Imports `digest`, `oci`, `platform`, `reference`,
//! `registry`, `spec`.

use super::{BaseError, ResolvedBase};
use crate::digest::{Digest, HashingWriter};
use crate::oci::read::{kind_of, DocKind, GraphReader, Needed, Want};
use crate::oci::{BlobAt, Doc, ImageGraph, RepoAt};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::registry::client::RegistryClient;
use crate::registry::clients::Clients;
use crate::registry::error::RegistryError;
use futures_util::StreamExt;
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
        let path = self.root.join("blobs/sha256").join(d.hex());
        let bytes = crate::digest::file::read_bounded(&path, crate::layout::MAX_JSON_BLOB).ok()?;
        (Digest::of(&bytes) == *d).then_some(bytes)
    }

    fn tag_file(&self, image: &ImageRef, tag: &str) -> PathBuf {
        let key = Digest::of(format!("{}:{tag}", image.name()).as_bytes());
        self.root.join("tags").join(key.hex())
    }

    fn tag(&self, image: &ImageRef, tag: &str) -> Option<Digest> {
        let text = crate::digest::file::read_bounded(&self.tag_file(image, tag), 4096).ok()?;
        String::from_utf8(text).ok()?.trim().parse().ok()
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

    /// A document the graph reader needs: a manifest, or a config blob.
    async fn read(&self, n: &Needed) -> Result<Vec<u8>, BaseError> {
        match n.kind {
            DocKind::Manifest => Ok(self.manifest(n.digest.as_str()).await?.0),
            DocKind::Config => self.blob(&n.digest).await,
        }
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
                let url = self
                    .client
                    .blob_url(&self.image.repository, d)
                    .unwrap_or_else(|| self.client.base().clone());
                let mut out = match tempfile::NamedTempFile::with_prefix_in(".download-", dir) {
                    Ok(t) => HashingWriter::new(t),
                    Err(e) => return Ok(Err(e)),
                };
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| RegistryError::transport("GET", &url, &e))?;
                    // Never more than the layer's size: an endless answer stops here.
                    if out.count().saturating_add(chunk.len() as u64) > size {
                        return Err(RegistryError::new(
                            "GET",
                            url.to_string(),
                            format!("the registry served more than {d}'s {size} bytes"),
                        ));
                    }
                    if let Err(e) = out.write_all(&chunk) {
                        return Ok(Err(e));
                    }
                }
                let (tmp, got, n) = out.finish_digest();
                if got != *d || n != size {
                    // A damaged transfer: worth another try.
                    return Err(RegistryError::new(
                        "GET",
                        url.to_string(),
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
    crate::digest::file::hash_file(path)
}

/// Resolve registry base `image` for each of `platforms` (in order).
pub async fn resolve(
    image: &ImageRef,
    platforms: &[Platform],
    opts: &RemoteOptions,
    cache_root: Option<&Path>,
) -> Result<ResolvedBase, BaseError> {
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
    let (top, from_cache) = top_document(&reader, store.as_ref(), opts.pull).await?;
    let digest = top.digest.clone();
    let want = Want::Platforms(platforms.to_vec());
    let mut graph_reader = GraphReader::new(&image.spelled, top, want)?;
    loop {
        let wanted = graph_reader.wanted()?;
        if wanted.is_empty() {
            break;
        }
        // Each needed document once, all at once.
        let fetched = futures_util::future::join_all(wanted.iter().map(|n| reader.read(n))).await;
        for (n, bytes) in wanted.iter().zip(fetched) {
            graph_reader.give(n, bytes?)?;
        }
    }
    let repo = RepoAt::of(image);
    let mut graph = graph_reader.finish(&mut |_| Ok(vec![BlobAt::Registry(repo.clone())]))?;
    if let Some(dir) = &opts.materialize_into {
        materialize(&reader, &mut graph, dir).await?;
    }
    Ok(ResolvedBase {
        graph,
        remote: Some(RemoteBase {
            image: image.clone(),
            digest,
            from_cache,
        }),
    })
}

/// The top document: pinned by digest, cached from an earlier resolution of its tag (unless
/// `pull`), or asked for now. Also whether the tag's answer came from the cache.
async fn top_document(
    reader: &Reader<'_>,
    store: Option<&Store>,
    pull: bool,
) -> Result<(Doc, bool), BaseError> {
    let image = reader.image;
    let doc = |bytes: Vec<u8>, digest: Digest| Doc {
        media_type: kind_of(&bytes).unwrap_or_default(),
        digest,
        bytes,
    };
    if let Some(d) = &image.digest {
        let (bytes, d) = reader.manifest(d.as_str()).await?;
        return Ok((doc(bytes, d), false));
    }
    let tag = image.tag.as_deref().unwrap_or("latest");
    let cached = match (store, pull) {
        (Some(s), false) => s.tag(image, tag).and_then(|d| s.blob(&d).map(|b| (b, d))),
        _ => None,
    };
    if let Some((bytes, d)) = cached {
        return Ok((doc(bytes, d), true));
    }
    let (bytes, d) = reader.manifest(tag).await?;
    if let Some(s) = store {
        s.put_tag(image, tag, &d);
    }
    Ok((doc(bytes, d), false))
}

/// Download the layers of `graph` into `dir` (digest-checked), and place each there first.
async fn materialize(
    reader: &Reader<'_>,
    graph: &mut ImageGraph,
    dir: &Path,
) -> Result<(), BaseError> {
    let layers: Vec<(Digest, u64)> = graph
        .images
        .iter()
        .flat_map(|i| i.manifest.layers())
        .filter_map(|l| Digest::from_oci(l.digest()).ok().map(|d| (d, l.size())))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let files: Vec<Result<(Digest, PathBuf), BaseError>> = futures_util::stream::iter(
        layers
            .into_iter()
            .map(|(d, size)| async move { reader.download(&d, size, dir).await.map(|p| (d, p)) }),
    )
    .buffer_unordered(8)
    .collect()
    .await;
    for f in files {
        let (d, path) = f?;
        if let Some(b) = graph.blobs.iter_mut().find(|b| b.digest == d) {
            b.at.insert(0, BlobAt::File(path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

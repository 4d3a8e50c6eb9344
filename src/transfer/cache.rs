//! Writing registry layer cache documents into the cache repository: first every blob they
//! name, each digest once (uploads of one blob at the same time into one repository race in
//! distribution's storage), skipped when there, else mounted from the repository it was pushed
//! to, else uploaded from its file or streamed; and the empty config once; then each document
//! under its tag, unless the tag already names exactly it.

use super::{put_blob, Registry, TransferError};
use crate::digest::Digest;
use crate::oci::referrers::EMPTY_JSON;
use crate::oci::BlobRef;
use crate::spec::MEDIA_TYPE_MANIFEST;
use std::collections::BTreeMap;

/// One cache document to store.
#[derive(Debug, Clone)]
pub struct CacheDoc {
    /// Its tag.
    pub tag: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The layer blobs it names, with where each can be had.
    pub blobs: Vec<BlobRef>,
}

/// Store `docs` in `repo`. Per document, in order: `Ok(false)` when its tag already named it
/// (nothing written), `Ok(true)` when written, or why not.
pub async fn store_cache<R: Registry>(
    registry: &R,
    repo: &str,
    docs: &[CacheDoc],
) -> Vec<Result<bool, TransferError>> {
    let current = docs.iter().map(|d| async move {
        let now = registry.tag_digest(repo, &d.tag).await.ok().flatten();
        now == Some(Digest::of(&d.manifest))
    });
    let current = futures_util::future::join_all(current).await;
    let mut blobs: BTreeMap<&Digest, &BlobRef> = BTreeMap::new();
    for (d, _) in docs.iter().zip(&current).filter(|(_, c)| !**c) {
        for b in &d.blobs {
            blobs.entry(&b.digest).or_insert(b);
        }
    }
    let each = blobs.values().map(|b| async move {
        let r = put_blob(registry, repo, b, None, false).await;
        (b.digest.clone(), r.map(|_| ()))
    });
    let failed: BTreeMap<Digest, _> = futures_util::future::join_all(each)
        .await
        .into_iter()
        .filter_map(|(d, r)| r.err().map(|e| (d, e)))
        .collect();
    let empty = (Digest::of(EMPTY_JSON), EMPTY_JSON.to_vec());
    let config = match blobs.is_empty() {
        true => Ok(()),
        false => super::attach::put_blobs(registry, repo, [&empty]).await,
    };
    let puts = docs.iter().zip(&current).map(|(d, &current)| {
        let (failed, config) = (&failed, &config);
        async move {
            if current {
                return Ok(false);
            }
            if let Some((digest, e)) = d.blobs.iter().find_map(|b| failed.get_key_value(&b.digest))
            {
                return Err(TransferError::Blob {
                    digest: digest.clone(),
                    source: e.clone(),
                });
            }
            if let Err(e) = config {
                return Err(TransferError::Attach {
                    what: "the empty config".into(),
                    why: e.to_string(),
                });
            }
            registry
                .put_manifest(repo, &d.tag, MEDIA_TYPE_MANIFEST, &d.manifest)
                .await
                .map_err(TransferError::Manifest)?;
            Ok(true)
        }
    });
    futures_util::future::join_all(puts).await
}

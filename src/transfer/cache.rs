//! Writing a registry layer cache document: its layer blobs into the cache repository (each
//! skipped when there, else mounted from the repository it was pushed to, else uploaded from
//! its file or streamed), the empty config, then the document under its tag, unless the tag
//! already names exactly it.

use super::{put_blob, Registry, TransferError};
use crate::digest::Digest;
use crate::oci::referrers::EMPTY_JSON;
use crate::oci::BlobRef;
use crate::spec::MEDIA_TYPE_MANIFEST;

/// Store the cache document `manifest` naming `blobs` as `repo:tag`. `Ok(false)`: the tag
/// already named it (nothing written).
pub async fn store_cache<R: Registry>(
    registry: &R,
    repo: &str,
    tag: &str,
    manifest: &[u8],
    blobs: &[BlobRef],
) -> Result<bool, TransferError> {
    let digest = Digest::of(manifest);
    let now = registry.tag_digest(repo, tag).await.ok().flatten();
    if now.as_ref() == Some(&digest) {
        return Ok(false);
    }
    let each = blobs.iter().map(|b| async move {
        put_blob(registry, repo, b, None, false)
            .await
            .map_err(|source| TransferError::Blob {
                digest: b.digest.clone(),
                source,
            })
    });
    futures_util::future::try_join_all(each).await?;
    let empty = (Digest::of(EMPTY_JSON), EMPTY_JSON.to_vec());
    super::attach::put_blobs(registry, repo, [&empty]).await?;
    registry
        .put_manifest(repo, tag, MEDIA_TYPE_MANIFEST, manifest)
        .await
        .map_err(TransferError::Manifest)?;
    Ok(true)
}

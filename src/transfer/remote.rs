//! The real destination: [`Registry`] over the registry client, with the clients of other
//! registries for streaming a base's layers from where they are.

use super::{Registry, Source};
use crate::digest::Digest;
use crate::oci::BlobRef;
use crate::registry::client::{BlobSource, Mount, RegistryClient};
use crate::registry::clients::Clients;
use crate::registry::error::RegistryError;
use crate::registry::manifests::{FetchedManifest, Stored};
use url::Url;

/// A registry reached through `client`; base layers in other registries through `sources`.
pub struct Remote<'a> {
    client: &'a RegistryClient,
    sources: &'a Clients,
    host: String,
}

impl<'a> Remote<'a> {
    /// The destination behind `client`.
    pub fn new(client: &'a RegistryClient, sources: &'a Clients) -> Self {
        let base = client.base();
        let host = base
            .host_str()
            .map_or(String::new(), |h| match base.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            });
        Remote {
            client,
            sources,
            host,
        }
    }
}

impl Registry for Remote<'_> {
    fn host(&self) -> &str {
        &self.host
    }

    async fn manifest_exists(&self, repo: &str, reference: &str) -> Result<bool, RegistryError> {
        self.client.manifest_exists(repo, reference).await
    }

    async fn tag_digest(&self, repo: &str, tag: &str) -> Result<Option<Digest>, RegistryError> {
        self.client.manifest_digest(repo, tag).await
    }

    async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, RegistryError> {
        self.client.blob_exists(repo, digest, size).await
    }

    async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount, RegistryError> {
        self.client.mount_blob(repo, digest, from).await
    }

    async fn upload(
        &self,
        repo: &str,
        blob: &BlobRef,
        source: Source<'_>,
        session: Option<Url>,
    ) -> Result<(), RegistryError> {
        let (digest, size) = (&blob.digest, blob.size);
        match source {
            Source::File(path) => {
                self.client
                    .upload_blob(repo, digest, BlobSource::File(path), size, session)
                    .await
            }
            Source::Bytes(bytes) => {
                self.client
                    .upload_blob(repo, digest, BlobSource::Bytes(bytes), size, session)
                    .await
            }
            Source::Registry(at) => {
                let other;
                let from: &RegistryClient = if at.host == self.host {
                    self.client
                } else {
                    other =
                        self.sources.get(&at.host).await.map_err(|message| {
                            RegistryError::new("GET", at.host.clone(), message)
                        })?;
                    &other
                };
                let source = BlobSource::Registry {
                    client: from,
                    repository: &at.repository,
                };
                self.client
                    .upload_blob(repo, digest, source, size, session)
                    .await
            }
        }
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Stored, RegistryError> {
        self.client
            .put_manifest(repo, reference, media_type, bytes)
            .await
    }

    async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        self.client.referrers(repo, digest).await
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        self.client.get_manifest(repo, reference).await
    }
}

//! An in-memory registry for unit tests: it keeps which blobs and manifests each repository
//! has and logs every write in order; mounts link, open a session or fail as told; uploads of
//! chosen digests are refused.

use super::{Registry, Source};
use crate::digest::Digest;
use crate::oci::BlobRef;
use crate::registry::client::Mount;
use crate::registry::error::RegistryError;
use crate::registry::manifests::{FetchedManifest, Stored};
use std::collections::HashSet;
use std::sync::Mutex;
use url::Url;

/// How the fake answers a mount.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// Links the blob if the source repository has it.
    Link,
    /// Opens an upload session instead (as ECR without blob mounting).
    Session,
    /// Answers with an error.
    Fail,
}

/// What the registry holds, and its log.
#[derive(Default)]
pub struct State {
    /// (repository, digest) of each blob.
    pub blobs: HashSet<(String, Digest)>,
    /// (repository, reference) of each manifest.
    pub manifests: HashSet<(String, String)>,
    /// Every write, in order.
    pub log: Vec<String>,
    /// What each (repository, tag) names.
    pub tags: std::collections::HashMap<(String, String), Digest>,
    /// Tags cannot be moved once written (ECR's IMMUTABLE), not even to the same image.
    pub immutable: bool,
    /// Digests whose uploads are refused.
    pub failing: HashSet<Digest>,
    /// The bytes of each (repository, reference) manifest.
    pub docs: std::collections::HashMap<(String, String), Vec<u8>>,
    /// Answers a manifest with a subject with `OCI-Subject` (has the referrers API).
    pub referrers_api: bool,
}

/// A registry in memory: records every write in order.
pub struct Fake {
    /// `host[:port]`.
    pub host: String,
    /// How mounts are answered.
    pub mount: MountMode,
    /// Contents and log.
    pub state: Mutex<State>,
}

impl Fake {
    /// An empty registry answering mounts as `mount` says.
    pub fn new(mount: MountMode) -> Self {
        Fake {
            host: "registry.test".into(),
            mount,
            state: Mutex::new(State::default()),
        }
    }

    /// The writes so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The error the fake answers with.
    pub fn refused(what: &str) -> RegistryError {
        let mut e = RegistryError::new("PUT", "https://registry.test/v2/", what.to_string());
        e.status = Some(400);
        e
    }
}

impl Registry for Fake {
    fn host(&self) -> &str {
        &self.host
    }

    async fn manifest_exists(&self, repo: &str, reference: &str) -> Result<bool, RegistryError> {
        let s = self.state.lock().unwrap();
        Ok(s.manifests.contains(&(repo.into(), reference.into())))
    }

    async fn tag_digest(&self, repo: &str, tag: &str) -> Result<Option<Digest>, RegistryError> {
        let s = self.state.lock().unwrap();
        Ok(s.tags.get(&(repo.to_string(), tag.to_string())).cloned())
    }

    async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        _size: u64,
    ) -> Result<bool, RegistryError> {
        let there = self
            .state
            .lock()
            .unwrap()
            .blobs
            .contains(&(repo.into(), digest.clone()));
        // As a real registry's answer does, let other requests in flight go on meanwhile.
        tokio::task::yield_now().await;
        Ok(there)
    }

    async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount, RegistryError> {
        match self.mount {
            MountMode::Fail => Err(Fake::refused("mount refused")),
            MountMode::Session => Ok(Mount::Upload(
                Url::parse("https://registry.test/session").unwrap(),
            )),
            MountMode::Link => {
                let mut s = self.state.lock().unwrap();
                if !s.blobs.contains(&(from.into(), digest.clone())) {
                    return Err(Fake::refused("blob unknown"));
                }
                s.blobs.insert((repo.into(), digest.clone()));
                s.log
                    .push(format!("mount {repo} {} from {from}", &digest.hex()[..6]));
                Ok(Mount::Mounted)
            }
        }
    }

    async fn upload(
        &self,
        repo: &str,
        blob: &BlobRef,
        source: Source<'_>,
        session: Option<Url>,
    ) -> Result<(), RegistryError> {
        let mut s = self.state.lock().unwrap();
        if s.failing.contains(&blob.digest) {
            return Err(Fake::refused("upload refused"));
        }
        let how = match source {
            Source::File(_) => "file".to_string(),
            Source::Bytes(_) => "bytes".to_string(),
            Source::Registry(at) => format!("stream from {}/{}", at.host, at.repository),
        };
        let into = if session.is_some() {
            " into session"
        } else {
            ""
        };
        s.log.push(format!(
            "upload {repo} {} ({how}){into}",
            &blob.digest.hex()[..6]
        ));
        s.blobs.insert((repo.into(), blob.digest.clone()));
        Ok(())
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        _media_type: &str,
        bytes: &[u8],
    ) -> Result<Stored, RegistryError> {
        let short = reference
            .strip_prefix("sha256:")
            .map_or(reference, |h| &h[..6]);
        let mut s = self.state.lock().unwrap();
        if !reference.starts_with("sha256:") {
            let tag = (repo.to_string(), reference.to_string());
            if s.immutable && s.tags.contains_key(&tag) {
                let mut e = Fake::refused(&format!(
                    "The image tag '{reference}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
                ));
                e.code = Some("TAG_INVALID".into());
                return Err(e);
            }
            s.tags.insert(tag, Digest::of(bytes));
        }
        s.log.push(format!("manifest {repo} {short}"));
        s.manifests.insert((repo.into(), reference.into()));
        s.docs
            .insert((repo.into(), reference.into()), bytes.to_vec());
        s.docs
            .insert((repo.into(), Digest::of(bytes).to_string()), bytes.to_vec());
        let has_subject = serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("subject").is_some());
        Ok(Stored {
            referrers_api: s.referrers_api && has_subject,
        })
    }

    async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let s = self.state.lock().unwrap();
        if !s.referrers_api {
            return Ok(None);
        }
        let listed: Vec<serde_json::Value> = s
            .docs
            .iter()
            .filter(|((r, reference), bytes)| {
                r == repo
                    && reference.starts_with("sha256:")
                    && serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| {
                        v.pointer("/subject/digest").and_then(|d| d.as_str())
                            == Some(digest.as_str())
                    })
            })
            .map(|((_, reference), bytes)| {
                serde_json::json!({"digest": reference, "size": bytes.len(), "mediaType": crate::spec::MEDIA_TYPE_MANIFEST})
            })
            .collect();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": listed});
        Ok(Some(index.to_string().into_bytes()))
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        let s = self.state.lock().unwrap();
        Ok(s.docs.get(&(repo.into(), reference.into())).map(|b| {
            let media_type = serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| Some(v.get("mediaType")?.as_str()?.to_string()))
                .unwrap_or_default();
            FetchedManifest {
                bytes: b.clone(),
                media_type,
                digest: Digest::of(b),
            }
        }))
    }
}

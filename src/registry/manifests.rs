//! Manifest operations of [`RegistryClient`]: existence checks, reads (checked against a
//! digest reference, with the media type taken from the answer) and PUTs (paced under the
//! registry's manifest quota when one was set).

// See `client`: RegistryError travels in results by value on purpose.
#![allow(clippy::result_large_err)]

use super::body::{error_from, invalid, read_limited, MAX_DOCUMENT};
use super::client::{pull_scope, push_scope, Endpoint, RegistryClient, DOCUMENT_TIMEOUT};
use super::error::{clip, strip_query, RegistryError};
use crate::digest::Digest;
use crate::spec::MEDIA_TYPE_INDEX;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use std::time::Instant;

/// A manifest (or index) read from a registry.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Its bytes, exactly as served.
    pub bytes: Vec<u8>,
    /// Its media type (the `Content-Type`, else the document's `mediaType`).
    pub media_type: String,
    /// The digest of its bytes (checked against the reference when that is a digest).
    pub digest: Digest,
}

/// What a registry said when it stored a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stored {
    /// It answered with `OCI-Subject`: it indexes the manifest's `subject` for the referrers
    /// API, so no referrers tag is needed.
    pub referrers_api: bool,
}

/// Accept header for manifest reads.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl RegistryClient {
    /// `HEAD /v2/<repo>/manifests/<reference>`: whether the repository has it.
    pub async fn manifest_exists(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<bool, RegistryError> {
        let repo = self.repository("HEAD", repo)?;
        let reference = self.reference("HEAD", reference)?;
        self.exists(&repo, Endpoint::Manifest(&reference), Some(MANIFEST_ACCEPT))
            .await
    }

    /// What `reference` (a tag) names in `repo`: `HEAD` of the manifest, its
    /// `Docker-Content-Digest`; `None` if there is no such manifest. A registry that answers
    /// without the header (or with one that is not a sha256 digest) is asked with a `GET`, and
    /// the digest is computed from the bytes.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let name = self.repository("HEAD", repo)?;
        let tag = self.reference("HEAD", reference)?;
        let Some(headers) = self
            .head(&name, Endpoint::Manifest(&tag), Some(MANIFEST_ACCEPT))
            .await?
        else {
            return Ok(None);
        };
        let digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        match digest {
            Some(d) => Ok(Some(d)),
            None => Ok(self.get_manifest(repo, reference).await?.map(|m| m.digest)),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>` (pull access only): `None` if the registry has
    /// no such manifest. The bytes are checked against `reference` when it is a digest.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        let repo = self.repository("GET", repo)?;
        let reference = self.reference("GET", reference)?;
        let url = self.url(&repo, Endpoint::Manifest(&reference));
        let scope = pull_scope(&repo);
        self.retry(|| async {
            let resp = self
                .send(&Method::GET, &url, &scope, &|| {
                    Ok(self
                        .http
                        .get(url.clone())
                        .timeout(DOCUMENT_TIMEOUT)
                        .header(ACCEPT, MANIFEST_ACCEPT))
                })
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(error_from(&Method::GET, &url, resp).await);
            }
            let header_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let bytes = read_limited(&url, resp, MAX_DOCUMENT).await?;
            let digest = Digest::of(&bytes);
            if reference.digest().is_some_and(|d| *d != digest) {
                return Err(invalid(
                    &url,
                    format!("the registry served a manifest whose digest is {digest}"),
                ));
            }
            let media_type = media_type_of(header_type, &bytes);
            Ok(Some(FetchedManifest {
                bytes,
                media_type,
                digest,
            }))
        })
        .await
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with `bytes` of `media_type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Stored, RegistryError> {
        let repo = self.repository("PUT", repo)?;
        let reference = self.reference("PUT", reference)?;
        let url = self.url(&repo, Endpoint::Manifest(&reference));
        let scope = push_scope(&repo);
        self.retry(|| async {
            if let Some(gap) = self.manifest_interval {
                let mut next = self.next_manifest.lock().await;
                tokio::time::sleep_until((*next).into()).await;
                let now = Instant::now();
                *next = now.checked_add(gap).unwrap_or(now);
            }
            let resp = self
                .send(&Method::PUT, &url, &scope, &|| {
                    Ok(self
                        .http
                        .put(url.clone())
                        .timeout(DOCUMENT_TIMEOUT)
                        .header(CONTENT_TYPE, media_type)
                        .body(bytes.to_vec()))
                })
                .await?;
            // 201 normally; ECR may answer without a Location header, which we never need.
            // A registry that says it stored other bytes than ours has not stored our image.
            if resp.status().is_success() {
                let stored = Stored {
                    referrers_api: resp.headers().contains_key("oci-subject"),
                };
                let ours = Digest::of(bytes);
                match resp.headers().get("docker-content-digest").map(|v| v.to_str()) {
                    Some(Ok(theirs)) if theirs.trim() != ours.as_str() => {
                        Err(RegistryError::new(
                            "PUT",
                            strip_query(&url),
                            format!(
                                "the registry stored the manifest as {:?}, not as {ours}: it changed the document; check the registry",
                                clip(theirs, 100)
                            ),
                        ))
                    }
                    _ => Ok(stored),
                }
            } else {
                Err(error_from(&Method::PUT, &url, resp).await)
            }
        })
        .await
    }
}

impl RegistryClient {
    /// `GET /v2/<repo>/referrers/<digest>`: the referrers index, or `None` when the registry
    /// has no referrers API (404; distribution 2.8 answers so for the unknown route). A
    /// registry with the API answers an index, empty when nothing refers to `digest`.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let repo = self.repository("GET", repo)?;
        let url = self.url(&repo, Endpoint::Referrers(digest));
        let scope = pull_scope(&repo);
        self.retry(|| async {
            let resp = self
                .send(&Method::GET, &url, &scope, &|| {
                    Ok(self
                        .http
                        .get(url.clone())
                        .timeout(DOCUMENT_TIMEOUT)
                        .header(ACCEPT, MEDIA_TYPE_INDEX))
                })
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(error_from(&Method::GET, &url, resp).await);
            }
            Ok(Some(read_limited(&url, resp, MAX_DOCUMENT).await?))
        })
        .await
    }
}

/// A served manifest's media type: the `Content-Type` (`header`, parameters removed) when it is
/// a specific `application/vnd.` type, else the document's own `mediaType`, else empty.
fn media_type_of(header: Option<String>, bytes: &[u8]) -> String {
    header
        .filter(|t| t.starts_with("application/vnd."))
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()?
                .get("mediaType")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_else_document() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        let docker = "application/vnd.docker.distribution.manifest.v2+json";
        assert_eq!(media_type_of(Some(docker.into()), index), docker);
        assert_eq!(
            media_type_of(Some("application/json".into()), index),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(
            media_type_of(None, index),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(media_type_of(None, br#"{"schemaVersion":2}"#), "");
        assert_eq!(media_type_of(Some("text/plain".into()), b"not json"), "");
    }
}

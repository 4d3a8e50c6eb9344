//! Blob operations of [`RegistryClient`]: existence checks, cross-repository mounts,
//! one-request streamed uploads (from a file or straight from another registry), and reads;
//! with the upload-session URL helpers (`Location` resolution, completion URL).
//!
//! Invariant: a blob body is streamed, never held in memory (only small documents such as
//! configs are read whole, bounded by [`MAX_DOCUMENT`]); a retried upload starts a fresh
//! upload session.

// See `client`: RegistryError travels in results by value on purpose.
#![allow(clippy::result_large_err)]

use super::body::{error_from, invalid, read_limited, MAX_DOCUMENT};
use super::client::{pull_scope, push_scope, Endpoint, RegistryClient};
use super::error::{strip_query, RegistryError};
use super::names::Repository;
use crate::digest::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use std::path::Path;
use std::sync::Mutex;
use url::Url;

/// What a mount attempt gave.
#[derive(Debug)]
pub enum Mount {
    /// The registry linked the blob (201).
    Mounted,
    /// It did not (202): upload into this session instead.
    Upload(Url),
}

/// Where the bytes of a blob to upload come from.
#[derive(Clone, Copy)]
pub enum BlobSource<'a> {
    /// A file (a layout's or the cache's blob).
    File(&'a Path),
    /// Bytes in memory (a small document made for this push: an SBOM, a signature payload).
    Bytes(&'a [u8]),
    /// Another repository, possibly in another registry: read by digest and streamed straight
    /// into the upload, never stored.
    Registry {
        /// The registry holding it.
        client: &'a RegistryClient,
        /// The repository there.
        repository: &'a str,
    },
}

impl RegistryClient {
    /// `HEAD /v2/<repo>/blobs/<digest>`: whether the repository has the blob, of `size` bytes.
    /// An answer giving another `Content-Length` counts as absent (the blob is sent again,
    /// and the registry checks it against its digest), not as a blob to build on.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, RegistryError> {
        let repo = self.repository("HEAD", repo)?;
        let Some(headers) = self.head(&repo, Endpoint::Blob(digest), None).await? else {
            return Ok(false);
        };
        let length = headers
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        Ok(length.is_none_or(|n| n == size))
    }

    /// Try to mount `digest` into `repo` from `from` (same registry).
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, RegistryError> {
        let repo = self.repository("POST", repo)?;
        let from = self.repository("POST", from)?;
        let mut url = self.url(&repo, Endpoint::Uploads);
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from.as_str());
        let scope = format!("{} {}", push_scope(&repo), pull_scope(&from));
        self.retry(|| async {
            let resp = self
                .send(&Method::POST, &url, &scope, &|| {
                    Ok(self.http.post(url.clone()).header(CONTENT_LENGTH, 0))
                })
                .await?;
            match resp.status() {
                StatusCode::CREATED => Ok(Mount::Mounted),
                StatusCode::ACCEPTED => Ok(Mount::Upload(location(&url, &resp)?)),
                _ => Err(error_from(&Method::POST, &url, resp).await),
            }
        })
        .await
    }

    /// Upload blob `digest` (`size` bytes) to `repo` from `source` in one streamed request;
    /// `session` is an upload already opened (by a mount that answered 202). Each retry opens
    /// a fresh session (and, for a registry source, a fresh read).
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        source: BlobSource<'_>,
        size: u64,
        session: Option<Url>,
    ) -> Result<(), RegistryError> {
        let repo = self.repository("POST", repo)?;
        let start = self.url(&repo, Endpoint::Uploads);
        let scope = push_scope(&repo);
        let session = Mutex::new(session);
        self.retry(|| async {
            // A registry source is opened before the session, so a missing source blob costs
            // no upload session.
            let remote = match source {
                BlobSource::Registry { client, repository } => {
                    Some(client.open_blob(repository, digest).await?)
                }
                BlobSource::File(_) | BlobSource::Bytes(_) => None,
            };
            let remote = Mutex::new(remote);
            let given = session.lock().ok().and_then(|mut s| s.take());
            let loc = match given {
                Some(l) => l,
                None => self.start_upload(&start, &scope).await?,
            };
            let put = completion_url(&loc, digest);
            let resp = self
                .send(&Method::PUT, &put, &scope, &|| {
                    let body = upload_body(source, size, &put, &remote)?;
                    Ok(self
                        .http
                        .put(put.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(body))
                })
                .await?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(error_from(&Method::PUT, &put, resp).await)
            }
        })
        .await
    }

    /// `POST` to `start` (`/v2/<repo>/blobs/uploads/`): the URL of a new upload session.
    async fn start_upload(&self, start: &Url, scope: &str) -> Result<Url, RegistryError> {
        let resp = self
            .send(&Method::POST, start, scope, &|| {
                Ok(self.http.post(start.clone()).header(CONTENT_LENGTH, 0))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::CREATED {
            return Err(error_from(&Method::POST, start, resp).await);
        }
        location(start, &resp)
    }

    /// `GET /v2/<repo>/blobs/<digest>` of a small blob (a config), checked against its digest.
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let name = self.repository("GET", repo)?;
        let url = self.url(&name, Endpoint::Blob(digest));
        self.retry(|| async {
            let resp = self.open_blob(repo, digest).await?;
            let bytes = read_limited(&url, resp, MAX_DOCUMENT).await?;
            if Digest::of(&bytes) != *digest {
                return Err(invalid(
                    &url,
                    "the registry served a blob with another digest".into(),
                ));
            }
            Ok(bytes)
        })
        .await
    }

    /// Start reading blob `digest` of `repo` (pull access only; redirects to storage followed,
    /// without credentials). A missing blob is a `BLOB_UNKNOWN` error.
    pub async fn open_blob(&self, repo: &str, digest: &Digest) -> Result<Response, RegistryError> {
        let repo = self.repository("GET", repo)?;
        let url = self.url(&repo, Endpoint::Blob(digest));
        let scope = pull_scope(&repo);
        let resp = self
            .send(&Method::GET, &url, &scope, &|| {
                Ok(self.http.get(url.clone()))
            })
            .await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from(&Method::GET, &url, resp).await)
        }
    }

    /// The URL of blob `digest` in `repo` (for messages), if `repo` is a valid name.
    pub fn blob_url(&self, repo: &str, digest: &Digest) -> Option<Url> {
        let repo = Repository::parse(repo).ok()?;
        Some(self.url(&repo, Endpoint::Blob(digest)))
    }
}

/// The body of the upload `PUT` to `put`: the file streamed from disk, or the source
/// registry's response (`remote`) streamed through, cut off with an error past `size` bytes.
fn upload_body(
    source: BlobSource<'_>,
    size: u64,
    put: &Url,
    remote: &Mutex<Option<Response>>,
) -> Result<reqwest::Body, RegistryError> {
    Ok(match source {
        BlobSource::File(path) => {
            let file = crate::digest::file::open_regular(path).map_err(|e| {
                RegistryError::new(
                    "PUT",
                    strip_query(put),
                    format!("reading {}: {e}", path.display()),
                )
            })?;
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                tokio::fs::File::from_std(file),
                256 * 1024,
            ))
        }
        BlobSource::Bytes(bytes) => reqwest::Body::from(bytes.to_vec()),
        BlobSource::Registry { .. } => {
            // A stream can be sent once: a second call (after an auth
            // challenge) fails retryably, and the retry reads it again.
            let resp = remote
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .ok_or_else(|| {
                    RegistryError::new(
                        "PUT",
                        strip_query(put),
                        "the upload was challenged after its source stream was sent",
                    )
                })?;
            let mut seen: u64 = 0;
            let capped = futures_util::StreamExt::map(resp.bytes_stream(), move |chunk| {
                let chunk = chunk.map_err(|e| Box::new(e) as BoxError)?;
                seen = seen.saturating_add(chunk.len() as u64);
                if seen > size {
                    return Err(BoxError::from(format!(
                        "the source registry served more than the blob's {size} bytes"
                    )));
                }
                Ok(chunk)
            });
            reqwest::Body::wrap_stream(capped)
        }
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `Location` of an upload session, resolved against the request URL (absolute or
/// relative; its query string, which may carry signed state, is kept). Where it may point,
/// and whether credentials go there, is decided when it is used (`RegistryClient::send`).
fn location(request: &Url, resp: &Response) -> Result<Url, RegistryError> {
    let fail = |message: String| RegistryError {
        method: "POST".into(),
        url: strip_query(request),
        status: Some(resp.status().as_u16()),
        code: None,
        message,
        retry_after: None,
        hint: None,
        local: false,
    };
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("upload session without a Location header".into()))?;
    resolve_location(request, loc).map_err(|e| fail(format!("invalid Location header: {e}")))
}

/// Resolve an upload `Location` (absolute, or relative to the request) keeping its query.
fn resolve_location(request: &Url, loc: &str) -> Result<Url, url::ParseError> {
    request.join(loc)
}

/// The URL that completes an upload: the session URL plus `digest=` (after any query it has).
fn completion_url(session: &Url, digest: &Digest) -> Url {
    let mut put = session.clone();
    put.query_pairs_mut().append_pair("digest", digest.as_str());
    put
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_locations_absolute_relative_and_signed() {
        let req = Url::parse("http://127.0.0.1:5000/v2/team/app/blobs/uploads/").unwrap();
        let d = Digest::of(b"x");
        let rel =
            resolve_location(&req, "/v2/team/app/blobs/uploads/abc?_state=s1%2Bgn&x=1").unwrap();
        assert_eq!(
            rel.as_str(),
            "http://127.0.0.1:5000/v2/team/app/blobs/uploads/abc?_state=s1%2Bgn&x=1"
        );
        let put = completion_url(&rel, &d);
        assert_eq!(
            put.as_str(),
            format!("http://127.0.0.1:5000/v2/team/app/blobs/uploads/abc?_state=s1%2Bgn&x=1&digest=sha256%3A{}", d.hex())
        );
        let abs = resolve_location(&req, "https://uploads.example/upload/xyz?sig=abc").unwrap();
        assert_eq!(abs.host_str(), Some("uploads.example"));
        assert!(completion_url(&abs, &d)
            .as_str()
            .starts_with("https://uploads.example/upload/xyz?sig=abc&digest="));
        let bare = resolve_location(&req, "abc").unwrap();
        assert_eq!(
            completion_url(&bare, &d).as_str(),
            format!(
                "http://127.0.0.1:5000/v2/team/app/blobs/uploads/abc?digest=sha256%3A{}",
                d.hex()
            )
        );
    }
}

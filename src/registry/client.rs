//! OCI Distribution client over reqwest: the client type and its construction, and the core
//! every request goes through: auth challenges answered (Basic, Bearer token per scope, cached,
//! refreshed on 401), credentials renewed before they expire, and retries with exponential
//! backoff and jitter. The operations live beside it as further `impl RegistryClient` blocks:
//! blobs (existence, cross-repository mounts, one-request streamed uploads, reads) in
//! [`super::blobs`], manifests (existence, reads, PUTs) in [`super::manifests`]; their public
//! types are re-exported here.
//!
//! Invariants: a blob body is streamed from its file, never held in memory; a retried upload
//! starts a fresh upload session; credentials go only into `Authorization` headers and token
//! requests, never into errors or logs. Knows nothing of layouts or AWS.

// RegistryError is ~150 bytes and returned once per failed request: boxing it would buy
// nothing measurable next to a network round trip.
#![allow(clippy::result_large_err)]

pub use super::blobs::{BlobSource, Mount};
pub use super::manifests::FetchedManifest;

use super::auth::{parse_challenge, Challenge, Credential, CredentialSource, ExpiringCredential};
use super::body::{error_from, invalid, read_capped, too_slow, Ending, MAX_TOKEN_ANSWER};
pub use super::body::{parse_retry_after, MAX_DOCUMENT, MAX_ERROR_BODY, MAX_RETRY_AFTER};
use super::error::{strip_query, RegistryError};
use super::names::{Reference, Repository};
use super::origin::{hop, redirect_policy, Hop};
use crate::reference::Scheme;
use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub max_tries: u32,
    /// Delay before the second try; doubles each time.
    pub base_delay: Duration,
    /// Longest delay between tries (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// Longest a token is used, whatever `expires_in` says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Fetches fresh credentials (for registries whose passwords expire, such as ECR's), with the
/// time they stop working if known.
pub type Refresh = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<ExpiringCredential, RegistryError>> + Send>>
        + Send
        + Sync,
>;

/// `now + d`, or (past what the clock can hold) `now` plus a day.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// When to fetch new credentials: at half of their remaining life (at most a day), never
/// sooner than in 5 minutes (so an already expired answer, as emulators give, cannot cause a
/// loop).
fn refresh_at(expires: Option<SystemTime>) -> Option<Instant> {
    let left = expires?
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(after(
        (left / 2)
            .min(MAX_TOKEN_LIFETIME)
            .max(Duration::from_secs(300)),
    ))
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, (String, Instant)>,
}

/// What a request is about in a repository: the piece of the URL after `/v2/<repo>/`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Endpoint<'a> {
    /// `manifests/<reference>`.
    Manifest(&'a Reference),
    /// `blobs/<digest>`.
    Blob(&'a crate::digest::Digest),
    /// `blobs/uploads/`.
    Uploads,
    /// `referrers/<digest>`.
    Referrers(&'a crate::digest::Digest),
}

/// Longest a request for a small document (a manifest, a tag list, a `HEAD`, a token) may
/// take, answer included; blobs have only the read timeout (a big layer takes its time).
pub(super) const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for one registry.
pub struct RegistryClient {
    pub(super) http: reqwest::Client,
    base: Url,
    cred: Mutex<CredentialSource>,
    refresh: Option<Refresh>,
    /// When the credentials should be renewed ahead of expiry.
    renew_at: Mutex<Option<Instant>>,
    state: Mutex<AuthState>,
    retry: RetryPolicy,
    jitter: AtomicU64,
    /// Least time between two manifest PUTs (a registry quota, e.g. ECR's PutImage 10/s).
    pub(super) manifest_interval: Option<Duration>,
    pub(super) next_manifest: tokio::sync::Mutex<Instant>,
}

/// Fewest manifest PUTs per second a client can be paced to (one every 1000 s).
pub const MIN_MANIFEST_RATE: f64 = 0.001;
/// Most manifest PUTs per second a pace can name.
pub const MAX_MANIFEST_RATE: f64 = 10_000.0;

/// The scheme to reach `host` over: `explicit` when written, else http for `insecure` or a
/// loopback host, else https.
pub fn scheme_for(host: &str, explicit: Option<Scheme>, insecure: bool) -> &'static str {
    let bare = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    match explicit {
        Some(Scheme::Https) => "https",
        Some(Scheme::Http) => "http",
        None if insecure || is_loopback(bare) => "http",
        None => "https",
    }
}

/// Whether `host` (without port) is a loopback address, where plain HTTP is allowed.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl RegistryClient {
    /// A client for `host[:port]`: over `scheme` when one was written (always honoured), else
    /// plain HTTP when `insecure` or when the host is loopback, else HTTPS.
    pub fn new(
        host: &str,
        scheme: Option<Scheme>,
        insecure: bool,
        cred: CredentialSource,
        retry: RetryPolicy,
    ) -> Result<Self, RegistryError> {
        let invalid = |why: String| {
            RegistryError::local(
                "-",
                crate::reference::without_userinfo(host),
                format!("invalid registry host: {why}"),
            )
        };
        crate::reference::check_host(host).map_err(invalid)?;
        let scheme = scheme_for(host, scheme, insecure);
        let base =
            Url::parse(&format!("{scheme}://{host}/")).map_err(|e| invalid(e.to_string()))?;
        use_ring_for_tls();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .redirect(redirect_policy())
            .referer(false)
            .user_agent(concat!("ocibuild/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::transport("-", &base, &e))?;
        Ok(RegistryClient {
            http,
            base,
            cred: Mutex::new(cred),
            refresh: None,
            renew_at: Mutex::new(None),
            state: Mutex::new(AuthState::default()),
            retry,
            jitter: AtomicU64::new(0x2545_F491_4F6C_DD1D),
            manifest_interval: None,
            next_manifest: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// Renew the credentials with `refresh` ahead of `expires`, and once on a refused request.
    pub fn with_refresh(mut self, refresh: Refresh, expires: Option<SystemTime>) -> Self {
        self.refresh = Some(refresh);
        self.renew_at = Mutex::new(refresh_at(expires));
        self
    }

    /// Keep manifest PUTs under `per_second` (a registry quota), taken within
    /// [`MIN_MANIFEST_RATE`, `MAX_MANIFEST_RATE`] (the config refuses values outside); not a
    /// positive number: no pacing.
    pub fn with_manifest_rate(mut self, per_second: f64) -> Self {
        if per_second > 0.0 {
            let rate = per_second.clamp(MIN_MANIFEST_RATE, MAX_MANIFEST_RATE);
            self.manifest_interval = Duration::try_from_secs_f64(1.0 / rate).ok();
        }
        self
    }

    fn cred(&self) -> CredentialSource {
        self.cred
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| CredentialSource::anonymous("unavailable"))
    }

    async fn renew(&self) -> Result<(), RegistryError> {
        let Some(refresh) = &self.refresh else {
            return Ok(());
        };
        let ExpiringCredential {
            source: cred,
            expires,
        } = refresh().await?;
        if let Ok(mut c) = self.cred.lock() {
            *c = cred;
        }
        if let Ok(mut r) = self.renew_at.lock() {
            *r = refresh_at(expires);
        }
        if let Ok(mut st) = self.state.lock() {
            st.tokens.clear();
        }
        Ok(())
    }

    async fn renew_if_due(&self) -> Result<(), RegistryError> {
        let due = self
            .renew_at
            .lock()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|at| Instant::now() >= at);
        if due {
            self.renew().await?;
        }
        Ok(())
    }

    /// The registry's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Where the credentials came from (for messages).
    pub fn credential_origin(&self) -> String {
        self.cred().origin
    }

    /// The URL of `endpoint` of repository `repo`, built segment by segment from validated
    /// names (`/v2/<repo>/manifests/<reference>`, `/v2/<repo>/blobs/<digest>`,
    /// `/v2/<repo>/blobs/uploads/`).
    pub(super) fn url(&self, repo: &Repository, endpoint: Endpoint<'_>) -> Url {
        let mut url = self.base.clone();
        // The base is an http(s) URL (checked in `new`), which always has path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().push("v2").extend(repo.components());
            match endpoint {
                Endpoint::Manifest(r) => path.extend(["manifests", r.as_str()]),
                Endpoint::Blob(d) => path.extend(["blobs", d.as_str()]),
                Endpoint::Uploads => path.extend(["blobs", "uploads", ""]),
                Endpoint::Referrers(d) => path.extend(["referrers", d.as_str()]),
            };
        }
        url
    }

    /// `repo` as a validated name, or the error (no request is sent) for `method`.
    pub(super) fn repository(&self, method: &str, repo: &str) -> Result<Repository, RegistryError> {
        Repository::parse(repo).map_err(|why| self.refused_name(method, why))
    }

    /// `reference` as a validated tag or digest, or the error (no request is sent).
    pub(super) fn reference(
        &self,
        method: &str,
        reference: &str,
    ) -> Result<Reference, RegistryError> {
        Reference::parse(reference).map_err(|why| self.refused_name(method, why))
    }

    fn refused_name(&self, method: &str, why: String) -> RegistryError {
        let mut e = RegistryError::local(method, self.base.to_string(), why);
        e.hint = Some(
            "nothing was sent: names in registry URLs must follow the distribution spec's grammar"
                .into(),
        );
        e
    }

    fn auth_header(&self, scope: &str) -> Option<HeaderValue> {
        let st = self.state.lock().ok()?;
        match st.challenge.as_ref()? {
            Challenge::Basic => basic_header(&self.cred().credential),
            Challenge::Bearer { .. } => {
                // A pull,push token of the same repository serves a pull.
                let wider = scope
                    .strip_suffix(":pull")
                    .filter(|s| !s.contains(' '))
                    .map(|s| format!("{s}:pull,push"));
                let (tok, until) = st
                    .tokens
                    .get(scope)
                    .or_else(|| st.tokens.get(wider.as_deref()?))?;
                if Instant::now() < *until {
                    HeaderValue::from_str(&format!("Bearer {tok}")).ok()
                } else {
                    None
                }
            }
        }
    }

    /// Send a request built by `make` (called again for the retry after a 401), answering an
    /// auth challenge once. `scope` is the token scope the request needs. Credentials go only
    /// to the registry's own origin (see [`hop`]); a `url` elsewhere (an upload `Location` in
    /// storage) is sent without them, and one that would leave https for http is refused
    /// here. Only the registry's own 401s are answered.
    pub(super) async fn send(
        &self,
        method: &Method,
        url: &Url,
        scope: &str,
        make: &(dyn Fn() -> Result<RequestBuilder, RegistryError> + Sync),
    ) -> Result<Response, RegistryError> {
        let credentials = match hop(&self.base, url) {
            Hop::SameOrigin => true,
            Hop::CrossOrigin => false,
            Hop::Refused(why) => {
                return Err(RegistryError::local(
                    method.as_str(),
                    strip_query(url),
                    format!("the registry at {} pointed here: {why}", self.base),
                ))
            }
        };
        self.renew_if_due().await?;
        let mut answered = false;
        let mut renewed = false;
        loop {
            let mut req = make()?;
            if credentials {
                if let Some(h) = self.auth_header(scope) {
                    req = req.header(AUTHORIZATION, h);
                }
            }
            let resp = req
                .send()
                .await
                .map_err(|e| RegistryError::transport(method.as_str(), url, &e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            // A 401 from elsewhere (a redirect's target, a storage URL) is not ours to
            // answer: its challenge could send the credentials anywhere.
            if !credentials || hop(&self.base, resp.url()) != Hop::SameOrigin {
                let mut e = error_from(method, url, resp).await;
                e.hint = Some(format!(
                    "the answer came from {}, not from the registry {}: no credentials are sent there",
                    strip_query(url),
                    self.base
                ));
                return Err(e);
            }
            let basic = matches!(
                self.state.lock().ok().and_then(|s| s.challenge.clone()),
                Some(Challenge::Basic)
            );
            if answered && basic && !renewed && self.refresh.is_some() {
                // Expired or revoked password: fetch a new one, once.
                renewed = true;
                self.renew().await?;
                continue;
            }
            if answered {
                return Err(self.refused(method, url, scope, resp).await);
            }
            answered = true;
            self.answer_challenge(method, url, scope, resp).await?;
        }
    }

    /// The error for a request still refused (401) after its challenge was answered; forgets
    /// the token for `scope` so a later retry asks for a new one.
    async fn refused(
        &self,
        method: &Method,
        url: &Url,
        scope: &str,
        resp: Response,
    ) -> RegistryError {
        let mut e = error_from(method, url, resp).await;
        e.hint = Some(format!(
            "credentials used: {}; they were refused or lack access to this repository (check docker login, DOCKER_CONFIG or the [registry] auth setting)",
            self.cred().origin
        ));
        // Forget the token so a later retry asks for a new one.
        if let Ok(mut st) = self.state.lock() {
            st.tokens.remove(scope);
        }
        e
    }

    /// Answer the auth challenge of a first 401 (`resp`): fetch a Bearer token for `scope`, or
    /// check that there is a password for Basic, and remember the challenge.
    async fn answer_challenge(
        &self,
        method: &Method,
        url: &Url,
        scope: &str,
        resp: Response,
    ) -> Result<(), RegistryError> {
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let Some(challenge) = challenge else {
            return Err(error_from(method, url, resp).await);
        };
        if let Challenge::Bearer { realm, service, .. } = &challenge {
            let (token, ttl) = self.fetch_token(realm, service.as_deref(), scope).await?;
            if let Ok(mut st) = self.state.lock() {
                st.tokens
                    .insert(scope.to_string(), (token, Instant::now() + ttl));
            }
        } else if matches!(self.cred().credential, Credential::Anonymous) {
            let mut e = error_from(method, url, resp).await;
            e.hint = Some(format!(
                "the registry asks for a user name and password and none was found: {}",
                self.cred().origin
            ));
            return Err(e);
        }
        if let Ok(mut st) = self.state.lock() {
            st.challenge = Some(challenge);
        }
        Ok(())
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::local(
                "GET",
                strip_query(&self.base),
                format!("the registry named an invalid token realm: {e}"),
            )
        })?;
        // The token service may live elsewhere (that is what realms are for), but the
        // credentials never go to it in clear text from an https registry.
        if let Hop::Refused(why) = hop(&self.base, &url) {
            return Err(RegistryError::local(
                "GET",
                strip_query(&url),
                format!("token realm refused: {why}"),
            ));
        }
        let cred = self.cred();
        let req = self.token_request(&mut url, &cred.credential, service, scope);
        let resp = req
            .send()
            .await
            .map_err(|e| RegistryError::transport("GET", &url, &e))?;
        if !resp.status().is_success() {
            let mut e = error_from(&Method::GET, &url, resp).await;
            e.hint = Some(format!(
                "the token service refused the credentials from {}",
                cred.origin
            ));
            return Err(e);
        }
        let (bytes, ending) = read_capped(resp, MAX_TOKEN_ANSWER)
            .await
            .map_err(|e| RegistryError::transport("GET", &url, &e))?;
        match ending {
            Ending::Whole => {}
            Ending::TooLarge => {
                return Err(invalid(
                    &url,
                    format!("the token answer is larger than {MAX_TOKEN_ANSWER} bytes"),
                ))
            }
            Ending::TooSlow => return Err(too_slow(&url)),
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(&url, format!("the token answer is not JSON: {e}")))?;
        token_from(&url, &v)
    }

    /// The token request to `url` (the realm) for `service` and `scope`: an OAuth2 refresh-token
    /// POST for an identity token, else a GET with the scopes in the query (and Basic auth when
    /// there is a password), which is why `url` is extended in place.
    fn token_request(
        &self,
        url: &mut Url,
        cred: &Credential,
        service: Option<&str>,
        scope: &str,
    ) -> RequestBuilder {
        match cred {
            Credential::IdentityToken(t) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", &t.0)
                    .append_pair("client_id", "ocibuild");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                for s in scope.split(' ') {
                    form.append_pair("scope", s);
                }
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            cred => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scope.split(' ') {
                        q.append_pair("scope", s);
                    }
                }
                let mut r = self.http.get(url.clone()).timeout(DOCUMENT_TIMEOUT);
                if let Some(h) = basic_header(cred) {
                    r = r.header(AUTHORIZATION, h);
                }
                r
            }
        }
    }

    /// Run `op` until it succeeds, fails for good, or runs out of tries.
    pub async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.retry.max_tries => {
                    tokio::time::sleep(self.delay(attempt, e.retry_after)).await;
                    attempt += 1;
                }
                Err(mut e) => {
                    if attempt > 1 {
                        e.message = format!("{} (after {attempt} tries)", e.message);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.retry.max_delay);
        }
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16));
        let exp = exp.min(self.retry.max_delay);
        // Full jitter in [exp/2, exp): xorshift over a shared state.
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        let half = exp / 2;
        half + Duration::from_nanos(x % (half.as_nanos() as u64).max(1))
    }

    /// `HEAD` of `endpoint` in `repo`: 2xx is yes, 404 is no, anything else an error.
    pub(super) async fn exists(
        &self,
        repo: &Repository,
        endpoint: Endpoint<'_>,
        accept: Option<&str>,
    ) -> Result<bool, RegistryError> {
        Ok(self.head(repo, endpoint, accept).await?.is_some())
    }

    /// `HEAD` of `endpoint` in `repo` (push scope): the answer's headers, `None` on 404.
    pub(super) async fn head(
        &self,
        repo: &Repository,
        endpoint: Endpoint<'_>,
        accept: Option<&str>,
    ) -> Result<Option<reqwest::header::HeaderMap>, RegistryError> {
        let url = self.url(repo, endpoint);
        let scope = push_scope(repo);
        self.retry(|| async {
            let resp = self
                .send(&Method::HEAD, &url, &scope, &|| {
                    let req = self.http.head(url.clone()).timeout(DOCUMENT_TIMEOUT);
                    Ok(match accept {
                        Some(a) => req.header(ACCEPT, a),
                        None => req,
                    })
                })
                .await?;
            match resp.status() {
                s if s.is_success() => Ok(Some(resp.headers().clone())),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(error_from(&Method::HEAD, &url, resp).await),
            }
        })
        .await
    }
}

pub(super) fn pull_scope(repo: &Repository) -> String {
    format!("repository:{repo}:pull")
}

pub(super) fn push_scope(repo: &Repository) -> String {
    format!("repository:{repo}:pull,push")
}

/// The token and how long to use it from a token service's answer `v` (from `url`): `token`
/// or `access_token`, for 90% of `expires_in` (60 s if absent, at least 10 s, at most
/// [`MAX_TOKEN_LIFETIME`]).
fn token_from(url: &Url, v: &serde_json::Value) -> Result<(String, Duration), RegistryError> {
    let token = v
        .get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .ok_or_else(|| RegistryError::new("GET", strip_query(url), "token response has no token"))?
        .to_string();
    let secs = v
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .unwrap_or(60)
        .clamp(10, MAX_TOKEN_LIFETIME.as_secs());
    Ok((token, Duration::from_secs(secs - secs / 10)))
}

fn basic_header(cred: &Credential) -> Option<HeaderValue> {
    match cred {
        Credential::Basic { username, password } => {
            let raw = format!("{username}:{}", password.0);
            let mut v = HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
            .ok()?;
            v.set_sensitive(true);
            Some(v)
        }
        _ => None,
    }
}

/// reqwest is built without a crypto provider of its own (`rustls-no-provider`): make rustls'
/// `ring` provider the process default before the first client is built. Installing twice is
/// harmless (the second call reports the first and changes nothing).
pub(super) fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests;

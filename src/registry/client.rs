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
use super::error::{strip_query, RegistryError};
use base64::Engine;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
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

/// Largest manifest or config read from a registry.
pub const MAX_DOCUMENT: usize = 4 << 20;

/// Fetches fresh credentials (for registries whose passwords expire, such as ECR's), with the
/// time they stop working if known.
pub type Refresh = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<ExpiringCredential, RegistryError>> + Send>>
        + Send
        + Sync,
>;

/// When to fetch new credentials: at half of their remaining life, never sooner than in 5
/// minutes (so an already expired answer, as emulators give, cannot cause a loop).
fn refresh_at(expires: Option<SystemTime>) -> Option<Instant> {
    let left = expires?
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(Instant::now() + (left / 2).max(Duration::from_secs(300)))
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, (String, Instant)>,
}

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

/// Whether `host` (without port) is a loopback address, where plain HTTP is allowed.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl RegistryClient {
    /// A client for `host[:port]`; plain HTTP when `insecure` (or when the host is loopback).
    pub fn new(
        host: &str,
        insecure: bool,
        cred: CredentialSource,
        retry: RetryPolicy,
    ) -> Result<Self, RegistryError> {
        let bare = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let scheme = if insecure || is_loopback(bare) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
            RegistryError::new("-", host.to_string(), format!("invalid registry host: {e}"))
        })?;
        use_ring_for_tls();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
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

    /// Keep manifest PUTs under `per_second` (a registry quota).
    pub fn with_manifest_rate(mut self, per_second: f64) -> Self {
        if per_second > 0.0 {
            self.manifest_interval = Some(Duration::from_secs_f64(1.0 / per_second));
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

    pub(super) fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn auth_header(&self, scope: &str) -> Option<HeaderValue> {
        let st = self.state.lock().ok()?;
        match st.challenge.as_ref()? {
            Challenge::Basic => basic_header(&self.cred().credential),
            Challenge::Bearer { .. } => {
                let (tok, until) = st.tokens.get(scope)?;
                if Instant::now() < *until {
                    HeaderValue::from_str(&format!("Bearer {tok}")).ok()
                } else {
                    None
                }
            }
        }
    }

    /// Send a request built by `make` (called again for the retry after a 401), answering an
    /// auth challenge once. `scope` is the token scope the request needs.
    pub(super) async fn send(
        &self,
        method: &Method,
        url: &Url,
        scope: &str,
        make: &(dyn Fn() -> Result<RequestBuilder, RegistryError> + Sync),
    ) -> Result<Response, RegistryError> {
        self.renew_if_due().await?;
        let mut answered = false;
        let mut renewed = false;
        loop {
            let mut req = make()?;
            if let Some(h) = self.auth_header(scope) {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| RegistryError::transport(method.as_str(), url, &e))?;
            let basic = matches!(
                self.state.lock().ok().and_then(|s| s.challenge.clone()),
                Some(Challenge::Basic)
            );
            if resp.status() == StatusCode::UNAUTHORIZED
                && answered
                && basic
                && !renewed
                && self.refresh.is_some()
            {
                // Expired or revoked password: fetch a new one, once.
                renewed = true;
                self.renew().await?;
                continue;
            }
            if resp.status() != StatusCode::UNAUTHORIZED || answered {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(self.refused(method, url, scope, resp).await);
                }
                return Ok(resp);
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
            RegistryError::new(
                "GET",
                realm.to_string(),
                format!("invalid token realm: {e}"),
            )
        })?;
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
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| RegistryError::transport("GET", &url, &e))?;
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
                let mut r = self.http.get(url.clone());
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

    /// `HEAD /v2/<repo>/<what>`: 2xx is yes, 404 is no, anything else an error.
    pub(super) async fn exists(
        &self,
        repo: &str,
        what: &str,
        accept: Option<&str>,
    ) -> Result<bool, RegistryError> {
        Ok(self.head(repo, what, accept).await?.is_some())
    }

    /// `HEAD /v2/<repo>/<what>` (push scope): the answer's headers, `None` on 404.
    pub(super) async fn head(
        &self,
        repo: &str,
        what: &str,
        accept: Option<&str>,
    ) -> Result<Option<reqwest::header::HeaderMap>, RegistryError> {
        let url = self.url(&format!("v2/{repo}/{what}"));
        let scope = push_scope(repo);
        self.retry(|| async {
            let resp = self
                .send(&Method::HEAD, &url, &scope, &|| {
                    let req = self.http.head(url.clone());
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

pub(super) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// An error about what a registry served.
pub(super) fn invalid(url: &Url, message: String) -> RegistryError {
    RegistryError::new("GET", strip_query(url), message)
}

/// The body of `resp`, refused past `max` bytes.
pub(super) async fn read_limited(
    url: &Url,
    resp: Response,
    max: usize,
) -> Result<Vec<u8>, RegistryError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(invalid(url, format!("document larger than {max} bytes")));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|e| RegistryError::transport("GET", url, &e))?;
        if out.len() + chunk.len() > max {
            return Err(invalid(url, format!("document larger than {max} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(super) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// The token and how long to use it from a token service's answer `v` (from `url`): `token`
/// or `access_token`, for 90% of `expires_in` (60 s if absent, at least 10 s).
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
        .max(10);
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

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

pub(super) async fn error_from(method: &Method, url: &Url, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let ra = retry_after(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    RegistryError::from_status(method.as_str(), url, status, ra, &body)
}

/// reqwest is built without a crypto provider of its own (`rustls-no-provider`): make rustls'
/// `ring` provider the process default before the first client is built. Installing twice is
/// harmless (the second call reports the first and changes nothing).
fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_and_lifetimes() {
        let url = Url::parse("https://auth.example/token?service=r&scope=x").unwrap();
        let (t, ttl) =
            token_from(&url, &serde_json::json!({"token": "a", "expires_in": 300})).unwrap();
        assert_eq!((t.as_str(), ttl), ("a", Duration::from_secs(270)));
        let (t, ttl) = token_from(&url, &serde_json::json!({"access_token": "b"})).unwrap();
        assert_eq!((t.as_str(), ttl), ("b", Duration::from_secs(54)));
        let (_, ttl) =
            token_from(&url, &serde_json::json!({"token": "c", "expires_in": 1})).unwrap();
        assert_eq!(ttl, Duration::from_secs(9));
        let e = token_from(&url, &serde_json::json!({"expires_in": 300})).unwrap_err();
        assert_eq!(e.message, "token response has no token");
        assert_eq!(e.url, "https://auth.example/token");
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "192.168.1.1"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn scheme_follows_insecure_and_loopback() {
        let anon = || CredentialSource::anonymous("test");
        let c =
            RegistryClient::new("127.0.0.1:5000", false, anon(), RetryPolicy::default()).unwrap();
        assert_eq!(c.base().as_str(), "http://127.0.0.1:5000/");
        let c =
            RegistryClient::new("registry.example", false, anon(), RetryPolicy::default()).unwrap();
        assert_eq!(c.base().as_str(), "https://registry.example/");
        let c = RegistryClient::new(
            "registry.example:8080",
            true,
            anon(),
            RetryPolicy::default(),
        )
        .unwrap();
        assert_eq!(c.base().as_str(), "http://registry.example:8080/");
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let c = RegistryClient::new(
            "r.example",
            false,
            CredentialSource::anonymous("t"),
            RetryPolicy {
                max_tries: 5,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
            },
        )
        .unwrap();
        for attempt in 1..=6 {
            let d = c.delay(attempt, None);
            let exp = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(
                d >= exp / 2 && d < exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        assert_eq!(
            c.delay(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            c.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(1)
        );
    }
}

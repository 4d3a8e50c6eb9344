//! A fault-injecting HTTP/1.1 proxy between ocibuild and the test registry. For each request a
//! rule picks a fault (an error status, with or without Retry-After; a connection reset in the
//! middle of the request body; a slow answer) or forwards it; a quirk mode strips the
//! `Location` header from manifest PUT answers (as ECR may) and makes upload locations relative. It records what it did, so a test can check
//! that faults really happened.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Forward,
    Status(u16, Option<u64>),
    /// An error status with this OCI error code in the body.
    Code(u16, &'static str),
    ResetMidBody,
    Slow(Duration),
    /// ECR's answer to a PUT of an existing tag in an IMMUTABLE repository (400 TAG_INVALID).
    Immutable,
    /// Forward a mount request as a plain upload request: the registry opens a session and
    /// answers 202 instead of mounting (as ECR does without its blob-mounting setting).
    NoMount,
}

/// Decides the fault for (method, path, how many earlier requests had the same method+path).
/// A blob PUT's path is `/v2/<repo>/blobs/uploads/<digest>`, whatever its session id; a mount
/// request's is `/v2/<repo>/blobs/uploads/?mount`.
pub type Rule = Arc<dyn Fn(&str, &str, usize) -> Fault + Send + Sync>;

pub struct FaultProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// (method, path, fault) of every request seen.
    pub seen: Arc<Mutex<Vec<(String, String, Fault)>>>,
    /// Whether any request body came chunked (ocibuild's uploads must not).
    pub saw_chunked: Arc<AtomicBool>,
    /// When each manifest PUT arrived.
    pub manifest_puts: Arc<Mutex<Vec<std::time::Instant>>>,
    /// With the referrers API: (repository, subject digest, descriptor) of each manifest with
    /// a subject that was stored.
    pub referrers: Option<Referrers>,
}

/// What a proxy playing a registry with the referrers API has indexed.
pub type Referrers = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

/// How the proxy changes what passes through.
#[derive(Clone, Default)]
struct Quirks {
    /// Strip `Location` from manifest PUT answers.
    strip_location: bool,
    /// Play the referrers API: answer manifest PUTs with a subject with `OCI-Subject` and
    /// serve `GET /v2/<name>/referrers/<digest>` from what was indexed.
    referrers: Option<Referrers>,
}

impl FaultProxy {
    pub fn start(upstream: u16, rule: Rule, strip_manifest_location: bool) -> FaultProxy {
        let quirks = Quirks {
            strip_location: strip_manifest_location,
            referrers: None,
        };
        Self::start_with(upstream, rule, quirks)
    }

    /// A proxy that gives the registry behind it the referrers API (as ECR and distribution
    /// 3 with it have): everything else is forwarded.
    pub fn with_referrers_api(upstream: u16) -> FaultProxy {
        let quirks = Quirks {
            strip_location: false,
            referrers: Some(Referrers::default()),
        };
        Self::start_with(upstream, Arc::new(|_, _, _| Fault::Forward), quirks)
    }

    fn start_with(upstream: u16, rule: Rule, quirks: Quirks) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(String, String, Fault)>>> = Arc::default();
        let saw_chunked = Arc::new(AtomicBool::new(false));
        let manifest_puts: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
        let (stop2, seen2, chunked2, puts2) = (
            stop.clone(),
            seen.clone(),
            saw_chunked.clone(),
            manifest_puts.clone(),
        );
        let referrers = quirks.referrers.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rule, seen, chunked, puts) =
                    (rule.clone(), seen2.clone(), chunked2.clone(), puts2.clone());
                let quirks = quirks.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &rule, &seen, &chunked, &puts, &quirks);
                });
            }
        });
        FaultProxy {
            port,
            stop,
            seen,
            saw_chunked,
            manifest_puts,
            referrers,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn count(&self, f: impl Fn(&Fault) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| f(&s.2)).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    client: TcpStream,
    upstream: u16,
    rule: &Rule,
    seen: &Mutex<Vec<(String, String, Fault)>>,
    saw_chunked: &AtomicBool,
    manifest_puts: &Mutex<Vec<std::time::Instant>>,
    quirks: &Quirks,
) -> std::io::Result<()> {
    let strip_location = quirks.strip_location;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut out = client;
    loop {
        // Request head.
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            head.push(line);
            if end {
                break;
            }
        }
        let first: Vec<&str> = head[0].split_whitespace().collect();
        let (method, target) = (first[0].to_string(), first[1].to_string());
        // Upload sessions have fresh ids on each try: count a blob PUT by repository + digest.
        let mut path = target.split('?').next().unwrap_or("").to_string();
        if let (Some(i), Some(d)) = (path.find("/blobs/uploads/"), target.split("digest=").nth(1)) {
            path = format!(
                "{}/blobs/uploads/{}",
                &path[..i],
                d.split('&').next().unwrap_or("")
            );
        }
        if method == "POST" && target.contains("mount=") {
            path.push_str("?mount");
        }
        let len: usize = head
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let chunked = head.iter().any(|h| {
            h.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        if chunked {
            saw_chunked.store(true, Ordering::SeqCst);
        }
        if method == "PUT" && path.contains("/manifests/") {
            manifest_puts
                .lock()
                .unwrap()
                .push(std::time::Instant::now());
        }
        let fault = {
            let mut s = seen.lock().unwrap();
            let n = s
                .iter()
                .filter(|(m, p, _)| *m == method && *p == path)
                .count();
            let f = rule(&method, &path, n);
            s.push((method.clone(), path.clone(), f));
            f
        };
        match fault {
            Fault::ResetMidBody => {
                let mut half = vec![0u8; len / 2];
                reader.read_exact(&mut half)?;
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
            Fault::Status(_, _) | Fault::Code(_, _) | Fault::Immutable => {
                let (code, retry_after, name) = match fault {
                    Fault::Code(c, n) => (c, None, n),
                    Fault::Status(c, r) => (c, r, "INJECTED"),
                    Fault::Immutable => (400, None, "TAG_INVALID"),
                    _ => (500, None, "INJECTED"),
                };
                copy_body(&mut reader, &mut std::io::sink(), len, chunked)?;
                let message = match fault {
                    Fault::Immutable => "The image tag already exists in the repository and cannot be overwritten because the repository is immutable.".to_string(),
                    _ => format!("injected {code}"),
                };
                let body = format!(r#"{{"errors":[{{"code":"{name}","message":"{message}"}}]}}"#);
                let ra = retry_after
                    .map(|s| format!("Retry-After: {s}\r\n"))
                    .unwrap_or_default();
                write!(
                    out,
                    "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\n{ra}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                continue;
            }
            Fault::Slow(d) => std::thread::sleep(d),
            Fault::Forward if method == "GET" && path.contains("/referrers/") => {
                if let Some(store) = &quirks.referrers {
                    let body = referrers_index(store, &path);
                    write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )?;
                    continue;
                }
            }
            Fault::Forward => {}
            Fault::NoMount => {
                let plain = target.split('?').next().unwrap_or("");
                head[0] = head[0].replacen(&target, plain, 1);
            }
        }
        // Forward on a fresh upstream connection, closed after the answer.
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        for h in &head {
            if h.to_ascii_lowercase().starts_with("connection:") {
                continue;
            }
            if h == "\r\n" {
                up.write_all(b"Connection: close\r\n\r\n")?;
            } else {
                up.write_all(h.as_bytes())?;
            }
        }
        let manifest_put = method == "PUT" && path.contains("/manifests/");
        let mut indexed = None;
        if let (Some(store), true, false) = (&quirks.referrers, manifest_put, chunked) {
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body)?;
            up.write_all(&body)?;
            indexed = index_subject(store, &path, &body);
        } else {
            copy_body(&mut reader, &mut up, len, chunked)?;
        }
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(answer.len(), |p| p + 4);
        let (resp_head, body) = answer.split_at(split);
        let resp_head = String::from_utf8_lossy(resp_head);
        let mut rebuilt = String::new();
        for line in resp_head.split("\r\n") {
            let l = line.to_ascii_lowercase();
            if l.starts_with("connection:")
                || (strip_location && manifest_put && l.starts_with("location:"))
            {
                continue;
            }
            if !line.is_empty() {
                rebuilt.push_str(line);
                rebuilt.push_str("\r\n");
            }
        }
        if let Some(subject) = indexed.filter(|_| resp_head.contains(" 201 ")) {
            rebuilt.push_str(&format!("OCI-Subject: {subject}\r\n"));
        }
        rebuilt.push_str("\r\n");
        out.write_all(rebuilt.as_bytes())?;
        out.write_all(body)?;
    }
}

/// Record a manifest PUT to `path` (`/v2/<repo>/manifests/<ref>`) whose `body` names a
/// subject; returns the subject's digest.
fn index_subject(store: &Referrers, path: &str, body: &[u8]) -> Option<String> {
    use sha2::Digest;
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let subject = doc.pointer("/subject/digest")?.as_str()?.to_string();
    let repo = path
        .strip_prefix("/v2/")?
        .split("/manifests/")
        .next()?
        .to_string();
    let descriptor = serde_json::json!({
        "mediaType": doc["mediaType"],
        "digest": format!("sha256:{:x}", sha2::Sha256::digest(body)),
        "size": body.len(),
        "artifactType": doc["artifactType"],
    });
    let mut s = store.lock().unwrap();
    if !s
        .iter()
        .any(|(r, _, d)| *r == repo && d["digest"] == descriptor["digest"])
    {
        s.push((repo, subject.clone(), descriptor));
    }
    Some(subject)
}

/// The referrers index for `path` (`/v2/<repo>/referrers/<digest>`).
fn referrers_index(store: &Referrers, path: &str) -> String {
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    let (repo, subject) = rest.split_once("/referrers/").unwrap_or(("", ""));
    let manifests: Vec<serde_json::Value> = store
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, s, _)| r == repo && s == subject)
        .map(|(_, _, d)| d.clone())
        .collect();
    serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}).to_string()
}

/// Relay a request body: `len` bytes, or chunks (sizes, data and the final chunk) as they are.
fn copy_body(
    from: &mut BufReader<TcpStream>,
    to: &mut impl Write,
    len: usize,
    chunked: bool,
) -> std::io::Result<()> {
    if !chunked {
        std::io::copy(&mut from.take(len as u64), to)?;
        return Ok(());
    }
    loop {
        let mut size_line = String::new();
        from.read_line(&mut size_line)?;
        to.write_all(size_line.as_bytes())?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .unwrap_or(0);
        if size == 0 {
            // trailers, then the empty line
            loop {
                let mut l = String::new();
                if from.read_line(&mut l)? == 0 || l == "\r\n" {
                    to.write_all(b"\r\n")?;
                    return Ok(());
                }
                to.write_all(l.as_bytes())?;
            }
        }
        std::io::copy(&mut from.take(size as u64 + 2), to)?;
    }
}

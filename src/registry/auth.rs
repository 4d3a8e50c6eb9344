//! Credentials and auth challenges: where a registry's credentials come from (anonymous,
//! Docker `config.json` with `auths`, `credHelpers`, `credsStore` and helper programs), and the
//! parsing of `WWW-Authenticate` challenges (Basic, Bearer with realm/service/scope).
//!
//! Invariants: secrets never appear in `Debug`/`Display` output; a [`CredentialSource`] only
//! says where a credential came from. Knows nothing of AWS.

use crate::digest::file::{read_user_file, ReadError};
use base64::Engine;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What to present to the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No credentials.
    Anonymous,
    /// User name and password (or token as password).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An OAuth2 refresh token (Docker `identitytoken`).
    IdentityToken(Secret),
}

/// Credentials that stop working at `expires` (ECR's registry passwords), if known.
#[derive(Debug, Clone)]
pub struct ExpiringCredential {
    /// The credentials.
    pub source: CredentialSource,
    /// When they stop working.
    pub expires: Option<std::time::SystemTime>,
}

/// A credential and where it came from (for messages; never the secret itself).
#[derive(Clone, Debug)]
pub struct CredentialSource {
    /// The credential.
    pub credential: Credential,
    /// Where it came from, e.g. `auths["127.0.0.1:5000"] in /home/u/.docker/config.json`.
    pub origin: String,
}

impl CredentialSource {
    /// No credentials.
    pub fn anonymous(why: &str) -> Self {
        CredentialSource {
            credential: Credential::Anonymous,
            origin: why.to_string(),
        }
    }
}

/// A credential lookup failed in a way the user must fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Normalise a config.json key (`https://host:port/v1/`, `host`) to `host[:port]`.
fn normalise_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    if k == "index.docker.io" || k == "registry-1.docker.io" {
        "docker.io".to_string()
    } else {
        k.to_string()
    }
}

/// Largest Docker config file read.
const MAX_DOCKER_CONFIG: u64 = 16 << 20;

/// Credentials for `host` from the Docker config file at `path` (if it exists).
pub fn from_docker_config(host: &str, path: &Path) -> Result<CredentialSource, AuthError> {
    let text = match read_user_file(path, MAX_DOCKER_CONFIG) {
        Ok(t) => t,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CredentialSource::anonymous(&format!(
                "anonymous (no {} )",
                path.display()
            )))
        }
        Err(e) => return Err(AuthError(format!("reading {}: {e}", path.display()))),
    };
    let cfg: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| AuthError(format!("{} is not valid JSON: {e}", path.display())))?;
    let want = normalise_host(host);
    let helpers: BTreeMap<String, String> = cfg
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((normalise_host(k), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(helper) = helpers.get(&want) {
        return from_helper(helper, host, &format!("credHelpers in {}", path.display()));
    }
    if let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) {
        if let Some((key, entry)) = auths.iter().find(|(k, _)| normalise_host(k) == want) {
            let origin = format!("auths[{key:?}] in {}", path.display());
            if let Some(found) = from_auths_entry(entry, origin)? {
                return Ok(found);
            }
        }
    }
    if let Some(store) = cfg.get("credsStore").and_then(|s| s.as_str()) {
        if !store.is_empty() {
            return from_helper(store, host, &format!("credsStore in {}", path.display()));
        }
    }
    Ok(CredentialSource::anonymous(&format!(
        "anonymous (no entry for {want} in {})",
        path.display()
    )))
}

/// The credentials of one `auths` entry (from `origin`): an identity token, else `auth`
/// (base64 of `user:password`), else `username` and `password`; `None` if it has none.
fn from_auths_entry(
    entry: &serde_json::Value,
    origin: String,
) -> Result<Option<CredentialSource>, AuthError> {
    if let Some(tok) = entry.get("identitytoken").and_then(|t| t.as_str()) {
        if !tok.is_empty() {
            return Ok(Some(CredentialSource {
                credential: Credential::IdentityToken(Secret(tok.to_string())),
                origin,
            }));
        }
    }
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        if !auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    AuthError(format!("{origin}: \"auth\" is not base64 of user:password"))
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                AuthError(format!("{origin}: \"auth\" is not base64 of user:password"))
            })?;
            return Ok(Some(CredentialSource {
                credential: Credential::Basic {
                    username: u.to_string(),
                    password: Secret(p.to_string()),
                },
                origin,
            }));
        }
    }
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        return Ok(Some(CredentialSource {
            credential: Credential::Basic {
                username: u.to_string(),
                password: Secret(p.to_string()),
            },
            origin,
        }));
    }
    Ok(None)
}

/// Largest answer read from a credential helper (stdout; stderr is cut at the same size).
const MAX_HELPER_OUTPUT: u64 = 1 << 20;

/// What a helper printed, at most `MAX_HELPER_OUTPUT + 1` bytes of stdout and
/// `MAX_HELPER_OUTPUT` of stderr; a helper that prints more is stopped.
fn bounded_output(mut child: std::process::Child) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(e) = stderr {
            let _ = e.take(MAX_HELPER_OUTPUT).read_to_end(&mut b);
        }
        b
    });
    let mut stdout = Vec::new();
    if let Some(o) = child.stdout.take() {
        o.take(MAX_HELPER_OUTPUT + 1).read_to_end(&mut stdout)?;
    }
    if stdout.len() as u64 > MAX_HELPER_OUTPUT {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let stderr = errors.join().unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// Ask `docker-credential-<helper> get` for `host`'s credentials.
fn from_helper(helper: &str, host: &str, why: &str) -> Result<CredentialSource, AuthError> {
    let program = format!("docker-credential-{helper}");
    let origin = format!("{program} ({why})");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            AuthError(format!(
                "running {program}: {e}: install it or remove it from the Docker config"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = bounded_output(child).map_err(|e| AuthError(format!("running {program}: {e}")))?;
    if out.stdout.len() as u64 > MAX_HELPER_OUTPUT {
        return Err(AuthError(format!(
            "{origin} printed more than {MAX_HELPER_OUTPUT} bytes; check the helper"
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!("{}{}", stdout, String::from_utf8_lossy(&out.stderr));
        if said.to_lowercase().contains("credentials not found") {
            return Ok(CredentialSource::anonymous(&format!(
                "anonymous ({origin} has none)"
            )));
        }
        return Err(AuthError(format!(
            "{origin} failed ({}); check the helper's setup",
            out.status
        )));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|_| AuthError(format!("{origin} printed something that is not JSON")))?;
    let user = v
        .get("Username")
        .and_then(|u| u.as_str())
        .unwrap_or_default();
    let secret = v.get("Secret").and_then(|s| s.as_str()).unwrap_or_default();
    let credential = if user == "<token>" {
        Credential::IdentityToken(Secret(secret.to_string()))
    } else {
        Credential::Basic {
            username: user.to_string(),
            password: Secret(secret.to_string()),
        }
    };
    Ok(CredentialSource { credential, origin })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send Basic credentials.
    Basic,
    /// Get a token from `realm`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter, if any.
        service: Option<String>,
        /// `scope` the registry asked for, if any.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// `key="value", key2=value2` (quoted values may hold commas, colons and `\"` escapes; a
/// key given twice keeps its last value; a key without `=` is skipped). Any text is taken
/// without panicking.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && matches!(b[i], b',' | b' ' | b'\t') {
            i += 1;
        }
        // Every index below stops at an ASCII byte or the end: slices fall on char boundaries.
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                v.push(b[i]);
                i += 1;
            }
            i += 1;
            String::from_utf8_lossy(&v).into_owned()
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s[vs..i].trim().to_string()
        };
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example:5001/token",service="registry.example:5000",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example:5001/token".into(),
                service: Some("registry.example:5000".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate x"), None);
        assert_eq!(
            parse_challenge("Bearer service=\"x\""),
            None,
            "realm is required"
        );
    }

    fn write_cfg(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn docker_config_auths() {
        let t = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let p = write_cfg(
            t.path(),
            &format!(
                r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{auth}"}},"other":{{"identitytoken":"tok"}}}}}}"#
            ),
        );
        let c = from_docker_config("127.0.0.1:5000", &p).unwrap();
        assert_eq!(
            c.credential,
            Credential::Basic {
                username: "alice".into(),
                password: Secret("s3cret".into())
            }
        );
        assert!(c.origin.contains("auths[\"https://127.0.0.1:5000/v1/\"]"));
        assert!(!format!("{c:?}").contains("s3cret"), "secrets never print");
        let c = from_docker_config("other", &p).unwrap();
        assert_eq!(
            c.credential,
            Credential::IdentityToken(Secret("tok".into()))
        );
        let c = from_docker_config("nowhere", &p).unwrap();
        assert_eq!(c.credential, Credential::Anonymous);
        let c = from_docker_config("x", &t.path().join("missing.json")).unwrap();
        assert_eq!(c.credential, Credential::Anonymous);
        let bad = write_cfg(t.path(), r#"{"auths":{"h":{"auth":"!!"}}}"#);
        assert!(from_docker_config("h", &bad)
            .unwrap_err()
            .0
            .contains("not base64"));
        let huge = t.path().join("huge.json");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_DOCKER_CONFIG + 1)
            .unwrap();
        let err = from_docker_config("h", &huge).unwrap_err().0;
        assert!(
            err.contains("huge.json") && err.contains("larger than"),
            "{err}"
        );
    }

    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        /// `v` as an RFC 7230 quoted-string.
        fn quote(v: &str) -> String {
            let mut q = String::from("\"");
            for c in v.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            q
        }

        proptest! {

            #[test]
            fn any_header_is_taken_without_panic(h in any::<String>()) {
                let _ = parse_challenge(&h);
                let _ = parse_challenge(&format!("Bearer {h}"));
                let _ = parse_params(&h);
            }

            #[test]
            fn header_like_text_is_taken_without_panic(
                h in "(Bearer|Basic|bearer)?[ ,=\"\\\\a-z:/é\t]{0,60}"
            ) {
                let _ = parse_challenge(&h);
            }

            #[test]
            fn generated_bearer_challenges_round_trip(
                realm in "[^\\x00]{1,40}",
                service in proptest::option::of("[^\\x00]{0,30}"),
                scope in proptest::option::of("[^\\x00]{0,30}"),
                scheme in "(Bearer|bearer|BEARER)",
                sep in "(,|, |,  )",
            ) {
                let mut h = format!("{scheme} realm={}", quote(&realm));
                if let Some(s) = &service {
                    h.push_str(&format!("{sep}service={}", quote(s)));
                }
                if let Some(s) = &scope {
                    h.push_str(&format!("{sep}scope={}", quote(s)));
                }
                prop_assert_eq!(
                    parse_challenge(&h),
                    Some(Challenge::Bearer { realm, service, scope })
                );
            }

            #[test]
            fn unquoted_values_round_trip(
                realm in "[a-zA-Z0-9:/._-]{1,30}",
                service in "[a-zA-Z0-9:._-]{1,30}",
            ) {
                let h = format!("Bearer realm={realm},service={service}");
                prop_assert_eq!(
                    parse_challenge(&h),
                    Some(Challenge::Bearer { realm, service: Some(service), scope: None })
                );
            }
        }
    }
}

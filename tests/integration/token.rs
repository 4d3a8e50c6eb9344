//! A small Bearer token service for the test registry (distribution's `auth: token`): checks
//! Basic credentials, grants the requested repository actions a user may have, and signs a
//! JWT (RS256, certificate in `x5c`) with `openssl`. It records every scope asked for.

use crate::common::{require, run};
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    /// Every scope requested, in order.
    pub scopes: Arc<Mutex<Vec<String>>>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenServer {
    /// Serve tokens for `service`; `user:password` may push to repositories starting with
    /// `allowed_prefix` and pull anything; nobody else gets anything.
    pub fn start(
        dir: &Path,
        service: &str,
        user: &str,
        password: &str,
        allowed_prefix: &str,
    ) -> TokenServer {
        Self::start_with(dir, service, user, password, allowed_prefix, false)
    }

    /// As [`TokenServer::start`]; with `anonymous_pull`, anyone else gets pull-only tokens
    /// (what public registries such as ECR Public or Docker Hub do).
    pub fn start_with(
        dir: &Path,
        service: &str,
        user: &str,
        password: &str,
        allowed_prefix: &str,
        anonymous_pull: bool,
    ) -> TokenServer {
        require("openssl");
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=ocibuild-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let header = b64url(
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [base64::engine::general_purpose::STANDARD.encode(&der)]})
                .to_string()
                .as_bytes(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scopes: Arc<Mutex<Vec<String>>> = Arc::default();
        let (scopes2, service, expected_auth, prefix) = (
            scopes.clone(),
            service.to_string(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            allowed_prefix.to_string(),
        );
        let user = user.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut auth = None;
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                let target = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let url = url::Url::parse(&format!("http://x{target}")).unwrap();
                let requested: Vec<String> = url
                    .query_pairs()
                    .filter(|(k, _)| k == "scope")
                    .map(|(_, v)| v.into_owned())
                    .collect();
                scopes2.lock().unwrap().extend(requested.iter().cloned());
                let known = auth.as_deref() == Some(expected_auth.as_str());
                if !known && !anonymous_pull {
                    let body =
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    let _ = write!(conn, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    continue;
                }
                let access: Vec<serde_json::Value> = requested
                    .iter()
                    .filter_map(|s| {
                        let mut parts = s.splitn(3, ':');
                        let (typ, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                        let granted: Vec<&str> = actions
                            .split(',')
                            .filter(|a| *a == "pull" || (known && name.starts_with(&prefix)))
                            .collect();
                        Some(serde_json::json!({"type": typ, "name": name, "actions": granted}))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let claims = serde_json::json!({
                    "iss": "ocibuild-test-issuer", "sub": if known { user.as_str() } else { "anonymous" }, "aud": service,
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{port}-{}", requested.len()),
                    "access": access,
                });
                let signing_input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
                let mut child = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(signing_input.as_bytes())
                    .unwrap();
                let sig = child.wait_with_output().unwrap().stdout;
                let body = serde_json::json!({"token": format!("{signing_input}.{}", b64url(&sig)), "expires_in": 300}).to_string();
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        TokenServer { port, cert, scopes }
    }

    /// The registry config block that trusts this service.
    pub fn registry_auth_yaml(&self, service: &str) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {service}\n    issuer: ocibuild-test-issuer\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }
}

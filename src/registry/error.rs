//! One structured registry error: what was asked (method and URL without its query, which can
//! carry signed upload state), the HTTP status, the registry's error code and message, and a
//! verdict on whether trying again can help. Never holds credentials.

use std::fmt;
use std::time::Duration;

/// A failed registry request.
#[derive(Debug, Clone)]
pub struct RegistryError {
    /// HTTP method.
    pub method: String,
    /// URL without query string or fragment.
    pub url: String,
    /// HTTP status; `None` for connection-level failures.
    pub status: Option<u16>,
    /// First error code of the registry's error envelope, e.g. `NAME_UNKNOWN`.
    pub code: Option<String>,
    /// Human-readable cause (the registry's message, or the transport error).
    pub message: String,
    /// `Retry-After`, when the registry sent one.
    pub retry_after: Option<Duration>,
    /// A hint saying what the user can do.
    pub hint: Option<String>,
    /// Refused here: before anything was sent (an invalid name, an unsafe URL, a refused
    /// redirect), or an answer that cannot be used (too large, another digest, not JSON):
    /// trying again cannot help.
    pub local: bool,
}

impl RegistryError {
    /// An error without an HTTP answer: `method` on `url` (already free of secrets) failed
    /// because of `message`. Retryable, as a transport failure is.
    pub fn new(method: &str, url: impl Into<String>, message: impl Into<String>) -> Self {
        RegistryError {
            method: method.to_string(),
            url: url.into(),
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
            hint: None,
            local: false,
        }
    }

    /// A request refused here before it was sent (`method` on `url`, already free of
    /// secrets): never retried.
    pub fn local(method: &str, url: impl Into<String>, message: impl Into<String>) -> Self {
        RegistryError {
            local: true,
            ..RegistryError::new(method, url, message)
        }
    }

    /// Whether this is a registry refusing to move an existing tag: ECR's answer for an
    /// IMMUTABLE repository (400 `TAG_INVALID` "... cannot be overwritten", or
    /// `ImageTagAlreadyExistsException` through other front ends).
    pub fn is_immutable_tag(&self) -> bool {
        self.status == Some(400) && immutable_tag(self.code.as_deref(), &self.message)
    }

    /// Whether a retry may succeed: connection errors, 408, 429 and 5xx; never what was
    /// refused here.
    pub fn is_retryable(&self) -> bool {
        if self.local {
            return false;
        }
        match self.status {
            None => true,
            Some(s) => s == 408 || s == 429 || s >= 500,
        }
    }

    /// An error for a transport failure.
    pub fn transport(method: &str, url: &url::Url, err: &reqwest::Error) -> Self {
        // reqwest's Display includes the URL with its query; keep only the cause chain.
        let mut message = String::new();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
        while let Some(c) = cur {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&c.to_string());
            cur = c.source();
        }
        // A redirect refused by our policy (a downgrade to http, too many hops) ends here.
        let local = err.is_redirect();
        if message.is_empty() {
            message = if err.is_timeout() {
                "timed out".into()
            } else {
                "connection failed".into()
            };
        }
        RegistryError {
            method: method.to_string(),
            url: strip_query(url),
            status: None,
            code: None,
            message,
            retry_after: None,
            hint: None,
            local,
        }
    }

    /// An error from an HTTP answer: parses the OCI error envelope from `body`.
    pub fn from_status(
        method: &str,
        url: &url::Url,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let (code, message) = parse_envelope(body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let text = clip(text, 200);
            if text.is_empty() {
                let reason = reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no message");
                (None, reason.to_string())
            } else {
                (None, text)
            }
        });
        let hint = match (status, code.as_deref()) {
            (_, Some("NAME_UNKNOWN")) => Some(
                "the repository does not exist: create it (for ECR: `ocibuild repos ensure`)".into(),
            ),
            (_, c) if immutable_tag(c, &message) => Some(
                "the repository's tags are immutable: push a new tag instead of reusing this one"
                    .into(),
            ),
            (401, _) | (403, _) | (_, Some("DENIED")) | (_, Some("UNAUTHORIZED")) => Some(
                "check the credentials for this registry (docker login, DOCKER_CONFIG, or the [registry] auth setting)".into(),
            ),
            _ => None,
        };
        RegistryError {
            method: method.to_string(),
            url: strip_query(url),
            status: Some(status),
            code,
            message,
            retry_after,
            hint,
            local: false,
        }
    }
}

fn parse_envelope(body: &[u8]) -> Option<(Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = v.get("errors")?.as_array()?.first()?;
    let code = first
        .get("code")
        .and_then(|c| c.as_str())
        .map(|c| clip(c, 100));
    let message = first
        .get("message")
        .and_then(|m| m.as_str())
        .map(|m| clip(m, 1000))
        .unwrap_or_default();
    Some((code, message))
}

/// At most `max` characters of `s`, with `...` when cut, and control characters escaped
/// (`\u{1b}`): a server's text must not move the cursor, clear the screen or forge lines.
pub(super) fn clip(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_default())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// The URL as text without query or fragment.
pub fn strip_query(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// The code and message of a refusal to move an existing tag.
fn immutable_tag(code: Option<&str>, message: &str) -> bool {
    (code == Some("TAG_INVALID") && message.contains("cannot be overwritten"))
        || message.contains("ImageTagAlreadyExists")
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.method, self.url)?;
        if let Some(s) = self.status {
            write!(f, "{s} ")?;
        }
        if let Some(c) = &self.code {
            write!(f, "{c} ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        let url = url::Url::parse("http://r.example/v2/").unwrap();
        let body = b"\x1b[2J\x1b]0;pwned\x07\r\nb pushed: evil\n";
        let e = RegistryError::from_status("POST", &url, 500, None, body);
        let shown = e.to_string();
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains("pushed: evil"), "{shown:?}");
        let env = br#"{"errors":[{"code":"X\u001b[2J","message":"m\u0007\r\nforged"}]}"#;
        let e = RegistryError::from_status("GET", &url, 400, None, env);
        assert!(!e.to_string().chars().any(|c| c.is_control()), "{e}");
    }

    #[test]
    fn envelope_and_hints() {
        let url = url::Url::parse("https://r.example/v2/a/blobs/uploads/x?_state=SECRET").unwrap();
        let e = RegistryError::from_status(
            "PUT",
            &url,
            404,
            None,
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        );
        let s = e.to_string();
        assert!(!s.contains("SECRET"), "{s}");
        assert!(
            s.contains("404 NAME_UNKNOWN repository name not known"),
            "{s}"
        );
        assert!(s.contains("ocibuild repos ensure"), "{s}");
        assert!(!e.is_retryable());
        let e = RegistryError::from_status(
            "PUT",
            &url,
            400,
            None,
            br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the repository is immutable."}]}"#,
        );
        assert!(e.to_string().contains("tags are immutable"), "{e}");
        let e = RegistryError::from_status("HEAD", &url, 401, None, b"");
        assert!(e.to_string().contains("401 Unauthorized"), "{e}");
        assert!(e.to_string().contains("check the credentials"), "{e}");
        let e = RegistryError::from_status("GET", &url, 503, None, b"busy");
        assert!(e.is_retryable());
        assert!(RegistryError::from_status("GET", &url, 429, None, b"").is_retryable());
        assert!(RegistryError::from_status("GET", &url, 408, None, b"").is_retryable());
        assert!(!RegistryError::from_status("GET", &url, 400, None, b"").is_retryable());
    }
}

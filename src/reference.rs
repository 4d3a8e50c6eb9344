//! Image references in a registry: `<host>[:port]/<repository>[:<tag>][@sha256:<hex>]`, as
//! written for a base image. The registry host is always explicit (no implicit Docker Hub):
//! `docker.io/library/debian:12` works, `debian:12` is refused with that fix. A reference
//! without tag or digest means `:latest`; with both, the digest decides what is used.
//! Pure: no I/O. Imports `digest`, `spec`.

use crate::digest::Digest;
use crate::spec::is_valid_tag;
use std::fmt;

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// As written.
    pub spelled: String,
    /// The registry host as written (`docker.io`, `127.0.0.1:5000`, ...).
    pub host: String,
    /// Repository path in the registry, e.g. `library/debian`.
    pub repository: String,
    /// Tag, if given (`latest` when neither tag nor digest was).
    pub tag: Option<String>,
    /// Digest, if pinned.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parse `s`. Errors say what is wrong and how to write it.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        let bad = |why: &str| {
            format!(
                "image reference {s:?}: {why}; write <registry>/<repository>:<tag> or <registry>/<repository>@sha256:<hex>"
            )
        };
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| format!("image reference {s:?}: {e}"))?,
                ),
            ),
            None => (s, None),
        };
        let (host, path) = name.split_once('/').unwrap_or(("", name));
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            let example = if name.contains('/') {
                format!("\"docker.io/{name}\"")
            } else {
                format!("\"docker.io/library/{name}\" or \"public.ecr.aws/docker/library/{name}\"")
            };
            let not = if host.is_empty() {
                String::new()
            } else {
                format!(" (\"{host}\" is not one)")
            };
            return Err(format!(
                "image reference {s:?} names no registry host{not}: write it in full, e.g. {example}"
            ));
        }
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) => (r, Some(t.to_string())),
            None => (path, None),
        };
        if repo.is_empty() {
            return Err(bad("the repository is empty"));
        }
        for part in repo.split('/') {
            let ok = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(bad(&format!(
                    "repository path component {part:?} is not lowercase letters, digits and . _ - (starting and ending with a letter or digit)"
                )));
            }
        }
        if let Some(t) = &tag {
            if !is_valid_tag(t) {
                return Err(bad(&format!("{t:?} is not a valid tag")));
            }
        }
        let mut repository = repo.to_string();
        if host == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            spelled: s.to_string(),
            host: host.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The host to send API requests to (Docker Hub's API lives on `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        api_host(&self.host)
    }

    /// The reference to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `host/repository` (where blobs of this image can be read by digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// `host/repository:tag` or `host/repository@digest` (the digest when pinned, so the
    /// name recorded in an image's annotations always designates what was used).
    pub fn canonical(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.name()),
            (None, Some(t)) => format!("{}:{t}", self.name()),
            (None, None) => self.name(),
        }
    }
}

/// The API host of registry `host` (Docker Hub's is `registry-1.docker.io`).
pub fn api_host(host: &str) -> &str {
    if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn tags_digests_ports_and_defaults() {
        let r = ImageRef::parse("127.0.0.1:5000/base/static:1.0").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "base/static");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest, None);
        assert_eq!(r.reference(), "1.0");
        assert_eq!(r.canonical(), "127.0.0.1:5000/base/static:1.0");

        let r = ImageRef::parse(&format!("public.ecr.aws/distroless/java17@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), D);
        assert_eq!(
            r.canonical(),
            format!("public.ecr.aws/distroless/java17@{D}")
        );

        // Tag and digest: the digest decides.
        let r = ImageRef::parse(&format!("localhost/x:1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.reference(), D);

        let r = ImageRef::parse("ghcr.io/org/app").unwrap();
        assert_eq!(r.reference(), "latest");

        let r = ImageRef::parse("docker.io/debian:12").unwrap();
        assert_eq!(r.repository, "library/debian");
        assert_eq!(r.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn refusals_say_how_to_write_it() {
        let e = ImageRef::parse("debian:12").unwrap_err();
        assert!(e.contains("names no registry host"), "{e}");
        assert!(e.contains("\"docker.io/library/debian:12\""), "{e}");
        let e = ImageRef::parse("eclipse/temurin:17").unwrap_err();
        assert!(e.contains("docker.io/eclipse/temurin:17"), "{e}");
        let e = ImageRef::parse("r.example/App:1").unwrap_err();
        assert!(e.contains("\"App\""), "{e}");
        let e = ImageRef::parse("r.example/app@sha256:abc").unwrap_err();
        assert!(e.contains("64"), "{e}");
        let e = ImageRef::parse("r.example/app:-x").unwrap_err();
        assert!(e.contains("not a valid tag"), "{e}");
        assert!(ImageRef::parse("r.example/").is_err());
        assert!(ImageRef::parse("r.example//a").is_err());
    }
}

//! Image references in a registry: `<host>[:port]/<repository>[:<tag>][@sha256:<hex>]`, as
//! written for a base image. The registry host is always explicit (no implicit Docker Hub):
//! `docker.io/library/debian:12` works, `debian:12` is refused with that fix. A reference
//! without tag or digest means `:latest`; with both, the digest decides what is used.
//! Pure: no I/O. Imports `digest`, `spec`.

use crate::digest::Digest;
use crate::spec::{is_valid_repository, is_valid_tag};
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
        let shown = without_userinfo(s);
        let bad = |why: &str| {
            format!(
                "image reference {shown:?}: {why}; write <registry>/<repository>:<tag> or <registry>/<repository>@sha256:<hex>"
            )
        };
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| format!("image reference {shown:?}: {e}"))?,
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
                "image reference {shown:?} names no registry host{not}: write it in full, e.g. {example}"
            ));
        }
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) => (r, Some(t.to_string())),
            None => (path, None),
        };
        if let Err(why) = check_host(host) {
            return Err(bad(&why));
        }
        if repo.is_empty() {
            return Err(bad("the repository is empty"));
        }
        let mut repository = repo.to_string();
        if host == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !is_valid_repository(&repository) {
            return Err(bad(&format!(
                "repository {repo:?} is not lowercase letters and digits with '.', '_', '__' or '-' between them, in components split by '/' (at most 255 characters)"
            )));
        }
        if let Some(t) = &tag {
            if !is_valid_tag(t) {
                return Err(bad(&format!("{t:?} is not a valid tag")));
            }
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

/// The scheme a registry is reached over, when the user wrote one (`https://...`,
/// `http://...`): always honoured, for any host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// TLS.
    Https,
    /// Plain HTTP.
    Http,
}

/// `s` as it may be shown in a message: a `user:password@` before the host is replaced by
/// `***@`, so a credential typed into a registry or image reference never reaches output.
pub fn without_userinfo(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((sc, r)) => (format!("{sc}://"), r),
        None => (String::new(), s),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => s.to_string(),
    }
}

/// `Ok` when `host` is a registry host as references and URLs spell it: a DNS name (labels of
/// letters, digits and inner `-`, split by `.`), an IPv4 address or a bracketed IPv6 address,
/// with an optional `:port` (1-65535). Else why not.
pub fn check_host(host: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("registry host {:?} {why}", without_userinfo(host)));
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return bad("has no closing ']'");
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("is not a valid IPv6 address in brackets");
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return bad("has something after ']' that is not :port"),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let label_ok = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return bad(
                "is not a host name: labels of letters, digits and inner '-', split by '.'",
            );
        }
    }
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return bad("has an invalid port: 1-65535");
        }
    }
    Ok(())
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

    #[test]
    fn a_password_typed_into_a_reference_is_never_echoed() {
        for input in [
            "alice:s3cret@registry.example/app:v1",
            "https://alice:s3cret@h:1/x",
        ] {
            let e = ImageRef::parse(input).unwrap_err();
            assert!(!e.contains("s3cret") && e.contains("***"), "{e}");
        }
        assert_eq!(without_userinfo("h:5000/a@sha256:00"), "h:5000/a@sha256:00");
    }

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

    #[test]
    fn hosts_that_are_not_hosts_are_refused() {
        for bad in [
            "user:pw@evil.example/x:1",
            "r.example:0/x",
            "r.example:65536/x",
            "r.example:/x",
            "r_x.example/x",
            "-r.example/x",
            "[::1/x",
            "[nope]:5000/x",
            "r.example:5000:1/x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
        for ok in [
            "[::1]:5000/x",
            "127.0.0.1/x",
            "Registry.Example:443/x",
            "localhost/x",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok:?} refused");
        }
    }

    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        fn host() -> impl Strategy<Value = String> {
            (
                prop_oneof![
                    "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?(\\.[a-z][a-z0-9]{0,8}){1,3}",
                    Just("localhost".to_string()),
                    "127\\.[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
                    Just("[::1]".to_string()),
                ],
                proptest::option::of(1u32..=65535),
            )
                .prop_map(|(h, p)| match p {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                })
        }

        fn repository() -> impl Strategy<Value = String> {
            prop::collection::vec("[a-z0-9]{1,6}((\\.|_|__|-+)[a-z0-9]{1,6}){0,2}", 1..4)
                .prop_map(|p| p.join("/"))
        }

        proptest! {

            #[test]
            fn parse_never_panics(s in any::<String>()) {
                let _ = ImageRef::parse(&s);
                let _ = check_host(&s);
            }

            #[test]
            fn reference_like_text_never_panics(s in "[a-zA-Z0-9.:/@_\\[\\]-]{0,80}") {
                if let Ok(r) = ImageRef::parse(&s) {
                    // What parses is safe to put in a URL and a cache key.
                    prop_assert!(check_host(&r.host).is_ok());
                    prop_assert!(crate::spec::is_valid_repository(&r.repository));
                    prop_assert!(r.tag.is_some() || r.digest.is_some());
                }
            }

            #[test]
            fn valid_references_round_trip(
                host in host(),
                repo in repository(),
                tag in proptest::option::of("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}"),
                digest in proptest::option::of("[0-9a-f]{64}"),
            ) {
                prop_assume!(host != "docker.io");
                let mut s = format!("{host}/{repo}");
                if let Some(t) = &tag {
                    s.push(':');
                    s.push_str(t);
                }
                if let Some(d) = &digest {
                    s.push_str("@sha256:");
                    s.push_str(d);
                }
                let r = ImageRef::parse(&s).unwrap();
                prop_assert_eq!(&r.host, &host);
                prop_assert_eq!(&r.repository, &repo);
                prop_assert_eq!(r.digest.as_ref().map(|d| d.hex().to_string()), digest.clone());
                let want_tag = match (&tag, &digest) {
                    (None, None) => Some("latest".to_string()),
                    _ => tag.clone(),
                };
                prop_assert_eq!(&r.tag, &want_tag);
                // parse(display(x)) == x, and the canonical form names the same image.
                prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r.clone());
                let c = ImageRef::parse(&r.canonical()).unwrap();
                prop_assert_eq!(c.name(), r.name());
                prop_assert_eq!(c.reference(), r.reference());
            }
        }
    }
}

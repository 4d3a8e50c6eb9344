//! Package URLs (purl-spec): percent-encoding of each component and the forms of the types we
//! write (`npm`, `maven`, `golang`, `pypi`, `oci`). Pure.

use crate::digest::Digest;

/// Percent-encode `s`, keeping the unreserved characters and those of `keep`.
fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path of segments (namespace and name), each encoded, joined with `/`.
fn segments(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| encode(s, b""))
        .collect::<Vec<_>>()
        .join("/")
}

/// `pkg:<ty>/<path>@<version>`, the version encoded (empty: left out).
fn plain(ty: &str, path: &str, version: &str) -> String {
    if version.is_empty() {
        format!("pkg:{ty}/{}", segments(path))
    } else {
        format!("pkg:{ty}/{}@{}", segments(path), encode(version, b""))
    }
}

/// `pkg:npm/%40scope/name@v` (names lowercased, as the type asks).
pub fn npm(name: &str, version: &str) -> String {
    plain("npm", &name.to_lowercase(), version)
}

/// `pkg:maven/group/artifact@v`.
pub fn maven(group: &str, artifact: &str, version: &str) -> String {
    format!(
        "pkg:maven/{}/{}@{}",
        encode(group, b""),
        encode(artifact, b""),
        encode(version, b"")
    )
}

/// `pkg:golang/host/path@v` (namespace and name lowercased, as the type asks).
pub fn golang(module: &str, version: &str) -> String {
    plain("golang", &module.to_lowercase(), version)
}

/// The PEP 503 normalised name: lowercase, runs of `-`, `_`, `.` as one `-`.
pub fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// `pkg:pypi/<normalised name>@v`.
pub fn pypi(name: &str, version: &str) -> String {
    format!(
        "pkg:pypi/{}@{}",
        encode(&pep503(name), b""),
        encode(version, b"")
    )
}

/// The last `/`-separated component of a repository.
pub fn last_component(repository: &str) -> &str {
    repository.rsplit('/').next().unwrap_or(repository)
}

/// A reference `host[:port]/path[:tag][@digest]` split into its repository and tag.
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    let no_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    let slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[slash..].rfind(':') {
        Some(i) => (
            &no_digest[..slash + i],
            Some(&no_digest[slash + i + 1..]).filter(|t| !t.is_empty()),
        ),
        None => (no_digest, None),
    }
}

/// `pkg:oci/<name>@sha256%3A<hex>?arch=..&repository_url=..&tag=..` (qualifiers sorted by
/// key; the name is the repository's last component, lowercased; `repository_url` the whole
/// repository, as the type's examples spell it).
pub fn oci(repository: &str, digest: &Digest, arch: Option<&str>, tag: Option<&str>) -> String {
    let name = last_component(repository).to_lowercase();
    let mut q = Vec::new();
    if let Some(a) = arch {
        q.push(format!("arch={}", encode(a, b"")));
    }
    if !repository.is_empty() {
        q.push(format!("repository_url={}", encode(repository, b"/:")));
    }
    if let Some(t) = tag {
        q.push(format!("tag={}", encode(t, b"")));
    }
    let mut s = format!(
        "pkg:oci/{}@{}",
        encode(&name, b""),
        encode(digest.as_str(), b"")
    );
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_urls_follow_each_type() {
        assert_eq!(npm("@Scope/Name", "1.2.3"), "pkg:npm/%40scope/name@1.2.3");
        assert_eq!(npm("express", "4.18.2"), "pkg:npm/express@4.18.2");
        assert_eq!(
            maven("org.springframework", "spring-core", "6.1.0"),
            "pkg:maven/org.springframework/spring-core@6.1.0"
        );
        assert_eq!(
            golang("github.com/Foo/bar", "v1.2.3+incompatible"),
            "pkg:golang/github.com/foo/bar@v1.2.3%2Bincompatible"
        );
        assert_eq!(pypi("Foo_Bar..baz", "2.0"), "pkg:pypi/foo-bar-baz@2.0");
        assert_eq!(pep503("__a__"), "a");
    }

    #[test]
    fn oci_urls_name_the_last_component_and_the_whole_repository() {
        let d = Digest::of(b"x");
        let hex = d.hex();
        assert_eq!(
            oci("localhost:5000/shop/Cart", &d, Some("arm64"), Some("v1")),
            format!(
                "pkg:oci/cart@sha256%3A{hex}?arch=arm64&repository_url=localhost:5000/shop/Cart&tag=v1"
            )
        );
        assert_eq!(
            split_reference("host:5000/a/b:12@sha256:00"),
            ("host:5000/a/b", Some("12"))
        );
        assert_eq!(split_reference("host:5000/a/b"), ("host:5000/a/b", None));
    }
}

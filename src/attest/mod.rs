//! Supply-chain attestations of an image: the packages found in its own layers (`packages`),
//! the SBOM documents describing a platform manifest (`spdx`: SPDX 2.3 JSON, `cyclonedx`:
//! CycloneDX 1.6 JSON) and the provenance statement about an image (`provenance`: in-toto
//! Statement v1 with a SLSA provenance v1 predicate).
//!
//! Invariants: detection never panics and never reads unbounded input (every file read has a
//! cap, a malformed file yields no package and a warning); SBOM documents are deterministic
//! bytes (same subject, same bytes: packages sorted, identifiers derived from the manifest
//! digest, the time from `SOURCE_DATE_EPOCH`).
//! Imports `digest`, `platform`, `spec` only: the caller (`build`) turns a layer's walk into
//! [`packages::LayerFile`]s.

pub mod cyclonedx;
mod elf;
pub mod packages;
pub mod provenance;
mod purl;
pub mod spdx;
mod zip;

use crate::digest::Digest;
use packages::Package;

/// The base image an image was built on.
#[derive(Debug, Clone, Copy)]
pub struct BaseImage<'a> {
    /// As in `org.opencontainers.image.base.name` (`host[:port]/path/name[:tag][@digest]`).
    pub name: &'a str,
    /// The base's manifest digest.
    pub digest: &'a Digest,
}

/// What an SBOM describes: one platform manifest of an image and the packages in its layers.
#[derive(Debug, Clone, Copy)]
pub struct SbomSubject<'a> {
    /// `host[:port]/path/name`, the repository the image is pushed to.
    pub repository: &'a str,
    /// The platform manifest (the SBOM's subject).
    pub manifest_digest: &'a Digest,
    /// The manifest's platform.
    pub platform: &'a crate::platform::Platform,
    /// The registry base, if any.
    pub base: Option<BaseImage<'a>>,
    /// The packages found in the image's own layers.
    pub packages: &'a [Package],
    /// Seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub created: u64,
    /// The producing tool, e.g. `ocibuild-0.1.0`.
    pub tool: &'a str,
}

impl SbomSubject<'_> {
    /// The packages, sorted and without duplicates (the documents' order).
    fn sorted_packages(&self) -> Vec<&Package> {
        let mut v: Vec<&Package> = self.packages.iter().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The image's package URL (`pkg:oci/<name>@sha256%3A<hex>?arch=..&repository_url=..`).
    fn image_purl(&self) -> String {
        purl::oci(
            self.repository,
            self.manifest_digest,
            Some(&self.platform.arch),
            None,
        )
    }

    /// The image's short name: the last component of its repository.
    fn image_name(&self) -> &str {
        purl::last_component(self.repository)
    }
}

impl BaseImage<'_> {
    /// The base's repository (without tag or digest) and its tag, if it names one.
    fn repository_and_tag(&self) -> (&str, Option<&str>) {
        purl::split_reference(self.name)
    }

    /// The base's package URL.
    fn purl(&self, arch: &str) -> String {
        let (repo, tag) = self.repository_and_tag();
        purl::oci(repo, self.digest, Some(arch), tag)
    }
}

/// A name-based UUID (RFC 9562 layout, version bits 5 as CycloneDX's schema requires; the 16
/// bytes are the start of a SHA-256 rather than SHA-1) of `kind` and the manifest digest.
fn uuid_of(kind: &str, digest: &Digest) -> String {
    let h = Digest::of(format!("ocibuild-{kind}:{digest}").as_bytes());
    let hex = h.hex();
    let mut b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// The tool string split into name and version (`ocibuild-0.1.0` -> `ocibuild`, `0.1.0`).
fn tool_name_version(tool: &str) -> (&str, Option<&str>) {
    match tool.rsplit_once('-') {
        Some((n, v)) if !n.is_empty() && v.starts_with(|c: char| c.is_ascii_digit()) => {
            (n, Some(v))
        }
        _ => (tool, None),
    }
}

#[cfg(test)]
mod tests {
    use super::packages::Ecosystem;
    use super::*;

    /// A manifest digest, a base digest, a platform and three packages.
    pub(super) fn subject_fixture() -> (Digest, Digest, crate::platform::Platform, Vec<Package>) {
        let p =
            |ecosystem, name: &str, version: &str, purl: &str, path: &str, sha: Option<String>| {
                Package {
                    ecosystem,
                    name: name.into(),
                    version: version.into(),
                    purl: purl.into(),
                    path: path.into(),
                    sha256: sha,
                }
            };
        let packages = vec![
            p(
                Ecosystem::Npm,
                "@scope/x",
                "1.0.0",
                "pkg:npm/%40scope/x@1.0.0",
                "/app/package-lock.json",
                None,
            ),
            p(
                Ecosystem::Maven,
                "org.example:lib",
                "2.0",
                "pkg:maven/org.example/lib@2.0",
                "/app/lib.jar",
                Some("ab".repeat(32)),
            ),
            p(
                Ecosystem::Python,
                "Foo_Bar",
                "3.1",
                "pkg:pypi/foo-bar@3.1",
                "/usr/lib/foo_bar-3.1.dist-info/METADATA",
                None,
            ),
        ];
        let platform = "linux/arm64".parse().unwrap();
        (
            Digest::of(b"manifest"),
            Digest::of(b"base"),
            platform,
            packages,
        )
    }

    #[test]
    fn uuids_are_stable_well_formed_and_differ_by_kind() {
        let d = Digest::of(b"manifest");
        let a = uuid_of("spdx", &d);
        assert_eq!(a, uuid_of("spdx", &d));
        assert_ne!(a, uuid_of("cyclonedx", &d));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn tool_strings_split_at_the_version() {
        assert_eq!(
            tool_name_version("ocibuild-0.1.0"),
            ("ocibuild", Some("0.1.0"))
        );
        assert_eq!(tool_name_version("my-tool"), ("my-tool", None));
    }
}

//! Target platforms (`os/arch[/variant]`), parsed and normalised the way the OCI image index
//! spells them: `linux/arm64` is `linux/arm64/v8`, `linux/amd64` has no variant.
//!
//! Never derived from the host: a platform only comes from the config or the command line.
//! Imports nothing from the rest of the crate.

use std::fmt;
use std::str::FromStr;

/// An OCI platform, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// GOOS value, e.g. `linux`.
    pub os: String,
    /// GOARCH value, e.g. `arm64`.
    pub arch: String,
    /// CPU variant, e.g. `v8`; `None` where the architecture has none.
    pub variant: Option<String>,
}

const OSES: &[&str] = &["linux"];
const ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64",
];

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64"
            ));
        }
        let (os, arch) = (parts[0], parts[1]);
        if !OSES.contains(&os) {
            return Err(format!(
                "unsupported os {os:?} in platform {s:?}: supported: {}",
                OSES.join(", ")
            ));
        }
        if !ARCHES.contains(&arch) {
            return Err(format!(
                "unsupported architecture {arch:?} in platform {s:?}: supported: {}",
                ARCHES.join(", ")
            ));
        }
        let variant = match (arch, parts.get(2).copied()) {
            ("arm64", None) | ("arm64", Some("v8")) => Some("v8".to_string()),
            ("arm64", Some(v)) => {
                return Err(format!(
                    "invalid variant {v:?} in platform {s:?}: arm64 takes v8"
                ))
            }
            ("arm", None) => Some("v7".to_string()),
            ("arm", Some(v @ ("v5" | "v6" | "v7"))) => Some(v.to_string()),
            ("arm", Some(v)) => {
                return Err(format!(
                    "invalid variant {v:?} in platform {s:?}: arm takes v5, v6 or v7"
                ))
            }
            ("amd64", Some(v @ ("v1" | "v2" | "v3" | "v4"))) => Some(v.to_string()),
            (_, Some(v)) => {
                return Err(format!(
                    "invalid variant {v:?} in platform {s:?}: {arch} takes none"
                ))
            }
            (_, None) => None,
        };
        Ok(Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant,
        })
    }
}

impl TryFrom<String> for Platform {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Whether a base image's platform (as written in its index or config) serves this one.
    /// A missing variant in the base matches the default variant (`arm64` = `arm64/v8`).
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let normalised = Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.map(str::to_string),
        };
        let default_variant = format!("{os}/{arch}")
            .parse::<Platform>()
            .ok()
            .and_then(|p| p.variant);
        self.os == normalised.os
            && self.arch == normalised.arch
            && (self.variant == normalised.variant
                || (variant.is_none() && self.variant == default_variant))
    }

    /// The oci-spec form, built field by field (never `Platform::default()`, which is the host's).
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(oci_spec::image::Os::from(self.os.as_str()));
        p.set_architecture(oci_spec::image::Arch::from(self.arch.as_str()));
        p.set_variant(self.variant.clone());
        p
    }

    /// Values for the `{os}`, `{arch}` and `{variant}` placeholders.
    pub fn placeholder(&self, name: &str) -> Option<&str> {
        match name {
            "os" => Some(&self.os),
            "arch" => Some(&self.arch),
            "variant" => Some(self.variant.as_deref().unwrap_or("")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_arm64_to_v8() {
        let p: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(p, "linux/arm64/v8".parse().unwrap());
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
    }

    #[test]
    fn rejects_bad_platforms() {
        for bad in [
            "linux",
            "linux/",
            "windows/amd64",
            "linux/sparc",
            "linux/arm64/v7",
            "a/b/c/d",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_base_platforms() {
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(arm.matches("linux", "arm64", None));
        assert!(!arm.matches("linux", "amd64", None));
        let amd: Platform = "linux/amd64".parse().unwrap();
        assert!(amd.matches("linux", "amd64", None));
        assert!(!amd.matches("linux", "arm64", None));
    }

    #[test]
    fn oci_form_is_explicit() {
        let p = "linux/arm64".parse::<Platform>().unwrap().to_oci();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"os":"linux","architecture":"arm64","variant":"v8"})
        );
    }
}

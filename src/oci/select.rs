//! The one platform rule, for layout bases, registry bases and anything else that picks
//! images out of an index: for each requested platform, the first image entry whose platform
//! matches (arm64 takes variant v8 or none, see `Platform::matches`). An entry's platform is
//! the one its index declares, else its config's. Entries declaring `unknown/unknown`
//! (BuildKit's attestation manifests) are never chosen nor offered in errors. Pure.
//! Imports `platform`.

use super::{platform_string, OciError, Result};
use crate::platform::Platform;

/// A candidate image's platform as written (in an index entry or a config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// OS, e.g. `linux`.
    pub os: String,
    /// Architecture, e.g. `arm64`.
    pub arch: String,
    /// Variant, if written.
    pub variant: Option<String>,
}

impl Declared {
    /// Whether this is an attestation or other non-image entry (`unknown/unknown`).
    pub fn is_attestation(&self) -> bool {
        self.os == "unknown" || self.arch == "unknown"
    }

    /// `os/arch[/variant]`.
    pub fn spelled(&self) -> String {
        platform_string(&self.os, &self.arch, self.variant.as_deref())
    }
}

/// For each of `wanted`, the position in `candidates` of the image serving it. `image` names
/// the image in errors.
pub fn choose(candidates: &[Declared], wanted: &[Platform], image: &str) -> Result<Vec<usize>> {
    wanted
        .iter()
        .map(|p| {
            candidates
                .iter()
                .position(|c| {
                    !c.is_attestation() && p.matches(&c.os, &c.arch, c.variant.as_deref())
                })
                .ok_or_else(|| missing(image, p, candidates))
        })
        .collect()
}

/// `image` has no image for `platform`.
fn missing(image: &str, platform: &Platform, candidates: &[Declared]) -> OciError {
    let available: Vec<String> = candidates
        .iter()
        .filter(|c| !c.is_attestation())
        .map(Declared::spelled)
        .collect();
    OciError::MissingPlatform {
        image: image.to_string(),
        platform: platform.clone(),
        available: if available.is_empty() {
            "no images with a platform".into()
        } else {
            available.join(", ")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(os: &str, arch: &str, variant: Option<&str>) -> Declared {
        Declared {
            os: os.into(),
            arch: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn first_match_wins_and_arm64_takes_v8_or_none() {
        let c = [
            d("linux", "amd64", None),
            d("unknown", "unknown", None),
            d("linux", "arm", Some("v7")),
            d("linux", "arm64", None),
            d("linux", "arm64", Some("v8")),
        ];
        assert_eq!(
            choose(&c, &[p("linux/arm64"), p("linux/amd64")], "b").unwrap(),
            [3, 0]
        );
        assert_eq!(choose(&c, &[p("linux/arm/v7")], "b").unwrap(), [2]);
    }

    #[test]
    fn attestations_are_neither_chosen_nor_offered() {
        let c = [d("unknown", "unknown", None), d("linux", "amd64", None)];
        let e = choose(&c, &[p("linux/s390x")], "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no image for linux/s390x"), "{e}");
        assert!(e.contains("(it has: linux/amd64)"), "{e}");
        let only = [d("unknown", "unknown", None)];
        let e = choose(&only, &[p("linux/amd64")], "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no images with a platform"), "{e}");
    }

    #[test]
    fn a_variant_must_match_when_both_have_one() {
        let c = [d("linux", "arm", Some("v6"))];
        assert!(choose(&c, &[p("linux/arm/v7")], "b").is_err());
    }
}

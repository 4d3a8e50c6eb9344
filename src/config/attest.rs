//! `[attest]` and `[sign]`: what is attached to every pushed image. An SBOM per platform
//! manifest (`sbom = "spdx" | "cyclonedx" | "none"`, default SPDX), a provenance statement
//! (`provenance = true | false`, default true), and signatures when a key is named
//! (`[sign] key = "PATH"`, relative to the config file's directory).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The SBOM format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// No SBOM.
    None,
}

impl SbomFormat {
    /// `spdx`, `cyclonedx` or `none`, as the config and `--sbom` spell it.
    pub fn parse(s: &str) -> Option<SbomFormat> {
        match s {
            "spdx" => Some(SbomFormat::Spdx),
            "cyclonedx" => Some(SbomFormat::Cyclonedx),
            "none" => Some(SbomFormat::None),
            _ => None,
        }
    }
}

/// What is attached to pushed images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestSettings {
    /// The SBOM format.
    pub sbom: SbomFormat,
    /// Whether a provenance statement is attached.
    pub provenance: bool,
    /// The signing key, resolved against the config's directory.
    pub sign_key: Option<PathBuf>,
}

impl Default for AttestSettings {
    fn default() -> Self {
        AttestSettings {
            sbom: SbomFormat::Spdx,
            provenance: true,
            sign_key: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttest {
    pub(super) sbom: Option<SbomFormat>,
    pub(super) provenance: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSign {
    pub(super) key: Option<String>,
}

/// The settings from the two sections (either may be absent).
pub(super) fn settings(
    attest: Option<RawAttest>,
    sign: Option<RawSign>,
    dir: &Path,
) -> AttestSettings {
    let d = AttestSettings::default();
    let (sbom, provenance) = match attest {
        Some(a) => (
            a.sbom.unwrap_or(d.sbom),
            a.provenance.unwrap_or(d.provenance),
        ),
        None => (d.sbom, d.provenance),
    };
    let sign_key = sign.and_then(|s| s.key).map(|k| dir.join(k));
    AttestSettings {
        sbom,
        provenance,
        sign_key,
    }
}

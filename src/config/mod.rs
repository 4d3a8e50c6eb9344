//! The `ocibuild.toml` model: parsed, validated and resolved against the file's directory.
//!
//! Parsing is strict: unknown keys, missing required keys and bad values are errors that name
//! the file, line and column (value types validate themselves while deserializing, so serde and
//! toml attach the span). Relative paths in the file are relative to the file's directory.
//! Imports `digest` (the file's own digest), `platform`, `reference` and `spec`; nothing here
//! touches the file system beyond finding and reading the file.
//!
//! This module holds [`Config`] and its loading; the pieces live in submodules, all re-exported
//! here (use `crate::config::X`, not the submodule paths):
//! - `model`: services, layers, bases, source templates, compression, and the rules values
//!   follow;
//! - `registry`: where images are pushed and how credentials are found (ECR host names);
//! - `repositories`: the repository settings and lifecycle rules ocibuild enforces;
//! - `raw`: the file's shape as serde reads it, and the self-validating value types;
//! - `parse`: from that raw shape to a `Config`, section by section, with positioned errors;
//! - `resolve`: the file's directory and the paths resolved against it.
//!
//! Within `config`, dependencies point down: `parse` > `raw` > `registry` > `model`,
//! `repositories`; `resolve` > `model`.

mod attest;
mod cache;
mod model;
mod parse;
#[cfg(test)]
mod proptests;
mod raw;
mod registry;
mod repositories;
mod resolve;

pub use attest::{AttestSettings, SbomFormat};
pub use cache::{CacheSettings, DEFAULT_CACHE_REPOSITORY};
pub use model::{
    is_valid_repository, normalise_image_path, BaseRef, Compression, LayerConfig, Service,
    SourceTemplate,
};
pub use registry::{parse_ecr_host, AuthMode, EcrHost, RegistryConfig, Scheme};
pub use repositories::{
    default_lifecycle, validate_lifecycle, Encryption, LifecycleRule, RepositorySettings,
    TagMutability, TagStatus,
};

use crate::platform::Platform;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config file name looked up in the current directory.
pub const DEFAULT_FILE: &str = "ocibuild.toml";

/// A config error, already formatted with file and position.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A loaded, validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, as given.
    pub file: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// Platforms to build, in order.
    pub platforms: Vec<Platform>,
    /// Services by name (sorted).
    pub services: BTreeMap<String, Service>,
    /// The registry to push to, if the file names one.
    pub registry: Option<RegistryConfig>,
    /// How every service's repository is set up (`ocibuild repos ensure`).
    pub repositories: RepositorySettings,
    /// Paths (relative to the config's directory) whose change marks every service changed.
    pub shared_paths: Vec<String>,
    /// The branch that gets the `latest` tag.
    pub default_branch: String,
    /// The tag kinds (and literal tags) the project pushes (`[ci] tags`): what `repos ensure`
    /// and `push --create-repos` check the lifecycle rules against.
    pub tag_kinds: Vec<String>,
    /// How layers are compressed (`[build] compression`, `compression_level`).
    pub compression: Compression,
    /// What pushed images carry besides themselves (`[attest]`, `[sign]`).
    pub attest: AttestSettings,
    /// The registry layer cache (`[cache]`).
    pub cache: CacheSettings,
    /// The digest of the file's text as parsed (what provenance names).
    pub digest: crate::digest::Digest,
}

impl Config {
    /// Find the config: `explicit` if given, else `ocibuild.toml` in the current directory.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        match explicit {
            Some(p) => Ok(p.to_path_buf()),
            None => {
                let p = PathBuf::from(DEFAULT_FILE);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(ConfigError(format!(
                        "no {DEFAULT_FILE} in the current directory: run ocibuild where it is, or pass --config FILE"
                    )))
                }
            }
        }
    }

    /// Find (see [`Config::locate`]) and load the config.
    pub fn find_and_load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load(&Self::locate(explicit)?)
    }

    /// Read and validate the config file at `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(file)
            .map_err(|e| ConfigError(format!("reading config file {}: {e}", file.display())))?;
        Self::parse(&src, file, &resolve::config_dir(file))
    }

    /// The services named, in the order given, or all of them when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>, ConfigError> {
        if names.is_empty() {
            return Ok(self.services.values().collect());
        }
        let mut out: Vec<&Service> = Vec::new();
        for n in names {
            let s = self.services.get(n).ok_or_else(|| {
                ConfigError(format!(
                    "unknown service {n:?}: {} defines {}",
                    self.file.display(),
                    self.services.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            if !out.iter().any(|o| o.name == s.name) {
                out.push(s);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::parse::tests::{parse, MINIMAL};

    #[test]
    fn select_services() {
        let c = parse(&format!(
            "{MINIMAL}\n[services.cart]\nrepository = \"c\"\n[[services.cart.layers]]\nsource = \"x\"\ntarget = \"/\"\n"
        ))
        .unwrap();
        assert_eq!(c.select(&[]).unwrap().len(), 2);
        assert_eq!(c.select(&["cart".into()]).unwrap()[0].name, "cart");
        let e = c.select(&["nope".into()]).unwrap_err().0;
        assert!(
            e.contains("unknown service \"nope\"") && e.contains("cart, catalog"),
            "{e}"
        );
    }
}

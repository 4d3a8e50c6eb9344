//! `[cache]`: the registry layer cache. `registry = true | false` (default true: `push`, and
//! `build` when a registry is configured, read it) and `repository` (default
//! `ocibuild-cache`, under the push registry's prefix): where the per-service, per-branch
//! cache documents and the blobs they name are kept.

use super::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// The registry cache's repository when the config names none.
pub const DEFAULT_CACHE_REPOSITORY: &str = "ocibuild-cache";

/// The registry layer cache's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Whether the registry cache is used at all.
    pub registry: bool,
    /// The cache repository's name, before the registry's prefix.
    pub repository: String,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            registry: true,
            repository: DEFAULT_CACHE_REPOSITORY.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) registry: Option<bool>,
    pub(super) repository: Option<String>,
}

/// The settings of the `[cache]` section of `file` (absent: the defaults).
pub(super) fn settings(raw: Option<RawCache>, file: &Path) -> Result<CacheSettings, ConfigError> {
    let d = CacheSettings::default();
    let Some(raw) = raw else { return Ok(d) };
    let repository = raw.repository.unwrap_or(d.repository);
    if !crate::spec::is_valid_repository(&repository) {
        return Err(ConfigError(format!(
            "{}: [cache] repository {repository:?} is not a valid repository name: use lowercase \
             letters, digits and separators (., _, -, /), e.g. \"{DEFAULT_CACHE_REPOSITORY}\"",
            file.display()
        )));
    }
    Ok(CacheSettings {
        registry: raw.registry.unwrap_or(d.registry),
        repository,
    })
}

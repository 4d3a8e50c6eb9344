//! Where `OUT` and the layer cache may be: outside every layer source (they would end up in
//! the image, and each build would differ), checked before anything is created; and `OUT`
//! itself, a directory whose `OUT/<service>` entries are absent or OCI layouts we may replace.

use super::BuildError;
use crate::config::{Config, Service};
use crate::platform::Platform;
use std::fs;
use std::path::{Path, PathBuf};

/// Refuse an output or cache directory inside (or equal to) a layer's source directory: the
/// layouts (or cached blobs) would end up in the image, and each build would differ.
pub(super) fn outside_sources(
    config: &Config,
    services: &[&Service],
    platforms: &[Platform],
    out: &Path,
    cache: Option<&Path>,
) -> Result<(), BuildError> {
    let canon = |p: &Path| fs::canonicalize(p).ok();
    let mut ours = vec![("output directory (--out)", out)];
    ours.extend(cache.map(|c| ("layer cache directory (--cache-dir)", c)));
    for svc in services {
        for p in platforms {
            for lc in &svc.layers {
                let rel = lc.source.expand(p);
                let Some(source) = canon(&config.dir.join(&rel)).filter(|s| s.is_dir()) else {
                    continue;
                };
                for (what, dir) in &ours {
                    if resolved(dir).is_some_and(|d| d.starts_with(&source)) {
                        return Err(BuildError::Output {
                            path: dir.to_path_buf(),
                            message: format!(
                                "the {what} is inside layer source {} of service {} (-> {}): it would end up in the image; choose a {what} outside every layer source",
                                source.display(),
                                svc.name,
                                lc.target
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Refuse an output or cache directory inside a layer source of the services `names` (empty:
/// all) on `platforms` (None: the config's), before anything is created: the app asks this
/// before it opens (and so creates) the cache.
pub fn check_dirs(
    config: &Config,
    names: &[String],
    platforms: Option<&[Platform]>,
    out: &Path,
    cache: Option<&Path>,
) -> Result<(), BuildError> {
    let services = config.select(names)?;
    let platforms = platforms.unwrap_or(&config.platforms);
    outside_sources(config, &services, platforms, out, cache)
}

/// `p` made absolute with symlinks resolved, also when its last components do not exist yet
/// (they are taken as written, `..` removing the one before).
fn resolved(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(p).ok()?;
    let mut out = PathBuf::from("/");
    let mut exists = true;
    for c in abs.components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                if exists {
                    match fs::canonicalize(&out) {
                        Ok(real) => out = real,
                        Err(_) => exists = false,
                    }
                }
            }
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Make sure `out` exists and every `out/<service>` is absent or an OCI layout we may replace.
pub(super) fn prepare_out(out: &Path, services: &[&Service]) -> Result<(), BuildError> {
    if out.exists() && !out.is_dir() {
        return Err(BuildError::Output {
            path: out.to_path_buf(),
            message: "exists and is not a directory: choose another --out".into(),
        });
    }
    fs::create_dir_all(out).map_err(|e| BuildError::Output {
        path: out.to_path_buf(),
        message: format!("cannot create it ({e}): choose a writable --out"),
    })?;
    for s in services {
        let dest = out.join(&s.name);
        if dest.exists() && !dest.join("oci-layout").is_file() {
            return Err(BuildError::Output {
                path: dest,
                message: "exists and is not an OCI layout; refusing to replace it: move it away or choose another --out".into(),
            });
        }
    }
    Ok(())
}

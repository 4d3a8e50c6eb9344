//! Packages found in a layer's tree: npm (`package-lock.json`, `node_modules/**/package.json`),
//! Maven (`pom.properties` inside jars and wars, and inside their `BOOT-INF/lib` /
//! `WEB-INF/lib` jars), Go (the `.go.buildinfo` section of ELF executables) and Python
//! (`*.dist-info/METADATA`).
//!
//! Every read is bounded ([`LOCKFILE_MAX`], [`SMALL_MAX`], the zip and ELF readers' caps) and
//! a malformed file yields no package and a warning naming it; nothing here panics on input.
//! Duplicates: one package per (ecosystem, name, version, sha256); of several places holding
//! it, the smallest image path (byte order) is kept. So an npm package both in a lockfile and
//! installed under `node_modules` is reported once, at whichever path sorts first.

use super::{elf, purl, zip};
use crate::digest::file::{hash_file, open_regular, read_bounded};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;

/// The largest `package-lock.json` read.
pub const LOCKFILE_MAX: u64 = 64 << 20;
/// The largest `package.json`, `pom.properties` or `METADATA` read.
pub const SMALL_MAX: u64 = 1 << 20;
/// The deepest nesting of a lockfile version 1 `dependencies` tree followed.
const NPM_DEPTH: usize = 64;

/// A package ecosystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// npm (Node.js).
    Npm,
    /// Maven (Java).
    Maven,
    /// Go modules.
    Go,
    /// Python distributions.
    Python,
}

/// One package found in an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// npm: `@scope/name`; maven: `group:artifact`; go: module path; python: as in METADATA.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its package URL.
    pub purl: String,
    /// Where in the image it was found, absolute (a nested jar: `/app/x.jar!/BOOT-INF/lib/y.jar`).
    pub path: String,
    /// Hex SHA-256 of the file that is the package (a jar, a nested jar, a Go binary's main
    /// module); `None` for packages known from a manifest.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

/// One regular file of a layer: where it is in the image and where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    /// Path in the image, absolute (`/app/package-lock.json`).
    pub image_path: String,
    /// The file on disk.
    pub disk_path: PathBuf,
    /// Its size when walked.
    pub size: u64,
    /// Whether it is written with an execute bit (only those are looked at as Go binaries).
    pub executable: bool,
}

/// What detection found in a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detected {
    /// Sorted, without duplicates.
    pub packages: Vec<Package>,
    /// One line per file that looked like a package source but could not be read.
    pub warnings: Vec<String>,
}

/// The packages in a layer's files (see the module's rules).
pub fn detect(files: &[LayerFile]) -> Detected {
    let mut d = Detected::default();
    for f in files {
        let found = match kind_of(f) {
            Some(Kind::Lockfile) => npm_lockfile(f),
            Some(Kind::NpmManifest) => npm_manifest(f),
            Some(Kind::Archive) => zip::maven_packages(f, &mut d.warnings),
            Some(Kind::PythonMetadata) => python(f),
            Some(Kind::Executable) => elf::go_packages(f),
            None => Ok(Vec::new()),
        };
        match found {
            Ok(p) => d.packages.extend(p),
            Err(why) => d.warnings.push(format!("{}: {why}", f.image_path)),
        }
    }
    d.packages = dedupe(d.packages);
    d
}

/// One package per (ecosystem, name, version, sha256), at its smallest path; sorted.
fn dedupe(mut v: Vec<Package>) -> Vec<Package> {
    v.sort_by(|a, b| {
        (&a.ecosystem, &a.name, &a.version, &a.sha256, &a.path).cmp(&(
            &b.ecosystem,
            &b.name,
            &b.version,
            &b.sha256,
            &b.path,
        ))
    });
    v.dedup_by(|later, first| {
        (&later.ecosystem, &later.name, &later.version, &later.sha256)
            == (&first.ecosystem, &first.name, &first.version, &first.sha256)
    });
    v.sort();
    v
}

enum Kind {
    Lockfile,
    NpmManifest,
    Archive,
    PythonMetadata,
    Executable,
}

fn kind_of(f: &LayerFile) -> Option<Kind> {
    let p = f.image_path.as_str();
    let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
    if name == "package-lock.json" {
        return Some(Kind::Lockfile);
    }
    if name == "package.json" && npm_name_from_dir(dir).is_some() {
        return Some(Kind::NpmManifest);
    }
    if name.ends_with(".jar") || name.ends_with(".war") {
        return Some(Kind::Archive);
    }
    if name == "METADATA" && dir.ends_with(".dist-info") {
        return Some(Kind::PythonMetadata);
    }
    if f.executable && f.size >= 64 {
        return Some(Kind::Executable);
    }
    None
}

/// The package name a `node_modules` directory stands for: `.../node_modules/name` or
/// `.../node_modules/@scope/name`.
fn npm_name_from_dir(dir: &str) -> Option<&str> {
    let i = dir.rfind("node_modules/")?;
    let rest = &dir[i + "node_modules/".len()..];
    let parts: Vec<&str> = rest.split('/').collect();
    let ok = match parts.as_slice() {
        [n] => !n.is_empty() && !n.starts_with('@') && !n.starts_with('.'),
        [s, n] => s.len() > 1 && s.starts_with('@') && !n.is_empty(),
        _ => false,
    };
    ok.then_some(rest)
}

/// A file's bytes, bounded.
fn read(f: &LayerFile, max: u64) -> Result<Vec<u8>, String> {
    read_bounded(&f.disk_path, max).map_err(|e| format!("not read ({e})"))
}

fn json(f: &LayerFile, max: u64) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&read(f, max)?).map_err(|e| format!("not JSON ({e})"))
}

fn npm_package(name: &str, version: &str, path: &str) -> Option<Package> {
    if name.is_empty() || version.is_empty() || name.len() > 214 || version.len() > 256 {
        return None;
    }
    Some(Package {
        ecosystem: Ecosystem::Npm,
        name: name.to_string(),
        version: version.to_string(),
        purl: purl::npm(name, version),
        path: path.to_string(),
        sha256: None,
    })
}

/// `node_modules/<name>/package.json`: its `name` and `version`.
fn npm_manifest(f: &LayerFile) -> Result<Vec<Package>, String> {
    let v = json(f, SMALL_MAX)?;
    let name = v.get("name").and_then(|n| n.as_str()).unwrap_or_default();
    let version = v
        .get("version")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    Ok(npm_package(name, version, &f.image_path)
        .into_iter()
        .collect())
}

/// A lockfile: version 2 and 3's `packages` (keys `node_modules/...`), else version 1's
/// nested `dependencies`.
fn npm_lockfile(f: &LayerFile) -> Result<Vec<Package>, String> {
    Ok(lockfile_packages(&json(f, LOCKFILE_MAX)?, &f.image_path))
}

/// The packages of a parsed lockfile found at `path`.
pub(super) fn lockfile_packages(v: &serde_json::Value, path: &str) -> Vec<Package> {
    let mut out = Vec::new();
    if let Some(pkgs) = v.get("packages").and_then(|p| p.as_object()) {
        for (key, entry) in pkgs {
            let Some(i) = key.rfind("node_modules/") else {
                continue; // the root project or a workspace folder
            };
            if entry.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            let name = entry
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or(&key[i + "node_modules/".len()..]);
            let version = entry.get("version").and_then(|n| n.as_str());
            out.extend(npm_package(name, version.unwrap_or_default(), path));
        }
    } else if let Some(deps) = v.get("dependencies") {
        lockfile_v1(deps, path, 0, &mut out);
    }
    out
}

fn lockfile_v1(deps: &serde_json::Value, path: &str, depth: usize, out: &mut Vec<Package>) {
    let Some(map) = deps.as_object() else { return };
    if depth >= NPM_DEPTH {
        return;
    }
    for (name, entry) in map {
        let version = entry.get("version").and_then(|n| n.as_str());
        out.extend(npm_package(name, version.unwrap_or_default(), path));
        if let Some(nested) = entry.get("dependencies") {
            lockfile_v1(nested, path, depth + 1, out);
        }
    }
}

/// `*.dist-info/METADATA`: the `Name:` and `Version:` headers (the first 1 MiB is read:
/// headers come first, a long description after them is not needed).
fn python(f: &LayerFile) -> Result<Vec<Package>, String> {
    let mut bytes = Vec::new();
    open_regular(&f.disk_path)
        .and_then(|file| file.take(SMALL_MAX).read_to_end(&mut bytes))
        .map_err(|e| format!("not read ({e})"))?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "name" if name.is_none() => name = Some(v.trim()),
                "version" if version.is_none() => version = Some(v.trim()),
                _ => {}
            }
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Ok(vec![Package {
            ecosystem: Ecosystem::Python,
            name: n.to_string(),
            version: v.to_string(),
            purl: purl::pypi(n, v),
            path: f.image_path.clone(),
            sha256: None,
        }]),
        _ => Err("no Name and Version headers".into()),
    }
}

/// The hex SHA-256 of a file, or a warning.
pub(super) fn sha256_of(f: &LayerFile) -> Result<String, String> {
    hash_file(&f.disk_path)
        .map(|(d, _)| d.hex().to_string())
        .map_err(|e| format!("not read ({e})"))
}

#[cfg(test)]
#[path = "packages_tests.rs"]
mod tests;

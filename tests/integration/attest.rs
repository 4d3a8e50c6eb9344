//! Package detection through the CLI and the SBOM documents made from it, checked by the
//! projects' own validators: `pyspdxtools` (spdx-tools, SPDX 2.3) and cyclonedx-python-lib's
//! strict JSON validator (CycloneDX 1.6). Both are installed from PyPI by `scripts/test.sh`.

use crate::common::{ocibuild, ok, require, retail_store, run};
use ocibuild::attest::packages::{Ecosystem, Package};
use ocibuild::attest::{cyclonedx, spdx, BaseImage, SbomSubject};
use ocibuild::digest::Digest;
use ocibuild::platform::Platform;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Per service: each platform's manifest digest and the packages of its layers.
type Found = BTreeMap<String, Vec<(Platform, Digest, Vec<Package>)>>;

fn build_report(project: &Path, out: &Path) -> Found {
    let report = ok(ocibuild(
        project,
        &[
            "build",
            "--no-cache",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let v: Value = serde_json::from_str(&report).unwrap();
    let mut found = Found::new();
    for s in v.as_array().unwrap() {
        let mut per_platform = Vec::new();
        for p in s["platforms"].as_array().unwrap() {
            let mut packages = Vec::new();
            for l in p["layers"].as_array().unwrap() {
                if let Some(list) = l.get("packages") {
                    assert_eq!(l["from_base"], false, "a base layer has no packages");
                    packages.extend(serde_json::from_value::<Vec<Package>>(list.clone()).unwrap());
                }
            }
            per_platform.push((
                p["platform"].as_str().unwrap().parse().unwrap(),
                p["manifest_digest"].as_str().unwrap().parse().unwrap(),
                packages,
            ));
        }
        found.insert(s["name"].as_str().unwrap().to_string(), per_platform);
    }
    found
}

/// A package as the test compares it: ecosystem, name, version, purl, whether it has a hash.
type Summary<'a> = (Ecosystem, &'a str, &'a str, &'a str, bool);

fn summary(packages: &[Package]) -> Vec<Summary<'_>> {
    packages
        .iter()
        .map(|p| {
            let has_sha = p.sha256.is_some();
            (
                p.ecosystem.clone(),
                p.name.as_str(),
                p.version.as_str(),
                p.purl.as_str(),
                has_sha,
            )
        })
        .collect()
}

/// `pyspdxtools -i FILE` parses and validates; it exits non-zero on an invalid document.
pub fn validate_spdx(file: &Path) {
    let out = run(Command::new("pyspdxtools").arg("-i").arg(file));
    assert!(
        !out.to_lowercase().contains("invalid"),
        "{}: {out}",
        file.display()
    );
}

/// Validate every file in one Python process (loading the schema takes a while).
pub fn validate_cyclonedx(files: &[PathBuf]) {
    let check = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
v = JsonStrictValidator(SchemaVersion.V1_6)
for f in sys.argv[1:]:
    errors = v.validate_str(open(f).read())
    if errors:
        sys.exit(f"{f} invalid: {errors!r}")
    print("valid")
"#;
    let out = run(Command::new("python3").args(["-c", check]).args(files));
    assert_eq!(
        out.lines().filter(|l| *l == "valid").count(),
        files.len(),
        "{out}"
    );
}

#[test]
fn the_retail_store_packages_are_found_and_its_sboms_validate() {
    require("pyspdxtools");
    require("python3");
    let (tmp, project) = retail_store();
    let found = build_report(&project, &tmp.path().join("out"));
    use Ecosystem::*;
    let want: BTreeMap<&str, Vec<Summary>> = [
        ("cart", vec![]),
        ("catalog", vec![]),
        (
            "checkout",
            vec![
                (
                    Npm,
                    "@fastify/busboy",
                    "2.1.0",
                    "pkg:npm/%40fastify/busboy@2.1.0",
                    false,
                ),
                (Npm, "debug", "2.6.9", "pkg:npm/debug@2.6.9", false),
                (Npm, "express", "4.18.2", "pkg:npm/express@4.18.2", false),
                (Python, "six", "1.16.0", "pkg:pypi/six@1.16.0", false),
            ],
        ),
        (
            "orders",
            vec![
                (
                    Maven,
                    "com.example.retail:orders",
                    "2.3.0",
                    "pkg:maven/com.example.retail/orders@2.3.0",
                    true,
                ),
                (
                    Maven,
                    "com.fasterxml.jackson.core:jackson-core",
                    "2.16.1",
                    "pkg:maven/com.fasterxml.jackson.core/jackson-core@2.16.1",
                    true,
                ),
                (
                    Maven,
                    "org.slf4j:slf4j-api",
                    "2.0.9",
                    "pkg:maven/org.slf4j/slf4j-api@2.0.9",
                    true,
                ),
            ],
        ),
        (
            "ui",
            vec![(
                Maven,
                "org.springframework:spring-core",
                "6.1.2",
                "pkg:maven/org.springframework/spring-core@6.1.2",
                true,
            )],
        ),
    ]
    .into();
    let docs = tmp.path().join("sboms");
    std::fs::create_dir_all(&docs).unwrap();
    let base_digest = Digest::of(b"a base manifest");
    let mut cdx_files = Vec::new();
    for (service, platforms) in &found {
        for (platform, manifest, packages) in platforms {
            assert_eq!(
                summary(packages),
                want[service.as_str()],
                "{service} {platform}"
            );
            // The lockfile's express is the installed one: kept once, where it is installed.
            if let Some(e) = packages.iter().find(|p| p.name == "express") {
                assert_eq!(e.path, "/app/node_modules/express/package.json");
            }
            let repository = format!("localhost:5000/retail/{service}");
            let s = SbomSubject {
                repository: &repository,
                manifest_digest: manifest,
                platform,
                // One service as if built on a registry base, to check that part too.
                base: (service == "orders").then_some(BaseImage {
                    name: "localhost:5000/base/static:v1",
                    digest: &base_digest,
                }),
                packages,
                created: 1_700_000_000,
                tool: "ocibuild-0.1.0",
            };
            let stem = format!("{service}-{}", platform.arch);
            let spdx_file = docs.join(format!("{stem}.spdx.json"));
            std::fs::write(&spdx_file, spdx::spdx(&s)).unwrap();
            // The platforms' documents differ only in digests: one each is enough for pyspdxtools
            // (a process per file, a second each).
            if platform.arch == "amd64" {
                validate_spdx(&spdx_file);
            }
            let cdx_file = docs.join(format!("{stem}.cdx.json"));
            std::fs::write(&cdx_file, cyclonedx::cyclonedx(&s)).unwrap();
            cdx_files.push(cdx_file);
        }
    }
    validate_cyclonedx(&cdx_files);
    let orders = &found["orders"][0].2;
    let nested = orders
        .iter()
        .find(|p| p.name.ends_with("slf4j-api"))
        .unwrap();
    assert_eq!(
        nested.path,
        "/app/orders.jar!/BOOT-INF/lib/slf4j-api-2.0.9.jar"
    );
}

/// Each own layer of a report: (service, platform, cached, packages).
fn layers(report: &str) -> Vec<(String, String, bool, Vec<Package>)> {
    let v: Value = serde_json::from_str(report).unwrap();
    let mut out = Vec::new();
    for s in v.as_array().unwrap() {
        for p in s["platforms"].as_array().unwrap() {
            for l in p["layers"].as_array().unwrap() {
                if l["from_base"] == true {
                    continue;
                }
                let packages = l
                    .get("packages")
                    .map(|v| serde_json::from_value(v.clone()).unwrap())
                    .unwrap_or_default();
                out.push((
                    s["name"].as_str().unwrap().to_string(),
                    p["platform"].as_str().unwrap().to_string(),
                    l["cached"].as_bool().unwrap(),
                    packages,
                ));
            }
        }
    }
    out
}

#[test]
fn layers_from_the_cache_report_the_same_packages() {
    let (tmp, project) = retail_store();
    let cache = tmp.path().join("cache");
    let build = |out: &str| {
        ok(ocibuild(
            &project,
            &[
                "build",
                "--format",
                "json",
                "--cache-dir",
                cache.to_str().unwrap(),
                "--out",
                tmp.path().join(out).to_str().unwrap(),
            ],
        ))
    };
    let cold = layers(&build("a"));
    let warm = layers(&build("b"));
    assert!(cold.iter().all(|l| !l.2), "the first build has no cache");
    assert!(
        warm.iter().all(|l| l.2),
        "the second build takes every layer from the cache"
    );
    let strip = |v: &[(String, String, bool, Vec<Package>)]| {
        v.iter()
            .map(|l| (l.0.clone(), l.1.clone(), l.3.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&cold), strip(&warm));
    assert_eq!(
        cold.iter().filter(|l| !l.3.is_empty()).count(),
        6,
        "{cold:?}"
    );
}

#[test]
fn a_package_file_that_cannot_be_read_is_a_warning_and_the_build_goes_on() {
    let (tmp, p) = retail_store();
    std::fs::write(p.join("src/checkout/dist/broken.jar"), b"not a zip at all").unwrap();
    let out_dir = tmp.path().join("out");
    let out = ocibuild(
        &p,
        &[
            "build",
            "--service",
            "checkout",
            "--format",
            "json",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    assert!(
        stderr.contains("checkout: no package read from /app/broken.jar"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("/app/broken.jar").count(),
        1,
        "once, not per platform: {stderr}"
    );
    let layers = report[0]["platforms"][0]["layers"].as_array().unwrap();
    let warned = layers.iter().any(|l| {
        l["package_warnings"].as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w.as_str().unwrap().starts_with("/app/broken.jar"))
        })
    });
    assert!(warned, "{layers:?}");
}

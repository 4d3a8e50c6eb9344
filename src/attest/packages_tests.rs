//! Tests of detection over files written here: npm lockfiles (versions 1 and 3) and installed
//! packages, Python metadata, jars and Go binaries in one layer, the duplicate rule, and bad
//! files (a warning, no package). Property tests: arbitrary and mutated lockfiles never
//! panic. `PROPTEST_CASES=10000 cargo test --lib attest::packages` runs them longer.

use super::*;
use crate::attest::zip::tests::{pom, zip_of};
use proptest::prelude::*;

const LOCK_V3: &str = r#"{
  "name": "checkout", "version": "1.0.0", "lockfileVersion": 3,
  "packages": {
    "": { "name": "checkout", "version": "1.0.0" },
    "node_modules/express": { "version": "4.18.2" },
    "node_modules/@types/node": { "version": "20.1.0" },
    "node_modules/express/node_modules/debug": { "version": "2.6.9" },
    "node_modules/alias": { "name": "real-pkg", "version": "1.1.0" },
    "node_modules/workspace-a": { "resolved": "packages/a", "link": true },
    "packages/a": { "name": "a", "version": "0.0.1" }
  }
}"#;

const LOCK_V1: &str = r#"{
  "name": "old", "lockfileVersion": 1,
  "dependencies": {
    "left-pad": { "version": "1.3.0" },
    "request": { "version": "2.88.0", "dependencies": { "qs": { "version": "6.5.2" } } }
  }
}"#;

struct Tree(tempfile::TempDir, Vec<LayerFile>);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().unwrap(), Vec::new())
    }
    fn add(&mut self, image_path: &str, bytes: &[u8], executable: bool) {
        let disk = self.0.path().join(format!("{}", self.1.len()));
        std::fs::write(&disk, bytes).unwrap();
        self.1.push(LayerFile {
            image_path: image_path.into(),
            disk_path: disk,
            size: bytes.len() as u64,
            executable,
        });
    }
}

fn names(d: &Detected) -> Vec<(String, String, String, String)> {
    d.packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.purl.clone(),
                p.path.clone(),
            )
        })
        .collect()
}

fn n(name: &str, v: &str, purl: &str, path: &str) -> (String, String, String, String) {
    (name.into(), v.into(), purl.into(), path.into())
}

#[test]
fn lockfiles_of_both_formats_give_their_installed_packages() {
    let mut t = Tree::new();
    t.add("/app/package-lock.json", LOCK_V3.as_bytes(), false);
    t.add("/old/package-lock.json", LOCK_V1.as_bytes(), false);
    let d = detect(&t.1);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let lock = "/app/package-lock.json";
    let old = "/old/package-lock.json";
    assert_eq!(
        names(&d),
        vec![
            n(
                "@types/node",
                "20.1.0",
                "pkg:npm/%40types/node@20.1.0",
                lock
            ),
            n("debug", "2.6.9", "pkg:npm/debug@2.6.9", lock),
            n("express", "4.18.2", "pkg:npm/express@4.18.2", lock),
            n("left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0", old),
            n("qs", "6.5.2", "pkg:npm/qs@6.5.2", old),
            n("real-pkg", "1.1.0", "pkg:npm/real-pkg@1.1.0", lock),
            n("request", "2.88.0", "pkg:npm/request@2.88.0", old),
        ]
    );
}

#[test]
fn a_package_found_twice_is_kept_once_at_its_smallest_path() {
    let mut t = Tree::new();
    t.add("/app/package-lock.json", LOCK_V3.as_bytes(), false);
    let express = br#"{"name":"express","version":"4.18.2"}"#;
    t.add("/app/node_modules/express/package.json", express, false);
    let scoped = br#"{"name":"@types/node","version":"20.1.0"}"#;
    t.add("/app/node_modules/@types/node/package.json", scoped, false);
    // Not a package's own manifest: the app's, and one inside a package's folder.
    t.add(
        "/app/package.json",
        br#"{"name":"checkout","version":"1.0.0"}"#,
        false,
    );
    t.add("/app/node_modules/express/lib/package.json", express, false);
    let d = detect(&t.1);
    let express = d
        .packages
        .iter()
        .filter(|p| p.name == "express")
        .collect::<Vec<_>>();
    assert_eq!(express.len(), 1);
    assert_eq!(express[0].path, "/app/node_modules/express/package.json");
    assert!(d.packages.iter().all(|p| p.name != "checkout"));
    assert_eq!(d.packages.len(), 4, "{:?}", names(&d));
}

#[test]
fn python_metadata_gives_name_and_version_with_a_normalised_purl() {
    let mut t = Tree::new();
    let meta =
        b"Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.9.0\n\nName: not-this\n";
    t.add(
        "/usr/lib/python3/site-packages/typing_extensions-4.9.0.dist-info/METADATA",
        meta,
        false,
    );
    t.add(
        "/usr/lib/python3/site-packages/x-1.dist-info/METADATA",
        b"Summary: nothing\n",
        false,
    );
    let d = detect(&t.1);
    assert_eq!(d.packages.len(), 1);
    assert_eq!(d.packages[0].name, "Typing_Extensions");
    assert_eq!(d.packages[0].purl, "pkg:pypi/typing-extensions@4.9.0");
    assert_eq!(d.packages[0].ecosystem, Ecosystem::Python);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].contains("x-1.dist-info/METADATA: no Name and Version"));
}

#[test]
fn one_layer_of_every_kind_with_bad_files_among_them() {
    let mut t = Tree::new();
    let jar = zip_of(&[(
        "META-INF/maven/org.x/y/pom.properties",
        &pom("org.x", "y", "1.0"),
        true,
    )]);
    t.add("/app/lib/y-1.0.jar", &jar, false);
    t.add("/app/lib/fake.jar", b"PK fake jar", false);
    let modinfo = "mod\texample.com/cat\t(devel)\t\ndep\tgithub.com/a/b\tv1.0.0\th1:x=\n";
    let sec = crate::attest::elf::tests::buildinfo_section(modinfo);
    let bin = crate::attest::elf::tests::elf_with(".go.buildinfo", &sec, true, false);
    t.add("/app/catalog", &bin, true);
    t.add("/app/not-executable", &bin, false);
    t.add(
        "/app/run.sh",
        b"#!/bin/sh\nexec /app/catalog \"$@\" # long enough to be looked at\n",
        true,
    );
    t.add("/app/package-lock.json", b"{ not json", false);
    let d = detect(&t.1);
    let got: Vec<(Ecosystem, &str, Option<&str>)> = d
        .packages
        .iter()
        .map(|p| (p.ecosystem.clone(), p.name.as_str(), p.sha256.as_deref()))
        .collect();
    let jar_sha = crate::digest::Digest::of(&jar);
    let bin_sha = crate::digest::Digest::of(&bin);
    assert_eq!(
        got,
        vec![
            (Ecosystem::Maven, "org.x:y", Some(jar_sha.hex())),
            (Ecosystem::Go, "example.com/cat", Some(bin_sha.hex())),
            (Ecosystem::Go, "github.com/a/b", None),
        ]
    );
    assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
    assert!(d
        .warnings
        .iter()
        .any(|w| w.starts_with("/app/lib/fake.jar: not a zip")));
    assert!(d
        .warnings
        .iter()
        .any(|w| w.starts_with("/app/package-lock.json: not JSON")));
}

#[test]
fn serde_names_ecosystems_in_lowercase_and_leaves_out_a_missing_hash() {
    let p = Package {
        ecosystem: Ecosystem::Maven,
        name: "g:a".into(),
        version: "1".into(),
        purl: "pkg:maven/g/a@1".into(),
        path: "/a.jar".into(),
        sha256: None,
    };
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["ecosystem"], "maven");
    assert!(v.get("sha256").is_none());
    assert_eq!(serde_json::from_value::<Package>(v).unwrap(), p);
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        "[a-z0-9@/._-]{0,12}".prop_map(serde_json::Value::String),
        any::<i32>().prop_map(|i| serde_json::json!(i)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("packages".to_string()),
            Just("dependencies".to_string()),
            Just("version".to_string()),
            Just("name".to_string()),
            Just("link".to_string()),
            "(node_modules/)?[a-z@/]{0,8}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    // proptest's defaults: 256 cases, or PROPTEST_CASES.
    #[test]
    fn any_json_is_read_as_a_lockfile_without_panicking(v in json_value()) {
        for p in lockfile_packages(&v, "/p") {
            prop_assert!(!p.name.is_empty() && !p.version.is_empty());
            prop_assert!(p.purl.starts_with("pkg:npm/"));
        }
    }

    #[test]
    fn mutated_lockfile_bytes_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut b = LOCK_V3.as_bytes().to_vec();
        for (i, x) in &flips {
            let at = i.index(b.len());
            b[at] = *x;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
            let _ = lockfile_packages(&v, "/p");
        }
    }
}

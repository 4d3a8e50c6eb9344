//! `ocibuild copy` between two real registries (docker-registry 2.8, no referrers API): the
//! image, its SBOMs, provenance and signatures arrive with the same digests and verify there;
//! a rerun moves nothing; within one registry blobs are mounted, not streamed.

use crate::common::*;
use crate::registry::{docker_config, TestRegistry};
use crate::sign::openssl_key;
use crate::supply_chain::{push_cart, referrers, verify_cart};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const REPO: &str = "retail-store-cart";

fn copy(p: &Path, cfg: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .arg("copy")
        .args(args)
        .args(["--format", "json"])
        .current_dir(p)
        .env("DOCKER_CONFIG", cfg)
        .output()
        .unwrap();
    serde_json::from_str(&ok(out)).unwrap()
}

/// The index and its platform manifests' digests in `reg`.
fn subjects(reg: &TestRegistry, repo: &str, index: &str) -> Vec<String> {
    let raw: Value = serde_json::from_str(&reg.raw(repo, index, None).unwrap()).unwrap();
    let children = raw["manifests"].as_array().unwrap().iter();
    std::iter::once(index.to_string())
        .chain(children.map(|m| m["digest"].as_str().unwrap().to_string()))
        .collect()
}

fn attached(reg: &TestRegistry, repo: &str, subject: &str) -> BTreeSet<(String, String)> {
    referrers(reg, repo, subject).into_iter().collect()
}

#[test]
fn a_copy_carries_the_image_and_everything_attached_with_the_same_digests() {
    require("skopeo");
    require("openssl");
    let a = TestRegistry::start(None);
    let b = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (key, public) = openssl_key(tmp.path(), "signer");
    let (_, repo, index) = push_cart(&p, &cfg, &a.host(), &["--sign-key", key.to_str().unwrap()]);
    assert_eq!(repo, REPO);
    let subjects = subjects(&a, REPO, &index);
    assert_eq!(subjects.len(), 3);

    let args = |to: &str| {
        vec![
            "--registry".to_string(),
            a.host(),
            "--service".into(),
            "cart".into(),
            "--from-tag".into(),
            "v1".into(),
            "--to-registry".into(),
            to.to_string(),
        ]
    };
    let run = |to: &str| {
        let a = args(to);
        copy(&p, &cfg, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let r = run(&b.host());
    assert_eq!(r["reference"], format!("{}/{REPO}@{index}", b.host()));
    assert_eq!(r["source"], format!("{}/{REPO}@{index}", a.host()));
    assert_eq!(r["tags"], serde_json::json!(["v1"]));
    assert!(r["blobs_copied"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["blobs_mounted"], 0, "{r}");

    // The same bytes: the tag, every manifest, every list of artifacts, every signature tag.
    assert_eq!(b.raw(REPO, "v1", None), a.raw(REPO, "v1", None));
    for s in &subjects {
        assert_eq!(b.raw(REPO, s, None), a.raw(REPO, s, None), "{s}");
        let there = attached(&b, REPO, s);
        assert_eq!(there, attached(&a, REPO, s), "artifacts of {s}");
        let sig = format!("{}.sig", s.replace("sha256:", "sha256-"));
        assert!(a.raw(REPO, &sig, None).is_some(), "{sig}");
        assert_eq!(b.raw(REPO, &sig, None), a.raw(REPO, &sig, None), "{sig}");
    }
    let kinds: BTreeSet<String> = subjects
        .iter()
        .flat_map(|s| attached(&b, REPO, s))
        .map(|(t, _)| t)
        .collect();
    assert!(kinds.contains("application/spdx+json"), "{kinds:?}");
    assert!(kinds.contains("application/vnd.in-toto+json"), "{kinds:?}");
    // The signatures verify in the new registry.
    let out = ok(verify_cart(
        &p,
        &b.host(),
        &["--key", public.to_str().unwrap()],
    ));
    assert_eq!(out.matches(": verified").count(), 3, "{out}");
    // An independent reader takes both platforms there.
    for arch in ["amd64", "arm64"] {
        let inspected = run_skopeo(&b, arch);
        assert_eq!(inspected["Architecture"], arch);
    }

    // Again: the registry has it all; nothing moves.
    let again = run(&b.host());
    assert_eq!(again["blobs_copied"], 0, "{again}");
    assert_eq!(again["blobs_uploaded"], 0, "{again}");

    // Within one registry (another prefix): mounted, not streamed.
    let mirror = format!("{}/mirror", a.host());
    let m = run(&mirror);
    assert_eq!(m["reference"], format!("{mirror}/{REPO}@{index}"));
    assert!(m["blobs_mounted"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["blobs_copied"], 0, "{m}");
    assert_eq!(
        a.raw(&format!("mirror/{REPO}"), "v1", None),
        a.raw(REPO, "v1", None)
    );
}

fn run_skopeo(reg: &TestRegistry, arch: &str) -> Value {
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        arch,
        &format!("docker://{}/{REPO}:v1", reg.host()),
    ]));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn copying_onto_itself_or_without_a_source_is_refused() {
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let copy = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ocibuild"))
            .arg("copy")
            .args(args)
            .current_dir(&p)
            .env("DOCKER_CONFIG", &cfg)
            .output()
            .unwrap()
    };
    let e = refused(copy(&[
        "--registry",
        "127.0.0.1:9",
        "--service",
        "cart",
        "--from-tag",
        "v1",
        "--to-registry",
        "127.0.0.1:9",
    ]));
    assert!(e.contains("is where the image is"), "{e}");
    refused(copy(&["--service", "cart", "--to-registry", "127.0.0.1:9"]));
    refused(copy(&[
        "--service",
        "cart",
        "--from-tag",
        "v1",
        "--to-registry",
        "127.0.0.1:9",
        "--to-tag",
        "bad tag",
    ]));
}

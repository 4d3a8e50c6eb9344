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

/// Attach to `subject` in `repo` of `reg` an artifact whose one layer is `size` bytes, the way
/// another tool would (blobs, manifest by digest, the referrers tag's index appended to).
/// Returns the artifact's digest.
fn attach_big_artifact(reg: &TestRegistry, repo: &str, subject: &str, size: usize) -> String {
    let script = r#"
import hashlib, json, sys, urllib.request
host, repo, subject, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = "http://" + host + "/v2/" + repo
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    r = urllib.request.urlopen(urllib.request.Request(base + "/blobs/uploads/", method="POST"))
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else "http://" + host + loc
    sep = "&" if "?" in loc else "?"
    urllib.request.urlopen(urllib.request.Request(loc + sep + "digest=" + d, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}))
    return d
def put_manifest(ref, doc, media):
    body = json.dumps(doc, separators=(",", ":")).encode()
    urllib.request.urlopen(urllib.request.Request(base + "/manifests/" + ref, data=body, method="PUT", headers={"Content-Type": media}))
    return "sha256:" + hashlib.sha256(body).hexdigest(), len(body)
def get(ref):
    req = urllib.request.Request(base + "/manifests/" + ref, headers={"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"})
    r = urllib.request.urlopen(req)
    return r.read(), r.headers["Content-Type"]
layer = bytes((i * 7919) % 251 for i in range(size))
ld = put_blob(layer)
cd = put_blob(b"{}")
sbody, stype = get(subject)
art = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "artifactType": "application/x-big-report",
       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
       "layers": [{"mediaType": "application/x-big-report", "digest": ld, "size": len(layer)}],
       "subject": {"mediaType": stype, "digest": subject, "size": len(sbody)}}
ad, asize = put_manifest(hashlib.sha256(b"x").hexdigest() and "sha256:" + hashlib.sha256(json.dumps(art, separators=(",", ":")).encode()).hexdigest(), art, art["mediaType"])
tag = subject.replace(":", "-")
try:
    idx = json.loads(get(tag)[0])
except Exception:
    idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
idx["manifests"].append({"mediaType": art["mediaType"], "digest": ad, "size": asize, "artifactType": art["artifactType"]})
put_manifest(tag, idx, "application/vnd.oci.image.index.v1+json")
print(ad)
"#;
    let out = run(Command::new("python3").args([
        "-c",
        script,
        &reg.host(),
        repo,
        subject,
        &size.to_string(),
    ]));
    out.trim().to_string()
}

#[test]
fn a_big_attachment_is_streamed_and_reaches_a_copy_made_before_it() {
    require("skopeo");
    let a = TestRegistry::start(None);
    let b = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (_, repo, index) = push_cart(&p, &cfg, &a.host(), &[]);
    let args = [
        "--registry",
        &a.host(),
        "--service",
        "cart",
        "--from-tag",
        "v1",
        "--to-registry",
        &b.host(),
    ];
    copy(&p, &cfg, &args);
    // A 5 MB report attached afterwards (more than any document is read whole).
    let big = attach_big_artifact(&a, &repo, &index, 5_000_000);
    let again = copy(&p, &cfg, &args);
    assert_eq!(again["error"], Value::Null, "{again}");
    assert!(
        attached(&b, REPO, &index)
            .iter()
            .any(|(t, d)| t == "application/x-big-report" && *d == big),
        "the new artifact reached the copy: {:?}",
        attached(&b, REPO, &index)
    );
    assert_eq!(b.raw(REPO, &big, None), a.raw(REPO, &big, None));
    assert_eq!(
        again["blobs_copied"], 1,
        "only the big layer was streamed: {again}"
    );
}

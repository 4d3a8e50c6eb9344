//! `ocibuild tag` against a real registry (docker-registry 2.8) behind the counting proxy:
//! promotion adds tags to the pushed index with manifest PUTs only (no blob request at all),
//! by tag or by digest, prints the immutable reference, and refuses an unknown image by name.

use crate::common::*;
use crate::proxy::{Fault, FaultProxy};
use crate::registry::{docker_config, TestRegistry};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn tag(p: &Path, cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .arg("tag")
        .args(args)
        .current_dir(p)
        .env("DOCKER_CONFIG", cfg)
        .output()
        .unwrap()
}

#[test]
fn a_promotion_writes_tags_only_and_names_the_image_by_digest() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let proxy = FaultProxy::start(reg.port, Arc::new(|_, _, _| Fault::Forward), false);
    let host = proxy.host();
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let out = tmp.path().join("out");
    ok(push(
        &p,
        &cfg,
        &[
            "--registry",
            &host,
            "--service",
            "cart",
            "--tag",
            "abc1234",
            "--out",
            out.to_str().unwrap(),
            "--no-provenance",
            "--sbom",
            "none",
        ],
    ));
    let pushed = reg.raw("retail-store-cart", "abc1234", None).unwrap();
    let digest = sha256_hex(&pushed);

    let mark = proxy.seen.lock().unwrap().len();
    let printed = ok(tag(
        &p,
        &cfg,
        &[
            "--registry",
            &host,
            "--service",
            "cart",
            "--from-tag",
            "abc1234",
            "--to",
            "prod,stable",
        ],
    ));
    assert_eq!(printed.trim(), format!("{host}/retail-store-cart@{digest}"));
    for t in ["prod", "stable"] {
        let raw = reg.raw("retail-store-cart", t, None).unwrap();
        assert_eq!(raw, pushed, "{t} names the same bytes");
    }
    let seen: Vec<String> = proxy.seen.lock().unwrap()[mark..]
        .iter()
        .map(|(m, path, _)| format!("{m} {path}"))
        .collect();
    assert!(seen.iter().all(|r| !r.contains("/blobs/")), "{seen:#?}");
    let puts: Vec<&String> = seen.iter().filter(|r| r.starts_with("PUT ")).collect();
    assert_eq!(puts.len(), 2, "one manifest PUT per tag: {seen:#?}");

    // By digest, again: `prod` already names it (nothing written), `v1` is new.
    let mark = proxy.seen.lock().unwrap().len();
    let json = ok(tag(
        &p,
        &cfg,
        &[
            "--registry",
            &host,
            "--service",
            "cart",
            "--digest",
            &digest,
            "--to",
            "prod",
            "--to",
            "v1",
            "--format",
            "json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["tags"][0]["outcome"], "unchanged");
    assert_eq!(report["tags"][1]["outcome"], "written");
    let puts = proxy.seen.lock().unwrap()[mark..]
        .iter()
        .filter(|(m, _, _)| m == "PUT")
        .count();
    assert_eq!(puts, 1);
    assert_eq!(reg.raw("retail-store-cart", "v1", None).unwrap(), pushed);

    // A platform manifest promoted alone: written, with a warning naming what it is.
    let index: serde_json::Value = serde_json::from_str(&pushed).unwrap();
    let amd64 = index["manifests"][0]["digest"].as_str().unwrap();
    let o = tag(
        &p,
        &cfg,
        &[
            "--registry",
            &host,
            "--service",
            "cart",
            "--digest",
            amd64,
            "--to",
            "amd64-only",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning:") && err.contains("one platform only"),
        "{err}"
    );

    // An image that is not there: named, exit 1, nothing written.
    let mark = proxy.seen.lock().unwrap().len();
    let e = fails(tag(
        &p,
        &cfg,
        &[
            "--registry",
            &host,
            "--service",
            "cart",
            "--from-tag",
            "nope",
            "--to",
            "prod",
        ],
    ));
    assert!(e.contains("retail-store-cart has no image nope"), "{e}");
    assert!(proxy.seen.lock().unwrap()[mark..]
        .iter()
        .all(|(m, _, _)| m != "PUT"));
}

#[test]
fn a_promotion_without_a_source_or_a_new_tag_is_a_usage_error() {
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let sig = format!("sha256-{}.sig", "ab".repeat(32));
    for args in [
        vec!["--service", "cart", "--to", "prod"],
        vec!["--service", "cart", "--from-tag", "v1"],
        vec!["--service", "cart", "--digest", "sha256:12", "--to", "prod"],
        vec!["--service", "nope", "--from-tag", "v1", "--to", "prod"],
        vec!["--service", "cart", "--from-tag", "v1", "--to", "bad tag"],
        // Where signatures and referrers indexes live: never an image tag.
        vec!["--service", "cart", "--from-tag", "v1", "--to", &sig],
        vec!["--service", "cart", "--from-tag", "v1", "--to", &sig[..71]],
    ] {
        let e = refused(tag(&p, &cfg, &args));
        if args.iter().any(|a| a.starts_with("sha256-")) {
            assert!(e.contains("destroy"), "{e}");
        }
    }
}

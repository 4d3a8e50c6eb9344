//! The registry layer cache against a real registry (docker-registry 2.8) behind the counting
//! proxy: a fresh runner compresses nothing the cache has and uploads nothing for unchanged
//! services, the images are the bytes a build without any cache makes, a blob gone from the
//! registry is built again, pull requests never write the cache, and `--verify-cache`
//! catches a cache document pointing at another blob.

use crate::common::*;
use crate::proxy::{Fault, FaultProxy};
use crate::registry::{docker_config, TestRegistry};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const SERVICES: [&str; 5] = ["cart", "catalog", "checkout", "orders", "ui"];

/// A registry behind a proxy that forwards everything and records it.
fn counted() -> (TestRegistry, FaultProxy) {
    let reg = TestRegistry::start(None);
    let proxy = FaultProxy::start(reg.port, Arc::new(|_, _, _| Fault::Forward), false);
    (reg, proxy)
}

/// A fresh runner's push: its own empty cache and output directories under `run`.
fn push_fresh(p: &Path, host: &str, run: &Path, extra: &[&str]) -> std::process::Output {
    let cfg = docker_config(run, "{}");
    let cache = run.join("cache");
    let out = run.join("out");
    let report = run.join("report.json");
    let mut args = vec![
        "--registry",
        host,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--no-provenance",
        "--sbom",
        "none",
    ];
    args.extend_from_slice(extra);
    push(p, &cfg, &args)
}

/// Per service: (index digest, [(layer digest, cache)]).
fn origins(run: &Path) -> BTreeMap<String, (String, Vec<(String, String)>)> {
    let text = fs::read_to_string(run.join("report.json")).unwrap();
    let report: Vec<Value> = serde_json::from_str(&text).unwrap();
    report
        .iter()
        .map(|s| {
            let layers = s["layers"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|l| {
                            let d = l["digest"].as_str().unwrap().to_string();
                            (d, l["cache"].as_str().unwrap().to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let index = s["index_digest"].as_str().unwrap().to_string();
            (s["service"].as_str().unwrap().to_string(), (index, layers))
        })
        .collect()
}

/// The requests the proxy saw since `from`, as "METHOD path".
fn requests(proxy: &FaultProxy, from: usize) -> Vec<String> {
    let seen = proxy.seen.lock().unwrap();
    seen[from..]
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect()
}

fn seen_len(proxy: &FaultProxy) -> usize {
    proxy.seen.lock().unwrap().len()
}

/// Index digests of a build with no cache at all (local or registry).
fn uncached_build(p: &Path, out: &Path) -> BTreeMap<String, String> {
    let text = ok(ocibuild(
        p,
        &[
            "build",
            "--no-cache",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    let built: Vec<Value> = serde_json::from_str(&text).unwrap();
    built
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_string();
            (name, s["index_digest"].as_str().unwrap().to_string())
        })
        .collect()
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl").args(args).output().unwrap();
    assert!(out.status.success(), "curl {args:?}");
    out.stdout
}

/// The cache document of `tag`, parsed.
fn cache_doc(reg: &TestRegistry, tag: &str) -> Option<Value> {
    let raw = reg.raw("ocibuild-cache", tag, None)?;
    Some(serde_json::from_str(&raw).unwrap())
}

fn round_one(p: &Path, host: &str, tmp: &Path) -> PathBuf {
    let run = tmp.join("round1");
    ok(push_fresh(p, host, &run, &["--cache-write"]));
    run
}

#[test]
fn a_fresh_runner_builds_only_what_changed_and_the_images_are_the_same_bytes() {
    let (reg, proxy) = counted();
    let (tmp, p) = retail_store();
    let host = proxy.host();
    let one = round_one(&p, &host, tmp.path());
    for s in SERVICES {
        let doc = cache_doc(&reg, &format!("{s}-main")).expect("a cache document per service");
        assert_eq!(
            doc["artifactType"],
            "application/vnd.ocibuild.layer-cache.v1+json"
        );
        for l in doc["layers"].as_array().unwrap() {
            let fp = l["annotations"]["dev.ocibuild.layer.fingerprint"].as_str();
            assert!(fp.is_some_and(|f| f.starts_with("sha256:")), "{l}");
        }
    }
    assert!(origins(&one)
        .values()
        .all(|(_, l)| l.iter().all(|(_, c)| c == "built")));

    // A code change in one service, then a fresh runner.
    fs::write(
        p.join("src/cart/target/static/index.html"),
        "<h1>cart v2</h1>\n",
    )
    .unwrap();
    let mark = seen_len(&proxy);
    let two = tmp.path().join("round2");
    ok(push_fresh(&p, &host, &two, &[]));
    let got = origins(&two);
    for s in ["catalog", "checkout", "orders", "ui"] {
        let (_, layers) = &got[s];
        assert!(!layers.is_empty());
        assert!(
            layers.iter().all(|(_, c)| c == "registry"),
            "{s}: {layers:?}"
        );
    }
    let cart = &got["cart"].1;
    assert_eq!(
        cart.iter().filter(|(_, c)| c == "built").count(),
        1,
        "only the changed layer is built: {cart:?}"
    );
    assert!(cart.iter().any(|(_, c)| c == "registry"), "{cart:?}");
    // Nothing uploaded for the unchanged services; the changed layer uploaded to cart only.
    let reqs = requests(&proxy, mark);
    let uploads: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/"))
        .collect();
    assert!(
        uploads.iter().all(|u| u.contains("/retail-store-cart/")),
        "{uploads:?}"
    );
    // Of layers, only the one built (the others are cart's two new configs).
    let layer_uploads: Vec<&&String> = uploads
        .iter()
        .filter(|u| cart.iter().any(|(d, _)| u.contains(&d.replace(':', "%3A"))))
        .collect();
    assert_eq!(layer_uploads.len(), 1, "{uploads:?}");
    let built = &cart.iter().find(|(_, c)| c == "built").unwrap().0;
    assert!(layer_uploads[0].contains(&built.replace(':', "%3A")));
    // The layouts hold no blob the registry cache gave.
    let ui = &got["ui"].1[0].0;
    let hex = ui.trim_start_matches("sha256:");
    assert!(!two.join("out/ui/blobs/sha256").join(hex).exists());

    // The same bytes as a build with no cache at all.
    let plain = uncached_build(&p, &tmp.path().join("plain"));
    for (s, (index, _)) in &got {
        assert_eq!(&plain[s], index, "{s}");
    }
    // Nothing changed: a third fresh runner builds nothing and uploads nothing.
    let mark = seen_len(&proxy);
    let three = tmp.path().join("round3");
    ok(push_fresh(&p, &host, &three, &[]));
    let reqs = requests(&proxy, mark);
    assert!(!reqs.iter().any(|r| r.starts_with("PUT ")), "{reqs:?}");
    assert!(origins(&three)
        .iter()
        .filter(|(s, _)| *s != "cart")
        .all(|(_, (_, l))| l.iter().all(|(_, c)| c == "registry")));
}

#[test]
fn a_blob_gone_from_the_registry_is_built_again() {
    let (reg, proxy) = counted();
    let (tmp, p) = retail_store();
    let host = proxy.host();
    round_one(&p, &host, tmp.path());
    let doc = cache_doc(&reg, "orders-main").unwrap();
    let gone = doc["layers"][0]["digest"].as_str().unwrap().to_string();
    let url = format!("http://{}/v2/ocibuild-cache/blobs/{gone}", reg.host());
    curl(&["-sf", "-X", "DELETE", &url]);
    let run = tmp.path().join("round2");
    ok(push_fresh(&p, &host, &run, &[]));
    let got = origins(&run);
    let orders = &got["orders"].1;
    assert!(
        orders.iter().any(|(d, c)| *d == gone && c == "built"),
        "{orders:?}"
    );
    assert!(orders.iter().any(|(_, c)| c == "registry"), "{orders:?}");
}

/// A GitHub Actions environment for `event` on `branch` (pull requests: number 7).
fn github(cmd: &mut Command, dir: &Path, event: &str, branch: &str) {
    let payload = dir.join("event.json");
    fs::create_dir_all(dir).unwrap();
    fs::write(
        &payload,
        r#"{"number": 7, "pull_request": {"base": {"sha": "0000000"}}}"#,
    )
    .unwrap();
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", event)
        .env("GITHUB_EVENT_PATH", &payload)
        .env("GITHUB_REF_NAME", branch)
        .env("GITHUB_HEAD_REF", branch)
        .env("GITHUB_REF", format!("refs/heads/{branch}"));
}

/// `push` for service cart in a GitHub Actions run; its stderr.
fn push_in(p: &Path, host: &str, run: &Path, event: &str, branch: &str, extra: &[&str]) -> String {
    let cfg = docker_config(run, "{}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    cmd.arg("push")
        .args([
            "--registry",
            host,
            "--sbom",
            "none",
            "--no-provenance",
            "--service",
            "cart",
        ])
        .args(["--cache-dir", run.join("cache").to_str().unwrap()])
        .args(["--out", run.join("out").to_str().unwrap()])
        .args(extra)
        .current_dir(p)
        .env("SOURCE_DATE_EPOCH", "0")
        .env("DOCKER_CONFIG", cfg);
    github(&mut cmd, run, event, branch);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    err
}

#[test]
fn only_default_branch_pushes_write_the_cache_and_pull_requests_never() {
    let (reg, proxy) = counted();
    let (tmp, p) = retail_store();
    let host = proxy.host();
    let cache_puts = |from: usize| {
        requests(&proxy, from)
            .into_iter()
            .filter(|r| r.starts_with("PUT /v2/ocibuild-cache/manifests/"))
            .count()
    };
    let t = tmp.path();
    // A pull request, even asking: nothing written.
    let mark = seen_len(&proxy);
    push_in(
        &p,
        &host,
        &t.join("pr"),
        "pull_request",
        "feature/x",
        &["--cache-write"],
    );
    assert_eq!(cache_puts(mark), 0);
    assert!(cache_doc(&reg, "cart-feature-x").is_none());
    // A push to another branch: not by default.
    let mark = seen_len(&proxy);
    push_in(&p, &host, &t.join("branch"), "push", "feature/x", &[]);
    assert_eq!(cache_puts(mark), 0);
    // A push to the default branch: by default.
    push_in(&p, &host, &t.join("main"), "push", "main", &[]);
    assert!(cache_doc(&reg, "cart-main").is_some());
    // ... unless told not to; and a feature branch asking writes its own tag.
    let mark = seen_len(&proxy);
    push_in(
        &p,
        &host,
        &t.join("main2"),
        "push",
        "main",
        &["--no-cache-write"],
    );
    assert_eq!(cache_puts(mark), 0);
    push_in(
        &p,
        &host,
        &t.join("feat"),
        "push",
        "feature/x",
        &["--cache-write"],
    );
    assert!(cache_doc(&reg, "cart-feature-x").is_some());
    // A pull request reads the cache: its branch's document, else the default branch's.
    let err = push_in(&p, &host, &t.join("pr2"), "pull_request", "feature/x", &[]);
    assert!(err.contains("own layers: 0 built"), "{err}");
    assert!(err.contains("2 from the registry cache"), "{err}");
    let err = push_in(&p, &host, &t.join("pr3"), "pull_request", "other", &[]);
    assert!(err.contains("2 from the registry cache"), "{err}");
}

#[test]
fn verify_cache_catches_a_document_pointing_at_another_blob() {
    let (reg, proxy) = counted();
    let (tmp, p) = retail_store();
    let host = proxy.host();
    round_one(&p, &host, tmp.path());
    // Point one of cart's fingerprints at another of its blobs (both are in the repository).
    let mut doc = cache_doc(&reg, "cart-main").unwrap();
    let layers = doc["layers"].as_array_mut().unwrap();
    assert!(layers.len() >= 2);
    let other = layers[1].clone();
    for k in ["digest", "size"] {
        layers[0][k] = other[k].clone();
    }
    layers[0]["annotations"]["dev.ocibuild.layer.diff_id"] =
        other["annotations"]["dev.ocibuild.layer.diff_id"].clone();
    let body = serde_json::to_vec(&doc).unwrap();
    let file = tmp.path().join("poisoned.json");
    fs::write(&file, body).unwrap();
    let url = format!(
        "http://{}/v2/ocibuild-cache/manifests/cart-main",
        reg.host()
    );
    curl(&[
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", file.display()),
        &url,
    ]);
    let run = tmp.path().join("audit");
    let o = push_fresh(
        &p,
        &host,
        &run,
        &["--verify-cache", "--service", "cart", "--dry-run"],
    );
    let err = fails(o);
    let poisoned = other["digest"].as_str().unwrap();
    assert!(err.contains("registry layer cache"), "{err}");
    assert!(err.contains(poisoned), "{err}");
    // Without the audit the hint is taken as it is: the reason the README says who may write.
    let run = tmp.path().join("trusting");
    ok(push_fresh(
        &p,
        &host,
        &run,
        &["--service", "cart", "--dry-run"],
    ));
    // The unpoisoned cache passes the audit.
    let run = tmp.path().join("audit-ok");
    ok(push_fresh(
        &p,
        &host,
        &run,
        &["--verify-cache", "--service", "ui", "--dry-run"],
    ));
}

#[test]
fn build_reads_the_cache_of_the_configs_registry_and_materialize_leaves_it_alone() {
    let (_reg, proxy) = counted();
    let (tmp, p) = retail_store();
    let host = proxy.host();
    round_one(&p, &host, tmp.path());
    let cfg = fs::read_to_string(p.join("ocibuild.toml")).unwrap();
    fs::write(
        p.join("ocibuild.toml"),
        format!("[registry]\nurl = \"{host}\"\n\n{cfg}"),
    )
    .unwrap();
    let build = |name: &str, extra: &[&str]| -> Vec<Value> {
        let out = tmp.path().join(name);
        let cache = tmp.path().join(format!("{name}-cache"));
        let mut args = vec!["build", "--format", "json", "--out", out.to_str().unwrap()];
        args.extend(["--cache-dir", cache.to_str().unwrap()]);
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(ocibuild(&p, &args))).unwrap()
    };
    let layers = |built: &[Value]| -> Vec<(String, bool)> {
        built
            .iter()
            .flat_map(|s| s["platforms"].as_array().unwrap().clone())
            .flat_map(|p| p["layers"].as_array().unwrap().clone())
            .filter(|l| !l["from_base"].as_bool().unwrap())
            .map(|l| {
                let cache = l["cache"].as_str().unwrap().to_string();
                (cache, l["in_layout"].as_bool().unwrap())
            })
            .collect()
    };
    let fresh = layers(&build("fresh", &[]));
    assert!(!fresh.is_empty());
    assert!(
        fresh.iter().all(|(c, here)| c == "registry" && !here),
        "{fresh:?}"
    );
    let whole = layers(&build("whole", &["--materialize"]));
    assert!(
        whole.iter().all(|(c, here)| c != "registry" && *here),
        "{whole:?}"
    );
    let err = refused(ocibuild(
        &p,
        &["build", "--out", "x", "--materialize", "--verify-cache"],
    ));
    assert!(err.contains("--materialize"), "{err}");
}

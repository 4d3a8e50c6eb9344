//! `ocibuild push` against registries that answer badly or point elsewhere (small fake servers
//! on loopback ports): layout ref names that are not tags, credentials and `Location`s on
//! another port, an explicit `https://` on a loopback host, answers too large to hold (streamed
//! endlessly, never allocated here), token lifetimes and config values that would overflow.

use crate::common::*;
use crate::fake_http::*;
use crate::registry::{docker_config, TestRegistry};
use base64::Engine;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

/// A registry that takes a push: nothing is there yet; uploads go to `upload_to(n)`.
fn push_flow(req: &Seen, upload_to: &dyn Fn(usize) -> String, n: usize) -> Answer {
    match req.method.as_str() {
        "HEAD" => answer(404, &[], b""),
        "POST" if req.target.contains("/blobs/uploads/") => {
            let loc = upload_to(n);
            answer(202, &[("Location", loc.as_str())], b"")
        }
        "PUT" => answer(201, &[], b""),
        _ => answer(404, &[], b""),
    }
}

const ALICE: &str = "Basic YWxpY2U6czNjcmV0";

fn alice_config(dir: &Path, host: &str) -> PathBuf {
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    docker_config(
        dir,
        &format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
}

/// The retail store with the cart service built into `<tmp>/layouts`.
fn built_cart() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, p) = retail_store();
    let out = tmp.path().join("layouts");
    ok(ocibuild(
        &p,
        &["build", "--service", "cart", "--out", out.to_str().unwrap()],
    ));
    (tmp, p, out)
}

fn push_layout(p: &Path, cfg: &Path, layouts: &Path, registry: &str) -> Output {
    push(
        p,
        cfg,
        &[
            "--service",
            "cart",
            "--layout",
            layouts.to_str().unwrap(),
            "--registry",
            registry,
        ],
    )
}

fn set_ref_name(layout: &Path, name: &str) {
    let path = layout.join("index.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for m in v["manifests"].as_array_mut().unwrap() {
        m["annotations"]["org.opencontainers.image.ref.name"] = name.into();
    }
    fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn layout_ref_names_that_are_not_tags_are_refused_before_any_request() {
    let (tmp, p, layouts) = built_cart();
    let fake = Fake::start(|_| answer(201, &[], b""));
    let cfg = alice_config(tmp.path(), &fake.host());
    for bad in [
        "../../other/manifests/x",
        "v1?x=1",
        "v1#f",
        "a/b",
        "-v1",
        "v1 ",
        "sha256:0000",
    ] {
        set_ref_name(&layouts.join("cart"), bad);
        let err = fails(push_layout(&p, &cfg, &layouts, &fake.host()));
        let quoted = format!("{bad:?}");
        assert!(err.contains(&quoted), "{bad}: {err}");
        assert!(err.contains("--tag"), "names the fix: {err}");
        assert!(
            err.contains(&layouts.join("cart").display().to_string()),
            "names the layout: {err}"
        );
    }
    assert!(
        fake.seen().is_empty(),
        "requests were sent: {:?}",
        fake.seen()
    );
}

#[test]
fn a_layout_with_a_bad_ref_name_pushes_with_tags_given() {
    require("skopeo");
    let (tmp, p, layouts) = built_cart();
    set_ref_name(&layouts.join("cart"), "../../other/manifests/x");
    let reg = TestRegistry::start(None);
    let cfg = docker_config(tmp.path(), "{}");
    ok(push(
        &p,
        &cfg,
        &[
            "--service",
            "cart",
            "--layout",
            layouts.to_str().unwrap(),
            "--registry",
            &reg.host(),
            "--tag",
            "v1",
        ],
    ));
    assert!(reg.raw("retail-store-cart", "v1", None).is_some());
    assert!(reg.raw("other", "x", None).is_none());
}

#[test]
fn credentials_stay_home_when_an_upload_goes_to_another_port() {
    let (tmp, p, layouts) = built_cart();
    let storage = Fake::start(|_| answer(201, &[], b""));
    let storage_host = storage.host();
    let counter = Arc::new(Mutex::new(0usize));
    let registry = Fake::start(move |req| {
        if req.header("authorization") != Some(ALICE) {
            return answer(401, &[("WWW-Authenticate", "Basic realm=\"r\"")], b"");
        }
        let n = {
            let mut c = counter.lock().unwrap();
            *c += 1;
            *c
        };
        let to = |n: usize| format!("http://{storage_host}/upload/{n}?state=s");
        push_flow(req, &to, n)
    });
    let cfg = alice_config(tmp.path(), &registry.host());
    ok(push_layout(&p, &cfg, &layouts, &registry.host()));
    let puts = storage.seen();
    assert!(!puts.is_empty(), "the uploads went to the Location");
    for s in &puts {
        assert_eq!(s.method, "PUT");
        assert_eq!(s.header("authorization"), None, "credentials leaked: {s:?}");
    }
    assert!(registry
        .seen()
        .iter()
        .any(|s| s.header("authorization") == Some(ALICE)));
}

#[test]
fn an_explicit_https_is_honoured_for_a_loopback_registry() {
    let (tmp, p, layouts) = built_cart();
    let fake = Fake::start(|_| answer(404, &[], b""));
    let cfg = docker_config(tmp.path(), "{}");
    let out = push_layout(&p, &cfg, &layouts, &format!("https://{}", fake.host()));
    fails(out);
    let raw = fake.raw.lock().unwrap().clone();
    assert!(!raw.is_empty(), "no TLS handshake came");
    assert!(raw.iter().all(|b| b.first() == Some(&0x16)), "{raw:?}");
    assert!(
        fake.seen().is_empty(),
        "plain HTTP was sent: {:?}",
        fake.seen()
    );
    // A bare loopback host still gets plain HTTP.
    let out = push_layout(&p, &cfg, &layouts, &fake.host());
    fails(out);
    assert!(!fake.seen().is_empty());
}

#[test]
fn an_endless_error_body_ends_the_run_with_a_clear_error() {
    let (tmp, p, layouts) = built_cart();
    let fake = Fake::start(|req| match req.method.as_str() {
        "HEAD" => answer(404, &[], b""),
        _ => endless(400),
    });
    let cfg = docker_config(tmp.path(), "{}");
    let err = fails(push_layout(&p, &cfg, &layouts, &fake.host()));
    assert!(err.contains("400"), "{err}");
    assert!(err.contains("cut after 65536 bytes"), "{err}");
}

#[test]
fn an_endless_token_answer_ends_the_run_with_a_clear_error() {
    let (tmp, p, layouts) = built_cart();
    let fake = Fake::start(|req| {
        if req.target.starts_with("/token") {
            return endless(200);
        }
        let realm = format!(
            "Bearer realm=\"http://{}/token\",service=\"r\"",
            req.header("host").unwrap_or("")
        );
        answer(401, &[("WWW-Authenticate", realm.as_str())], b"")
    });
    let cfg = docker_config(tmp.path(), "{}");
    let err = fails(push_layout(&p, &cfg, &layouts, &fake.host()));
    assert!(err.contains("token answer is larger than"), "{err}");
}

#[test]
fn a_token_that_claims_to_live_forever_does_not_crash_the_push() {
    let (tmp, p, layouts) = built_cart();
    let counter = Arc::new(Mutex::new(0usize));
    let fake = Fake::start(move |req| {
        let host = req.header("host").unwrap_or("").to_string();
        if req.target.starts_with("/token") {
            return answer(
                200,
                &[("Content-Type", "application/json")],
                br#"{"token":"t","expires_in":18446744073709551615}"#,
            );
        }
        if req.header("authorization") != Some("Bearer t") {
            let realm = format!("Bearer realm=\"http://{host}/token\",service=\"r\"");
            return answer(401, &[("WWW-Authenticate", realm.as_str())], b"");
        }
        let n = {
            let mut c = counter.lock().unwrap();
            *c += 1;
            *c
        };
        let to = |n: usize| format!("/v2/retail-store-cart/blobs/uploads/u{n}");
        push_flow(req, &to, n)
    });
    let cfg = docker_config(tmp.path(), "{}");
    ok(push_layout(&p, &cfg, &layouts, &fake.host()));
}

#[test]
fn out_of_range_manifest_rates_are_refused_naming_the_key() {
    let (_tmp, p) = retail_store();
    let path = p.join("ocibuild.toml");
    let original = fs::read_to_string(&path).unwrap();
    for rate in ["1e-300", "0.0", "-3.0", "1e300", "inf", "nan"] {
        fs::write(
            &path,
            format!(
                "[registry]\nurl = \"127.0.0.1:1\"\nmanifest_puts_per_second = {rate}\n{original}"
            ),
        )
        .unwrap();
        let out = ocibuild(&p, &["push", "--dry-run", "--service", "cart"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{rate}: {:?} {err}",
            out.status
        );
        assert!(!err.contains("panicked"), "{rate}: {err}");
        assert!(err.contains("manifest_puts_per_second"), "{rate}: {err}");
        assert!(
            err.contains("0.001") && err.contains("10000"),
            "{rate}: {err}"
        );
    }
}

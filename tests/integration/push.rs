//! `ocibuild push` against a real registry, read back with skopeo.

use crate::common::*;
use crate::registry::{docker_config, TestRegistry};
use base64::Engine;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;

fn report(path: &Path) -> Vec<Value> {
    serde_json::from_slice::<Value>(&fs::read(path).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn sum(r: &[Value], key: &str) -> u64 {
    r.iter().map(|s| s[key].as_u64().unwrap()).sum()
}

#[test]
fn push_reads_back_with_skopeo_and_a_second_push_uploads_nothing() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let rep = tmp.path().join("report.json");
    let out = push(
        &p,
        &cfg,
        &[
            "--registry",
            &reg.host(),
            "--tag",
            "stable,v1",
            "--report",
            rep.to_str().unwrap(),
            "--jobs",
            "4",
        ],
    );
    let text = ok(out);
    assert_eq!(
        text.lines().filter(|l| l.contains(" pushed: ")).count(),
        5,
        "{text}"
    );
    let r = report(&rep);
    assert_eq!(r.len(), 5);
    assert!(sum(&r, "blobs_uploaded") > 0);
    assert!(
        sum(&r, "blobs_mounted") > 0,
        "shared base layers are mounted, not uploaded again"
    );
    for s in &r {
        assert!(s["error"].is_null());
        let repo = s["repository"].as_str().unwrap();
        let index = s["index_digest"].as_str().unwrap();
        // (Literal tags: the `latest` kind is only for the default branch, and no branch is
        // known in this copy of the fixtures.)
        for tag in ["stable", "v1"] {
            let raw = reg
                .raw(repo, tag, None)
                .unwrap_or_else(|| panic!("{repo}:{tag} missing"));
            assert_eq!(sha256_hex(&raw), index, "{repo}:{tag} points at the index");
        }
        for m in s["manifest_digests"].as_array().unwrap() {
            let raw = reg.raw(repo, m.as_str().unwrap(), None).unwrap();
            assert_eq!(&sha256_hex(&raw), m.as_str().unwrap());
        }
        // A full copy back to a layout keeps the digests.
        let back = tmp.path().join(format!("back-{repo}"));
        run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/{repo}:v1", reg.host()),
            &format!("oci:{}:v1", back.display()),
        ]));
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:v1", back.display()),
        ]));
        assert_eq!(sha256_hex(&raw), index);
    }

    // Again, from the layouts: nothing uploaded, everything skipped, tags rewritten.
    let layouts = p.join(".ocibuild/layouts");
    let rep2 = tmp.path().join("report2.json");
    ok(push(
        &p,
        &cfg,
        &[
            "--registry",
            &reg.host(),
            "--layout",
            layouts.to_str().unwrap(),
            "--tag",
            "v2",
            "--report",
            rep2.to_str().unwrap(),
        ],
    ));
    let r2 = report(&rep2);
    assert_eq!(sum(&r2, "blobs_uploaded"), 0);
    assert_eq!(sum(&r2, "blobs_mounted"), 0);
    assert_eq!(sum(&r2, "bytes_uploaded"), 0);
    assert_eq!(
        sum(&r2, "blobs_skipped"),
        sum(&r, "blobs_uploaded") + sum(&r, "blobs_mounted") + sum(&r, "blobs_skipped")
    );
    for s in &r2 {
        let raw = reg
            .raw(s["repository"].as_str().unwrap(), "v2", None)
            .unwrap();
        assert_eq!(sha256_hex(&raw), s["index_digest"].as_str().unwrap());
    }
}

#[test]
fn dry_run_writes_nothing_and_says_what_it_would_do() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let out = ok(push(
        &p,
        &cfg,
        &[
            "--registry",
            &format!("{}/team", reg.host()),
            "--dry-run",
            "--format",
            "json",
            "--service",
            "cart,catalog",
        ],
    ));
    let r: Vec<Value> = serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["repository"], "team/retail-store-cart");
    assert!(r.iter().all(|s| s["dry_run"] == true));
    assert!(sum(&r, "blobs_uploaded") > 0 && sum(&r, "blobs_mounted") > 0);
    assert_eq!(r[0]["tags"], serde_json::json!(["latest"]));
    assert!(
        reg.raw("team/retail-store-cart", "latest", None).is_none(),
        "a dry run pushed something"
    );
    let catalog = r[1]["index_digest"].as_str().unwrap();
    assert!(reg
        .raw("team/retail-store-catalog", catalog, None)
        .is_none());
}

#[test]
fn basic_auth_from_docker_config_and_helpful_failures() {
    require("skopeo");
    let reg = TestRegistry::start(Some(("ci-user", "correct horse")));
    let (tmp, p) = retail_store();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = docker_config(
        &tmp.path().join("good"),
        &format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64("ci-user:correct horse")
        ),
    );
    ok(push(
        &p,
        &good,
        &["--registry", &reg.host(), "--service", "cart"],
    ));
    assert!(reg
        .raw("retail-store-cart", "latest", Some("ci-user:correct horse"))
        .is_some());

    let bad = docker_config(
        &tmp.path().join("bad"),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64("ci-user:wrong-password-xyz")
        ),
    );
    let o = push(
        &p,
        &bad,
        &["--registry", &reg.host(), "--service", "catalog"],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let err = fails(o);
    assert!(err.contains("catalog"), "{all}");
    assert!(all.contains("401"), "{all}");
    assert!(
        all.contains("config.json"),
        "names the credential source: {all}"
    );
    assert!(
        !all.contains("wrong-password-xyz"),
        "password leaked: {all}"
    );
    assert!(reg
        .raw(
            "retail-store-catalog",
            "latest",
            Some("ci-user:correct horse")
        )
        .is_none());

    let none = docker_config(&tmp.path().join("none"), "{}");
    let o = push(
        &p,
        &none,
        &["--registry", &reg.host(), "--service", "catalog"],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    fails(o);
    assert!(all.contains("none was found"), "{all}");
}

#[test]
fn bearer_token_flow_asks_for_push_and_mount_scopes() {
    require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let ts = crate::token::TokenServer::start(
        tmp.path(),
        "test-registry",
        "ci-user",
        "tok-pass",
        "retail-store-",
    );
    let reg = TestRegistry::start_with_auth(
        tempfile::tempdir().unwrap(),
        Some(ts.registry_auth_yaml("test-registry")),
    );
    let (ptmp, p) = retail_store();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci-user:tok-pass");
    let cfg = docker_config(
        ptmp.path(),
        &format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    );
    let rep = ptmp.path().join("r.json");
    ok(push(
        &p,
        &cfg,
        &[
            "--registry",
            &reg.host(),
            "--service",
            "cart,catalog",
            "--report",
            rep.to_str().unwrap(),
            "-q",
        ],
    ));
    let r = report(&rep);
    assert!(sum(&r, "blobs_mounted") > 0);
    let scopes = ts.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:retail-store-cart:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:retail-store-catalog:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:retail-store-cart:pull".to_string()),
        "mount asks pull on the source: {scopes:?}"
    );
    // one token per scope set, cached: far fewer token requests than registry requests
    assert!(scopes.len() < 12, "tokens are cached: {scopes:?}");
    for s in &r {
        let raw = reg
            .raw(
                s["repository"].as_str().unwrap(),
                "latest",
                Some("ci-user:tok-pass"),
            )
            .unwrap();
        assert_eq!(sha256_hex(&raw), s["index_digest"].as_str().unwrap());
    }
    // A repository the token service grants no push on: a clear failure, no secret shown.
    let o = push(
        &p,
        &cfg,
        &[
            "--registry",
            &format!("{}/elsewhere", reg.host()),
            "--service",
            "orders",
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    fails(o);
    assert!(
        all.contains("401") || all.contains("403") || all.contains("DENIED"),
        "{all}"
    );
    assert!(!all.contains("tok-pass"), "{all}");
}

#[test]
fn credential_helper_programs_are_used() {
    require("skopeo");
    let reg = TestRegistry::start(Some(("helper-user", "helper-pass")));
    let (tmp, p) = retail_store();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-ocitest");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread host\nif [ \"$host\" = \"{}\" ]; then echo '{{\"ServerURL\":\"'$host'\",\"Username\":\"helper-user\",\"Secret\":\"helper-pass\"}}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
            reg.host()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = docker_config(
        tmp.path(),
        &format!(r#"{{"credHelpers":{{"{}":"ocitest"}}}}"#, reg.host()),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args(["push", "--registry", &reg.host(), "--service", "orders"])
        .current_dir(&p)
        .env("DOCKER_CONFIG", &cfg)
        .env("PATH", &path)
        .output()
        .unwrap();
    ok(o);
    assert!(reg
        .raw(
            "retail-store-orders",
            "latest",
            Some("helper-user:helper-pass")
        )
        .is_some());
}

#[test]
fn a_credential_helper_that_never_stops_printing_is_cut_off() {
    let (tmp, p) = retail_store();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-flood");
    fs::write(
        &helper,
        "#!/bin/sh
exec yes '{\"Secret\":\"x\"}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = docker_config(tmp.path(), r#"{"credsStore":"flood"}"#);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args(["push", "--registry", "127.0.0.1:9", "--service", "orders"])
        .current_dir(&p)
        .env("DOCKER_CONFIG", &cfg)
        .env("PATH", &path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("docker-credential-flood") && err.contains("more than"),
        "{err}"
    );
}

#[test]
fn a_service_that_fails_leaves_no_tag_and_the_others_go_on() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let layouts = tmp.path().join("layouts");
    ok(ocibuild(&p, &["build", "--out", layouts.to_str().unwrap()]));
    // Corrupt one of the orders service's own layers (same size, other bytes): the registry
    // refuses the upload because the digest does not match.
    let rep: Value = serde_json::from_str(&ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            layouts.to_str().unwrap(),
            "--service",
            "orders",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let layer = rep[0]["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["from_base"] == false)
        .unwrap();
    let path = layouts
        .join("orders/blobs/sha256")
        .join(&layer["digest"].as_str().unwrap()[7..]);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();
    let rep_file = tmp.path().join("r.json");
    let o = push(
        &p,
        &cfg,
        &[
            "--registry",
            &reg.host(),
            "--layout",
            layouts.to_str().unwrap(),
            "--report",
            rep_file.to_str().unwrap(),
        ],
    );
    let err = fails(o);
    assert!(
        err.contains("1 of 5 services failed to push: orders"),
        "{err}"
    );
    let r = report(&rep_file);
    let orders = r.iter().find(|s| s["service"] == "orders").unwrap();
    assert!(
        orders["error"]
            .as_str()
            .unwrap()
            .contains(&layer["digest"].as_str().unwrap()[..19]),
        "{orders}"
    );
    assert_eq!(orders["tags"], serde_json::json!([]));
    assert!(
        reg.raw("retail-store-orders", "latest", None).is_none(),
        "a failed service got a tag"
    );
    for s in ["cart", "catalog", "checkout", "ui"] {
        assert!(
            reg.raw(&format!("retail-store-{s}"), "latest", None)
                .is_some(),
            "{s}"
        );
    }
}

mod faults {
    use super::*;
    use crate::proxy::{Fault, FaultProxy};
    use std::sync::Arc;
    use std::time::Duration;

    /// A registry that answers like ECR for an IMMUTABLE repository: any PUT to a tag that was
    /// written before is refused with 400 TAG_INVALID.
    fn immutable_registry(upstream: u16) -> FaultProxy {
        let rule: crate::proxy::Rule = Arc::new(|method: &str, path: &str, n: usize| {
            let tag_put = method == "PUT"
                && path.contains("/manifests/")
                && !path.contains("/manifests/sha256:");
            if tag_put && n > 0 {
                Fault::Immutable
            } else {
                Fault::Forward
            }
        });
        FaultProxy::start(upstream, rule, false)
    }

    #[test]
    fn reruns_on_immutable_repositories_write_nothing_and_a_moved_tag_is_refused_by_name() {
        let reg = TestRegistry::start(None);
        let proxy = immutable_registry(reg.port);
        let (tmp, p) = retail_store();
        let cfg = docker_config(tmp.path(), "{}");
        let rep = tmp.path().join("r.json");
        let args = |rep: &Path| {
            let host = proxy.host();
            let r = rep.to_str().unwrap().to_string();
            move || {
                vec![
                    "--registry".to_string(),
                    host.clone(),
                    "--tag".into(),
                    "v1,stable".into(),
                    "--service".into(),
                    "catalog".into(),
                    "--report".into(),
                    r.clone(),
                    "-q".into(),
                ]
            }
        };
        let run_push = |a: Vec<String>| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            push(&p, &cfg, &a)
        };
        let a = args(&rep);
        ok(run_push(a()));
        let first = report(&rep)[0]["index_digest"]
            .as_str()
            .unwrap()
            .to_string();
        // A rerun of the same commit: the tags already name the image; no tag PUT at all.
        ok(run_push(a()));
        assert_eq!(
            proxy.count(|f| matches!(f, Fault::Immutable)),
            0,
            "no tag was rewritten"
        );
        assert_eq!(report(&rep)[0]["tags"], serde_json::json!(["v1", "stable"]));
        // The catalog changes but the tag does not: refused, naming the tag and both digests.
        let bin = p.join("src/catalog/dist/linux-amd64/catalog");
        let mut bytes = fs::read(&bin).unwrap();
        bytes.extend_from_slice(b"changed");
        fs::write(&bin, bytes).unwrap();
        let out = run_push(a());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{err}");
        let second = report(&rep)[0]["index_digest"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(first, second);
        let e = report(&rep)[0]["error"].as_str().unwrap().to_string();
        assert!(
            e.starts_with("tag v1 in retail-store-catalog already names"),
            "{e}"
        );
        assert!(
            e.contains(&first) && e.contains(&second) && e.contains("IMMUTABLE"),
            "{e}"
        );
        assert!(proxy.count(|f| matches!(f, Fault::Immutable)) >= 1);
        assert!(
            err.contains("1 of 1 services failed to push: catalog"),
            "{err}"
        );
    }

    #[test]
    fn transient_faults_are_retried_and_the_push_is_correct() {
        require("skopeo");
        let reg = TestRegistry::start(None);
        // First try of every HEAD on a blob: 503. First upload start: 429 with Retry-After: 1,
        // second: 429 without. First body of each blob PUT: connection reset half way. Every
        // tag PUT first gets a 500; index lookups are slow. Manifest PUT answers lose Location
        // (as ECR's sometimes do).
        let rule: crate::proxy::Rule = Arc::new(|method: &str, path: &str, n: usize| {
            let blob = path.contains("/blobs/");
            match (method, n) {
                ("HEAD", 0) if blob => Fault::Status(503, None),
                ("HEAD", _) if path.contains("/manifests/sha256:") => {
                    Fault::Slow(Duration::from_millis(150))
                }
                ("POST", 0) if path.ends_with("/blobs/uploads/") => Fault::Status(429, Some(1)),
                ("POST", 1) if path.ends_with("/blobs/uploads/") => Fault::Status(429, None),
                ("PUT", 0) if blob => Fault::ResetMidBody,
                ("PUT", 0) if path.ends_with("/manifests/latest") => Fault::Status(500, None),
                _ => Fault::Forward,
            }
        });
        let proxy = FaultProxy::start(reg.port, rule, true);
        let (tmp, p) = retail_store();
        let cfg = docker_config(tmp.path(), "{}");
        let rep = tmp.path().join("r.json");
        ok(push(
            &p,
            &cfg,
            &[
                "--registry",
                &proxy.host(),
                "--report",
                rep.to_str().unwrap(),
                "-q",
            ],
        ));
        assert!(
            proxy.count(|f| matches!(f, Fault::ResetMidBody)) >= 5,
            "resets were injected"
        );
        assert!(
            !proxy.saw_chunked.load(std::sync::atomic::Ordering::SeqCst),
            "uploads must be one request with Content-Length, not chunked"
        );
        assert!(proxy.count(|f| matches!(f, Fault::Status(503, _))) >= 5);
        assert!(proxy.count(|f| matches!(f, Fault::Status(429, Some(1)))) >= 1);
        assert!(proxy.count(|f| matches!(f, Fault::Status(500, _))) == 5);
        for s in report(&rep) {
            let repo = s["repository"].as_str().unwrap();
            let raw = reg.raw(repo, "latest", None).unwrap();
            assert_eq!(sha256_hex(&raw), s["index_digest"].as_str().unwrap());
            // every blob the manifests name is really there and intact: copy all back
            let back = tmp.path().join(format!("b-{repo}"));
            run(Command::new("skopeo").args([
                "--insecure-policy",
                "copy",
                "--all",
                "--src-tls-verify=false",
                &format!("docker://{}/{repo}:latest", reg.host()),
                &format!("oci:{}:x", back.display()),
            ]));
        }
    }

    #[test]
    fn a_service_failing_for_good_leaves_no_tag_and_no_broken_manifest() {
        require("skopeo");
        let reg = TestRegistry::start(None);
        let rule: crate::proxy::Rule = Arc::new(|method: &str, path: &str, _n: usize| {
            if method == "PUT" && path.starts_with("/v2/retail-store-orders/blobs/") {
                Fault::Status(502, None)
            } else {
                Fault::Forward
            }
        });
        let proxy = FaultProxy::start(reg.port, rule, false);
        let (tmp, p) = retail_store();
        let cfg = docker_config(tmp.path(), "{}");
        let rep = tmp.path().join("r.json");
        let o = push(
            &p,
            &cfg,
            &[
                "--registry",
                &proxy.host(),
                "--report",
                rep.to_str().unwrap(),
                "--service",
                "orders,cart",
            ],
        );
        let err = fails(o);
        assert!(err.contains("failed to push: orders"), "{err}");
        let r = report(&rep);
        let orders = r.iter().find(|s| s["service"] == "orders").unwrap();
        let msg = orders["error"].as_str().unwrap();
        assert!(
            msg.contains("blob sha256:") && msg.contains("502") && msg.contains("after 5 tries"),
            "{msg}"
        );
        assert!(
            reg.raw("retail-store-orders", "latest", None).is_none(),
            "tag of a failed service"
        );
        assert!(reg
            .raw(
                "retail-store-orders",
                orders["index_digest"].as_str().unwrap(),
                None
            )
            .is_none());
        for m in orders["manifest_digests"].as_array().unwrap() {
            assert!(
                reg.raw("retail-store-orders", m.as_str().unwrap(), None)
                    .is_none(),
                "manifest pushed over missing blobs"
            );
        }
        assert!(
            reg.raw("retail-store-cart", "latest", None).is_some(),
            "cart goes on"
        );
    }
}

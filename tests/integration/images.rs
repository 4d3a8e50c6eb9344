//! `ocibuild images` against a real registry (docker-registry 2.8: the tag list, manifests,
//! configs, the referrers tag schema and signature tags) and against moto's ECR API paired
//! with one (DescribeImages, BatchGetImage), checked against what skopeo reads.

use crate::common::*;
use crate::ecr::{ecr_project, oci, seed_images};
use crate::fake_http::{answer, Fake};
use crate::moto::{Moto, TOKEN_PASSWORD};
use crate::registry::{docker_config, TestRegistry};
use crate::sign::openssl_key;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The compressed size of each platform manifest of `index` (config and layers), by skopeo.
fn sizes(reg: &TestRegistry, repo: &str, index: &str, creds: Option<&str>) -> Vec<(String, u64)> {
    let idx: Value = serde_json::from_str(&reg.raw(repo, index, creds).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let d = m["digest"].as_str().unwrap();
            let man: Value = serde_json::from_str(&reg.raw(repo, d, creds).unwrap()).unwrap();
            let layers: u64 = man["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["size"].as_u64().unwrap())
                .sum();
            (
                d.to_string(),
                layers + man["config"]["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn images(p: &Path, cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    c.arg("images")
        .args(args)
        .current_dir(p)
        .env("DOCKER_CONFIG", cfg);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn push_at(p: &Path, cfg: &Path, host: &str, epoch: &str, tag: &str, extra: &[&str]) {
    ok(Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args([
            "push",
            "--registry",
            host,
            "--service",
            "cart",
            "--tag",
            tag,
            "--no-provenance",
        ])
        .args(extra)
        .current_dir(p)
        .env("SOURCE_DATE_EPOCH", epoch)
        .env("DOCKER_CONFIG", cfg)
        .env_remove("GITHUB_EVENT_NAME")
        .output()
        .unwrap());
}

#[test]
fn a_registry_lists_each_image_with_its_platforms_sizes_and_attachments() {
    require("skopeo");
    require("openssl");
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (key, _) = openssl_key(tmp.path(), "signer");
    let host = reg.host();
    push_at(&p, &cfg, &host, "1700000000", "v1", &[]);
    std::fs::write(p.join("src/cart/target/static/index.html"), "<h1>v2</h1>\n").unwrap();
    push_at(
        &p,
        &cfg,
        &host,
        "1700100000",
        "v2",
        &["--sign-key", key.to_str().unwrap()],
    );
    let v1 = sha256_hex(reg.raw("retail-store-cart", "v1", None).unwrap());
    let v2 = sha256_hex(reg.raw("retail-store-cart", "v2", None).unwrap());

    let summary = tmp.path().join("summary.md");
    let summary_env = summary.to_str().unwrap();
    let out = ok(images(
        &p,
        &cfg,
        &["--registry", &host, "--service", "cart", "--format", "json"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary_env),
        ],
    ));
    let listed: Value = serde_json::from_str(&out).unwrap();
    let cart = &listed[0];
    assert_eq!(cart["repository"], format!("{host}/retail-store-cart"));
    assert_eq!(cart["source"], "registry");
    let imgs = cart["images"].as_array().unwrap();
    let tops: Vec<&str> = imgs.iter().map(|i| i["digest"].as_str().unwrap()).collect();
    assert_eq!(
        tops,
        [v2.as_str(), v1.as_str()],
        "newest first, no loose manifests"
    );
    assert_eq!(imgs[0]["tags"], serde_json::json!(["v2"]));
    assert_eq!(imgs[0]["pushed_at"], "2023-11-16T02:00:00Z");
    for (img, digest) in imgs.iter().zip([&v2, &v1]) {
        let want = sizes(&reg, "retail-store-cart", digest, None);
        let got: Vec<(String, u64)> = img["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["digest"].as_str().unwrap().to_string(),
                    p["size"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{digest}");
        let names: Vec<&str> = img["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["platform"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64/v8"]);
    }
    let kinds = |img: &Value| -> Vec<String> {
        let mut k: Vec<String> = img["attached"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds(&imgs[0]),
        ["sbom", "sbom", "signature", "signature", "signature"]
    );
    assert_eq!(kinds(&imgs[1]), ["sbom", "sbom"]);
    assert_eq!(cart["untagged"], serde_json::json!([]));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("### ocibuild images") && md.contains(&v2[7..19]),
        "{md}"
    );

    // The text table, and the limit.
    let text = ok(images(
        &p,
        &cfg,
        &["--registry", &host, "--service", "cart", "--limit", "1"],
        &[],
    ));
    assert!(
        text.contains("PUSHED") && text.contains(&v2[7..19]),
        "{text}"
    );
    assert!(!text.contains(&v1[7..19]), "{text}");
    assert!(text.contains("1 older (--limit)"), "{text}");
    assert!(
        text.contains("3 signature") && text.contains("2 sbom"),
        "{text}"
    );

    // A repository that does not exist is named; the run fails.
    let e = fails(images(
        &p,
        &cfg,
        &["--registry", &host, "--service", "ui"],
        &[],
    ));
    assert!(e.contains("retail-store-ui: no such repository"), "{e}");
}

#[test]
fn ecr_lists_from_describe_images_with_children_under_their_index() {
    require("skopeo");
    let moto = Moto::start();
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    let (_t, p) = ecr_project(&reg.host(), "");
    let ep = moto.endpoint();
    ok(oci(
        &p,
        &ep,
        &[
            "push",
            "--create-repos",
            "--service",
            "cart",
            "--tag",
            "v1",
            "--no-provenance",
        ],
    ));
    // moto's images are what is put into it: the pushed layout's index and manifests.
    seed_images(
        &moto,
        "retail-store-cart",
        &p.join(".ocibuild/layouts/cart"),
    );
    moto.boto("ecr.put_image(repositoryName='retail-store-cart', imageManifest=json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': 'sha256:' + '0'*64, 'size': 2}, 'layers': []}))");
    // moto "scans" what it holds: one HIGH finding per platform manifest.
    let scan = [
        "scan",
        "--service",
        "cart",
        "--tag",
        "latest",
        "--wait",
        "30s",
    ];
    ok(oci(&p, &ep, &scan));
    let out = ok(oci(
        &p,
        &ep,
        &["images", "--service", "cart", "--format", "json"],
    ));
    let listed: Value = serde_json::from_str(&out).unwrap();
    let cart = &listed[0];
    assert_eq!(cart["source"], "ecr");
    let creds = format!("AWS:{TOKEN_PASSWORD}");
    let index = sha256_hex(reg.raw("retail-store-cart", "v1", Some(&creds)).unwrap());
    // moto digests the index it was given after its own re-serialization: ask it which.
    let moto_index = moto.boto("print(ecr.describe_images(repositoryName='retail-store-cart', imageIds=[{'imageTag': 'latest'}])['imageDetails'][0]['imageDigest'])");
    let imgs = cart["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 1, "children are not images: {cart}");
    assert_eq!(imgs[0]["digest"], moto_index.trim());
    assert_eq!(imgs[0]["tags"], serde_json::json!(["latest"]));
    let want: Vec<String> = sizes(&reg, "retail-store-cart", &index, Some(&creds))
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let got: Vec<&str> = imgs[0]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["digest"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    for p in imgs[0]["platforms"].as_array().unwrap() {
        assert_eq!(p["scan_status"], "COMPLETE", "{p}");
        assert_eq!(p["severities"]["HIGH"], 1, "{p}");
    }
    let text = ok(oci(&p, &ep, &["images", "--service", "cart"]));
    assert!(text.contains("SCAN") && text.contains("H2"), "{text}");
    // The manifest nothing references is listed as untagged, with its age.
    let untagged = cart["untagged"].as_array().unwrap();
    assert_eq!(untagged.len(), 1, "{cart}");
    assert_eq!(untagged[0]["age_days"], 0);
}

#[test]
fn tag_pages_are_followed_within_the_registry_and_never_to_another_origin() {
    // Elsewhere: must never be asked (it would get the registry's credentials).
    let elsewhere = Fake::start(|_| answer(200, &[], br#"{"tags":[]}"#));
    let other = elsewhere.host();
    let registry = Fake::start(move |req| {
        let page2 = req.target.contains("last=b");
        let away = req.target.contains("away");
        match (req.target.contains("/tags/list"), page2, away) {
            (true, false, false) => answer(
                200,
                &[("Link", r#"</v2/retail-store-cart/tags/list?n=1000&last=b>; rel="next""#)],
                br#"{"name":"retail-store-cart","tags":["sha256-0000000000000000000000000000000000000000000000000000000000000000"]}"#,
            ),
            (true, true, _) => answer(200, &[], br#"{"name":"retail-store-cart","tags":[]}"#),
            _ => answer(404, &[], b""),
        }
    });
    let (tmp, p) = retail_store();
    let auth = "YWxpY2U6czNjcmV0"; // alice:s3cret
    let cfg = docker_config(
        tmp.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    );
    let out = ok(images(
        &p,
        &cfg,
        &[
            "--registry",
            &registry.host(),
            "--service",
            "cart",
            "--format",
            "json",
        ],
        &[],
    ));
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed[0]["images"],
        serde_json::json!([]),
        "schema tags are not images"
    );
    let lists = registry
        .seen()
        .iter()
        .filter(|r| r.target.contains("/tags/list"))
        .count();
    assert_eq!(lists, 2, "both pages read");

    // A next page on another origin is refused, not followed.
    let away = Fake::start(move |req| {
        if req.target.contains("/tags/list") {
            let link =
                format!("<http://{other}/v2/retail-store-cart/tags/list?away=1>; rel=\"next\"");
            return answer(200, &[("Link", link.as_str())], br#"{"tags":[]}"#);
        }
        answer(404, &[], b"")
    });
    let e = fails(images(
        &p,
        &cfg,
        &["--registry", &away.host(), "--service", "cart"],
        &[],
    ));
    assert!(e.contains("another origin"), "{e}");
    assert!(elsewhere.seen().is_empty(), "nothing was sent elsewhere");

    // A next page that is the page itself ends with an error, not a loop.
    let looping = Fake::start(|req| {
        if req.target.contains("/tags/list") {
            let link = format!("<{}>; rel=\"next\"", req.target);
            return answer(200, &[("Link", link.as_str())], br#"{"tags":[]}"#);
        }
        answer(404, &[], b"")
    });
    let e = fails(images(
        &p,
        &cfg,
        &["--registry", &looping.host(), "--service", "cart"],
        &[],
    ));
    assert!(e.contains("do not end"), "{e}");
    assert!(looping.seen().len() <= 3, "{}", looping.seen().len());
}

#[test]
fn a_tag_naming_a_broken_manifest_is_named_not_hidden() {
    let body: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"nope""#;
    let digest = sha256_hex(body);
    let registry = Fake::start(move |req| {
        let index = "application/vnd.oci.image.index.v1+json";
        let headers = [
            ("Content-Type", index),
            ("Docker-Content-Digest", digest.as_str()),
        ];
        if req.target.contains("/tags/list") {
            // Also a name no registry may hold as a tag: skipped, not fatal.
            return answer(200, &[], br#"{"tags":["v1","../../etc"]}"#);
        }
        if req.target.contains("/manifests/") {
            return answer(200, &headers, body);
        }
        answer(404, &[], b"")
    });
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let e = fails(images(
        &p,
        &cfg,
        &["--registry", &registry.host(), "--service", "cart"],
        &[],
    ));
    assert!(e.contains("tag v1 names a broken manifest"), "{e}");
    assert!(!e.contains("etc"), "{e}");
}

#[test]
fn an_index_whose_platform_manifest_is_gone_is_named() {
    let child = format!("sha256:{}", "c".repeat(64));
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":2,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
    );
    let digest = sha256_hex(&body);
    let registry = Fake::start(move |req| {
        let index = "application/vnd.oci.image.index.v1+json";
        if req.target.contains("/tags/list") {
            return answer(200, &[], br#"{"tags":["v1"]}"#);
        }
        let top = req.target.ends_with("/manifests/v1") || req.target.ends_with(&digest);
        if req.target.contains("/manifests/") && top {
            let headers = [
                ("Content-Type", index),
                ("Docker-Content-Digest", digest.as_str()),
            ];
            return answer(200, &headers, body.as_bytes());
        }
        answer(404, &[], b"")
    });
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let e = fails(images(
        &p,
        &cfg,
        &["--registry", &registry.host(), "--service", "cart"],
        &[],
    ));
    assert!(
        e.contains("linux/arm64 manifest") && e.contains("is not in the repository"),
        "{e}"
    );
}

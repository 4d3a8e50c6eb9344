//! ECR image scans against moto (which "scans" what is put into it) paired with a real
//! docker-registry, and a small fake ECR endpoint for what moto cannot show: enhanced findings,
//! paginated findings, AWS errors, a scan that cannot be read, a scan not yet listed.

use crate::common::*;
use crate::ecr::{both, ecr_project, oci, seed_images, token_answer};
use crate::moto::{aws_env, fake_ecr, Moto, ACCOUNT, TOKEN_PASSWORD};
use crate::registry::TestRegistry;
use serde_json::{json, Value};
use std::fs;
use std::process::Command;
use std::sync::Arc;

#[test]
fn seeded_enhanced_findings_are_read() {
    let moto = Moto::start();
    let (t, p) = ecr_project("127.0.0.1:1", "");
    let ep = moto.endpoint();
    ok(oci(&p, &ep, &["repos", "ensure", "--service", "ui"]));
    let layouts = t.path().join("layouts");
    ok(oci(
        &p,
        &ep,
        &[
            "build",
            "--service",
            "ui",
            "--platform",
            "linux/amd64",
            "--out",
            layouts.to_str().unwrap(),
        ],
    ));
    seed_images(&moto, "retail-store-ui", &layouts.join("ui"));
    let digest = moto.boto("print([i['imageDigest'] for i in ecr.list_images(repositoryName='retail-store-ui')['imageIds'] if 'imageTag' not in i][0])");
    let digest = digest.trim();
    let seeded = json!({"region": "us-east-1", "results": [{
        "registryId": ACCOUNT, "repositoryName": "retail-store-ui",
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "ACTIVE", "description": "Continuous scan is selected for image."},
        "imageScanFindings": {
            "findingSeverityCounts": {"CRITICAL": 1, "MEDIUM": 2},
            "enhancedFindings": [{
                "awsAccountId": ACCOUNT, "severity": "CRITICAL", "title": "CVE-2026-0001 - openssl",
                "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-0001", "sourceUrl": "https://nvd.nist.gov/vuln/detail/CVE-2026-0001",
                    "vulnerablePackages": [{"name": "openssl", "version": "3.0.1"}]}
            }, {
                "awsAccountId": ACCOUNT, "severity": "MEDIUM", "title": "CVE-2026-0002 - zlib"
            }]
        }
    }]});
    let url = format!(
        "{}/moto-api/static/ecr/scan-finding-results",
        moto.endpoint()
    );
    run(Command::new("python3").args(["-c", &format!("import urllib.request, json; urllib.request.urlopen(urllib.request.Request('{url}', data=json.dumps({seeded}).encode(), headers={{'Content-Type': 'application/json'}}))")]));
    moto.boto(&format!("ecr.start_image_scan(repositoryName='retail-store-ui', imageId={{'imageDigest': '{digest}'}})"));
    let out = ok(oci(
        &p,
        &ep,
        &[
            "scan",
            "--service",
            "ui",
            "--digest",
            digest,
            "--format",
            "json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = &v["ui"][0];
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(r["counts"], json!({"CRITICAL": 1, "MEDIUM": 2}));
    assert_eq!(
        r["findings"],
        json!([{"name": "CVE-2026-0001", "package": "openssl 3.0.1", "severity": "CRITICAL", "link": "https://nvd.nist.gov/vuln/detail/CVE-2026-0001"}])
    );
}

#[test]
fn findings_are_paginated_and_aws_errors_are_clear() {
    // Pages, as real ECR sends them for large reports (moto never paginates).
    let calls = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let c2 = calls.clone();
    let ep = fake_ecr(Arc::new(move |op: &str, req: &Value| {
        c2.lock().unwrap().push(op.to_string());
        match op {
            "BatchGetImage" => (
                200,
                json!({"images": [{"imageId": {"imageDigest": format!("sha256:{}", "a".repeat(64)), "imageTag": "latest"},
                "imageManifest": "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{},\"layers\":[]}"}], "failures": []}),
            ),
            "DescribeImageScanFindings" => {
                let page = req.get("nextToken").and_then(|t| t.as_str()).unwrap_or("");
                let finding = |n: u32| json!({"name": format!("CVE-2026-{n:04}"), "severity": "HIGH", "uri": format!("https://example/{n}"), "attributes": [{"key": "package_name", "value": format!("pkg{n}")}]});
                let (findings, next) = match page {
                    "" => (vec![finding(1), finding(2)], Some("page-2")),
                    "page-2" => (vec![finding(3)], Some("page-3")),
                    _ => (vec![finding(4)], None),
                };
                let mut body = json!({"imageScanStatus": {"status": "COMPLETE"}, "imageScanFindings": {"findingSeverityCounts": {"HIGH": 4}, "findings": findings}});
                if let Some(n) = next {
                    body["nextToken"] = json!(n);
                }
                (200, body)
            }
            _ => (
                400,
                json!({"__type": "InvalidParameterException", "message": "unexpected"}),
            ),
        }
    }));
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let out = ok(oci(
        &p,
        &ep,
        &["scan", "--service", "cart", "--format", "json"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["cart"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CVE-2026-0001",
            "CVE-2026-0002",
            "CVE-2026-0003",
            "CVE-2026-0004"
        ]
    );
    assert_eq!(
        calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "DescribeImageScanFindings")
            .count(),
        3
    );

    // Refused credentials.
    let refused = fake_ecr(Arc::new(|_: &str, _: &Value| {
        (
            400,
            json!({"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}),
        )
    }));
    let err = fails(oci(&p, &refused, &["repos", "ensure", "--service", "cart"]));
    assert!(
        err.contains("DescribeRepositories") && err.contains("AWS credentials were refused"),
        "{err}"
    );
    let expired = fake_ecr(Arc::new(|_: &str, _: &Value| {
        (
            400,
            json!({"__type": "ExpiredTokenException", "message": "The security token included in the request is expired"}),
        )
    }));
    let err = fails(oci(&p, &expired, &["push", "--service", "cart"]));
    assert!(
        err.contains("GetAuthorizationToken") && err.contains("refresh them"),
        "{err}"
    );

    // Throttling that does not stop: the SDK retries, then a clear error.
    let throttled = fake_ecr(Arc::new(|_: &str, _: &Value| {
        (
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        )
    }));
    let err = fails(oci(
        &p,
        &throttled,
        &["repos", "ensure", "--service", "cart"],
    ));
    assert!(err.contains("throttled by ECR"), "{err}");

    // No region anywhere.
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    c.args(["repos", "ensure"]).current_dir(&p);
    aws_env(&mut c, &ep);
    c.env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION");
    let err = fails(c.output().unwrap());
    assert!(err.contains("no AWS region"), "{err}");
}

#[test]
fn a_scan_that_cannot_be_read_warns_and_the_push_and_its_outputs_stand() {
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    let ep = fake_ecr(Arc::new(move |op: &str, _: &Value| match op {
        "GetAuthorizationToken" => token_answer(TOKEN_PASSWORD),
        _ => (
            400,
            json!({"__type": "AccessDeniedException", "message": "User is not authorized to perform: ecr:DescribeImageScanFindings"}),
        ),
    }));
    let (t, p) = ecr_project(&reg.host(), "");
    let output = t.path().join("github-output");
    let summary = t.path().join("summary.md");
    let report = t.path().join("report.json");
    let push = |extra: &[&str]| {
        let mut args = vec![
            "push",
            "--service",
            "cart",
            "--scan",
            "--wait",
            "5s",
            "--report",
        ];
        args.push(report.to_str().unwrap());
        args.extend_from_slice(extra);
        let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
        c.args(&args).current_dir(&p);
        c.env("DOCKER_CONFIG", p.join(".no-docker-config"));
        aws_env(&mut c, &ep);
        c.env("SOURCE_DATE_EPOCH", "0")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap()
    };
    let o = push(&[]);
    let text = both(&o);
    assert!(o.status.success(), "scans are informational: {text}");
    assert!(
        text.contains("warning: scan of cart") && text.contains("could not be read"),
        "{text}"
    );
    assert!(
        text.contains("::warning title=cart: scan ERROR::"),
        "{text}"
    );
    let v: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(v[0]["scan"][0]["status"], "ERROR", "{v}");
    assert!(fs::read_to_string(&output)
        .unwrap()
        .contains("cart-digest=sha256:"));
    assert!(fs::read_to_string(&summary)
        .unwrap()
        .contains("| ERROR, ERROR |"));
    // A gate cannot pass without a result.
    let o = push(&["--fail-on", "CRITICAL"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        both(&o).contains("the scan did not complete (ERROR)"),
        "{}",
        both(&o)
    );
}

#[test]
fn a_scan_started_but_not_yet_listed_is_asked_again_and_times_out_cleanly() {
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    let describes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d2 = describes.clone();
    let ep = fake_ecr(Arc::new(move |op: &str, _: &Value| match op {
        "GetAuthorizationToken" => token_answer(TOKEN_PASSWORD),
        "StartImageScan" => (200, json!({"imageScanStatus": {"status": "IN_PROGRESS"}})),
        _ => {
            d2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (
                400,
                json!({"__type": "ScanNotFoundException", "message": "Image scan does not exist"}),
            )
        }
    }));
    let (t, p) = ecr_project(&reg.host(), "");
    let report = t.path().join("report.json");
    let o = oci(
        &p,
        &ep,
        &[
            "push",
            "--service",
            "catalog",
            "--platform",
            "linux/amd64",
            "--scan",
            "--wait",
            "2s",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let text = both(&o);
    assert!(o.status.success(), "{text}");
    let v: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(v[0]["scan"][0]["status"], "TIMED_OUT", "{v}");
    assert!(
        describes.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "asked again"
    );
}

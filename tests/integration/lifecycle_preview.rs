//! The lifecycle check of `repos ensure` against a fake ECR endpoint (moto has no lifecycle
//! preview): a repository with a tagged two-platform index, an SBOM of its arm64 manifest, its
//! signatures and an orphan. Both outcomes: a policy whose preview expires only the orphan
//! passes and is applied; one whose preview also expires the arm64 manifest and its SBOM is
//! refused, naming both, before anything is changed. Pages of both lists are followed; a
//! preview still running is asked again. Against moto the preview cannot run: a warning for
//! `repos ensure`, an error for `--check-lifecycle`.

use crate::common::*;
use crate::ecr::{ecr_project, oci};
use crate::moto::{fake_ecr, Moto};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The operations a fake was asked, in order.
type Calls = Arc<Mutex<Vec<String>>>;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The fake's repository, and what its preview expires (`risky`: the arm64 manifest and its
/// SBOM besides the orphan). Returns the endpoint and the operations it was asked, with the
/// policy text of the preview.
fn fake(risky: bool) -> (String, Calls, Arc<Mutex<String>>) {
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let policy = Arc::new(Mutex::new(String::new()));
    let (c2, p2) = (calls.clone(), policy.clone());
    let previews = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ep = fake_ecr(Arc::new(move |op: &str, req: &Value| {
        c2.lock().unwrap().push(op.to_string());
        let detail = |digest: String, tags: &[String], media: &str| json!({"imageDigest": digest, "imageTags": tags, "imageManifestMediaType": media, "imagePushedAt": 1.7e9});
        match op {
            "DescribeRepositories" => (
                200,
                json!({"repositories": [{
                "repositoryName": "retail-store-cart",
                "repositoryArn": "arn:aws:ecr:us-east-1:123456789012:repository/retail-store-cart",
                "repositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/retail-store-cart",
                "imageTagMutability": "MUTABLE",
                "imageScanningConfiguration": {"scanOnPush": true},
                "encryptionConfiguration": {"encryptionType": "AES256"}}]}),
            ),
            "GetLifecyclePolicy" => (
                400,
                json!({"__type": "LifecyclePolicyNotFoundException", "message": "none"}),
            ),
            "DescribeImages" => match req.get("nextToken").and_then(Value::as_str) {
                None => (
                    200,
                    json!({"imageDetails": [
                    detail(d('a'), &["v1".into()], INDEX),
                    detail(d('1'), &[], MANIFEST),
                    detail(d('2'), &[], MANIFEST)], "nextToken": "p2"}),
                ),
                Some(_) => {
                    let mut sbom = detail(d('3'), &[], MANIFEST);
                    sbom["artifactMediaType"] = json!("application/spdx+json");
                    sbom["subjectManifestDigest"] = json!(d('2'));
                    let sig_tag = format!("sha256-{}.sig", "a".repeat(64));
                    (
                        200,
                        json!({"imageDetails": [sbom, detail(d('4'), &[sig_tag], MANIFEST), detail(d('5'), &[], MANIFEST)]}),
                    )
                }
            },
            "BatchGetImage" => {
                let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
                    {"mediaType": MANIFEST, "digest": d('1'), "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
                    {"mediaType": MANIFEST, "digest": d('2'), "size": 1, "platform": {"os": "linux", "architecture": "arm64"}}]});
                assert_eq!(
                    req["imageIds"][0]["imageDigest"],
                    d('a'),
                    "only the tagged index is read"
                );
                (
                    200,
                    json!({"images": [{"imageId": {"imageDigest": d('a')}, "imageManifest": index.to_string(), "imageManifestMediaType": INDEX}], "failures": []}),
                )
            }
            "StartLifecyclePolicyPreview" => {
                *p2.lock().unwrap() = req["lifecyclePolicyText"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                (
                    200,
                    json!({"repositoryName": "retail-store-cart", "status": "IN_PROGRESS"}),
                )
            }
            "GetLifecyclePolicyPreview" => {
                if previews.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return (200, json!({"status": "IN_PROGRESS", "previewResults": []}));
                }
                let expire = |digest: String| json!({"imageDigest": digest, "imageTags": [], "action": {"type": "EXPIRE"}, "appliedRulePriority": 2});
                let text = p2.lock().unwrap().clone();
                let results = match req.get("nextToken").and_then(Value::as_str) {
                    None => json!([expire(d('5'))]),
                    Some(_) if risky => json!([expire(d('2')), expire(d('3'))]),
                    Some(_) => json!([]),
                };
                let mut body = json!({"status": "COMPLETE", "lifecyclePolicyText": text, "previewResults": results});
                if req.get("nextToken").is_none() {
                    body["nextToken"] = json!("r2");
                }
                (200, body)
            }
            "PutLifecyclePolicy" | "PutImageScanningConfiguration" | "PutImageTagMutability" => {
                (200, json!({"repositoryName": req["repositoryName"]}))
            }
            _ => (
                400,
                json!({"__type": "InvalidParameterException", "message": format!("unexpected {op}")}),
            ),
        }
    }));
    (ep, calls, policy)
}

fn writes(calls: &Mutex<Vec<String>>) -> Vec<String> {
    let writes = ["Put", "Create", "Tag", "Delete", "Set"];
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| writes.iter().any(|w| c.starts_with(w)))
        .cloned()
        .collect()
}

#[test]
fn a_policy_that_would_expire_what_kept_images_need_is_refused_before_any_change() {
    let (ep, calls, policy) = fake(true);
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let err = fails(oci(&p, &ep, &["repos", "ensure", "--service", "cart"]));
    assert!(err.contains("nothing was changed"), "{err}");
    let arm = format!(
        "retail-store-cart: {} (linux/arm64 manifest of index {} (tags v1), by rule 2)",
        d('2'),
        d('a')
    );
    assert!(err.contains(&arm), "{err}");
    let sbom = format!(
        "{} (application/spdx+json artifact of {}, which is kept",
        d('3'),
        d('2')
    );
    assert!(err.contains(&sbom), "{err}");
    assert!(!err.contains(&d('5')), "the orphan may go: {err}");
    assert!(err.contains("tag_status = \"untagged\""), "the fix: {err}");
    assert_eq!(writes(&calls), Vec::<String>::new(), "nothing written");
    // The config's own policy was previewed (the default one: its untagged rule).
    let text: Value = serde_json::from_str(&policy.lock().unwrap()).unwrap();
    assert_eq!(text["rules"][1]["selection"]["tagStatus"], "untagged");
    // Both pages of both lists were read, and the preview asked again while it ran.
    let asked = |op: &str| calls.lock().unwrap().iter().filter(|c| *c == op).count();
    assert_eq!(asked("DescribeImages"), 2);
    assert_eq!(asked("GetLifecyclePolicyPreview"), 3);

    // The check alone says the same, as JSON too.
    let (ep, calls, _) = fake(true);
    let o = oci(
        &p,
        &ep,
        &["repos", "ensure", "--service", "cart", "--check-lifecycle"],
    );
    assert!(fails(o).contains(&arm));
    assert!(writes(&calls).is_empty());
}

#[test]
fn a_policy_that_expires_only_orphans_passes_and_is_applied() {
    let (ep, calls, _) = fake(false);
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let o = oci(
        &p,
        &ep,
        &[
            "repos",
            "ensure",
            "--service",
            "cart",
            "--check-lifecycle",
            "--format",
            "json",
        ],
    );
    let checks: Value = serde_json::from_str(&ok(o)).unwrap();
    assert_eq!(checks[0]["repository"], "retail-store-cart");
    assert_eq!(checks[0]["images"], 6);
    assert_eq!(checks[0]["expiring"], 1);
    assert_eq!(checks[0]["at_risk"], json!([]));
    assert!(
        writes(&calls).is_empty(),
        "--check-lifecycle changes nothing"
    );

    let (ep, calls, _) = fake(false);
    let o = oci(&p, &ep, &["repos", "ensure", "--service", "cart"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("would expire 1 of 6 images, none that a kept image needs"),
        "{text}"
    );
    let ops = calls.lock().unwrap().clone();
    let preview = ops
        .iter()
        .position(|c| c == "StartLifecyclePolicyPreview")
        .unwrap();
    let put = ops
        .iter()
        .position(|c| c == "PutLifecyclePolicy")
        .expect("the policy is put");
    assert!(preview < put, "checked before it is applied: {ops:?}");
}

#[test]
fn where_the_preview_cannot_run_ensure_warns_and_the_check_fails() {
    let moto = Moto::start();
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    ok(oci(
        &p,
        &moto.endpoint(),
        &["repos", "ensure", "--service", "cart"],
    ));
    moto.boto("ecr.put_image(repositoryName='retail-store-cart', imageManifest=json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': 'sha256:' + '0'*64, 'size': 2}, 'layers': []}), imageTag='v1')");
    let o = oci(
        &p,
        &moto.endpoint(),
        &["repos", "ensure", "--service", "cart"],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the lifecycle preview could not run"), "{err}");
    let err = fails(oci(
        &p,
        &moto.endpoint(),
        &["repos", "ensure", "--service", "cart", "--check-lifecycle"],
    ));
    assert!(err.contains("StartLifecyclePolicyPreview"), "{err}");
}

#[test]
fn a_preview_of_another_policy_already_running_is_not_taken_for_ours() {
    let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = starts.clone();
    let ep = fake_ecr(Arc::new(move |op: &str, req: &Value| {
        let n = s2.load(std::sync::atomic::Ordering::SeqCst);
        match op {
            "DescribeImages" => (
                200,
                json!({"imageDetails": [
                {"imageDigest": d('a'), "imageTags": ["v1"], "imageManifestMediaType": INDEX},
                {"imageDigest": d('2'), "imageTags": [], "imageManifestMediaType": MANIFEST}]}),
            ),
            "BatchGetImage" => {
                let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
                    {"mediaType": MANIFEST, "digest": d('2'), "size": 1, "platform": {"os": "linux", "architecture": "arm64"}}]});
                (
                    200,
                    json!({"images": [{"imageId": {"imageDigest": d('a')}, "imageManifest": index.to_string(), "imageManifestMediaType": INDEX}], "failures": []}),
                )
            }
            "StartLifecyclePolicyPreview" => {
                s2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n == 0 {
                    // Someone else's preview is running.
                    return (
                        400,
                        json!({"__type": "LifecyclePolicyPreviewInProgressException", "message": "busy"}),
                    );
                }
                (
                    200,
                    json!({"status": "IN_PROGRESS", "lifecyclePolicyText": req["lifecyclePolicyText"]}),
                )
            }
            // Theirs (an `any` rule that would expire the arm64 manifest), then ours (nothing).
            "GetLifecyclePolicyPreview" if n <= 1 => (
                200,
                json!({"status": "COMPLETE",
                "lifecyclePolicyText": "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":1},\"action\":{\"type\":\"expire\"}}]}",
                "previewResults": [{"imageDigest": d('2'), "action": {"type": "EXPIRE"}, "appliedRulePriority": 1}]}),
            ),
            "GetLifecyclePolicyPreview" => {
                (200, json!({"status": "COMPLETE", "previewResults": []}))
            }
            _ => (
                400,
                json!({"__type": "InvalidParameterException", "message": format!("unexpected {op}")}),
            ),
        }
    }));
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let o = oci(
        &p,
        &ep,
        &[
            "repos",
            "ensure",
            "--service",
            "cart",
            "--check-lifecycle",
            "--format",
            "json",
        ],
    );
    let checks: Value = serde_json::from_str(&ok(o)).unwrap();
    assert_eq!(
        checks[0]["at_risk"],
        json!([]),
        "judged on our policy, not theirs"
    );
    assert_eq!(
        starts.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "ours started after theirs"
    );
}

#[test]
fn an_answer_that_is_not_ecrs_is_named_briefly_with_the_repository_and_the_fix() {
    // A proxy in the way: 403 with a page of its own, no AWS error code.
    let ep = fake_ecr(Arc::new(|_: &str, _: &Value| {
        (
            403,
            json!({"html": "<html><body>".to_string() + &"denied ".repeat(500) + "</body></html>"}),
        )
    }));
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let e = fails(oci(
        &p,
        &ep,
        &["repos", "ensure", "--service", "cart", "--check-lifecycle"],
    ));
    assert!(
        e.contains("retail-store-cart: the lifecycle check could not run"),
        "{e}"
    );
    assert!(e.contains("check the network path to ECR"), "{e}");
    assert!(e.len() < 1500, "no dump: {} bytes", e.len());
}

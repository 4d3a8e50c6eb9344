//! Amazon ECR features against moto (the ECR API) paired with a real docker-registry whose
//! htpasswd matches moto's token, through the real AWS SDK; a small fake ECR endpoint covers
//! what moto cannot show (paginated findings, refused credentials, throttling).

use crate::common::*;
use crate::moto::{aws_env, fake_ecr, Moto, ACCOUNT, TOKEN_PASSWORD};
use crate::registry::TestRegistry;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// A copy of the fixtures whose config points at `registry` with ECR auth.
pub(crate) fn ecr_project(registry: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, p) = retail_store();
    let cfg = fs::read_to_string(p.join("ocibuild.toml")).unwrap();
    fs::write(
        p.join("ocibuild.toml"),
        format!("[registry]\nurl = \"{registry}\"\nauth = \"ecr\"\nregistry_id = \"{ACCOUNT}\"\n\n{extra}\n{cfg}"),
    )
    .unwrap();
    (tmp, p)
}

pub(crate) fn oci(project: &Path, endpoint: &str, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    c.args(args)
        .current_dir(project)
        .env("SOURCE_DATE_EPOCH", "0");
    c.env("DOCKER_CONFIG", project.join(".no-docker-config"));
    aws_env(&mut c, endpoint);
    c.output().unwrap()
}

/// The fake ECR's answer to GetAuthorizationToken: a token for user AWS with `password`,
/// valid until 2100.
pub(crate) fn token_answer(password: &str) -> (u16, Value) {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    (
        200,
        json!({"authorizationData": [{"authorizationToken": token, "expiresAt": 4102444800.0, "proxyEndpoint": "https://x"}]}),
    )
}

pub(crate) fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn repos_ensure_creates_updates_is_idempotent_and_reports_drift() {
    let moto = Moto::start();
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let ep = moto.endpoint();

    // Dry run: a plan, nothing created.
    let o = oci(
        &p,
        &ep,
        &["repos", "ensure", "--dry-run", "--service", "cart,ui"],
    );
    let text = both(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("retail-store-cart: would create the repository"),
        "{text}"
    );
    assert!(
        text.contains("grows without bound") && text.contains("tag_status = \"any\""),
        "lifecycle warning: {text}"
    );
    assert_eq!(
        moto.boto("print(len(ecr.describe_repositories()['repositories']))")
            .trim(),
        "0"
    );

    // Apply, then read back through the API. The JSON names each repository's URI and ARN
    // as ECR gives them (what `terraform output` gave).
    let applied: Value = serde_json::from_str(&ok(oci(
        &p,
        &ep,
        &[
            "repos",
            "ensure",
            "--service",
            "cart,ui",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let described: Value = serde_json::from_str(&moto.boto(
        "print(json.dumps({r['repositoryName']: [r['repositoryUri'], r['repositoryArn']] for r in ecr.describe_repositories()['repositories']}))",
    ))
    .unwrap();
    for plan in applied.as_array().unwrap() {
        let name = plan["repository"].as_str().unwrap();
        let want = &described[name];
        assert!(want.is_array(), "{name} created: {described}");
        assert_eq!(plan["uri"], want[0], "{plan}");
        assert_eq!(plan["arn"], want[1], "{plan}");
        assert!(
            plan["arn"].as_str().unwrap().starts_with("arn:aws:ecr:"),
            "{plan}"
        );
    }
    let got: Value = serde_json::from_str(&moto.boto(
        "r = ecr.describe_repositories(repositoryNames=['retail-store-cart'])['repositories'][0]\n\
         lp = ecr.get_lifecycle_policy(repositoryName='retail-store-cart')['lifecyclePolicyText']\n\
         print(json.dumps({'scan': r['imageScanningConfiguration']['scanOnPush'], 'enc': r['encryptionConfiguration']['encryptionType'], 'mut': r['imageTagMutability'], 'lifecycle': json.loads(lp)}))",
    ))
    .unwrap();
    assert_eq!(got["scan"], true);
    assert_eq!(got["enc"], "AES256");
    assert_eq!(got["mut"], "MUTABLE");
    let rules = got["lifecycle"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[0]["selection"],
        json!({"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 10})
    );
    assert_eq!(
        rules[1]["selection"],
        json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7})
    );

    // Second run: nothing to change.
    let again = ok(oci(&p, &ep, &["repos", "ensure", "--service", "cart,ui"]));
    assert!(
        again.contains("nothing to change") && again.contains("retail-store-cart: up to date"),
        "{again}"
    );

    // Changed settings are applied in place.
    let cfg = fs::read_to_string(p.join("ocibuild.toml")).unwrap();
    let extra = "[repositories]\ntag_mutability = \"IMMUTABLE\"\ntags = { team = \"platform\" }\n\
                 [[repositories.lifecycle]]\npriority = 1\ntag_status = \"tagged\"\ntag_prefixes = [\"v\"]\nkeep_last = 10\n\
                 [[repositories.lifecycle]]\npriority = 2\ndescription = \"keep the last 50 images\"\ntag_status = \"any\"\nkeep_last = 50\n";
    fs::write(p.join("ocibuild.toml"), format!("{extra}{cfg}")).unwrap();
    let o = oci(&p, &ep, &["repos", "ensure", "--service", "cart"]);
    let text = both(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("MUTABLE -> IMMUTABLE")
            && text.contains("team=platform")
            && text.contains("replace the lifecycle policy"),
        "{text}"
    );
    assert!(
        !text.contains("grows without bound"),
        "the any rule answers the warning: {text}"
    );
    let got: Value = serde_json::from_str(&moto.boto(
        "r = ecr.describe_repositories(repositoryNames=['retail-store-cart'])['repositories'][0]\n\
         tags = ecr.list_tags_for_resource(resourceArn=r['repositoryArn'])['tags']\n\
         lp = json.loads(ecr.get_lifecycle_policy(repositoryName='retail-store-cart')['lifecyclePolicyText'])\n\
         print(json.dumps({'scan': r['imageScanningConfiguration']['scanOnPush'], 'mut': r['imageTagMutability'], 'tags': tags, 'rules': len(lp['rules'])}))",
    ))
    .unwrap();
    assert_eq!(got["scan"], true);
    assert_eq!(got["mut"], "IMMUTABLE");
    assert_eq!(got["tags"], json!([{"Key": "team", "Value": "platform"}]));
    assert_eq!(got["rules"], 2);
    assert!(
        ok(oci(&p, &ep, &["repos", "ensure", "--service", "cart"])).contains("nothing to change")
    );

    // A repository made by hand without scanning gets it turned on. (Only this direction:
    // the SDK leaves out `scanOnPush: false`, which ECR reads as false and moto ignores.)
    moto.boto("ecr.create_repository(repositoryName='retail-store-checkout', imageScanningConfiguration={'scanOnPush': False})");
    let text = ok(oci(&p, &ep, &["repos", "ensure", "--service", "checkout"]));
    assert!(
        text.contains("retail-store-checkout: set scan on push to true"),
        "{text}"
    );
    assert_eq!(
        moto.boto("print(ecr.describe_repositories(repositoryNames=['retail-store-checkout'])['repositories'][0]['imageScanningConfiguration']['scanOnPush'])").trim(),
        "True"
    );

    // Encryption cannot change after creation: reported as drift.
    moto.boto("ecr.create_repository(repositoryName='retail-store-orders', encryptionConfiguration={'encryptionType': 'KMS', 'kmsKey': 'arn:aws:kms:us-east-1:123456789012:key/x'})");
    let text = ok(oci(
        &p,
        &ep,
        &["repos", "ensure", "--service", "orders", "--format", "json"],
    ));
    let plans: Value = serde_json::from_str(&text).unwrap();
    let drift = plans[0]["drift"][0].as_str().unwrap();
    assert!(
        drift.contains("encryption is KMS")
            && drift.contains("asks for AES256")
            && drift.contains("fixed when a repository is created"),
        "{drift}"
    );
}

/// Put the images of `layout` (an ocibuild layout) into moto, so that it can "scan" them.
pub(crate) fn seed_images(moto: &Moto, repo: &str, layout: &Path) {
    moto.boto(&format!(
        "lay = '{}'\n\
         top = json.load(open(lay + '/index.json'))['manifests'][0]['digest']\n\
         index = open(lay + '/blobs/sha256/' + top[7:]).read()\n\
         for m in json.loads(index)['manifests']:\n    \
             ecr.put_image(repositoryName='{repo}', imageManifest=open(lay + '/blobs/sha256/' + m['digest'][7:]).read(), imageManifestMediaType=m['mediaType'], imageDigest=m['digest'])\n\
         ecr.put_image(repositoryName='{repo}', imageManifest=index, imageManifestMediaType='application/vnd.oci.image.index.v1+json', imageTag='latest')",
        layout.display()
    ));
}

#[test]
fn push_with_ecr_auth_create_repos_and_scan_findings() {
    require("skopeo");
    let moto = Moto::start();
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    let (t, p) = ecr_project(&reg.host(), "");
    let ep = moto.endpoint();

    // --create-repos makes the repositories, the SDK's token opens the registry.
    let rep = t.path().join("r.json");
    let o = oci(
        &p,
        &ep,
        &[
            "push",
            "--create-repos",
            "--service",
            "cart,catalog",
            "--report",
            rep.to_str().unwrap(),
            "--tag",
            "latest,v1",
        ],
    );
    let text = both(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("retail-store-catalog: create the repository"),
        "{text}"
    );
    assert!(
        !text.contains(TOKEN_PASSWORD),
        "the registry password leaked: {text}"
    );
    let names = moto.boto(
        "print(sorted(r['repositoryName'] for r in ecr.describe_repositories()['repositories']))",
    );
    assert!(
        names.contains("retail-store-cart") && names.contains("retail-store-catalog"),
        "{names}"
    );
    let report: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    for s in report.as_array().unwrap() {
        let raw = reg
            .raw(
                s["repository"].as_str().unwrap(),
                "v1",
                Some(&format!("AWS:{TOKEN_PASSWORD}")),
            )
            .unwrap();
        assert_eq!(sha256_hex(&raw), s["index_digest"].as_str().unwrap());
    }

    // Scans: moto only scans images it holds, so give it the pushed manifests, then ask.
    let layouts = p.join(".ocibuild/layouts");
    seed_images(&moto, "retail-store-cart", &layouts.join("cart"));
    seed_images(&moto, "retail-store-catalog", &layouts.join("catalog"));
    let rep2 = t.path().join("r2.json");
    let o = oci(
        &p,
        &ep,
        &[
            "push",
            "--scan",
            "--wait",
            "30s",
            "--service",
            "cart,catalog",
            "--layout",
            layouts.to_str().unwrap(),
            "--report",
            rep2.to_str().unwrap(),
        ],
    );
    let text = both(&o);
    assert!(
        o.status.success(),
        "findings never fail the run unless asked: {text}"
    );
    assert!(text.contains("HIGH     CVE-9999-9999"), "{text}");
    let report: Value = serde_json::from_slice(&fs::read(&rep2).unwrap()).unwrap();
    let scans = report[0]["scan"].as_array().unwrap();
    assert_eq!(scans.len(), 2, "one scan per platform manifest");
    assert_eq!(scans[0]["status"], "COMPLETE");
    assert_eq!(scans[0]["counts"]["HIGH"], 1);
    assert_eq!(scans[0]["findings"][0]["package"], "moto_fake 9.9.9");
    assert_eq!(scans[0]["platform"], "linux/amd64");
    assert_eq!(scans[1]["platform"], "linux/arm64/v8");
    // On GitHub Actions: one annotation per finding, naming every platform it was found on.
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    c.args([
        "push",
        "--scan",
        "--wait",
        "30s",
        "--service",
        "cart",
        "-q",
        "--layout",
    ])
    .arg(&layouts)
    .current_dir(&p)
    .env("SOURCE_DATE_EPOCH", "0")
    .env("DOCKER_CONFIG", p.join(".no-docker-config"))
    .env("GITHUB_ACTIONS", "true");
    aws_env(&mut c, &ep);
    let text = both(&c.output().unwrap());
    let notes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("::warning") && l.contains("CVE-9999-9999"))
        .collect();
    assert_eq!(notes.len(), 1, "{text}");
    assert!(
        notes[0].ends_with("on linux/amd64, linux/arm64/v8"),
        "{text}"
    );

    // `scan` on its own: --fail-on decides, annotations on GitHub Actions.
    let o = oci(&p, &ep, &["scan", "--service", "cart", "--fail-on", "HIGH"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        both(&o).contains("findings at HIGH or worse in cart"),
        "{}",
        both(&o)
    );
    ok(oci(
        &p,
        &ep,
        &["scan", "--service", "cart", "--fail-on", "CRITICAL"],
    ));
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    c.args(["scan", "--service", "catalog"])
        .current_dir(&p)
        .env("GITHUB_ACTIONS", "true");
    aws_env(&mut c, &ep);
    let annotated = ok(c.output().unwrap());
    assert!(
        annotated.contains("::warning title=catalog: HIGH CVE-9999-9999::moto_fake 9.9.9"),
        "{annotated}"
    );
}

#[test]
fn a_base_image_in_ecr_is_read_with_the_sdk_credentials_and_mounted() {
    require("skopeo");
    let moto = Moto::start();
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    push_base(
        &format!("{}/base/static:v1", reg.host()),
        &["--all", "--dest-creds", &format!("AWS:{TOKEN_PASSWORD}")],
    );
    let (t, p) = ecr_project(&reg.host(), "");
    let base = format!("{}/base/static:v1", reg.host());
    set_bases(&p, &base, &base);
    // No Docker credentials anywhere: only the SDK's token opens the registry.
    let rep = t.path().join("r.json");
    let o = oci(
        &p,
        &moto.endpoint(),
        &[
            "push",
            "--create-repos",
            "--service",
            "cart",
            "--no-cache",
            "--report",
            rep.to_str().unwrap(),
        ],
    );
    let text = both(&o);
    assert!(o.status.success(), "{text}");
    assert!(!text.contains(TOKEN_PASSWORD), "{text}");
    assert!(
        text.contains(&format!("on base {base} -> sha256:")),
        "{text}"
    );
    let r: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    assert_eq!(
        r[0]["blobs_mounted"],
        base_layers().len() as u64,
        "base layers mounted from base/static: {r}"
    );
    assert_eq!(r[0]["blobs_copied"], 0);
}

#[test]
fn missing_repository_says_how_to_create_it() {
    let moto = Moto::start();
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    use crate::proxy::{Fault, FaultProxy};
    // ECR answers NAME_UNKNOWN for a repository that does not exist (docker-registry never does).
    let proxy = FaultProxy::start(
        reg.port,
        Arc::new(|m: &str, path: &str, _| {
            if m == "POST" && path.contains("/blobs/uploads/") {
                Fault::Code(404, "NAME_UNKNOWN")
            } else {
                Fault::Forward
            }
        }),
        false,
    );
    let (_t, p) = ecr_project(&proxy.host(), "");
    let o = oci(&p, &moto.endpoint(), &["push", "--service", "orders"]);
    let text = both(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("NAME_UNKNOWN") && text.contains("ocibuild repos ensure"),
        "{text}"
    );
}

#[test]
fn iam_policy_is_scoped_to_the_configured_repositories() {
    let (_t, p) = ecr_project("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop", "");
    let out = ok(ocibuild(&p, &["iam-policy", "--service", "cart,ui"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let st = v["Statement"].as_array().unwrap();
    assert_eq!(v["Version"], "2012-10-17");
    assert_eq!(st[0]["Action"], json!(["ecr:GetAuthorizationToken"]));
    assert_eq!(
        st[1]["Resource"],
        json!([
            "arn:aws:ecr:eu-west-1:123456789012:repository/shop/retail-store-cart",
            "arn:aws:ecr:eu-west-1:123456789012:repository/shop/retail-store-ui"
        ])
    );
    let push: Vec<&str> = st[1]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "ecr:PutImage",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
    ] {
        assert!(push.contains(&a), "{a}");
    }
    assert!(st[3]["Action"]
        .as_array()
        .unwrap()
        .contains(&json!("ecr:DescribeImageScanFindings")));
    assert_eq!(
        st.len(),
        6,
        "no base statement (the bases are local layouts); the layer cache's"
    );
    assert_eq!(st[5]["Sid"], "OcibuildLayerCache");
    assert_eq!(
        st[5]["Resource"],
        json!(["arn:aws:ecr:eu-west-1:123456789012:repository/shop/ocibuild-cache"])
    );
    // verify, images and copy read lists, details, manifests, referrers and blobs.
    assert_eq!(st[4]["Sid"], "OcibuildRead");
    assert_eq!(
        st[4]["Action"],
        json!([
            "ecr:BatchGetImage",
            "ecr:DescribeImageScanFindings",
            "ecr:DescribeImages",
            "ecr:GetDownloadUrlForLayer",
            "ecr:ListImages"
        ])
    );
    assert!(st[2]["Action"]
        .as_array()
        .unwrap()
        .contains(&json!("ecr:StartLifecyclePolicyPreview")));

    // The role's trust policy for GitHub's OIDC tokens: the default branch pushes, pull
    // requests only read.
    let trust = |extra: &[&str]| -> Value {
        let args = [&["iam-policy", "--trust", "github:acme/shop"][..], extra].concat();
        serde_json::from_str(&ok(ocibuild(&p, &args))).unwrap()
    };
    let sub = |v: &Value| {
        v["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
            .clone()
    };
    let push_role = trust(&[]);
    assert_eq!(sub(&push_role), "repo:acme/shop:ref:refs/heads/main");
    assert_eq!(
        push_role["Statement"][0]["Principal"]["Federated"],
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    );
    assert_eq!(
        sub(&trust(&["--pull-request"])),
        "repo:acme/shop:pull_request"
    );
    refused(ocibuild(&p, &["iam-policy", "--trust", "acme/shop"]));
    let wide = ocibuild(
        &p,
        &["iam-policy", "--trust", "github:acme/shop:refs/heads/*"],
    );
    assert!(wide.status.success());
    let err = String::from_utf8_lossy(&wide.stderr);
    assert!(
        err.contains("warning:") && err.contains("any ref matching"),
        "{err}"
    );

    // Repositories created with a KMS key: ECR's grants on that key, through ECR only.
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd";
    let (_k, kp) = ecr_project(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop",
        &format!("[repositories]\nencryption = \"KMS\"\nkms_key = \"{key}\"\n"),
    );
    let v: Value = serde_json::from_str(&ok(ocibuild(&kp, &["iam-policy"]))).unwrap();
    let kms = v["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "OcibuildKmsKey")
        .expect("a KMS statement")
        .clone();
    assert_eq!(kms["Resource"], json!([key]));
    assert_eq!(
        kms["Action"],
        json!(["kms:CreateGrant", "kms:DescribeKey", "kms:RetireGrant"])
    );

    // A base image in ECR (another account and region) is read: manifests, configs, layers.
    let base = "210987654321.dkr.ecr.us-west-2.amazonaws.com/base/jre:17";
    set_bases(&p, base, base);
    let v: Value = serde_json::from_str(&ok(ocibuild(&p, &["iam-policy"]))).unwrap();
    let st = v["Statement"].as_array().unwrap();
    assert_eq!(st[5]["Sid"], "OcibuildBaseImages");
    assert_eq!(
        st[5]["Resource"],
        json!(["arn:aws:ecr:us-west-2:210987654321:repository/base/jre"])
    );
    assert_eq!(
        st[5]["Action"],
        json!([
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer"
        ])
    );

    // A pull-request role reads the bases and the cache, and can write nothing.
    let v: Value =
        serde_json::from_str(&ok(ocibuild(&p, &["iam-policy", "--pull-request"]))).unwrap();
    let st = v["Statement"].as_array().unwrap();
    assert_eq!(st[2]["Sid"], "OcibuildLayerCacheRead");
    assert_eq!(
        st[2]["Resource"],
        json!(["arn:aws:ecr:eu-west-1:123456789012:repository/shop/ocibuild-cache"])
    );
    let text = v.to_string();
    assert!(
        !text.contains("PutImage") && !text.contains("UploadLayerPart"),
        "{text}"
    );
    assert!(!text.contains("retail-store-cart"), "{text}");
}

#[test]
fn an_expired_registry_password_is_renewed_once_and_manifest_puts_are_paced() {
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    // The first token ECR hands out no longer works at the registry; the next one does.
    let tokens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t2 = tokens.clone();
    let ep = fake_ecr(Arc::new(move |op: &str, _: &Value| {
        assert_eq!(op, "GetAuthorizationToken");
        let n = t2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let password = if n == 0 {
            "expired-password"
        } else {
            TOKEN_PASSWORD
        };
        token_answer(password)
    }));
    use crate::proxy::{Fault, FaultProxy};
    let proxy = FaultProxy::start(
        reg.port,
        Arc::new(|_: &str, _: &str, _| Fault::Forward),
        false,
    );
    let (_t, p) = ecr_project(&proxy.host(), "");
    let cfg = fs::read_to_string(p.join("ocibuild.toml")).unwrap();
    fs::write(
        p.join("ocibuild.toml"),
        cfg.replacen(
            "auth = \"ecr\"\n",
            "auth = \"ecr\"\nmanifest_puts_per_second = 5\n",
            1,
        ),
    )
    .unwrap();
    let o = oci(&p, &ep, &["push", "--service", "cart"]);
    let text = both(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        !text.contains("expired-password") && !text.contains(TOKEN_PASSWORD),
        "{text}"
    );
    assert_eq!(
        tokens.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one renewal after the 401"
    );
    // 2 platform manifests, the index, 3 artifacts (an SBOM per platform, the provenance),
    // their 3 referrers tags (this registry has no referrers API), the tag: at most 5 a
    // second, so 200 ms apart at least.
    let puts = proxy.manifest_puts.lock().unwrap().clone();
    assert_eq!(puts.len(), 10);
    for w in puts.windows(2) {
        assert!(
            w[1] - w[0] >= std::time::Duration::from_millis(190),
            "manifest PUTs {:?} apart",
            w[1] - w[0]
        );
    }
}

#[test]
fn repos_ensure_checks_the_lifecycle_against_the_configs_ci_tags() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let ensure = |p: &Path, extra: &[&str]| {
        let mut args = vec!["repos", "ensure", "--dry-run", "--service", "cart"];
        args.extend_from_slice(extra);
        let o = oci(p, &ep, &args);
        let text = both(&o);
        assert!(o.status.success(), "{text}");
        text
    };
    // The default [ci] tags include release: the default v-prefix rule covers it.
    let (_t, p) = ecr_project("127.0.0.1:1", "");
    let text = ensure(&p, &[]);
    assert!(
        !text.contains("matches none"),
        "release tags start with v: {text}"
    );
    assert!(
        text.contains("images tagged sha and timestamp and pr"),
        "{text}"
    );
    // Only releases and latest pushed: nothing grows without bound.
    let (_t, p) = ecr_project("127.0.0.1:1", "[ci]\ntags = [\"release\", \"latest\"]\n");
    let text = ensure(&p, &[]);
    assert!(!text.contains("warning:"), "{text}");
    // --tag wins over the config.
    assert!(ensure(&p, &["--tag", "sha"]).contains("images tagged sha"));
}

#[test]
fn the_layer_cache_repository_gets_its_own_settings_and_an_ecr_push_writes_and_reads_it() {
    let moto = Moto::start();
    let reg = TestRegistry::start(Some(("AWS", TOKEN_PASSWORD)));
    let (t, p) = ecr_project(&reg.host(), "");
    let ep = moto.endpoint();
    ok(oci(&p, &ep, &["repos", "ensure", "--service", "cart"]));
    let got: Value = serde_json::from_str(&moto.boto(
        "r = ecr.describe_repositories(repositoryNames=['ocibuild-cache'])['repositories'][0]\n\
         lp = ecr.get_lifecycle_policy(repositoryName='ocibuild-cache')['lifecyclePolicyText']\n\
         print(json.dumps({'scan': r['imageScanningConfiguration']['scanOnPush'], 'enc': r['encryptionConfiguration']['encryptionType'], 'mut': r['imageTagMutability'], 'lifecycle': json.loads(lp)}))",
    ))
    .unwrap();
    assert_eq!(got["enc"], "AES256");
    assert_eq!(got["mut"], "MUTABLE", "cache tags are rewritten");
    let rules = got["lifecycle"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[0]["selection"],
        json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1})
    );
    assert_eq!(
        rules[1]["selection"],
        json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 500})
    );
    // The services' repositories keep the service rules.
    let lp = moto.boto("print(ecr.get_lifecycle_policy(repositoryName='retail-store-cart')['lifecyclePolicyText'])");
    assert!(lp.contains("\"v\""), "{lp}");

    // A push with the SDK's token writes the cache; a fresh runner reads it.
    let run = |dir: &str, extra: &[&str]| {
        let out = t.path().join(dir);
        let mut args = vec![
            "push",
            "--create-repos",
            "--service",
            "catalog",
            "--cache-dir",
            out.to_str().unwrap(),
            "--out",
        ];
        let layouts = out.join("out");
        let layouts = layouts.to_str().unwrap().to_string();
        args.push(&layouts);
        args.extend_from_slice(extra);
        let o = oci(&p, &ep, &args);
        let text = both(&o);
        assert!(o.status.success(), "{text}");
        assert!(!text.contains(TOKEN_PASSWORD), "{text}");
        text
    };
    run("one", &["--cache-write"]);
    let doc = reg
        .raw(
            "ocibuild-cache",
            "catalog-main",
            Some(&format!("AWS:{TOKEN_PASSWORD}")),
        )
        .expect("the cache document was written with the ECR token");
    assert!(doc.contains("dev.ocibuild.layer.fingerprint"), "{doc}");
    let text = run("two", &[]);
    assert!(text.contains("own layers: 0 built"), "{text}");
}

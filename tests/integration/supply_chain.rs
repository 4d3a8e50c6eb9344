//! What `ocibuild push` attaches, read back from a real registry (docker-registry 2.8, which
//! has no referrers API: the referrers tag schema), with the image itself unchanged.

use crate::common::*;
use crate::registry::{docker_config, TestRegistry};
use crate::sign::{openssl_key, policy, pull_with_policy, trixie_skopeo};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;

/// GET `path` of the registry (`/v2/...`) with curl: the body.
pub fn get(reg: &TestRegistry, path: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"])
        .arg(format!("http://{}{path}", reg.host()))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {path} failed");
    out.stdout
}

/// `ocibuild push` in a faked GitHub Actions run.
pub fn push_in_github(p: &Path, cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .arg("push")
        .args(args)
        .current_dir(p)
        .env("SOURCE_DATE_EPOCH", "0")
        .env("DOCKER_CONFIG", cfg)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/retail-store")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_REF", "refs/heads/main")
        .env(
            "GITHUB_WORKFLOW_REF",
            "acme/retail-store/.github/workflows/images.yml@refs/heads/main",
        )
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_RUN_ATTEMPT", "1")
        .env("RUNNER_ENVIRONMENT", "github-hosted")
        .env_remove("GITHUB_EVENT_NAME")
        .env_remove("GITHUB_EVENT_PATH")
        .output()
        .unwrap()
}

/// The artifacts the referrers tag of `subject` lists in `repo`: (artifactType, digest).
pub fn referrers(reg: &TestRegistry, repo: &str, subject: &str) -> Vec<(String, String)> {
    let tag = subject.replace("sha256:", "sha256-");
    let Some(raw) = reg.raw(repo, &tag, None) else {
        return vec![];
    };
    let index: Value = serde_json::from_str(&raw).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["artifactType"].as_str().unwrap_or("").to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The one document of artifact `digest` in `repo`, after checking the manifest's shape.
pub fn document(reg: &TestRegistry, repo: &str, digest: &str, subject: &str) -> Vec<u8> {
    let m: Value =
        serde_json::from_slice(&get(reg, &format!("/v2/{repo}/manifests/{digest}"))).unwrap();
    assert_eq!(m["subject"]["digest"], subject);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    get(reg, &format!("/v2/{repo}/blobs/{layer}"))
}

/// `ocibuild verify` of the cart service's `v1` in `host`, with `extra` flags.
pub fn verify_cart(p: &Path, host: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        "--registry",
        host,
        "--service",
        "cart",
        "--tag",
        "v1",
    ];
    args.extend(extra);
    ocibuild(p, &args)
}

/// Push the cart service as `v1` to `host` in a faked GitHub run, with `extra` flags; its
/// report, and (repository, index digest).
pub fn push_cart(p: &Path, cfg: &Path, host: &str, extra: &[&str]) -> (Value, String, String) {
    push_service(p, cfg, host, "cart", extra)
}

/// [`push_cart`] for another service.
pub fn push_service(
    p: &Path,
    cfg: &Path,
    host: &str,
    service: &str,
    extra: &[&str],
) -> (Value, String, String) {
    let rep = p.join("report.json");
    let mut args = vec!["--registry", host, "--tag", "v1", "--service", service];
    args.extend(["--report", rep.to_str().unwrap()]);
    args.extend(extra);
    ok(push_in_github(p, cfg, &args));
    let r: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    let s = r[0].clone();
    let repo = s["repository"].as_str().unwrap().to_string();
    let index = s["index_digest"].as_str().unwrap().to_string();
    (s, repo, index)
}

#[test]
fn provenance_is_attached_by_the_tag_schema_with_the_pushed_digests_and_the_github_run() {
    require("skopeo");
    require("curl");
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (s, repo, index) = push_cart(&p, &cfg, &reg.host(), &[]);
    let (repo, index) = (repo.as_str(), index.as_str());
    // The image is unchanged: the tag names the reported index, which lists only platforms.
    let top: Value = serde_json::from_str(&reg.raw(repo, "v1", None).unwrap()).unwrap();
    assert_eq!(sha256_hex(reg.raw(repo, "v1", None).unwrap()), index);
    assert!(top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m.get("artifactType").is_none()));
    let listed = referrers(&reg, repo, index);
    let prov: Vec<_> = listed
        .iter()
        .filter(|(t, _)| t == "application/vnd.in-toto+json")
        .collect();
    assert_eq!(prov.len(), 1, "{listed:?}");
    let attached = s["attached"].as_array().unwrap();
    assert!(
        attached
            .iter()
            .any(|a| a["digest"] == prov[0].1.as_str() && a["kind"] == "provenance"),
        "{attached:?}"
    );
    let statement: Value =
        serde_json::from_slice(&document(&reg, repo, &prov[0].1, index)).unwrap();
    let subjects: Vec<&str> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["digest"]["sha256"].as_str().unwrap())
        .collect();
    let mut want = vec![index.trim_start_matches("sha256:")];
    want.extend(
        s["manifest_digests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().trim_start_matches("sha256:")),
    );
    assert_eq!(subjects, want);
    let def = &statement["predicate"]["buildDefinition"];
    assert_eq!(
        def["buildType"],
        "https://actions.github.io/buildtypes/workflow/v1"
    );
    assert_eq!(def["externalParameters"]["service"], "cart");
    assert_eq!(
        def["externalParameters"]["workflow"]["path"],
        ".github/workflows/images.yml"
    );
    let config_hex = sha256_hex(fs::read(p.join("ocibuild.toml")).unwrap()).replace("sha256:", "");
    assert_eq!(
        def["externalParameters"]["config"]["digest"]["sha256"],
        config_hex.as_str()
    );
    assert_eq!(
        def["resolvedDependencies"][0]["digest"]["gitCommit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(
        statement["predicate"]["runDetails"]["metadata"]["invocationId"],
        "https://github.com/acme/retail-store/actions/runs/4242/attempts/1"
    );
    // Again: the same artifact (reproducible), and the referrers tag does not grow.
    push_cart(&p, &cfg, &reg.host(), &[]);
    assert_eq!(referrers(&reg, repo, index), listed);
    // verify reads it through the tag schema.
    let out = ok(verify_cart(&p, &reg.host(), &[]));
    let tag = index.replace("sha256:", "sha256-");
    assert!(
        out.contains(&format!(
            "provenance application/vnd.in-toto+json {} (tag {tag})",
            prov[0].1
        )),
        "{out}"
    );
}

#[test]
fn a_registry_with_the_referrers_api_gets_no_referrers_tag_and_verify_reads_the_api() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let proxy = crate::proxy::FaultProxy::with_referrers_api(reg.port);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (r, repo, index) = push_cart(&p, &cfg, &proxy.host(), &[]);
    let (repo, index) = (repo.as_str(), index.as_str());
    assert!(
        r["attached"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["stored"] == "referrers API"),
        "{r}"
    );
    // No fallback tag in the registry behind the proxy.
    assert_eq!(referrers(&reg, repo, index), vec![]);
    let indexed = proxy.referrers.as_ref().unwrap().lock().unwrap().len();
    assert_eq!(
        indexed, 3,
        "the provenance statement and an SBOM per platform"
    );
    let out = ok(verify_cart(&p, &proxy.host(), &["--format", "json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let index_check = &v["services"][0]["subjects"][0];
    assert_eq!(index_check["digest"], index);
    assert_eq!(index_check["attached"][0]["kind"], "provenance");
    assert_eq!(index_check["attached"][0]["via"], "referrers API");
    // Verify through the tag schema, on the registry itself.
    let out = ok(verify_cart(&p, &reg.host(), &[]));
    assert!(out.contains("nothing attached"), "{out}");
}

#[test]
fn every_signed_retail_store_image_verifies_with_skopeo_and_ocibuild_and_a_rerun_adds_none() {
    require("skopeo");
    require("openssl");
    const ALL: [&str; 5] = ["ui", "catalog", "cart", "orders", "checkout"];
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (key, public) = openssl_key(tmp.path(), "signer");
    let (_, other) = openssl_key(tmp.path(), "other");
    let sign = ["--sign-key", key.to_str().unwrap()];
    let services = ALL.join(",");
    // The report's first service is ui.
    let (r, repo, index) = push_service(&p, &cfg, &reg.host(), &services, &sign);
    let (repo, index) = (repo.as_str(), index.as_str());
    let signed: Vec<&str> = r["attached"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "signature")
        .map(|a| a["subject"].as_str().unwrap())
        .collect();
    assert_eq!(signed.len(), 3, "the index and two platform manifests: {r}");
    assert_eq!(signed[0..1], [index][..]);

    // ocibuild verify of every service: the right key passes, another key fails naming what
    // is unsigned.
    let verify = |key: &Path| {
        let args = ["verify", "--registry", &reg.host(), "--tag", "v1", "--key"];
        ocibuild(&p, &[&args[..], &[key.to_str().unwrap()]].concat())
    };
    let out = ok(verify(&public));
    assert_eq!(out.matches(": verified").count(), 3 * ALL.len(), "{out}");
    let bad = verify(&other);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&format!(
            "ui: the index {index} has 1 signature(s), none that the key verifies"
        )),
        "{err}"
    );

    // A rerun keeps one signature per key and digest.
    push_service(&p, &cfg, &reg.host(), &services, &sign);
    let sig_tag = format!("{}.sig", index.replace("sha256:", "sha256-"));
    let sig: Value = serde_json::from_str(&reg.raw(repo, &sig_tag, None).unwrap()).unwrap();
    assert_eq!(sig["layers"].as_array().unwrap().len(), 1, "{sig}");

    // containers/image's own verifier (sigstoreSigned policy) accepts every platform of every
    // image with the key, and refuses with another.
    let Some(skopeo) = trixie_skopeo() else {
        return;
    };
    let dir = tmp.path();
    let accepts = |service: &str, public: &Path| {
        let image = format!("{}/retail-store-{service}:v1", reg.host());
        let policy = policy(dir, &reg.host(), public);
        pull_with_policy(&skopeo, dir, &image, &policy, true)
    };
    for service in ALL {
        accepts(service, &public).expect("every platform is signed by the key");
    }
    let err = accepts("cart", &other).expect_err("another key's policy must refuse the image");
    assert!(err.to_lowercase().contains("signature"), "{err}");
}

#[test]
fn a_bad_signing_key_stops_the_push_before_any_work_and_no_sign_overrides_the_key() {
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let missing = tmp.path().join("nope.pem");
    let not_a_key = tmp.path().join("notes.txt");
    fs::write(&not_a_key, "hello").unwrap();
    // No registry listens on port 1: a request would fail differently.
    for (key, want) in [
        (&missing, "cannot read key file"),
        (&not_a_key, "is not a PEM key file"),
    ] {
        let out = push(
            &p,
            &cfg,
            &[
                "--registry",
                "127.0.0.1:1",
                "--service",
                "cart",
                "--sign-key",
                key.to_str().unwrap(),
            ],
        );
        let err = fails(out);
        assert!(
            err.contains(want) && err.contains(key.to_str().unwrap()),
            "{err}"
        );
        assert!(!p.join(".ocibuild").exists(), "nothing was built");
    }
    let err = refused(push(
        &p,
        &cfg,
        &["--registry", "127.0.0.1:1", "--sbom", "xml"],
    ));
    assert!(err.contains("spdx"), "{err}");
}

/// The SBOM documents attached to each platform manifest of `report`'s image in `repo`,
/// written to files in `dir`.
fn pushed_sboms(
    reg: &TestRegistry,
    report: &Value,
    repo: &str,
    kind: &str,
    dir: &Path,
) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for m in report["manifest_digests"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        let listed = referrers(reg, repo, m);
        let sboms: Vec<_> = listed.iter().filter(|(t, _)| t == kind).collect();
        assert_eq!(sboms.len(), 1, "{m}: {listed:?}");
        let file = dir.join(format!("{}.json", &m[7..19]));
        fs::write(&file, document(reg, repo, &sboms[0].1, m)).unwrap();
        files.push(file);
    }
    files
}

#[test]
fn each_platform_manifest_carries_an_sbom_the_spdx_and_cyclonedx_validators_accept() {
    require("pyspdxtools");
    require("curl");
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (r, repo, _) = push_service(&p, &cfg, &reg.host(), "checkout", &[]);
    let repo = repo.as_str();
    let files = pushed_sboms(&reg, &r, repo, "application/spdx+json", tmp.path());
    assert_eq!(files.len(), 2, "one per platform");
    for (f, m) in files.iter().zip(r["manifest_digests"].as_array().unwrap()) {
        crate::attest::validate_spdx(f);
        let doc: Value = serde_json::from_slice(&fs::read(f).unwrap()).unwrap();
        let purls: Vec<String> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["referenceLocator"].as_str().map(str::to_string))
            .collect();
        let hex = m.as_str().unwrap().trim_start_matches("sha256:");
        assert!(
            purls
                .iter()
                .any(|u| u.starts_with("pkg:oci/") && u.contains(hex)),
            "{purls:?}"
        );
        assert!(
            purls.iter().any(|u| u == "pkg:npm/express@4.18.2"),
            "{purls:?}"
        );
    }
    // The same image again with CycloneDX: the schema validator accepts it.
    push_service(&p, &cfg, &reg.host(), "checkout", &["--sbom", "cyclonedx"]);
    let files = pushed_sboms(&reg, &r, repo, "application/vnd.cyclonedx+json", tmp.path());
    crate::attest::validate_cyclonedx(&files);
}

#[test]
fn a_skopeo_key_signs_a_push_and_verify_accepts_skopeos_own_signatures_too() {
    let Some(skopeo) = trixie_skopeo() else {
        return;
    };
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let (key, public, pass) = crate::sign::skopeo_key(&skopeo, tmp.path(), "team");
    // ocibuild signs with skopeo's encrypted key, its password in COSIGN_PASSWORD.
    let out = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args([
            "push",
            "--registry",
            &reg.host(),
            "--service",
            "cart",
            "--tag",
            "v1",
        ])
        .current_dir(&p)
        .env("SOURCE_DATE_EPOCH", "0")
        .env("DOCKER_CONFIG", &cfg)
        .env("OCIBUILD_SIGN_KEY", &key)
        .env("COSIGN_PASSWORD", &pass)
        .output()
        .unwrap();
    ok(out);
    // skopeo signs the same image (the index) with the same key.
    let pass_file = tmp.path().join("team.pass");
    let image = format!("{}/retail-store-cart", reg.host());
    run(Command::new(&skopeo)
        .arg("--insecure-policy")
        .arg("--registries.d")
        .arg(crate::sign::registries_d(tmp.path()))
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg("--sign-by-sigstore-private-key")
        .arg(&key)
        .arg("--sign-passphrase-file")
        .arg(&pass_file)
        .arg(format!("docker://{image}:v1"))
        .arg(format!("docker://{image}:v1")));
    let out = ok(verify_cart(
        &p,
        &reg.host(),
        &["--key", public.to_str().unwrap(), "--format", "json"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let subjects = v["services"][0]["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 3);
    let index_sigs = subjects[0]["signatures"].as_array().unwrap();
    assert_eq!(index_sigs.len(), 2, "ocibuild's and skopeo's: {out}");
    assert!(index_sigs.iter().all(|s| s["valid"] == true), "{out}");
    for s in subjects {
        assert!(
            s["signatures"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["valid"] == true),
            "{out}"
        );
    }
}

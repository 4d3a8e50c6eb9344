//! Services built on a base image in a real registry (docker-registry), pushed there by skopeo:
//! by tag and by digest, without reading the base's layers to build (a counting proxy sees
//! every request), pushed with mounts in the same registry and streamed copies to another,
//! unpacked by umoci and run; the cache, `--pull`, `--materialize`, Docker media types and the
//! error cases.

use crate::common::*;
use crate::proxy::{Fault, FaultProxy};
use crate::registry::{docker_config, free_port, TestRegistry};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// ocibuild with `DOCKER_CONFIG` set to `cfg`.
fn ocibuild_cfg(cwd: &Path, cfg: &Path, args: &[&str]) -> Output {
    ocibuild_env(cwd, cfg, &[], args)
}

/// ocibuild with `DOCKER_CONFIG` set to `cfg` and the variables `env`.
fn ocibuild_env(cwd: &Path, cfg: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "0")
        .env("DOCKER_CONFIG", cfg)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A copy of the fixtures with every service on `base` (the catalog compiled when `catalog`),
/// and an empty Docker config: (guard, project, DOCKER_CONFIG directory).
fn project_on(base: &str, catalog: bool) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, project) = retail_store();
    if catalog {
        compile_catalog(&project);
    }
    set_bases(&project, base, base);
    let cfg = docker_config(tmp.path(), "{}");
    (tmp, project, cfg)
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn forward_all(upstream: u16) -> FaultProxy {
    FaultProxy::start(
        upstream,
        Arc::new(|_: &str, _: &str, _| Fault::Forward),
        false,
    )
}

/// Requests the proxy saw as "METHOD path".
fn requests(p: &FaultProxy) -> Vec<String> {
    p.seen
        .lock()
        .unwrap()
        .iter()
        .map(|(m, path, _)| format!("{m} {path}"))
        .collect()
}

/// The digest skopeo computes for `image`'s raw manifest.
fn raw_digest(image: &str) -> String {
    sha256_hex(run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        image,
    ])))
}

/// Take `image` for one platform out of a registry, unpack it with umoci, check the base's
/// marker file and run the catalog entrypoint (arm64 under qemu).
fn unpack_and_run(tmp: &Path, image: &str, arch: &str) {
    let one = tmp.join(format!("one-{arch}-{}", &sha256_hex(image)[7..15]));
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "--override-arch",
        arch,
        "copy",
        "--src-tls-verify=false",
        image,
        &format!("oci:{}:x", one.display()),
    ]));
    let bundle = one.with_extension("bundle");
    run(Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:x", one.display()),
        ])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/ocibuild-base-arch"))
            .unwrap()
            .trim(),
        arch,
        "the base's layer for {arch} is in the image"
    );
    assert_eq!(
        run_catalog(&rootfs.join("app/catalog"), arch, "ok").trim(),
        format!("catalog running on {arch} ok")
    );
}

#[test]
fn services_build_on_a_registry_base_by_tag_and_digest_and_push_without_moving_its_layers() {
    require("skopeo");
    require("umoci");
    require("qemu-aarch64-static");
    let reg = TestRegistry::start(None);
    let other = TestRegistry::start(None);
    // Everything ocibuild asks of the registry goes through a counting proxy.
    let proxy = forward_all(reg.port);
    push_base(&format!("{}/base/static:v1", reg.host()), &["--all"]);
    let index_digest = raw_digest(&format!("docker://{}/base/static:v1", reg.host()));
    let layers = base_layers();

    let (tmp, project) = retail_store();
    compile_catalog(&project);
    let by_tag = format!("{}/base/static:v1", proxy.host());
    let by_digest = format!("{}/base/static@{index_digest}", proxy.host());
    set_bases(&project, &by_tag, &by_digest);
    let cfg = docker_config(tmp.path(), "{}");
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let report = json(ocibuild_cfg(
        &project,
        &cfg,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--service",
            "ui,catalog",
            "--format",
            "json",
        ],
    ));

    // Only manifests and configs were read: no base layer.
    let seen = requests(&proxy);
    assert!(
        seen.iter().any(|r| r == "GET /v2/base/static/manifests/v1"),
        "{seen:?}"
    );
    for l in &layers {
        assert!(
            !seen.iter().any(|r| r.contains(l.as_str())),
            "base layer {l} was read during the build: {seen:?}"
        );
    }
    for svc in report.as_array().unwrap() {
        let name = svc["name"].as_str().unwrap();
        let base = &svc["base"];
        assert_eq!(
            base["digest"], index_digest,
            "{name}: tag resolved to the digest"
        );
        assert_eq!(
            base["name"],
            if name == "catalog" {
                &by_digest
            } else {
                &by_tag
            }
            .as_str()
        );
        for p in svc["platforms"].as_array().unwrap() {
            for l in p["layers"].as_array().unwrap() {
                let d = l["digest"].as_str().unwrap();
                let hex = d.trim_start_matches("sha256:");
                let stored = out.join(name).join("blobs/sha256").join(hex).is_file();
                assert_eq!(l["from_base"], layers.contains(&d.to_string()));
                assert_eq!(l["in_layout"], stored, "{name} {d}");
                assert_eq!(stored, !layers.contains(&d.to_string()), "{name} {d}");
            }
        }
        // The annotations name the base and what it resolved to.
        let raw: Value = serde_json::from_str(&run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:latest", out.join(name).display()),
        ])))
        .unwrap();
        let want_name = if name == "catalog" {
            by_digest.clone()
        } else {
            by_tag.clone()
        };
        assert_eq!(
            raw["annotations"]["org.opencontainers.image.base.name"],
            want_name.as_str()
        );
        assert_eq!(
            raw["annotations"]["org.opencontainers.image.base.digest"],
            index_digest.as_str()
        );
    }

    // Push to the base's own registry: base layers are mounted from its repository; not one
    // base layer byte goes up or down.
    proxy.seen.lock().unwrap().clear();
    let rep = tmp.path().join("push.json");
    ok(ocibuild_cfg(
        &project,
        &cfg,
        &[
            "push",
            "--layout",
            out.to_str().unwrap(),
            "--service",
            "ui,catalog",
            "--registry",
            &format!("{}/team", proxy.host()),
            "--tag",
            "v1",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    let pushed: Vec<Value> = serde_json::from_slice::<Value>(&fs::read(&rep).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let seen = requests(&proxy);
    for l in &layers {
        assert!(
            !seen.iter().any(|r| r.contains(l.as_str())
                && !r.starts_with("HEAD ")
                && !r.starts_with("POST ")),
            "base layer {l} moved: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|r| r.starts_with("POST /v2/team/retail-store-ui/blobs/uploads/")),
        "{seen:?}"
    );
    let mounted: u64 = pushed
        .iter()
        .map(|s| s["blobs_mounted"].as_u64().unwrap())
        .sum();
    assert!(mounted >= layers.len() as u64, "{pushed:?}");
    for s in &pushed {
        assert_eq!(s["blobs_copied"], 0);
        assert_eq!(s["base_digest"], index_digest.as_str());
    }

    // Push to another registry: the base layers are streamed from the base's registry.
    let rep = tmp.path().join("push-other.json");
    ok(ocibuild_cfg(
        &project,
        &cfg,
        &[
            "push",
            "--layout",
            out.to_str().unwrap(),
            "--service",
            "catalog",
            "--registry",
            &other.host(),
            "--tag",
            "v1",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    let r: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    let layer_bytes: u64 = layers
        .iter()
        .map(|l| {
            fs::metadata(
                repo()
                    .join(BASE_LAYOUT)
                    .join("blobs/sha256")
                    .join(l.trim_start_matches("sha256:")),
            )
            .unwrap()
            .len()
        })
        .sum();
    assert_eq!(r[0]["blobs_copied"], layers.len() as u64, "{r}");
    assert_eq!(r[0]["bytes_copied"], layer_bytes, "{r}");
    let image = format!("docker://{}/retail-store-catalog:v1", other.host());
    assert_eq!(raw_digest(&image), r[0]["index_digest"].as_str().unwrap());
    for arch in ["amd64", "arm64"] {
        unpack_and_run(tmp.path(), &image, arch);
    }
    // And the same image in the first registry (mounted layers) runs too.
    unpack_and_run(
        tmp.path(),
        &format!("docker://{}/team/retail-store-catalog:v1", reg.host()),
        "arm64",
    );
}

#[test]
fn a_refused_mount_falls_back_to_a_streamed_copy_within_the_registry() {
    require("skopeo");
    require("umoci");
    let reg = TestRegistry::start(None);
    // The registry opens an upload session instead of mounting, as ECR does without its
    // blob-mounting setting.
    let proxy = FaultProxy::start(
        reg.port,
        Arc::new(|m: &str, path: &str, _| {
            if m == "POST" && path.ends_with("?mount") {
                Fault::NoMount
            } else {
                Fault::Forward
            }
        }),
        false,
    );
    push_base(&format!("{}/base/static:v1", reg.host()), &["--all"]);
    let layers = base_layers();
    let base = format!("{}/base/static:v1", proxy.host());
    let (tmp, project, cfg) = project_on(&base, true);
    let rep = tmp.path().join("push.json");
    let summary = tmp.path().join("summary.md");
    let text = ok(ocibuild_env(
        &project,
        &cfg,
        &[("GITHUB_STEP_SUMMARY", &summary)],
        &[
            "push",
            "--service",
            "catalog",
            "--registry",
            &proxy.host(),
            "--tag",
            "v1",
            "--no-cache",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    let r: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    assert_eq!(r[0]["blobs_mounted"], 0, "{r}");
    assert_eq!(r[0]["blobs_copied"], layers.len() as u64, "{r}");
    assert!(
        text.contains(&format!(", copied {} (", layers.len())),
        "{text}"
    );
    let seen = requests(&proxy);
    for l in &layers {
        for want in [
            "POST /v2/retail-store-catalog/blobs/uploads/?mount".to_string(),
            format!("GET /v2/base/static/blobs/{l}"),
            format!(
                "PUT /v2/retail-store-catalog/blobs/uploads/{}",
                l.replace(':', "%3A")
            ),
        ] {
            assert!(seen.contains(&want), "{want} missing: {seen:?}");
        }
    }
    let image = format!("docker://{}/retail-store-catalog:v1", reg.host());
    assert_eq!(raw_digest(&image), r[0]["index_digest"].as_str().unwrap());
    unpack_and_run(tmp.path(), &image, "amd64");
    // The step summary says what each image was built on.
    let md = fs::read_to_string(&summary).unwrap();
    let base_digest = r[0]["base_digest"].as_str().unwrap();
    assert!(
        md.contains(&format!("| `{base}` → `{base_digest}` |")),
        "{md}"
    );
}

#[test]
fn a_public_base_is_read_anonymously_with_pull_only_tokens() {
    require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    // Token auth where anyone may pull and ci-user may push anywhere (as on a public registry).
    let ts = crate::token::TokenServer::start_with(
        tmp.path(),
        "test-registry",
        "ci-user",
        "tok-pass",
        "",
        true,
    );
    let reg = TestRegistry::start_with_auth(
        tempfile::tempdir().unwrap(),
        Some(ts.registry_auth_yaml("test-registry")),
    );
    push_base(
        &format!("{}/base/static:v1", reg.host()),
        &["--all", "--dest-creds", "ci-user:tok-pass"],
    );
    let (ptmp, p) = retail_store();
    let base = format!("{}/base/static:v1", reg.host());
    set_bases(&p, &base, &base);
    let anon = docker_config(&ptmp.path().join("anon"), "{}");
    ts.scopes.lock().unwrap().clear();
    let out = ptmp.path().join("out");
    ok(ocibuild_cfg(
        &p,
        &anon,
        &["build", "--out", out.to_str().unwrap(), "--service", "ui"],
    ));
    let scopes = ts.scopes.lock().unwrap().clone();
    assert!(
        scopes.iter().all(|s| s == "repository:base/static:pull"),
        "reading a base asks pull only: {scopes:?}"
    );
    assert!(!scopes.is_empty());

    // Pushing with credentials into the same registry mounts the base layers (pull on the
    // base's repository, push on ours).
    let auth = base64_of("ci-user:tok-pass");
    let cfg = docker_config(
        &ptmp.path().join("user"),
        &format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    );
    let rep = ptmp.path().join("r.json");
    ok(ocibuild_cfg(
        &p,
        &cfg,
        &[
            "push",
            "--layout",
            out.to_str().unwrap(),
            "--service",
            "ui",
            "--registry",
            &format!("{}/team", reg.host()),
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    let r: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    assert_eq!(r[0]["blobs_mounted"], base_layers().len() as u64, "{r}");
    let scopes = ts.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:team/retail-store-ui:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        !scopes.contains(&"repository:base/static:pull,push".to_string()),
        "never push scope on the base: {scopes:?}"
    );
}

#[test]
fn a_resolved_tag_is_cached_pull_asks_again_and_the_pinned_digest_wins() {
    require("skopeo");
    require("umoci");
    let reg = TestRegistry::start(None);
    push_base(&format!("{}/base/static:stable", reg.host()), &["--all"]);
    let first = raw_digest(&format!("docker://{}/base/static:stable", reg.host()));
    let base = format!("{}/base/static:stable", reg.host());
    let (tmp, project, cfg) = project_on(&base, true);
    let cache = tmp.path().join("cache");
    let build = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "build",
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--service",
            "catalog",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        ocibuild_cfg(&project, &cfg, &args)
    };
    let out1 = tmp.path().join("out1");
    let r = json(build(&out1, &[]));
    assert_eq!(r[0]["base"]["digest"], first.as_str());
    assert_eq!(r[0]["base"]["from_cache"], false);

    // The tag moves to an arm64-only image.
    push_base(
        &format!("{}/base/static:stable", reg.host()),
        &["--override-arch", "arm64"],
    );
    let moved = raw_digest(&format!("docker://{}/base/static:stable", reg.host()));
    assert_ne!(moved, first);

    // The layout built before the move pushes what it was built on.
    let rep = tmp.path().join("push.json");
    ok(ocibuild_cfg(
        &project,
        &cfg,
        &[
            "push",
            "--layout",
            out1.to_str().unwrap(),
            "--service",
            "catalog",
            "--registry",
            &reg.host(),
            "--tag",
            "v1",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    let p: Value = serde_json::from_slice(&fs::read(&rep).unwrap()).unwrap();
    assert_eq!(p[0]["base_digest"], first.as_str());
    unpack_and_run(
        tmp.path(),
        &format!("docker://{}/retail-store-catalog:v1", reg.host()),
        "amd64",
    );

    // Without --pull the cached resolution is used (same digest, said so).
    let r = json(build(&tmp.path().join("out2"), &[]));
    assert_eq!(r[0]["base"]["digest"], first.as_str());
    assert_eq!(r[0]["base"]["from_cache"], true);
    assert_eq!(r[0]["index_digest"], p[0]["index_digest"]);

    // --pull sees the move: amd64 is gone from the base, and the error says so.
    let out3 = tmp.path().join("out3");
    let err = fails(build(&out3, &["--pull"]));
    assert!(err.contains("no image for linux/amd64"), "{err}");
    assert!(err.contains("it has: linux/arm64"), "{err}");
    assert!(err.contains(&base), "{err}");
    assert!(!out3.exists(), "a failed build leaves no output");
    let r = json(build(&out3, &["--pull", "--platform", "linux/arm64"]));
    assert_eq!(r[0]["base"]["digest"], moved.as_str());
    assert_eq!(r[0]["base"]["from_cache"], false);
}

#[test]
fn materialize_copies_a_docker_format_base_into_a_self_contained_layout() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let other = TestRegistry::start(None);
    push_base(
        &format!("{}/base/docker:v1", reg.host()),
        &["--all", "--format", "v2s2"],
    );
    let list: Value = serde_json::from_str(&reg.raw("base/docker", "v1", None).unwrap()).unwrap();
    assert_eq!(
        list["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let (tmp, project, cfg) = project_on(&format!("{}/base/docker:v1", reg.host()), false);
    let out = tmp.path().join("out");
    let report = json(ocibuild_cfg(
        &project,
        &cfg,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--no-cache",
            "--materialize",
            "--service",
            "ui",
            "--format",
            "json",
        ],
    ));

    // Through the cache: materialized layers are kept there and checked when reused; a
    // damaged one (same size, other bytes) is fetched again.
    let cache = tmp.path().join("cache");
    let cached_build = |out: &Path| {
        ok(ocibuild_cfg(
            &project,
            &cfg,
            &[
                "build",
                "--out",
                out.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--materialize",
                "--service",
                "ui",
            ],
        ))
    };
    cached_build(&tmp.path().join("out-cached-1"));
    let victim = &base_layers()[0];
    let file = cache
        .join("base-v1/blobs/sha256")
        .join(victim.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    fs::remove_file(&file).unwrap(); // a new file: the first layout's hard link keeps the old
    fs::write(&file, &bytes).unwrap();
    let out2 = tmp.path().join("out-cached-2");
    cached_build(&out2);
    let stored = out2
        .join("ui/blobs/sha256")
        .join(victim.trim_start_matches("sha256:"));
    assert_eq!(&sha256_hex(fs::read(&stored).unwrap()), victim);
    drop(reg); // the layouts need the registry no more

    let layers = base_layers();
    for p in report[0]["platforms"].as_array().unwrap() {
        for l in p["layers"].as_array().unwrap() {
            assert_eq!(l["in_layout"], true);
            let docker = l["media_type"] == "application/vnd.docker.image.rootfs.diff.tar.gzip";
            assert_eq!(
                docker,
                layers.contains(&l["digest"].as_str().unwrap().to_string()),
                "base layers keep their Docker media type, ours are OCI: {l}"
            );
        }
    }
    let layout = format!("oci:{}:latest", out.join("ui").display());
    let index: Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", "--raw", &layout])
    ))
    .unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    for m in index["manifests"].as_array().unwrap() {
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    }
    // Every blob is there: skopeo copies the whole layout to a registry on its own.
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &layout,
        &format!("docker://{}/ui:v1", other.host()),
    ]));
    assert_eq!(
        raw_digest(&format!("docker://{}/ui:v1", other.host())),
        report[0]["index_digest"].as_str().unwrap()
    );
    // Docker layer types inside an OCI manifest: umoci refuses them, podman (containers/image,
    // as CRI-O and Kubernetes nodes with it use) takes them. Pull one platform and look inside.
    for arch in ["amd64", "arm64"] {
        let root = podman_pull(tmp.path(), &format!("{}/ui:v1", other.host()), arch);
        assert_eq!(
            fs::read_to_string(root.join("etc/ocibuild-base-arch"))
                .unwrap()
                .trim(),
            arch
        );
        assert!(root.join("app/ui.jar").is_file());
    }
}

/// Pull `image` (plain HTTP) for linux/`arch` with podman into a store of its own under `tmp`,
/// and mount it: the root of its file system.
fn podman_pull(tmp: &Path, image: &str, arch: &str) -> PathBuf {
    require("podman");
    let dir = tmp.join(format!("podman-{arch}"));
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .args(["--storage-driver", "vfs"])
            .env("TMPDIR", &dir)
            .env("XDG_RUNTIME_DIR", dir.join("xdg"));
        c
    };
    fs::create_dir_all(dir.join("xdg")).unwrap();
    run(podman().args(["pull", "-q", "--tls-verify=false", "--arch", arch, image]));
    let inspect = run(podman().args(["image", "inspect", "--format", "{{.Architecture}}", image]));
    assert_eq!(inspect.trim(), arch);
    PathBuf::from(run(podman().args(["image", "mount", image])).trim())
}

#[test]
fn registry_base_errors_name_the_base_and_the_fix() {
    require("skopeo");
    let open = TestRegistry::start(None);
    let locked = TestRegistry::start(Some(("ci", "s3cret-pass")));
    push_base(
        &format!("{}/base/static:v1", locked.host()),
        &["--all", "--dest-creds", "ci:s3cret-pass"],
    );
    let (tmp, project) = retail_store();
    let out = tmp.path().join("out");
    let build = |base: &str, cfg: &Path| {
        let p = tmp.path().join(format!("p-{}", &sha256_hex(base)[7..15]));
        let _ = fs::remove_dir_all(&p);
        copy_tree(&project, &p);
        set_bases(&p, base, base);
        ocibuild_cfg(
            &p,
            cfg,
            &["build", "--out", out.to_str().unwrap(), "--service", "ui"],
        )
    };
    let anon = docker_config(&tmp.path().join("anon"), "{}");

    // Missing image.
    let missing = format!("{}/base/nothing:v1", open.host());
    let err = fails(build(&missing, &anon));
    assert!(err.contains(&missing), "{err}");
    assert!(
        err.contains("has no image v1 in repository base/nothing"),
        "{err}"
    );
    assert!(err.contains("push the base image first"), "{err}");
    assert!(!out.exists());

    // No credentials, then wrong ones: refused, with where the credentials came from.
    let locked_base = format!("{}/base/static:v1", locked.host());
    let err = fails(build(&locked_base, &anon));
    assert!(err.contains(&locked_base), "{err}");
    assert!(err.contains("401"), "{err}");
    let wrong = docker_config(
        &tmp.path().join("wrong"),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            locked.host(),
            base64_of("ci:wrong-pass")
        ),
    );
    let err = fails(build(&locked_base, &wrong));
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("config.json"), "{err}");
    assert!(!err.contains("wrong-pass"), "no password in errors: {err}");
    // The right ones work.
    let right = docker_config(
        &tmp.path().join("right"),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            locked.host(),
            base64_of("ci:s3cret-pass")
        ),
    );
    ok(build(&locked_base, &right));

    // Nobody listening.
    let gone = format!("127.0.0.1:{}/base/static:v1", free_port());
    let err = fails(build(&gone, &anon));
    assert!(err.contains(&gone), "{err}");

    // A reference that names no registry is refused with the fix.
    let err = fails(build("alpine:3.20", &anon));
    assert!(err.contains("docker.io/library/alpine:3.20"), "{err}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

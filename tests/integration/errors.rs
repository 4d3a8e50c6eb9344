//! Bad input: a clear message naming the service, platform and path; exit code 1; no panic;
//! and nothing written (no new layout, no staging left, earlier layouts untouched).

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Build the fixture copy into `out` and expect failure with all of `want` in the message.
fn build_fails(project: &Path, out: &Path, extra: &[&str], want: &[&str]) -> String {
    let mut args = vec!["build", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let existed = out.exists();
    let err = fails(ocibuild(project, &args));
    assert!(
        existed || !out.exists(),
        "a failed build left {} behind",
        out.display()
    );
    for w in want {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
    if out.is_dir() {
        let left: Vec<String> = list_files(out);
        assert!(
            left.is_empty(),
            "output written despite the error: {left:?}"
        );
    }
    err
}

#[test]
fn missing_build_output_names_service_platform_and_path() {
    let (tmp, p) = retail_store();
    fs::remove_dir_all(p.join("src/catalog/dist/linux-arm64")).unwrap();
    build_fails(
        &p,
        &tmp.path().join("out"),
        &[],
        &[
            "catalog",
            "linux/arm64/v8",
            "src/catalog/dist/linux-arm64",
            "does not exist",
        ],
    );
}

#[test]
fn empty_source_is_refused() {
    let (tmp, p) = retail_store();
    let d = p.join("src/ui/target/lib");
    fs::remove_dir_all(&d).unwrap();
    fs::create_dir(&d).unwrap();
    build_fails(
        &p,
        &tmp.path().join("out"),
        &["--service", "ui"],
        &["service ui (linux/amd64)", "src/ui/target/lib", "is empty"],
    );
}

#[test]
fn special_files_are_refused() {
    let (tmp, p) = retail_store();
    run(Command::new("mkfifo").arg(p.join("src/orders/target/config/pipe")));
    build_fails(
        &p,
        &tmp.path().join("out"),
        &[],
        &["service orders", "config/pipe", "is a fifo"],
    );
}

#[test]
fn unreadable_file_is_reported() {
    let (tmp, p) = retail_store();
    let secret = p.join("src/checkout/dist/secret.txt");
    fs::write(&secret, "x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    // root reads anything: run as nobody, with the copy readable and `out` writable for it.
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(tmp.path()));
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = if unsafe_is_root() {
        require("setpriv");
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_ocibuild"),
        ]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_ocibuild"))
    };
    let o = cmd
        .args([
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "checkout",
        ])
        .current_dir(&p)
        .output()
        .unwrap();
    let err = fails(o);
    assert!(
        err.contains("service checkout")
            && err.contains("secret.txt")
            && err.contains("ermission denied"),
        "{err}"
    );
    assert!(list_files(&out).is_empty(), "{:?}", list_files(&out));
}

fn unsafe_is_root() -> bool {
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0"
}

#[test]
fn base_layout_missing_or_without_platform() {
    let (tmp, p) = retail_store();
    let out = tmp.path().join("out");
    build_fails(
        &p,
        &out,
        &["--platform", "linux/arm/v7", "--service", "ui"],
        &[
            "service ui",
            "base oci:base-images/static",
            "no image for linux/arm/v7",
            "linux/amd64, linux/arm64/v8",
        ],
    );
    fs::rename(p.join("base-images"), p.join("moved")).unwrap();
    build_fails(
        &p,
        &out,
        &[],
        &[
            "base oci:base-images/static",
            "no such OCI layout directory",
        ],
    );
    fs::rename(p.join("moved"), p.join("base-images")).unwrap();
    let cfg = fs::read_to_string(p.join("ocibuild.toml"))
        .unwrap()
        .replace("static:v1", "static:v9");
    fs::write(p.join("ocibuild.toml"), cfg).unwrap();
    build_fails(
        &p,
        &out,
        &["--service", "catalog"],
        &["service catalog", "tagged \"v9\"", "tags: v1, latest"],
    );
}

#[test]
fn several_failures_are_all_reported() {
    let (tmp, p) = retail_store();
    fs::remove_dir_all(p.join("src/orders/target/config")).unwrap();
    fs::remove_dir_all(p.join("src/ui/target/app")).unwrap();
    build_fails(
        &p,
        &tmp.path().join("out"),
        &[],
        &[
            "2 services failed; nothing was written",
            "service orders",
            "service ui",
        ],
    );
}

#[test]
fn invalid_config_gives_file_line_and_column() {
    let (tmp, p) = retail_store();
    let cfg = fs::read_to_string(p.join("ocibuild.toml"))
        .unwrap()
        .replacen("target = \"/app/lib\"", "target = \"app/lib\"", 1);
    let line = cfg
        .lines()
        .position(|l| l == "target = \"app/lib\"")
        .unwrap()
        + 1;
    fs::write(p.join("ocibuild.toml"), cfg).unwrap();
    build_fails(
        &p,
        &tmp.path().join("out"),
        &[],
        &[&format!("ocibuild.toml:{line}:10:"), "not an absolute path"],
    );
    let err = fails(ocibuild(
        &p,
        &["build", "--config", "nope.toml", "--out", "x"],
    ));
    assert!(err.contains("nope.toml"), "{err}");
    let err = fails(ocibuild(tmp.path(), &["build", "--out", "x"]));
    assert!(
        err.contains("no ocibuild.toml in the current directory"),
        "{err}"
    );
}

#[test]
fn unknown_service_and_bad_arguments() {
    let (tmp, p) = retail_store();
    let out = tmp.path().join("out");
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let err = refused(ocibuild(&p, &args));
        assert!(!out.exists(), "refused, yet {} was created", out.display());
        err
    };
    let err = build(&["--service", "payments"]);
    assert!(
        err.contains("unknown service \"payments\"")
            && err.contains("cart, catalog, checkout, orders, ui"),
        "{err}"
    );
    let err = build(&["--tag", "bad tag"]);
    assert!(err.contains("invalid tag \"bad tag\""), "{err}");
    let err = build(&["--platform", "linux/sparc"]);
    assert!(err.contains("unsupported architecture"), "{err}");
    let o = ocibuild(&p, &["build"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
}

#[test]
fn wrong_invocations_are_refused_before_any_work() {
    let (_tmp, p) = retail_store();
    let layouts = p.join(".ocibuild");
    let push = |extra: &[&str]| {
        let mut args = vec!["push"];
        args.extend_from_slice(extra);
        let err = refused(ocibuild(&p, &args));
        assert!(!layouts.exists(), "built before refusing: {err}");
        err
    };
    let err = push(&[]);
    assert!(err.contains("no registry: pass --registry"), "{err}");
    let err = push(&["--registry", ""]);
    assert!(
        err.contains("--registry is empty") && err.contains("vars.ECR_REGISTRY"),
        "{err}"
    );
    let err = push(&["--registry", "127.0.0.1:1", "--scan"]);
    assert!(err.contains("not an ECR registry"), "{err}");
    let err = push(&["--registry", "127.0.0.1:1", "--create-repos"]);
    assert!(err.contains("not an ECR registry"), "{err}");
    let err = push(&["--registry", "127.0.0.1:1", "--service", "payments"]);
    assert!(err.contains("unknown service \"payments\""), "{err}");
    let err = push(&[
        "--registry",
        "127.0.0.1:1",
        "--layout",
        "x",
        "--platform",
        "linux/amd64",
    ]);
    assert!(err.contains("--platform chooses what to build"), "{err}");
    // Repositories have no platform; the tag option is spelled --tag everywhere.
    let err = refused(ocibuild(
        &p,
        &["repos", "ensure", "--platform", "linux/amd64"],
    ));
    assert!(err.contains("--platform"), "{err}");
    let err = refused(ocibuild(
        &p,
        &[
            "repos",
            "ensure",
            "--registry",
            "127.0.0.1:1",
            "--tag",
            "sha,latest",
        ],
    ));
    assert!(err.contains("not an Amazon ECR registry"), "{err}");
    let err = refused(ocibuild(
        &p,
        &["scan", "--registry", "127.0.0.1:1", "--service", "nope"],
    ));
    assert!(err.contains("unknown service \"nope\""), "{err}");
    let err = refused(ocibuild(&p, &["iam-policy", "--platform", "linux/amd64"]));
    assert!(err.contains("--platform"), "{err}");
}

#[test]
fn help_texts_fit_each_command_and_platform_all_means_the_configs() {
    let (tmp, p) = retail_store();
    let help = |args: &[&str]| ok(ocibuild(&p, args));
    let build = help(&["build", "--help"]);
    assert!(
        build.contains("default: every service") && build.contains("`all`"),
        "{build}"
    );
    let push = help(&["push", "--help"]);
    assert!(
        push.contains("`ocibuild plan` selects") && push.contains("Not with --layout"),
        "{push}"
    );
    for cmd in [
        &["repos", "ensure", "--help"][..],
        &["scan", "--help"],
        &["iam-policy", "--help"],
    ] {
        let h = help(cmd);
        assert!(
            !h.contains("--platform") && h.contains("default: every service"),
            "{h}"
        );
    }
    assert!(help(&["repos", "ensure", "--help"]).contains("--tag <KINDS>"));
    let out = tmp.path().join("out");
    let report = ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "catalog",
            "--platform",
            "all",
            "--format",
            "json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(v[0]["platforms"].as_array().unwrap().len(), 2, "{report}");
}

#[test]
fn output_directory_problems() {
    let (tmp, p) = retail_store();
    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let err = fails(ocibuild(&p, &["build", "--out", file.to_str().unwrap()]));
    assert!(
        err.contains("a-file") && err.contains("not a directory"),
        "{err}"
    );
    // a non-layout directory in the way is never replaced
    let out = tmp.path().join("out");
    fs::create_dir_all(out.join("cart")).unwrap();
    fs::write(out.join("cart/precious.txt"), "keep me").unwrap();
    let err = fails(ocibuild(&p, &["build", "--out", out.to_str().unwrap()]));
    assert!(
        err.contains("out/cart") && err.contains("not an OCI layout"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(out.join("cart/precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn a_failed_rebuild_leaves_the_previous_layout_untouched() {
    let (tmp, p) = retail_store();
    let out = tmp.path().join("out");
    ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "catalog,cart",
        ],
    ));
    let before: Vec<(String, Vec<u8>)> = list_files(&out)
        .into_iter()
        .filter(|f| out.join(f).is_file())
        .map(|f| (f.clone(), fs::read(out.join(&f)).unwrap()))
        .collect();
    fs::write(p.join("src/catalog/dist/linux-amd64/catalog"), "changed").unwrap();
    fs::remove_dir_all(p.join("src/cart/target/static")).unwrap();
    let err = fails(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "catalog,cart",
        ],
    ));
    assert!(err.contains("service cart"), "{err}");
    let after: Vec<(String, Vec<u8>)> = list_files(&out)
        .into_iter()
        .filter(|f| out.join(f).is_file())
        .map(|f| (f.clone(), fs::read(out.join(&f)).unwrap()))
        .collect();
    assert!(
        before == after,
        "the output changed although the build failed"
    );
}

#[test]
fn a_single_manifest_base_serves_its_own_platform_only() {
    let (tmp, p) = retail_store();
    // Point the base layout's index.json straight at its amd64 manifest.
    let base = p.join("base-images/static");
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(base.join("index.json")).unwrap()).unwrap();
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index: serde_json::Value = serde_json::from_slice(
        &fs::read(base.join("blobs/sha256").join(&index_digest[7..])).unwrap(),
    )
    .unwrap();
    let amd = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()
        .clone();
    let mut entry = amd.clone();
    entry.as_object_mut().unwrap().remove("platform");
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
    fs::write(
        base.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [entry]})).unwrap(),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let report = ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "catalog",
            "--platform",
            "linux/amd64",
            "--format",
            "json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let first_layer = &report[0]["platforms"][0]["layers"][0];
    assert_eq!(first_layer["from_base"], true);
    fs::remove_dir_all(&out).unwrap();
    build_fails(
        &p,
        &out,
        &["--service", "catalog"],
        &[
            "service catalog",
            "no image for linux/arm64/v8",
            "it has: linux/amd64",
        ],
    );
}

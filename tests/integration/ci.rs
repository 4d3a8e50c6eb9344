//! The monorepo CI flow on real git repositories made by the tests: change detection in every
//! shape (one service, two, a shared path, renames, deletions, spaces, a deleted service, a new
//! branch, a forced push, a pull request with its merge base, a shallow clone, a manual run),
//! the tag policy in each context, PR mode pushing nothing, the GitHub outputs, and the shipped
//! workflow file checked against the real argument parser.

use crate::common::*;
use crate::registry::{docker_config, TestRegistry};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_DATE", "2026-03-04T05:06:07Z")
        .env("GIT_AUTHOR_DATE", "2026-03-04T05:06:07Z"))
    .trim()
    .to_string()
}

/// The fixture monorepo as a git repository on `main`, one commit.
fn repo() -> (tempfile::TempDir, PathBuf) {
    require("git");
    let (t, p) = retail_store();
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-q", "-m", "initial"]);
    (t, p)
}

fn commit(p: &Path, msg: &str) -> String {
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", msg]);
    git(p, &["rev-parse", "HEAD"])
}

/// Run ocibuild in `p` with a clean GitHub environment plus `env`.
fn oci_env(p: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    c.args(args).current_dir(p).env("SOURCE_DATE_EPOCH", "0");
    for k in [
        "GITHUB_EVENT_NAME",
        "GITHUB_EVENT_PATH",
        "GITHUB_REF",
        "GITHUB_SHA",
        "GITHUB_HEAD_REF",
        "GITHUB_BASE_REF",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_ACTIONS",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The services `plan` selects: by change detection (the default in a CI event, `--changed`
/// without one).
fn planned(p: &Path, env: &[(&str, String)]) -> Vec<String> {
    let mut args = vec!["plan", "--format", "json"];
    if env.is_empty() {
        args.push("--changed");
    }
    let v: Value = serde_json::from_str(&ok(oci_env(p, &args, env))).unwrap();
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap().to_string())
        .collect()
}

fn event(dir: &Path, name: &str, payload: Value) -> Vec<(&'static str, String)> {
    let path = dir.join(format!("{name}-event.json"));
    fs::write(&path, payload.to_string()).unwrap();
    vec![
        ("GITHUB_EVENT_NAME", name.to_string()),
        ("GITHUB_EVENT_PATH", path.to_string_lossy().into_owned()),
    ]
}

#[test]
fn changes_select_services() {
    let (t, p) = repo();
    // One service.
    fs::write(
        p.join("src/cart/target/static/index.html"),
        "<h1>cart v2</h1>\n",
    )
    .unwrap();
    commit(&p, "cart");
    assert_eq!(planned(&p, &[]), ["cart"]);
    let matrix: Value = serde_json::from_str(&ok(oci_env(
        &p,
        &["plan", "--format", "github-matrix", "--changed"],
        &[],
    )))
    .unwrap();
    assert_eq!(matrix, json!({"include": [{"service": "cart"}]}));
    // Two services, one of them through a path with a space.
    fs::write(p.join("src/ui/target/app/with space.yml"), "x: 1\n").unwrap();
    fs::write(p.join("src/checkout/dist/index.js"), "console.log(2)\n").unwrap();
    commit(&p, "two");
    assert_eq!(planned(&p, &[]), ["checkout", "ui"]);
    // A rename inside one service; a deletion inside another.
    git(
        &p,
        &[
            "mv",
            "src/orders/target/config/logging.conf",
            "src/orders/target/config/log.conf",
        ],
    );
    git(
        &p,
        &["rm", "-q", "src/catalog/dist/linux-amd64/catalog.conf"],
    );
    commit(&p, "rename and delete");
    assert_eq!(planned(&p, &[]), ["catalog", "orders"]);
    // Something no service owns.
    fs::write(p.join("README.txt"), "docs\n").unwrap();
    commit(&p, "docs");
    assert!(planned(&p, &[]).is_empty());
    let text = ok(oci_env(&p, &["plan", "--changed"], &[]));
    assert!(
        text.contains("0 of 5 services to build: what changed (--changed)"),
        "{text}"
    );
    // Without --changed and outside a CI event: every service, and the output says why.
    let text = ok(oci_env(&p, &["plan"], &[]));
    assert!(
        text.contains("5 of 5 services to build: every service: not a CI event"),
        "{text}"
    );
    // A shared path (the config itself) marks every service.
    let cfg = fs::read_to_string(p.join("ocibuild.toml")).unwrap();
    fs::write(p.join("ocibuild.toml"), format!("# changed\n{cfg}")).unwrap();
    let base = commit(&p, "config");
    assert_eq!(planned(&p, &[]).len(), 5);
    let v: Value = serde_json::from_str(&ok(oci_env(
        &p,
        &["plan", "--format", "json", "--changed"],
        &[],
    )))
    .unwrap();
    assert_eq!(
        v["services"][0]["reason"],
        "shared path changed: ocibuild.toml"
    );
    // A service whose sources were deleted is skipped, with the reason.
    git(&p, &["rm", "-q", "-r", "src/orders"]);
    commit(&p, "drop orders");
    let v: Value = serde_json::from_str(&ok(oci_env(
        &p,
        &["plan", "--format", "json", "--changed"],
        &[],
    )))
    .unwrap();
    assert_eq!(v["services"], json!([]));
    assert_eq!(v["skipped"][0]["service"], "orders");
    assert!(v["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("deleted"));
    // --base, --service and --all override.
    assert_eq!(planned(&p, &[]).len(), 0);
    let v: Value = serde_json::from_str(&ok(oci_env(
        &p,
        &["plan", "--format", "json", "--base", &format!("{base}~3")],
        &[],
    )))
    .unwrap();
    assert!(v["services"].as_array().unwrap().len() == 5, "{v}");
    let v: Value = serde_json::from_str(&ok(oci_env(
        &p,
        &["plan", "--format", "json", "--service", "ui,cart"],
        &[],
    )))
    .unwrap();
    assert_eq!(
        v["services"],
        json!([{"service": "ui", "reason": "named"}, {"service": "cart", "reason": "named"}])
    );
    assert_eq!(planned(&p, &[]).len(), 0);
    let all: Value = serde_json::from_str(&ok(oci_env(
        &p,
        &["plan", "--format", "json", "--all"],
        &[],
    )))
    .unwrap();
    assert_eq!(all["services"].as_array().unwrap().len(), 5);
    drop(t);
}

#[test]
fn github_events_choose_the_base() {
    let (t, p) = repo();
    let first = git(&p, &["rev-parse", "HEAD"]);
    fs::write(p.join("src/cart/target/static/index.html"), "v2\n").unwrap();
    let second = commit(&p, "cart");
    // push: compare with `before`.
    let env = event(
        t.path(),
        "push",
        json!({"before": first, "after": second, "forced": false}),
    );
    assert_eq!(planned(&p, &env), ["cart"]);
    // a new branch: before is all zeros -> every service.
    let env = event(
        t.path(),
        "push",
        json!({"before": "0000000000000000000000000000000000000000", "created": true}),
    );
    assert_eq!(planned(&p, &env).len(), 5);
    // a forced push -> every service.
    let env = event(t.path(), "push", json!({"before": first, "forced": true}));
    assert_eq!(planned(&p, &env).len(), 5);
    // workflow_dispatch: the services input, or all.
    let env = event(
        t.path(),
        "workflow_dispatch",
        json!({"inputs": {"services": "orders, ui"}}),
    );
    assert_eq!(planned(&p, &env), ["orders", "ui"]);
    let env = event(
        t.path(),
        "workflow_dispatch",
        json!({"inputs": {"services": "all"}}),
    );
    assert_eq!(planned(&p, &env).len(), 5);
    let env = event(
        t.path(),
        "workflow_dispatch",
        json!({"inputs": {"services": "payments"}}),
    );
    let err = fails(oci_env(&p, &["plan"], &env));
    assert!(err.contains("unknown service \"payments\""), "{err}");

    // pull request: the merge base with the target, not the target's newer commits.
    git(&p, &["checkout", "-q", "-b", "feature"]);
    fs::write(p.join("src/checkout/dist/index.js"), "feature\n").unwrap();
    commit(&p, "feature work");
    git(&p, &["checkout", "-q", "main"]);
    fs::write(
        p.join("src/ui/target/app/application.yml"),
        "main moved on\n",
    )
    .unwrap();
    let main_head = commit(&p, "main work");
    git(&p, &["checkout", "-q", "feature"]);
    let env = event(
        t.path(),
        "pull_request",
        json!({"number": 12, "pull_request": {"number": 12, "base": {"ref": "main", "sha": main_head}}}),
    );
    assert_eq!(planned(&p, &env), ["checkout"]);
}

#[test]
fn a_shallow_clone_says_how_to_fix_it() {
    let (t, p) = repo();
    fs::write(p.join("src/cart/target/static/index.html"), "v2\n").unwrap();
    commit(&p, "cart");
    let shallow = t.path().join("shallow");
    run(Command::new("git")
        .args([
            "clone",
            "-q",
            "--depth",
            "1",
            &format!("file://{}", p.display()),
        ])
        .arg(&shallow));
    let err = fails(oci_env(&shallow, &["plan", "--changed"], &[]));
    assert!(
        err.contains("shallow") && err.contains("fetch-depth: 0"),
        "{err}"
    );
    let env = event(
        t.path(),
        "push",
        json!({"before": "1111111111111111111111111111111111111111"}),
    );
    let err = fails(oci_env(&shallow, &["plan"], &env));
    assert!(err.contains("fetch-depth: 0"), "{err}");
}

#[test]
fn push_pushes_only_what_changed_with_the_right_tags_and_prs_push_nothing() {
    require("skopeo");
    let reg = TestRegistry::start(None);
    let (t, p) = repo();
    let cfg = docker_config(t.path(), "{}");
    fs::write(p.join("src/cart/target/static/index.html"), "v2\n").unwrap();
    let head = commit(&p, "cart");
    let time = git(&p, &["log", "-1", "--format=%ct"])
        .parse::<u64>()
        .unwrap();
    let stamp = ocibuild::spec::compact_utc(time);
    let sha7 = &head[..7];

    // Pull request: built, validated, nothing pushed.
    let mut env = event(
        t.path(),
        "pull_request",
        json!({"number": 7, "pull_request": {"number": 7, "base": {"ref": "main", "sha": git(&p, &["rev-parse", "HEAD~1"])}}}),
    );
    env.push(("DOCKER_CONFIG", cfg.to_string_lossy().into_owned()));
    env.push(("GITHUB_HEAD_REF", "feature".into()));
    let summary = t.path().join("summary.md");
    env.push((
        "GITHUB_STEP_SUMMARY",
        summary.to_string_lossy().into_owned(),
    ));
    let out = ok(oci_env(
        &p,
        &[
            "push",
            "--registry",
            &reg.host(),
            "--tag",
            "sha,timestamp,latest,pr",
        ],
        &env,
    ));
    assert!(
        out.contains("pull request: built and validated 1 service(s) (cart); nothing pushed"),
        "{out}"
    );
    assert!(
        reg.raw("retail-store-cart", sha7, None).is_none(),
        "a pull request pushed"
    );
    assert!(reg.raw("retail-store-cart", "pr-7", None).is_none());
    assert!(fs::read_to_string(&summary).unwrap().contains("| cart |"));

    // Push to main: only cart, with sha, timestamp and latest.
    let output = t.path().join("github-output");
    let summary = t.path().join("summary2.md");
    let env = vec![
        ("GITHUB_EVENT_NAME", "push".to_string()),
        ("GITHUB_EVENT_PATH", {
            let e = t.path().join("push.json");
            fs::write(
                &e,
                json!({"before": git(&p, &["rev-parse", "HEAD~1"]), "after": head}).to_string(),
            )
            .unwrap();
            e.to_string_lossy().into_owned()
        }),
        ("GITHUB_REF", "refs/heads/main".into()),
        ("GITHUB_SHA", head.clone()),
        ("GITHUB_OUTPUT", output.to_string_lossy().into_owned()),
        (
            "GITHUB_STEP_SUMMARY",
            summary.to_string_lossy().into_owned(),
        ),
        ("DOCKER_CONFIG", cfg.to_string_lossy().into_owned()),
    ];
    let o = oci_env(
        &p,
        &[
            "push",
            "--registry",
            &reg.host(),
            "--tag",
            "sha,timestamp,latest,pr",
            "--format",
            "json",
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let text = ok(o);
    assert!(err.contains("tag pr: skipped, not a pull request"), "{err}");
    let reports: Vec<Value> = serde_json::from_str(&text).expect("--format json prints JSON only");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["service"], "cart");
    assert_eq!(reports[0]["tags"], json!([sha7, stamp, "latest"]));
    let index = reports[0]["index_digest"].as_str().unwrap();
    for tag in [sha7, stamp.as_str(), "latest"] {
        let raw = reg
            .raw("retail-store-cart", tag, None)
            .unwrap_or_else(|| panic!("tag {tag} missing"));
        assert_eq!(sha256_hex(&raw), index);
    }
    for other in ["ui", "catalog", "checkout", "orders"] {
        assert!(
            reg.raw(&format!("retail-store-{other}"), "latest", None)
                .is_none(),
            "{other} was pushed"
        );
    }
    let immutable = format!("{}/retail-store-cart@{index}", reg.host());
    assert_eq!(
        reports[0]["reference"], immutable,
        "the immutable reference for deployment"
    );
    let outputs = fs::read_to_string(&output).unwrap();
    assert!(
        outputs.contains(&format!("cart-digest={index}\n")),
        "{outputs}"
    );
    assert!(
        outputs.contains(&format!("cart-image={immutable}\n")),
        "{outputs}"
    );
    assert!(outputs.contains("services=[\"cart\"]\n"), "{outputs}");
    let md = fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| service | platforms | digest | tags | uploaded | time | scan | base |")
            && md.contains(&format!(
                "| cart | 2 | `{immutable}` | {sha7}, {stamp}, latest |"
            )),
        "{md}"
    );

    // A push to another branch: no latest, and the log says why.
    let o = oci_env(
        &p,
        &[
            "push",
            "--registry",
            &reg.host(),
            "--tag",
            "sha,latest",
            "--service",
            "cart",
        ],
        &[
            ("GITHUB_REF", "refs/heads/feature".into()),
            ("DOCKER_CONFIG", cfg.to_string_lossy().into_owned()),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let text = ok(o);
    assert!(
        text.lines().any(|l| l == immutable),
        "text output prints the immutable reference: {text}"
    );
    assert!(
        err.contains("latest: skipped, branch feature is not the default branch main"),
        "{err}"
    );

    // Invalid tags are refused before anything is built.
    let out_dir = p.join(".ocibuild");
    fs::remove_dir_all(&out_dir).unwrap();
    let err = refused(oci_env(
        &p,
        &["push", "--registry", &reg.host(), "--tag", "sha,not a tag"],
        &[],
    ));
    assert!(err.contains("invalid tag \"not a tag\""), "{err}");
    assert!(!out_dir.exists(), "built before refusing the tag");
}

#[test]
fn the_shipped_workflow_is_valid_and_its_commands_parse() {
    use clap::Parser;
    let text =
        fs::read_to_string(repo_root().join(".github/workflows/build-push-images.yml")).unwrap();
    let wf: serde_yaml::Value = serde_yaml::from_str(&text).expect("the workflow is valid YAML");
    let on = &wf["on"];
    assert!(on["push"]["branches"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|b| b == "main"));
    assert!(!on["pull_request"].is_null());
    assert!(!on["workflow_dispatch"]["inputs"]["services"].is_null());
    assert_eq!(wf["permissions"]["id-token"], "write");
    let steps = wf["jobs"]["images"]["steps"].as_sequence().unwrap();
    assert!(text.contains("secrets.AWS_ROLE_ARN"));
    assert!(steps.iter().any(|s| s["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("actions/cache"))));
    assert!(steps.iter().any(|s| s["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials"))));
    let mut commands = Vec::new();
    for s in steps {
        let Some(script) = s["run"].as_str() else {
            continue;
        };
        for line in script.lines() {
            // `ocibuild ...` on its own or inside $( ... )
            for part in line
                .split("$(")
                .skip(if line.trim_start().starts_with("ocibuild") {
                    0
                } else {
                    1
                })
            {
                let cmd = part.trim_start();
                if !cmd.starts_with("ocibuild ") {
                    continue;
                }
                let cmd = cmd.split(')').next().unwrap().split(" >>").next().unwrap();
                let words: Vec<String> = cmd
                    .split_whitespace()
                    .map(|w| {
                        w.trim_matches('"').replace(
                            "$ECR_REGISTRY",
                            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                        )
                    })
                    .collect();
                commands.push(words);
            }
        }
    }
    assert!(commands.len() >= 5, "{commands:?}");
    for words in &commands {
        if let Err(e) = ocibuild::cli::Cli::try_parse_from(words) {
            panic!(
                "the workflow runs `{}`, which ocibuild refuses:\n{e}",
                words.join(" ")
            );
        }
    }
    let joined: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
    assert!(joined.iter().any(|c| c.starts_with("ocibuild plan")));
    // A workflow users can copy: installed by the action, never built from this source; the
    // layer cache (not ocibuild's own build) is what actions/cache keeps, per branch.
    assert!(!text.contains("cargo install"), "{text}");
    assert!(
        !text.contains("hashFiles"),
        "no cache key over the user's sources: {text}"
    );
    let uses = |prefix: &str| {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
            .cloned()
    };
    assert!(uses("./").unwrap()["with"]["version"].as_str().is_some());
    let cache = uses("actions/cache").unwrap();
    assert!(cache["with"]["key"]
        .as_str()
        .unwrap()
        .contains("github.ref_name"));
    assert!(cache["with"]["restore-keys"].as_str().is_some());
    assert!(
        text.contains("env.ECR_REGISTRY == ''") && text.contains("exit 1"),
        "fails early without a registry"
    );
    assert!(joined.iter().any(|c| c.contains("push")
        && c.contains("--tag sha,timestamp,latest,pr")
        && c.contains("--scan")));
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn latest_goes_only_to_the_default_branch_and_to_releases_on_its_history() {
    let reg = TestRegistry::start(None);
    let (t, p) = repo();
    let cfg = docker_config(t.path(), "{}");
    // A release tag on main's history, and one on a branch that never reached main.
    git(&p, &["tag", "v1.0.0"]);
    git(&p, &["checkout", "-q", "-b", "experiment"]);
    fs::write(p.join("src/cart/target/static/index.html"), "experiment\n").unwrap();
    commit(&p, "experiment");
    git(&p, &["tag", "v1.1.0-rc"]);
    let tags_for = |tag: &str| {
        git(&p, &["checkout", "-q", tag]);
        let mut env = event(
            t.path(),
            "push",
            json!({"before": "0000000000000000000000000000000000000000"}),
        );
        env.push(("GITHUB_REF", format!("refs/tags/{tag}")));
        env.push(("DOCKER_CONFIG", cfg.to_string_lossy().into_owned()));
        let o = oci_env(
            &p,
            &[
                "push",
                "--registry",
                &reg.host(),
                "--tag",
                "release,latest",
                "--service",
                "cart",
                "--format",
                "json",
                "--dry-run",
            ],
            &env,
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let v: Value = serde_json::from_str(&ok(o)).unwrap();
        (v[0]["tags"].clone(), err)
    };
    let (tags, _) = tags_for("v1.0.0");
    assert_eq!(tags, json!(["v1.0.0", "latest"]));
    let (tags, err) = tags_for("v1.1.0-rc");
    assert_eq!(tags, json!(["v1.1.0-rc"]));
    assert!(
        err.contains(
            "latest: skipped, release v1.1.0-rc is not on the history of the default branch main"
        ),
        "{err}"
    );
}

#[test]
fn the_action_and_the_release_workflow_fit_together() {
    let read = |p: &str| -> serde_yaml::Value {
        serde_yaml::from_str(&fs::read_to_string(repo_root().join(p)).unwrap()).expect(p)
    };
    let action = read("action.yml");
    assert_eq!(action["runs"]["using"], "composite");
    assert_eq!(action["inputs"]["version"]["required"], true);
    assert!(!action["inputs"]["command"].is_null());
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    assert!(steps[0]["run"]
        .as_str()
        .unwrap()
        .contains("scripts/install.sh"));
    let release = read(".github/workflows/release.yml");
    assert_eq!(release["on"]["push"]["tags"][0], "v*");
    let matrix = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap();
    let targets: Vec<&str> = matrix
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
    );
    let text = fs::read_to_string(repo_root().join(".github/workflows/release.yml")).unwrap();
    assert!(
        text.contains("ocibuild-$version-${{ matrix.target }}.tar.gz")
            && text.contains("SHA256SUMS")
    );
}

#[test]
fn the_install_script_installs_a_checked_release_asset_and_refuses_a_bad_one() {
    require("curl");
    let t = tempfile::tempdir().unwrap();
    let target = match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-gnu",
        "aarch64" => "aarch64-unknown-linux-gnu",
        other => panic!("no release target for {other}"),
    };
    // A release directory as release.yml makes it: the tarball and SHA256SUMS.
    let assets = t.path().join("assets");
    let staging = t.path().join("staging");
    fs::create_dir_all(&assets).unwrap();
    fs::create_dir_all(&staging).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_ocibuild"), staging.join("ocibuild")).unwrap();
    let asset = format!("ocibuild-9.9.9-{target}.tar.gz");
    run(Command::new("tar")
        .args(["-czf"])
        .arg(assets.join(&asset))
        .args(["-C"])
        .arg(&staging)
        .arg("ocibuild"));
    let sums = run(Command::new("sha256sum").arg(&asset).current_dir(&assets));
    fs::write(assets.join("SHA256SUMS"), &sums).unwrap();
    let install = |dest: &Path| {
        Command::new("bash")
            .arg(repo_root().join("scripts/install.sh"))
            .env("OCIBUILD_VERSION", "v9.9.9")
            .env("OCIBUILD_BASE_URL", format!("file://{}", assets.display()))
            .env("OCIBUILD_INSTALL_DIR", dest)
            .output()
            .unwrap()
    };
    let good = t.path().join("good/bin");
    let o = install(&good);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let version = run(Command::new(good.join("ocibuild")).arg("--version"));
    assert!(version.starts_with("ocibuild "), "{version}");
    // A checksum that does not match: refused, nothing installed, no fallback.
    let other = "0".repeat(64);
    fs::write(assets.join("SHA256SUMS"), format!("{other}  {asset}\n")).unwrap();
    let bad = t.path().join("bad/bin");
    let o = install(&bad);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to install") && err.contains(&other),
        "{err}"
    );
    assert!(!bad.join("ocibuild").exists());
}

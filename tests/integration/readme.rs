//! The README's commands, run as written: its build command and its push block, with only the
//! binary (`cargo run --release --` becomes this build's executable), the registry's port and
//! its scratch paths substituted, in a git checkout (where the default selection used to find
//! "no service changed"). Then the command the README gives next must read what they wrote.

use crate::common::*;
use crate::registry::free_port;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The fenced `sh` blocks of the README, in order.
fn sh_blocks() -> Vec<String> {
    let text = fs::read_to_string(repo().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, "```sh") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(b.clone());
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A copy of the repository's fixtures in a fresh git checkout with two commits, the second
/// touching no service.
fn checkout(dir: &Path) {
    copy_tree(&repo().join("fixtures"), &dir.join("fixtures"));
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "fixtures"]);
    fs::write(dir.join("NOTES.md"), "docs only\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "docs"]);
}

/// `block` with this build's binary, `port` and paths under `tmp`, run by bash in `cwd`;
/// background jobs it starts are stopped at the end. Its stdout.
fn run_block(block: &str, cwd: &Path, tmp: &Path, port: u16) -> String {
    let script = block
        .replace("cargo run --release --", env!("CARGO_BIN_EXE_ocibuild"))
        .replace("127.0.0.1:5000", &format!("127.0.0.1:{port}"))
        .replace(
            "/tmp/registry.yml",
            &tmp.join("registry.yml").to_string_lossy(),
        )
        .replace(
            "/tmp/registry-data",
            &tmp.join("registry-data").to_string_lossy(),
        )
        .replace(
            "/tmp/fresh-runner",
            &tmp.join("fresh-runner").to_string_lossy(),
        );
    let script = format!("set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    run(Command::new("bash")
        .args(["-c", &script])
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "0")
        .env_remove("GITHUB_EVENT_NAME"))
}

#[test]
fn the_readmes_build_and_push_commands_work_as_written() {
    require("skopeo");
    require("docker-registry");
    let blocks = sh_blocks();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("checkout");
    checkout(&cwd);

    // "Two commands", the first: build the bundled monorepo into out/.
    let build = blocks
        .iter()
        .flat_map(|b| b.lines())
        .find(|l| l.starts_with("cargo run --release -- build"))
        .expect("the README's build command");
    run_block(build, &cwd, tmp.path(), 0);
    // What the README says to run next reads it.
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "oci:out/catalog:latest"])
        .current_dir(&cwd));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{raw}");

    // The push block, as written: registry, push, inspect.
    let push = blocks
        .iter()
        .find(|b| b.contains("docker-registry serve") && b.contains("-- push"))
        .expect("the README's push block");
    // With the supply-chain block after it, on the same registry: sign, then verify.
    let supply = blocks
        .iter()
        .find(|b| b.contains("--sign-key") && b.contains("-- verify"))
        .expect("the README's signing block");
    // And the fresh runner of the registry layer cache's section.
    let fresh = blocks
        .iter()
        .find(|b| b.contains("--cache-write") && b.contains("/tmp/fresh-runner"))
        .expect("the README's fresh-runner block");
    // And the promotion after it.
    let promote = blocks
        .iter()
        .find(|b| b.contains("-- tag "))
        .expect("the README's tag block");
    // And the listing.
    let listing = blocks
        .iter()
        .find(|b| b.contains("-- images "))
        .expect("the README's images block");
    // A marker line between what push printed and what tag prints.
    let blocks = format!("{push}\n{supply}\n{fresh}\necho ::promote::\n{promote}\n{listing}");
    let out = run_block(&blocks, &cwd, tmp.path(), free_port());
    let report = std::fs::read(tmp.path().join("fresh-runner/report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    for s in report.as_array().unwrap() {
        let layers = s["layers"].as_array().unwrap();
        assert!(!layers.is_empty(), "{s}");
        for l in layers {
            assert_eq!(l["cache"], "registry", "{}: {l}", s["service"]);
        }
    }
    assert_eq!(
        out.matches(": verified").count(),
        3,
        "index and two platforms: {out}"
    );
    assert!(!out.contains("nothing to build or push"), "{out}");
    // `tag` prints the reference of the image `push` pushed, alone on its line.
    let pushed = out
        .lines()
        .find_map(|l| l.strip_prefix("catalog pushed: "))
        .and_then(|l| l.split(' ').next())
        .expect("push's summary line");
    let (_, after) = out.split_once("::promote::\n").expect("the marker");
    // (The registry's access log shares the output: the reference is one of the lines.)
    assert!(after.lines().any(|l| l == pushed), "{after}");
    // `images` lists the promoted image with its tags.
    let listed = out
        .lines()
        .find(|l| l.contains(&pushed.rsplit('@').next().unwrap()[7..19]) && l.contains("prod"))
        .unwrap_or_else(|| panic!("images lists the promoted image: {out}"));
    assert!(
        listed.contains("amd64") && listed.contains("sbom"),
        "{listed}"
    );
    let from = out.find('{').expect("skopeo inspect output");
    let inspected: serde_json::Value = serde_json::Deserializer::from_str(&out[from..])
        .into_iter()
        .next()
        .expect("skopeo inspect's JSON")
        .unwrap();
    assert!(
        inspected["Digest"].as_str().unwrap().starts_with("sha256:"),
        "{out}"
    );
    assert_eq!(
        inspected["Name"].as_str().unwrap().rsplit('/').next(),
        Some("retail-store-catalog")
    );
}

//! Helpers shared by the integration tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run the ocibuild binary with `args` in `cwd`.
pub fn ocibuild(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .expect("running ocibuild")
}

/// `ocibuild push ARGS` in `cwd` with Docker's config read from `docker_cfg`.
pub fn push(cwd: &Path, docker_cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .arg("push")
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "0")
        .env("DOCKER_CONFIG", docker_cfg)
        .output()
        .expect("running ocibuild push")
}

/// Stdout of a successful run, or a panic showing stderr.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Stderr of a run refused as a usage error (exit code 2, no panic, an `error:` line).
pub fn refused(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit code 2, got {}:\nstdout: {}\nstderr: {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.lines().any(|l| l.starts_with("error")), "{err}");
    err
}

/// Stderr of a failed run (exit code 1, no panic).
pub fn fails(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1, got {}:\nstdout: {}\nstderr: {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    err
}

/// Make sure an external tool is there; the test command installs them.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run the tests with scripts/test.sh, which installs it"
    );
}

/// Run an external command, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copy a tree (files, dirs, symlinks), keeping modes.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
    let mode = fs::metadata(from).unwrap().permissions().mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).unwrap();
}

/// A fresh copy of the retail-store fixture in a temp dir; returns (guard, project dir).
pub fn retail_store() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("retail-store");
    copy_tree(&repo().join("fixtures/retail-store"), &dir);
    (t, dir)
}

/// Replace the catalog placeholders with real static binaries for amd64 and arm64.
pub fn compile_catalog(project: &Path) {
    require("cc");
    require("aarch64-linux-gnu-gcc");
    let src = project.join("src/catalog/cmd/main.c");
    for (arch, cc) in [("amd64", "cc"), ("arm64", "aarch64-linux-gnu-gcc")] {
        let out = project.join(format!("src/catalog/dist/linux-{arch}/catalog"));
        fs::remove_file(&out).unwrap();
        run(Command::new(cc)
            .args(["-static", "-Os", "-o"])
            .arg(&out)
            .arg(&src));
    }
}

/// Run the catalog program `bin` (built for `arch`: amd64 natively, arm64 under qemu) with
/// `arg`; returns what it printed.
pub fn run_catalog(bin: &Path, arch: &str, arg: &str) -> String {
    let mut cmd = if arch == "amd64" {
        Command::new(bin)
    } else {
        require("qemu-aarch64-static");
        let mut c = Command::new("qemu-aarch64-static");
        c.arg(bin);
        c
    };
    run(cmd.arg(arg))
}

/// Every file name under `dir` (relative), sorted.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                go(base, &p, out);
            }
        }
    }
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// `sha256:<hex>` of some bytes (or text).
pub fn sha256_hex(b: impl AsRef<[u8]>) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(b.as_ref()))
}

/// The fixture base image's layout, relative to the repository.
pub const BASE_LAYOUT: &str = "fixtures/retail-store/base-images/static";

/// Copy the fixture base image (both platforms) into `dest` (`host/repo:tag`) with skopeo.
pub fn push_base(dest: &str, extra: &[&str]) {
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:v1", repo().join(BASE_LAYOUT).display()))
        .arg(format!("docker://{dest}")));
}

/// The layer digests of the fixture base (every platform).
pub fn base_layers() -> Vec<String> {
    let dir = repo().join(BASE_LAYOUT);
    let blob = |d: &str| -> serde_json::Value {
        let hex = d.trim_start_matches("sha256:");
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let index = blob(top["manifests"][0]["digest"].as_str().unwrap());
    let mut out = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        for l in blob(m["digest"].as_str().unwrap())["layers"]
            .as_array()
            .unwrap()
        {
            out.push(l["digest"].as_str().unwrap().to_string());
        }
    }
    out.sort();
    out.dedup();
    assert!(!out.is_empty());
    out
}

/// Point the project's default base (and the catalog's) at `default` / `catalog`.
pub fn set_bases(project: &Path, default: &str, catalog: &str) {
    let path = project.join("ocibuild.toml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(
            "base = \"oci:base-images/static\"\n",
            &format!("base = \"{default}\"\n"),
        )
        .replace(
            "base = \"oci:base-images/static:v1\"\n",
            &format!("base = \"{catalog}\"\n"),
        );
    assert!(text.contains(default), "default base replaced");
    fs::write(path, text).unwrap();
}

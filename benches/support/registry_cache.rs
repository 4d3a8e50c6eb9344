//! The registry layer cache scenario of the push benchmark: a fresh CI runner (empty local
//! cache, empty output directory) pushing a monorepo whose previous state the registry holds.
//!
//! Five services, two platforms: per service a 45 MiB dependency layer and a 2 MiB application
//! layer of its own (about 235 MiB of distinct blobs). Round one pushes everything with
//! `--cache-write`. Round two changes one service's application layer (a code change) and runs
//! on a fresh runner three ways: with the registry cache, with no cache at all (everything
//! compressed again, the behaviour before the registry cache), and with the warm local cache of
//! round one (the ideal a fresh runner can approach). Then round two with nothing changed.
//! Each figure is the median of `runs`; every run changes the application layer anew, so each
//! one pushes a new image of that service.

use super::{ok, random_bytes};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SERVICES: usize = 5;
const MIB: usize = 1 << 20;

fn write_files(dir: &Path, seed: u64, total: usize, files: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        let name = dir.join(format!("part{i:03}.bin"));
        fs::write(name, random_bytes(seed * 1000 + i as u64, total / files)).unwrap();
    }
}

/// The generated monorepo under `root`.
fn monorepo(root: &Path) {
    let mut cfg = String::from("[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n");
    for s in 0..SERVICES {
        write_files(
            &root.join(format!("svc{s}/deps")),
            500 + s as u64,
            45 * MIB,
            45,
        );
        write_files(
            &root.join(format!("svc{s}/app")),
            600 + s as u64,
            2 * MIB,
            4,
        );
        cfg.push_str(&format!(
            "[services.svc{s}]\nrepository = \"svc{s}\"\n\
             [[services.svc{s}.layers]]\nsource = \"svc{s}/deps\"\ntarget = \"/app/lib\"\n\
             [[services.svc{s}.layers]]\nsource = \"svc{s}/app\"\ntarget = \"/app\"\n"
        ));
    }
    fs::write(root.join("ocibuild.toml"), cfg).unwrap();
}

/// A code change: service 0's application layer gets new content (`seed`).
fn change(root: &Path, seed: u64) {
    let file = root.join("svc0/app/part000.bin");
    fs::write(file, random_bytes(seed, MIB / 2)).unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Run the scenario against `host` (the 30 ms proxy); `requests` counts what it has seen.
pub fn run(t: &Path, bin: &str, host: &str, runs: usize, requests: &dyn Fn() -> usize) {
    let root = t.join("cache-mono");
    monorepo(&root);
    let registry = format!("{host}/rc");
    let push = |cache: &Path, out: &Path, extra: &[&str]| {
        let _ = fs::remove_dir_all(out);
        let s = Instant::now();
        ok(Command::new(bin)
            .current_dir(&root)
            .args(["push", "-q", "--all", "--sbom", "none", "--no-provenance"])
            .args(["--registry", &registry, "--jobs", "8", "--cache-dir"])
            .arg(cache)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("DOCKER_CONFIG", t));
        s.elapsed()
    };
    let warm = t.join("rc-warm-cache");
    let first = push(&warm, &t.join("rc-out-1"), &["--cache-write"]);
    eprintln!("registry cache, round one (cold, --cache-write): {first:?}");
    let original = fs::read(root.join("svc0/app/part000.bin")).unwrap();
    let fresh = |n: &str| {
        let dir = t.join(format!("rc-fresh-{n}"));
        let _ = fs::remove_dir_all(&dir);
        dir
    };
    let (mut with, mut without, mut local) = (Vec::new(), Vec::new(), Vec::new());
    let mut asked = 0;
    for r in 0..runs {
        change(&root, 9000 + 3 * r as u64);
        let before = requests();
        with.push(push(&fresh("cache"), &fresh("out"), &[]));
        asked = requests() - before;
        change(&root, 9001 + 3 * r as u64);
        without.push(push(&fresh("cache"), &fresh("out"), &["--no-cache"]));
        change(&root, 9002 + 3 * r as u64);
        local.push(push(&warm, &fresh("out"), &[]));
    }
    fs::write(root.join("svc0/app/part000.bin"), &original).unwrap();
    let mut unchanged = Vec::new();
    let mut asked_unchanged = 0;
    for _ in 0..runs {
        let before = requests();
        unchanged.push(push(&fresh("cache"), &fresh("out"), &[]));
        asked_unchanged = requests() - before;
    }
    eprintln!("round two: registry cache {with:?}; no cache {without:?}; warm local {local:?}; nothing changed {unchanged:?}");
    let (w, n, l, u) = (
        median(with).as_secs_f64(),
        median(without).as_secs_f64(),
        median(local).as_secs_f64(),
        median(unchanged).as_secs_f64(),
    );
    println!();
    println!("fresh runner, registry layer cache: 5 services x 2 platforms, per service 45 MiB of dependencies + 2 MiB of app, one service's app changed, 30 ms per request; median of {runs}");
    println!("| round two | time | this / registry cache | requests |");
    println!("|---|---|---|---|");
    println!("| registry cache (fresh runner) | {w:.2} s | 1.00 | {asked} |");
    println!(
        "| no cache (`--no-cache`, everything compressed) | {n:.2} s | {:.2} | |",
        n / w
    );
    println!(
        "| warm local cache (the ideal) | {l:.2} s | {:.2} | |",
        l / w
    );
    println!(
        "| registry cache, nothing changed | {u:.2} s | {:.2} | {asked_unchanged} |",
        u / w
    );
    println!();
    println!("registry cache against none: {:.2}x faster (target at least 4x); against the warm local cache: {:.2}x its time (target at most 1.3x)", n / w, w / l);
}

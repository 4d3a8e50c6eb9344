//! Layer build compared, in one run on the same generated trees, with the tools people would
//! use instead: the shell pipeline `tar | tee >(sha256sum) | pigz -6 -p2 | sha256sum`,
//! `umoci insert` (Go, parallel gzip), and `igzip` (ISA-L) for the fast level. Prints a
//! Markdown table of times, throughputs, ratios and sizes (BENCHMARKS.md keeps them).
//!
//! Trees (generated here, deterministic, not committed): "jvm", about 550 MB in a few hundred
//! files of JDK-like content (binary with repeated fragments, about 2.5x compressible), and
//! "node", 20,000 small text files. `OCIBUILD_BENCH_MB` changes the jvm tree's size.
//! Run: `cargo bench --bench compare` (needs pigz, umoci, isal's igzip: scripts/test.sh).

#[path = "support/mod.rs"]
mod support;
use support::{have, jvm_content, jvm_tree, node_tree, Rng};

use ocibuild::config::{LayerConfig, SourceTemplate};
use ocibuild::layer::compress::Codec;
use ocibuild::layer::LayerOptions;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn sh(script: &str) {
    let st = Command::new("bash").args(["-c", script]).status().unwrap();
    assert!(st.success(), "{script}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(mut f: impl FnMut() -> u64) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..RUNS {
        let s = Instant::now();
        size = f();
        times.push(s.elapsed());
    }
    (median(times), size)
}

/// Peak RSS of `ocibuild build` on a single layer of `gib` GiB (needs /usr/bin/time).
fn peak_rss(t: &Path, gib: usize) {
    let dir = t.join("big");
    let mut rng = Rng(7);
    let vocab: Vec<Vec<u8>> = (0..4096)
        .map(|_| (0..24).map(|_| rng.next() as u8).collect())
        .collect();
    for i in 0..gib * 8 {
        let p = dir.join(format!("part{i:03}.bin"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, jvm_content(&mut rng, &vocab, 128 << 20)).unwrap();
    }
    fs::write(
        t.join("ocibuild.toml"),
        format!("[build]\nplatforms = [\"linux/amd64\"]\n[services.big]\nrepository = \"big\"\n[[services.big.layers]]\nsource = \"{}\"\ntarget = \"/data\"\n", dir.display()),
    )
    .unwrap();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_ocibuild"))
        .args(["build", "--no-cache", "--out"])
        .arg(t.join("big-out"))
        .current_dir(t)
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    println!(
        "\npeak RSS building a {gib} GiB layer: {:.0} MiB",
        kib as f64 / 1024.0
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(gib) = std::env::var("OCIBUILD_BENCH_RSS_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let t = tempfile::tempdir().unwrap();
        peak_rss(t.path(), gib);
        return;
    }
    let mb: usize = std::env::var("OCIBUILD_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(550);
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    eprintln!("generating trees ...");
    let jvm = t.path().join("jvm");
    let jvm_bytes = jvm_tree(&jvm, mb);
    let node = t.path().join("node");
    let node_bytes = node_tree(&node, 20_000);
    let cfg = LayerConfig::new(SourceTemplate::try_from("x".to_string()).unwrap(), "/app");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("| tree | tool | time | MB/s | x pigz pipeline | size | size vs pigz -6 |");
    println!("|---|---|---|---|---|---|---|");
    for (name, dir, bytes) in [("jvm", &jvm, jvm_bytes), ("node", &node, node_bytes)] {
        sh(&format!("tar -cf - -C '{}' . > /dev/null", dir.display())); // warm the page cache
        let mut rows: Vec<(String, Duration, u64)> = Vec::new();
        if have("pigz") {
            let f = out.join("pigz.tgz");
            let r = time(|| {
                sh(&format!("tar -cf - -C '{}' . | tee >(sha256sum >/dev/null) | pigz -6 -p2 | tee '{}' | sha256sum >/dev/null", dir.display(), f.display()));
                fs::metadata(&f).unwrap().len()
            });
            rows.push(("tar | sha256sum | pigz -6 -p2 | sha256sum".into(), r.0, r.1));
        }
        let mut ours = |label: &str, codec: Codec, threads: usize| {
            let r = time(|| {
                let (blob, tmp) =
                    ocibuild::layer::build(dir, &cfg, 0, &out, &LayerOptions { codec, threads })
                        .unwrap();
                drop(tmp);
                blob.size
            });
            rows.push((label.to_string(), r.0, r.1));
        };
        for level in [6, 7, 8] {
            ours(
                &format!("ocibuild, gzip {level}, {cores} threads"),
                Codec::Gzip(level),
                cores,
            );
        }
        ours("ocibuild, gzip 6, 1 thread", Codec::Gzip(6), 1);
        ours(
            &format!("ocibuild --fast (gzip 1), {cores} threads"),
            Codec::Gzip(1),
            cores,
        );
        ours("ocibuild --fast (gzip 1), 1 thread", Codec::Gzip(1), 1);
        ours(
            &format!("ocibuild zstd 3, {cores} threads"),
            Codec::Zstd(3),
            cores,
        );
        if have("umoci") {
            let r = time(|| {
                let l = out.join("umoci");
                let _ = fs::remove_dir_all(&l);
                sh(&format!("umoci init --layout '{0}' && umoci new --image '{0}:x' && umoci insert --image '{0}:x' '{1}' /app", l.display(), dir.display()));
                // the biggest blob is the layer
                fs::read_dir(l.join("blobs/sha256"))
                    .unwrap()
                    .map(|e| e.unwrap().metadata().unwrap().len())
                    .max()
                    .unwrap()
            });
            rows.push(("umoci insert".into(), r.0, r.1));
        }
        if have("igzip") {
            let f = out.join("igzip.gz");
            let r = time(|| {
                sh(&format!(
                    "tar -cf - -C '{}' . | igzip -1 -c > '{}'",
                    dir.display(),
                    f.display()
                ));
                fs::metadata(&f).unwrap().len()
            });
            rows.push(("tar | igzip -1 (1 thread)".into(), r.0, r.1));
            let r = time(|| {
                sh(&format!(
                    "tar -cf - -C '{}' . | igzip -1 -T {cores} -c > '{}'",
                    dir.display(),
                    f.display()
                ));
                fs::metadata(&f).unwrap().len()
            });
            rows.push((format!("tar | igzip -1 -T {cores}"), r.0, r.1));
        }
        // The whole `ocibuild build` (CLI, layout written), cold (--no-cache) and warm (cache hit).
        let project = t.path().join(format!("proj-{name}"));
        fs::create_dir_all(&project).unwrap();
        fs::write(
            project.join("ocibuild.toml"),
            format!(
                "[build]\nplatforms = [\"linux/amd64\"]\n[services.app]\nrepository = \"app\"\n[[services.app.layers]]\nsource = \"{}\"\ntarget = \"/app\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let cache = t.path().join(format!("cache-{name}"));
        let cli = |extra: &[&str]| {
            let st = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
                .args(["build", "--out"])
                .arg(out.join(format!("cli-{name}")))
                .args(["--cache-dir", cache.to_str().unwrap()])
                .args(extra)
                .current_dir(&project)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        };
        let (cold, _) = time(|| {
            cli(&["--no-cache"]);
            0
        });
        cli(&[]); // fill the cache
        let (warm, _) = time(|| {
            cli(&[]);
            0
        });
        println!(
            "| {name} | `ocibuild build` cold (--no-cache) / warm (cache hit) | {:.2} s / {:.3} s | | warm = {:.1}% of cold | | |",
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            warm.as_secs_f64() / cold.as_secs_f64() * 100.0
        );
        let pigz = rows
            .iter()
            .find(|r| r.0.contains("pigz"))
            .map(|r| (r.1, r.2));
        for (label, d, size) in &rows {
            let mbs = bytes as f64 / 1e6 / d.as_secs_f64();
            let (x, sz) = match pigz {
                Some((pd, ps)) => (
                    format!("{:.2}x", pd.as_secs_f64() / d.as_secs_f64()),
                    format!("{:+.1}%", (*size as f64 / ps as f64 - 1.0) * 100.0),
                ),
                None => ("-".into(), "-".into()),
            };
            let label = label.replace('|', "\\|");
            println!(
                "| {name} ({:.0} MB) | {label} | {:.2} s | {mbs:.0} | {x} | {:.1} MB | {sz} |",
                bytes as f64 / 1e6,
                d.as_secs_f64(),
                *size as f64 / 1e6
            );
        }
    }
}

//! Where the gzip size gap against `pigz -6` comes from: the exact uncompressed tar of a layer
//! (ocibuild's own, taken back out of its blob) compressed by libdeflate at levels 6 and 7 in
//! independent chunks of 1, 4 and 16 MiB and as one stream, against zlib level 6 as one stream
//! (Python's zlib), GNU `gzip -6`, `pigz -6` (128 KiB blocks, each primed with the previous
//! 32 KiB) and `pigz -6 -i -b 1024` (zlib in independent 1 MiB blocks, ocibuild's scheme).
//! Times are one thread (but for the rows of the whole layer build: walk, tar, hash and compress
//! on all cores), the median of `OCIBUILD_GAP_RUNS` (default 3) rounds that run every row once;
//! the external tools' include starting the process and reading the tar from the page cache.
//!
//! Trees as in `benches/compare.rs`. `OCIBUILD_GAP_TREES` (default `node,jvm`) picks them,
//! `OCIBUILD_BENCH_MB` sizes jvm, `OCIBUILD_GAP_EXTERNAL=0` leaves out the external tools.
//! Run: `cargo bench --bench gzip_gap` or `scripts/gzip-gap.sh` (installs the tools).

#[path = "support/mod.rs"]
mod support;
use support::{have, jvm_tree, node_tree};

use ocibuild::config::{LayerConfig, SourceTemplate};
use ocibuild::layer::compress::{compress_chunk, Codec, CHUNK};
use ocibuild::layer::LayerOptions;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Compressed size of `tar` cut into independent `chunk`-byte gzip members, one thread.
fn chunked(tar: &[u8], level: u32, chunk: usize) -> u64 {
    tar.chunks(chunk)
        .map(|c| compress_chunk(Codec::Gzip(level), c).unwrap().len() as u64)
        .sum()
}

/// Bytes a shell command prints on stdout (its output is piped to `wc -c`).
fn shell_size(script: &str) -> u64 {
    let out = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {script} | wc -c")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn cfg() -> LayerConfig {
    LayerConfig::new(SourceTemplate::try_from("x".to_string()).unwrap(), "/app")
}

/// The uncompressed tar of the default layer built from `dir`, and that layer's blob size.
fn layer_tar(dir: &Path, tmp: &Path) -> (Vec<u8>, u64) {
    let (blob, file) =
        ocibuild::layer::build(dir, &cfg(), 0, tmp, &LayerOptions::default()).unwrap();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(file.path()).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    (tar, blob.size)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = env_or("OCIBUILD_GAP_RUNS", 3);
    let mb: usize = env_or("OCIBUILD_BENCH_MB", 550);
    let trees: String = env_or("OCIBUILD_GAP_TREES", "node,jvm".to_string());
    let skip_external = std::env::var("OCIBUILD_GAP_EXTERNAL").is_ok_and(|v| v == "0");
    let t = tempfile::tempdir().unwrap();
    println!("| tree | compressor | history | size | vs pigz -6 | vs same level, one stream | time | time / first row |");
    println!("|---|---|---|---|---|---|---|---|");
    for name in trees.split(',') {
        let dir = t.path().join(name);
        eprintln!("generating {name} ...");
        match name {
            "node" => node_tree(&dir, 20_000),
            "jvm" => jvm_tree(&dir, mb),
            other => panic!("unknown tree {other}"),
        };
        let (tar, blob_size) = layer_tar(&dir, t.path());
        // the layer is its tar in CHUNK-byte members: the same bytes whatever the thread count
        assert_eq!(chunked(&tar, 6, CHUNK), blob_size);
        let tar_path = t.path().join(format!("{name}.tar"));
        std::fs::write(&tar_path, &tar).unwrap();
        let tp = tar_path.display();
        eprintln!("{name}: tar of {} bytes", tar.len());

        // (compressor, history, level for the "one stream" column, the run giving the size)
        type Run<'a> = Box<dyn FnMut() -> u64 + 'a>;
        let mut configs: Vec<(String, String, Option<u32>, Run)> = Vec::new();
        let tar = &tar;
        for level in [6, 7] {
            for (label, chunk) in [
                ("independent 1 MiB chunks", MIB),
                ("independent 4 MiB chunks", 4 * MIB),
                ("independent 16 MiB chunks", 16 * MIB),
                ("one stream", tar.len().max(1)),
            ] {
                configs.push((
                    format!("libdeflate {level}"),
                    label.into(),
                    Some(level),
                    Box::new(move || chunked(tar, level, chunk)),
                ));
            }
        }
        let threads = LayerOptions::default().threads;
        for level in [6, 7] {
            let dir = &dir;
            let tmp = t.path();
            configs.push((
                format!("ocibuild layer build, gzip {level}, {threads} threads (walk, tar, hash)"),
                format!("independent {} MiB chunks", CHUNK / MIB),
                None,
                Box::new(move || {
                    let opts = LayerOptions {
                        codec: Codec::Gzip(level),
                        threads,
                    };
                    ocibuild::layer::build(dir, &cfg(), 0, tmp, &opts)
                        .unwrap()
                        .0
                        .size
                }),
            ));
        }
        let py = format!(
            "python3 -c 'import sys, zlib; c = zlib.compressobj(6, zlib.DEFLATED, 31); \
             sys.stdout.buffer.write(c.compress(open(\"{tp}\", \"rb\").read()) + c.flush())'"
        );
        let mut external = vec![];
        let tools = [
            ("zlib 6 (Python)", "one stream", py),
            ("GNU gzip -6", "one stream", format!("gzip -6 -c '{tp}'")),
        ];
        if !skip_external {
            external.extend(tools);
        }
        if have("pigz") && !skip_external {
            external.push((
                "pigz -6 -p1",
                "128 KiB blocks, 32 KiB carried over",
                format!("pigz -6 -p1 -c '{tp}'"),
            ));
            external.push((
                "pigz -6 -i -b 1024 -p1",
                "independent 1 MiB blocks",
                format!("pigz -6 -i -b 1024 -p1 -c '{tp}'"),
            ));
        }
        if have("libdeflate-gzip") && !skip_external {
            external.push((
                "libdeflate-gzip -6 (Debian's build)",
                "one stream",
                format!("libdeflate-gzip -6 -c '{tp}'"),
            ));
        }
        for (label, history, script) in external {
            configs.push((
                label.into(),
                history.into(),
                None,
                Box::new(move || shell_size(&script)),
            ));
        }
        // Rounds, every configuration once per round, so that drift in the machine's load
        // spreads over all of them; one untimed round first (page cache, allocator).
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
        let mut sizes = vec![0u64; configs.len()];
        for round in 0..=runs {
            for (i, c) in configs.iter_mut().enumerate() {
                let s = Instant::now();
                sizes[i] = (c.3)();
                if round > 0 {
                    times[i].push(s.elapsed());
                }
            }
        }
        let rows: Vec<(String, String, Option<u32>, Duration, u64)> = configs
            .into_iter()
            .zip(times)
            .zip(sizes)
            .map(|((c, mut t), size)| {
                t.sort();
                (c.0, c.1, c.2, t[t.len() / 2], size)
            })
            .collect();

        let pigz = rows
            .iter()
            .find(|r| r.0.starts_with("pigz -6 -p1"))
            .map(|r| r.4);
        let default_time = rows[0].3;
        let one_stream = |level: u32| {
            rows.iter()
                .find(|r| r.2 == Some(level) && r.1 == "one stream")
                .map(|r| r.4)
                .unwrap()
        };
        let pct = |a: u64, b: u64| format!("{:+.2}%", (a as f64 / b as f64 - 1.0) * 100.0);
        for (label, history, level, d, size) in &rows {
            println!(
                "| {name} ({:.1} MB tar) | {label} | {history} | {size} | {} | {} | {:.2} s | {:.2}x |",
                tar.len() as f64 / 1e6,
                pigz.map_or("-".into(), |p| pct(*size, p)),
                level.map_or("-".into(), |l| pct(*size, one_stream(l))),
                d.as_secs_f64(),
                d.as_secs_f64() / default_time.as_secs_f64(),
            );
        }
    }
}

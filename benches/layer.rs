//! Benchmarks of the hot path: sha256 alone, gzip alone, and the whole layer pipeline (walk +
//! tar + sha256 + gzip + sha256 + write) on generated trees, side by side with the shell
//! pipeline people would use instead (`tar | tee >(sha256sum) | pigz -6 -p2 | sha256sum`),
//! measured in the same run. Trees are generated reproducibly here, never committed.
//! Set OCIBUILD_BENCH_MB to change the size of the "mixed" tree (default 64). The wider
//! side-by-side comparison (umoci, igzip, sizes, the cache) is `benches/compare.rs`.

#[path = "support/mod.rs"]
mod support;
use support::{have, Rng};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::write::GzEncoder;
use flate2::Compression;
use ocibuild::config::{LayerConfig, SourceTemplate};
use ocibuild::layer::compress::{compress_chunk, Codec, CHUNK};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Deterministic pseudo-random bytes (xorshift), half of them text-like so gzip has work.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::seeded(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let x = rng.next();
        if seed % 2 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            let word = b"class loader jar module package import static final void ";
            let i = (x % 50) as usize;
            out.extend_from_slice(&word[i..i + 8]);
        }
    }
    out.truncate(len);
    out
}

/// A "mixed" tree like a JDK: a few hundred files of binary and text content.
fn mixed_tree(dir: &Path, total_mb: usize) -> u64 {
    let files = 300;
    let per = total_mb * (1 << 20) / files;
    let mut total = 0;
    for i in 0..files {
        let p = dir.join(format!("lib/mod{:02}/file{i:04}.bin", i % 20));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let size = per / 2 + (i * 7919) % per;
        fs::write(&p, content(i as u64, size)).unwrap();
        total += size as u64;
    }
    total
}

/// A "node" tree: many small files.
fn small_files_tree(dir: &Path, files: usize) -> u64 {
    let mut total = 0;
    for i in 0..files {
        let p = dir.join(format!("node_modules/pkg{:03}/lib/f{i}.js", i % 400));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let size = 200 + (i * 131) % 3000;
        fs::write(&p, content(2 * i as u64 + 1, size)).unwrap();
        total += size as u64;
    }
    total
}

fn layer_cfg() -> LayerConfig {
    LayerConfig::new(SourceTemplate::try_from("x".to_string()).unwrap(), "/app")
}

fn primitives(c: &mut Criterion) {
    let data = content(2, 16 << 20);
    let mut g = c.benchmark_group("primitives");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha256", |b| b.iter(|| Sha256::digest(&data)));
    // One core, 1 MiB chunks, as the layer pipeline compresses them.
    for level in [1u32, 6, 9] {
        g.bench_with_input(
            BenchmarkId::new("libdeflate-gzip", level),
            &level,
            |b, &level| {
                b.iter(|| {
                    data.chunks(CHUNK)
                        .map(|c| compress_chunk(Codec::Gzip(level), c).unwrap().len())
                        .sum::<usize>()
                })
            },
        );
    }
    g.bench_function("zstd/3", |b| {
        b.iter(|| {
            data.chunks(CHUNK)
                .map(|c| compress_chunk(Codec::Zstd(3), c).unwrap().len())
                .sum::<usize>()
        })
    });
    // flate2's default backend, what the first version used.
    g.bench_function("flate2-gzip/6", |b| {
        b.iter(|| {
            let mut e = GzEncoder::new(std::io::sink(), Compression::new(6));
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let mb: usize = std::env::var("OCIBUILD_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    let trees = [
        ("mixed", {
            let d = t.path().join("mixed");
            let n = mixed_tree(&d, mb);
            (d, n)
        }),
        ("small-files", {
            let d = t.path().join("small");
            let n = small_files_tree(&d, 5000);
            (d, n)
        }),
    ];
    let cfg = layer_cfg();
    let pigz = have("pigz");
    if !pigz {
        eprintln!(
            "pigz not installed: the shell baseline is skipped (scripts/test.sh installs it)"
        );
    }
    let mut g = c.benchmark_group("layer");
    g.sample_size(10);
    for (name, (dir, bytes)) in &trees {
        g.throughput(Throughput::Bytes(*bytes));
        g.bench_with_input(BenchmarkId::new("ocibuild", name), dir, |b, dir| {
            b.iter(|| {
                let (blob, tmp) = ocibuild::layer::build(
                    dir,
                    &cfg,
                    0,
                    &out,
                    &ocibuild::layer::LayerOptions::default(),
                )
                .unwrap();
                drop(tmp);
                blob
            })
        });
        if pigz {
            let script = format!(
                "tar -cf - -C '{}' . | tee >(sha256sum >/dev/null) | pigz -6 -p2 | tee '{}/pigz.tgz' | sha256sum >/dev/null",
                dir.display(),
                out.display()
            );
            g.bench_with_input(
                BenchmarkId::new("tar|sha256|pigz-6-p2|sha256", name),
                &script,
                |b, s| {
                    b.iter(|| {
                        let st = Command::new("bash").args(["-c", s]).status().unwrap();
                        assert!(st.success());
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, primitives, pipeline);
criterion_main!(benches);

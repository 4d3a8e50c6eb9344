//! Pieces the bench targets share (included with `#[path]`; not a bench target itself).

#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Command;

/// A xorshift64 generator: fast, deterministic test data.
pub struct Rng(pub u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `len` pseudo-random (incompressible) bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::seeded(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether a command is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The ocibuild binary the benches run: this build's, or the one `OCIBUILD_BENCH_BIN` names
/// (to compare with another build, e.g. the previous commit's, in the same run).
pub fn ocibuild_bin() -> String {
    std::env::var("OCIBUILD_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ocibuild").to_string())
}

/// JDK-like bytes: fragments from a shared vocabulary (class names, byte code idioms) and
/// fresh random runs, mixed so that gzip -6 keeps about 52% of them, as it does of a real
/// JDK 17 tree here (274.6 MB -> 143.0 MB with pigz -6).
pub fn jvm_content(rng: &mut Rng, vocab: &[Vec<u8>], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let r = rng.next();
        if r % 10 < 6 {
            // skewed choice: low indexes far more often
            let i = ((r >> 8) % vocab.len() as u64) as usize;
            let j = ((r >> 24) % (i as u64 + 1)) as usize;
            out.extend_from_slice(&vocab[j]);
        } else {
            for _ in 0..2 {
                out.extend_from_slice(&rng.next().to_le_bytes());
            }
        }
    }
    out.truncate(len);
    out
}

/// The "jvm" tree under `dir`: 320 files of [`jvm_content`], `total_mb` MiB in all (four
/// big files of an eighth each, like `lib/modules`). Returns the bytes written.
pub fn jvm_tree(dir: &Path, total_mb: usize) -> u64 {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let vocab: Vec<Vec<u8>> = (0..1024)
        .map(|_| {
            let n = 4 + (rng.next() % 21) as usize;
            (0..n).map(|_| rng.next() as u8).collect()
        })
        .collect();
    let files = 320;
    let total = total_mb << 20;
    let mut written = 0u64;
    for i in 0..files {
        // a few big files (like lib/modules), many small ones
        let size = if i < 4 {
            total / 8
        } else {
            (total / 2) / (files - 4)
        };
        let p = dir.join(format!("lib/m{:02}/f{i:03}.bin", i % 24));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, jvm_content(&mut rng, &vocab, size)).unwrap();
        written += size as u64;
    }
    written
}

/// The "node" tree under `dir`: `files` JavaScript-like text files of 300 B to 4.3 KB drawn
/// from a 20-word vocabulary (very repetitive). Returns the bytes written.
pub fn node_tree(dir: &Path, files: usize) -> u64 {
    let words = [
        "function",
        "return",
        "const",
        "require",
        "module",
        "exports",
        "this",
        "value",
        "=>",
        "{",
        "}",
        "(",
        ")",
        ";",
        "if",
        "else",
        "length",
        "prototype",
        "undefined",
        "null",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut total = 0u64;
    for i in 0..files {
        let p = dir.join(format!("node_modules/pkg{:03}/lib/f{i}.js", i % 500));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let n = 300 + (rng.next() % 4000) as usize;
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(words[(rng.next() % words.len() as u64) as usize]);
            s.push(if rng.next() % 9 == 0 { '\n' } else { ' ' });
        }
        fs::write(&p, &s).unwrap();
        total += s.len() as u64;
    }
    total
}

//! Pieces the bench targets share (included with `#[path]`; not a bench target itself).

#![allow(dead_code)]

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

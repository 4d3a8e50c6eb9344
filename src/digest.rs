//! Content addresses: a validated sha256 [`Digest`] of a stored blob, the [`DiffId`] of an
//! uncompressed layer, and writers that hash and count the bytes passing through them.
//!
//! Invariants: a `Digest`/`DiffId` always holds `sha256:` followed by 64 lowercase hex digits.
//! The two are distinct types so a compressed digest can never be recorded as a diff_id (or the
//! reverse) by mistake. `file` opens a blob's file safely (regular files only, never through a
//! symlink, bounded reads). This module imports nothing from the rest of the crate.

pub mod file;

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// The sha256 digest of a blob as stored (for layers: the compressed bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// The sha256 digest of a layer's uncompressed tar stream (`rootfs.diff_ids`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiffId(String);

/// Why a digest string was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
pub struct InvalidDigest(pub String);

fn validate(s: &str) -> Result<(), InvalidDigest> {
    let hex = s
        .strip_prefix("sha256:")
        .ok_or_else(|| InvalidDigest(s.to_string()))?;
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(InvalidDigest(s.to_string()))
    }
}

fn from_hash(hash: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

macro_rules! digest_type {
    ($t:ident) => {
        impl $t {
            /// The digest of `bytes`.
            pub fn of(bytes: &[u8]) -> Self {
                Self(from_hash(&Sha256::digest(bytes)))
            }
            /// The digest whose raw sha256 hash is `hash`.
            pub fn of_hash(hash: [u8; 32]) -> Self {
                Self(from_hash(&hash))
            }
            /// The full form, `sha256:<hex>`.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The 64 hex digits alone (the blob's file name in a layout).
            pub fn hex(&self) -> &str {
                &self.0[7..]
            }
        }
        impl FromStr for $t {
            type Err = InvalidDigest;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                validate(s)?;
                Ok(Self(s.to_string()))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
digest_type!(Digest);
digest_type!(DiffId);

impl Digest {
    /// Our form of an oci-spec digest (refused unless it is sha256).
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Self, InvalidDigest> {
        d.to_string().parse()
    }

    /// The same digest as the oci-spec type used in descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // Cannot fail: the string was validated on construction.
        oci_spec::image::Digest::from_str(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

/// A writer that hashes (and counts) everything written through it, then passes it on.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Give back the inner writer, the hex-less hash and the byte count.
    pub fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.count)
    }
    /// Give back the inner writer with the [`Digest`] and size of what went through.
    pub fn finish_digest(self) -> (W, Digest, u64) {
        let (w, h, n) = self.finish();
        (w, Digest(from_hash(&h)), n)
    }
    /// Give back the inner writer with the [`DiffId`] and size of what went through.
    pub fn finish_diff_id(self) -> (W, DiffId, u64) {
        let (w, h, n) = self.finish();
        (w, DiffId(from_hash(&h)), n)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_is_the_well_known_value() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_rejects_bad_forms() {
        for bad in [
            "",
            "sha256:",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:../../../../etc/passwd000000000000000000000000000000000000000000",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
        let ok = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(ok.parse::<Digest>().unwrap().hex().len(), 64);
    }

    #[test]
    fn hashing_writer_matches_one_shot_hash() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (out, d, n) = w.finish_digest();
        assert_eq!(out, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of(b"hello world"));
    }

    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {

            #[test]
            fn valid_digests_round_trip(hex in "[0-9a-f]{64}") {
                let s = format!("sha256:{hex}");
                let d: Digest = s.parse().unwrap();
                prop_assert_eq!(d.as_str(), s.as_str());
                prop_assert_eq!(d.hex(), hex.as_str());
                prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d.clone());
                prop_assert_eq!(Digest::from_oci(&d.to_oci()).unwrap(), d.clone());
                let diff_id: DiffId = s.parse().unwrap();
                prop_assert_eq!(diff_id.as_str(), s.as_str());
            }

            #[test]
            fn anything_else_is_refused_without_panic(s in any::<String>()) {
                let ok = s.len() == 71
                    && s.starts_with("sha256:")
                    && s[7..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                prop_assert_eq!(s.parse::<Digest>().is_ok(), ok);
                prop_assert_eq!(s.parse::<DiffId>().is_ok(), ok);
            }

            #[test]
            fn near_misses_are_refused(
                alg in "(sha256|sha512|SHA256|sha256 |md5|)",
                sep in "(:|::|@|)",
                hex in "[0-9a-fA-Fg./]{0,70}",
            ) {
                let s = format!("{alg}{sep}{hex}");
                let ok = alg == "sha256" && sep == ":" && hex.len() == 64
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                prop_assert_eq!(s.parse::<Digest>().is_ok(), ok, "{:?}", s);
            }

            #[test]
            fn hashing_counts_and_digests(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let mut w = HashingWriter::new(Vec::new());
                w.write_all(&bytes).unwrap();
                let (_, d, n) = w.finish_digest();
                prop_assert_eq!(n, bytes.len() as u64);
                prop_assert_eq!(d, Digest::of(&bytes));
            }
        }
    }
}

//! Signing in cosign's format: ECDSA P-256 keys (`keys`: PKCS#8, SEC1 and cosign/sigstore
//! encrypted private keys, SPKI public keys), the simple-signing payload and the signature
//! manifest stored under the tag `sha256-<hex>.sig` (`cosign`), verifiable by `cosign verify
//! --key` and by containers/image (skopeo, podman: policy `sigstoreSigned` with
//! `use-sigstore-attachments: true`).
//!
//! Invariants: pure apart from `SigningKey::load` / `VerifyingKey::load`, which read one file
//! with a bound. Signatures are deterministic (RFC 6979): the same key and payload give the same
//! bytes, so re-signing an image changes nothing in the registry. No error, `Debug` output or
//! log line ever holds key material or a password. Imports only `digest` and `spec`; the only
//! module naming `p256`, `scrypt` and `crypto_secretbox`.

pub mod cosign;
mod encrypted;
mod keys;
mod pem;

#[cfg(test)]
mod cosign_tests;
#[cfg(test)]
mod keys_tests;

pub use keys::{SigningKey, VerifyingKey};

/// The largest key file read (keys are a few hundred bytes; the bound keeps a mistaken path,
/// a fifo or a huge file from being read whole).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why a key could not be used, or a payload or signature manifest was refused. `what` names
/// the key file (or "the key given in ..."); no variant holds key material or a password.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key file could not be read.
    #[error("cannot read key file {what}: {error}")]
    Read { what: String, error: std::io::Error },
    /// The key file is larger than any key.
    #[error("key file {what} is larger than {max} bytes: it is not a key; give the path of a PEM key file")]
    TooLarge { what: String, max: u64 },
    /// No PEM block in the file.
    #[error("{what} is not a PEM key file (no -----BEGIN ...----- block): give an ECDSA P-256 key as written by openssl, cosign generate-key-pair or skopeo generate-sigstore-key")]
    NotPem { what: String },
    /// A PEM block that is not the kind of key expected here.
    #[error("{what} holds a PEM block {label:?}: {hint}")]
    UnknownPemType {
        what: String,
        label: String,
        hint: &'static str,
    },
    /// A key of another algorithm or curve.
    #[error("{what} is {found}: ECDSA P-256 only (make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, `cosign generate-key-pair` or `skopeo generate-sigstore-key`)")]
    WrongAlgorithm { what: String, found: String },
    /// The key's encoding is damaged.
    #[error("{what} is not a valid {kind}: {detail}")]
    Malformed {
        what: String,
        kind: &'static str,
        detail: String,
    },
    /// An encrypted key and no password.
    #[error("{what} is an encrypted cosign/sigstore key: set COSIGN_PASSWORD to its password")]
    PasswordNeeded { what: String },
    /// The password does not open the key.
    #[error("{what}: wrong password (check COSIGN_PASSWORD), or the key file is damaged")]
    WrongPassword { what: String },
    /// scrypt parameters beyond what any real key uses.
    #[error("{what}: scrypt parameters N={n}, r={r}, p={p} are beyond the limits (N a power of two up to 2^20, r up to 32, p up to 16, at most 256 MiB of memory): not a key cosign or skopeo wrote; generate a new one")]
    KdfTooCostly {
        what: String,
        n: u64,
        r: u64,
        p: u64,
    },
    /// An encryption scheme other than cosign's.
    #[error("{what} is encrypted with {scheme:?}: only scrypt + nacl/secretbox (cosign, skopeo) is supported; re-encrypt it with `cosign import-key-pair`")]
    UnsupportedEncryption { what: String, scheme: String },
    /// A payload that is not cosign's simple-signing payload.
    #[error("signature payload refused: {0}")]
    Payload(String),
    /// A signature manifest that cannot be read or extended.
    #[error("signature manifest refused: {0}")]
    Manifest(String),
}

//! cosign's and skopeo's encrypted private keys (`ENCRYPTED SIGSTORE PRIVATE KEY`, formerly
//! `ENCRYPTED COSIGN PRIVATE KEY`): the PEM body is JSON (go-securesystemslib's `encrypted`
//! format) `{"kdf":{"name":"scrypt","params":{"N":..,"r":..,"p":..},"salt":B64},
//! "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}`; the key is
//! scrypt(password, salt, N, r, p, 32 bytes) and the ciphertext, opened with NaCl secretbox
//! (XSalsa20-Poly1305), is the PKCS#8 DER of the private key.
//!
//! The scrypt parameters come from the file: they are capped before any work, so a hostile key
//! file cannot make us allocate gigabytes or spin for hours.

use super::SignError;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::Deserialize;

/// The largest scrypt N accepted (cosign writes 2^15, skopeo 2^16).
pub const MAX_LOG_N: u32 = 20;
/// The largest scrypt r accepted (both tools write 8).
pub const MAX_R: u64 = 32;
/// The largest scrypt p accepted (both tools write 1).
pub const MAX_P: u64 = 16;
/// The most memory scrypt may take (128 * N * r bytes).
pub const MAX_MEMORY: u64 = 256 * 1024 * 1024;

#[derive(Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER inside encrypted key `json` (the decoded PEM body of key file `what`).
pub fn decrypt(json: &[u8], password: Option<&str>, what: &str) -> Result<Vec<u8>, SignError> {
    let malformed = |detail: String| SignError::Malformed {
        what: what.to_string(),
        kind: "cosign/sigstore encrypted key",
        detail,
    };
    let enc: Encrypted = serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?;
    for (scheme, expected) in [
        (&enc.kdf.name, "scrypt"),
        (&enc.cipher.name, "nacl/secretbox"),
    ] {
        if scheme != expected {
            return Err(SignError::UnsupportedEncryption {
                what: what.to_string(),
                scheme: scheme.chars().take(64).collect(),
            });
        }
    }
    let password = password.ok_or_else(|| SignError::PasswordNeeded {
        what: what.to_string(),
    })?;
    let params = scrypt_params(&enc.kdf.params, what)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64
        .decode(&enc.kdf.salt)
        .map_err(|_| malformed("kdf.salt is not base64".into()))?;
    let nonce = b64
        .decode(&enc.cipher.nonce)
        .map_err(|_| malformed("cipher.nonce is not base64".into()))?;
    if nonce.len() != 24 {
        return Err(malformed("cipher.nonce is not 24 bytes".into()));
    }
    let ciphertext = b64
        .decode(&enc.ciphertext)
        .map_err(|_| malformed("ciphertext is not base64".into()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key)
        .map_err(|_| malformed("scrypt refused its parameters".into()))?;
    let opened = XSalsa20Poly1305::new(Key::from_slice(&key))
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice());
    key.iter_mut().for_each(|b| *b = 0);
    opened.map_err(|_| SignError::WrongPassword {
        what: what.to_string(),
    })
}

/// The scrypt parameters of a key file, refused beyond the caps.
fn scrypt_params(p: &KdfParams, what: &str) -> Result<scrypt::Params, SignError> {
    let too_costly = || SignError::KdfTooCostly {
        what: what.to_string(),
        n: p.n,
        r: p.r,
        p: p.p,
    };
    if p.n < 2 || !p.n.is_power_of_two() || p.n.trailing_zeros() > MAX_LOG_N {
        return Err(too_costly());
    }
    if p.r == 0 || p.r > MAX_R || p.p == 0 || p.p > MAX_P {
        return Err(too_costly());
    }
    // Bounded above: N <= 2^20 and r <= 32, so no overflow.
    if 128 * p.n * p.r > MAX_MEMORY || p.n * p.r * p.p > (1 << 24) {
        return Err(too_costly());
    }
    let log_n = u8::try_from(p.n.trailing_zeros()).map_err(|_| too_costly())?;
    let r = u32::try_from(p.r).map_err(|_| too_costly())?;
    let pp = u32::try_from(p.p).map_err(|_| too_costly())?;
    scrypt::Params::new(log_n, r, pp, 32).map_err(|_| too_costly())
}

/// An encrypted key in cosign's format (for tests: fixed salt and nonce).
#[cfg(test)]
pub fn encrypt_for_tests(pkcs8: &[u8], password: &str, log_n: u8, label: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = [7u8; 32];
    let nonce = [9u8; 24];
    let mut key = [0u8; 32];
    let params = scrypt::Params::new(log_n, 8, 1, 32).unwrap();
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key).unwrap();
    let ct = XSalsa20Poly1305::new(Key::from_slice(&key))
        .encrypt(Nonce::from_slice(&nonce), pkcs8)
        .unwrap();
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": 8, "p": 1}, "salt": b64.encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64.encode(nonce)},
        "ciphertext": b64.encode(ct),
    });
    pem_for_tests(label, json.to_string().as_bytes())
}

/// A PEM block (for tests).
#[cfg(test)]
pub fn pem_for_tests(label: &str, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

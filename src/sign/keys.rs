//! ECDSA P-256 keys: a [`SigningKey`] from PKCS#8 (`PRIVATE KEY`, `openssl genpkey`), SEC1
//! (`EC PRIVATE KEY`, `openssl ecparam -genkey`) or a cosign/skopeo encrypted key; a
//! [`VerifyingKey`] from SPKI (`PUBLIC KEY`, `openssl pkey -pubout`, cosign's `.pub`, skopeo's
//! `.pub`). Signatures are ECDSA over SHA-256, DER-encoded, base64 (standard) as cosign stores
//! them in the `dev.cosignproject.cosign/signature` annotation; signing is deterministic
//! (RFC 6979).

use super::pem::{self, PemError};
use super::{encrypted, SignError, MAX_KEY_FILE};
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{
    spki::SubjectPublicKeyInfoRef, DecodePrivateKey as _, DecodePublicKey as _,
    EncodePublicKey as _, LineEnding, ObjectIdentifier, PrivateKeyInfo,
};
use std::fmt;
use std::path::Path;

const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A private ECDSA P-256 key. Its `Debug` never shows the key.
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

/// A public ECDSA P-256 key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    key: p256::ecdsa::VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(ECDSA P-256, private)")
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyingKey(ECDSA P-256)")
    }
}

impl SigningKey {
    /// The key in file `path`. `password`: for cosign/sigstore encrypted keys
    /// (COSIGN_PASSWORD; the caller reads the environment).
    pub fn load(path: &Path, password: Option<&str>) -> Result<SigningKey, SignError> {
        let what = path.display().to_string();
        let text = read_key_file(path, &what)?;
        let key = Self::from_pem(&text, &what, password);
        drop(Wipe(text));
        key
    }

    /// The key in PEM text `pem`; `what` names it in errors (the file's path).
    pub fn from_pem(
        pem: &[u8],
        what: &str,
        password: Option<&str>,
    ) -> Result<SigningKey, SignError> {
        let blocks = pem::blocks(pem).map_err(|e| pem_error(e, what, "PEM private key"))?;
        let block = blocks
            .iter()
            .find(|b| b.label != "EC PARAMETERS")
            .ok_or_else(|| unknown(what, "EC PARAMETERS", PRIVATE_HINT))?;
        let secret = match block.label.as_str() {
            "PRIVATE KEY" => pkcs8(&block.der, what)?,
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&block.der).map_err(|_| {
                SignError::WrongAlgorithm {
                    what: what.to_string(),
                    found: "not a P-256 EC private key (another curve, or damaged)".into(),
                }
            })?,
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let der = Wipe(encrypted::decrypt(&block.der, password, what)?);
                pkcs8(&der.0, what)?
            }
            "RSA PRIVATE KEY" => return Err(wrong(what, "an RSA key")),
            "ENCRYPTED PRIVATE KEY" => return Err(unknown(what, &block.label, OPENSSL_ENCRYPTED)),
            "PUBLIC KEY" => return Err(unknown(what, &block.label, PUBLIC_NOT_PRIVATE)),
            other => return Err(unknown(what, other, PRIVATE_HINT)),
        };
        Ok(SigningKey {
            key: p256::ecdsa::SigningKey::from(&secret),
        })
    }

    /// The base64 (standard) of the DER ECDSA-P256-SHA256 signature of `payload`,
    /// deterministic (RFC 6979).
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: p256::ecdsa::Signature = self.key.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            key: *self.key.verifying_key(),
        }
    }
}

impl VerifyingKey {
    /// The public key in file `path`: PEM `PUBLIC KEY` (SPKI), as `openssl pkey -pubout`,
    /// cosign and skopeo write it.
    pub fn load(path: &Path) -> Result<VerifyingKey, SignError> {
        let what = path.display().to_string();
        let text = read_key_file(path, &what)?;
        Self::from_pem(&text, &what)
    }

    /// The public key in PEM text `pem`; `what` names it in errors.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<VerifyingKey, SignError> {
        let blocks = pem::blocks(pem).map_err(|e| pem_error(e, what, "PEM public key"))?;
        let Some(block) = blocks.iter().find(|b| b.label == "PUBLIC KEY") else {
            let label = blocks.first().map(|b| b.label.as_str()).unwrap_or_default();
            let hint = if label.contains("PRIVATE") {
                "a private key: give the public key (cosign.pub, or `openssl pkey -in KEY -pubout`)"
            } else {
                "expected PUBLIC KEY (SPKI), as `openssl pkey -pubout`, cosign and skopeo write"
            };
            return Err(unknown(what, label, hint));
        };
        let spki = SubjectPublicKeyInfoRef::try_from(block.der.as_slice()).map_err(|e| {
            SignError::Malformed {
                what: what.to_string(),
                kind: "SPKI public key",
                detail: e.to_string(),
            }
        })?;
        check_algorithm(
            spki.algorithm.oid,
            spki.algorithm.parameters_oid().ok(),
            what,
        )?;
        let public =
            p256::PublicKey::from_public_key_der(&block.der).map_err(|e| SignError::Malformed {
                what: what.to_string(),
                kind: "P-256 public key",
                detail: e.to_string(),
            })?;
        Ok(VerifyingKey {
            key: p256::ecdsa::VerifyingKey::from(&public),
        })
    }

    /// Whether `signature_b64` (base64 of a DER ECDSA signature) signs `payload` with this key.
    pub fn verify(&self, payload: &[u8], signature_b64: &str) -> bool {
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(sig) = p256::ecdsa::Signature::from_der(&der) else {
            return false;
        };
        self.key.verify(payload, &sig).is_ok()
    }

    /// The key as PEM `PUBLIC KEY` (SPKI), as cosign's `.pub` files hold it.
    pub fn to_pem(&self) -> String {
        p256::PublicKey::from(&self.key)
            .to_public_key_pem(LineEnding::LF)
            // Cannot fail: a valid point always encodes.
            .unwrap_or_else(|_| unreachable!())
    }
}

const PRIVATE_HINT: &str = "expected PRIVATE KEY (PKCS#8), EC PRIVATE KEY (SEC1) or ENCRYPTED SIGSTORE PRIVATE KEY (cosign, skopeo)";
const OPENSSL_ENCRYPTED: &str = "an openssl-encrypted PKCS#8 key: decrypt it (`openssl pkey -in KEY -out PLAIN.pem`) or convert it with `cosign import-key-pair`";
const PUBLIC_NOT_PRIVATE: &str =
    "a public key: signing needs the private key (cosign.key, or skopeo's .private)";

/// A P-256 secret key from PKCS#8 DER, another algorithm or curve named.
fn pkcs8(der: &[u8], what: &str) -> Result<p256::SecretKey, SignError> {
    let malformed = |detail: String| SignError::Malformed {
        what: what.to_string(),
        kind: "PKCS#8 private key",
        detail,
    };
    let info = PrivateKeyInfo::try_from(der).map_err(|e| malformed(e.to_string()))?;
    check_algorithm(
        info.algorithm.oid,
        info.algorithm.parameters_oid().ok(),
        what,
    )?;
    p256::SecretKey::from_pkcs8_der(der).map_err(|e| malformed(e.to_string()))
}

/// Refuse every algorithm but EC on P-256, naming what was found.
fn check_algorithm(
    alg: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
    what: &str,
) -> Result<(), SignError> {
    if alg == OID_EC {
        return match curve {
            Some(c) if c == OID_P256 => Ok(()),
            Some(c) => Err(wrong(what, &format!("an EC key on {}", curve_name(c)))),
            None => Err(wrong(what, "an EC key without a named curve")),
        };
    }
    let name = match alg.to_string().as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "an RSA key".to_string(),
        "1.3.101.112" => "an Ed25519 key".to_string(),
        "1.3.101.113" => "an Ed448 key".to_string(),
        "1.2.840.10040.4.1" => "a DSA key".to_string(),
        other => format!("a key of algorithm {other}"),
    };
    Err(wrong(what, &name))
}

fn curve_name(c: ObjectIdentifier) -> String {
    match c.to_string().as_str() {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => format!("curve {other}"),
    }
}

fn wrong(what: &str, found: &str) -> SignError {
    SignError::WrongAlgorithm {
        what: what.to_string(),
        found: found.to_string(),
    }
}

fn unknown(what: &str, label: &str, hint: &'static str) -> SignError {
    SignError::UnknownPemType {
        what: what.to_string(),
        label: label.chars().take(64).collect(),
        hint,
    }
}

fn pem_error(e: PemError, what: &str, kind: &'static str) -> SignError {
    match e {
        PemError::NoBlock => SignError::NotPem {
            what: what.to_string(),
        },
        PemError::Damaged(detail) => SignError::Malformed {
            what: what.to_string(),
            kind,
            detail: detail.to_string(),
        },
    }
}

/// Key file `path` (symlinks followed: it is the user's own file), refused past the bound.
fn read_key_file(path: &Path, what: &str) -> Result<Vec<u8>, SignError> {
    use crate::digest::file::{read_user_file, ReadError};
    read_user_file(path, MAX_KEY_FILE).map_err(|e| match e {
        ReadError::Io(error) => SignError::Read {
            what: what.to_string(),
            error,
        },
        ReadError::TooLarge(max) => SignError::TooLarge {
            what: what.to_string(),
            max,
        },
    })
}

/// Bytes zeroed when dropped (key files and decrypted keys; best effort).
struct Wipe(Vec<u8>);

impl Drop for Wipe {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

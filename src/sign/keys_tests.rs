//! Unit tests of `keys`, `pem` and `encrypted`: each key format loads and signs, each bad key
//! gives its own error, no error shows a password, hostile scrypt parameters cost nothing.

use super::encrypted::{encrypt_for_tests, pem_for_tests};
use super::{SignError, SigningKey, VerifyingKey, MAX_KEY_FILE};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::der::asn1::AnyRef;
use p256::pkcs8::der::Encode as _;
use p256::pkcs8::spki::AlgorithmIdentifierRef;
use p256::pkcs8::{EncodePrivateKey as _, LineEnding, ObjectIdentifier, PrivateKeyInfo};

fn secret() -> p256::SecretKey {
    p256::SecretKey::from_slice(&[0x42; 32]).unwrap()
}

fn pkcs8_pem() -> String {
    secret().to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

fn pkcs8_der() -> Vec<u8> {
    secret().to_pkcs8_der().unwrap().as_bytes().to_vec()
}

fn public_of(key: &SigningKey) -> Vec<u8> {
    let pem = key.verifying_key().to_pem();
    let vk = VerifyingKey::from_pem(pem.as_bytes(), "pub").unwrap();
    assert_eq!(vk, key.verifying_key());
    pem.into_bytes()
}

#[test]
fn pkcs8_key_signs_deterministically_and_verifies() {
    let key = SigningKey::from_pem(pkcs8_pem().as_bytes(), "k.pem", None).unwrap();
    let sig = key.sign(b"payload");
    assert_eq!(
        sig,
        key.sign(b"payload"),
        "RFC 6979: same payload, same signature"
    );
    let vk = key.verifying_key();
    assert!(vk.verify(b"payload", &sig));
    assert!(!vk.verify(b"payloaD", &sig));
    assert!(!vk.verify(b"payload", "not base64!"));
    assert!(!vk.verify(b"payload", "AAAA"));
    let other = SigningKey::from_pem(
        p256::SecretKey::from_slice(&[7; 32])
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes(),
        "other",
        None,
    )
    .unwrap();
    assert!(!other.verifying_key().verify(b"payload", &sig));
}

#[test]
fn sec1_key_with_openssl_ec_parameters_block_is_the_same_key() {
    let sec1 = secret().to_sec1_pem(LineEnding::LF).unwrap().to_string();
    let params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    let both = format!("{params}{sec1}");
    let a = SigningKey::from_pem(both.as_bytes(), "ec.pem", None).unwrap();
    let b = SigningKey::from_pem(pkcs8_pem().as_bytes(), "k.pem", None).unwrap();
    assert_eq!(public_of(&a), public_of(&b));
    let pubkey = secret().public_key().to_encoded_point(false);
    assert!(a
        .verifying_key()
        .to_pem()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(pubkey.len(), 65);
}

#[test]
fn encrypted_keys_of_both_labels_open_with_the_password_only() {
    for label in [
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        "ENCRYPTED COSIGN PRIVATE KEY",
    ] {
        let pem = encrypt_for_tests(&pkcs8_der(), "hunter2", 10, label);
        let key = SigningKey::from_pem(pem.as_bytes(), "cosign.key", Some("hunter2")).unwrap();
        let plain = SigningKey::from_pem(pkcs8_pem().as_bytes(), "k", None).unwrap();
        assert_eq!(public_of(&key), public_of(&plain));

        let e = SigningKey::from_pem(pem.as_bytes(), "cosign.key", None).unwrap_err();
        assert!(matches!(e, SignError::PasswordNeeded { .. }), "{e}");
        assert!(e.to_string().contains("COSIGN_PASSWORD"), "{e}");
        assert!(e.to_string().contains("cosign.key"), "{e}");

        let e = SigningKey::from_pem(pem.as_bytes(), "cosign.key", Some("hunter3")).unwrap_err();
        assert!(matches!(e, SignError::WrongPassword { .. }), "{e}");
        assert!(
            !e.to_string().contains("hunter3"),
            "the password leaked: {e}"
        );
        assert!(
            !format!("{e:?}").contains("hunter3"),
            "the password leaked: {e:?}"
        );
    }
}

fn encrypted_with(params: serde_json::Value, kdf: &str, cipher: &str) -> String {
    let json = serde_json::json!({
        "kdf": {"name": kdf, "params": params, "salt": "AAAA"},
        "cipher": {"name": cipher, "nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        "ciphertext": "AAAA",
    });
    pem_for_tests(
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        json.to_string().as_bytes(),
    )
}

#[test]
fn hostile_scrypt_parameters_are_refused_before_any_work() {
    for (n, r, p) in [
        (1u64 << 40, 8u64, 1u64), // 128 TiB
        (1 << 21, 8, 1),          // N past 2^20
        (1 << 20, 8, 1),          // 1 GiB of memory
        (1 << 16, 1000, 1),       // r
        (1 << 16, 8, 1 << 30),    // p
        (1 << 15, 8, 0),
        (0, 8, 1),
        (3000, 8, 1), // not a power of two
        (u64::MAX, u64::MAX, u64::MAX),
    ] {
        let pem = encrypted_with(
            serde_json::json!({"N": n, "r": r, "p": p}),
            "scrypt",
            "nacl/secretbox",
        );
        let e = SigningKey::from_pem(pem.as_bytes(), "evil.key", Some("x")).unwrap_err();
        assert!(
            matches!(e, SignError::KdfTooCostly { .. }),
            "N={n} r={r} p={p}: {e}"
        );
        assert!(e.to_string().contains("evil.key"), "{e}");
    }
}

#[test]
fn other_encryption_schemes_and_damaged_json_are_named() {
    let params = serde_json::json!({"N": 1024, "r": 8, "p": 1});
    let pem = encrypted_with(params.clone(), "pbkdf2", "nacl/secretbox");
    let e = SigningKey::from_pem(pem.as_bytes(), "k", Some("x")).unwrap_err();
    assert!(
        matches!(e, SignError::UnsupportedEncryption { ref scheme, .. } if scheme == "pbkdf2"),
        "{e}"
    );
    let pem = encrypted_with(params, "scrypt", "aes-gcm");
    let e = SigningKey::from_pem(pem.as_bytes(), "k", Some("x")).unwrap_err();
    assert!(matches!(e, SignError::UnsupportedEncryption { .. }), "{e}");
    let pem = pem_for_tests("ENCRYPTED SIGSTORE PRIVATE KEY", b"{not json");
    let e = SigningKey::from_pem(pem.as_bytes(), "k", Some("x")).unwrap_err();
    assert!(matches!(e, SignError::Malformed { .. }), "{e}");
    // A nonce of the wrong length is an error, not a panic.
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": 1024, "r": 8, "p": 1}, "salt": "AAAA"},
        "cipher": {"name": "nacl/secretbox", "nonce": "AAAA"},
        "ciphertext": "AAAA",
    });
    let pem = pem_for_tests(
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        json.to_string().as_bytes(),
    );
    let e = SigningKey::from_pem(pem.as_bytes(), "k", Some("x")).unwrap_err();
    assert!(e.to_string().contains("nonce"), "{e}");
}

fn pkcs8_with_algorithm(oid: &str, curve: Option<&str>) -> String {
    let curve = curve.map(ObjectIdentifier::new_unwrap);
    let info = PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: ObjectIdentifier::new_unwrap(oid),
            parameters: curve.as_ref().map(AnyRef::from),
        },
        &[4, 1, 0],
    );
    pem_for_tests("PRIVATE KEY", &info.to_der().unwrap())
}

#[test]
fn other_algorithms_and_curves_are_named() {
    for (oid, curve, found) in [
        ("1.2.840.113549.1.1.1", None, "RSA"),
        ("1.3.101.112", None, "Ed25519"),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34"), "P-384"),
        ("1.2.840.10045.2.1", Some("1.3.132.0.10"), "secp256k1"),
    ] {
        let pem = pkcs8_with_algorithm(oid, curve);
        let e = SigningKey::from_pem(pem.as_bytes(), "k.pem", None).unwrap_err();
        assert!(matches!(e, SignError::WrongAlgorithm { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(found) && text.contains("ECDSA P-256 only"),
            "{text}"
        );
    }
    let rsa = pem_for_tests("RSA PRIVATE KEY", &[0x30, 0]);
    let e = SigningKey::from_pem(rsa.as_bytes(), "k", None).unwrap_err();
    assert!(e.to_string().contains("RSA"), "{e}");
}

#[test]
fn not_pem_and_unknown_pem_types_are_clear() {
    for text in [
        &b"hello"[..],
        b"",
        b"\xff\xfe",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n",
    ] {
        assert!(SigningKey::from_pem(text, "k", None).is_err());
    }
    let e = SigningKey::from_pem(b"just text", "k.pem", None).unwrap_err();
    assert!(matches!(e, SignError::NotPem { .. }), "{e}");
    let e =
        SigningKey::from_pem(pem_for_tests("CERTIFICATE", b"x").as_bytes(), "k", None).unwrap_err();
    assert!(matches!(e, SignError::UnknownPemType { .. }), "{e}");
    let public = SigningKey::from_pem(pkcs8_pem().as_bytes(), "k", None)
        .unwrap()
        .verifying_key()
        .to_pem();
    let e = SigningKey::from_pem(public.as_bytes(), "cosign.pub", None).unwrap_err();
    assert!(e.to_string().contains("private key"), "{e}");
    let e = VerifyingKey::from_pem(pkcs8_pem().as_bytes(), "cosign.key").unwrap_err();
    assert!(e.to_string().contains("public key"), "{e}");
    let e = SigningKey::from_pem(
        pem_for_tests("ENCRYPTED PRIVATE KEY", b"x").as_bytes(),
        "k",
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("openssl"), "{e}");
    let e = SigningKey::from_pem(
        pem_for_tests("PRIVATE KEY", b"garbage").as_bytes(),
        "k",
        None,
    )
    .unwrap_err();
    assert!(matches!(e, SignError::Malformed { .. }), "{e}");
}

#[test]
fn key_files_are_read_with_a_bound_and_errors_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; MAX_KEY_FILE as usize + 1]).unwrap();
    let e = SigningKey::load(&big, None).unwrap_err();
    assert!(matches!(e, SignError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("big.pem"), "{e}");
    let e = VerifyingKey::load(&dir.path().join("missing.pub")).unwrap_err();
    assert!(matches!(e, SignError::Read { .. }) && e.to_string().contains("missing.pub"));
    let k = dir.path().join("k.pem");
    std::fs::write(&k, pkcs8_pem()).unwrap();
    let key = SigningKey::load(&k, None).unwrap();
    let p = dir.path().join("k.pub");
    std::fs::write(&p, key.verifying_key().to_pem()).unwrap();
    assert!(VerifyingKey::load(&p)
        .unwrap()
        .verify(b"x", &key.sign(b"x")));
}

#[test]
fn debug_never_shows_the_key() {
    let key = SigningKey::from_pem(pkcs8_pem().as_bytes(), "k", None).unwrap();
    let shown = format!("{key:?} {:?}", key.verifying_key());
    assert_eq!(
        shown,
        "SigningKey(ECDSA P-256, private) VerifyingKey(ECDSA P-256)"
    );
}

#[test]
fn pem_headers_and_mismatched_end_lines_are_refused() {
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
    let e = SigningKey::from_pem(legacy.as_bytes(), "k", None).unwrap_err();
    assert!(e.to_string().contains("decrypt"), "{e}");
    let mixed = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    let e = SigningKey::from_pem(mixed.as_bytes(), "k", None).unwrap_err();
    assert!(matches!(e, SignError::Malformed { .. }), "{e}");
}

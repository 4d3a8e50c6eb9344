//! The dependency budget of issue 12, checked on `Cargo.lock` and `Cargo.toml`: one HTTP and
//! TLS stack, one crypto library (ring; no C build of AWS-LC or OpenSSL), and the release
//! profile that keeps a cold build under 5 minutes on 2 cores and the binary under 25 MB.
//! The times and sizes themselves are measured in BENCHMARKS.md, not asserted here.

use crate::common::repo;
use std::collections::BTreeMap;
use std::fs;

/// Package name -> versions resolved in `Cargo.lock`.
fn locked() -> BTreeMap<String, Vec<String>> {
    let text = fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        out.entry(name)
            .or_default()
            .push(p["version"].as_str().unwrap().to_string());
    }
    out
}

#[test]
fn one_http_and_tls_stack_and_one_crypto_library() {
    let lock = locked();
    for name in ["hyper", "h2", "http", "rustls", "hyper-rustls", "ring"] {
        let versions = lock.get(name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            versions.len(),
            1,
            "{name}: want one version, have {versions:?}"
        );
    }
    for name in ["aws-lc-sys", "aws-lc-rs", "openssl-sys", "native-tls"] {
        assert!(!lock.contains_key(name), "{name} is in Cargo.lock");
    }
}

#[test]
fn the_release_profile_is_the_measured_one() {
    let text = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    let release = &manifest["profile"]["release"];
    assert_eq!(release["strip"].as_bool(), Some(true));
    assert_eq!(release["panic"].as_str(), Some("abort"));
    let packages = release["package"].as_table().unwrap();
    for heavy in [
        "aws-sdk-ecr",
        "aws-sdk-sts",
        "aws-config",
        "aws-smithy-http-client",
    ] {
        let level = packages.get(heavy).and_then(|p| p.get("opt-level"));
        assert_eq!(level.and_then(toml::Value::as_integer), Some(0), "{heavy}");
    }
    // The hot path is never in that list.
    for hot in [
        "sha2",
        "libdeflate-sys",
        "libdeflater",
        "zstd-sys",
        "ocibuild",
        "hyper",
        "h2",
    ] {
        assert!(
            !packages.contains_key(hot),
            "{hot} must keep the release opt-level"
        );
    }
}

//! Unit tests of the client: token answers, schemes, URLs from validated names, lifetimes
//! and backoff.

use super::*;

/// An anonymous client for `host` (never contacted by these tests).
fn anonymous(host: &str, retry: RetryPolicy) -> RegistryClient {
    RegistryClient::new(host, None, false, CredentialSource::anonymous("t"), retry).unwrap()
}

#[test]
fn token_answers_and_lifetimes() {
    let url = Url::parse("https://auth.example/token?service=r&scope=x").unwrap();
    let (t, ttl) = token_from(&url, &serde_json::json!({"token": "a", "expires_in": 300})).unwrap();
    assert_eq!((t.as_str(), ttl), ("a", Duration::from_secs(270)));
    let (t, ttl) = token_from(&url, &serde_json::json!({"access_token": "b"})).unwrap();
    assert_eq!((t.as_str(), ttl), ("b", Duration::from_secs(54)));
    let (_, ttl) = token_from(&url, &serde_json::json!({"token": "c", "expires_in": 1})).unwrap();
    assert_eq!(ttl, Duration::from_secs(9));
    let e = token_from(&url, &serde_json::json!({"expires_in": 300})).unwrap_err();
    assert_eq!(e.message, "token response has no token");
    assert_eq!(e.url, "https://auth.example/token");
}

#[test]
fn loopback_hosts() {
    for h in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"] {
        assert!(is_loopback(h), "{h}");
    }
    for h in ["example.com", "10.0.0.1", "192.168.1.1"] {
        assert!(!is_loopback(h), "{h}");
    }
}

#[test]
fn scheme_follows_insecure_and_loopback() {
    let anon = || CredentialSource::anonymous("test");
    let new = |host: &str, scheme: Option<Scheme>, insecure: bool| {
        RegistryClient::new(host, scheme, insecure, anon(), RetryPolicy::default())
            .unwrap()
            .base()
            .to_string()
    };
    // A scheme written is honoured, for loopback hosts too, whatever `insecure` says.
    let https = Some(Scheme::Https);
    for (host, scheme, insecure, want) in [
        ("127.0.0.1:5000", None, false, "http://127.0.0.1:5000/"),
        ("registry.example", None, false, "https://registry.example/"),
        (
            "registry.example:8080",
            None,
            true,
            "http://registry.example:8080/",
        ),
        ("127.0.0.1:5000", https, false, "https://127.0.0.1:5000/"),
        ("localhost:5000", https, true, "https://localhost:5000/"),
        ("[::1]:5000", https, false, "https://[::1]:5000/"),
        (
            "registry.example",
            Some(Scheme::Http),
            false,
            "http://registry.example/",
        ),
    ] {
        assert_eq!(
            new(host, scheme, insecure),
            want,
            "{host} {scheme:?} {insecure}"
        );
    }
    for bad in [
        "user:pw@evil.example",
        "h/x",
        "h?x",
        "h#x",
        "",
        "h:99999",
        "h :1",
    ] {
        let e = RegistryClient::new(bad, None, false, anon(), RetryPolicy::default())
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(e.message.contains("invalid registry host"), "{e}");
        assert!(!e.to_string().contains("pw@"), "{e}");
    }
}

#[test]
fn urls_are_built_from_validated_segments() {
    let c = anonymous("r.example:5000", RetryPolicy::default());
    let repo = Repository::parse("team/app").unwrap();
    let tag = Reference::parse("v1.0").unwrap();
    let d = crate::digest::Digest::of(b"x");
    assert_eq!(
        c.url(&repo, Endpoint::Manifest(&tag)).as_str(),
        "https://r.example:5000/v2/team/app/manifests/v1.0"
    );
    assert_eq!(
        c.url(&repo, Endpoint::Blob(&d)).as_str(),
        format!("https://r.example:5000/v2/team/app/blobs/{d}")
    );
    assert_eq!(
        c.url(&repo, Endpoint::Uploads).as_str(),
        "https://r.example:5000/v2/team/app/blobs/uploads/"
    );
    for bad in ["../../other/manifests/x", "v1?x=1", "v1#f", "a/b"] {
        let e = c.reference("PUT", bad).unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(e.message.contains("invalid tag"), "{e}");
    }
    assert!(c.repository("PUT", "../x").is_err());
    assert!(c.repository("PUT", "a?b").is_err());
}

#[test]
fn lifetimes_from_servers_and_config_never_overflow() {
    let url = Url::parse("https://auth.example/token").unwrap();
    let (_, ttl) = token_from(
        &url,
        &serde_json::json!({"token": "t", "expires_in": u64::MAX}),
    )
    .unwrap();
    assert!(ttl <= MAX_TOKEN_LIFETIME, "{ttl:?}");
    let _ = after(ttl);
    let _ = after(Duration::MAX);
    let far = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64 / 2));
    assert!(refresh_at(far).is_some());
    let c = anonymous("r.example", RetryPolicy::default());
    for rate in [
        1e-300,
        f64::MIN_POSITIVE,
        1e300,
        f64::INFINITY,
        f64::NAN,
        -1.0,
        0.0,
    ] {
        let c = anonymous("r.example", RetryPolicy::default()).with_manifest_rate(rate);
        if let Some(gap) = c.manifest_interval {
            assert!(gap <= Duration::from_secs(1000), "{rate}: {gap:?}");
        }
    }
    drop(c);
}

#[test]
fn backoff_grows_with_jitter_and_honours_retry_after() {
    let c = anonymous(
        "r.example",
        RetryPolicy {
            max_tries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        },
    );
    for attempt in 1..=6 {
        let d = c.delay(attempt, None);
        let exp = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
        assert!(
            d >= exp / 2 && d < exp,
            "attempt {attempt}: {d:?} vs {exp:?}"
        );
    }
    assert_eq!(
        c.delay(1, Some(Duration::from_millis(700))),
        Duration::from_millis(700)
    );
    assert_eq!(
        c.delay(1, Some(Duration::from_secs(30))),
        Duration::from_secs(1)
    );
}

mod proptests {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {

        #[test]
        fn token_lifetimes_are_clamped(n in any::<u64>()) {
            let url = Url::parse("https://auth.example/token").unwrap();
            let (_, ttl) = token_from(&url, &serde_json::json!({"token": "t", "expires_in": n})).unwrap();
            prop_assert!(ttl >= Duration::from_secs(9) && ttl <= MAX_TOKEN_LIFETIME);
            let _ = after(ttl);
        }
    }
}

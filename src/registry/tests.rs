//! The client against small fake servers on loopback ports: where credentials go (redirects,
//! upload locations, challenges from elsewhere), what is refused before any request (invalid
//! names, a downgrade to http), and answers too large to hold (streamed endlessly, never
//! allocated by the test).

use super::auth::{Credential, CredentialSource, Secret};
use super::client::{RegistryClient, RetryPolicy, MAX_ERROR_BODY};
use crate::digest::Digest;
use crate::reference::Scheme;
#[path = "../../tests/support/fake_http.rs"]
mod fake_http;
use fake_http::*;
use std::time::Duration;

fn creds() -> CredentialSource {
    CredentialSource {
        credential: Credential::Basic {
            username: "alice".into(),
            password: Secret("s3cret".into()),
        },
        origin: "test".into(),
    }
}

const ALICE: &str = "Basic YWxpY2U6czNjcmV0";

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_tries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    }
}

fn client(host: &str, scheme: Option<Scheme>) -> RegistryClient {
    RegistryClient::new(host, scheme, false, creds(), quick()).unwrap()
}

/// Basic auth at the registry: 401 with a challenge unless the request carries alice's.
fn basic_gate(req: &Seen) -> Option<Answer> {
    (req.header("authorization") != Some(ALICE))
        .then(|| answer(401, &[("WWW-Authenticate", "Basic realm=\"r\"")], b""))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_redirect_to_another_port_carries_no_credentials() {
    let storage = Fake::start(|_| answer(200, &[], b"x"));
    let to = storage.url("/blob?sig=abc");
    let registry = Fake::start(move |req| {
        basic_gate(req).unwrap_or_else(|| answer(307, &[("Location", to.as_str())], b""))
    });
    let c = client(&registry.host(), None);
    let d = Digest::of(b"x");
    let rt = rt();
    assert_eq!(rt.block_on(c.get_blob("team/app", &d)).unwrap(), b"x");
    assert!(rt.block_on(c.blob_exists("team/app", &d, 1)).unwrap());
    let at_storage = storage.seen();
    assert_eq!(at_storage.len(), 2, "{at_storage:?}");
    for s in &at_storage {
        assert_eq!(s.header("authorization"), None, "{s:?}");
        assert_eq!(s.header("referer"), None, "{s:?}");
    }
    let at_registry = registry.seen();
    assert!(at_registry
        .iter()
        .any(|s| s.header("authorization") == Some(ALICE)));
}

#[test]
fn an_upload_location_on_another_port_gets_no_credentials() {
    let storage = Fake::start(|_| answer(201, &[], b""));
    let to = storage.url("/upload/1?state=s1");
    let registry = Fake::start(move |req| {
        basic_gate(req).unwrap_or_else(|| answer(202, &[("Location", to.as_str())], b""))
    });
    let c = client(&registry.host(), None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"layer").unwrap();
    let d = Digest::of(b"layer");
    rt().block_on(c.upload_blob(
        "team/app",
        &d,
        super::client::BlobSource::File(&file),
        5,
        None,
    ))
    .unwrap();
    let puts = storage.seen();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].method, "PUT");
    assert!(
        puts[0]
            .target
            .starts_with("/upload/1?state=s1&digest=sha256"),
        "{puts:?}"
    );
    assert_eq!(puts[0].header("authorization"), None, "{puts:?}");
}

#[test]
fn an_https_registry_never_sends_to_an_http_location() {
    let storage = Fake::start(|_| answer(201, &[], b""));
    let registry = Fake::start(|_| answer(500, &[], b""));
    // The registry is reached over TLS (it is never contacted here: the session is given).
    let c = client(&registry.host(), Some(Scheme::Https));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"layer").unwrap();
    let session = url::Url::parse(&storage.url("/upload/1?state=s")).unwrap();
    let e = rt()
        .block_on(c.upload_blob(
            "team/app",
            &Digest::of(b"layer"),
            super::client::BlobSource::File(&file),
            5,
            Some(session),
        ))
        .unwrap_err();
    assert!(e.message.contains("plain http"), "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(storage.seen().is_empty(), "nothing goes to the http URL");
    assert!(registry.seen().is_empty() && registry.raw.lock().unwrap().is_empty());
}

#[test]
fn a_challenge_from_elsewhere_is_not_answered() {
    let tokens = Fake::start(|_| answer(200, &[], br#"{"token":"t"}"#));
    let realm = format!("Bearer realm=\"{}\"", tokens.url("/token"));
    let storage = Fake::start(move |_| answer(401, &[("WWW-Authenticate", realm.as_str())], b""));
    let to = storage.url("/blob");
    let registry = Fake::start(move |req| {
        basic_gate(req).unwrap_or_else(|| answer(307, &[("Location", to.as_str())], b""))
    });
    let c = client(&registry.host(), None);
    let e = rt()
        .block_on(c.get_blob("team/app", &Digest::of(b"x")))
        .unwrap_err();
    assert_eq!(e.status, Some(401), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("not from the registry"),
        "{e}"
    );
    assert!(
        tokens.seen().is_empty(),
        "no credentials for the other server's realm"
    );
    assert!(storage
        .seen()
        .iter()
        .all(|s| s.header("authorization").is_none()));
}

#[test]
fn endless_redirects_end() {
    let registry = Fake::start(|req| {
        let to = format!("{}x", req.target);
        answer(307, &[("Location", to.as_str())], b"")
    });
    let c = client(&registry.host(), None);
    let e = rt()
        .block_on(c.get_blob("team/app", &Digest::of(b"x")))
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(registry.seen().len() <= 12, "{}", registry.seen().len());
}

#[test]
fn names_that_are_not_names_are_refused_before_any_request() {
    let registry = Fake::start(|_| answer(201, &[], b""));
    let c = client(&registry.host(), None);
    let rt = rt();
    for tag in [
        "../../other/manifests/x",
        "v1?x=1",
        "v1#f",
        "",
        "a/b",
        "sha256:abc",
    ] {
        let e = rt
            .block_on(c.put_manifest("team/app", tag, "application/json", b"{}"))
            .unwrap_err();
        assert!(!e.is_retryable(), "{tag:?}: {e}");
        assert!(e.message.contains(&format!("{tag:?}")), "{tag:?}: {e}");
    }
    for repo in ["../other", "Team/app", "a?b", "a#b", "a//b"] {
        assert!(
            rt.block_on(c.manifest_exists(repo, "v1")).is_err(),
            "{repo:?}"
        );
        assert!(rt
            .block_on(c.blob_exists(repo, &Digest::of(b"x"), 1))
            .is_err());
    }
    assert!(registry.seen().is_empty(), "{:?}", registry.seen());
}

#[test]
fn an_endless_error_body_is_cut_short() {
    let registry = Fake::start(|_| Answer {
        status: 400,
        headers: vec![],
        body: Body::Endless,
    });
    let c = client(&registry.host(), None);
    let e = rt()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), c.get_manifest("team/app", "v1")).await
        })
        .expect("the read stops at the cap")
        .unwrap_err();
    assert_eq!(e.status, Some(400));
    assert!(
        e.message
            .contains(&format!("cut after {MAX_ERROR_BODY} bytes")),
        "{e}"
    );
    assert!(e.to_string().len() < 2000, "{}", e.to_string().len());
}

/// A Bearer challenge naming the token service at `/token` of the server `req` came to.
fn bearer_here(req: &Seen) -> Answer {
    let realm = format!(
        "Bearer realm=\"http://{}/token\",service=\"r\"",
        req.header("host").unwrap_or("")
    );
    answer(401, &[("WWW-Authenticate", realm.as_str())], b"")
}

#[test]
fn an_endless_token_answer_is_refused() {
    let registry = Fake::start(|req| {
        if req.target.starts_with("/token") {
            return Answer {
                status: 200,
                headers: vec![],
                body: Body::Endless,
            };
        }
        bearer_here(req)
    });
    let c = client(&registry.host(), None);
    let e = rt()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), c.manifest_exists("team/app", "v1")).await
        })
        .expect("the read stops at the cap")
        .unwrap_err();
    assert!(e.message.contains("token answer is larger"), "{e}");
}

#[test]
fn a_token_that_never_expires_is_used_without_overflow() {
    let registry = Fake::start(|req| {
        if req.target.starts_with("/token") {
            return answer(
                200,
                &[("Content-Type", "application/json")],
                br#"{"token":"t","expires_in":18446744073709551615}"#,
            );
        }
        if req.header("authorization") == Some("Bearer t") {
            return answer(200, &[], b"");
        }
        bearer_here(req)
    });
    let c = client(&registry.host(), None);
    let rt = rt();
    assert!(rt.block_on(c.manifest_exists("team/app", "v1")).unwrap());
    assert!(rt.block_on(c.manifest_exists("team/app", "v2")).unwrap());
}

#[test]
fn an_explicit_https_is_honoured_on_loopback() {
    let registry = Fake::start(|_| answer(200, &[], b""));
    let c = client(&registry.host(), Some(Scheme::Https));
    assert_eq!(c.base().scheme(), "https");
    let e = rt()
        .block_on(c.manifest_exists("team/app", "v1"))
        .unwrap_err();
    assert_eq!(e.status, None, "{e}");
    let raw = registry.raw.lock().unwrap().clone();
    assert!(!raw.is_empty(), "the registry saw no TLS handshake");
    assert!(
        raw.iter().all(|b| b.first() == Some(&0x16)),
        "a TLS ClientHello starts with 0x16: {raw:?}"
    );
    assert!(registry.seen().is_empty(), "no plain HTTP request");
}

#[test]
fn a_body_that_dribbles_in_is_cut_at_the_deadline() {
    use super::body::{read_capped_within, Ending};
    let fake = Fake::start(|_| Answer {
        status: 500,
        headers: vec![],
        body: Body::Dribble,
    });
    let url = fake.url("/v2/");
    super::client::use_ring_for_tls();
    let (bytes, ending) = rt().block_on(async {
        let resp = reqwest::get(&url).await.unwrap();
        read_capped_within(resp, 1 << 20, Duration::from_millis(500))
            .await
            .unwrap()
    });
    assert_eq!(ending, Ending::TooSlow);
    assert!(bytes.len() < 100, "{}", bytes.len());
}

#[test]
fn a_registry_that_stores_other_bytes_than_the_manifest_sent_is_an_error() {
    let registry = Fake::start(|req| {
        basic_gate(req).unwrap_or_else(|| {
            let other = Digest::of(b"something else").to_string();
            answer(201, &[("Docker-Content-Digest", other.as_str())], b"")
        })
    });
    let c = client(&registry.host(), None);
    let doc = br#"{"schemaVersion":2}"#;
    let e = rt()
        .block_on(c.put_manifest(
            "team/app",
            "v1",
            "application/vnd.oci.image.index.v1+json",
            doc,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("changed the document"), "{e}");
    // The same answer naming our digest is a success.
    let ours = Digest::of(doc).to_string();
    let honest = Fake::start(move |req| {
        basic_gate(req)
            .unwrap_or_else(|| answer(201, &[("Docker-Content-Digest", ours.as_str())], b""))
    });
    let c = client(&honest.host(), None);
    rt().block_on(c.put_manifest(
        "team/app",
        "v1",
        "application/vnd.oci.image.index.v1+json",
        doc,
    ))
    .unwrap();
}

#[test]
fn a_blob_answered_with_another_size_is_not_taken_as_present() {
    let registry = Fake::start(|req| basic_gate(req).unwrap_or_else(|| answer(200, &[], b"12345")));
    let c = client(&registry.host(), None);
    let d = Digest::of(b"x");
    let rt = rt();
    assert!(rt.block_on(c.blob_exists("team/app", &d, 5)).unwrap());
    assert!(!rt.block_on(c.blob_exists("team/app", &d, 1)).unwrap());
}

#[test]
fn a_pull_is_served_by_the_cached_pull_push_token_of_the_same_repository() {
    let registry = Fake::start(|req| {
        if req.target.starts_with("/token") {
            return answer(
                200,
                &[("Content-Type", "application/json")],
                br#"{"token":"t"}"#,
            );
        }
        if req.header("authorization") == Some("Bearer t") {
            return answer(404, &[], b"");
        }
        bearer_here(req)
    });
    let c = client(&registry.host(), None);
    let rt = rt();
    // HEAD asks for pull,push; the GET after it (pull) needs no second token.
    assert!(!rt.block_on(c.manifest_exists("team/app", "v1")).unwrap());
    assert!(rt
        .block_on(c.get_manifest("team/app", "v1"))
        .unwrap()
        .is_none());
    let tokens: Vec<String> = registry
        .seen()
        .iter()
        .filter(|r| r.target.starts_with("/token"))
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    // Another repository's pull is not served by it.
    assert!(rt
        .block_on(c.get_manifest("team/other", "v1"))
        .unwrap()
        .is_none());
    let count = registry
        .seen()
        .iter()
        .filter(|r| r.target.starts_with("/token"))
        .count();
    assert_eq!(count, 2);
}

#[test]
fn oci_subject_and_the_referrers_endpoint_say_whether_the_registry_has_the_api() {
    let with_api = Fake::start(|req| {
        basic_gate(req).unwrap_or_else(|| match req.method.as_str() {
            "PUT" => answer(201, &[("OCI-Subject", "sha256:abc")], b""),
            _ => answer(200, &[], br#"{"schemaVersion":2,"manifests":[]}"#),
        })
    });
    let without = Fake::start(|req| {
        basic_gate(req).unwrap_or_else(|| match req.method.as_str() {
            "PUT" => answer(201, &[], b""),
            _ => answer(404, &[], b""),
        })
    });
    let rt = rt();
    let d = Digest::of(b"subject");
    let doc = br#"{"schemaVersion":2}"#;
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let c = client(&with_api.host(), None);
    assert!(
        rt.block_on(c.put_manifest("team/app", d.as_str(), mt, doc))
            .unwrap()
            .referrers_api
    );
    assert!(rt.block_on(c.referrers("team/app", &d)).unwrap().is_some());
    let target = with_api.seen().last().unwrap().target.clone();
    assert_eq!(target, format!("/v2/team/app/referrers/{d}"));
    let c = client(&without.host(), None);
    assert!(
        !rt.block_on(c.put_manifest("team/app", d.as_str(), mt, doc))
            .unwrap()
            .referrers_api
    );
    assert!(rt.block_on(c.referrers("team/app", &d)).unwrap().is_none());
}

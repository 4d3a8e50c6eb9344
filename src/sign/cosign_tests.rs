//! Unit tests of `cosign`: the payload's exact bytes and strict reading, the signature tag, the
//! signature manifest (cosign's layout, merging with another tool's, idempotence).

use super::cosign::*;
use super::SignError;
use crate::digest::Digest;
use proptest::prelude::*;
use serde_json::Value;

fn digest(n: u8) -> Digest {
    Digest::of(&[n])
}

fn sig(payload: &[u8], s: &str) -> Signature {
    Signature {
        payload: payload.to_vec(),
        signature_b64: s.to_string(),
    }
}

#[test]
fn payload_is_cosigns_exact_bytes() {
    let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let p = payload("registry.example:5000/shop/cart", &d);
    let want = format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"registry.example:5000/shop/cart\"}},\"image\":{{\"docker-manifest-digest\":\"sha256:{}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}",
        "ab".repeat(32)
    );
    assert_eq!(String::from_utf8(p.clone()).unwrap(), want);
    let parsed = parse_payload(&p).unwrap();
    assert_eq!(parsed.docker_reference, "registry.example:5000/shop/cart");
    assert_eq!(parsed.manifest_digest, d);
}

#[test]
fn payloads_are_read_strictly() {
    let d = digest(1);
    let good: Value = serde_json::from_slice(&payload("r/x", &d)).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    // cosign's annotations go in `optional`, an object: accepted.
    let annotated = with(&|v| v["optional"] = serde_json::json!({"creator": "me", "x": 1}));
    assert_eq!(parse_payload(&annotated).unwrap().manifest_digest, d);
    for (bad, why) in [
        (
            with(&|v| v["critical"]["type"] = "other".into()),
            "critical.type",
        ),
        (
            with(&|v| v["critical"]["extra"] = 1.into()),
            "unknown field",
        ),
        (with(&|v| v["extra"] = 1.into()), "unknown field"),
        (with(&|v| v["optional"] = 5.into()), "optional"),
        (
            with(&|v| {
                v.as_object_mut().unwrap().remove("optional");
            }),
            "optional",
        ),
        (
            with(&|v| v["critical"]["image"]["docker-manifest-digest"] = "sha512:00".into()),
            "digest",
        ),
        (
            with(&|v| v["critical"]["identity"]["docker-reference"] = 3.into()),
            "invalid type",
        ),
        (b"[]".to_vec(), "simple-signing"),
        (vec![b' '; MAX_PAYLOAD + 1], "more than"),
    ] {
        let e = parse_payload(&bad).unwrap_err();
        assert!(matches!(e, SignError::Payload(_)));
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
}

#[test]
fn signature_tag_is_cosigns() {
    let d: Digest = format!("sha256:{}", "0f".repeat(32)).parse().unwrap();
    assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "0f".repeat(32)));
}

#[test]
fn a_new_signature_manifest_has_cosigns_layout() {
    let (p1, p2) = (payload("r/a", &digest(1)), payload("r/a", &digest(2)));
    let out = merge_signatures(None, &[sig(&p1, "c2lnMQ=="), sig(&p2, "c2lnMg==")]).unwrap();
    assert_eq!(out.media_type, "application/vnd.oci.image.manifest.v1+json");
    let m: Value = serde_json::from_slice(&out.manifest).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["mediaType"], MEDIA_TYPE_SIMPLESIGNING);
    assert_eq!(layers[0]["digest"], Digest::of(&p1).as_str());
    assert_eq!(layers[0]["size"], p1.len());
    assert_eq!(layers[0]["annotations"][ANNOTATION_SIGNATURE], "c2lnMQ==");
    // Blobs: the config first, then each payload; the config lists the layers as diff_ids.
    assert_eq!(out.blobs.len(), 3);
    let (config_digest, config) = &out.blobs[0];
    assert_eq!(m["config"]["digest"], config_digest.as_str());
    assert_eq!(m["config"]["size"], config.len());
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(*config_digest, Digest::of(config));
    let c: Value = serde_json::from_slice(config).unwrap();
    assert_eq!(c["rootfs"]["type"], "layers");
    assert_eq!(c["rootfs"]["diff_ids"][1], Digest::of(&p2).as_str());
    assert_eq!(c["history"].as_array().unwrap().len(), 2);
    assert_eq!(out.blobs[1], (Digest::of(&p1), p1.clone()));
    assert_eq!(
        signatures_in(&out.manifest).unwrap(),
        vec![
            (Digest::of(&p1), "c2lnMQ==".to_string()),
            (Digest::of(&p2), "c2lnMg==".to_string())
        ]
    );
    // Deterministic.
    let again = merge_signatures(None, &[sig(&p1, "c2lnMQ=="), sig(&p2, "c2lnMg==")]).unwrap();
    assert_eq!(again, out);
}

#[test]
fn adding_the_same_signature_again_changes_nothing() {
    let p = payload("r/a", &digest(1));
    let first = merge_signatures(None, &[sig(&p, "AAAA"), sig(&p, "AAAA")]).unwrap();
    assert_eq!(signatures_in(&first.manifest).unwrap().len(), 1);
    let second = merge_signatures(Some(&first.manifest), &[sig(&p, "AAAA")]).unwrap();
    assert_eq!(second.manifest, first.manifest);
    assert!(second.blobs.is_empty());
}

#[test]
fn one_payload_signed_by_two_keys_is_one_blob_and_two_layers() {
    let p = payload("r/a", &digest(1));
    let out = merge_signatures(None, &[sig(&p, "a2V5MQ=="), sig(&p, "a2V5Mg==")]).unwrap();
    assert_eq!(signatures_in(&out.manifest).unwrap().len(), 2);
    assert_eq!(out.blobs.len(), 2, "the config and one payload");
}

/// What skopeo (containers/image) writes, with an attestation layer another tool added.
fn foreign_manifest(p: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(9).as_str(), "size": 10},
        "layers": [
            {"mediaType": MEDIA_TYPE_SIMPLESIGNING, "digest": Digest::of(p).as_str(), "size": p.len(),
             "annotations": {ANNOTATION_SIGNATURE: "dGhlaXJz", "dev.sigstore.cosign/bundle": "{}"}},
            {"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": digest(8).as_str(), "size": 5,
             "annotations": {"predicateType": "https://slsa.dev/provenance/v1"}, "urls": ["https://x"]},
        ],
        "annotations": {"org.example": "kept"},
    }))
    .unwrap()
}

#[test]
fn merging_into_another_tools_manifest_keeps_its_layers_and_annotations() {
    let theirs_payload = payload("r/a", &digest(1));
    let existing = foreign_manifest(&theirs_payload);
    let ours = payload("r/a", &digest(1));
    let out = merge_signatures(Some(&existing), &[sig(&ours, "b3Vycw==")]).unwrap();
    let m: Value = serde_json::from_slice(&out.manifest).unwrap();
    let old: Value = serde_json::from_slice(&existing).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[0], old["layers"][0]);
    assert_eq!(
        layers[1], old["layers"][1],
        "the attestation and its urls kept"
    );
    assert_eq!(layers[2]["annotations"][ANNOTATION_SIGNATURE], "b3Vycw==");
    assert_eq!(m["annotations"]["org.example"], "kept");
    assert_ne!(m["config"]["digest"], old["config"]["digest"]);
    let c: Value = serde_json::from_slice(&out.blobs[0].1).unwrap();
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    // Same payload bytes as theirs: no blob to send but the config.
    assert_eq!(out.blobs.len(), 1);
    let sigs = signatures_in(&out.manifest).unwrap();
    assert_eq!(
        sigs.len(),
        2,
        "the attestation is not a signature: {sigs:?}"
    );
    assert_eq!(sigs[0].1, "dGhlaXJz");
}

#[test]
fn signature_manifests_of_other_kinds_are_refused() {
    for bad in [
        &br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#[..],
        br#"{"schemaVersion":1}"#,
        b"not json",
        br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"d","size":-1},"layers":[]}"#,
    ] {
        assert!(matches!(signatures_in(bad), Err(SignError::Manifest(_))));
        assert!(merge_signatures(Some(bad), &[sig(b"p", "AAAA")]).is_err());
    }
    let bad_digest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "x", "digest": "d", "size": 1},
        "layers": [{"mediaType": MEDIA_TYPE_SIMPLESIGNING, "digest": "md5:00", "size": 1,
                    "annotations": {ANNOTATION_SIGNATURE: "AAAA"}}],
    });
    let e = signatures_in(&serde_json::to_vec(&bad_digest).unwrap()).unwrap_err();
    assert!(e.to_string().contains("digest"), "{e}");
}

proptest! {
    // proptest's defaults: 256 cases, or PROPTEST_CASES.

    #[test]
    fn payloads_round_trip(reference in "\\PC{0,80}", n in any::<u8>()) {
        let d = digest(n);
        let p = parse_payload(&payload(&reference, &d)).unwrap();
        prop_assert_eq!(p.docker_reference, reference);
        prop_assert_eq!(p.manifest_digest, d);
    }

    #[test]
    fn merging_is_idempotent_and_keeps_every_signature(
        sigs in prop::collection::vec((0u8..4, "[A-Za-z0-9+/]{4}"), 0..6),
        split in 0usize..6,
    ) {
        let all: Vec<Signature> = sigs
            .iter()
            .map(|(n, s)| sig(&payload("r/a", &digest(*n)), s))
            .collect();
        let split = split.min(all.len());
        let first = merge_signatures(None, &all[..split]).unwrap();
        let second = merge_signatures(Some(&first.manifest), &all[split..]).unwrap();
        let again = merge_signatures(Some(&second.manifest), &all).unwrap();
        prop_assert_eq!(&again.manifest, &second.manifest);
        prop_assert!(again.blobs.is_empty());
        let found = signatures_in(&second.manifest).unwrap();
        for s in &all {
            prop_assert!(found.contains(&(Digest::of(&s.payload), s.signature_b64.clone())));
        }
        let distinct: std::collections::BTreeSet<_> =
            all.iter().map(|s| (s.payload.clone(), s.signature_b64.clone())).collect();
        prop_assert_eq!(found.len(), distinct.len());
    }
}

//! Unit tests of the transfer against an in-memory registry: order of writes, failures,
//! deduplication across repositories, mounts and their fallbacks, base layers.

use super::memory::{Fake, MountMode};
use super::*;
use crate::oci::read::{BlobNeed, GraphReader, Want};
use crate::oci::{BlobAt, Doc};
use crate::spec::{
    MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_MANIFEST,
};
use serde_json::json;

/// An image of one platform with layers of `contents` (files in `dir`), its layers also at
/// `base` when given; tagged `tags`.
fn image(
    dir: &std::path::Path,
    service: &str,
    contents: &[&[u8]],
    base: Option<RepoAt>,
    tags: &[&str],
) -> TransferImage {
    let file = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(dir.join(d.hex()), bytes).unwrap();
        d
    };
    let layers: Vec<serde_json::Value> = contents
        .iter()
        .map(|c| json!({"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": file(c).as_str(), "size": c.len()}))
        .collect();
    let diff_ids: Vec<String> = contents.iter().map(|c| Digest::of(c).to_string()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_digest = file(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest.as_str(), "size": config.len()},
        "layers": layers
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [{"mediaType": MEDIA_TYPE_MANIFEST, "digest": Digest::of(&manifest).as_str(),
                       "size": manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}}]
    }))
    .unwrap();
    let top = Doc {
        digest: Digest::of(&index),
        media_type: MEDIA_TYPE_INDEX.into(),
        bytes: index,
    };
    let mut reader = GraphReader::new(service, top, Want::Every).unwrap();
    let docs = [manifest, config];
    loop {
        let wanted = reader.wanted().unwrap();
        if wanted.is_empty() {
            break;
        }
        for n in wanted {
            let bytes = docs
                .iter()
                .find(|d| Digest::of(d) == n.digest)
                .unwrap()
                .clone();
            reader.give(&n, bytes).unwrap();
        }
    }
    let graph = reader
        .finish(&mut |need: &BlobNeed<'_>| {
            let mut at = vec![BlobAt::File(dir.join(need.digest.hex()))];
            if let (Some(b), false) = (&base, need.is_config) {
                at = vec![BlobAt::Registry(b.clone())];
            }
            Ok(at)
        })
        .unwrap();
    TransferImage {
        service: service.into(),
        repository: format!("shop/{service}"),
        graph,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        attachments: vec![],
        signatures: vec![],
        attachment_blobs: vec![],
    }
}

fn run(registry: &Fake, images: &[TransferImage]) -> Vec<PushReport> {
    let opts = TransferOptions {
        jobs: 4,
        dry_run: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(transfer(registry, images, &opts, &|_| {}))
}

fn position(log: &[String], prefix: &str) -> usize {
    log.iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {log:#?}"))
}

#[test]
fn blobs_then_manifests_then_index_then_tags() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(
        dir.path(),
        "cart",
        &[b"layer one", b"layer two"],
        None,
        &["v1", "latest"],
    );
    let fake = Fake::new(MountMode::Link);
    let reports = run(&fake, std::slice::from_ref(&img));
    assert_eq!(reports[0].error, None);
    assert_eq!(reports[0].blobs_uploaded, 3, "config and two layers");
    let log = fake.log();
    let manifest = img.graph.images[0].doc.digest.hex()[..6].to_string();
    let index = img.graph.top.digest.hex()[..6].to_string();
    let last_upload = log.iter().rposition(|l| l.starts_with("upload")).unwrap();
    let m = position(&log, &format!("manifest shop/cart {manifest}"));
    let i = position(&log, &format!("manifest shop/cart {index}"));
    let v1 = position(&log, "manifest shop/cart v1");
    let latest = position(&log, "manifest shop/cart latest");
    assert!(
        last_upload < m && m < i && i < v1 && v1 < latest,
        "{log:#?}"
    );
    assert_eq!(reports[0].tags, ["v1", "latest"]);
}

#[test]
fn a_service_whose_blob_fails_gets_no_manifest_and_no_tag_and_the_others_do() {
    let dir = tempfile::tempdir().unwrap();
    let bad = image(dir.path(), "cart", &[b"refused layer"], None, &["v1"]);
    let good = image(dir.path(), "ui", &[b"fine layer"], None, &["v1"]);
    let fake = Fake::new(MountMode::Link);
    fake.state
        .lock()
        .unwrap()
        .failing
        .insert(Digest::of(b"refused layer"));
    let reports = run(&fake, &[bad, good]);
    let e = reports[0].error.as_deref().unwrap();
    assert!(
        e.starts_with("blob sha256:") && e.contains("upload refused"),
        "{e}"
    );
    assert!(
        reports[0].tags.is_empty(),
        "a failed service claims no tags"
    );
    assert_eq!(reports[1].error, None);
    let log = fake.log();
    assert!(
        !log.iter().any(|l| l.starts_with("manifest shop/cart")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "manifest shop/ui v1"), "{log:#?}");
}

#[test]
fn a_blob_shared_by_two_repositories_is_uploaded_once_and_mounted_into_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let shared: &[u8] = b"shared runtime layer";
    let a = image(dir.path(), "cart", &[shared, b"cart app"], None, &["v1"]);
    let b = image(
        dir.path(),
        "orders",
        &[shared, b"orders app"],
        None,
        &["v1"],
    );
    let fake = Fake::new(MountMode::Link);
    let reports = run(&fake, &[a, b]);
    let hex = Digest::of(shared).hex()[..6].to_string();
    let log = fake.log();
    let uploads = log
        .iter()
        .filter(|l| l.starts_with("upload") && l.contains(&hex))
        .count();
    assert_eq!(uploads, 1, "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l == &format!("mount shop/orders {hex} from shop/cart")),
        "{log:#?}"
    );
    assert_eq!(reports[1].blobs_mounted, 1);
    assert!(reports.iter().all(|r| r.error.is_none()));
}

#[test]
fn a_mount_answered_with_a_session_or_refused_falls_back_to_an_upload() {
    for mode in [MountMode::Session, MountMode::Fail] {
        let dir = tempfile::tempdir().unwrap();
        let shared: &[u8] = b"shared layer";
        let a = image(dir.path(), "cart", &[shared], None, &["v1"]);
        let b = image(dir.path(), "orders", &[shared], None, &["v1"]);
        let fake = Fake::new(mode);
        let reports = run(&fake, &[a, b]);
        assert!(reports.iter().all(|r| r.error.is_none()), "{reports:#?}");
        let hex = Digest::of(shared).hex()[..6].to_string();
        let second = fake
            .log()
            .into_iter()
            .find(|l| l.starts_with(&format!("upload shop/orders {hex}")))
            .expect("uploaded into the second repository");
        assert_eq!(
            second.ends_with("into session"),
            mode == MountMode::Session,
            "{second}"
        );
        assert_eq!(reports[1].blobs_uploaded, 2, "config and layer");
    }
}

#[test]
fn an_image_already_there_only_gets_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "cart", &[b"layer"], None, &["v2"]);
    let fake = Fake::new(MountMode::Link);
    fake.state
        .lock()
        .unwrap()
        .manifests
        .insert(("shop/cart".into(), img.graph.top.digest.to_string()));
    let reports = run(&fake, std::slice::from_ref(&img));
    assert_eq!(fake.log(), ["manifest shop/cart v2"]);
    assert_eq!(reports[0].blobs_skipped, 2);
}

#[test]
fn base_layers_are_mounted_in_the_same_registry_and_streamed_from_another() {
    let dir = tempfile::tempdir().unwrap();
    let same = RepoAt {
        host: "registry.test".into(),
        repository: "base/static".into(),
    };
    let fake = Fake::new(MountMode::Link);
    let layer: &[u8] = b"base layer";
    fake.state
        .lock()
        .unwrap()
        .blobs
        .insert(("base/static".into(), Digest::of(layer)));
    let img = image(dir.path(), "cart", &[layer], Some(same), &["v1"]);
    let reports = run(&fake, &[img]);
    assert_eq!(reports[0].blobs_mounted, 1);

    let other = RepoAt {
        host: "elsewhere.test".into(),
        repository: "library/alpine".into(),
    };
    let img = image(
        dir.path(),
        "ui",
        &[b"other base layer"],
        Some(other),
        &["v1"],
    );
    let fake = Fake::new(MountMode::Link);
    let reports = run(&fake, &[img]);
    assert_eq!(reports[0].blobs_copied, 1);
    assert!(fake
        .log()
        .iter()
        .any(|l| l.ends_with("(stream from elsewhere.test/library/alpine)")));
}

#[test]
fn a_rerun_on_an_immutable_repository_writes_no_tag_and_a_moved_tag_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(
        dir.path(),
        "cart",
        &[b"layer"],
        None,
        &["abc1234", "latest"],
    );
    let fake = Fake::new(MountMode::Link);
    fake.state.lock().unwrap().immutable = true;
    assert_eq!(run(&fake, std::slice::from_ref(&img))[0].error, None);
    // The same image again (a rerun): every tag already names it; nothing is written.
    let before = fake.log().len();
    let again = run(&fake, std::slice::from_ref(&img));
    assert_eq!(again[0].error, None);
    assert_eq!(again[0].tags, ["abc1234", "latest"]);
    assert_eq!(fake.log().len(), before, "{:#?}", fake.log());
    // Another image under the same tag: refused, naming the tag and both digests.
    let other = image(dir.path(), "cart", &[b"changed layer"], None, &["abc1234"]);
    let r = run(&fake, std::slice::from_ref(&other));
    let e = r[0].error.as_deref().unwrap();
    assert!(
        e.starts_with("tag abc1234 in shop/cart already names"),
        "{e}"
    );
    let (old, new) = (
        img.graph.top.digest.as_str(),
        other.graph.top.digest.as_str(),
    );
    assert!(e.contains(old) && e.contains(new), "{e}");
    assert!(e.contains("IMMUTABLE"), "{e}");
    assert!(r[0].tags.is_empty());
}

#[test]
fn a_mutable_repository_moves_a_tag_and_skips_one_that_already_names_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(MountMode::Link);
    let first = image(dir.path(), "cart", &[b"one"], None, &["latest"]);
    let second = image(dir.path(), "cart", &[b"two"], None, &["latest"]);
    run(&fake, std::slice::from_ref(&first));
    assert_eq!(run(&fake, std::slice::from_ref(&second))[0].error, None);
    let key = ("shop/cart".to_string(), "latest".to_string());
    assert_eq!(
        fake.state.lock().unwrap().tags[&key],
        second.graph.top.digest
    );
    let puts = |log: &[String]| {
        log.iter()
            .filter(|l| *l == "manifest shop/cart latest")
            .count()
    };
    assert_eq!(puts(&fake.log()), 2);
    run(&fake, std::slice::from_ref(&second));
    assert_eq!(puts(&fake.log()), 2, "already there: not written again");
}

/// `img` with an SBOM about its first platform manifest and a provenance statement about
/// its index.
fn with_attachments(mut img: TransferImage) -> TransferImage {
    use crate::oci::referrers::{artifact, Subject};
    let subject = |d: &Doc| Subject {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.bytes.len() as u64,
    };
    let t = "1970-01-01T00:00:00Z";
    let sbom = artifact(
        "application/spdx+json",
        b"{\"spdx\":1}".to_vec(),
        &subject(&img.graph.images[0].doc),
        t,
    );
    let prov = artifact(
        "application/vnd.in-toto+json",
        b"{\"p\":1}".to_vec(),
        &subject(&img.graph.top),
        t,
    );
    img.attachments = vec![
        Attachment {
            kind: AttachKind::Sbom,
            artifact: sbom,
        },
        Attachment {
            kind: AttachKind::Provenance,
            artifact: prov,
        },
    ];
    img
}

#[test]
fn attachments_go_after_the_index_and_before_the_tags_and_the_tag_schema_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    let fake = Fake::new(MountMode::Link);
    let reports = run(&fake, std::slice::from_ref(&img));
    assert_eq!(reports[0].error, None);
    let log = fake.log();
    let index = img.graph.top.digest.hex()[..6].to_string();
    let i = position(&log, &format!("manifest shop/cart {index}"));
    let sbom = img.attachments[0].artifact.digest.hex()[..6].to_string();
    let s = position(&log, &format!("manifest shop/cart {sbom}"));
    let m_tag = referrers_tag_of(&img.graph.images[0].doc.digest);
    let t1 = position(&log, &format!("manifest shop/cart {m_tag}"));
    let t2 = position(
        &log,
        &format!(
            "manifest shop/cart {}",
            referrers_tag_of(&img.graph.top.digest)
        ),
    );
    let v1 = position(&log, "manifest shop/cart v1");
    assert!(i < s && s < t1 && t1 < v1 && t2 < v1, "{log:#?}");
    // The referrers tag of the manifest lists the SBOM; of the index, the provenance.
    let st = fake.state.lock().unwrap();
    let listed =
        crate::oci::referrers::parse_index(&st.docs[&("shop/cart".to_string(), m_tag)]).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, img.attachments[0].artifact.digest);
    assert_eq!(listed[0].artifact_type, "application/spdx+json");
    drop(st);
    assert_eq!(reports[0].attached.len(), 2);
    assert!(
        reports[0].attached[0].stored.starts_with("tag sha256-"),
        "{:?}",
        reports[0].attached
    );
    // A rerun writes no new referrers index: it lists them already.
    let before = fake.log().len();
    run(&fake, std::slice::from_ref(&img));
    let again: Vec<String> = fake.log()[before..].to_vec();
    assert!(!again.iter().any(|l| l.contains("sha256-")), "{again:#?}");
}

fn referrers_tag_of(d: &Digest) -> String {
    crate::oci::referrers::referrers_tag(d)
}

#[test]
fn a_registry_with_the_referrers_api_gets_no_referrers_tag() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    let fake = Fake::new(MountMode::Link);
    fake.state.lock().unwrap().referrers_api = true;
    let reports = run(&fake, std::slice::from_ref(&img));
    assert_eq!(reports[0].error, None);
    assert!(
        !fake.log().iter().any(|l| l.contains("sha256-")),
        "{:#?}",
        fake.log()
    );
    assert!(reports[0]
        .attached
        .iter()
        .all(|a| a.stored == "referrers API"));
}

#[test]
fn another_tools_referrers_survive_and_a_broken_referrers_tag_fails_the_image_untagged() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    let fake = Fake::new(MountMode::Link);
    let m_tag = referrers_tag_of(&img.graph.images[0].doc.digest);
    let other = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_INDEX}","manifests":[{{"mediaType":"{MEDIA_TYPE_MANIFEST}","digest":"{}","size":9,"artifactType":"application/x-theirs"}}]}}"#,
        Digest::of(b"theirs")
    );
    fake.state
        .lock()
        .unwrap()
        .docs
        .insert(("shop/cart".into(), m_tag.clone()), other.into_bytes());
    assert_eq!(run(&fake, std::slice::from_ref(&img))[0].error, None);
    let st = fake.state.lock().unwrap();
    let listed =
        crate::oci::referrers::parse_index(&st.docs[&("shop/cart".to_string(), m_tag.clone())])
            .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].artifact_type, "application/x-theirs");
    drop(st);

    let fake = Fake::new(MountMode::Link);
    fake.state
        .lock()
        .unwrap()
        .docs
        .insert(("shop/cart".into(), m_tag), b"not json".to_vec());
    let r = &run(&fake, std::slice::from_ref(&img))[0];
    assert!(
        r.error.as_deref().unwrap_or("").contains("referrers tag"),
        "{:?}",
        r.error
    );
    assert!(r.tags.is_empty());
    assert!(
        !fake.log().iter().any(|l| l.ends_with(" v1")),
        "{:#?}",
        fake.log()
    );
}

#[test]
fn a_dry_run_says_what_would_be_attached_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    let fake = Fake::new(MountMode::Link);
    let opts = TransferOptions {
        jobs: 2,
        dry_run: true,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let reports = rt.block_on(transfer(&fake, std::slice::from_ref(&img), &opts, &|_| {}));
    assert_eq!(reports[0].attached.len(), 2);
    assert!(reports[0]
        .attached
        .iter()
        .all(|a| a.stored == "would attach"));
    assert!(fake.log().is_empty(), "{:#?}", fake.log());
}

#[test]
fn a_rerun_writes_no_attachment_and_an_api_registry_never_gets_a_referrers_tag() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    for api in [false, true] {
        let fake = Fake::new(MountMode::Link);
        fake.state.lock().unwrap().referrers_api = api;
        run(&fake, std::slice::from_ref(&img));
        let before = fake.log().len();
        let again = &run(&fake, std::slice::from_ref(&img))[0];
        assert_eq!(again.error, None);
        assert_eq!(
            fake.log()[before..].to_vec(),
            Vec::<String>::new(),
            "api {api}"
        );
        let want = if api { "referrers API" } else { "tag sha256-" };
        assert!(
            again.attached.iter().all(|a| a.stored.starts_with(want)),
            "{:?}",
            again.attached
        );
        let tags = fake.log().iter().filter(|l| l.contains(" sha256-")).count();
        assert_eq!(tags > 0, !api, "{:#?}", fake.log());
    }
}

#[test]
fn an_artifact_stored_before_its_referrers_tag_was_written_gets_the_tag_on_the_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    let fake = Fake::new(MountMode::Link);
    run(&fake, std::slice::from_ref(&img));
    // As if the run had died between the artifact's PUT and the referrers tag's.
    let m_tag = referrers_tag_of(&img.graph.images[0].doc.digest);
    fake.state
        .lock()
        .unwrap()
        .docs
        .remove(&("shop/cart".to_string(), m_tag.clone()));
    run(&fake, std::slice::from_ref(&img));
    let st = fake.state.lock().unwrap();
    let listed =
        crate::oci::referrers::parse_index(&st.docs[&("shop/cart".to_string(), m_tag)]).unwrap();
    assert_eq!(listed[0].digest, img.attachments[0].artifact.digest);
}

#[test]
fn a_blob_several_artifacts_share_is_uploaded_once_into_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_attachments(image(dir.path(), "cart", &[b"l1"], None, &["v1"]));
    let fake = Fake::new(MountMode::Link);
    assert_eq!(run(&fake, std::slice::from_ref(&img))[0].error, None);
    let empty = Digest::of(crate::oci::referrers::EMPTY_JSON).hex()[..6].to_string();
    let uploads = fake
        .log()
        .iter()
        .filter(|l| l.starts_with(&format!("upload shop/cart {empty}")))
        .count();
    assert_eq!(uploads, 1, "{:#?}", fake.log());
}

/// A layer blob held by repository `repo` of the fake.
fn held(fake: &Fake, repo: &str, bytes: &[u8]) -> BlobRef {
    let digest = Digest::of(bytes);
    let mut s = fake.state.lock().unwrap();
    s.blobs.insert((repo.into(), digest.clone()));
    BlobRef {
        digest,
        size: bytes.len() as u64,
        media_type: MEDIA_TYPE_LAYER_GZIP.into(),
        at: vec![BlobAt::Registry(RepoAt {
            host: "registry.test".into(),
            repository: repo.into(),
        })],
    }
}

#[test]
fn cache_documents_sharing_blobs_store_each_once_and_a_rerun_writes_nothing() {
    let fake = Fake::new(MountMode::Link);
    let (x, y) = (held(&fake, "cart", b"x"), held(&fake, "cart", b"y"));
    let y_too = held(&fake, "ui", b"y");
    let docs = vec![
        CacheDoc {
            tag: "cart-main".into(),
            manifest: b"{\"cart\":1}".to_vec(),
            blobs: vec![x.clone(), y],
        },
        CacheDoc {
            tag: "ui-main".into(),
            manifest: b"{\"ui\":1}".to_vec(),
            blobs: vec![y_too],
        },
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored = rt.block_on(store_cache(&fake, "cache", &docs));
    assert!(stored.iter().all(|r| matches!(r, Ok(true))));
    let log = fake.log();
    let into_cache = |what: &str| log.iter().filter(|l| l.starts_with(what)).count();
    assert_eq!(into_cache("mount cache"), 2, "x and y once each: {log:?}");
    assert_eq!(
        into_cache("upload cache"),
        1,
        "the empty config once: {log:?}"
    );
    assert_eq!(into_cache("manifest cache"), 2, "{log:?}");
    let again = rt.block_on(store_cache(&fake, "cache", &docs));
    assert!(again.iter().all(|r| matches!(r, Ok(false))));
    assert_eq!(fake.log().len(), log.len(), "a rerun writes nothing");

    // A blob that cannot be had fails only the documents naming it.
    let lost = BlobRef {
        at: vec![],
        ..held(&Fake::new(MountMode::Link), "elsewhere", b"lost")
    };
    let docs = vec![
        CacheDoc {
            tag: "orders-main".into(),
            manifest: b"{\"orders\":1}".to_vec(),
            blobs: vec![lost],
        },
        CacheDoc {
            tag: "cart-feature".into(),
            manifest: b"{\"cart\":2}".to_vec(),
            blobs: vec![x],
        },
    ];
    let stored = rt.block_on(store_cache(&fake, "cache", &docs));
    assert!(matches!(stored[0], Err(TransferError::Blob { .. })));
    assert!(matches!(stored[1], Ok(true)));
}

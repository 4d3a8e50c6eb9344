//! Unit tests of the one reader: media types, the platform rule through the reader, what it
//! asks for, and what it refuses.

use super::read::{kind_of, DocKind, GraphReader, Want};
use super::{BlobAt, Doc, ImageGraph, OciError};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::spec::*;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Documents by digest, and a helper to add them.
#[derive(Default)]
struct Store(HashMap<Digest, Vec<u8>>);

impl Store {
    fn put(&mut self, v: &Value) -> (Digest, usize) {
        let bytes = serde_json::to_vec(v).unwrap();
        let d = Digest::of(&bytes);
        let n = bytes.len();
        self.0.insert(d.clone(), bytes);
        (d, n)
    }

    /// A manifest with one layer for `os/arch`, and `diff_ids` diff_ids in its config.
    fn image(&mut self, arch: &str, diff_ids: usize) -> (Digest, usize) {
        let ids: Vec<String> = (0..diff_ids)
            .map(|i| Digest::of(format!("{arch}{i}").as_bytes()).to_string())
            .collect();
        let (c, cn) = self.put(&json!({"architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ids}}));
        let layer = Digest::of(format!("layer {arch}").as_bytes());
        self.put(
            &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
            "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": c.as_str(), "size": cn},
            "layers": [{"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": layer.as_str(), "size": 7}]}),
        )
    }

    fn doc(&self, d: &Digest, media: &str) -> Doc {
        Doc {
            digest: d.clone(),
            media_type: media.into(),
            bytes: self.0[d].clone(),
        }
    }

    /// Drive `reader` to the end; also returns every digest it asked for.
    fn read(
        &self,
        mut reader: GraphReader,
    ) -> Result<(ImageGraph, Vec<(Digest, DocKind)>), OciError> {
        let mut asked = Vec::new();
        loop {
            let wanted = reader.wanted()?;
            if wanted.is_empty() {
                break;
            }
            for n in wanted {
                asked.push((n.digest.clone(), n.kind));
                reader.give(&n, self.0[&n.digest].clone())?;
            }
        }
        let graph = reader.finish(&mut |_| Ok(vec![BlobAt::File("x".into())]))?;
        Ok((graph, asked))
    }
}

fn entry(d: &Digest, n: usize, platform: Option<(&str, &str)>) -> Value {
    let mut e = json!({"mediaType": MEDIA_TYPE_MANIFEST, "digest": d.as_str(), "size": n});
    if let Some((os, arch)) = platform {
        e["platform"] = json!({"os": os, "architecture": arch});
    }
    e
}

fn p(s: &str) -> Platform {
    s.parse().unwrap()
}

#[test]
fn kinds_by_media_type_or_shape() {
    assert_eq!(
        kind_of(br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#).as_deref(),
        Some(MEDIA_TYPE_DOCKER_LIST)
    );
    assert_eq!(
        kind_of(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
        Some(MEDIA_TYPE_INDEX)
    );
    assert_eq!(
        kind_of(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).as_deref(),
        Some(MEDIA_TYPE_MANIFEST)
    );
    assert_eq!(kind_of(b"not json"), None);
}

#[test]
fn only_the_chosen_platforms_are_read_and_attestations_are_skipped() {
    let mut s = Store::default();
    let (amd, an) = s.image("amd64", 1);
    let (att, tn) = s.image("unknown", 1);
    let (arm, rn) = s.image("arm64", 1);
    let (top, _) = s.put(
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [
            entry(&amd, an, Some(("linux", "amd64"))),
            entry(&att, tn, Some(("unknown", "unknown"))),
            entry(&arm, rn, Some(("linux", "arm64"))),
        ]}),
    );
    let want = Want::Platforms(vec![p("linux/arm64")]);
    let reader = GraphReader::new("b", s.doc(&top, MEDIA_TYPE_INDEX), want).unwrap();
    let (graph, asked) = s.read(reader).unwrap();
    assert_eq!(graph.images.len(), 1);
    assert_eq!(graph.images[0].doc.digest, arm);
    assert_eq!(graph.images[0].platform, "linux/arm64");
    assert_eq!(
        asked.len(),
        2,
        "the arm64 manifest and its config only: {asked:?}"
    );
    assert_eq!(asked[0], (arm, DocKind::Manifest));
    assert_eq!(asked[1].1, DocKind::Config);
    assert_eq!(graph.blobs.len(), 2, "config and layer");
}

#[test]
fn an_entry_without_a_declared_platform_is_matched_by_its_config() {
    let mut s = Store::default();
    let (amd, an) = s.image("amd64", 1);
    let (arm, rn) = s.image("arm64", 1);
    let (top, _) = s.put(
        &json!({"schemaVersion": 2, "manifests": [entry(&amd, an, None), entry(&arm, rn, None)]}),
    );
    let want = Want::Platforms(vec![p("linux/arm64"), p("linux/amd64")]);
    let reader = GraphReader::new("b", s.doc(&top, MEDIA_TYPE_INDEX), want).unwrap();
    let (graph, _) = s.read(reader).unwrap();
    let got: Vec<&str> = graph.images.iter().map(|i| i.platform.as_str()).collect();
    assert_eq!(got, ["linux/arm64", "linux/amd64"]);
    let e = GraphReader::new(
        "b",
        s.doc(&top, MEDIA_TYPE_INDEX),
        Want::Platforms(vec![p("linux/s390x")]),
    )
    .map(|r| s.read(r))
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no image for linux/s390x") && e.contains("(it has: linux/amd64, linux/arm64)"),
        "{e}"
    );
}

#[test]
fn a_single_manifest_serves_only_its_configs_platform() {
    let mut s = Store::default();
    let (amd, _) = s.image("amd64", 1);
    let doc = s.doc(&amd, MEDIA_TYPE_MANIFEST);
    let ok = GraphReader::new("b", doc.clone(), Want::Platforms(vec![p("linux/amd64")])).unwrap();
    assert_eq!(s.read(ok).unwrap().0.images[0].platform, "linux/amd64");
    let wrong = GraphReader::new("b", doc, Want::Platforms(vec![p("linux/arm64")])).unwrap();
    let e = s.read(wrong).unwrap_err().to_string();
    assert!(
        e.contains("no image for linux/arm64/v8") && e.contains("(it has: linux/amd64)"),
        "{e}"
    );
}

#[test]
fn damaged_documents_and_inconsistent_images_are_refused() {
    let mut s = Store::default();
    let (bad, bn) = s.image("amd64", 2); // one layer, two diff_ids
    let (top, _) = s.put(
        &json!({"schemaVersion": 2, "manifests": [entry(&bad, bn, Some(("linux", "amd64")))]}),
    );
    let reader = GraphReader::new("b", s.doc(&top, MEDIA_TYPE_INDEX), Want::Every).unwrap();
    let e = s.read(reader).unwrap_err().to_string();
    assert!(
        e.contains("has 1 layers but its config lists 2 diff_ids"),
        "{e}"
    );

    let mut reader = GraphReader::new("b", s.doc(&top, MEDIA_TYPE_INDEX), Want::Every).unwrap();
    let n = reader.wanted().unwrap().remove(0);
    let e = reader.give(&n, b"{}".to_vec()).unwrap_err().to_string();
    assert!(e.contains("it is damaged"), "{e}");

    let mut doc = s.doc(&top, MEDIA_TYPE_INDEX);
    doc.bytes.push(b' ');
    let e = GraphReader::new("b", doc, Want::Every)
        .unwrap_err()
        .to_string();
    assert!(e.contains("it is damaged"), "{e}");

    let (nested, _) = s.put(&json!({"schemaVersion": 2, "manifests": [
        {"mediaType": MEDIA_TYPE_INDEX, "digest": top.as_str(), "size": 1}]}));
    let e = GraphReader::new("b", s.doc(&nested, MEDIA_TYPE_INDEX), Want::Every)
        .unwrap_err()
        .to_string();
    assert!(e.contains("only image manifests are supported"), "{e}");
    let e = GraphReader::new("b", s.doc(&nested, "text/plain"), Want::Every)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported media type"), "{e}");
}

#[test]
fn a_single_manifest_takes_the_platform_its_descriptor_declares() {
    let mut s = Store::default();
    let (m, _) = s.image("amd64", 1);
    let declared = super::select::Declared {
        os: "linux".into(),
        arch: "arm64".into(),
        variant: None,
    };
    let want = Want::Platforms(vec![p("linux/arm64")]);
    let reader = GraphReader::new("b", s.doc(&m, MEDIA_TYPE_MANIFEST), want)
        .unwrap()
        .declare_top(Some(declared));
    assert_eq!(s.read(reader).unwrap().0.images[0].platform, "linux/arm64");
}

/// A layout holding `m`'s manifest and config (not its layer), annotated with base `name`.
fn layout_without_layers(dir: &std::path::Path, base_name: &str) {
    let w = crate::layout::LayoutWriter::create(dir).unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"x").as_str()]}}))
    .unwrap();
    let c = w.write_blob(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": c.as_str(), "size": config.len()},
        "layers": [{"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": Digest::of(b"gz").as_str(), "size": 2}],
        "annotations": {ANNOTATION_BASE_NAME: base_name}}))
    .unwrap();
    let m = w.write_blob(&manifest).unwrap();
    let d = serde_json::from_value(json!({"mediaType": MEDIA_TYPE_MANIFEST,
        "digest": m.as_str(), "size": manifest.len()}))
    .unwrap();
    w.write_index_json(vec![d]).unwrap();
}

#[test]
fn a_layer_missing_from_a_layout_is_placed_at_the_base_or_refused_by_name() {
    use super::layout::{read, Blobs};
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    layout_without_layers(&good, "registry.test:5000/base/static:1");
    let base = [super::RepoAt {
        host: "registry.test:5000".into(),
        repository: "base/static".into(),
    }];
    let img = read(
        &good,
        None,
        Want::Every,
        Blobs::MayBeRemote {
            bases: &base,
            cache: None,
        },
        "good",
    )
    .unwrap();
    let layer = &img.graph.blobs[1];
    assert_eq!(layer.file(), None);
    assert_eq!(layer.registry().unwrap().repository, "base/static");
    let e = read(&good, None, Want::Every, Blobs::AllHere, "good")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("layer blob sha256:") && e.contains("re-create the base layout"),
        "{e}"
    );

    // A base the config does not name: its layers are not fetched with our credentials.
    let other = [super::RepoAt {
        host: "registry.test:5000".into(),
        repository: "secret/private".into(),
    }];
    let e = read(
        &good,
        None,
        Want::Every,
        Blobs::MayBeRemote {
            bases: &other,
            cache: None,
        },
        "good",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not a registry base of the config"), "{e}");

    let bad = tmp.path().join("bad");
    layout_without_layers(&bad, "alpine:3");
    let e = read(
        &bad,
        None,
        Want::Every,
        Blobs::MayBeRemote {
            bases: &base,
            cache: None,
        },
        "bad",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("(\"alpine:3\") names no registry") && e.ends_with("rebuild the layout"),
        "{e}"
    );
}

//! OCI 1.1 artifacts that refer to an image, as documents (no I/O): the artifact manifest
//! (`artifactType`, the empty config, one layer holding the document, `subject`), the
//! referrers tag schema's index (`sha256-<hex>` of the subject, updated by read-append-write
//! that keeps every entry already there, another tool's included), and the reading of a
//! referrers list, wherever it came from (the API or that tag).
//!
//! Media types carry no parameters (ECR refuses them). Output is canonical JSON, so the same
//! artifact is the same bytes and the same digest on every run.

use crate::digest::Digest;
use crate::spec::{canonical_json, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use serde_json::{json, Map, Value};

/// The empty config descriptor's media type (OCI 1.1).
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty JSON object `{}`, the empty config blob.
pub const EMPTY_JSON: &[u8] = b"{}";
/// Annotation: when the artifact was made.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Largest referrers list read (entries): beyond it the list is refused, not truncated.
pub const MAX_REFERRERS: usize = 10_000;

/// What an artifact refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its media type (an index or a manifest).
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// An artifact ready to store: the manifest and the blobs it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `artifactType`, e.g. `application/spdx+json`.
    pub artifact_type: String,
    /// What it is about.
    pub subject: Subject,
    /// The manifest bytes (canonical JSON).
    pub manifest: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The empty config and the document, with their digests.
    pub blobs: Vec<(Digest, Vec<u8>)>,
}

/// A referrer as a referrers list names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The referrer manifest's digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its `artifactType` (empty when none is given).
    pub artifact_type: String,
}

/// Why a referrers document could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReferrersError(String);

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Value {
    json!({"mediaType": media_type, "digest": digest.as_str(), "size": size})
}

/// The artifact of type `artifact_type` holding `document` about `subject`, made at `created`
/// (RFC 3339; from `SOURCE_DATE_EPOCH`, so the artifact is reproducible).
pub fn artifact(
    artifact_type: &str,
    document: Vec<u8>,
    subject: &Subject,
    created: &str,
) -> Artifact {
    let empty = Digest::of(EMPTY_JSON);
    let layer = Digest::of(&document);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(MEDIA_TYPE_EMPTY, &empty, EMPTY_JSON.len() as u64),
        "layers": [descriptor(artifact_type, &layer, document.len() as u64)],
        "subject": descriptor(&subject.media_type, &subject.digest, subject.size),
        "annotations": {ANNOTATION_CREATED: created},
    });
    // A json! value of strings and numbers always serializes.
    let manifest = canonical_json(&manifest).unwrap_or_default();
    Artifact {
        artifact_type: artifact_type.to_string(),
        subject: subject.clone(),
        digest: Digest::of(&manifest),
        manifest,
        blobs: vec![(empty, EMPTY_JSON.to_vec()), (layer, document)],
    }
}

/// The tag of the referrers tag schema for `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The referrers index `existing` (what the tag holds now, if anything) with `add` appended
/// where missing (by digest); `None` when it already lists them all (nothing to write).
/// Entries already there are kept exactly, unknown fields included.
pub fn merge_index(
    existing: Option<&[u8]>,
    add: &[&Artifact],
) -> Result<Option<Vec<u8>>, ReferrersError> {
    let mut index = match existing {
        Some(bytes) => an_index(parse_object(bytes)?)?,
        None => {
            let mut m = Map::new();
            m.insert("schemaVersion".into(), json!(2));
            m.insert("mediaType".into(), json!(MEDIA_TYPE_INDEX));
            m.insert("manifests".into(), json!([]));
            m
        }
    };
    let entries = match index.get_mut("manifests") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => {
            index.insert("manifests".into(), json!([]));
            match index.get_mut("manifests") {
                Some(Value::Array(a)) => a,
                _ => return Err(ReferrersError("cannot happen: manifests just set".into())),
            }
        }
        Some(_) => {
            return Err(ReferrersError(
                "the referrers index's \"manifests\" is not a list".into(),
            ))
        }
    };
    let mut changed = false;
    for a in add {
        let there = entries
            .iter()
            .any(|e| e.get("digest").and_then(Value::as_str) == Some(a.digest.as_str()));
        if !there {
            let mut d = descriptor(MEDIA_TYPE_MANIFEST, &a.digest, a.manifest.len() as u64);
            d["artifactType"] = json!(a.artifact_type);
            entries.push(d);
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    canonical_json(&Value::Object(index))
        .map(Some)
        .map_err(|e| ReferrersError(format!("writing the referrers index: {e}")))
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ReferrersError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ReferrersError(
            "the referrers index is not a JSON object".into(),
        )),
        Err(e) => Err(ReferrersError(format!(
            "the referrers index is not JSON: {e}"
        ))),
    }
}

/// `m` if it is an image index (by media type, and without a manifest's config or layers):
/// a referrers tag holding anything else is not ours to rewrite.
fn an_index(m: Map<String, Value>) -> Result<Map<String, Value>, ReferrersError> {
    let media_type = m.get("mediaType").and_then(Value::as_str);
    let manifest_like = m.contains_key("config") || m.contains_key("layers");
    if manifest_like || media_type.is_some_and(|t| t != MEDIA_TYPE_INDEX) {
        return Err(ReferrersError(format!(
            "it holds {}, not an image index: move or delete that tag (it is the referrers tag schema's), or push to a registry with the referrers API",
            media_type.unwrap_or("an image manifest")
        )));
    }
    Ok(m)
}

/// The referrers a referrers index lists (from the API or the tag schema). Entries without a
/// valid digest are skipped; more than [`MAX_REFERRERS`] is an error.
pub fn parse_index(bytes: &[u8]) -> Result<Vec<Referrer>, ReferrersError> {
    let index = parse_object(bytes)?;
    let Some(Value::Array(entries)) = index.get("manifests") else {
        return Ok(vec![]);
    };
    if entries.len() > MAX_REFERRERS {
        return Err(ReferrersError(format!(
            "the referrers index lists {} entries (at most {MAX_REFERRERS} are read)",
            entries.len()
        )));
    }
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(entries
        .iter()
        .filter_map(|e| {
            Some(Referrer {
                digest: e.get("digest")?.as_str()?.parse().ok()?,
                size: e.get("size")?.as_u64()?,
                media_type: text(e, "mediaType"),
                artifact_type: text(e, "artifactType"),
            })
        })
        .collect())
}

/// The one document layer of an artifact manifest, with the subject it names: what
/// `ocibuild verify` reads. An error when the manifest is not an artifact of that shape.
pub fn artifact_layer(manifest: &[u8]) -> Result<(Referrer, Option<Digest>), ReferrersError> {
    let m = parse_object(manifest)?;
    let layer = match m.get("layers") {
        Some(Value::Array(l)) if l.len() == 1 => &l[0],
        _ => {
            return Err(ReferrersError(
                "the artifact has not exactly one layer".into(),
            ))
        }
    };
    let digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| ReferrersError("the artifact's layer has no valid digest".into()))?;
    let size = layer.get("size").and_then(Value::as_u64).unwrap_or(0);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let subject = m
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(Value::as_str)
        .and_then(|d| d.parse().ok());
    Ok((
        Referrer {
            digest,
            size,
            media_type: text(layer.get("mediaType")),
            artifact_type: text(m.get("artifactType")),
        },
        subject,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            media_type: MEDIA_TYPE_MANIFEST.into(),
            digest: Digest::of(b"image"),
            size: 5,
        }
    }

    #[test]
    fn an_artifact_is_reproducible_and_has_the_oci_1_1_shape() {
        let a = artifact(
            "application/spdx+json",
            b"{\"x\":1}".to_vec(),
            &subject(),
            "1970-01-01T00:00:00Z",
        );
        let b = artifact(
            "application/spdx+json",
            b"{\"x\":1}".to_vec(),
            &subject(),
            "1970-01-01T00:00:00Z",
        );
        assert_eq!(a, b);
        let m: Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m["artifactType"], "application/spdx+json");
        assert_eq!(m["config"]["mediaType"], MEDIA_TYPE_EMPTY);
        assert_eq!(m["config"]["digest"], Digest::of(b"{}").as_str());
        assert_eq!(m["subject"]["digest"], subject().digest.as_str());
        assert_eq!(m["layers"][0]["mediaType"], "application/spdx+json");
        assert_eq!(a.digest, Digest::of(&a.manifest));
        let (layer, subj) = artifact_layer(&a.manifest).unwrap();
        assert_eq!(layer.digest, Digest::of(b"{\"x\":1}"));
        assert_eq!(subj, Some(subject().digest));
    }

    #[test]
    fn merging_keeps_other_entries_and_adds_each_artifact_once() {
        let a = artifact("application/spdx+json", b"1".to_vec(), &subject(), "t");
        let p = artifact(
            "application/vnd.in-toto+json",
            b"2".to_vec(),
            &subject(),
            "t",
        );
        let other = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":3,"artifactType":"application/x-other","annotations":{"k":"v"}}]}"#;
        let merged = merge_index(Some(other), &[&a]).unwrap().unwrap();
        let listed = parse_index(&merged).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].artifact_type, "application/x-other");
        assert_eq!(listed[1].digest, a.digest);
        let v: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(v["manifests"][0]["annotations"]["k"], "v");
        // Again: nothing to write; with another: appended.
        assert_eq!(merge_index(Some(&merged), &[&a]).unwrap(), None);
        let both = merge_index(Some(&merged), &[&a, &p]).unwrap().unwrap();
        assert_eq!(parse_index(&both).unwrap().len(), 3);
        let fresh = merge_index(None, &[&p]).unwrap().unwrap();
        assert_eq!(
            parse_index(&fresh).unwrap()[0].artifact_type,
            "application/vnd.in-toto+json"
        );
    }

    #[test]
    fn a_broken_referrers_index_is_an_error_not_overwritten() {
        let a = artifact("application/spdx+json", b"1".to_vec(), &subject(), "t");
        assert!(merge_index(Some(b"not json"), &[&a]).is_err());
        assert!(merge_index(Some(b"[1]"), &[&a]).is_err());
        assert!(merge_index(Some(br#"{"manifests":{}}"#), &[&a]).is_err());
        // An image manifest under the tag is not rewritten as an index.
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        let e = merge_index(Some(manifest), &[&a]).unwrap_err();
        assert!(e.to_string().contains("not an image index"), "{e}");
        let untyped = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert!(merge_index(Some(untyped), &[&a]).is_err());
        assert!(parse_index(b"\"x\"").is_err());
        assert_eq!(
            referrers_tag(&Digest::of(b"")),
            format!("sha256-{}", Digest::of(b"").hex())
        );
    }
}

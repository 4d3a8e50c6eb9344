//! The registry layer cache's document (no I/O): per service and branch, an OCI 1.1 artifact
//! manifest (`artifactType` [`ARTIFACT_TYPE`], the empty config) whose layers are the
//! descriptors of that service's layers, each annotated with its fingerprint
//! (`layer::fingerprint`) and diff_id. Stored under the tag `<service>-<branch slug>` of the
//! cache repository; a build that finds a layer's fingerprint there need not compress it.
//!
//! A cache entry is only a hint: reading is strict about shape (a layer media type, valid
//! digests, a bounded count) and skips what it cannot use rather than failing the build.
//! Output is canonical JSON with entries sorted by fingerprint: the same layers, the same
//! bytes.

use super::referrers::{EMPTY_JSON, MEDIA_TYPE_EMPTY};
use crate::digest::{DiffId, Digest};
use crate::spec::{
    canonical_json, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST,
};
use serde_json::{json, Value};

/// The cache artifact's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.ocibuild.layer-cache.v1+json";
/// Annotation on each layer: the fingerprint of the inputs that made it.
pub const ANNOTATION_FINGERPRINT: &str = "dev.ocibuild.layer.fingerprint";
/// Annotation on each layer: its diff_id (the digest of the uncompressed tar).
pub const ANNOTATION_DIFF_ID: &str = "dev.ocibuild.layer.diff_id";
/// Most entries read from one cache document; beyond it the rest are ignored.
pub const MAX_ENTRIES: usize = 4096;
/// Longest tag the distribution spec allows.
const MAX_TAG: usize = 128;

/// One cached layer: the inputs' fingerprint and the blob they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// `layer::fingerprint` of the inputs.
    pub fingerprint: Digest,
    /// The compressed blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type (a gzip or zstd layer).
    pub media_type: String,
    /// The digest of the uncompressed tar.
    pub diff_id: DiffId,
}

/// The manifest listing `entries` (deduplicated by fingerprint, sorted).
pub fn manifest(entries: &[CacheEntry]) -> Vec<u8> {
    let mut sorted: Vec<&CacheEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.fingerprint.as_str().cmp(b.fingerprint.as_str()));
    sorted.dedup_by(|a, b| a.fingerprint == b.fingerprint);
    let layers: Vec<Value> = sorted
        .iter()
        .map(|e| {
            json!({
                "mediaType": e.media_type,
                "digest": e.digest.as_str(),
                "size": e.size,
                "annotations": {
                    ANNOTATION_FINGERPRINT: e.fingerprint.as_str(),
                    ANNOTATION_DIFF_ID: e.diff_id.as_str(),
                },
            })
        })
        .collect();
    let empty = Digest::of(EMPTY_JSON);
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": MEDIA_TYPE_EMPTY, "digest": empty.as_str(), "size": EMPTY_JSON.len()},
        "layers": layers,
    });
    // A json! value of strings and numbers always serializes.
    canonical_json(&doc).unwrap_or_default()
}

/// The entries of a cache document. Not a cache document at all is an error (the tag holds
/// something else); an entry that is malformed is skipped.
pub fn parse(bytes: &[u8]) -> Result<Vec<CacheEntry>, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON document: {e}"))?;
    if doc.get("artifactType").and_then(Value::as_str) != Some(ARTIFACT_TYPE) {
        return Err(format!(
            "not an ocibuild layer cache (artifactType is not {ARTIFACT_TYPE})"
        ));
    }
    let layers = doc
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("no layers list")?;
    Ok(layers.iter().take(MAX_ENTRIES).filter_map(entry).collect())
}

fn entry(v: &Value) -> Option<CacheEntry> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let media_type = s(v, "mediaType")?;
    if media_type != MEDIA_TYPE_LAYER_GZIP && media_type != MEDIA_TYPE_LAYER_ZSTD {
        return None;
    }
    let notes = v.get("annotations")?;
    Some(CacheEntry {
        fingerprint: s(notes, ANNOTATION_FINGERPRINT)?.parse().ok()?,
        digest: s(v, "digest")?.parse().ok()?,
        size: v.get("size").and_then(Value::as_u64)?,
        media_type,
        diff_id: s(notes, ANNOTATION_DIFF_ID)?.parse().ok()?,
    })
}

/// The tag of `service`'s cache for `branch`: `<service>-<slug>`, the branch lowercased with
/// every run of other characters than `[a-z0-9._]` made one `-`, cut to the 128 characters a
/// tag may have. A service name is a valid tag start (letters, digits, `-`, `_`).
pub fn tag(service: &str, branch: &str) -> String {
    let mut slug = String::new();
    for c in branch.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "none" } else { slug };
    let mut t = format!("{service}-{slug}");
    t.truncate(MAX_TAG);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> CacheEntry {
        CacheEntry {
            fingerprint: Digest::of(&[n]),
            digest: Digest::of(&[n, 1]),
            size: 100 + u64::from(n),
            media_type: MEDIA_TYPE_LAYER_GZIP.into(),
            diff_id: format!("sha256:{}", Digest::of(&[n, 2]).hex())
                .parse()
                .unwrap(),
        }
    }

    #[test]
    fn a_manifest_reads_back_sorted_and_once() {
        let (a, b) = (entry(1), entry(2));
        let doc = manifest(&[b.clone(), a.clone(), b.clone()]);
        assert_eq!(doc, manifest(&[a.clone(), b.clone()]));
        let mut want = vec![a, b];
        want.sort_by(|x, y| x.fingerprint.as_str().cmp(y.fingerprint.as_str()));
        assert_eq!(parse(&doc).unwrap(), want);
        let v: Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v["artifactType"], ARTIFACT_TYPE);
        assert_eq!(v["config"]["mediaType"], MEDIA_TYPE_EMPTY);
    }

    #[test]
    fn what_is_not_a_cache_is_refused_and_bad_entries_skipped() {
        assert!(parse(b"{\"schemaVersion\":2}").is_err());
        assert!(parse(b"not json").is_err());
        let doc = manifest(&[entry(1)]);
        let mut v: Value = serde_json::from_slice(&doc).unwrap();
        let mut odd = v["layers"][0].clone();
        odd["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let mut bad = v["layers"][0].clone();
        bad["digest"] = json!("sha256:zz");
        v["layers"].as_array_mut().unwrap().extend([odd, bad]);
        let parsed = parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(parsed, vec![entry(1)]);
    }

    #[test]
    fn tags_are_slugs_that_fit() {
        assert_eq!(tag("cart", "main"), "cart-main");
        assert_eq!(tag("cart", "feature/Add Items!"), "cart-feature-add-items");
        assert_eq!(tag("ui", "///"), "ui-none");
        let long = tag("ui", &"x".repeat(300));
        assert_eq!(long.len(), 128);
        crate::spec::check_tag(&long).unwrap();
        crate::spec::check_tag(&tag("ui", "release/1.2_β")).unwrap();
    }
}

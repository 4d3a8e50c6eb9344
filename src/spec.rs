//! OCI vocabulary shared by the builder and the layout: media types, the one canonical JSON
//! writer for everything that gets hashed, tag validation and the timestamp format.
//!
//! Invariant: any JSON whose bytes are hashed (configs, manifests, indexes, `index.json`) is
//! produced by [`canonical_json`]: object keys sorted by their bytes, no insignificant
//! whitespace, so the same value gives the same digest whatever map type held it.
//! Imports nothing from the rest of the crate.

use serde::Serialize;
use serde_json::Value;

/// OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip-compressed layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed layer.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker manifest list (accepted in bases only).
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest (accepted in bases only).
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation naming a tag in a layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation: the reference of the image this one is built on.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation: the digest of the image this one is built on.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// Serialize `value` to canonical JSON bytes (sorted keys, compact).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(1024);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            // Sort explicitly: serde_json's map keeps insertion order when any crate in the
            // build enables its `preserve_order` feature.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(v, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

/// Whether `tag` is a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `Ok` for a valid tag, else why not (the message names the tag and the rule).
pub fn check_tag(tag: &str) -> Result<(), String> {
    if is_valid_tag(tag) {
        return Ok(());
    }
    Err(format!(
        "invalid tag {tag:?}: tags are 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    ))
}

/// RFC 3339 UTC form of a Unix time, e.g. `1970-01-01T00:00:00Z`.
pub fn rfc3339_utc(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Compact UTC form of a Unix time for tags, e.g. `20260101-120000`.
pub fn compact_utc(epoch: u64) -> String {
    let r = rfc3339_utc(epoch);
    // 2026-01-01T12:00:00Z -> 20260101-120000
    format!(
        "{}{}{}-{}{}{}",
        &r[0..4],
        &r[5..7],
        &r[8..10],
        &r[11..13],
        &r[14..16],
        &r[17..19]
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_is_compact() {
        let mut inner = HashMap::new();
        for k in ["zeta", "alpha", "Mid", "é", "a b"] {
            inner.insert(k.to_string(), vec![1, 2]);
        }
        let mut outer = HashMap::new();
        outer.insert("b", serde_json::to_value(&inner).unwrap());
        outer.insert("a", Value::String("x\"y\n".into()));
        let out = String::from_utf8(canonical_json(&outer).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"a":"x\"y\n","b":{"Mid":[1,2],"a b":[1,2],"alpha":[1,2],"zeta":[1,2],"é":[1,2]}}"#
        );
    }

    #[test]
    fn canonical_json_is_stable_across_hashmap_orders() {
        let a: HashMap<String, u32> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let b: HashMap<String, u32> = (0..50).rev().map(|i| (format!("k{i}"), i)).collect();
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
    }

    #[test]
    fn tags() {
        for ok in [
            "latest",
            "v1.2.3",
            "_x",
            "a1b2c3d",
            "20260101-120000",
            "pr-12",
        ] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", "-x", ".x", "a/b", "a:b", "é", long.as_str()] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(compact_utc(1_700_000_000), "20231114-221320");
    }
}

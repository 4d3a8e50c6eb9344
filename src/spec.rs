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
/// Artifact type of an SPDX JSON SBOM.
pub const MEDIA_TYPE_SPDX: &str = "application/spdx+json";
/// Artifact type of a CycloneDX JSON SBOM.
pub const MEDIA_TYPE_CYCLONEDX: &str = "application/vnd.cyclonedx+json";
/// Artifact type of an in-toto statement (provenance).
pub const MEDIA_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";
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

/// Whether `media` is an image index (OCI, or a Docker manifest list).
pub fn is_index(media: &str) -> bool {
    media == MEDIA_TYPE_INDEX || media == MEDIA_TYPE_DOCKER_LIST
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

/// `Ok` for a tag an image may be written under: a valid tag that is not one of the digest
/// tags where attachments live (`sha256-<hex>` of the referrers tag schema, `sha256-<hex>.sig`
/// and other suffixes of cosign's): writing an image there would destroy what is attached.
pub fn check_image_tag(tag: &str) -> Result<(), String> {
    check_tag(tag)?;
    let digest_tag = tag.strip_prefix("sha256-").is_some_and(|rest| {
        let hex = rest.split('.').next().unwrap_or("");
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if digest_tag {
        return Err(format!(
            "tag {tag:?} is where attachments of sha256:{} are kept (referrers index or signatures): an image written there would destroy them; choose another tag",
            &tag[7..71]
        ));
    }
    Ok(())
}

/// Whether `s` is a valid repository name per the OCI distribution spec: path components of
/// `[a-z0-9]+` joined by one separator (`.`, `_`, `__` or a run of `-`), split by `/`, at most
/// 255 characters in all.
pub fn is_valid_repository(s: &str) -> bool {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        let (Some(first), Some(last)) = (b.first(), b.last()) else {
            return false;
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return false;
        }
        // Runs of separators between alphanumeric runs: ".", "_", "__" or "-"+.
        let mut run: &[u8] = &[];
        let mut start = 0;
        for (i, &ch) in b.iter().enumerate() {
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                if !run.is_empty() {
                    let ok = matches!(run, b"." | b"_" | b"__") || run.iter().all(|&c| c == b'-');
                    if !ok {
                        return false;
                    }
                    run = &[];
                }
                start = i + 1;
            } else if matches!(ch, b'.' | b'_' | b'-') {
                run = &b[start..=i];
            } else {
                return false;
            }
        }
        true
    }
    !s.is_empty() && s.len() <= 255 && s.split('/').all(component)
}

/// `Ok` for a valid repository name, else why not (the message names it and the rule).
pub fn check_repository(name: &str) -> Result<(), String> {
    if is_valid_repository(name) {
        return Ok(());
    }
    Err(format!(
        "invalid repository name {name:?}: lowercase letters and digits, with '.', '_', '__' or '-' between them, in components split by '/', at most 255 characters"
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

/// Seconds since the epoch of an RFC 3339 time (`2026-12-01T01:02:03Z`, fractions and
/// offsets allowed), or `None`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |a: usize, b: usize| {
        let s = t.get(a..b)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<i64>().ok())?
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let sep = |i: usize, c: &[u8]| t.as_bytes().get(i).is_some_and(|b| c.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || !(1..=month_days).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits = |a: usize, b: usize| {
                let s = rest.get(a..b)?;
                s.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| s.parse::<i64>().ok())?
            };
            let (oh, om) = (digits(1, 3)?, digits(4, 6)?);
            if rest.len() != 6 || rest.as_bytes()[3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Compact UTC form of a Unix time for tags, e.g. `20260101-120000` (the year takes as many
/// digits as it needs, so any time gives a valid tag).
pub fn compact_utc(epoch: u64) -> String {
    let (y, m, d) = civil_from_days((epoch / 86_400) as i64);
    let secs = epoch % 86_400;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
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

    #[test]
    fn repositories() {
        for ok in ["a", "team/app", "a.b", "a_b", "a__b", "a---b", "0/1"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "-a",
            "a-",
            "a/",
            "/a",
            "a..b",
            "a___b",
            "a._b",
            "a-.b",
            "a_-b",
            "a b",
            "a:b",
            "..",
            "a/../b",
            "a?b",
            "a#b",
            "a%2f",
            long.as_str(),
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
            assert!(check_repository(bad)
                .unwrap_err()
                .contains("invalid repository"));
        }
    }

    #[test]
    fn compact_times_are_tags_for_any_time() {
        for t in [0, 1_700_000_000, 253_402_300_799, 253_402_300_800, u64::MAX] {
            assert!(is_valid_tag(&compact_utc(t)), "{t}: {}", compact_utc(t));
        }
        assert_eq!(compact_utc(253_402_300_800), "100000101-000000");
    }

    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        /// The tag grammar, written out independently of `is_valid_tag`.
        fn grammar(t: &str) -> bool {
            let ok = |c: char, first: bool| {
                c.is_ascii_alphanumeric() || c == '_' || (!first && (c == '.' || c == '-'))
            };
            let n = t.chars().count();
            (1..=128).contains(&n) && t.chars().enumerate().all(|(i, c)| ok(c, i == 0))
        }

        proptest! {

            #[test]
            fn valid_tags_are_accepted(t in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
                prop_assert!(is_valid_tag(&t));
                prop_assert!(check_tag(&t).is_ok());
            }

            #[test]
            fn tags_follow_the_grammar_exactly(t in "[a-zA-Z0-9_.:/?#%é -]{0,135}") {
                prop_assert_eq!(is_valid_tag(&t), grammar(&t), "{:?}", t);
                prop_assert_eq!(check_tag(&t).is_ok(), grammar(&t));
            }

            #[test]
            fn any_string_is_judged_without_panic(t in any::<String>()) {
                prop_assert_eq!(is_valid_tag(&t), grammar(&t));
                if let Err(e) = check_tag(&t) {
                    prop_assert!(e.starts_with("invalid tag"));
                }
                let _ = is_valid_repository(&t);
            }

            #[test]
            fn one_bad_character_spoils_a_tag(
                t in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,126}",
                bad in "[/:?#%@ \\\\\\x00é+~!]",
                at in any::<prop::sample::Index>(),
            ) {
                let mut chars: Vec<char> = t.chars().collect();
                let i = at.index(chars.len() + 1);
                chars.insert(i, bad.chars().next().unwrap());
                let s: String = chars.into_iter().collect();
                prop_assert!(!is_valid_tag(&s), "{:?}", s);
            }

            #[test]
            fn too_long_or_badly_started_tags_are_refused(
                long in "[a-zA-Z0-9_][a-zA-Z0-9._-]{128,200}",
                start in "[.-][a-zA-Z0-9._-]{0,100}",
            ) {
                prop_assert!(!is_valid_tag(&long));
                prop_assert!(!is_valid_tag(&start));
            }

            #[test]
            fn valid_repositories_are_accepted(
                parts in prop::collection::vec("[a-z0-9]{1,6}((\\.|_|__|-+)[a-z0-9]{1,6}){0,3}", 1..5)
            ) {
                let name = parts.join("/");
                prop_assume!(name.len() <= 255);
                prop_assert!(is_valid_repository(&name), "{}", name);
            }

            #[test]
            fn compact_utc_is_always_a_tag(t in any::<u64>()) {
                prop_assert!(is_valid_tag(&compact_utc(t)));
            }
        }
    }

    #[test]
    fn digest_tags_of_attachments_are_not_image_tags() {
        let hex = "ab".repeat(32);
        for t in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
        ] {
            assert!(check_tag(&t).is_ok(), "{t}");
            let e = check_image_tag(&t).unwrap_err();
            assert!(e.contains("destroy"), "{e}");
        }
        for t in ["v1", "sha256-abc", "sha256", "latest"] {
            assert!(check_image_tag(t).is_ok(), "{t}");
        }
        assert!(check_image_tag("bad tag").is_err());
    }

    #[test]
    fn rfc3339_reads_back_what_it_writes_and_refuses_the_rest() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&rfc3339_utc(secs as u64)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:30"), Some(1800));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "",
            "2023-11-14",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
            "x023-11-14T22:13:20Z",
            "2023-11-14T22:13:20+1",
            "2023-11-14T22:13:20+01x00",
            "2023-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "+999-11-14T22:13:20Z",
            "2023-11-14T22:13:20.5é",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}

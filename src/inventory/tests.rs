//! Unit tests of the grouping: children under their index, attachments (subject, signature and
//! referrers-schema tags) under their image, untagged leftovers, the limit, time formats.

use super::*;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn rec(digest: String, media: &str, tags: &[&str], pushed_days_ago: i64) -> Record {
    Record {
        digest,
        media_type: media.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: Some(NOW - pushed_days_ago * DAY),
        ..Record::default()
    }
}

/// A repository as ECR lists it: two tagged indexes with their platforms, attachments on the
/// new one (one of them on a platform manifest), its signatures and referrers-schema index, an
/// orphan, and an artifact whose subject is gone.
fn repository() -> Vec<Record> {
    let mut index = rec(d('a'), INDEX, &["v1", "abc1234"], 1);
    index.children = vec![
        (d('1'), "linux/amd64".into()),
        (d('2'), "linux/arm64".into()),
    ];
    let mut amd = rec(d('1'), MANIFEST, &[], 1);
    amd.size = Some(1000);
    amd.scan_status = Some("COMPLETE".into());
    amd.severities = BTreeMap::from([("HIGH".to_string(), 2)]);
    amd.last_pull = Some(NOW - 3600);
    let mut arm = rec(d('2'), MANIFEST, &[], 1);
    arm.size = Some(900);
    let mut sbom = rec(d('3'), MANIFEST, &[], 1);
    sbom.subject = Some(d('2'));
    sbom.artifact_type = Some("application/spdx+json".into());
    let mut provenance = rec(d('4'), MANIFEST, &[], 1);
    provenance.subject = Some(d('a'));
    provenance.artifact_type = Some("application/vnd.in-toto+json".into());
    let sig = rec(
        d('5'),
        MANIFEST,
        &[&format!("sha256-{}.sig", "a".repeat(64))],
        1,
    );
    let schema = rec(d('6'), INDEX, &[&format!("sha256-{}", "a".repeat(64))], 1);
    let mut old = rec(d('b'), INDEX, &["v0"], 30);
    old.children = vec![(d('7'), "linux/amd64".into())];
    let old_child = rec(d('7'), MANIFEST, &[], 30);
    let orphan = rec(d('8'), MANIFEST, &[], 10);
    let mut dangling = rec(d('9'), MANIFEST, &[], 12);
    dangling.subject = Some(d('c'));
    vec![
        index, amd, arm, sbom, provenance, sig, schema, old, old_child, orphan, dangling,
    ]
}

#[test]
fn children_and_attachments_go_under_their_image_and_only_unreferenced_manifests_are_untagged() {
    let l = group(repository(), NOW, 10);
    let tops: Vec<&str> = l.images.iter().map(|i| i.digest.as_str()).collect();
    assert_eq!(
        tops,
        [d('a'), d('b')],
        "tagged tops, newest first; no loose children"
    );
    let new = &l.images[0];
    assert_eq!(new.tags, ["v1", "abc1234"]);
    assert_eq!(new.pushed_at.as_deref(), Some(rfc3339(NOW - DAY).as_str()));
    assert_eq!(new.last_pull.as_deref(), Some(rfc3339(NOW - 3600).as_str()));
    let platforms: Vec<(&str, Option<u64>)> = new
        .platforms
        .iter()
        .map(|p| (p.platform.as_str(), p.size))
        .collect();
    assert_eq!(
        platforms,
        [("linux/amd64", Some(1000)), ("linux/arm64", Some(900))]
    );
    assert_eq!(new.platforms[0].severities["HIGH"], 2);
    let attached: Vec<(&str, &str, &str)> = new
        .attached
        .iter()
        .map(|a| (a.kind, a.digest.as_str(), a.subject.as_str()))
        .collect();
    assert_eq!(
        attached,
        [
            ("provenance", d('4').as_str(), d('a').as_str()),
            ("signature", d('5').as_str(), d('a').as_str()),
            ("sbom", d('3').as_str(), d('2').as_str()),
        ]
    );
    assert_eq!(
        new.attached[1].via,
        format!("tag sha256-{}.sig", "a".repeat(64))
    );
    let untagged: Vec<(&str, Option<i64>)> = l
        .untagged
        .iter()
        .map(|u| (u.digest.as_str(), u.age_days))
        .collect();
    assert_eq!(
        untagged,
        [(d('9').as_str(), Some(12)), (d('8').as_str(), Some(10))]
    );
    assert_eq!(l.more, 0);
}

#[test]
fn the_limit_keeps_the_newest_and_counts_the_rest() {
    let l = group(repository(), NOW, 1);
    assert_eq!(l.images.len(), 1);
    assert_eq!(l.images[0].digest, d('a'));
    assert_eq!(l.more, 1);
}

#[test]
fn a_single_manifest_is_one_unknown_platform() {
    let mut m = rec(d('a'), MANIFEST, &["v1"], 0);
    m.size = Some(5);
    let l = group(vec![m], NOW, 10);
    assert_eq!(l.images[0].platforms[0].platform, "unknown");
    assert_eq!(l.images[0].platforms[0].size, Some(5));
}

#[test]
fn times_are_rfc3339_utc_and_schema_tags_name_their_subject() {
    assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    let hex = "f".repeat(64);
    assert_eq!(
        schema_tag(&format!("sha256-{hex}")),
        Some((format!("sha256:{hex}"), false))
    );
    assert_eq!(
        schema_tag(&format!("sha256-{hex}.sig")),
        Some((format!("sha256:{hex}"), true))
    );
    assert_eq!(schema_tag("sha256-abc"), None);
    assert_eq!(schema_tag("v1"), None);
    assert_eq!(kind_of("application/vnd.cyclonedx+json"), "sbom");
    assert_eq!(kind_of("application/x-other"), "artifact");
}

#[test]
fn a_manifest_found_twice_is_listed_once_with_what_both_said() {
    // The amd64 manifest, tagged on its own too; its SBOM found through both images.
    let mut records = repository();
    let mut alone = rec(d('1'), MANIFEST, &["amd64only"], 1);
    alone.size = None;
    records.push(alone);
    let mut sbom_again = rec(d('3'), MANIFEST, &[], 1);
    sbom_again.subject = Some(d('2'));
    sbom_again.artifact_type = Some("application/spdx+json".into());
    records.push(sbom_again);
    let l = group(records, NOW, 10);
    let new = l.images.iter().find(|i| i.digest == d('a')).unwrap();
    assert_eq!(new.attached.len(), 3, "{:?}", new.attached);
    let alone = l.images.iter().find(|i| i.digest == d('1')).unwrap();
    assert_eq!(alone.tags, ["amd64only"]);
    assert_eq!(
        alone.platforms[0].size,
        Some(1000),
        "what the index's listing said"
    );
}

#[test]
fn an_index_with_no_manifests_has_no_platforms() {
    let l = group(vec![rec(d('a'), INDEX, &["v1"], 0)], NOW, 10);
    assert!(l.images[0].platforms.is_empty());
}

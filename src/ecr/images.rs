//! What a repository holds, as ECR tells it: every image (`DescribeImages`, all pages: an
//! index and each of its platform manifests are separate entries, the children untagged) and
//! the manifests of chosen images (`BatchGetImage`), to see which children an index names.

use super::{Ecr, EcrError};
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanStatus};
use std::collections::BTreeMap;

/// Largest number of images read from one repository (beyond it: an error, not a truncation).
pub const MAX_IMAGES: usize = 100_000;
/// Images per `DescribeImages` page (ECR's maximum).
const PAGE: i32 = 1000;
/// Images per `BatchGetImage` call (ECR's maximum).
const BATCH: usize = 100;
/// What `BatchGetImage` may answer.
const ACCEPTED: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// One image (an index, a manifest or an artifact) as `DescribeImages` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcrImage {
    /// Its digest.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// ECR's size (the compressed layers of a manifest; an index's own).
    pub size: Option<i64>,
    /// When it was pushed (seconds since the epoch).
    pub pushed_at: Option<i64>,
    /// Its manifest's media type.
    pub media_type: Option<String>,
    /// An artifact's type (`artifactMediaType`).
    pub artifact_type: Option<String>,
    /// The manifest an artifact refers to (`subjectManifestDigest`).
    pub subject: Option<String>,
    /// When it was last pulled (seconds since the epoch; ECR updates it about daily).
    pub last_pull: Option<i64>,
    /// Its scan's status (`COMPLETE`, `IN_PROGRESS`, ...), if it was scanned.
    pub scan_status: Option<String>,
    /// Its findings by severity.
    pub severities: BTreeMap<String, i64>,
}

impl EcrImage {
    /// Whether it is an image index (or Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.media_type
            .as_deref()
            .is_some_and(crate::spec::is_index)
    }
}

/// Every image of `repository`, all pages.
pub async fn describe_all(ecr: &Ecr, repository: &str) -> Result<Vec<EcrImage>, EcrError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = ecr
            .sdk()
            .describe_images()
            .set_registry_id(ecr.registry_id.clone())
            .repository_name(repository)
            .max_results(PAGE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| EcrError::from_sdk("DescribeImages", e))?;
        out.extend(page.image_details().iter().map(|d| {
            EcrImage {
                digest: d.image_digest().unwrap_or_default().to_string(),
                tags: d.image_tags().to_vec(),
                size: d.image_size_in_bytes(),
                pushed_at: d.image_pushed_at().map(|t| t.secs()),
                media_type: d.image_manifest_media_type().map(str::to_string),
                artifact_type: d.artifact_media_type().map(str::to_string),
                subject: d.subject_manifest_digest().map(str::to_string),
                last_pull: d.last_recorded_pull_time().map(|t| t.secs()),
                scan_status: d
                    .image_scan_status()
                    .and_then(ImageScanStatus::status)
                    .map(|s| s.as_str().to_string()),
                severities: d
                    .image_scan_findings_summary()
                    .and_then(|s| s.finding_severity_counts())
                    .map(|c| {
                        c.iter()
                            .map(|(k, v)| (k.as_str().to_string(), i64::from(*v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        }));
        if out.len() > MAX_IMAGES {
            return Err(EcrError::new(
                "DescribeImages",
                format!("{repository} holds more than {MAX_IMAGES} images; ocibuild reads at most that many"),
            ));
        }
        match next(page.next_token(), &mut seen, "DescribeImages", repository)? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// The next page's token: `None` at the end; an error when ECR hands back a token it gave
/// before (a loop that would never end) or more pages than any repository can fill.
pub(super) fn next(
    token: Option<&str>,
    seen: &mut std::collections::HashSet<String>,
    operation: &'static str,
    repository: &str,
) -> Result<Option<String>, EcrError> {
    const MAX_PAGES: usize = 10_000;
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if !seen.insert(t.to_string()) || seen.len() > MAX_PAGES {
        return Err(EcrError::new(
            operation,
            format!(
                "{repository}: ECR's pages do not end (a page token came back); try again later"
            ),
        ));
    }
    Ok(Some(t.to_string()))
}

/// The entries of the indexes `digests` in `repository` (see [`children_of`]), by
/// `BatchGetImage`; indexes ECR cannot give are left out.
pub async fn index_children(
    ecr: &Ecr,
    repository: &str,
    digests: &[String],
) -> Result<BTreeMap<String, Vec<(String, String)>>, EcrError> {
    let mut out = BTreeMap::new();
    for batch in digests.chunks(BATCH) {
        let ids = batch
            .iter()
            .map(|d| ImageIdentifier::builder().image_digest(d).build())
            .collect();
        let got = ecr
            .sdk()
            .batch_get_image()
            .set_registry_id(ecr.registry_id.clone())
            .repository_name(repository)
            .set_image_ids(Some(ids))
            .set_accepted_media_types(Some(ACCEPTED.iter().map(|m| m.to_string()).collect()))
            .send()
            .await
            .map_err(|e| EcrError::from_sdk("BatchGetImage", e))?;
        out.extend(got.images().iter().filter_map(|i| {
            let digest = i.image_id()?.image_digest()?.to_string();
            Some((digest, children_of(i.image_manifest()?)))
        }));
    }
    Ok(out)
}

/// The entries an index's `manifests` list names: (digest, `os/arch[/variant]` or `unknown`);
/// none for anything else or unreadable JSON.
pub fn children_of(manifest: &str) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(manifest) else {
        return vec![];
    };
    v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let p = &m["platform"];
            let platform = match (p["os"].as_str(), p["architecture"].as_str()) {
                (Some(os), Some(arch)) => match p["variant"].as_str() {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                },
                _ => "unknown".to_string(),
            };
            Some((m["digest"].as_str()?.to_string(), platform))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_seen_before_ends_the_listing_with_an_error() {
        let mut seen = std::collections::HashSet::new();
        assert_eq!(
            next(Some("a"), &mut seen, "DescribeImages", "r").unwrap(),
            Some("a".into())
        );
        assert_eq!(
            next(Some(""), &mut seen, "DescribeImages", "r").unwrap(),
            None
        );
        assert_eq!(next(None, &mut seen, "DescribeImages", "r").unwrap(), None);
        let e = next(Some("a"), &mut seen, "DescribeImages", "r").unwrap_err();
        assert!(e.message.contains("do not end"), "{e:?}");
    }

    #[test]
    fn an_index_names_its_children_and_anything_else_none() {
        let index = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:aa","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},{"digest":"sha256:bb"}]}"#;
        assert_eq!(
            children_of(index),
            [
                ("sha256:aa".to_string(), "linux/arm64/v8".to_string()),
                ("sha256:bb".to_string(), "unknown".to_string())
            ]
        );
        assert!(children_of(r#"{"layers":[]}"#).is_empty());
        assert!(children_of("not json").is_empty());
        let img = EcrImage {
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            ..EcrImage::default()
        };
        assert!(img.is_index());
        assert!(!EcrImage::default().is_index());
    }
}

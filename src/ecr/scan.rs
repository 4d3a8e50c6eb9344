//! Scan findings: wait for an image's scan (starting one if none exists), polling with backoff
//! until it completes, fails or the wait runs out (a time-out is a result, not an error), then
//! read the basic and enhanced (Inspector) findings with pagination: counts by severity and the
//! CRITICAL and HIGH findings in full.

use super::{Ecr, EcrError};
use aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput as FindingsPage;
use aws_sdk_ecr::types::{
    EnhancedImageScanFinding, ImageIdentifier, ImageScanFinding, ImageScanStatus,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Severities from worst to least.
pub const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// Rank of a severity (0 = CRITICAL); unknown ones rank last.
pub fn rank(severity: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(severity))
        .unwrap_or(SEVERITIES.len())
}

/// One CRITICAL or HIGH finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Vulnerability id or title, e.g. `CVE-2024-1234`.
    pub name: String,
    /// Affected package (and version), when known.
    pub package: String,
    /// Severity.
    pub severity: String,
    /// Link to the advisory.
    pub link: String,
}

/// The scan result of one image (one platform manifest).
#[derive(Debug, Clone, Serialize)]
pub struct ScanResult {
    /// Repository.
    pub repository: String,
    /// Manifest digest scanned.
    pub digest: String,
    /// ECR's scan status (`COMPLETE`, `ACTIVE`, `FAILED`, ...), or `TIMED_OUT`.
    pub status: String,
    /// ECR's description of the status, if any.
    pub description: Option<String>,
    /// Findings by severity.
    pub counts: BTreeMap<String, i64>,
    /// The CRITICAL and HIGH findings.
    pub findings: Vec<Finding>,
    /// The platform of the image scanned (`os/arch[/variant]`), when the caller knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

fn image(digest: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(digest).build()
}

impl ScanResult {
    /// A result with no findings (yet): `status` and why.
    pub fn new(
        repository: &str,
        digest: &str,
        status: String,
        description: Option<String>,
    ) -> Self {
        ScanResult {
            repository: repository.into(),
            digest: digest.into(),
            status,
            description,
            counts: BTreeMap::new(),
            findings: vec![],
            platform: None,
        }
    }
}

/// One page of `DescribeImageScanFindings`.
async fn describe(
    ecr: &Ecr,
    repository: &str,
    digest: &str,
    token: Option<&str>,
) -> Result<FindingsPage, EcrError> {
    ecr.sdk()
        .describe_image_scan_findings()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(repository)
        .image_id(image(digest))
        .max_results(1000)
        .set_next_token(token.map(str::to_string))
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("DescribeImageScanFindings", e))
}

/// The scan status of `repository@digest` and its findings by severity, from the first page
/// of `DescribeImageScanFindings` (no waiting, no scan started); `None` when it was never
/// scanned.
pub async fn summary(
    ecr: &Ecr,
    repository: &str,
    digest: &str,
) -> Result<Option<(String, BTreeMap<String, i64>)>, EcrError> {
    let page = match describe(ecr, repository, digest, None).await {
        Ok(p) => p,
        Err(e) if e.code.as_deref() == Some("ScanNotFoundException") => return Ok(None),
        Err(e) => return Err(e),
    };
    let (status, _) = scan_status(&page);
    let counts = page
        .image_scan_findings()
        .and_then(|f| f.finding_severity_counts())
        .map(|c| {
            c.iter()
                .map(|(k, v)| (k.as_str().to_string(), i64::from(*v)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((status, counts)))
}

/// Wait up to `wait` for the scan of `repository@digest`, then read its findings.
pub async fn wait_and_read(
    ecr: &Ecr,
    repository: &str,
    digest: &str,
    wait: Duration,
) -> Result<ScanResult, EcrError> {
    let now = Instant::now();
    let deadline = now.checked_add(wait).unwrap_or(now);
    let mut delay = Duration::from_secs(1);
    let mut started = false;
    loop {
        let first = describe(ecr, repository, digest, None).await;
        let out = match first {
            Ok(o) => o,
            Err(e) if e.code.as_deref() == Some("ScanNotFoundException") && !started => {
                // Scan on push was off (or the image predates it): start one.
                started = true;
                start_scan(ecr, repository, digest).await?;
                continue;
            }
            Err(e) if e.code.as_deref() == Some("ScanNotFoundException") => {
                // Just started: ECR may not list it yet. Ask again until the deadline.
                if Instant::now()
                    .checked_add(delay)
                    .is_none_or(|t| t > deadline)
                {
                    let why = format!("the scan started was still not found after {wait:?}");
                    return Ok(ScanResult::new(
                        repository,
                        digest,
                        "TIMED_OUT".into(),
                        Some(why),
                    ));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(15));
                continue;
            }
            Err(e) => return Err(e),
        };
        let (status, description) = scan_status(&out);
        match status.as_str() {
            "COMPLETE" | "ACTIVE" => {
                let result = ScanResult::new(repository, digest, status, description);
                return read_findings(ecr, repository, digest, out, result).await;
            }
            "IN_PROGRESS" | "PENDING" | "UNKNOWN" => {
                if Instant::now()
                    .checked_add(delay)
                    .is_none_or(|t| t > deadline)
                {
                    return Ok(ScanResult::new(
                        repository,
                        digest,
                        "TIMED_OUT".into(),
                        Some(format!("still {status} after {wait:?}")),
                    ));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(15));
            }
            _ => return Ok(ScanResult::new(repository, digest, status, description)),
        }
    }
}

/// `StartImageScan` of `repository@digest`.
async fn start_scan(ecr: &Ecr, repository: &str, digest: &str) -> Result<(), EcrError> {
    ecr.sdk()
        .start_image_scan()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(repository)
        .image_id(image(digest))
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("StartImageScan", e))?;
    Ok(())
}

/// The scan status of a `DescribeImageScanFindings` answer (`UNKNOWN` if none) and ECR's
/// description of it.
fn scan_status(out: &FindingsPage) -> (String, Option<String>) {
    let status = out
        .image_scan_status()
        .and_then(ImageScanStatus::status)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let description = out
        .image_scan_status()
        .and_then(|s| s.description())
        .map(str::to_string);
    (status, description)
}

/// Gather the findings of a complete scan into `result`, from `first` and every further page.
/// Counts are ECR's, or (when it gives none) those of the CRITICAL and HIGH findings kept.
async fn read_findings(
    ecr: &Ecr,
    repository: &str,
    digest: &str,
    first: FindingsPage,
    mut result: ScanResult,
) -> Result<ScanResult, EcrError> {
    let mut page = Some(first);
    let mut seen_tokens: Vec<String> = Vec::new();
    while let Some(out) = page.take() {
        if let Some(f) = out.image_scan_findings() {
            if result.counts.is_empty() {
                if let Some(c) = f.finding_severity_counts() {
                    result.counts = c
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), i64::from(*v)))
                        .collect();
                }
            }
            result
                .findings
                .extend(f.findings().iter().filter_map(basic_finding));
            result
                .findings
                .extend(f.enhanced_findings().iter().filter_map(enhanced_finding));
        }
        // A token seen before would loop forever (some emulators repeat it): stop there.
        if let Some(token) = out
            .next_token()
            .filter(|t| !seen_tokens.iter().any(|s| s == t))
        {
            seen_tokens.push(token.to_string());
            page = Some(describe(ecr, repository, digest, Some(token)).await?);
        }
    }
    if result.counts.is_empty() {
        for f in &result.findings {
            *result.counts.entry(f.severity.clone()).or_default() += 1;
        }
    }
    Ok(result)
}

/// A basic-scan finding, if CRITICAL or HIGH.
fn basic_finding(x: &ImageScanFinding) -> Option<Finding> {
    let sev = x
        .severity()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if rank(&sev) > 1 {
        return None;
    }
    let attr = |k: &str| {
        x.attributes()
            .iter()
            .find(|a| a.key() == k)
            .and_then(|a| a.value())
            .unwrap_or_default()
            .to_string()
    };
    let version = attr("package_version");
    Some(Finding {
        name: x.name().unwrap_or_default().to_string(),
        package: if version.is_empty() {
            attr("package_name")
        } else {
            format!("{} {version}", attr("package_name"))
        },
        severity: sev,
        link: x.uri().unwrap_or_default().to_string(),
    })
}

/// An enhanced-scan (Inspector) finding, if CRITICAL or HIGH.
fn enhanced_finding(x: &EnhancedImageScanFinding) -> Option<Finding> {
    let sev = x.severity().unwrap_or_default().to_string();
    if rank(&sev) > 1 {
        return None;
    }
    let details = x.package_vulnerability_details();
    let pkg = details.and_then(|d| d.vulnerable_packages().first());
    Some(Finding {
        name: details
            .and_then(|d| d.vulnerability_id())
            .or(x.title())
            .unwrap_or_default()
            .to_string(),
        package: pkg
            .map(|p| {
                format!(
                    "{} {}",
                    p.name().unwrap_or_default(),
                    p.version().unwrap_or_default()
                )
            })
            .unwrap_or_default()
            .trim()
            .to_string(),
        severity: sev,
        link: details
            .and_then(|d| d.source_url())
            .unwrap_or_default()
            .to_string(),
    })
}

/// The platform manifests under `reference` (a tag or digest) in `repository`: the children of
/// an image index, or the manifest itself.
pub async fn manifests_of(
    ecr: &Ecr,
    repository: &str,
    reference: &str,
) -> Result<Vec<String>, EcrError> {
    let id = if reference.starts_with("sha256:") {
        ImageIdentifier::builder().image_digest(reference).build()
    } else {
        ImageIdentifier::builder().image_tag(reference).build()
    };
    let out = ecr
        .sdk()
        .batch_get_image()
        .set_registry_id(ecr.registry_id.clone())
        .repository_name(repository)
        .image_ids(id)
        .accepted_media_types(crate::spec::MEDIA_TYPE_INDEX)
        .accepted_media_types(crate::spec::MEDIA_TYPE_MANIFEST)
        .accepted_media_types(crate::spec::MEDIA_TYPE_DOCKER_LIST)
        .accepted_media_types(crate::spec::MEDIA_TYPE_DOCKER_MANIFEST)
        .send()
        .await
        .map_err(|e| EcrError::from_sdk("BatchGetImage", e))?;
    let Some(img) = out.images().first() else {
        let why = out
            .failures()
            .first()
            .and_then(|f| f.failure_reason())
            .unwrap_or("not found");
        return Err(EcrError::new(
            "BatchGetImage",
            format!("{repository}:{reference}: {why}"),
        ));
    };
    let text = img.image_manifest().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if let Some(children) = v.get("manifests").and_then(|m| m.as_array()) {
        return Ok(children
            .iter()
            .filter_map(|c| c.get("digest").and_then(|d| d.as_str()).map(str::to_string))
            .collect());
    }
    let digest = img
        .image_id()
        .and_then(|i| i.image_digest())
        .map(str::to_string)
        .unwrap_or_else(|| crate::digest::Digest::of(text.as_bytes()).to_string());
    Ok(vec![digest])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_ranks() {
        assert!(rank("CRITICAL") < rank("HIGH"));
        assert!(rank("high") < rank("MEDIUM"));
        assert_eq!(rank("whatever"), SEVERITIES.len());
    }

    fn attribute(key: &str, value: &str) -> aws_sdk_ecr::types::Attribute {
        aws_sdk_ecr::types::Attribute::builder()
            .key(key)
            .value(value)
            .build()
            .unwrap()
    }

    #[test]
    fn basic_findings_keep_critical_and_high_with_their_package() {
        use aws_sdk_ecr::types::FindingSeverity;
        let finding = |sev: FindingSeverity| {
            ImageScanFinding::builder()
                .name("CVE-2024-1")
                .uri("https://cve.example/1")
                .severity(sev)
                .attributes(attribute("package_name", "openssl"))
        };
        let high = basic_finding(
            &finding(FindingSeverity::High)
                .attributes(attribute("package_version", "3.0.1"))
                .build(),
        );
        assert_eq!(
            high,
            Some(Finding {
                name: "CVE-2024-1".into(),
                package: "openssl 3.0.1".into(),
                severity: "HIGH".into(),
                link: "https://cve.example/1".into(),
            })
        );
        let unversioned = basic_finding(&finding(FindingSeverity::Critical).build()).unwrap();
        assert_eq!(unversioned.package, "openssl");
        assert_eq!(unversioned.severity, "CRITICAL");
        assert_eq!(
            basic_finding(&finding(FindingSeverity::Medium).build()),
            None
        );
    }

    #[test]
    fn enhanced_findings_name_the_vulnerability_else_the_title() {
        use aws_sdk_ecr::types::{PackageVulnerabilityDetails, VulnerablePackage};
        let details = PackageVulnerabilityDetails::builder()
            .vulnerability_id("CVE-2024-2")
            .source_url("https://nvd.example/2")
            .vulnerable_packages(
                VulnerablePackage::builder()
                    .name("zlib")
                    .version("1.2")
                    .build(),
            )
            .build();
        let full = EnhancedImageScanFinding::builder()
            .severity("CRITICAL")
            .title("zlib overflow")
            .package_vulnerability_details(details)
            .build();
        assert_eq!(
            enhanced_finding(&full),
            Some(Finding {
                name: "CVE-2024-2".into(),
                package: "zlib 1.2".into(),
                severity: "CRITICAL".into(),
                link: "https://nvd.example/2".into(),
            })
        );
        let bare = EnhancedImageScanFinding::builder()
            .severity("HIGH")
            .title("something")
            .build();
        assert_eq!(
            enhanced_finding(&bare),
            Some(Finding {
                name: "something".into(),
                package: String::new(),
                severity: "HIGH".into(),
                link: String::new(),
            })
        );
        let low = EnhancedImageScanFinding::builder().severity("LOW").build();
        assert_eq!(enhanced_finding(&low), None);
    }
}

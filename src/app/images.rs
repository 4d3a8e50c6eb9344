//! `ocibuild images`: per service, what its repository holds (see [`crate::inventory`]). On
//! ECR from `DescribeImages` (every page; sizes, push and pull times, scan summaries, and the
//! `subject` of each artifact) and `BatchGetImage` of the indexes (their children); on any
//! other registry through [`registry`].

mod registry;

use super::{access, AppError};
use crate::config::{AuthMode, Config};
use crate::ecr::images as ecr_images;
use crate::ecr::Ecr;
use crate::inventory::{self, Listing, Record};
use serde::Serialize;
use std::path::PathBuf;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ImagesRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// Images per service, newest first.
    pub limit: usize,
}

/// One service's repository.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceImages {
    /// Service name.
    pub service: String,
    /// `host/repository`.
    pub repository: String,
    /// Where the listing came from: `ecr` or `registry`.
    pub source: &'static str,
    /// Its images and untagged leftovers.
    #[serde(flatten)]
    pub listing: Listing,
    /// Why it could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// List the requested services' images.
pub fn images(req: &ImagesRequest) -> Result<Vec<ServiceImages>, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    if req.limit == 0 {
        return Err(AppError::Usage("--limit must be 1 or more".into()));
    }
    let registry = access::destination(&config, req.registry.as_deref(), req.insecure)?;
    let runtime = super::runtime()?;
    let connected = access::Connected::open(&runtime, &registry)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    for s in config.select(&req.services)? {
        let repository = registry.repository_path(&s.repository);
        let listed = runtime.block_on(async {
            let (records, left_out) = match (&connected.ecr, registry.auth_mode()) {
                (Some(ecr), AuthMode::Ecr) => (from_ecr(ecr, &repository).await?, 0),
                _ => registry::records(&connected.client, &repository, req.limit).await?,
            };
            let mut listing = inventory::group(records, now, req.limit);
            listing.more += left_out;
            if let Some(ecr) = &connected.ecr {
                scans(ecr, &repository, &mut listing).await;
            }
            Ok::<_, String>(listing)
        });
        let (listing, error) = match listed {
            Ok(listing) => (listing, None),
            Err(e) => (Listing::default(), Some(e)),
        };
        out.push(ServiceImages {
            service: s.name.clone(),
            repository: format!("{}/{repository}", registry.host),
            source: if connected.ecr.is_some() {
                "ecr"
            } else {
                "registry"
            },
            listing,
            error,
        });
    }
    Ok(out)
}

/// The scan summaries `DescribeImages` left out (enhanced scanning gives none there), from
/// `DescribeImageScanFindings` of each listed platform; one that cannot be read stays empty.
async fn scans(ecr: &Ecr, repository: &str, listing: &mut Listing) {
    let platforms = listing
        .images
        .iter_mut()
        .flat_map(|i| i.platforms.iter_mut())
        .filter(|p| p.severities.is_empty());
    for p in platforms {
        if let Ok(Some((status, counts))) =
            crate::ecr::scan::summary(ecr, repository, &p.digest).await
        {
            p.scan_status = Some(status);
            p.severities = counts;
        }
    }
}

/// Every image of `repository` as ECR describes it, indexes with their children.
async fn from_ecr(ecr: &Ecr, repository: &str) -> Result<Vec<Record>, String> {
    let all = ecr_images::describe_all(ecr, repository)
        .await
        .map_err(|e| e.to_string())?;
    let indexes: Vec<String> = all
        .iter()
        .filter(|i| i.is_index())
        .map(|i| i.digest.clone())
        .collect();
    let children = ecr_images::index_children(ecr, repository, &indexes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .map(|i| Record {
            children: children.get(&i.digest).cloned().unwrap_or_default(),
            size: i.size.and_then(|s| u64::try_from(s).ok()),
            media_type: i.media_type.unwrap_or_default(),
            via: i.subject.as_ref().map(|_| "referrers API".to_string()),
            digest: i.digest,
            tags: i.tags,
            pushed_at: i.pushed_at,
            last_pull: i.last_pull,
            scan_status: i.scan_status,
            severities: i.severities,
            subject: i.subject,
            artifact_type: i.artifact_type,
        })
        .collect())
}

//! `ocibuild tag`: promote an image already in the registry by giving it more tags, without
//! rebuilding or uploading anything. The image is named by a tag or a digest; each new tag is
//! one manifest PUT of the same bytes.

use super::{access, AppError};
use crate::config::Config;
use crate::digest::Digest;
use crate::transfer::{self, Remote};
use serde::Serialize;
use std::path::PathBuf;

/// What to promote.
#[derive(Debug, Clone, Default)]
pub struct TagRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// The service whose repository holds the image.
    pub service: String,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// The image, by one of its tags.
    pub from_tag: Option<String>,
    /// The image, by digest.
    pub digest: Option<String>,
    /// The tags to add.
    pub to: Vec<String>,
}

/// One tag asked for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagOutcome {
    /// The tag.
    pub tag: String,
    /// `written`, or `unchanged` when it named the image already.
    pub outcome: &'static str,
}

/// What `tag` did.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// Service name.
    pub service: String,
    /// The immutable reference of the image: `host/repository@digest`.
    pub reference: String,
    /// Its media type (an index, or a single manifest).
    pub media_type: String,
    /// Each tag asked for.
    pub tags: Vec<TagOutcome>,
}

/// Add `req.to` to the image `req.from_tag` or `req.digest` names.
pub fn tag(req: &TagRequest) -> Result<TagReport, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    let from = source(req.from_tag.as_deref(), req.digest.as_deref())?;
    if req.to.is_empty() {
        return Err(AppError::Usage(
            "name at least one tag to add with --to TAG".into(),
        ));
    }
    super::check_tags(&req.to, false)?;
    let service = config
        .select(std::slice::from_ref(&req.service))
        .map_err(|e| AppError::Usage(e.0))?
        .remove(0);
    let registry = access::destination(&config, req.registry.as_deref(), req.insecure)?;
    let repository = registry.repository_path(&service.repository);
    let runtime = super::runtime()?;
    let connected = access::Connected::open(&runtime, &registry)?;
    let sources = access::base_registries(&config);
    let remote = Remote::new(&connected.client, &sources);
    let done = runtime.block_on(transfer::retag(&remote, &repository, &from, &req.to))?;
    Ok(TagReport {
        service: service.name.clone(),
        reference: format!("{}/{repository}@{}", registry.host, done.digest),
        media_type: done.media_type,
        tags: done
            .tags
            .into_iter()
            .map(|(tag, written)| TagOutcome {
                tag,
                outcome: if written { "written" } else { "unchanged" },
            })
            .collect(),
    })
}

/// The reference the image is read by: a tag or a digest, exactly one (a usage error
/// otherwise).
pub fn source(tag: Option<&str>, digest: Option<&str>) -> Result<String, AppError> {
    match (tag, digest) {
        (Some(t), None) => {
            crate::spec::check_tag(t).map_err(|e| AppError::Usage(format!("--from-tag: {e}")))?;
            Ok(t.to_string())
        }
        (None, Some(d)) => d.parse::<Digest>().map(|d| d.to_string()).map_err(|e| {
            AppError::Usage(format!("--digest {d:?}: {e} (give sha256:<64 hex digits>)"))
        }),
        (Some(_), Some(_)) => Err(AppError::Usage(
            "give the image by --from-tag or by --digest, not both".into(),
        )),
        (None, None) => Err(AppError::Usage(
            "name the image to start from: --from-tag TAG or --digest sha256:...".into(),
        )),
    }
}

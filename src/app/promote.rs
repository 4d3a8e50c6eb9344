//! `ocibuild tag`: promote an image already in the registry by giving it more tags, without
//! rebuilding or uploading anything. The image is named by a tag or a digest; each new tag is
//! one manifest PUT of the same bytes.

use super::{access, AppError};
use crate::config::Config;
use crate::digest::Digest;
use crate::transfer::{self, Remote, TagWrite};
use serde::Serialize;
use std::path::PathBuf;

/// Which image a promotion or a copy starts from.
#[derive(Debug, Clone, Default)]
pub struct ImageChoice {
    /// Config file.
    pub config: Option<PathBuf>,
    /// The service whose repository holds the image.
    pub service: String,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// Plain HTTP (to registries written without a scheme).
    pub insecure: bool,
    /// The image, by one of its tags.
    pub from_tag: Option<String>,
    /// The image, by digest.
    pub digest: Option<String>,
}

/// What to promote.
#[derive(Debug, Clone, Default)]
pub struct TagRequest {
    /// The image.
    pub image: ImageChoice,
    /// The tags to add.
    pub to: Vec<String>,
}

/// One tag asked for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagOutcome {
    /// The tag.
    pub tag: String,
    /// `written`, `moved` (it named another image before), or `unchanged` (it named this one).
    pub outcome: &'static str,
    /// What a moved tag named before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
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

/// Add `req.to` to the image `req.image` names.
pub fn tag(req: &TagRequest, events: super::Events<'_>) -> Result<TagReport, AppError> {
    let i = &req.image;
    let config = Config::find_and_load(i.config.as_deref())?;
    let from = source(i.from_tag.as_deref(), i.digest.as_deref())?;
    if req.to.is_empty() {
        return Err(AppError::Usage(
            "name at least one tag to add with --to TAG".into(),
        ));
    }
    super::check_tags(&req.to, false)?;
    let service = config
        .select(std::slice::from_ref(&i.service))
        .map_err(|e| AppError::Usage(e.0))?
        .remove(0);
    let registry = access::destination(&config, i.registry.as_deref(), i.insecure)?;
    let repository = registry.repository_path(&service.repository);
    let runtime = super::runtime()?;
    let connected = access::Connected::open(&runtime, &registry)?;
    let sources = access::base_registries(&config);
    let remote = Remote::new(&connected.client, &sources);
    let done = runtime.block_on(transfer::retag(&remote, &repository, &from, &req.to))?;
    if !crate::oci::read::is_index(&done.media_type) && config.platforms.len() > 1 {
        events(super::Event::Warning(format!(
            "{} is a single manifest, not an image index: the tags now name one platform only (the config builds {}); promote the index (its digest is in `ocibuild images`) unless that is what you want",
            done.digest,
            config.platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(TagReport {
        service: service.name.clone(),
        reference: format!("{}/{repository}@{}", registry.host, done.digest),
        media_type: done.media_type,
        tags: done
            .tags
            .into_iter()
            .map(|(tag, w)| {
                let (outcome, previous) = match w {
                    TagWrite::Unchanged => ("unchanged", None),
                    TagWrite::Written => ("written", None),
                    TagWrite::Moved(d) => ("moved", Some(d.to_string())),
                };
                TagOutcome {
                    tag,
                    outcome,
                    previous,
                }
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

/// What to copy, and where.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// The image.
    pub image: ImageChoice,
    /// The destination registry, `HOST[:PORT][/PREFIX]`.
    pub to_registry: String,
    /// Tags to write there (default: the image's `from_tag`, if it was named by tag).
    pub to_tags: Vec<String>,
    /// Blob transfers at once.
    pub jobs: usize,
}

/// What `copy` did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The image copied: `host/repository@digest` at the source.
    pub source: String,
    /// The copy, as a push reports it (`reference`: the immutable reference written).
    #[serde(flatten)]
    pub copied: crate::transfer::PushReport,
}

/// Copy the image `req` names, with everything attached to it, to `req.to_registry`.
pub fn copy(req: &CopyRequest, events: super::Events<'_>) -> Result<CopyReport, AppError> {
    let i = &req.image;
    let config = Config::find_and_load(i.config.as_deref())?;
    let from = source(i.from_tag.as_deref(), i.digest.as_deref())?;
    let tags = match (&i.from_tag, req.to_tags.is_empty()) {
        (Some(t), true) => vec![t.clone()],
        _ => req.to_tags.clone(),
    };
    super::check_tags(&tags, false)?;
    let service = config
        .select(std::slice::from_ref(&i.service))
        .map_err(|e| AppError::Usage(e.0))?
        .remove(0);
    let src = access::destination(&config, i.registry.as_deref(), i.insecure)?;
    let dst = access::other_registry(&config, &req.to_registry, i.insecure)
        .map_err(|e| AppError::Usage(format!("--to-registry: {e}")))?;
    let at = crate::oci::RepoAt {
        host: src.host.clone(),
        repository: src.repository_path(&service.repository),
    };
    let repository = dst.repository_path(&service.repository);
    if dst.host == at.host && repository == at.repository {
        return Err(AppError::Usage(format!(
            "--to-registry {} is where the image is ({}/{}): name another registry or prefix",
            req.to_registry, at.host, at.repository
        )));
    }
    let runtime = super::runtime()?;
    let from_side = access::Connected::open(&runtime, &src)?;
    let image = runtime.block_on(carried(
        &from_side.client,
        &at,
        &from,
        &service.name,
        repository,
        tags,
    ))?;
    let source = format!("{}/{}@{}", at.host, at.repository, image.graph.top.digest);
    let to_side = access::Connected::open(&runtime, &dst)?;
    let sources = access::registries(Some(src));
    let remote = Remote::new(&to_side.client, &sources);
    let opts = transfer::TransferOptions {
        jobs: req.jobs.max(1),
        dry_run: false,
    };
    let progress = |e| events(super::Event::Transfer(e));
    let mut reports = runtime.block_on(transfer::transfer(&remote, &[image], &opts, &progress));
    events(super::Event::TransferDone);
    let copied = reports.remove(0);
    if let Some(e) = &copied.error {
        return Err(AppError::Refused(format!(
            "copying {source} to {}: {e}",
            copied.reference
        )));
    }
    Ok(CopyReport { source, copied })
}

/// The image `from` of `at` as a transfer carries it: its graph (blobs left at `at`), the
/// artifacts referring to it and its signatures, for `repository` under `tags`.
async fn carried(
    client: &crate::registry::client::RegistryClient,
    at: &crate::oci::RepoAt,
    from: &str,
    service: &str,
    repository: String,
    tags: Vec<String>,
) -> Result<transfer::TransferImage, AppError> {
    let graph = transfer::read_image(client, at, from).await?;
    let repo = at.repository.as_str();
    let mut attachments = Vec::new();
    let mut signatures = Vec::new();
    let mut attachment_blobs: Vec<crate::oci::BlobRef> = Vec::new();
    let mut budget = transfer::Budget::default();
    for subject in transfer::subjects(&graph) {
        let (found, big) = transfer::read_artifacts(client, at, &subject, &mut budget).await?;
        attachments.extend(found);
        // Big attachment blobs are streamed like layers, never held.
        for b in big {
            let known = graph.blobs.iter().chain(&attachment_blobs);
            if !known.clone().any(|have| have.digest == b.digest) {
                attachment_blobs.push(b);
            }
        }
        let signed = transfer::read_signatures(client, repo, &subject.digest, &mut budget);
        signatures.extend(signed.await?);
    }
    Ok(transfer::TransferImage {
        service: service.to_string(),
        repository,
        graph,
        tags,
        attachments,
        signatures,
        attachment_blobs,
    })
}

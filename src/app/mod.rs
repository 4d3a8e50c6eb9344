//! Use cases: one function per command, taking a request struct and returning a report. No
//! printing: what is worth telling while a use case runs goes out as an [`Event`] to a sink
//! the caller gives; the environment is read only through the [`Env`] lookup the caller gives.
//!
//! - `build`: `ocibuild build`; `publish`: `ocibuild push` (plan -> build | open layouts ->
//!   ensure repositories -> transfer -> scan); `verify`, `repos`, `scan`, `iam`, `plan`: the
//!   other commands.
//! - `access`: which credentials each registry host gets; `attach`: the SBOMs, provenance and
//!   signatures a push carries; `tags`: tag facts from git and CI.
//!
//! Imports everything below it (`attest`, `base`, `build`, `config`, `ecr`, `layer`, `oci`,
//! `plan`, `platform`, `registry`, `sign`, `transfer`); nothing imports `app` but `cli`.

pub mod access;
pub mod attach;
pub mod build;
pub mod cache;
pub mod iam;
pub mod images;
pub mod lifecycle;
pub mod plan;
pub mod promote;
pub mod publish;
pub mod repos;
pub mod scan;
pub mod tags;
#[cfg(test)]
mod tests;
pub mod verify;

use crate::platform::Platform;

/// The report types of the layers below that the CLI renders (it imports nothing else).
pub mod reports {
    pub use crate::build::ServiceReport;
    pub use crate::ecr::repos::RepoPlan;
    pub use crate::ecr::scan::{Finding, ScanResult, SEVERITIES};
    pub use crate::inventory::Image;
    pub use crate::plan::Plan;
    pub use crate::transfer::{
        AttachKind, Attached, BlobOutcome, Event as TransferEvent, PushReport,
    };
}
use std::path::PathBuf;

/// Reads one environment variable (the process environment in the CLI; a map in tests).
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Where a use case tells what happens as it happens.
pub type Events<'a> = &'a (dyn Fn(Event) + Send + Sync);

/// What a use case tells while it runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should look at; the run goes on.
    Warning(String),
    /// A remark (e.g. a tag kind skipped here).
    Note(String),
    /// Which services were selected, and why.
    Planned(crate::plan::Plan),
    /// Services built (before pushing).
    Built(Vec<crate::build::ServiceReport>),
    /// The repository settings planned (applied unless `dry_run`).
    ReposPlanned {
        /// The plans.
        plans: Vec<crate::ecr::repos::RepoPlan>,
        /// Nothing is applied.
        dry_run: bool,
    },
    /// Transfer progress.
    Transfer(crate::transfer::Event),
    /// The transfer is over (progress display may close).
    TransferDone,
    /// Scan results, as they arrived.
    Scanned(Vec<scan::ServiceScans>),
}

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request cannot be carried out as asked (a missing or contradictory setting).
    #[error("{0}")]
    Refused(String),
    /// The command line asks for something that cannot be (an unknown service, a bad tag or
    /// platform, a missing registry, an option that does not apply): refused before any work;
    /// the CLI exits 2.
    #[error("{0}")]
    Usage(String),
    /// The config file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Choosing services or tags.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// The build.
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    /// Amazon ECR.
    #[error(transparent)]
    Ecr(#[from] crate::ecr::EcrError),
    /// A registry.
    #[error(transparent)]
    Registry(Box<crate::registry::error::RegistryError>),
    /// Credentials.
    #[error(transparent)]
    Auth(#[from] crate::registry::auth::AuthError),
    /// Copying or tagging images in a registry.
    #[error(transparent)]
    Transfer(Box<crate::transfer::TransferError>),
    /// A signing or verification key.
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    /// A local failure (runtime, files).
    #[error("{0}")]
    Other(String),
}

impl From<crate::transfer::TransferError> for AppError {
    fn from(e: crate::transfer::TransferError) -> Self {
        AppError::Transfer(Box::new(e))
    }
}

impl From<crate::registry::error::RegistryError> for AppError {
    fn from(e: crate::registry::error::RegistryError) -> Self {
        AppError::Registry(Box::new(e))
    }
}

/// How layers are made, as the command line says.
#[derive(Debug, Clone, Default)]
pub struct LayerSettings {
    /// Compress for speed (level 1).
    pub fast: bool,
    /// Layer cache directory (default: from the environment).
    pub cache_dir: Option<PathBuf>,
    /// Use no cache at all (local or registry).
    pub no_cache: bool,
    /// Ask registries what base tags point at now.
    pub pull: bool,
    /// Do not use the registry layer cache (the local one still is).
    pub no_registry_cache: bool,
    /// The registry cache's repository (default: the config's `[cache] repository`).
    pub cache_repository: Option<String>,
    /// Rebuild the layers the registry cache has and fail if a digest differs.
    pub verify_cache: bool,
}

/// `SOURCE_DATE_EPOCH` from `env`, or 0; refused unless a whole number of seconds from 0 to
/// [`crate::build::MAX_EPOCH`] (the end of year 9999: `created` must stay RFC 3339).
pub fn source_date_epoch(env: Env<'_>) -> Result<u64, AppError> {
    let max = crate::build::MAX_EPOCH;
    let refuse = |v: &str, why: String| {
        AppError::Refused(format!(
            "SOURCE_DATE_EPOCH={v:?} {why}: set it to a whole number of seconds from 0 to {max} (9999-12-31T23:59:59Z), or unset it for 0"
        ))
    };
    match env("SOURCE_DATE_EPOCH") {
        None => Ok(0),
        Some(v) if v.trim().is_empty() => Ok(0),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            Ok(_) => Err(refuse(&v, "is after the year 9999".into())),
            Err(e) => Err(refuse(
                &v,
                format!("is not a non-negative integer number of seconds ({e})"),
            )),
        },
    }
}

/// Platforms from the command line (`None`, or `all`: the config's), duplicates dropped.
pub fn parse_platforms(list: &[String]) -> Result<Option<Vec<Platform>>, AppError> {
    if list.is_empty() || list.iter().all(|p| p == "all") {
        return Ok(None);
    }
    let mut out: Vec<Platform> = Vec::new();
    for p in list {
        if p == "all" {
            return Err(AppError::Usage(
                "--platform all means every platform of the config: give it alone".into(),
            ));
        }
        let p: Platform = p.parse().map_err(AppError::Usage)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(Some(out))
}

/// Check that every named service exists (a usage error otherwise).
pub fn check_services(config: &crate::config::Config, names: &[String]) -> Result<(), AppError> {
    config
        .select(names)
        .map(|_| ())
        .map_err(|e| AppError::Usage(e.0))
}

/// Check tags written on the command line (a usage error otherwise); `kinds`: tag kinds such as
/// `sha` are allowed too.
pub fn check_tags(tags: &[String], kinds: bool) -> Result<(), AppError> {
    if kinds {
        return crate::plan::validate_tags(tags).map_err(|e| AppError::Usage(e.0));
    }
    tags.iter()
        .try_for_each(|t| crate::spec::check_image_tag(t))
        .map_err(AppError::Usage)
}

/// The async runtime a use case runs its network work on.
pub fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Other(format!("starting the async runtime: {e}")))
}

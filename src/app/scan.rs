//! `ocibuild scan` (and `push --scan`): wait for ECR's scans of images and read their
//! findings; the rule that fails a run on findings (`--fail-on`, never by default).

use super::{access, AppError, Event, Events};
use crate::config::Config;
use crate::ecr::scan::{self, ScanResult};
use crate::ecr::Ecr;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long to wait, and what fails the run.
#[derive(Debug, Clone)]
pub struct ScanPolicy {
    /// Longest wait for each scan (a time-out is reported, not an error).
    pub wait: Duration,
    /// Fail on a finding at this severity or worse.
    pub fail_on: Option<String>,
}

/// Which images to look at.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// Tag or digest (default: `latest`).
    pub reference: Option<String>,
    /// Wait and gate.
    pub policy: ScanPolicy,
}

/// One service's scan results, one per platform manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceScans {
    /// Service name.
    pub service: String,
    /// Results.
    pub results: Vec<ScanResult>,
}

/// The results, and why the run fails if it does.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// Per service.
    pub services: Vec<ServiceScans>,
    /// The services with findings at `--fail-on` or worse (`None`: the gate passes).
    pub failure: Option<String>,
}

/// An image to wait for: a service's repository and its platform manifests.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub service: String,
    pub repository: String,
    pub digests: Vec<String>,
}

/// Wait for and read the scans of the requested services' images.
pub fn scan(req: &ScanRequest, events: Events<'_>) -> Result<ScanReport, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    let registry = access::destination(&config, req.registry.as_deref(), false)?;
    let runtime = super::runtime()?;
    let ecr = runtime.block_on(access::connect_ecr(&registry))?;
    let reference = req.reference.clone().unwrap_or_else(|| "latest".into());
    let mut targets = Vec::new();
    for s in config.select(&req.services)? {
        let repository = registry.repository_path(&s.repository);
        let digests = runtime.block_on(scan::manifests_of(&ecr, &repository, &reference))?;
        targets.push(Target {
            service: s.name.clone(),
            repository,
            digests,
        });
    }
    runtime.block_on(wait_all(&ecr, &targets, &req.policy, events))
}

/// Wait for every target's scans at once; tell them; judge them.
pub(crate) async fn wait_all(
    ecr: &Ecr,
    targets: &[Target],
    policy: &ScanPolicy,
    events: Events<'_>,
) -> Result<ScanReport, AppError> {
    let jobs = targets.iter().map(|t| async move {
        let mut results = Vec::new();
        for d in &t.digests {
            results.push(scan::wait_and_read(ecr, &t.repository, d, policy.wait).await?);
        }
        Ok::<_, crate::ecr::EcrError>(ServiceScans {
            service: t.service.clone(),
            results,
        })
    });
    let services = futures_util::future::try_join_all(jobs).await?;
    events(Event::Scanned(services.clone()));
    let failure = fails(&services, policy.fail_on.as_deref());
    Ok(ScanReport { services, failure })
}

/// The services (and manifests) with a finding at `fail_on` or worse; `None` when none, or
/// when no gate is asked for.
pub fn fails(results: &[ServiceScans], fail_on: Option<&str>) -> Option<String> {
    let limit = scan::rank(fail_on?);
    let bad: Vec<String> = results
        .iter()
        .flat_map(|s| s.results.iter().map(move |r| (&s.service, r)))
        .filter(|(_, r)| {
            r.counts
                .iter()
                .any(|(sev, n)| *n > 0 && scan::rank(sev) <= limit)
        })
        .map(|(svc, r)| format!("{svc} ({})", r.digest.chars().take(19).collect::<String>()))
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

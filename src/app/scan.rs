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
    /// The platform of each digest, when known.
    pub platforms: Vec<String>,
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
            platforms: vec![],
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
        for (i, d) in t.digests.iter().enumerate() {
            // A scan that cannot be read is reported (status ERROR), not fatal: the images are
            // pushed, and scans are informational unless a gate is asked for.
            let r = scan::wait_and_read(ecr, &t.repository, d, policy.wait).await;
            let mut r = r.unwrap_or_else(|e| {
                ScanResult::new(&t.repository, d, "ERROR".into(), Some(e.to_string()))
            });
            r.platform = t.platforms.get(i).cloned();
            results.push(r);
        }
        ServiceScans {
            service: t.service.clone(),
            results,
        }
    });
    let services = futures_util::future::join_all(jobs).await;
    for s in &services {
        for r in s.results.iter().filter(|r| r.status == "ERROR") {
            let why = r.description.as_deref().unwrap_or("no reason given");
            events(Event::Warning(format!(
                "scan of {} {}@{} could not be read: {why}",
                s.service, r.repository, r.digest
            )));
        }
    }
    events(Event::Scanned(services.clone()));
    let failure = fails(&services, policy.fail_on.as_deref());
    Ok(ScanReport { services, failure })
}

/// Why the gate fails: the services (and manifests) with a finding at `fail_on` or worse, or
/// whose scan did not complete (a gate cannot pass without a result); `None` when it passes,
/// or when no gate is asked for.
pub fn fails(results: &[ServiceScans], fail_on: Option<&str>) -> Option<String> {
    let limit = scan::rank(fail_on?);
    let bad: Vec<String> = results
        .iter()
        .flat_map(|s| s.results.iter().map(move |r| (&s.service, r)))
        .filter_map(|(svc, r)| {
            let at = format!("{svc} ({})", r.digest.chars().take(19).collect::<String>());
            if r.status != "COMPLETE" {
                return Some(format!("{at}: the scan did not complete ({})", r.status));
            }
            let found = r
                .counts
                .iter()
                .any(|(sev, n)| *n > 0 && scan::rank(sev) <= limit);
            found.then_some(at)
        })
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scans(status: &str, high: i64) -> Vec<ServiceScans> {
        let mut r = ScanResult::new("shop/cart", "sha256:abcdef0123456789", status.into(), None);
        if high > 0 {
            r.counts.insert("HIGH".into(), high);
        }
        vec![ServiceScans {
            service: "cart".into(),
            results: vec![r],
        }]
    }

    #[test]
    fn the_gate_needs_a_result_and_judges_findings() {
        assert_eq!(
            fails(&scans("COMPLETE", 1), None),
            None,
            "no gate: informational"
        );
        assert_eq!(fails(&scans("TIMED_OUT", 0), None), None);
        assert_eq!(fails(&scans("COMPLETE", 0), Some("HIGH")), None);
        let bad = fails(&scans("COMPLETE", 1), Some("CRITICAL"));
        assert_eq!(bad, None, "HIGH is below a CRITICAL gate");
        let bad = fails(&scans("COMPLETE", 1), Some("HIGH")).unwrap();
        assert_eq!(bad, "cart (sha256:abcdef012345)");
        for status in ["TIMED_OUT", "FAILED", "ERROR"] {
            let bad = fails(&scans(status, 0), Some("CRITICAL")).unwrap();
            assert!(
                bad.contains(&format!("did not complete ({status})")),
                "{bad}"
            );
        }
    }
}

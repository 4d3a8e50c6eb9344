//! GitHub Actions: `GITHUB_OUTPUT` (services, images, per-service digest and image), step
//! summaries (`GITHUB_STEP_SUMMARY`), and `::warning` annotations for scan findings. Writes
//! only where those variables point; prints annotations only when `GITHUB_ACTIONS=true`.

use super::render::{human_bytes, short};
use crate::app::publish::ServiceOutcome;
use crate::app::reports::{ScanResult, ServiceReport};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Whether this runs inside GitHub Actions.
pub fn active() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Append `text` to the file named by the environment variable `var`, if set.
fn append_to_env_file(var: &str, text: &str) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os(var) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {var}={}", PathBuf::from(&path).display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {var}"))?;
    }
    Ok(())
}

/// GITHUB_OUTPUT: `services` (JSON list of `planned`), `images` (JSON map service ->
/// repo@digest of the services pushed), and per pushed service `<name>-digest`, `<name>-image`,
/// `<name>-attached` (JSON list of the SBOMs, provenance and signatures attached).
pub fn write_outputs(pushed: &[&ServiceOutcome], planned: &[String]) -> anyhow::Result<()> {
    let mut out = String::new();
    let images: BTreeMap<&str, String> = pushed
        .iter()
        .map(|s| {
            let r = &s.push;
            let image = format!("{}/{}@{}", r.registry, r.repository, r.index_digest);
            (r.service.as_str(), image)
        })
        .collect();
    out.push_str(&format!("services={}\n", serde_json::to_string(planned)?));
    out.push_str(&format!("images={}\n", serde_json::to_string(&images)?));
    for s in pushed {
        let r = &s.push;
        out.push_str(&format!("{}-digest={}\n", r.service, r.index_digest));
        out.push_str(&format!(
            "{}-image={}\n",
            r.service,
            images[r.service.as_str()]
        ));
        // What was attached, as JSON: [{kind, artifact_type, subject, digest, stored}].
        out.push_str(&format!(
            "{}-attached={}\n",
            r.service,
            serde_json::to_string(&r.attached)?
        ));
    }
    append_to_env_file("GITHUB_OUTPUT", &out)
}

/// A registry base in a step summary cell: its name and what it resolved to.
fn summary_base(name: &str, digest: &str) -> String {
    format!("`{name}` → `{digest}`")
}

/// Findings of one service's scans, summed by severity, for a summary cell.
fn scan_cell(s: &ServiceOutcome) -> String {
    let Some(results) = &s.scan else {
        return String::new();
    };
    let incomplete: Vec<&str> = results
        .iter()
        .filter(|r| r.status != "COMPLETE")
        .map(|r| r.status.as_str())
        .collect();
    if !incomplete.is_empty() {
        return incomplete.join(", ");
    }
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for r in results {
        for (k, v) in &r.counts {
            *totals.entry(k.as_str()).or_default() += v;
        }
    }
    if totals.is_empty() {
        return "no findings".to_string();
    }
    let cells: Vec<String> = totals.iter().map(|(k, v)| format!("{k} {v}")).collect();
    cells.join(", ")
}

/// Add `markdown` to the job's step summary.
pub fn write_summary(markdown: &str) -> anyhow::Result<()> {
    append_to_env_file("GITHUB_STEP_SUMMARY", markdown)
}

/// The step summary of a push.
pub fn write_summary_pushed(services: &[ServiceOutcome]) -> anyhow::Result<()> {
    let mut md = String::from("### ocibuild push\n\n| service | platforms | digest | tags | uploaded | time | scan | base |\n|---|---|---|---|---|---|---|---|\n");
    for s in services {
        let r = &s.push;
        let digest = match &r.error {
            Some(e) => format!("FAILED: {}", e.replace('|', "/")),
            None => format!("`{}`", r.reference),
        };
        let base = match (&r.base_name, &r.base_digest) {
            (Some(name), Some(digest)) => summary_base(name, digest),
            _ => String::new(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} s | {} | {base} |\n",
            r.service,
            r.manifest_digests.len(),
            digest,
            r.tags.join(", "),
            human_bytes(r.bytes_uploaded),
            r.duration_ms as f64 / 1000.0,
            scan_cell(s)
        ));
    }
    append_to_env_file("GITHUB_STEP_SUMMARY", &md)
}

/// The step summary of a build that pushed nothing (pull requests).
pub fn write_summary_built(built: &[ServiceReport], tags: &[String]) -> anyhow::Result<()> {
    let mut md = String::from("### ocibuild (pull request: built, not pushed)\n\n| service | platforms | digest | tags | base |\n|---|---|---|---|---|\n");
    for r in built {
        let base = r
            .base
            .as_ref()
            .map(|b| summary_base(&b.name, &b.digest))
            .unwrap_or_default();
        let platforms: Vec<&str> = r.platforms.iter().map(|p| p.platform.as_str()).collect();
        md.push_str(&format!(
            "| {} | {} | `{}` | {} | {base} |\n",
            r.name,
            platforms.join(", "),
            r.index_digest,
            tags.join(", ")
        ));
    }
    append_to_env_file("GITHUB_STEP_SUMMARY", &md)
}

/// The annotations of one service's scans: one per scan that did not complete, and one per
/// CRITICAL or HIGH finding, naming every platform it was found on.
pub fn annotate_scans(service: &str, results: &[ScanResult]) {
    for r in results.iter().filter(|r| r.status != "COMPLETE") {
        let why = r.description.as_deref().unwrap_or("no result");
        println!(
            "::warning title={service}: scan {}::{}@{}: {}",
            r.status,
            r.repository,
            r.digest,
            why.replace(['\n', '\r'], " ")
        );
    }
    // One finding, wherever it was found: the platforms, in first-seen order.
    let mut seen: Vec<(FindingAt<'_>, Vec<String>)> = Vec::new();
    for r in results {
        let platform = r.platform.clone().unwrap_or_else(|| short(&r.digest));
        for finding in &r.findings {
            let key = FindingAt {
                finding,
                repository: &r.repository,
            };
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ps)) if !ps.contains(&platform) => ps.push(platform.clone()),
                Some(_) => {}
                None => seen.push((key, vec![platform.clone()])),
            }
        }
    }
    for (at, platforms) in seen {
        let f = at.finding;
        println!(
            "::warning title={service}: {} {}::{} in {} ({}) on {}",
            f.severity,
            f.name,
            f.package,
            at.repository,
            f.link,
            platforms.join(", ")
        );
    }
}

/// A finding in a repository (the same on every platform it was found on).
struct FindingAt<'a> {
    finding: &'a crate::app::reports::Finding,
    repository: &'a str,
}

impl PartialEq for FindingAt<'_> {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (self.finding, o.finding);
        (a.severity == b.severity && a.name == b.name && a.package == b.package)
            && (a.link == b.link && self.repository == o.repository)
    }
}

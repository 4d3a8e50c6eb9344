//! Text and JSON of every report, and the live display of events (progress bars on a
//! terminal, plain lines on CI, nothing with `--quiet`).

mod images;
mod progress;

pub use images::{images_markdown, images_text};
pub use progress::ProgressDisplay;

use crate::app::plan::PlanReport;
use crate::app::publish::PublishReport;
use crate::app::reports::{Plan, RepoPlan, ScanResult, SEVERITIES};
use crate::app::Event;
use anyhow::Context;

/// `n` bytes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The first 19 characters of a digest (`sha256:` and 12 hex digits).
pub(super) fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// Renders the events of a use case as they come.
pub struct Renderer {
    /// No plan summary, build lines, repository plans or progress.
    pub quiet: bool,
    /// Text output (scan tables, repository plans); JSON waits for the end.
    pub text: bool,
    /// Transfer progress.
    pub progress: ProgressDisplay,
}

impl Renderer {
    /// A renderer; `quiet` silences the live parts.
    pub fn new(quiet: bool, text: bool) -> Self {
        Renderer {
            quiet,
            text,
            progress: ProgressDisplay::new(quiet),
        }
    }

    /// Show one event.
    pub fn event(&self, e: Event) {
        match e {
            Event::Warning(w) => eprintln!("warning: {w}"),
            Event::Note(n) => eprintln!("note: {n}"),
            Event::Planned(plan) if !self.quiet => plan_summary(&plan),
            Event::Built(built) if !self.quiet => {
                for r in &built {
                    eprintln!("built {} {}", r.name, r.index_digest);
                    if let Some(b) = &r.base {
                        eprintln!("  on base {} -> {}", b.name, b.digest);
                    }
                    eprintln!("  own layers: {}", r.origins());
                }
            }
            Event::ReposPlanned { plans, dry_run } if self.text && !self.quiet => {
                repo_plans(&plans, dry_run)
            }
            Event::Transfer(e) => self.progress.event(e),
            Event::TransferDone => self.progress.finish(),
            Event::Scanned(scans) => {
                let github = super::github::active();
                for s in &scans {
                    for r in s.results.iter().filter(|_| self.text) {
                        scan_rows(&s.service, r);
                    }
                    if github {
                        super::github::annotate_scans(&s.service, &s.results);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The plan, briefly, on stderr.
fn plan_summary(plan: &Plan) {
    eprintln!("selected: {}", plan.rule);
    if let (Some(b), Some(h)) = (&plan.base, &plan.head) {
        eprintln!("changes {}..{}", short_rev(b), short_rev(h));
    }
    for s in &plan.services {
        eprintln!("  build {}: {}", s.service, s.reason);
    }
    for s in &plan.skipped {
        eprintln!("  skip {}: {}", s.service, s.reason);
    }
}

fn short_rev(r: &str) -> String {
    r.chars().take(7).collect()
}

/// `ocibuild plan --format text`.
pub fn plan_text(r: &PlanReport) {
    let plan = &r.plan;
    if let (Some(b), Some(h)) = (&plan.base, &plan.head) {
        println!("comparing {b} .. {h}");
    }
    println!(
        "{} of {} services to build: {}",
        plan.services.len(),
        r.total,
        plan.rule
    );
    for s in &plan.services {
        println!("  {:<12} {}", s.service, s.reason);
    }
    for s in &plan.skipped {
        println!("  {:<12} skipped: {}", s.service, s.reason);
    }
}

/// The repository plans, on stdout.
fn repo_plans(plans: &[RepoPlan], dry_run: bool) {
    let would = if dry_run { "would " } else { "" };
    for p in plans {
        if p.changes.is_empty() {
            println!("{}: up to date", p.repository);
        }
        for c in &p.changes {
            println!("{}: {would}{c}", p.repository);
        }
        for d in &p.drift {
            println!("{}: DRIFT: {d}", p.repository);
        }
    }
    if plans.iter().all(|p| p.changes.is_empty()) {
        println!("nothing to change");
    }
}

/// One scan result as table rows, on stdout.
fn scan_rows(service: &str, r: &ScanResult) {
    let counts: Vec<String> = SEVERITIES
        .iter()
        .filter_map(|sev| r.counts.get(*sev).map(|n| format!("{sev} {n}")))
        .collect();
    let counts = if counts.is_empty() {
        "no findings".to_string()
    } else {
        counts.join(", ")
    };
    let platform = r
        .platform
        .as_ref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    println!(
        "{} {}@{}{platform}: {} {counts}",
        service,
        r.repository,
        short(&r.digest),
        r.status
    );
    if let Some(d) = &r.description {
        println!("  {d}");
    }
    for f in &r.findings {
        println!(
            "  {:<8} {:<20} {:<30} {}",
            f.severity, f.name, f.package, f.link
        );
    }
}

/// The push summary on stdout: one line per service, then (unless a dry run) each pushed
/// image's immutable reference.
pub fn push_text(report: &PublishReport) {
    for s in &report.services {
        let r = &s.push;
        let state = match (&r.error, r.dry_run) {
            (Some(_), _) => "FAILED",
            (None, true) => "dry run",
            (None, false) => "pushed",
        };
        let copied = if r.blobs_copied > 0 {
            format!(
                ", copied {} ({}) from the base's registry",
                r.blobs_copied,
                human_bytes(r.bytes_copied)
            )
        } else {
            String::new()
        };
        println!(
            "{} {state}: {}/{}@{} tags [{}]: uploaded {} ({}){copied}, mounted {}, skipped {} in {:.1} s",
            r.service,
            r.registry,
            r.repository,
            r.index_digest,
            r.tags.join(", "),
            r.blobs_uploaded,
            human_bytes(r.bytes_uploaded),
            r.blobs_mounted,
            r.blobs_skipped,
            r.duration_ms as f64 / 1000.0
        );
        for a in &r.attached {
            let digest = match a.digest.is_empty() {
                true => String::new(),
                false => format!("{} ", a.digest),
            };
            println!(
                "  {} {} of {}: {digest}({})",
                attach_kind(a),
                a.artifact_type,
                a.subject,
                a.stored
            );
        }
        if let Some(e) = &r.error {
            println!("  error: {e}");
        }
    }
    if !report.dry_run {
        for s in report.services.iter().filter(|s| s.push.error.is_none()) {
            println!("{}", s.push.reference);
        }
    }
}

/// What `verify` found, a block per service: each manifest with its attachments and
/// signatures.
pub fn verify_text(report: &crate::app::verify::VerifyReport) {
    for s in &report.services {
        println!("{} {}", s.service, s.reference);
        if let Some(e) = &s.error {
            println!("  error: {e}");
        }
        for sub in &s.subjects {
            println!("  {} {}", sub.what, sub.digest);
            for a in &sub.attached {
                println!(
                    "    {} {} {} ({})",
                    a.kind, a.artifact_type, a.digest, a.via
                );
            }
            for g in &sub.signatures {
                let state = match (g.valid, &g.problem) {
                    (Some(true), _) => "verified".to_string(),
                    (_, Some(p)) => format!("not valid: {p}"),
                    (Some(false), None) => "not valid".to_string(),
                    (None, None) => "not checked (no --key)".to_string(),
                };
                println!("    signature {} for {}: {state}", g.payload, g.identity);
            }
            if sub.attached.is_empty() && sub.signatures.is_empty() {
                println!("    nothing attached");
            }
        }
    }
}

/// `tag`'s report: each tag, then the immutable reference alone on the last line (for
/// scripts: `ocibuild tag ... | tail -1`).
pub fn tag_text(report: &crate::app::promote::TagReport) {
    for t in &report.tags {
        match &t.previous {
            Some(p) => eprintln!("{} tag {}: moved (it named {p})", report.service, t.tag),
            None => eprintln!("{} tag {}: {}", report.service, t.tag, t.outcome),
        }
    }
    println!("{}", report.reference);
}

/// `copy`'s report: what was copied and how, then the immutable reference written alone on
/// the last line.
pub fn copy_text(report: &crate::app::promote::CopyReport) {
    let c = &report.copied;
    eprintln!(
        "{} copied from {}: tags [{}]: {} blobs mounted, {} streamed ({}), {} uploaded, {} already there",
        c.service,
        report.source,
        c.tags.join(", "),
        c.blobs_mounted,
        c.blobs_copied,
        human_bytes(c.bytes_copied),
        c.blobs_uploaded,
        c.blobs_skipped
    );
    for a in &c.attached {
        eprintln!(
            "  {} {} -> {} ({})",
            attach_kind(a),
            a.digest,
            a.subject,
            a.stored
        );
    }
    println!("{}", c.reference);
}

/// `sbom`, `provenance`, `signature` or `artifact`.
fn attach_kind(a: &crate::app::reports::Attached) -> &'static str {
    use crate::app::reports::AttachKind;
    match a.kind {
        AttachKind::Sbom => "sbom",
        AttachKind::Provenance => "provenance",
        AttachKind::Signature => "signature",
        AttachKind::Other => "artifact",
    }
}

/// Pretty JSON of `value` on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Write `value` as pretty JSON to `path`, atomically (temp file + rename).
pub fn json_file<T: serde::Serialize>(value: &T, path: &std::path::Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing report {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, &json)?;
    tmp.persist(path)
        .with_context(|| format!("writing report {}", path.display()))?;
    Ok(())
}

//! The binary's face: parse the command line, call one `app` use case, render its events and
//! report, pick the exit code (0 success, 1 failure, 2 usage error). The only module that
//! prints, reads the process environment (handing `app` a lookup) or writes GitHub's files.
//! Imports `app` and the report types of the layers below it, nothing else.

mod args;
mod github;
mod render;

use crate::app::publish::{NoPush, Publish};
use crate::app::{self, Env};
pub use args::Cli;
use args::{Command, Format, PlanFormat, ReposCommand};
use clap::Parser;
use render::Renderer;
use std::collections::BTreeMap;

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<app::AppError>() {
                Some(app::AppError::Usage(_)) => 2,
                _ => 1,
            }
        }
    }
}

/// The process environment, as the use cases read it.
fn env() -> impl Fn(&str) -> Option<String> + Sync {
    // A value that is not UTF-8 is passed on (lossily) so that the use case refuses it by name
    // rather than taking it as unset.
    |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let env = env();
    match cli.command {
        Command::Build(a) => {
            let r = Renderer::new(false, a.format == Format::Text);
            let reports = app::build::build(&a.request(), &env, &|e| r.event(e))?;
            match a.format {
                Format::Json => render::json(&reports)?,
                Format::Text => reports.iter().for_each(|r| print!("{r}")),
            }
            Ok(())
        }
        Command::Push(a) => push(&a, &env),
        Command::Repos {
            command: ReposCommand::Ensure(a),
        } => ensure(&a),
        Command::Scan(a) => scan(&a),
        Command::IamPolicy(a) => {
            let r = Renderer::new(false, true);
            let p = app::iam::policy(&a.request(), &env, &|e| r.event(e))?;
            render::json(&p.document)
        }
        Command::Plan(a) => plan(&a, &env),
        Command::Verify(a) => verify(&a),
        Command::Copy(a) => copy(&a),
        Command::Images(a) => images(&a),
        Command::Tag(a) => tag(&a),
    }
}

fn ensure(a: &args::EnsureArgs) -> anyhow::Result<()> {
    let r = Renderer::new(false, a.format == Format::Text);
    if a.check_lifecycle {
        let checks = app::lifecycle::check_only(&a.request(), &|e| r.event(e))?;
        if a.format == Format::Json {
            render::json(&checks)?;
        }
        return Ok(());
    }
    let plans = app::repos::ensure(&a.request(), &|e| r.event(e))?;
    if a.format == Format::Json {
        render::json(&plans)?;
    }
    Ok(())
}

fn copy(a: &args::CopyArgs) -> anyhow::Result<()> {
    let r = Renderer::new(false, a.format == Format::Text);
    let report = app::promote::copy(&a.request(), &|e| r.event(e))?;
    match a.format {
        Format::Json => render::json(&report)?,
        Format::Text => render::copy_text(&report),
    }
    Ok(())
}

fn images(a: &args::ImagesArgs) -> anyhow::Result<()> {
    let listed = app::images::images(&a.request())?;
    match a.format {
        Format::Json => render::json(&listed)?,
        Format::Text => render::images_text(&listed),
    }
    if github::active() {
        github::write_summary(&render::images_markdown(&listed))?;
    }
    let failed: Vec<String> = listed
        .iter()
        .filter_map(|s| Some(format!("{}: {}", s.service, s.error.as_ref()?)))
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("could not list:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

fn tag(a: &args::TagArgs) -> anyhow::Result<()> {
    let r = Renderer::new(false, a.format == Format::Text);
    let report = app::promote::tag(&a.request(), &|e| r.event(e))?;
    match a.format {
        Format::Json => render::json(&report)?,
        Format::Text => render::tag_text(&report),
    }
    Ok(())
}

fn verify(a: &args::VerifyArgs) -> anyhow::Result<()> {
    let report = app::verify::verify(&a.request())?;
    match a.format {
        Format::Json => render::json(&report)?,
        Format::Text => render::verify_text(&report),
    }
    let failures = report.failures();
    if !failures.is_empty() {
        anyhow::bail!("verification failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn plan(a: &args::PlanArgs, env: Env<'_>) -> anyhow::Result<()> {
    let r = app::plan::plan(&a.request(), env)?;
    match a.format {
        PlanFormat::Json => render::json(&r.plan)?,
        PlanFormat::GithubMatrix => {
            let include: Vec<serde_json::Value> = r
                .plan
                .services
                .iter()
                .map(|s| serde_json::json!({"service": s.service}))
                .collect();
            println!("{}", serde_json::json!({ "include": include }));
        }
        PlanFormat::Text => render::plan_text(&r),
    }
    Ok(())
}

fn scan(a: &args::ScanArgs) -> anyhow::Result<()> {
    let r = Renderer::new(false, a.format == Format::Text);
    let report = app::scan::scan(&a.request(), &|e| r.event(e))?;
    if a.format == Format::Json {
        let v: BTreeMap<&str, _> = report
            .services
            .iter()
            .map(|s| (s.service.as_str(), &s.results))
            .collect();
        render::json(&v)?;
    }
    if let Some(bad) = report.failure {
        anyhow::bail!(
            "findings at {} or worse in {bad}",
            a.wait.fail_on.clone().unwrap_or_default()
        );
    }
    Ok(())
}

fn push(a: &args::PushArgs, env: Env<'_>) -> anyhow::Result<()> {
    let r = Renderer::new(a.quiet, a.format == Format::Text);
    let outcome = app::publish::publish(&a.request(), env, &|e| r.event(e))?;
    let report = match outcome {
        Publish::NothingChanged => {
            println!("nothing to build or push: no service changed");
            return github::write_outputs(&[], &[]);
        }
        Publish::NotPushed {
            why,
            built,
            services,
            tags,
        } => {
            if built.is_empty() {
                println!("pull request: nothing pushed");
                return Ok(());
            }
            let why = match why {
                NoPush::Asked => "--no-push",
                NoPush::PullRequest => "pull request",
            };
            println!(
                "{why}: built and validated {} service(s) ({}); nothing pushed",
                built.len(),
                services.join(", ")
            );
            return github::write_summary_built(&built, &tags);
        }
        Publish::Pushed(report) => report,
    };
    if let Some(path) = &a.report {
        render::json_file(&report.services, path)?;
    }
    match a.format {
        Format::Json => render::json(&report.services)?,
        Format::Text => render::push_text(&report),
    }
    if !report.dry_run {
        let ok: Vec<_> = report
            .services
            .iter()
            .filter(|s| s.push.error.is_none())
            .collect();
        github::write_outputs(&ok, &report.selected)?;
        github::write_summary_pushed(&report.services)?;
    }
    let failed = report.failed();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} services failed to push: {}",
            failed.len(),
            report.services.len(),
            failed.join(", ")
        );
    }
    if let Some(bad) = &report.scan_failure {
        anyhow::bail!(
            "findings at {} or worse in {bad}",
            a.scan_wait.fail_on.clone().unwrap_or_default()
        );
    }
    Ok(())
}

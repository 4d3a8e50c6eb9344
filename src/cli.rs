//! Command line: clap arguments -> settings -> library calls -> text or JSON on stdout.
//!
//! The only module that prints, reads the process environment (SOURCE_DATE_EPOCH) or decides
//! exit codes: 0 success, 1 failure, 2 usage error.

use crate::build::{self, BuildOptions};
use crate::config::Config;
use crate::platform::Platform;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Build and publish reproducible multi-arch OCI images without a Docker daemon.
#[derive(Debug, Parser)]
#[command(name = "ocibuild", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build each service's multi-platform image into an OCI image layout OUT/<service>/.
    Build(BuildArgs),
    /// Build (or take from --layout) each service's image and push it to the registry.
    Push(PushArgs),
    /// Manage the ECR repositories of the services.
    Repos {
        #[command(subcommand)]
        command: ReposCommand,
    },
    /// Wait for ECR's scans of the services' images and report their findings.
    Scan(ScanArgs),
    /// Print the minimal IAM policy ocibuild needs for this config.
    IamPolicy(IamArgs),
    /// Say which services changed (and so will be built and pushed).
    Plan(PlanArgs),
}

#[derive(Debug, Subcommand)]
enum ReposCommand {
    /// Create each service's repository or bring it in line with the config (plan, then apply).
    Ensure(EnsureArgs),
}

#[derive(Debug, clap::Args)]
struct EnsureArgs {
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    registry: RegistryArg,
    /// Only print the plan.
    #[arg(long)]
    dry_run: bool,
    /// The tags ocibuild writes, to check the lifecycle rules against.
    #[arg(
        long = "tags",
        value_name = "KINDS",
        value_delimiter = ',',
        default_value = "sha,timestamp,latest"
    )]
    tag_policy: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    registry: RegistryArg,
    /// The image to look at, by tag (default: latest).
    #[arg(long, conflicts_with = "digest")]
    tag: Option<String>,
    /// The image to look at, by digest.
    #[arg(long)]
    digest: Option<String>,
    #[command(flatten)]
    wait: ScanWait,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// How long to wait for scans and what fails the run.
#[derive(Debug, Clone, clap::Args)]
struct ScanWait {
    /// Longest wait for each scan, e.g. 90s, 10m (a time-out is reported, not an error).
    #[arg(long = "wait", value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    wait: std::time::Duration,
    /// Fail (exit 1) when a finding at this severity or worse is found (default: never).
    #[arg(long, value_name = "SEVERITY", value_parser = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"])]
    fail_on: Option<String>,
}

#[derive(Debug, clap::Args)]
struct IamArgs {
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    registry: RegistryArg,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 90s, 10m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration {s:?}: use e.g. 90s, 10m, 1h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Compression and caching choices on the command line.
#[derive(Debug, Clone, clap::Args)]
struct CompressArgs {
    /// Compress for speed (gzip or zstd level 1), e.g. for pull-request builds.
    #[arg(long)]
    fast: bool,
    /// Layer cache directory (default: $OCIBUILD_CACHE_DIR, $XDG_CACHE_HOME/ocibuild or
    /// ~/.cache/ocibuild); persist it between CI runs to skip unchanged layers.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Build every layer, using no cache (wins over --cache-dir). Registry bases are then
    /// resolved afresh too.
    #[arg(long)]
    no_cache: bool,
    /// Ask the registry what the tags of registry bases point at now, instead of reusing what
    /// an earlier build resolved them to (kept in the cache directory).
    #[arg(long)]
    pull: bool,
}

impl CompressArgs {
    /// The layer cache to use, if any (a cache that cannot be opened is skipped with a warning).
    fn cache(&self) -> Option<crate::layer::cache::LayerCache> {
        if self.no_cache {
            return None;
        }
        let dir = self
            .cache_dir
            .clone()
            .or_else(|| crate::layer::cache::default_dir(&|k| std::env::var(k).ok()))?;
        match crate::layer::cache::LayerCache::open(&dir) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!(
                    "warning: layer cache {} unusable ({e}): building without it",
                    dir.display()
                );
                None
            }
        }
    }

    fn layer_options(&self, config: &Config) -> Option<crate::layer::LayerOptions> {
        use crate::{config::Compression, layer::compress::Codec};
        self.fast.then(|| crate::layer::LayerOptions {
            codec: match config.compression {
                Compression::Gzip { .. } => Codec::Gzip(1),
                Compression::Zstd { .. } => Codec::Zstd(1),
            },
            ..crate::layer::LayerOptions::default()
        })
    }
}

/// The registry named on the command line.
#[derive(Debug, Clone, clap::Args)]
struct RegistryArg {
    /// Registry HOST[:PORT][/PREFIX] (default: [registry] url in the config).
    #[arg(long = "registry", value_name = "HOST[/PREFIX]")]
    host: Option<String>,
}

/// Which config, services and platforms a command works on.
#[derive(Debug, clap::Args)]
struct Selection {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only these services (repeat, or a comma list; default: all for build, what changed
    /// for push, see `ocibuild plan`).
    #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
    services: Vec<String>,
    /// Only these platforms, e.g. linux/arm64 (repeat, or a comma list; default: the
    /// config's). Not with `push --layout`, which pushes the layouts as they are.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    platforms: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct PushArgs {
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    compress: CompressArgs,
    /// Tags: kinds sha, timestamp, latest, pr, release and literal tags (repeat, or a comma
    /// list; default: the layout's ref names, latest).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    #[command(flatten)]
    registry: RegistryArg,
    /// Use plain HTTP (always allowed for loopback hosts).
    #[arg(long)]
    insecure: bool,
    /// Push the layouts `ocibuild build --out DIR` wrote, without building.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    layout: Option<PathBuf>,
    /// Where to build the layouts before pushing (default: .ocibuild/layouts beside the config).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Blob transfers in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Look only: report what would be uploaded, mounted, skipped and tagged; write nothing remote.
    #[arg(long)]
    dry_run: bool,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Create or update the ECR repositories first (as `repos ensure` does).
    #[arg(long)]
    create_repos: bool,
    /// After the push, wait for ECR's scans and report their findings.
    #[arg(long)]
    scan: bool,
    #[command(flatten)]
    scan_wait: ScanWait,
    #[command(flatten)]
    change: ChangeArgs,
    /// Build and validate, but push nothing (what pull requests do).
    #[arg(long)]
    no_push: bool,
    /// Time used by the `timestamp` tag: the head commit's (stable across reruns) or now.
    #[arg(long, value_enum, default_value_t = TimestampSource::Commit)]
    timestamp: TimestampSource,
}

/// Where the `timestamp` tag's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TimestampSource {
    Commit,
    Now,
}

/// Change detection overrides.
#[derive(Debug, Clone, clap::Args)]
struct ChangeArgs {
    /// Compare with this revision (default: from the CI event, else HEAD~1).
    #[arg(long, value_name = "REV")]
    base: Option<String>,
    /// Compare this revision (default: GITHUB_SHA, else HEAD).
    #[arg(long, value_name = "REV")]
    head: Option<String>,
    /// Every service, whatever changed.
    #[arg(long, conflicts_with = "base")]
    all: bool,
}

impl ChangeArgs {
    fn options(&self, services: &[String]) -> crate::plan::PlanOptions {
        crate::plan::PlanOptions {
            base: self.base.clone(),
            head: self.head.clone(),
            services: services.to_vec(),
            all: self.all,
        }
    }
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// These services, whatever changed (repeat, or a comma list).
    #[arg(
        long = "service",
        value_name = "NAME",
        value_delimiter = ',',
        conflicts_with = "all"
    )]
    services: Vec<String>,
    #[command(flatten)]
    change: ChangeArgs,
    /// Output: text, json, or github-matrix (`{"include":[{"service":...}]}`).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    GithubMatrix,
}

/// The CI context from the environment.
fn ci_context() -> anyhow::Result<crate::plan::CiContext> {
    Ok(crate::plan::CiContext::from_vars(&|k| {
        std::env::var(k).ok()
    })?)
}

/// What the tag policy needs, from git and the CI context.
fn tag_facts(
    config: &Config,
    git: Option<&crate::plan::git::Git>,
    ctx: &crate::plan::CiContext,
    use_now: bool,
) -> anyhow::Result<crate::plan::TagFacts> {
    let head = git.and_then(|g| g.commit(ctx.sha.as_deref().unwrap_or("HEAD")).ok());
    let pr = match ctx.trigger {
        crate::plan::Trigger::PullRequest { number, .. } => Some(number),
        _ => None,
    };
    let mut release = match (git, &head) {
        (Some(g), Some(h)) => g.release_tags(h)?,
        _ => vec![],
    };
    if let Some(t) = ctx.git_tag.as_ref().filter(|t| t.starts_with('v')) {
        if !release.contains(t) {
            release.push(t.clone());
        }
    }
    Ok(crate::plan::TagFacts {
        commit_time: match (git, &head) {
            (Some(g), Some(h)) => Some(g.commit_time(h)?),
            _ => None,
        },
        sha: head,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        use_now,
        branch: ctx.branch.clone().or_else(|| git.and_then(|g| g.branch())),
        default_branch: config.default_branch.clone(),
        pr,
        release,
    })
}

fn print_plan_summary(plan: &crate::plan::Plan) {
    if let (Some(b), Some(h)) = (&plan.base, &plan.head) {
        eprintln!("changes {}..{}", &b[..b.len().min(7)], &h[..h.len().min(7)]);
    }
    for s in &plan.services {
        eprintln!("  build {}: {}", s.service, s.reason);
    }
    for s in &plan.skipped {
        eprintln!("  skip {}: {}", s.service, s.reason);
    }
}

fn run_plan(args: PlanArgs) -> anyhow::Result<()> {
    let config = Config::find_and_load(args.config.as_deref())?;
    let ctx = ci_context()?;
    let git = crate::plan::git::Git::open(&config.dir).ok();
    let plan = crate::plan::plan(
        &config,
        git.as_ref(),
        &ctx,
        &args.change.options(&args.services),
    )?;
    match args.format {
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        PlanFormat::GithubMatrix => {
            let include: Vec<serde_json::Value> = plan
                .services
                .iter()
                .map(|s| serde_json::json!({"service": s.service}))
                .collect();
            println!("{}", serde_json::json!({ "include": include }));
        }
        PlanFormat::Text => {
            if let (Some(b), Some(h)) = (&plan.base, &plan.head) {
                println!("comparing {b} .. {h}");
            }
            println!(
                "{} of {} services to build",
                plan.services.len(),
                config.services.len()
            );
            for s in &plan.services {
                println!("  {:<12} {}", s.service, s.reason);
            }
            for s in &plan.skipped {
                println!("  {:<12} skipped: {}", s.service, s.reason);
            }
        }
    }
    Ok(())
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

/// GITHUB_OUTPUT: `services` (JSON list), `images` (JSON map service -> repo@digest), and per
/// service `<name>-digest` and `<name>-image`.
fn write_github_outputs(
    pushed: &[&crate::push::PushReport],
    planned: &[String],
) -> anyhow::Result<()> {
    let mut out = String::new();
    let images: BTreeMap<&str, String> = pushed
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                format!("{}/{}@{}", r.registry, r.repository, r.index_digest),
            )
        })
        .collect();
    out.push_str(&format!("services={}\n", serde_json::to_string(planned)?));
    out.push_str(&format!("images={}\n", serde_json::to_string(&images)?));
    for r in pushed {
        out.push_str(&format!("{}-digest={}\n", r.service, r.index_digest));
        out.push_str(&format!(
            "{}-image={}\n",
            r.service,
            images[r.service.as_str()]
        ));
    }
    append_to_env_file("GITHUB_OUTPUT", &out)
}

/// A registry base in a step summary cell: its name and what it resolved to.
fn summary_base(name: &str, digest: &str) -> String {
    format!("`{name}` → `{digest}`")
}

fn write_github_summary_pushed(reports: &[crate::push::PushReport]) -> anyhow::Result<()> {
    let mut md = String::from("### ocibuild push\n\n| service | platforms | digest | tags | uploaded | time | scan | base |\n|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let scan = r
            .scan
            .as_ref()
            .and_then(|s| s.as_array())
            .map(|results| {
                let mut totals: BTreeMap<String, i64> = BTreeMap::new();
                for res in results {
                    if let Some(c) = res["counts"].as_object() {
                        for (k, v) in c {
                            *totals.entry(k.clone()).or_default() += v.as_i64().unwrap_or(0);
                        }
                    }
                }
                if totals.is_empty() {
                    "no findings".to_string()
                } else {
                    totals
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            })
            .unwrap_or_default();
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
            scan
        ));
    }
    append_to_env_file("GITHUB_STEP_SUMMARY", &md)
}

fn write_github_summary_built(
    built: &[build::ServiceReport],
    tags: &[String],
) -> anyhow::Result<()> {
    let mut md = String::from("### ocibuild (pull request: built, not pushed)\n\n| service | platforms | digest | tags | base |\n|---|---|---|---|---|\n");
    for r in built {
        let base = r
            .base
            .as_ref()
            .map(|b| summary_base(&b.name, &b.digest))
            .unwrap_or_default();
        md.push_str(&format!(
            "| {} | {} | `{}` | {} | {base} |\n",
            r.name,
            r.platforms
                .iter()
                .map(|p| p.platform.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            r.index_digest,
            tags.join(", ")
        ));
    }
    append_to_env_file("GITHUB_STEP_SUMMARY", &md)
}

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    compress: CompressArgs,
    /// Output directory: each service's layout goes to OUT/<service>/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Ref name(s) written in each layout's index.json (repeat, or a comma list; default: latest).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Copy the layers of registry bases into the layouts too (self-contained layouts for
    /// offline use or other tools; a push needs no access to the base's registry then).
    #[arg(long)]
    materialize: bool,
}

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
            1
        }
    }
}

/// SOURCE_DATE_EPOCH from the environment, or 0.
fn source_date_epoch() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(std::env::VarError::NotPresent) => Ok(0),
        Ok(v) if v.trim().is_empty() => Ok(0),
        Ok(v) => v.trim().parse::<u64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a non-negative integer number of seconds")
        }),
        Err(e) => bail!("SOURCE_DATE_EPOCH: {e}"),
    }
}

fn parse_platforms(list: &[String]) -> anyhow::Result<Option<Vec<Platform>>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut out: Vec<Platform> = Vec::new();
    for p in list {
        let p: Platform = p.parse().map_err(anyhow::Error::msg)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(Some(out))
}

fn human_bytes(n: u64) -> String {
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

/// The registry: `--registry` (with the config's other [registry] settings) or the config's.
fn resolve_registry(
    config: &Config,
    arg: Option<&str>,
    insecure: bool,
) -> anyhow::Result<crate::config::RegistryConfig> {
    use crate::config::RegistryConfig;
    let from_config = config.registry.as_ref();
    Ok(match arg {
        Some(r) => {
            let insecure = insecure || from_config.is_some_and(|c| c.insecure);
            let mut reg = RegistryConfig::parse(r, from_config.and_then(|c| c.auth), insecure)
                .map_err(anyhow::Error::msg)?;
            if let Some(c) = from_config {
                reg.region = c.region.clone();
                reg.registry_id = c.registry_id.clone();
                reg.manifest_puts_per_second = c.manifest_puts_per_second;
            }
            reg
        }
        None => match from_config {
            Some(c) => {
                let mut c = c.clone();
                c.insecure |= insecure;
                c
            }
            None => bail!(
                "no registry: pass --registry HOST[/PREFIX] or set [registry] url in {}",
                config.file.display()
            ),
        },
    })
}

fn new_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Connect to ECR for `registry`, which must be an ECR registry (by host or `auth = "ecr"`).
fn connect_ecr(
    runtime: &tokio::runtime::Runtime,
    registry: &crate::config::RegistryConfig,
) -> anyhow::Result<crate::ecr::Ecr> {
    if registry.auth_mode() != crate::config::AuthMode::Ecr {
        bail!(
            "{} is not an Amazon ECR registry: use a <account>.dkr.ecr.<region>.amazonaws.com host or set auth = \"ecr\" in [registry]",
            registry.host
        );
    }
    Ok(runtime.block_on(crate::ecr::Ecr::connect(
        registry.ecr_region().as_deref(),
        registry.ecr_registry_id().as_deref(),
    ))?)
}

/// Plan (and unless `dry_run`, apply) the repository settings for `repositories`; prints the
/// plan and the lifecycle warnings. Returns the plans.
fn ensure_repositories(
    runtime: &tokio::runtime::Runtime,
    ecr: &crate::ecr::Ecr,
    config: &Config,
    repositories: &[String],
    tag_policy: &[String],
    dry_run: bool,
    print: bool,
) -> anyhow::Result<Vec<crate::ecr::repos::RepoPlan>> {
    use crate::ecr::{lifecycle, repos};
    for w in lifecycle::check_against_tags(&config.repositories.lifecycle, tag_policy) {
        eprintln!("warning: {w}");
    }
    let plans = runtime.block_on(repos::plan(ecr, repositories, &config.repositories))?;
    if print {
        for p in &plans {
            if p.changes.is_empty() {
                println!("{}: up to date", p.repository);
            }
            for c in &p.changes {
                println!(
                    "{}: {}{c}",
                    p.repository,
                    if dry_run { "would " } else { "" }
                );
            }
            for d in &p.drift {
                println!("{}: DRIFT: {d}", p.repository);
            }
        }
        if plans.iter().all(|p| p.changes.is_empty()) {
            println!("nothing to change");
        }
    }
    if !dry_run {
        runtime.block_on(repos::apply(ecr, &plans, &config.repositories))?;
    }
    Ok(plans)
}

fn run_repos_ensure(args: EnsureArgs) -> anyhow::Result<()> {
    let config = Config::find_and_load(args.select.config.as_deref())?;
    let registry = resolve_registry(&config, args.registry.host.as_deref(), false)?;
    let repositories: Vec<String> = config
        .select(&args.select.services)?
        .iter()
        .map(|s| registry.repository_path(&s.repository))
        .collect();
    let runtime = new_runtime()?;
    let ecr = connect_ecr(&runtime, &registry)?;
    let plans = ensure_repositories(
        &runtime,
        &ecr,
        &config,
        &repositories,
        &args.tag_policy,
        args.dry_run,
        args.format == Format::Text,
    )?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    }
    Ok(())
}

/// Wait for and read the scans of `images` (repository, manifest digests); print them.
fn scan_images(
    runtime: &tokio::runtime::Runtime,
    ecr: &crate::ecr::Ecr,
    images: &[(String, String, Vec<String>)],
    wait: &ScanWait,
    print: bool,
) -> anyhow::Result<Vec<(String, Vec<crate::ecr::scan::ScanResult>)>> {
    use crate::ecr::scan;
    let jobs = images.iter().map(|(service, repo, digests)| async move {
        let mut results = Vec::new();
        for d in digests {
            results.push(scan::wait_and_read(ecr, repo, d, wait.wait).await?);
        }
        Ok::<_, crate::ecr::EcrError>((service.clone(), results))
    });
    let all = runtime.block_on(futures_util::future::try_join_all(jobs))?;
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    for (service, results) in &all {
        for r in results {
            if print {
                let counts: Vec<String> = scan::SEVERITIES
                    .iter()
                    .filter_map(|s| r.counts.get(*s).map(|n| format!("{s} {n}")))
                    .collect();
                println!(
                    "{service} {}@{}: {} {}",
                    r.repository,
                    &r.digest[..19.min(r.digest.len())],
                    r.status,
                    if counts.is_empty() {
                        "no findings".to_string()
                    } else {
                        counts.join(", ")
                    }
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
            if github {
                for f in &r.findings {
                    println!(
                        "::warning title={service}: {} {}::{} in {} ({})",
                        f.severity, f.name, f.package, r.repository, f.link
                    );
                }
            }
        }
    }
    Ok(all)
}

/// Whether any result has a finding at `fail_on` or worse.
fn scan_fails(
    results: &[(String, Vec<crate::ecr::scan::ScanResult>)],
    fail_on: Option<&str>,
) -> Option<String> {
    let limit = crate::ecr::scan::rank(fail_on?);
    let bad: Vec<String> = results
        .iter()
        .flat_map(|(svc, rs)| rs.iter().map(move |r| (svc, r)))
        .filter(|(_, r)| {
            r.counts
                .iter()
                .any(|(sev, n)| *n > 0 && crate::ecr::scan::rank(sev) <= limit)
        })
        .map(|(svc, r)| format!("{svc} ({})", &r.digest[..19.min(r.digest.len())]))
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

fn run_scan(args: ScanArgs) -> anyhow::Result<()> {
    let config = Config::find_and_load(args.select.config.as_deref())?;
    let registry = resolve_registry(&config, args.registry.host.as_deref(), false)?;
    let runtime = new_runtime()?;
    let ecr = connect_ecr(&runtime, &registry)?;
    let reference = args
        .digest
        .clone()
        .or(args.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let mut images = Vec::new();
    for s in config.select(&args.select.services)? {
        let repo = registry.repository_path(&s.repository);
        let digests = runtime.block_on(crate::ecr::scan::manifests_of(&ecr, &repo, &reference))?;
        images.push((s.name.clone(), repo, digests));
    }
    let results = scan_images(
        &runtime,
        &ecr,
        &images,
        &args.wait,
        args.format == Format::Text,
    )?;
    if args.format == Format::Json {
        let v: BTreeMap<&str, &Vec<crate::ecr::scan::ScanResult>> =
            results.iter().map(|(s, r)| (s.as_str(), r)).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    if let Some(bad) = scan_fails(&results, args.wait.fail_on.as_deref()) {
        bail!(
            "findings at {} or worse in {bad}",
            args.wait.fail_on.unwrap_or_default()
        );
    }
    Ok(())
}

fn run_iam_policy(args: IamArgs) -> anyhow::Result<()> {
    use crate::ecr::iam;
    let config = Config::find_and_load(args.select.config.as_deref())?;
    let registry = resolve_registry(&config, args.registry.host.as_deref(), false)?;
    let region = registry
        .ecr_region()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
    let account = registry.ecr_registry_id();
    if region.is_none() || account.is_none() {
        eprintln!("note: region or account unknown (use an ECR host, or region / registry_id in [registry]): written as *");
    }
    let region = region.unwrap_or_else(|| "*".into());
    let services = config.select(&args.select.services)?;
    // Base images in ECR are read: to build (manifests, configs) and to mount or copy layers.
    let base_repositories = services
        .iter()
        .filter_map(|s| match &s.base {
            crate::config::BaseRef::Registry(r) => crate::config::parse_ecr_host(&r.host)
                .map(|h| iam::repository_arn(&h.region, &h.account, &r.repository)),
            _ => None,
        })
        .collect();
    let scope = iam::PolicyScope {
        partition: iam::partition(&region).to_string(),
        account: account.unwrap_or_else(|| "*".into()),
        region,
        repositories: services
            .iter()
            .map(|s| registry.repository_path(&s.repository))
            .collect(),
        base_repositories,
    };
    println!("{}", serde_json::to_string_pretty(&iam::policy(&scope))?);
    Ok(())
}

/// Credentials for `host` from Docker's config.json (anonymous when there is none).
fn docker_credentials(host: &str) -> anyhow::Result<crate::registry::auth::CredentialSource> {
    use crate::registry::auth;
    Ok(match auth::docker_config_path() {
        Some(p) => auth::from_docker_config(host, &p)?,
        None => auth::CredentialSource::anonymous("anonymous (no HOME or DOCKER_CONFIG)"),
    })
}

/// A client for registry `host` with the credentials `mode` names (`ecr`: connected already,
/// required for `AuthMode::Ecr`).
async fn registry_client(
    host: &str,
    mode: crate::config::AuthMode,
    insecure: bool,
    ecr: Option<&crate::ecr::Ecr>,
) -> anyhow::Result<crate::registry::client::RegistryClient> {
    use crate::config::AuthMode;
    use crate::registry::auth::CredentialSource;
    use crate::registry::client::{RegistryClient, RetryPolicy};
    let retry = RetryPolicy::default();
    Ok(match (mode, ecr) {
        (AuthMode::Ecr, Some(ecr)) => {
            let (cred, expires) = ecr.registry_credentials().await?;
            RegistryClient::new(host, insecure, cred, retry)?.with_refresh(ecr.refresher(), expires)
        }
        (AuthMode::Ecr, None) => bail!("{host}: an ECR registry needs an ECR connection"),
        (AuthMode::Anonymous, _) => RegistryClient::new(
            host,
            insecure,
            CredentialSource::anonymous("anonymous (auth = \"anonymous\")"),
            retry,
        )?,
        (AuthMode::Docker, _) => {
            RegistryClient::new(host, insecure, docker_credentials(host)?, retry)?
        }
    })
}

/// How base image registries are reached: the config's `[registry]` settings for its own host,
/// the AWS SDK for ECR hosts, Docker's config.json for the rest (anonymous for public ones).
fn base_registries(config: &Config) -> std::sync::Arc<crate::registry::clients::Clients> {
    use crate::config::{parse_ecr_host, AuthMode};
    let own = config.registry.clone();
    let connect: crate::registry::clients::Connect = std::sync::Arc::new(move |host: String| {
        let own = own.clone().filter(|r| r.host == host);
        Box::pin(async move {
            let (mode, insecure, region, id) = match (&own, parse_ecr_host(&host)) {
                (Some(r), _) => (
                    r.auth_mode(),
                    r.insecure,
                    r.ecr_region(),
                    r.ecr_registry_id(),
                ),
                (None, Some(h)) => (AuthMode::Ecr, false, Some(h.region), Some(h.account)),
                (None, None) => (AuthMode::Docker, false, None, None),
            };
            let ecr = match mode {
                AuthMode::Ecr => Some(
                    crate::ecr::Ecr::connect(region.as_deref(), id.as_deref())
                        .await
                        .map_err(|e| format!("{host}: {e:#}"))?,
                ),
                _ => None,
            };
            registry_client(&host, mode, insecure, ecr.as_ref())
                .await
                .map_err(|e| format!("{host}: {e:#}"))
        })
    });
    std::sync::Arc::new(crate::registry::clients::Clients::new(connect))
}

/// Registry access for the bases of a build, on `runtime`.
fn remote_options(
    config: &Config,
    runtime: &tokio::runtime::Runtime,
    compress: &CompressArgs,
) -> crate::base::remote::RemoteOptions {
    crate::base::remote::RemoteOptions {
        runtime: runtime.handle().clone(),
        clients: base_registries(config),
        pull: compress.pull,
        materialize_into: None,
    }
}

fn run_push(args: PushArgs) -> anyhow::Result<()> {
    use crate::config::AuthMode;
    use crate::push::{self, PushImage, PushOptions};

    let config = Config::find_and_load(args.select.config.as_deref())?;
    crate::plan::validate_tags(&args.tags)?;
    if args.layout.is_some() && !args.select.platforms.is_empty() {
        bail!("--platform chooses what to build; with --layout the layouts are pushed as they are (rebuild them with `ocibuild build --platform ...`)");
    }
    let ctx = ci_context()?;
    let git = crate::plan::git::Git::open(&config.dir).ok();
    let plan = crate::plan::plan(
        &config,
        git.as_ref(),
        &ctx,
        &args.change.options(&args.select.services),
    )?;
    if !args.quiet {
        print_plan_summary(&plan);
    }
    if plan.services.is_empty() {
        println!("nothing to build or push: no service changed");
        write_github_outputs(&[], &[])?;
        return Ok(());
    }
    let names: Vec<String> = plan.services.iter().map(|s| s.service.clone()).collect();
    let services = config.select(&names)?;
    let tags = if args.tags.is_empty() {
        vec![]
    } else {
        let (tags, notes) = crate::plan::resolve_tags(
            &args.tags,
            &tag_facts(
                &config,
                git.as_ref(),
                &ctx,
                args.timestamp == TimestampSource::Now,
            )?,
        )?;
        for n in notes {
            eprintln!("note: tag {n}");
        }
        tags
    };
    let pull_request = ctx.is_pull_request() || args.no_push;
    let runtime = new_runtime()?;
    let remote = remote_options(&config, &runtime, &args.compress);

    // The layouts: given, or built now.
    let layouts_dir = match &args.layout {
        Some(dir) => dir.clone(),
        None => {
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| config.dir.join(".ocibuild").join("layouts"));
            let opts = BuildOptions {
                services: names.clone(),
                platforms: parse_platforms(&args.select.platforms)?,
                out: out.clone(),
                tags: tags.clone(),
                epoch: source_date_epoch()?,
                layer: args.compress.layer_options(&config),
                cache: args.compress.cache(),
                remote: Some(remote.clone()),
                materialize: false,
            };
            let built = build::build(&config, &opts)?;
            if !args.quiet {
                for r in &built {
                    eprintln!("built {} {}", r.name, r.index_digest);
                    if let Some(b) = &r.base {
                        eprintln!("  on base {} -> {}", b.name, b.digest);
                    }
                }
            }
            if pull_request {
                let why = if args.no_push {
                    "--no-push"
                } else {
                    "pull request"
                };
                println!(
                    "{why}: built and validated {} service(s) ({}); nothing pushed",
                    built.len(),
                    names.join(", ")
                );
                write_github_summary_built(&built, &tags)?;
                return Ok(());
            }
            out
        }
    };
    if pull_request {
        println!("pull request: nothing pushed");
        return Ok(());
    }
    let registry = resolve_registry(&config, args.registry.host.as_deref(), args.insecure)?;
    let images: Vec<PushImage> = services
        .iter()
        .map(|s| PushImage {
            service: s.name.clone(),
            repository: registry.repository_path(&s.repository),
            layout: layouts_dir.join(&s.name),
            tags: tags.clone(),
        })
        .collect();
    for img in &images {
        if !img.layout.join("oci-layout").is_file() {
            bail!(
                "no OCI layout for service {} at {}: run `ocibuild build --out {}` first",
                img.service,
                img.layout.display(),
                layouts_dir.display()
            );
        }
    }

    let ecr = if registry.auth_mode() == AuthMode::Ecr {
        Some(connect_ecr(&runtime, &registry)?)
    } else if args.create_repos || args.scan {
        bail!(
            "--create-repos and --scan work with Amazon ECR; {} is not an ECR registry (set auth = \"ecr\" in [registry] for an ECR-compatible endpoint)",
            registry.host
        );
    } else {
        None
    };
    if let (true, Some(ecr)) = (args.create_repos, &ecr) {
        let repositories: Vec<String> = images.iter().map(|i| i.repository.clone()).collect();
        let mut policy = args.tags.clone();
        if policy.is_empty() {
            policy.push("latest".into());
        }
        ensure_repositories(
            &runtime,
            ecr,
            &config,
            &repositories,
            &policy,
            args.dry_run,
            !args.quiet,
        )?;
    }
    let mut client = runtime.block_on(registry_client(
        &registry.host,
        registry.auth_mode(),
        registry.insecure,
        ecr.as_ref(),
    ))?;
    if let Some(rate) = registry.manifest_rate() {
        client = client.with_manifest_rate(rate);
    }
    let display = ProgressDisplay::new(args.quiet);
    let progress = |e: push::Event| display.event(e);
    let opts = PushOptions {
        jobs: usize::from(args.jobs),
        dry_run: args.dry_run,
    };
    let mut reports = runtime.block_on(push::push(
        &client,
        &remote.clients,
        &images,
        &opts,
        &progress,
    ));
    display.finish();
    let mut scan_failure = None;
    if let (true, Some(ecr), false) = (args.scan, &ecr, args.dry_run) {
        let pushed: Vec<(String, String, Vec<String>)> = reports
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| {
                (
                    r.service.clone(),
                    r.repository.clone(),
                    r.manifest_digests.clone(),
                )
            })
            .collect();
        let results = scan_images(
            &runtime,
            ecr,
            &pushed,
            &args.scan_wait,
            args.format == Format::Text,
        )?;
        scan_failure = scan_fails(&results, args.scan_wait.fail_on.as_deref());
        for (service, rs) in results {
            if let Some(r) = reports.iter_mut().find(|r| r.service == service) {
                r.scan = Some(serde_json::to_value(rs)?);
            }
        }
    }

    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&reports)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing report {}", path.display()))?;
        std::io::Write::write_all(&mut tmp, &json)?;
        tmp.persist(path)
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Text => {
            for r in &reports {
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
                if let Some(e) = &r.error {
                    println!("  error: {e}");
                }
            }
        }
    }
    if !args.dry_run {
        if args.format == Format::Text {
            for r in reports.iter().filter(|r| r.error.is_none()) {
                println!("{}", r.reference);
            }
        }
        let ok: Vec<&push::PushReport> = reports.iter().filter(|r| r.error.is_none()).collect();
        write_github_outputs(&ok, &names)?;
        write_github_summary_pushed(&reports)?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.service.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} services failed to push: {}",
            failed.len(),
            reports.len(),
            failed.join(", ")
        );
    }
    if let Some(bad) = scan_failure {
        bail!(
            "findings at {} or worse in {bad}",
            args.scan_wait.fail_on.unwrap_or_default()
        );
    }
    Ok(())
}

/// Renders push events: live bars per service on a terminal, plain lines otherwise (CI),
/// nothing with `--quiet`.
struct ProgressDisplay {
    quiet: bool,
    bars: Option<indicatif::MultiProgress>,
    /// Bar and bytes uploaded so far, by repository.
    by_repo: std::sync::Mutex<std::collections::HashMap<String, (indicatif::ProgressBar, u64)>>,
}

impl ProgressDisplay {
    fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let live = !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        ProgressDisplay {
            quiet,
            bars: live.then(indicatif::MultiProgress::new),
            by_repo: Default::default(),
        }
    }

    fn event(&self, e: crate::push::Event) {
        use crate::push::{BlobOutcome, Event};
        if self.quiet {
            return;
        }
        let Some(multi) = &self.bars else {
            match e {
                Event::Planned {
                    service,
                    blobs,
                    bytes,
                    ..
                } => {
                    eprintln!("{service}: {blobs} blobs, {} to check", human_bytes(bytes))
                }
                Event::Blob {
                    repository,
                    digest,
                    size,
                    outcome,
                } => {
                    let what = match outcome {
                        BlobOutcome::Uploaded => "uploaded",
                        BlobOutcome::Mounted => "mounted",
                        BlobOutcome::Skipped => "exists",
                        BlobOutcome::WouldUpload => "would upload",
                        BlobOutcome::WouldMount => "would mount",
                        BlobOutcome::Copied => "copied from the base's registry",
                        BlobOutcome::WouldCopy => "would copy from the base's registry",
                    };
                    eprintln!(
                        "{repository}: {what} {} ({})",
                        &digest[..19],
                        human_bytes(size)
                    );
                }
                Event::Service {
                    service,
                    error: None,
                } => eprintln!("{service}: done"),
                Event::Service {
                    service,
                    error: Some(e),
                } => eprintln!("{service}: FAILED: {e}"),
            }
            return;
        };
        let Ok(mut bars) = self.by_repo.lock() else {
            return;
        };
        match e {
            Event::Planned {
                service,
                repository,
                blobs,
                ..
            } => {
                let bar = multi.add(indicatif::ProgressBar::new(blobs as u64));
                let style = indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} blobs {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(service);
                bars.insert(repository, (bar, 0));
            }
            Event::Blob {
                repository,
                size,
                outcome,
                ..
            } => {
                if let Some((bar, uploaded)) = bars.get_mut(&repository) {
                    bar.inc(1);
                    if matches!(
                        outcome,
                        BlobOutcome::Uploaded
                            | BlobOutcome::WouldUpload
                            | BlobOutcome::Copied
                            | BlobOutcome::WouldCopy
                    ) {
                        *uploaded += size;
                        bar.set_message(format!("{} uploaded", human_bytes(*uploaded)));
                    }
                }
            }
            Event::Service { service, error } => {
                if let Some((bar, _)) = bars.values().find(|(b, _)| b.prefix() == service) {
                    match error {
                        None => bar.finish_with_message("done"),
                        Some(_) => bar.abandon_with_message("FAILED"),
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(m) = &self.bars {
            let _ = m.clear();
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Push(args) => run_push(args),
        Command::Repos {
            command: ReposCommand::Ensure(args),
        } => run_repos_ensure(args),
        Command::Scan(args) => run_scan(args),
        Command::IamPolicy(args) => run_iam_policy(args),
        Command::Plan(args) => run_plan(args),
        Command::Build(args) => {
            let epoch = source_date_epoch()?;
            let config = Config::find_and_load(args.select.config.as_deref())?;
            let platforms = parse_platforms(&args.select.platforms)?;
            let runtime = new_runtime()?;
            let opts = BuildOptions {
                services: args.select.services,
                platforms,
                out: args.out,
                tags: args.tags,
                epoch,
                layer: args.compress.layer_options(&config),
                cache: args.compress.cache(),
                remote: Some(remote_options(&config, &runtime, &args.compress)),
                materialize: args.materialize,
            };
            let reports = build::build(&config, &opts)?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
                Format::Text => {
                    for r in &reports {
                        print!("{r}");
                    }
                }
            }
            Ok(())
        }
    }
}

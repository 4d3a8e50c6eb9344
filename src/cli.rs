//! Command line: clap arguments -> settings -> library calls -> text or JSON on stdout.
//!
//! The only module that prints, reads the process environment (SOURCE_DATE_EPOCH) or decides
//! exit codes: 0 success, 1 failure, 2 usage error.

use crate::build::{self, BuildOptions};
use crate::config::Config;
use crate::platform::Platform;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
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
}

/// Which config, services and platforms a command works on.
#[derive(Debug, clap::Args)]
struct Selection {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only these services (repeat, or a comma list; default: all).
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
    /// Tags to write (repeat, or a comma list; default: latest, or the layout's ref names).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Registry HOST[:PORT][/PREFIX] (default: [registry] url in the config).
    #[arg(long, value_name = "HOST[/PREFIX]")]
    registry: Option<String>,
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
    /// Output directory: each service's layout goes to OUT/<service>/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Ref name(s) written in each layout's index.json (repeat, or a comma list; default: latest).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
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

fn run_push(args: PushArgs) -> anyhow::Result<()> {
    use crate::config::{AuthMode, RegistryConfig};
    use crate::push::{self, PushImage, PushOptions};
    use crate::registry::auth::{self, CredentialSource};
    use crate::registry::client::{RegistryClient, RetryPolicy};

    let file = Config::locate(args.select.config.as_deref())?;
    let config = Config::load(&file)?;
    let registry = match (&args.registry, &config.registry) {
        (Some(r), from_config) => {
            let insecure = args.insecure || from_config.as_ref().is_some_and(|c| c.insecure);
            let mut reg =
                RegistryConfig::parse(r, from_config.as_ref().and_then(|c| c.auth), insecure)
                    .map_err(anyhow::Error::msg)?;
            if let Some(c) = from_config {
                reg.region = c.region.clone();
                reg.registry_id = c.registry_id.clone();
                reg.manifest_puts_per_second = c.manifest_puts_per_second;
            }
            reg
        }
        (None, Some(c)) => {
            let mut c = c.clone();
            c.insecure |= args.insecure;
            c
        }
        (None, None) => bail!(
            "no registry to push to: pass --registry HOST[/PREFIX] or set [registry] url in {}",
            file.display()
        ),
    };
    for t in &args.tags {
        if !crate::spec::is_valid_tag(t) {
            bail!("invalid tag {t:?}: tags are 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'");
        }
    }
    let services = config.select(&args.select.services)?;

    if args.layout.is_some() && !args.select.platforms.is_empty() {
        bail!("--platform chooses what to build; with --layout the layouts are pushed as they are (rebuild them with `ocibuild build --platform ...`)");
    }
    // The layouts: given, or built now.
    let layouts_dir = match &args.layout {
        Some(dir) => dir.clone(),
        None => {
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| config.dir.join(".ocibuild").join("layouts"));
            let opts = BuildOptions {
                services: services.iter().map(|s| s.name.clone()).collect(),
                platforms: parse_platforms(&args.select.platforms)?,
                out: out.clone(),
                tags: args.tags.clone(),
                epoch: source_date_epoch()?,
            };
            let built = build::build(&config, &opts)?;
            if !args.quiet {
                for r in &built {
                    eprintln!("built {} {}", r.name, r.index_digest);
                }
            }
            out
        }
    };
    let images: Vec<PushImage> = services
        .iter()
        .map(|s| PushImage {
            service: s.name.clone(),
            repository: registry.repository_path(&s.repository),
            layout: layouts_dir.join(&s.name),
            tags: args.tags.clone(),
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

    let cred = match registry.auth_mode() {
        AuthMode::Anonymous => CredentialSource::anonymous("anonymous (auth = \"anonymous\")"),
        AuthMode::Docker => match auth::docker_config_path() {
            Some(p) => auth::from_docker_config(&registry.host, &p)?,
            None => CredentialSource::anonymous("anonymous (no HOME or DOCKER_CONFIG)"),
        },
        // Fetched from ECR once the runtime is up.
        AuthMode::Ecr => CredentialSource::anonymous("ECR"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut client = if registry.auth_mode() == AuthMode::Ecr {
        let ecr = runtime.block_on(crate::ecr::Ecr::connect(
            registry.ecr_region().as_deref(),
            registry.ecr_registry_id().as_deref(),
        ))?;
        let (cred, expires) = runtime.block_on(ecr.registry_credentials())?;
        RegistryClient::new(
            &registry.host,
            registry.insecure,
            cred,
            RetryPolicy::default(),
        )?
        .with_refresh(ecr.refresher(), expires)
    } else {
        RegistryClient::new(
            &registry.host,
            registry.insecure,
            cred,
            RetryPolicy::default(),
        )?
    };
    if let Some(rate) = registry.manifest_rate() {
        client = client.with_manifest_rate(rate);
    }
    let display = ProgressDisplay::new(args.quiet);
    let progress = |e: push::Event| display.event(e);
    let opts = PushOptions {
        jobs: usize::from(args.jobs),
        dry_run: args.dry_run,
    };
    let reports = runtime.block_on(push::push(&client, &images, &opts, &progress));
    display.finish();

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
                println!(
                    "{} {state}: {}/{}@{} tags [{}]: uploaded {} ({}), mounted {}, skipped {} in {:.1} s",
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
                    if matches!(outcome, BlobOutcome::Uploaded | BlobOutcome::WouldUpload) {
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
        Command::Build(args) => {
            let epoch = source_date_epoch()?;
            let file = Config::locate(args.select.config.as_deref())?;
            let config = Config::load(&file)?;
            let platforms = parse_platforms(&args.select.platforms)?;
            let opts = BuildOptions {
                services: args.select.services,
                platforms,
                out: args.out,
                tags: args.tags,
                epoch,
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

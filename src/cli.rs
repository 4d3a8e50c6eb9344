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
}

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Build only these services (repeat, or a comma list; default: all).
    #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
    services: Vec<String>,
    /// Build only these platforms, e.g. linux/arm64 (repeat, or a comma list; default: the config's).
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    platforms: Vec<String>,
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => {
            let epoch = source_date_epoch()?;
            let file = Config::locate(args.config.as_deref())?;
            let config = Config::load(&file)?;
            let platforms = if args.platforms.is_empty() {
                None
            } else {
                let mut list: Vec<Platform> = Vec::new();
                for p in &args.platforms {
                    let p: Platform = p.parse().map_err(anyhow::Error::msg)?;
                    if !list.contains(&p) {
                        list.push(p);
                    }
                }
                Some(list)
            };
            let opts = BuildOptions {
                services: args.services,
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

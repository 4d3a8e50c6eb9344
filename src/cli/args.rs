//! Command-line arguments: what was typed, as clap types, and their turning into the
//! request structs of the `app` use cases. No I/O here.

use crate::app::plan::PlanOptions;
use crate::app::{self, LayerSettings};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Build and publish reproducible multi-arch OCI images without a Docker daemon.
#[derive(Debug, Parser)]
#[command(name = "ocibuild", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Build each service's multi-platform image into an OCI image layout OUT/<service>/.
    Build(BuildArgs),
    /// Build (or take from --layout) each service's image and push it to the registry.
    Push(Box<PushArgs>),
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
    /// Show what is attached to the services' images (SBOMs, provenance, signatures); with
    /// --key, fail unless the index and every platform manifest carry a valid signature.
    Verify(VerifyArgs),
    /// Promote an image already in the registry: add tags to it (by tag or digest), nothing
    /// rebuilt or uploaded; prints the image's immutable reference.
    Tag(TagArgs),
    /// Copy an image with everything attached to it (SBOMs, provenance, signatures) to another
    /// registry or account: mounted within a registry, streamed across, digests unchanged.
    Copy(CopyArgs),
    /// List each service's images in the registry, newest first: tags, digest, platforms and
    /// sizes, push and pull times, scan findings, what is attached; untagged leftovers.
    Images(ImagesArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct ImagesArgs {
    #[command(flatten)]
    pub(super) select: ServiceSelection,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// Plain HTTP to the registry.
    #[arg(long)]
    pub(super) insecure: bool,
    /// Images per service, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(super) limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
}

impl ImagesArgs {
    /// The request for `app::images::images`.
    pub(super) fn request(&self) -> app::images::ImagesRequest {
        app::images::ImagesRequest {
            config: self.select.config.clone(),
            services: self.select.services.clone(),
            registry: self.registry.host.clone(),
            insecure: self.insecure,
            limit: self.limit as usize,
        }
    }
}

/// Which service's image `tag` and `copy` start from (by tag or by digest, exactly one).
#[derive(Debug, clap::Args)]
#[group(id = "image", required = true, multiple = false)]
pub(super) struct ImageChoice {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// The service whose repository holds the image.
    #[arg(long, value_name = "NAME")]
    pub(super) service: String,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// Plain HTTP to registries written without a scheme.
    #[arg(long)]
    pub(super) insecure: bool,
    /// The image, by one of its tags.
    #[arg(long, value_name = "TAG", group = "image")]
    pub(super) from_tag: Option<String>,
    /// The image, by digest (sha256:...).
    #[arg(long, value_name = "DIGEST", group = "image")]
    pub(super) digest: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct CopyArgs {
    #[command(flatten)]
    pub(super) image: ImageChoice,
    /// The registry to copy to.
    #[arg(long, value_name = "HOST[/PREFIX]")]
    pub(super) to_registry: String,
    /// Tags to write there (repeat, or a comma list; default: the --from-tag).
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub(super) to_tag: Vec<String>,
    /// Blob transfers at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(super) jobs: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
}

impl ImageChoice {
    /// The image for `app::promote`.
    fn choice(&self) -> app::promote::ImageChoice {
        app::promote::ImageChoice {
            config: self.config.clone(),
            service: self.service.clone(),
            registry: self.registry.host.clone(),
            insecure: self.insecure,
            from_tag: self.from_tag.clone(),
            digest: self.digest.clone(),
        }
    }
}

impl CopyArgs {
    /// The request for `app::promote::copy`.
    pub(super) fn request(&self) -> app::promote::CopyRequest {
        app::promote::CopyRequest {
            image: self.image.choice(),
            to_registry: self.to_registry.clone(),
            to_tags: self.to_tag.clone(),
            jobs: usize::from(self.jobs),
        }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct TagArgs {
    #[command(flatten)]
    pub(super) image: ImageChoice,
    /// Tags to add (repeat, or a comma list).
    #[arg(long, value_name = "TAG", value_delimiter = ',', required = true)]
    pub(super) to: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
}

impl TagArgs {
    /// The request for `app::promote::tag`.
    pub(super) fn request(&self) -> app::promote::TagRequest {
        app::promote::TagRequest {
            image: self.image.choice(),
            to: self.to.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    pub(super) select: ServiceSelection,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// Plain HTTP to the registry.
    #[arg(long)]
    pub(super) insecure: bool,
    /// The image to look at, by tag (default: latest).
    #[arg(long, conflicts_with = "digest")]
    pub(super) tag: Option<String>,
    /// The image to look at, by digest.
    #[arg(long)]
    pub(super) digest: Option<String>,
    /// Public key (PEM, as `openssl pkey -pubout`, cosign or skopeo write it) that must verify
    /// a signature of the index and of every platform manifest.
    #[arg(long, value_name = "PUB.pem")]
    pub(super) key: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
}

impl VerifyArgs {
    /// The request for `app::verify`.
    pub(super) fn request(&self) -> app::verify::VerifyRequest {
        app::verify::VerifyRequest {
            config: self.select.config.clone(),
            services: self.select.services.clone(),
            registry: self.registry.host.clone(),
            insecure: self.insecure,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
            key: self.key.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum ReposCommand {
    /// Create each service's repository or bring it in line with the config (plan, then apply).
    Ensure(EnsureArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct EnsureArgs {
    #[command(flatten)]
    pub(super) select: ServiceSelection,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// Only print the plan.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// The tag kinds pushed, to check the lifecycle rules against (default: `[ci] tags` in the
    /// config, itself by default sha,timestamp,latest,pr,release).
    #[arg(
        long = "tag",
        alias = "tags",
        value_name = "KINDS",
        value_delimiter = ','
    )]
    pub(super) tag_policy: Vec<String>,
    /// Only check, with ECR's lifecycle policy preview, that the config's lifecycle policy
    /// expires nothing a kept image needs (platform manifests, attachments); change nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub(super) check_lifecycle: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
}

#[derive(Debug, clap::Args)]
pub(super) struct ScanArgs {
    #[command(flatten)]
    pub(super) select: ServiceSelection,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// The image to look at, by tag (default: latest).
    #[arg(long, conflicts_with = "digest")]
    pub(super) tag: Option<String>,
    /// The image to look at, by digest.
    #[arg(long)]
    pub(super) digest: Option<String>,
    #[command(flatten)]
    pub(super) wait: ScanWait,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
}

/// How long to wait for scans and what fails the run.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ScanWait {
    /// Longest wait for each scan, e.g. 90s, 10m (a time-out is reported, not an error).
    #[arg(long = "wait", value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(super) wait: std::time::Duration,
    /// Fail (exit 1) when a finding at this severity or worse is found (default: never).
    #[arg(long, value_name = "SEVERITY", value_parser = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"])]
    pub(super) fail_on: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct IamArgs {
    #[command(flatten)]
    pub(super) select: ServiceSelection,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// The policy of a pull-request role: log in, read the base images and the layer cache;
    /// no push, no cache write.
    #[arg(long)]
    pub(super) pull_request: bool,
    /// Print instead the role's trust policy for GitHub Actions' OIDC tokens of this
    /// repository: the default branch (push role), REF (a branch, refs/heads/..., refs/tags/...,
    /// environment:NAME), or its pull requests (with --pull-request).
    #[arg(long, value_name = "github:OWNER/REPO[:REF]")]
    pub(super) trust: Option<String>,
}

/// Longest duration an option takes (a week).
const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 90s, 10m, 1h"))?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => return Err(format!("invalid duration {s:?}: use e.g. 90s, 10m, 1h")),
    };
    match secs {
        Some(secs) if secs <= MAX_DURATION_SECS => Ok(std::time::Duration::from_secs(secs)),
        _ => Err(format!(
            "duration {s:?} is too long: at most {} hours",
            MAX_DURATION_SECS / 3600
        )),
    }
}

/// Compression and caching choices on the command line.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct CompressArgs {
    /// Compress for speed (gzip or zstd level 1), e.g. for pull-request builds.
    #[arg(long)]
    pub(super) fast: bool,
    /// Layer cache directory (default: $OCIBUILD_CACHE_DIR, $XDG_CACHE_HOME/ocibuild or
    /// ~/.cache/ocibuild); persist it between CI runs to skip unchanged layers.
    #[arg(long, value_name = "DIR")]
    pub(super) cache_dir: Option<PathBuf>,
    /// Build every layer, using no cache (wins over --cache-dir). Registry bases are then
    /// resolved afresh too.
    #[arg(long)]
    pub(super) no_cache: bool,
    /// Ask the registry what the tags of registry bases point at now, instead of reusing what
    /// an earlier build resolved them to (kept in the cache directory).
    #[arg(long)]
    pub(super) pull: bool,
    /// Do not read (or write) the registry layer cache; the local cache is still used.
    #[arg(long)]
    pub(super) no_registry_cache: bool,
    /// The registry layer cache's repository, under the registry's prefix (default: [cache]
    /// repository in the config, else ocibuild-cache).
    #[arg(long, value_name = "NAME")]
    pub(super) cache_repository: Option<String>,
    /// Rebuild every layer the registry cache has and fail if its digest differs from what the
    /// cache says (an audit: layers are reproducible, so a difference is a poisoned or stale
    /// cache).
    #[arg(long)]
    pub(super) verify_cache: bool,
}

/// The registry named on the command line.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct RegistryArg {
    /// Registry HOST[:PORT][/PREFIX] (default: [registry] url in the config).
    #[arg(long = "registry", value_name = "HOST[/PREFIX]")]
    pub(super) host: Option<String>,
}

/// Which config, services and platforms `build` works on.
#[derive(Debug, clap::Args)]
pub(super) struct Selection {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Only these services (repeat, or a comma list; default: every service).
    #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
    pub(super) services: Vec<String>,
    /// Only these platforms, e.g. linux/arm64 (repeat, or a comma list; default, or `all`:
    /// every platform of the config).
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    pub(super) platforms: Vec<String>,
}

/// Which config, services and platforms `push` works on.
#[derive(Debug, clap::Args)]
pub(super) struct PushSelection {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// These services, whatever changed (repeat, or a comma list; default: the services
    /// `ocibuild plan` selects).
    #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
    pub(super) services: Vec<String>,
    /// Build only these platforms, e.g. linux/arm64 (repeat, or a comma list; default, or
    /// `all`: every platform of the config). Not with --layout, which pushes the layouts as
    /// they are.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    pub(super) platforms: Vec<String>,
}

/// Which config and services a repository command (`repos ensure`, `scan`, `iam-policy`)
/// works on: repositories have no platform.
#[derive(Debug, clap::Args)]
pub(super) struct ServiceSelection {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Only these services' repositories (repeat, or a comma list; default: every service).
    #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
    pub(super) services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct PushArgs {
    #[command(flatten)]
    pub(super) select: PushSelection,
    #[command(flatten)]
    pub(super) compress: CompressArgs,
    /// Tags: kinds sha, timestamp, latest, pr, release and literal tags (repeat, or a comma
    /// list; default: the layout's ref names, latest).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub(super) tags: Vec<String>,
    #[command(flatten)]
    pub(super) registry: RegistryArg,
    /// Use plain HTTP (always allowed for loopback hosts).
    #[arg(long)]
    pub(super) insecure: bool,
    /// Push the layouts `ocibuild build --out DIR` wrote, without building.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub(super) layout: Option<PathBuf>,
    /// Where to build the layouts before pushing (default: .ocibuild/layouts beside the config).
    #[arg(long, value_name = "DIR")]
    pub(super) out: Option<PathBuf>,
    /// Blob transfers in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(super) jobs: u16,
    /// Look only: report what would be uploaded, mounted, skipped and tagged; write nothing remote.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub(super) report: Option<PathBuf>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub(super) quiet: bool,
    /// Create or update the ECR repositories first (as `repos ensure` does).
    #[arg(long)]
    pub(super) create_repos: bool,
    /// After the push, wait for ECR's scans and report their findings.
    #[arg(long)]
    pub(super) scan: bool,
    #[command(flatten)]
    pub(super) scan_wait: ScanWait,
    #[command(flatten)]
    pub(super) change: ChangeArgs,
    /// Build and validate, but push nothing (what pull requests do).
    #[arg(long)]
    pub(super) no_push: bool,
    /// Time used by the `timestamp` tag: the head commit's (stable across reruns) or now.
    #[arg(long, value_enum, default_value_t = TimestampSource::Commit)]
    pub(super) timestamp: TimestampSource,
    #[command(flatten)]
    pub(super) attest: AttestArgs,
    /// After a successful push, write each pushed service's registry layer cache document
    /// for this branch (default: on for CI push events on the default branch, off elsewhere;
    /// pull requests never write it).
    #[arg(long, overrides_with = "no_cache_write")]
    pub(super) cache_write: bool,
    /// Do not write the registry layer cache, whatever the default.
    #[arg(long)]
    pub(super) no_cache_write: bool,
}

/// What a push attaches to each image (over the config's `[attest]` and `[sign]`).
#[derive(Debug, clap::Args)]
pub(super) struct AttestArgs {
    /// SBOM format attached to each platform manifest (default: `[attest] sbom`, else spdx).
    #[arg(long, value_name = "FORMAT", value_parser = ["spdx", "cyclonedx", "none"])]
    pub(super) sbom: Option<String>,
    /// Attach no provenance statement.
    #[arg(long)]
    pub(super) no_provenance: bool,
    /// Sign the index and each platform manifest with this ECDSA P-256 key (PKCS#8 or SEC1
    /// PEM, or the encrypted key cosign or skopeo writes, with COSIGN_PASSWORD); default:
    /// OCIBUILD_SIGN_KEY, else `[sign] key`.
    #[arg(long, value_name = "PATH", conflicts_with = "no_sign")]
    pub(super) sign_key: Option<PathBuf>,
    /// Sign nothing, whatever OCIBUILD_SIGN_KEY or `[sign] key` say.
    #[arg(long)]
    pub(super) no_sign: bool,
}

/// Where the `timestamp` tag's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum TimestampSource {
    Commit,
    Now,
}

/// Which services: by default the changed ones in a CI event (GITHUB_EVENT_NAME set), every
/// service anywhere else.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ChangeArgs {
    /// Only the services changed between two commits, even outside CI (the default in a CI
    /// event).
    #[arg(long, conflicts_with = "all")]
    pub(super) changed: bool,
    /// Compare with this revision (implies --changed; default: from the CI event, else HEAD~1).
    #[arg(long, value_name = "REV")]
    pub(super) base: Option<String>,
    /// Compare this revision (implies --changed; default: GITHUB_SHA, else HEAD).
    #[arg(long, value_name = "REV")]
    pub(super) head: Option<String>,
    /// Every service, whatever changed (the default outside a CI event).
    #[arg(long, conflicts_with = "base")]
    pub(super) all: bool,
}

impl ChangeArgs {
    fn options(&self, services: &[String]) -> PlanOptions {
        PlanOptions {
            base: self.base.clone(),
            head: self.head.clone(),
            services: services.to_vec(),
            all: self.all,
            changed: self.changed,
        }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct PlanArgs {
    /// Config file (default: ./ocibuild.toml).
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// These services, whatever changed (repeat, or a comma list).
    #[arg(
        long = "service",
        value_name = "NAME",
        value_delimiter = ',',
        conflicts_with = "all"
    )]
    pub(super) services: Vec<String>,
    #[command(flatten)]
    pub(super) change: ChangeArgs,
    /// Output: text, json, or github-matrix (`{"include":[{"service":...}]}`).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub(super) format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum PlanFormat {
    Text,
    Json,
    GithubMatrix,
}

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(super) enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub(super) struct BuildArgs {
    #[command(flatten)]
    pub(super) select: Selection,
    #[command(flatten)]
    pub(super) compress: CompressArgs,
    /// Output directory: each service's layout goes to OUT/<service>/.
    #[arg(long, value_name = "DIR")]
    pub(super) out: PathBuf,
    /// Ref name(s) written in each layout's index.json (repeat, or a comma list; default: latest).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub(super) tags: Vec<String>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
    /// Copy the layers of registry bases into the layouts too (self-contained layouts for
    /// offline use or other tools; a push needs no access to the base's registry then).
    #[arg(long)]
    pub(super) materialize: bool,
}

impl CompressArgs {
    fn settings(&self) -> LayerSettings {
        LayerSettings {
            fast: self.fast,
            cache_dir: self.cache_dir.clone(),
            no_cache: self.no_cache,
            pull: self.pull,
            no_registry_cache: self.no_registry_cache,
            cache_repository: self.cache_repository.clone(),
            verify_cache: self.verify_cache,
        }
    }
}

impl ScanWait {
    fn policy(&self) -> app::scan::ScanPolicy {
        app::scan::ScanPolicy {
            wait: self.wait,
            fail_on: self.fail_on.clone(),
        }
    }
}

impl BuildArgs {
    /// The request for `app::build`.
    pub(super) fn request(&self) -> app::build::BuildRequest {
        app::build::BuildRequest {
            config: self.select.config.clone(),
            services: self.select.services.clone(),
            platforms: self.select.platforms.clone(),
            layers: self.compress.settings(),
            out: self.out.clone(),
            tags: self.tags.clone(),
            materialize: self.materialize,
        }
    }
}

impl PushArgs {
    /// The request for `app::publish`.
    pub(super) fn request(&self) -> app::publish::PublishRequest {
        app::publish::PublishRequest {
            config: self.select.config.clone(),
            platforms: self.select.platforms.clone(),
            layers: self.compress.settings(),
            tags: self.tags.clone(),
            registry: self.registry.host.clone(),
            insecure: self.insecure,
            layout: self.layout.clone(),
            out: self.out.clone(),
            jobs: usize::from(self.jobs),
            dry_run: self.dry_run,
            create_repos: self.create_repos,
            scan: self.scan.then(|| self.scan_wait.policy()),
            selection: self.change.options(&self.select.services),
            no_push: self.no_push,
            timestamp_now: self.timestamp == TimestampSource::Now,
            attest: app::publish::AttestFlags {
                sbom: self.attest.sbom.clone(),
                provenance: self.attest.no_provenance.then_some(false),
                sign_key: self.attest.sign_key.clone(),
                no_sign: self.attest.no_sign,
            },
            cache_write: match (self.cache_write, self.no_cache_write) {
                (_, true) => Some(false),
                (true, false) => Some(true),
                (false, false) => None,
            },
        }
    }
}

impl EnsureArgs {
    /// The request for `app::repos::ensure`.
    pub(super) fn request(&self) -> app::repos::EnsureRequest {
        app::repos::EnsureRequest {
            config: self.select.config.clone(),
            services: self.select.services.clone(),
            registry: self.registry.host.clone(),
            tag_policy: self.tag_policy.clone(),
            dry_run: self.dry_run,
            check_lifecycle: self.check_lifecycle,
        }
    }
}

impl ScanArgs {
    /// The request for `app::scan::scan`.
    pub(super) fn request(&self) -> app::scan::ScanRequest {
        app::scan::ScanRequest {
            config: self.select.config.clone(),
            services: self.select.services.clone(),
            registry: self.registry.host.clone(),
            reference: self.digest.clone().or(self.tag.clone()),
            policy: self.wait.policy(),
        }
    }
}

impl IamArgs {
    /// The request for `app::iam::policy`.
    pub(super) fn request(&self) -> app::iam::IamRequest {
        app::iam::IamRequest {
            config: self.select.config.clone(),
            services: self.select.services.clone(),
            registry: self.registry.host.clone(),
            pull_request: self.pull_request,
            trust: self.trust.clone(),
        }
    }
}

impl PlanArgs {
    /// The request for `app::plan::plan`.
    pub(super) fn request(&self) -> app::plan::PlanRequest {
        app::plan::PlanRequest {
            config: self.config.clone(),
            options: self.change.options(&self.services),
        }
    }
}

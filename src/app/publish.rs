//! `ocibuild push`: plan -> build (or open the given layouts) -> ensure repositories ->
//! transfer -> scan -> [`Publish`]. Pull requests (and `--no-push`) build and stop: the
//! publisher that does nothing. What happens along the way goes out as events; the CLI renders
//! them and decides the exit code from the outcome.

use super::attach::Attach;
use super::scan::{ScanPolicy, ServiceScans, Target};
use super::{access, tags, AppError, Env, Event, Events, LayerSettings};
use crate::build::{self as builder, BuildOptions, RemoteLayers, ServiceReport};
use crate::config::{AuthMode, BaseRef, Config, RegistryConfig, SbomFormat, Service};
use crate::ecr::Ecr;
use crate::oci::layout::Blobs;
use crate::oci::read::Want;
use crate::oci::RepoAt;
use crate::plan::git::Git;
use crate::plan::{CiContext, PlanOptions};
use crate::registry::clients::Clients;
use crate::transfer::{self, PushReport, Registry, Remote, TransferImage, TransferOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to push.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Platforms to build (empty: the config's).
    pub platforms: Vec<String>,
    /// Layer and cache settings.
    pub layers: LayerSettings,
    /// Tag kinds and literal tags (empty: the layouts' ref names).
    pub tags: Vec<String>,
    /// Registry `HOST[/PREFIX]` (default: the config's).
    pub registry: Option<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// Push these layouts instead of building.
    pub layout: Option<PathBuf>,
    /// Where to build the layouts (default: `.ocibuild/layouts` beside the config).
    pub out: Option<PathBuf>,
    /// Blob transfers in flight.
    pub jobs: usize,
    /// Look only.
    pub dry_run: bool,
    /// Create or update the ECR repositories first.
    pub create_repos: bool,
    /// Wait for ECR's scans afterwards, with this policy.
    pub scan: Option<ScanPolicy>,
    /// Which services (named ones, change detection settings).
    pub selection: PlanOptions,
    /// Build, but push nothing.
    pub no_push: bool,
    /// `timestamp` tags take the wall clock, not the head commit's time.
    pub timestamp_now: bool,
    /// What to attach (`--sbom`, `--no-provenance`, `--sign-key`), over the config's.
    pub attest: AttestFlags,
    /// Write the registry layer cache after the push (`None`: on for CI push events on the
    /// default branch).
    pub cache_write: Option<bool>,
}

/// The attachment flags of a push; `None`: the config's setting.
#[derive(Debug, Clone, Default)]
pub struct AttestFlags {
    /// `--sbom spdx|cyclonedx|none`.
    pub sbom: Option<String>,
    /// `--no-provenance` gives `Some(false)`.
    pub provenance: Option<bool>,
    /// `--sign-key PATH` (else `OCIBUILD_SIGN_KEY`, else `[sign] key`).
    pub sign_key: Option<PathBuf>,
    /// `--no-sign`: no signature, whatever the config and environment say.
    pub no_sign: bool,
}

/// Why nothing was pushed after a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPush {
    /// The run is for a pull request.
    PullRequest,
    /// `--no-push`.
    Asked,
}

/// How a push ended.
#[derive(Debug)]
pub enum Publish {
    /// No service was selected.
    NothingChanged,
    /// Built (or given layouts) but not pushed.
    NotPushed {
        /// Why.
        why: NoPush,
        /// What was built (empty with `--layout`).
        built: Vec<ServiceReport>,
        /// The selected services.
        services: Vec<String>,
        /// The tags the images would get.
        tags: Vec<String>,
    },
    /// Pushed (or looked at, on a dry run).
    Pushed(PublishReport),
}

/// One service's push, with its scans when asked for.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceOutcome {
    /// The push.
    #[serde(flatten)]
    pub push: PushReport,
    /// Scan results, one per platform manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<Vec<crate::ecr::scan::ScanResult>>,
    /// Where each of the service's own layers came from, when this run built it: `cache` is
    /// `local`, `registry` or `built`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<crate::build::LayerOrigin>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// Per service, in selection order.
    pub services: Vec<ServiceOutcome>,
    /// The selected services.
    pub selected: Vec<String>,
    /// Nothing was written.
    pub dry_run: bool,
    /// Services with findings at `--fail-on` or worse.
    pub scan_failure: Option<String>,
}

impl PublishReport {
    /// The services that failed to push.
    pub fn failed(&self) -> Vec<&str> {
        self.services
            .iter()
            .filter(|s| s.push.error.is_some())
            .map(|s| s.push.service.as_str())
            .collect()
    }
}

/// Run a push.
pub fn publish(
    req: &PublishRequest,
    env: Env<'_>,
    events: Events<'_>,
) -> Result<Publish, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    check_request(req, &config)?;
    let ctx = tags::ci_context(env)?;
    let git = Git::open(&config.dir).ok();
    let (no_push, mut target) = settle(req, &config, git.as_ref(), &ctx, env)?;
    let plan = crate::plan::plan(&config, git.as_ref(), &ctx, &req.selection)?;
    events(Event::Planned(plan.clone()));
    if plan.services.is_empty() {
        return Ok(Publish::NothingChanged);
    }
    let names: Vec<String> = plan.services.iter().map(|s| s.service.clone()).collect();
    let tags = resolve_tags(req, &config, git.as_ref(), &ctx, events)?;
    let runtime = super::runtime()?;
    let remote = super::build::remote_options(&config, &runtime, &req.layers);
    let branch = ctx
        .branch
        .clone()
        .or_else(|| git.as_ref().and_then(|g| g.branch()));
    let link = Link::open(
        req,
        &config,
        target.as_ref().map(|t| &t.0),
        branch,
        &runtime,
        events,
    )?;
    let (layouts, built) = match &req.layout {
        Some(dir) => (dir.clone(), vec![]),
        None => {
            let run = BuildRun {
                req,
                config: &config,
                names: &names,
                tags: &tags,
                env,
                events,
            };
            let remote_cache = link.remote_layers(&names, &runtime, events);
            let (out, built) = run.build(remote.clone(), remote_cache)?;
            if let Some((_, attach)) = target.as_mut() {
                attach.add_packages(&built);
            }
            if let Some(why) = no_push {
                return Ok(Publish::NotPushed {
                    why,
                    built,
                    services: names,
                    tags,
                });
            }
            (out, built)
        }
    };
    let Some((registry, attach)) = target else {
        let why = no_push.unwrap_or(NoPush::Asked);
        return Ok(Publish::NotPushed {
            why,
            built: vec![],
            services: names,
            tags,
        });
    };
    let services = config.select(&names)?;
    let Some(connected) = link.connected else {
        return Err(AppError::Other("no connection to the registry".into()));
    };
    let push = Push {
        req,
        config: &config,
        runtime: &runtime,
        events,
        attach: &attach,
        connected: &connected,
        place: link.place.as_ref(),
        write_cache: cache_write(req, &config, &ctx),
        built: &built,
    };
    let report = push.run(&registry, &services, &layouts, &tags, &remote.clients)?;
    Ok(Publish::Pushed(PublishReport {
        selected: names,
        ..report
    }))
}

/// Where a push goes and what it carries.
type PushTarget = (RegistryConfig, Attach);

/// Whether this run pushes (not when asked not to, nor for a pull request) and, if it does,
/// where to and what it carries (the signing key loaded, its password checked): settled
/// before any work.
fn settle(
    req: &PublishRequest,
    config: &Config,
    git: Option<&Git>,
    ctx: &CiContext,
    env: Env<'_>,
) -> Result<(Option<NoPush>, Option<PushTarget>), AppError> {
    let no_push = match (req.no_push, ctx.is_pull_request()) {
        (true, _) => Some(NoPush::Asked),
        (false, true) => Some(NoPush::PullRequest),
        (false, false) => None,
    };
    let target = match no_push {
        None => Some((
            destination(req, config)?,
            attach_plan(req, config, git, env)?,
        )),
        Some(_) => None,
    };
    Ok((no_push, target))
}

/// What the command line asks for must make sense before any work: tags, services,
/// platforms, and `--platform` only when building.
fn check_request(req: &PublishRequest, config: &Config) -> Result<(), AppError> {
    super::check_tags(&req.tags, true)?;
    super::check_services(config, &req.selection.services)?;
    super::parse_platforms(&req.platforms)?;
    if req.layout.is_some() && !req.platforms.is_empty() {
        return Err(AppError::Usage("--platform chooses what to build; with --layout the layouts are pushed as they are (rebuild them with `ocibuild build --platform ...`)".into()));
    }
    Ok(())
}

/// The destination registry, with the ECR-only options checked against it.
fn destination(req: &PublishRequest, config: &Config) -> Result<RegistryConfig, AppError> {
    let registry = access::destination(config, req.registry.as_deref(), req.insecure)?;
    if registry.auth_mode() != AuthMode::Ecr && (req.create_repos || req.scan.is_some()) {
        return Err(AppError::Usage(format!(
            "--create-repos and --scan work with Amazon ECR; {} is not an ECR registry (set auth = \"ecr\" in [registry] for an ECR-compatible endpoint)",
            registry.host
        )));
    }
    Ok(registry)
}

/// Tags from kinds and literals (empty: the layouts' own); kinds skipped here are noted.
fn resolve_tags(
    req: &PublishRequest,
    config: &Config,
    git: Option<&Git>,
    ctx: &CiContext,
    events: Events<'_>,
) -> Result<Vec<String>, AppError> {
    if req.tags.is_empty() {
        return Ok(vec![]);
    }
    let facts = tags::facts(config, git, ctx, req.timestamp_now)?;
    // Every tag resolved (from CI facts too) is checked there against the tag grammar.
    let crate::plan::ResolvedTags { tags, notes } = crate::plan::resolve_tags(&req.tags, &facts)?;
    for n in notes {
        events(Event::Note(format!("tag {n}")));
    }
    Ok(tags)
}

/// The build step of a push.
struct BuildRun<'a> {
    req: &'a PublishRequest,
    config: &'a Config,
    names: &'a [String],
    tags: &'a [String],
    env: Env<'a>,
    events: Events<'a>,
}

impl BuildRun<'_> {
    /// Build the selected services (reading the registry cache `remote_cache`); returns where
    /// the layouts are and what was built.
    fn build(
        &self,
        remote: crate::base::remote::RemoteOptions,
        remote_cache: Option<Arc<dyn RemoteLayers>>,
    ) -> Result<(PathBuf, Vec<ServiceReport>), AppError> {
        let req = self.req;
        let out = req
            .out
            .clone()
            .unwrap_or_else(|| self.config.dir.join(".ocibuild").join("layouts"));
        let platforms = super::parse_platforms(&req.platforms)?;
        let cache = super::build::cache(
            self.config,
            self.names,
            &platforms,
            &out,
            &req.layers,
            self.env,
            self.events,
        )?;
        let opts = BuildOptions {
            services: self.names.to_vec(),
            platforms,
            out: out.clone(),
            tags: self.tags.to_vec(),
            epoch: super::source_date_epoch(self.env)?,
            layer: super::build::layer_options(&req.layers, self.config),
            cache,
            remote: Some(remote),
            materialize: false,
            remote_cache,
            verify_cache: req.layers.verify_cache,
        };
        let built = builder::build(self.config, &opts)?;
        super::build::package_warnings(&built, self.events);
        (self.events)(Event::Built(built.clone()));
        Ok((out, built))
    }
}

/// The attachments of this push: the config's `[attest]` and `[sign]`, then the flags, then
/// `OCIBUILD_SIGN_KEY` for the key when no flag names one.
fn attach_plan(
    req: &PublishRequest,
    config: &Config,
    git: Option<&Git>,
    env: Env<'_>,
) -> Result<Attach, AppError> {
    let mut settings = config.attest.clone();
    if let Some(s) = &req.attest.sbom {
        settings.sbom = SbomFormat::parse(s)
            .ok_or_else(|| AppError::Usage(format!("--sbom {s:?}: use spdx, cyclonedx or none")))?;
    }
    if let Some(p) = req.attest.provenance {
        settings.provenance = p;
    }
    let env_key = env("OCIBUILD_SIGN_KEY")
        .filter(|k| !k.is_empty())
        .map(PathBuf::from);
    if let Some(k) = req.attest.sign_key.clone().or(env_key) {
        settings.sign_key = Some(k);
    }
    if req.attest.no_sign {
        settings.sign_key = None;
    }
    let commit = git.and_then(|g| g.commit("HEAD").ok());
    Attach::new(
        config,
        settings,
        super::source_date_epoch(env)?,
        commit,
        env,
    )
}

/// The run's link to the destination registry, made before the build: the connection (for a
/// push; for a run that pushes nothing, only to read the layer cache, and then a failure is a
/// warning) and where the registry layer cache is.
struct Link {
    connected: Option<access::Connected>,
    place: Option<super::cache::CachePlace>,
}

impl Link {
    fn open(
        req: &PublishRequest,
        config: &Config,
        pushing_to: Option<&RegistryConfig>,
        branch: Option<String>,
        runtime: &tokio::runtime::Runtime,
        events: Events<'_>,
    ) -> Result<Link, AppError> {
        if let Some(registry) = pushing_to {
            return Ok(Link {
                connected: Some(access::Connected::open(runtime, registry)?),
                place: super::cache::place(config, registry, &req.layers, branch)?,
            });
        }
        // Nothing is pushed: the cache is read when a registry is known and reachable.
        let registry = destination(req, config).ok();
        let place = match (&registry, &req.layout) {
            (Some(r), None) => super::cache::place(config, r, &req.layers, branch)?,
            _ => None,
        };
        let connected = match (&registry, &place) {
            (Some(r), Some(_)) => match access::Connected::open(runtime, r) {
                Ok(c) => Some(c),
                Err(e) => {
                    events(Event::Warning(format!(
                        "registry layer cache not read ({e}): every layer not in the local cache is built"
                    )));
                    None
                }
            },
            _ => None,
        };
        Ok(Link { connected, place })
    }

    /// The registry cache of `services`, read (none when it is off or unreachable).
    fn remote_layers(
        &self,
        services: &[String],
        runtime: &tokio::runtime::Runtime,
        events: Events<'_>,
    ) -> Option<Arc<dyn RemoteLayers>> {
        let (place, c) = (self.place.as_ref()?, self.connected.as_ref()?);
        Some(super::cache::open(
            place,
            c.client.clone(),
            services,
            runtime,
            events,
        ))
    }
}

/// Whether this push writes the registry cache: `--cache-write` / `--no-cache-write`, else
/// only for a CI push event on the default branch.
fn cache_write(req: &PublishRequest, config: &Config, ctx: &CiContext) -> bool {
    let default = matches!(ctx.trigger, crate::plan::Trigger::Push { .. })
        && ctx.event.is_some()
        && ctx.branch.as_deref() == Some(config.default_branch.as_str());
    !req.dry_run && req.cache_write.unwrap_or(default)
}

/// The push step.
struct Push<'a> {
    req: &'a PublishRequest,
    config: &'a Config,
    runtime: &'a tokio::runtime::Runtime,
    events: Events<'a>,
    attach: &'a Attach,
    connected: &'a access::Connected,
    /// The registry layer cache, when one is used.
    place: Option<&'a super::cache::CachePlace>,
    /// Whether this push writes it.
    write_cache: bool,
    /// What was built (empty with `--layout`): the cache documents come from it.
    built: &'a [ServiceReport],
}

impl Push<'_> {
    /// Open the layouts, connect, ensure repositories, transfer, scan.
    fn run(
        &self,
        registry: &RegistryConfig,
        services: &[&Service],
        layouts: &Path,
        tags: &[String],
        sources: &Clients,
    ) -> Result<PublishReport, AppError> {
        let req = self.req;
        let cache = self.place.map(|p| &p.at);
        let mut images = open_layouts(services, registry, layouts, tags, cache)?;
        for i in images.iter_mut() {
            if let Some(img) = i.image.as_mut() {
                let name = format!("{}/{}", registry.host, img.repository);
                img.attachments = self.attach.artifacts(&img.service, &name, &img.graph);
                img.signatures = self.attach.signatures(&name, &img.graph);
            }
        }
        let ecr = &self.connected.ecr;
        if let (true, Some(ecr)) = (req.create_repos, ecr) {
            self.ensure_repositories(ecr, &images)?;
        }
        let rt = self.runtime;
        let remote = Remote::new(&self.connected.client, sources);
        let opts = TransferOptions {
            jobs: req.jobs,
            dry_run: req.dry_run,
        };
        let mut reports = rt.block_on(send(&remote, &images, &opts, self.events));
        for r in reports.iter_mut() {
            if let Some(b) = self.built.iter().find(|b| b.name == r.push.service) {
                r.layers = b.own_layers();
            }
        }
        if let (Some(place), true) = (self.place, self.write_cache) {
            rt.block_on(self.write_cache(&remote, place, &reports, layouts));
        }
        let mut report = PublishReport {
            services: reports,
            selected: vec![],
            dry_run: req.dry_run,
            scan_failure: None,
        };
        if let (Some(policy), Some(ecr), false) = (&req.scan, &ecr, req.dry_run) {
            self.scan(ecr, policy, &mut report)?;
        }
        Ok(report)
    }

    /// Write the registry cache document of each service pushed without error.
    async fn write_cache<R: Registry>(
        &self,
        registry: &R,
        place: &super::cache::CachePlace,
        reports: &[ServiceOutcome],
        layouts: &Path,
    ) {
        let host = registry.host().to_string();
        let written = reports
            .iter()
            .filter(|r| r.push.error.is_none())
            .filter_map(|r| {
                let built = self.built.iter().find(|b| b.name == r.push.service)?;
                let pushed_to = RepoAt {
                    host: host.clone(),
                    repository: r.push.repository.clone(),
                };
                let (doc, blobs) = super::cache::document(built, &pushed_to, layouts)?;
                Some((built.name.clone(), doc, blobs))
            })
            .collect();
        super::cache::write(registry, place, written, self.events).await;
    }

    fn ensure_repositories(&self, ecr: &Ecr, images: &[Opened]) -> Result<(), AppError> {
        let repositories: Vec<String> = images.iter().map(|i| i.repository.clone()).collect();
        // The kinds this push writes, else what the project pushes (`[ci] tags`).
        let policy = match self.req.tags.is_empty() {
            true => self.config.tag_kinds.clone(),
            false => self.req.tags.clone(),
        };
        let settings = super::repos::Settings {
            config: self.config,
            tag_policy: &policy,
            dry_run: self.req.dry_run,
            cache: self.place.map(|p| p.at.repository.clone()),
            // The lifecycle preview takes its time: `repos ensure` runs it, not every push.
            check_lifecycle: false,
        };
        self.runtime
            .block_on(settings.apply(ecr, &repositories, self.events))?;
        Ok(())
    }

    /// Wait for the scans of what was pushed; attach them; judge them.
    fn scan(
        &self,
        ecr: &Ecr,
        policy: &ScanPolicy,
        report: &mut PublishReport,
    ) -> Result<(), AppError> {
        let targets: Vec<Target> = report
            .services
            .iter()
            .filter(|s| s.push.error.is_none())
            .map(|s| Target {
                service: s.push.service.clone(),
                repository: s.push.repository.clone(),
                digests: s.push.manifest_digests.clone(),
                platforms: s.push.manifest_platforms.clone(),
            })
            .collect();
        let scans =
            self.runtime
                .block_on(super::scan::wait_all(ecr, &targets, policy, self.events))?;
        for ServiceScans { service, results } in scans.services {
            if let Some(s) = report
                .services
                .iter_mut()
                .find(|s| s.push.service == service)
            {
                s.scan = Some(results);
            }
        }
        report.scan_failure = scans.failure;
        Ok(())
    }
}

/// A service's layout, read (or why not).
pub(crate) struct Opened {
    service: String,
    repository: String,
    image: Option<TransferImage>,
    error: Option<String>,
}

/// Read each service's layout `layouts/<service>`: a missing layout stops the run; an
/// unreadable one fails its service only. Layers left out of a layout are looked for in the
/// registry layer cache `cache`, when one is used.
pub(crate) fn open_layouts(
    services: &[&Service],
    registry: &RegistryConfig,
    layouts: &Path,
    tags: &[String],
    cache: Option<&RepoAt>,
) -> Result<Vec<Opened>, AppError> {
    let mut out = Vec::new();
    for s in services {
        let dir = layouts.join(&s.name);
        if !dir.join("oci-layout").is_file() {
            return Err(AppError::Refused(format!(
                "no OCI layout for service {} at {}: run `ocibuild build --out {}` first",
                s.name,
                dir.display(),
                layouts.display()
            )));
        }
        let repository = registry.repository_path(&s.repository);
        let name = dir.display().to_string();
        // Only the layers of the base this service's config names may be left out.
        let base: Vec<RepoAt> = match &s.base {
            BaseRef::Registry(r) => vec![RepoAt::of(r)],
            _ => Vec::new(),
        };
        let blobs = Blobs::MayBeRemote {
            bases: &base,
            cache,
        };
        let read = crate::oci::layout::read(&dir, None, Want::Every, blobs, &name);
        let (image, error) = match read {
            Ok(l) => {
                let tags = match (tags.is_empty(), l.refs.is_empty()) {
                    (false, _) => tags.to_vec(),
                    (true, false) => layout_tags(&name, l.refs)?,
                    (true, true) => vec!["latest".to_string()],
                };
                let image = TransferImage {
                    service: s.name.clone(),
                    repository: repository.clone(),
                    graph: l.graph,
                    tags,
                    attachments: vec![],
                    signatures: vec![],
                    attachment_blobs: vec![],
                };
                (Some(image), None)
            }
            Err(e @ crate::oci::OciError::Layout(_)) => {
                (None, Some(format!("reading layout: {e}")))
            }
            Err(e) => (None, Some(format!("reading layout: {name}: {e}"))),
        };
        out.push(Opened {
            service: s.name.clone(),
            repository,
            image,
            error,
        });
    }
    Ok(out)
}

/// The ref names of the layout `name` as tags, each checked against the tag grammar before
/// anything is sent (a ref name becomes part of a registry URL): an invalid one refuses the
/// run, naming the layout, the ref and the fix.
fn layout_tags(name: &str, refs: Vec<String>) -> Result<Vec<String>, AppError> {
    for r in &refs {
        if let Err(why) = crate::spec::check_image_tag(r) {
            return Err(AppError::Refused(format!(
                "layout {name}: its index.json names the image {r:?} ({}), which cannot be a tag: {why}; \
                 give the tags with --tag, or fix the ref name in the layout",
                crate::spec::ANNOTATION_REF_NAME
            )));
        }
    }
    Ok(refs)
}

/// Transfer the images that could be read; those that could not fail their service. One
/// outcome per service, in order.
pub(crate) async fn send<R: Registry>(
    registry: &R,
    images: &[Opened],
    opts: &TransferOptions,
    events: Events<'_>,
) -> Vec<ServiceOutcome> {
    let progress = |e| events(Event::Transfer(e));
    for i in images.iter().filter(|i| i.image.is_none()) {
        progress(transfer::Event::Service {
            service: i.service.clone(),
            error: i.error.clone(),
        });
    }
    let loaded: Vec<TransferImage> = images.iter().filter_map(|i| i.image.clone()).collect();
    let pushed = transfer::transfer(registry, &loaded, opts, &progress).await;
    events(Event::TransferDone);
    merge(images, pushed, registry.host(), opts.dry_run)
}

/// The transfer's reports and the unreadable layouts' failures, in service order.
fn merge(
    images: &[Opened],
    pushed: Vec<PushReport>,
    host: &str,
    dry_run: bool,
) -> Vec<ServiceOutcome> {
    let mut pushed = pushed.into_iter();
    images
        .iter()
        .filter_map(|i| {
            let push = match &i.image {
                Some(_) => pushed.next()?,
                None => {
                    PushReport::failed(&i.service, &i.repository, host, dry_run, i.error.clone())
                }
            };
            Some(ServiceOutcome {
                push,
                scan: None,
                layers: vec![],
            })
        })
        .collect()
}

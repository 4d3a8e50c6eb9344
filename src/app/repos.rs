//! `ocibuild repos ensure` (and `push --create-repos`): plan the ECR repository settings of
//! the services, tell the plan, apply it unless only looking.

use super::{access, AppError, Event, Events};
use crate::config::Config;
use crate::ecr::repos::{self, RepoPlan};
use crate::ecr::{lifecycle, Ecr};
use std::path::PathBuf;

/// Which repositories to bring in line.
#[derive(Debug, Clone)]
pub struct EnsureRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// The tag kinds pushed, to check lifecycle rules against (empty: the config's `[ci] tags`).
    pub tag_policy: Vec<String>,
    /// Only plan.
    pub dry_run: bool,
    /// Only run the lifecycle check (see [`super::lifecycle`]).
    pub check_lifecycle: bool,
}

/// Plan and (unless `dry_run`) apply the settings of the requested services' repositories.
pub fn ensure(req: &EnsureRequest, events: Events<'_>) -> Result<Vec<RepoPlan>, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    super::check_tags(&req.tag_policy, true)?;
    let (registry, repositories) = repositories(&config, req)?;
    let runtime = super::runtime()?;
    let ecr = runtime.block_on(access::connect_ecr(&registry))?;
    let tag_policy = match req.tag_policy.is_empty() {
        true => config.tag_kinds.clone(),
        false => req.tag_policy.clone(),
    };
    let cache = config
        .cache
        .registry
        .then(|| registry.repository_path(&config.cache.repository));
    let settings = Settings {
        config: &config,
        tag_policy: &tag_policy,
        dry_run: req.dry_run,
        cache,
        check_lifecycle: true,
    };
    runtime.block_on(settings.apply(&ecr, &repositories, events))
}

/// The registry `req` names and the full names of its services' repositories there.
pub(super) fn repositories(
    config: &Config,
    req: &EnsureRequest,
) -> Result<(crate::config::RegistryConfig, Vec<String>), AppError> {
    let registry = access::destination(config, req.registry.as_deref(), false)?;
    let repositories = config
        .select(&req.services)?
        .iter()
        .map(|s| registry.repository_path(&s.repository))
        .collect();
    Ok((registry, repositories))
}

/// What the repositories should look like.
pub(crate) struct Settings<'a> {
    /// The config (its `[repositories]`).
    pub config: &'a Config,
    /// The tag kinds pushed.
    pub tag_policy: &'a [String],
    /// Only plan.
    pub dry_run: bool,
    /// The registry layer cache's repository (full path), when the cache is used: it gets
    /// its own settings (`RepositorySettings::for_cache`).
    pub cache: Option<String>,
    /// Preview the lifecycle policy on the repositories that exist before changing anything,
    /// and refuse when it would expire what kept images need.
    pub check_lifecycle: bool,
}

impl Settings<'_> {
    /// Warn about lifecycle rules that miss the tag policy, plan, tell the plan, apply.
    pub async fn apply(
        &self,
        ecr: &Ecr,
        repositories: &[String],
        events: Events<'_>,
    ) -> Result<Vec<RepoPlan>, AppError> {
        let wanted = &self.config.repositories;
        for w in lifecycle::check_against_tags(&wanted.lifecycle, self.tag_policy) {
            events(Event::Warning(w));
        }
        let for_cache = wanted.for_cache();
        let cache: Vec<String> = self.cache.iter().cloned().collect();
        let (mut plans, cache_plans) = futures_util::try_join!(
            repos::plan(ecr, repositories, wanted),
            repos::plan(ecr, &cache, &for_cache)
        )?;
        plans.extend(cache_plans.iter().cloned());
        events(Event::ReposPlanned {
            plans: plans.clone(),
            dry_run: self.dry_run,
        });
        if self.check_lifecycle {
            let existing: Vec<String> = plans[..plans.len() - cache_plans.len()]
                .iter()
                .filter(|p| p.arn.is_some())
                .map(|p| p.repository.clone())
                .collect();
            super::lifecycle::check_all(ecr, self.config, &existing, false, events).await?;
        }
        if !self.dry_run {
            let own_count = plans.len() - cache_plans.len();
            let (own, cache) = plans.split_at_mut(own_count);
            repos::apply(ecr, own, wanted).await?;
            repos::apply(ecr, cache, &for_cache).await?;
        }
        Ok(plans)
    }
}

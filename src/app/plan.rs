//! `ocibuild plan`: which services changed (and so will be built and pushed).

use super::{tags, AppError, Env};
use crate::config::Config;
use crate::plan::git::Git;
use crate::plan::Plan;
pub use crate::plan::PlanOptions;
use std::path::PathBuf;

/// What to compare.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Change detection settings and named services.
    pub options: PlanOptions,
}

/// The plan, with the number of services in the config.
#[derive(Debug, Clone)]
pub struct PlanReport {
    /// The plan.
    pub plan: Plan,
    /// How many services the config has.
    pub total: usize,
}

/// Decide which services to build.
pub fn plan(req: &PlanRequest, env: Env<'_>) -> Result<PlanReport, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.options.services)?;
    let ctx = tags::ci_context(env)?;
    let git = Git::open(&config.dir).ok();
    let plan = crate::plan::plan(&config, git.as_ref(), &ctx, &req.options)?;
    Ok(PlanReport {
        plan,
        total: config.services.len(),
    })
}

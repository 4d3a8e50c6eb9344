//! Tag facts from git and the CI context: the head commit, its time, the branch, the pull
//! request number and release tags, gathered for `plan::resolve_tags`.

use super::{AppError, Env};
use crate::config::Config;
use crate::plan::git::Git;
use crate::plan::{CiContext, TagFacts, Trigger};

/// The CI context, read through `env`.
pub fn ci_context(env: Env<'_>) -> Result<CiContext, AppError> {
    Ok(CiContext::from_vars(&|k| env(k))?)
}

/// What the tag policy needs, from git and the CI context; `use_now` takes the wall clock
/// for `timestamp` instead of the head commit's time.
pub fn facts(
    config: &Config,
    git: Option<&Git>,
    ctx: &CiContext,
    use_now: bool,
) -> Result<TagFacts, AppError> {
    let head = git.and_then(|g| g.commit(ctx.sha.as_deref().unwrap_or("HEAD")).ok());
    let pr = match ctx.trigger {
        Trigger::PullRequest { number, .. } => Some(number),
        _ => None,
    };
    let git_err = crate::plan::PlanError::from;
    let mut release = match (git, &head) {
        (Some(g), Some(h)) => g.release_tags(h).map_err(git_err)?,
        _ => vec![],
    };
    if let Some(t) = ctx.git_tag.as_ref().filter(|t| t.starts_with('v')) {
        if !release.contains(t) {
            release.push(t.clone());
        }
    }
    let on_default_branch = match (git, &head, release.is_empty()) {
        (Some(g), Some(h), false) => on_default_branch(g, h, &config.default_branch),
        _ => None,
    };
    Ok(TagFacts {
        on_default_branch,
        commit_time: match (git, &head) {
            (Some(g), Some(h)) => Some(g.commit_time(h).map_err(git_err)?),
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

/// Whether commit `head` is on the history of `default` (its remote-tracking branch, else the
/// local one); `None` when this clone has neither.
fn on_default_branch(git: &Git, head: &str, default: &str) -> Option<bool> {
    [format!("origin/{default}"), default.to_string()]
        .into_iter()
        .find(|r| git.has_commit(r))
        .map(|r| git.is_ancestor(head, &r))
}

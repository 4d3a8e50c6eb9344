//! What to build and how to tag it: change detection between two commits (which services'
//! `paths` or the shared paths changed), the CI context (GitHub event payloads), and the tag
//! policy (`sha`, `timestamp`, `latest`, `pr`, `release`, literal tags).
//!
//! Pure apart from the `git` wrapper it is handed; the environment is read by the CLI and
//! passed in as [`CiContext`]. Imports `config` and `spec`.

pub mod git;

use crate::config::Config;
use crate::digest::file::read_user_file;
use crate::spec::is_valid_tag;
use git::Git;
use serde::Serialize;
use std::path::Path;

/// A planning failure, with what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl From<git::GitError> for PlanError {
    fn from(e: git::GitError) -> Self {
        PlanError(e.0)
    }
}

/// What triggered this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A push: `before` is the previous head of the branch (all zeros for a new branch).
    Push {
        /// Previous commit.
        before: Option<String>,
        /// History rewritten.
        forced: bool,
    },
    /// A pull request.
    PullRequest {
        /// Its number.
        number: u64,
        /// The target branch.
        base_ref: Option<String>,
        /// The target branch's commit when the event fired.
        base_sha: Option<String>,
    },
    /// A manual run, with its `services` input (a comma list, or `all`).
    Dispatch {
        /// The input, if given.
        services: Option<String>,
    },
    /// Not in CI.
    Local,
}

/// The CI context of a run.
#[derive(Debug, Clone)]
pub struct CiContext {
    /// The trigger.
    pub trigger: Trigger,
    /// `GITHUB_EVENT_NAME`, when this runs for a CI event.
    pub event: Option<String>,
    /// The branch being built (the PR's source branch on pull requests), if known.
    pub branch: Option<String>,
    /// A `refs/tags/...` name when a tag was pushed.
    pub git_tag: Option<String>,
    /// The commit CI checked out (`GITHUB_SHA`), if known.
    pub sha: Option<String>,
}

/// Largest CI event payload read (GitHub caps webhook payloads at 25 MB).
const MAX_EVENT: u64 = 32 << 20;

impl CiContext {
    /// Read the GitHub Actions context through `var` (the environment, in the CLI).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<CiContext, PlanError> {
        let event_name = var("GITHUB_EVENT_NAME");
        let payload: serde_json::Value = match var("GITHUB_EVENT_PATH") {
            Some(p) if event_name.is_some() => {
                let text = read_user_file(Path::new(&p), MAX_EVENT).map_err(|e| {
                    PlanError(format!(
                        "reading the event payload GITHUB_EVENT_PATH={p}: {e}"
                    ))
                })?;
                serde_json::from_slice(&text)
                    .map_err(|e| PlanError(format!("the event payload {p} is not JSON: {e}")))?
            }
            _ => serde_json::Value::Null,
        };
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let trigger = match event_name.as_deref() {
            Some("push") => Trigger::Push {
                before: s(&payload["before"]),
                forced: payload["forced"].as_bool().unwrap_or(false),
            },
            Some("pull_request") | Some("pull_request_target") => Trigger::PullRequest {
                number: payload["number"]
                    .as_u64()
                    .or_else(|| payload["pull_request"]["number"].as_u64())
                    .ok_or_else(|| PlanError("the pull_request payload has no number".into()))?,
                base_ref: s(&payload["pull_request"]["base"]["ref"])
                    .or_else(|| var("GITHUB_BASE_REF")),
                base_sha: s(&payload["pull_request"]["base"]["sha"]),
            },
            Some("workflow_dispatch") => Trigger::Dispatch {
                services: s(&payload["inputs"]["services"]),
            },
            _ => Trigger::Local,
        };
        let github_ref = var("GITHUB_REF").unwrap_or_default();
        let branch = match &trigger {
            Trigger::PullRequest { .. } => var("GITHUB_HEAD_REF"),
            _ => github_ref.strip_prefix("refs/heads/").map(str::to_string),
        };
        Ok(CiContext {
            event: event_name.clone(),
            git_tag: github_ref.strip_prefix("refs/tags/").map(str::to_string),
            trigger,
            branch,
            sha: var("GITHUB_SHA"),
        })
    }

    /// Whether this run is for a pull request.
    pub fn is_pull_request(&self) -> bool {
        matches!(self.trigger, Trigger::PullRequest { .. })
    }
}

/// Why a service is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selected {
    /// Service name.
    pub service: String,
    /// Why, for people.
    pub reason: String,
}

/// The services to build.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Which rule selected the services, for people (e.g. "changed since the last push").
    pub rule: String,
    /// Base commit compared, when detection ran.
    pub base: Option<String>,
    /// Head commit compared, when detection ran.
    pub head: Option<String>,
    /// Services to build, in config order.
    pub services: Vec<Selected>,
    /// Services left out on purpose (e.g. their directory was deleted), with the reason.
    pub skipped: Vec<Selected>,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Base revision.
    pub base: Option<String>,
    /// Head revision.
    pub head: Option<String>,
    /// Services named.
    pub services: Vec<String>,
    /// All services.
    pub all: bool,
    /// Compare commits even outside a CI event (`--changed`).
    pub changed: bool,
}

/// Whether config-relative `path` falls under `pattern` (a directory with a trailing `/`, a
/// file or directory path, or a glob).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.contains(['*', '?', '[', '{']) {
        return globset::GlobBuilder::new(pattern.trim_end_matches('/'))
            .literal_separator(false)
            .build()
            .map(|g| {
                let m = g.compile_matcher();
                // A glob naming directories covers what is under them.
                let mut p = Path::new(path);
                loop {
                    if m.is_match(p) {
                        return true;
                    }
                    match p.parent() {
                        Some(q) if !q.as_os_str().is_empty() => p = q,
                        _ => return false,
                    }
                }
            })
            .unwrap_or(false);
    }
    let dir = pattern.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

fn everything(config: &Config, reason: &str) -> Vec<Selected> {
    config
        .services
        .keys()
        .map(|s| Selected {
            service: s.clone(),
            reason: reason.to_string(),
        })
        .collect()
}

/// Decide which services to build.
pub fn plan(
    config: &Config,
    git: Option<&Git>,
    ctx: &CiContext,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut plan = Plan {
        rule: String::new(),
        base: None,
        head: None,
        services: vec![],
        skipped: vec![],
    };
    if let Some((rule, services)) = requested(config, ctx, opts)? {
        plan.rule = rule.to_string();
        plan.services = services;
        return Ok(plan);
    }
    let explicit = opts.changed || opts.base.is_some() || opts.head.is_some();
    if !explicit && ctx.event.is_none() {
        plan.rule = "every service: not a CI event (--changed compares commits)".into();
        plan.services = everything(config, "every service outside CI");
        return Ok(plan);
    }
    plan.rule = match (&ctx.event, explicit) {
        (Some(e), false) => format!("what changed ({e} event)"),
        _ => "what changed (--changed)".to_string(),
    };
    let Some(git) = git else {
        plan.services = everything(
            config,
            "not in a git repository: nothing to compare, so every service",
        );
        return Ok(plan);
    };
    let head_rev = opts
        .head
        .clone()
        .or_else(|| ctx.sha.clone())
        .unwrap_or_else(|| "HEAD".into());
    let head = git.commit(&head_rev)?;
    plan.head = Some(head.clone());
    let base = match base_commit(git, ctx, opts, &head)? {
        Base::Commit(base) => base,
        Base::Everything(reason) => {
            plan.services = everything(config, reason);
            return Ok(plan);
        }
    };
    plan.base = Some(base.clone());
    let changed = git.changed_paths(&base, &head)?;
    let rel = config_relative(config, git, &changed)?;
    select_changed(config, &rel, &mut plan);
    Ok(plan)
}

/// The services asked for outright (`--all`, `--service`, a manual run's input), without
/// looking at changes; `None` when change detection decides.
fn requested(
    config: &Config,
    ctx: &CiContext,
    opts: &PlanOptions,
) -> Result<Option<(&'static str, Vec<Selected>)>, PlanError> {
    if opts.all {
        return Ok(Some(("every service (--all)", everything(config, "--all"))));
    }
    if !opts.services.is_empty() {
        let named = config
            .select(&opts.services)
            .map_err(|e| PlanError(e.0))?
            .iter()
            .map(|s| Selected {
                service: s.name.clone(),
                reason: "named".into(),
            })
            .collect();
        return Ok(Some(("the services named (--service)", named)));
    }
    let Trigger::Dispatch { services } = &ctx.trigger else {
        return Ok(None);
    };
    let input = services.as_deref().unwrap_or("all").trim();
    if input.is_empty() || input == "all" {
        return Ok(Some(("manual run", everything(config, "manual run: all"))));
    }
    let names: Vec<String> = input
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let selected = config
        .select(&names)
        .map_err(|e| PlanError(format!("workflow_dispatch input services: {}", e.0)))?
        .iter()
        .map(|s| Selected {
            service: s.name.clone(),
            reason: "manual run".into(),
        })
        .collect();
    Ok(Some(("manual run", selected)))
}

/// What to compare the head with.
enum Base {
    /// This commit.
    Commit(String),
    /// Nothing: build every service, for this reason.
    Everything(&'static str),
}

/// What to do about a shallow clone.
const SHALLOW_FIX: &str =
    "the clone is shallow: fetch the history it needs (actions/checkout with fetch-depth: 0)";

/// The commit to compare `head` with: `--base`, the commit before a push, the merge base of a
/// pull request, else the parent of `head`.
fn base_commit(
    git: &Git,
    ctx: &CiContext,
    opts: &PlanOptions,
    head: &str,
) -> Result<Base, PlanError> {
    let base = match (&opts.base, &ctx.trigger) {
        (Some(b), _) => need(git, b)?,
        (None, Trigger::Push { before, forced }) => {
            let before = before.clone().unwrap_or_default();
            if before.is_empty() || before.bytes().all(|b| b == b'0') {
                return Ok(Base::Everything(
                    "new branch: no previous commit to compare with",
                ));
            }
            if *forced {
                return Ok(Base::Everything("forced push: history was rewritten"));
            }
            need(git, &before)?
        }
        (
            None,
            Trigger::PullRequest {
                base_ref, base_sha, ..
            },
        ) => pull_request_base(git, base_ref.as_deref(), base_sha.as_deref(), head)?,
        (None, _) => {
            let parent = format!("{head}~1");
            if !git.has_commit(&parent) {
                if git.is_shallow() {
                    return Err(PlanError(format!(
                        "the parent of {head} is not in this clone; {SHALLOW_FIX}"
                    )));
                }
                return Ok(Base::Everything("first commit: nothing to compare with"));
            }
            git.commit(&parent)?
        }
    };
    Ok(Base::Commit(base))
}

/// The commit `rev` names, which must be in the clone.
fn need(git: &Git, rev: &str) -> Result<String, PlanError> {
    git.commit(rev).map_err(|_| {
        if git.is_shallow() {
            PlanError(format!("commit {rev} is not in this clone; {SHALLOW_FIX}"))
        } else {
            PlanError(format!(
                "commit {rev} is not in this clone: fetch it, or pass --base"
            ))
        }
    })
}

/// The merge base of `head` and a pull request's target: its commit when the event fired if
/// the clone has it, else the target branch (`origin/<ref>`, then `<ref>`).
fn pull_request_base(
    git: &Git,
    base_ref: Option<&str>,
    base_sha: Option<&str>,
    head: &str,
) -> Result<String, PlanError> {
    let target = match (base_sha, base_ref) {
        (Some(sha), _) if git.has_commit(sha) => sha.to_string(),
        (_, Some(r)) if git.has_commit(&format!("origin/{r}")) => format!("origin/{r}"),
        (_, Some(r)) if git.has_commit(r) => r.to_string(),
        _ => {
            return Err(PlanError(format!(
                "the pull request's target branch is not in this clone; {SHALLOW_FIX}"
            )))
        }
    };
    git.merge_base(&target, head).map_err(|_| {
        PlanError(format!(
            "no merge base between {target} and {head}; {SHALLOW_FIX}"
        ))
    })
}

/// The `changed` paths (relative to the top of the work tree) that are under the config's
/// directory, made relative to it as the config's paths are.
fn config_relative(
    config: &Config,
    git: &Git,
    changed: &[String],
) -> Result<Vec<String>, PlanError> {
    let top = git.toplevel()?;
    let top = top.canonicalize().unwrap_or(top);
    let dir = config
        .dir
        .canonicalize()
        .unwrap_or_else(|_| config.dir.clone());
    let prefix = dir
        .strip_prefix(&top)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .map_err(|_| {
            PlanError(format!(
                "the config directory {} is outside the git work tree {}",
                dir.display(),
                top.display()
            ))
        })?;
    Ok(changed
        .iter()
        .filter_map(|p| {
            if prefix.is_empty() {
                Some(p.clone())
            } else {
                p.strip_prefix(&format!("{prefix}/")).map(str::to_string)
            }
        })
        .collect())
}

/// Put in `plan` the services the config-relative changed paths `rel` touch: every service
/// when a shared path changed, else those whose paths changed, less those whose sources were
/// deleted (skipped, with the reason).
fn select_changed(config: &Config, rel: &[String], plan: &mut Plan) {
    if let Some(p) = rel
        .iter()
        .find(|p| config.shared_paths.iter().any(|s| path_matches(s, p)))
    {
        plan.services = everything(config, &format!("shared path changed: {p}"));
        return;
    }
    for s in config.services.values() {
        let hits: Vec<&String> = rel
            .iter()
            .filter(|p| s.paths.iter().any(|pat| path_matches(pat, p)))
            .collect();
        if hits.is_empty() {
            continue;
        }
        if let Some(deleted) = deleted_sources(config, &s.paths) {
            plan.skipped.push(Selected {
                service: s.name.clone(),
                reason: format!("its sources were deleted ({deleted})"),
            });
            continue;
        }
        let more = if hits.len() > 1 {
            format!(" (+{} more)", hits.len() - 1)
        } else {
            String::new()
        };
        plan.services.push(Selected {
            service: s.name.clone(),
            reason: format!("changed: {}{more}", hits[0]),
        });
    }
}

/// When a service has plain (non-glob) paths and none of them exists any more: those paths,
/// joined for a message.
fn deleted_sources(config: &Config, paths: &[String]) -> Option<String> {
    let plain: Vec<&String> = paths
        .iter()
        .filter(|p| !p.contains(['*', '?', '[', '{']))
        .collect();
    if !plain.is_empty() && plain.iter().all(|p| !config.dir.join(p.as_str()).exists()) {
        Some(
            plain
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    } else {
        None
    }
}

/// Facts the tag policy needs.
#[derive(Debug, Clone, Default)]
pub struct TagFacts {
    /// Head commit id.
    pub sha: Option<String>,
    /// Head commit time (seconds).
    pub commit_time: Option<u64>,
    /// Wall-clock time (seconds), for `--timestamp now`.
    pub now: u64,
    /// Use the wall clock for `timestamp`.
    pub use_now: bool,
    /// Branch built.
    pub branch: Option<String>,
    /// The branch that gets `latest`.
    pub default_branch: String,
    /// Pull request number.
    pub pr: Option<u64>,
    /// `v*` git tags of the head commit (or the pushed tag).
    pub release: Vec<String>,
    /// Whether the head commit is on the default branch's history (checked for release builds,
    /// where no branch is known); `None`: not known (the branch is not in this clone).
    pub on_default_branch: Option<bool>,
}

/// The tag kinds understood besides literal tags.
pub const TAG_KINDS: [&str; 5] = ["sha", "timestamp", "latest", "pr", "release"];

/// Check a tag list before anything is built: kinds or valid literal tags.
pub fn validate_tags(list: &[String]) -> Result<(), PlanError> {
    for t in list {
        if TAG_KINDS.contains(&t.as_str()) {
            continue;
        }
        if !is_valid_tag(t) {
            return Err(PlanError(format!(
                "invalid tag {t:?}: use {} or a literal tag (1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-')",
                TAG_KINDS.join(", ")
            )));
        }
        crate::spec::check_image_tag(t).map_err(PlanError)?;
    }
    Ok(())
}

/// Tags from a tag list, and notes on kinds skipped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTags {
    /// The tags to write.
    pub tags: Vec<String>,
    /// Why a kind gave no tag here.
    pub notes: Vec<String>,
}

/// Whether `latest` is written: only for the default branch, or for a release tag whose commit
/// is on the default branch's history. Otherwise why not.
fn latest(f: &TagFacts) -> Result<(), String> {
    let default = &f.default_branch;
    match (&f.branch, f.pr, f.release.first(), f.on_default_branch) {
        (_, Some(_), ..) => Err("this is a pull request".into()),
        (Some(b), None, ..) if b == default => Ok(()),
        (Some(b), None, ..) => Err(format!("branch {b} is not the default branch {default}")),
        (None, None, Some(_), Some(true)) => Ok(()),
        (None, None, Some(t), Some(false)) => Err(format!(
            "release {t} is not on the history of the default branch {default}"
        )),
        (None, None, Some(t), None) => Err(format!(
            "the default branch {default} is not in this clone to check release {t} against (fetch it: actions/checkout with fetch-depth: 0)"
        )),
        (None, None, None, _) => Err(format!(
            "no branch is known here, and latest is only for the default branch {default}"
        )),
    }
}

/// Turn a tag list (kinds and literals) into tags; also returns notes on kinds skipped here.
pub fn resolve_tags(list: &[String], f: &TagFacts) -> Result<ResolvedTags, PlanError> {
    validate_tags(list)?;
    let mut tags: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for kind in list {
        match kind.as_str() {
            "sha" => {
                let sha = f
                    .sha
                    .as_deref()
                    .ok_or_else(|| PlanError("tag sha needs a git repository".into()))?;
                tags.push(sha.chars().take(7).collect());
            }
            "timestamp" => {
                let t = if f.use_now {
                    f.now
                } else {
                    f.commit_time.ok_or_else(|| {
                        PlanError(
                            "tag timestamp needs a git repository (or --timestamp now)".into(),
                        )
                    })?
                };
                tags.push(crate::spec::compact_utc(t));
            }
            "latest" => match latest(f) {
                Ok(()) => tags.push("latest".into()),
                Err(why) => notes.push(format!("latest: skipped, {why}")),
            },
            "pr" => match f.pr {
                Some(n) => tags.push(format!("pr-{n}")),
                None => notes.push("pr: skipped, not a pull request".into()),
            },
            "release" => {
                if f.release.is_empty() {
                    notes.push("release: skipped, the commit has no v-prefixed git tag".into());
                }
                tags.extend(f.release.iter().filter(|t| is_valid_tag(t)).cloned());
            }
            literal => tags.push(literal.to_string()),
        }
    }
    // Whatever the facts held (a CI variable, a git tag), what is written is a valid tag.
    for t in &tags {
        crate::spec::check_image_tag(t).map_err(|why| {
            PlanError(format!(
                "the tag list {} gave a bad tag: {why}",
                list.join(",")
            ))
        })?;
    }
    let mut seen = Vec::new();
    tags.retain(|t| {
        let new = !seen.contains(t);
        seen.push(t.clone());
        new
    });
    if tags.is_empty() {
        return Err(PlanError(format!("no tag to write: {}", notes.join("; "))));
    }
    Ok(ResolvedTags { tags, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        assert!(path_matches("src/cart/", "src/cart/a.jar"));
        assert!(path_matches("src/cart", "src/cart/x/y"));
        assert!(!path_matches("src/cart/", "src/cartography/a"));
        assert!(path_matches("ocibuild.toml", "ocibuild.toml"));
        assert!(path_matches("src/*/lib/", "src/ui/lib/x.jar"));
        assert!(path_matches("**/*.proto", "api/v1/cart.proto"));
        assert!(!path_matches("src/*/lib/", "src/ui/app/x.jar"));
        assert!(path_matches("src/with space/", "src/with space/f"));
    }

    fn facts() -> TagFacts {
        TagFacts {
            sha: Some("3f9a1c2d4e5f".into()),
            commit_time: Some(1_700_000_000),
            now: 1_800_000_000,
            use_now: false,
            branch: Some("main".into()),
            default_branch: "main".into(),
            pr: None,
            release: vec![],
            on_default_branch: None,
        }
    }

    fn list(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn tags_on_main() {
        let ResolvedTags { tags: t, notes } =
            resolve_tags(&list("sha,timestamp,latest,pr"), &facts()).unwrap();
        assert_eq!(t, ["3f9a1c2", "20231114-221320", "latest"]);
        assert_eq!(notes, ["pr: skipped, not a pull request"]);
        let ResolvedTags { tags: t, .. } = resolve_tags(
            &list("timestamp"),
            &TagFacts {
                use_now: true,
                ..facts()
            },
        )
        .unwrap();
        assert_eq!(t, ["20270115-080000"]);
    }

    #[test]
    fn tags_on_a_branch_and_a_pull_request() {
        let f = TagFacts {
            branch: Some("feature/x".into()),
            ..facts()
        };
        let ResolvedTags { tags: t, notes } = resolve_tags(&list("sha,latest"), &f).unwrap();
        assert_eq!(t, ["3f9a1c2"]);
        assert!(notes[0].contains("branch feature/x is not the default branch main"));
        let no_branch = TagFacts {
            branch: None,
            ..facts()
        };
        let ResolvedTags { tags: t, notes } =
            resolve_tags(&list("sha,latest"), &no_branch).unwrap();
        assert_eq!(t, ["3f9a1c2"], "no branch known: no latest");
        assert!(notes[0].contains("no branch is known here"), "{notes:?}");
        // A release tag: latest only when its commit is on the default branch's history.
        let release = |on: Option<bool>| TagFacts {
            release: vec!["v2.0.0".into()],
            on_default_branch: on,
            ..no_branch.clone()
        };
        let t = resolve_tags(&list("release,latest"), &release(Some(true))).unwrap();
        assert_eq!(t.tags, ["v2.0.0", "latest"]);
        let t = resolve_tags(&list("release,latest"), &release(Some(false))).unwrap();
        assert_eq!(t.tags, ["v2.0.0"]);
        assert!(
            t.notes[0].contains("not on the history of the default branch main"),
            "{:?}",
            t.notes
        );
        let t = resolve_tags(&list("release,latest"), &release(None)).unwrap();
        assert!(t.notes[0].contains("fetch-depth: 0"), "{:?}", t.notes);
        let f = TagFacts {
            pr: Some(42),
            ..facts()
        };
        let ResolvedTags { tags: t, notes } = resolve_tags(&list("sha,latest,pr"), &f).unwrap();
        assert_eq!(t, ["3f9a1c2", "pr-42"]);
        assert!(notes[0].contains("pull request"));
    }

    #[test]
    fn release_and_literal_tags_and_errors() {
        let f = TagFacts {
            release: vec!["v1.4.0".into()],
            ..facts()
        };
        let ResolvedTags { tags: t, .. } =
            resolve_tags(&list("release,stable,stable"), &f).unwrap();
        assert_eq!(t, ["v1.4.0", "stable"]);
        assert!(resolve_tags(&list("bad tag"), &f)
            .unwrap_err()
            .0
            .contains("invalid tag"));
        assert!(validate_tags(&list("-x")).is_err());
        let sig = format!("sha256-{}.sig", "0".repeat(64));
        assert!(validate_tags(&list(&sig))
            .unwrap_err()
            .0
            .contains("destroy"));
        let e = resolve_tags(&list("pr"), &facts()).unwrap_err();
        assert!(e.0.contains("no tag to write"), "{}", e.0);
    }

    #[test]
    fn context_from_github_payloads() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("event.json");
        std::fs::write(
            &p,
            r#"{"number": 7, "pull_request": {"base": {"ref": "main", "sha": "abc"}}}"#,
        )
        .unwrap();
        let path = p.to_string_lossy().into_owned();
        let vars = |k: &str| match k {
            "GITHUB_EVENT_NAME" => Some("pull_request".to_string()),
            "GITHUB_EVENT_PATH" => Some(path.clone()),
            "GITHUB_HEAD_REF" => Some("feature".to_string()),
            "GITHUB_REF" => Some("refs/pull/7/merge".to_string()),
            _ => None,
        };
        let c = CiContext::from_vars(&vars).unwrap();
        assert_eq!(
            c.trigger,
            Trigger::PullRequest {
                number: 7,
                base_ref: Some("main".into()),
                base_sha: Some("abc".into())
            }
        );
        assert_eq!(c.branch.as_deref(), Some("feature"));
        assert!(c.is_pull_request());
        std::fs::write(
            &p,
            r#"{"before": "0000000000000000000000000000000000000000", "forced": false}"#,
        )
        .unwrap();
        let vars = |k: &str| match k {
            "GITHUB_EVENT_NAME" => Some("push".to_string()),
            "GITHUB_EVENT_PATH" => Some(path.clone()),
            "GITHUB_REF" => Some("refs/heads/main".to_string()),
            _ => None,
        };
        let c = CiContext::from_vars(&vars).unwrap();
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert!(matches!(c.trigger, Trigger::Push { forced: false, .. }));
        let none = |_: &str| None;
        assert_eq!(CiContext::from_vars(&none).unwrap().trigger, Trigger::Local);
        // A payload past the bound is refused without being read whole (a sparse file).
        std::fs::File::create(&p)
            .unwrap()
            .set_len(MAX_EVENT + 1)
            .unwrap();
        let err = CiContext::from_vars(&vars).unwrap_err().0;
        assert!(
            err.contains("GITHUB_EVENT_PATH") && err.contains("larger than"),
            "{err}"
        );
    }
}

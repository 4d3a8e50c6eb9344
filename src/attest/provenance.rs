//! The provenance statement: an in-toto Statement v1 whose predicate is SLSA provenance v1,
//! about an image index and its platform manifests. In GitHub Actions it follows the GitHub
//! Actions workflow build type (`https://actions.github.io/buildtypes/workflow/v1`): the
//! workflow (repository, ref, path) as external parameters, the event and runner as internal
//! ones, the builder named by the workflow's ref, the run as the invocation. Elsewhere it says
//! so with ocibuild's own local build type. Pure: the caller reads the environment.
//!
//! Deterministic: the same inputs give the same bytes (no wall-clock time is recorded).

use crate::digest::Digest;
use serde_json::{json, Map, Value};

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type of a GitHub Actions workflow run.
pub const GITHUB_BUILD_TYPE: &str = "https://actions.github.io/buildtypes/workflow/v1";
/// The build type of a run outside GitHub Actions.
pub const LOCAL_BUILD_TYPE: &str = "https://github.com/ocibuild/ocibuild/buildtypes/local/v1";

/// The GitHub Actions run, from its environment (`GITHUB_*`, `RUNNER_ENVIRONMENT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubRun {
    /// `GITHUB_SERVER_URL`, e.g. `https://github.com`.
    pub server_url: String,
    /// `GITHUB_REPOSITORY`, `owner/name`.
    pub repository: String,
    /// `GITHUB_SHA`.
    pub sha: String,
    /// `GITHUB_REF`, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// `GITHUB_WORKFLOW_REF`, `owner/name/.github/workflows/x.yml@refs/heads/main`.
    pub workflow_ref: String,
    /// `GITHUB_RUN_ID`.
    pub run_id: String,
    /// `GITHUB_RUN_ATTEMPT`.
    pub run_attempt: String,
    /// `GITHUB_EVENT_NAME`.
    pub event_name: String,
    /// `RUNNER_ENVIRONMENT` (`github-hosted` or `self-hosted`).
    pub runner_environment: String,
    /// `GITHUB_REPOSITORY_ID`.
    pub repository_id: String,
    /// `GITHUB_REPOSITORY_OWNER_ID`.
    pub repository_owner_id: String,
}

/// Everything a statement says.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    /// Where the image is pushed, `host[:port]/path` (the subjects' name).
    pub repository: &'a str,
    /// The image index (or single manifest) first, then each platform manifest.
    pub subjects: &'a [Digest],
    /// The service built.
    pub service: &'a str,
    /// The config file, relative to the repository root where known.
    pub config_path: &'a str,
    /// The config file's digest.
    pub config_digest: &'a Digest,
    /// The git commit built (`GITHUB_SHA`, else the checkout's HEAD).
    pub commit: Option<&'a str>,
    /// The registry base, as `name` and `digest` (from the image's annotations).
    pub base: Option<(&'a str, &'a str)>,
    /// The GitHub Actions run, when there is one.
    pub github: Option<&'a GitHubRun>,
    /// `ocibuild-<version>`.
    pub tool: &'a str,
}

fn sha256_of(d: &str) -> Value {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    json!({ "sha256": hex })
}

/// The statement as canonical JSON bytes.
pub fn statement(p: &Provenance<'_>) -> Vec<u8> {
    let subject: Vec<Value> = p
        .subjects
        .iter()
        .map(|d| json!({"name": p.repository, "digest": sha256_of(d.as_str())}))
        .collect();
    let mut external = Map::new();
    external.insert("service".into(), json!(p.service));
    external.insert(
        "config".into(),
        json!({"path": p.config_path, "digest": sha256_of(p.config_digest.as_str())}),
    );
    let mut deps = Vec::new();
    let (build_type, builder, metadata, internal) = match p.github {
        Some(g) => {
            let (wf_repo, path) = workflow_parts(&g.workflow_ref);
            external.insert(
                "workflow".into(),
                json!({
                    "ref": g.git_ref,
                    "repository": format!("{}/{}", g.server_url, if wf_repo.is_empty() { &g.repository } else { wf_repo }),
                    "path": path,
                }),
            );
            let internal = json!({"github": {
                "event_name": g.event_name,
                "repository_id": g.repository_id,
                "repository_owner_id": g.repository_owner_id,
                "runner_environment": g.runner_environment,
            }});
            let source = format!("git+{}/{}@{}", g.server_url, g.repository, g.git_ref);
            let commit = p.commit.unwrap_or(&g.sha);
            deps.push(json!({"uri": source, "digest": {"gitCommit": commit}}));
            let builder = format!("{}/{}", g.server_url, g.workflow_ref);
            let invocation = format!(
                "{}/{}/actions/runs/{}/attempts/{}",
                g.server_url, g.repository, g.run_id, g.run_attempt
            );
            (
                GITHUB_BUILD_TYPE,
                builder,
                json!({"invocationId": invocation}),
                internal,
            )
        }
        None => {
            if let Some(c) = p.commit {
                deps.push(json!({"uri": "git+local", "digest": {"gitCommit": c}}));
            }
            let builder = format!("https://github.com/ocibuild/ocibuild@{}", p.tool);
            (LOCAL_BUILD_TYPE, builder, json!({}), json!({}))
        }
    };
    if let Some((name, digest)) = p.base.filter(|(_, d)| !d.is_empty()) {
        deps.push(json!({"uri": format!("docker://{name}"), "digest": sha256_of(digest)}));
    }
    let doc = json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": Value::Object(external),
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder, "version": {"ocibuild": p.tool}},
                "metadata": metadata,
            },
        },
    });
    // A json! value of strings and numbers always serializes.
    crate::spec::canonical_json(&doc).unwrap_or_default()
}

/// `owner/name/.github/workflows/x.yml@ref` -> (`owner/name`, `.github/workflows/x.yml`).
fn workflow_parts(workflow_ref: &str) -> (&str, &str) {
    let before_at = workflow_ref.split('@').next().unwrap_or("");
    match before_at.find("/.github/") {
        Some(i) => (&before_at[..i], &before_at[i + 1..]),
        None => ("", before_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github() -> GitHubRun {
        GitHubRun {
            server_url: "https://github.com".into(),
            repository: "acme/retail".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            git_ref: "refs/heads/main".into(),
            workflow_ref: "acme/retail/.github/workflows/images.yml@refs/heads/main".into(),
            run_id: "42".into(),
            run_attempt: "2".into(),
            event_name: "push".into(),
            runner_environment: "github-hosted".into(),
            repository_id: "7".into(),
            repository_owner_id: "8".into(),
        }
    }

    #[test]
    fn a_github_run_follows_the_workflow_build_type() {
        let (index, m1) = (Digest::of(b"index"), Digest::of(b"m1"));
        let config = Digest::of(b"toml");
        let g = github();
        let p = Provenance {
            repository: "registry.test/retail-store-cart",
            subjects: &[index.clone(), m1.clone()],
            service: "cart",
            config_path: "ocibuild.toml",
            config_digest: &config,
            commit: None,
            base: Some(("registry.test/base:1", "sha256:abcd")),
            github: Some(&g),
            tool: "ocibuild-0.1.0",
        };
        let bytes = statement(&p);
        assert_eq!(bytes, statement(&p), "deterministic");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        assert_eq!(v["subject"][0]["digest"]["sha256"], index.hex());
        assert_eq!(v["subject"][1]["digest"]["sha256"], m1.hex());
        let def = &v["predicate"]["buildDefinition"];
        assert_eq!(def["buildType"], GITHUB_BUILD_TYPE);
        assert_eq!(
            def["externalParameters"]["workflow"]["path"],
            ".github/workflows/images.yml"
        );
        assert_eq!(
            def["externalParameters"]["workflow"]["repository"],
            "https://github.com/acme/retail"
        );
        assert_eq!(def["externalParameters"]["service"], "cart");
        assert_eq!(
            def["externalParameters"]["config"]["digest"]["sha256"],
            config.hex()
        );
        assert_eq!(def["internalParameters"]["github"]["event_name"], "push");
        assert_eq!(
            def["resolvedDependencies"][0]["uri"],
            "git+https://github.com/acme/retail@refs/heads/main"
        );
        assert_eq!(def["resolvedDependencies"][0]["digest"]["gitCommit"], g.sha);
        assert_eq!(def["resolvedDependencies"][1]["digest"]["sha256"], "abcd");
        let run = &v["predicate"]["runDetails"];
        assert_eq!(
            run["builder"]["id"],
            "https://github.com/acme/retail/.github/workflows/images.yml@refs/heads/main"
        );
        assert_eq!(
            run["metadata"]["invocationId"],
            "https://github.com/acme/retail/actions/runs/42/attempts/2"
        );
    }

    #[test]
    fn outside_github_the_local_build_type_and_the_checkout_commit() {
        let d = Digest::of(b"i");
        let p = Provenance {
            repository: "r/x",
            subjects: std::slice::from_ref(&d),
            service: "x",
            config_path: "ocibuild.toml",
            config_digest: &d,
            commit: Some("abc"),
            base: None,
            github: None,
            tool: "ocibuild-0.1.0",
        };
        let v: Value = serde_json::from_slice(&statement(&p)).unwrap();
        let def = &v["predicate"]["buildDefinition"];
        assert_eq!(def["buildType"], LOCAL_BUILD_TYPE);
        assert_eq!(def["resolvedDependencies"][0]["digest"]["gitCommit"], "abc");
        assert_eq!(def["resolvedDependencies"].as_array().unwrap().len(), 1);
    }
}

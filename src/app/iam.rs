//! `ocibuild iam-policy`: the minimal IAM policy for the config's repositories (push) and the
//! ECR repositories of its registry bases (read).

use super::{access, AppError, Env, Event, Events};
use crate::config::Encryption;
use crate::config::{parse_ecr_host, BaseRef, Config};
use crate::ecr::{iam, trust};
use std::path::PathBuf;

/// Which policy to write.
#[derive(Debug, Clone)]
pub struct IamRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// The policy of a pull-request role: read the layer cache and the bases, nothing else.
    pub pull_request: bool,
    /// Instead of the permissions, the role's trust policy for GitHub Actions' OIDC tokens
    /// from `github:OWNER/REPO[:REF]`.
    pub trust: Option<String>,
}

/// The policy, and whether the region or account had to be written as `*`.
#[derive(Debug, Clone)]
pub struct IamPolicy {
    /// The policy document.
    pub document: serde_json::Value,
    /// The region or account is unknown (written as `*`).
    pub wildcard: bool,
}

/// Work out the policy.
pub fn policy(req: &IamRequest, env: Env<'_>, events: Events<'_>) -> Result<IamPolicy, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    let registry = access::destination(&config, req.registry.as_deref(), false)?;
    let region = registry
        .ecr_region()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"));
    let account = registry.ecr_registry_id();
    let wildcard = region.is_none() || account.is_none();
    if wildcard {
        events(Event::Note("region or account unknown (use an ECR host, or region / registry_id in [registry]): written as *".into()));
    }
    let region = region.unwrap_or_else(|| "*".into());
    let partition = iam::partition(&region);
    if let Some(spec) = &req.trust {
        let document = trust_document(&config, spec, req.pull_request, partition, account)?;
        let sub = &document["Statement"][0]["Condition"];
        if let Some(wild) = sub["StringLike"]["token.actions.githubusercontent.com:sub"].as_str() {
            events(Event::Warning(format!(
                "the trust policy takes any ref matching {wild}: a push to any such branch or tag can assume this role; name one branch (github:OWNER/REPO:main) for a role that pushes"
            )));
        }
        events(Event::Note(format!(
            "trusting GitHub OIDC tokens whose subject is {} (the default branch is [ci] default_branch in {}; name another with github:OWNER/REPO:REF)",
            sub["StringEquals"]["token.actions.githubusercontent.com:sub"]
                .as_str()
                .or(sub["StringLike"]["token.actions.githubusercontent.com:sub"].as_str())
                .unwrap_or("?"),
            config.file.display()
        )));
        return Ok(IamPolicy { document, wildcard });
    }
    let services = config.select(&req.services)?;
    let account = account.unwrap_or_else(|| "*".into());
    let kms_key = match (&config.repositories.encryption, req.pull_request) {
        (Encryption::Kms(key), false) => Some(iam::kms_key_resource(
            key.as_deref(),
            partition,
            &region,
            &account,
        )),
        _ => None,
    };
    let scope = iam::PolicyScope {
        partition: partition.to_string(),
        account,
        kms_key,
        region,
        repositories: services
            .iter()
            .map(|s| registry.repository_path(&s.repository))
            .collect(),
        base_repositories: ecr_bases(&services),
        cache_repository: config
            .cache
            .registry
            .then(|| registry.repository_path(&config.cache.repository)),
        read_only: req.pull_request,
    };
    Ok(IamPolicy {
        document: iam::policy(&scope),
        wildcard,
    })
}

/// The ARNs of the services' base images kept in ECR: read to build (manifests, configs) and
/// to mount or copy layers.
fn ecr_bases(services: &[&crate::config::Service]) -> Vec<String> {
    services
        .iter()
        .filter_map(|s| match &s.base {
            BaseRef::Registry(r) => parse_ecr_host(&r.host)
                .map(|h| iam::repository_arn(&h.region, &h.account, &r.repository)),
            _ => None,
        })
        .collect()
}

/// The role's trust policy for GitHub's OIDC tokens of `spec` (`github:OWNER/REPO[:REF]`).
fn trust_document(
    config: &Config,
    spec: &str,
    pull_request: bool,
    partition: &str,
    account: Option<String>,
) -> Result<serde_json::Value, AppError> {
    let sub = trust::github_subject(spec, &config.default_branch, pull_request)
        .map_err(AppError::Usage)?;
    let Some(account) = account else {
        return Err(AppError::Usage(
            "--trust needs the AWS account (the OIDC provider is the account's): use an ECR registry host or registry_id in [registry]".into(),
        ));
    };
    Ok(trust::trust_policy(partition, &account, &sub))
}

//! The trust policy of the IAM role a GitHub Actions workflow assumes through OIDC: the
//! federated principal is the account's `token.actions.githubusercontent.com` provider; the
//! token's audience must be `sts.amazonaws.com` and its subject the repository and ref (or
//! pull request) that may assume the role, as GitHub documents the `sub` claim. Pure.

use serde_json::{json, Value};

/// GitHub's OIDC issuer host.
const ISSUER: &str = "token.actions.githubusercontent.com";

/// The `sub` claim `spec` (`github:OWNER/REPO[:REF]`) allows: a pull request's
/// (`repo:O/R:pull_request`) for `pull_request`, else a ref's (`repo:O/R:ref:refs/heads/B`;
/// the default branch when no ref is given; a bare name is a branch; `environment:NAME` an
/// environment). `*` is kept as a wildcard.
pub fn github_subject(
    spec: &str,
    default_branch: &str,
    pull_request: bool,
) -> Result<String, String> {
    let usage = || {
        format!("--trust {spec:?}: write github:OWNER/REPO, or github:OWNER/REPO:REF (a branch, refs/heads/..., refs/tags/..., environment:NAME)")
    };
    let rest = spec.strip_prefix("github:").ok_or_else(usage)?;
    let (repo, reference) = match rest.split_once(':') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (owner, name) = repo.split_once('/').ok_or_else(usage)?;
    let valid = |s: &str| {
        s.chars().any(|c| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !valid(owner) || !valid(name) {
        return Err(usage());
    }
    // A ref has no `:` (git forbids it); only `environment:NAME` carries one, and NAME not.
    let bad_ref = |r: &str| {
        let body = r.strip_prefix("environment:").unwrap_or(r);
        body.is_empty()
            || body.contains(':')
            || body.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if reference.is_some_and(bad_ref) {
        return Err(usage());
    }
    let claim = match (reference, pull_request) {
        (Some(_), true) => {
            return Err(format!(
                "--trust {spec:?} names a ref, but a pull-request role is trusted by pull requests: write github:{owner}/{name}"
            ))
        }
        (None, true) => "pull_request".to_string(),
        (None, false) => format!("ref:refs/heads/{default_branch}"),
        (Some(r), false) if r.starts_with("refs/") || r.starts_with("environment:") => {
            if r.starts_with("refs/") {
                format!("ref:{r}")
            } else {
                r.to_string()
            }
        }
        (Some(branch), false) => format!("ref:refs/heads/{branch}"),
    };
    Ok(format!("repo:{owner}/{name}:{claim}"))
}

/// The trust policy letting tokens with subject `sub` from GitHub's OIDC provider in `account`
/// assume the role.
pub fn trust_policy(partition: &str, account: &str, sub: &str) -> Value {
    let test = if sub.contains('*') {
        "StringLike"
    } else {
        "StringEquals"
    };
    let mut condition = json!({
        "StringEquals": {format!("{ISSUER}:aud"): "sts.amazonaws.com"}
    });
    condition[test][format!("{ISSUER}:sub")] = json!(sub);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "GitHubActionsOidc",
            "Effect": "Allow",
            "Principal": {
                "Federated": format!("arn:{partition}:iam::{account}:oidc-provider/{ISSUER}")
            },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_githubs_claim_format() {
        let s = |spec, pr| github_subject(spec, "main", pr);
        assert_eq!(
            s("github:acme/shop", false).unwrap(),
            "repo:acme/shop:ref:refs/heads/main"
        );
        assert_eq!(
            s("github:acme/shop:dev", false).unwrap(),
            "repo:acme/shop:ref:refs/heads/dev"
        );
        assert_eq!(
            s("github:acme/shop:refs/tags/v*", false).unwrap(),
            "repo:acme/shop:ref:refs/tags/v*"
        );
        assert_eq!(
            s("github:acme/shop:environment:prod", false).unwrap(),
            "repo:acme/shop:environment:prod"
        );
        assert_eq!(
            s("github:acme/shop", true).unwrap(),
            "repo:acme/shop:pull_request"
        );
        for bad in [
            "acme/shop",
            "github:acme",
            "github:/shop",
            "github:ac me/shop",
            "github:acme/shop:",
            "github:acme/shop:environment:",
            "github:acme/shop:main:extra",
            "github:acme/shop:ref:refs/heads/main",
            "github:acme/shop:environment:a:b",
            "github:../..:x",
        ] {
            assert!(s(bad, false).is_err(), "{bad}");
        }
        assert!(s("github:acme/shop:main", true)
            .unwrap_err()
            .contains("pull-request role"));
    }

    #[test]
    fn the_trust_policy_pins_audience_and_subject() {
        let p = trust_policy("aws", "123456789012", "repo:acme/shop:ref:refs/heads/main");
        let st = &p["Statement"][0];
        assert_eq!(
            st["Principal"]["Federated"],
            "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
        );
        assert_eq!(st["Action"], "sts:AssumeRoleWithWebIdentity");
        let eq = &st["Condition"]["StringEquals"];
        assert_eq!(
            eq["token.actions.githubusercontent.com:aud"],
            "sts.amazonaws.com"
        );
        assert_eq!(
            eq["token.actions.githubusercontent.com:sub"],
            "repo:acme/shop:ref:refs/heads/main"
        );
        assert!(st["Condition"].get("StringLike").is_none());
        let wild = trust_policy("aws", "1", "repo:acme/shop:ref:refs/tags/v*");
        assert_eq!(
            wild["Statement"][0]["Condition"]["StringLike"]
                ["token.actions.githubusercontent.com:sub"],
            "repo:acme/shop:ref:refs/tags/v*"
        );
    }
}

//! The minimal IAM policy ocibuild needs for a config: push (and mount, only when several
//! repositories share blobs; attaching SBOMs, provenance and signatures needs nothing more),
//! repository management, scan reading and `verify`'s reads, scoped to the
//! configured repositories' ARNs, plus reading the base images kept in ECR (manifests and
//! configs to build, layers to mount or copy) and reading and writing the registry layer
//! cache. A pull-request role's policy (`read_only`) only reads: the layer cache and the
//! bases, so a pull request can never write the cache others trust. Pure: nothing is called.

use serde_json::{json, Value};

/// What the policy covers.
#[derive(Debug, Clone)]
pub struct PolicyScope {
    /// AWS partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
    /// Region, or `*`.
    pub region: String,
    /// Account id, or `*`.
    pub account: String,
    /// Full repository names.
    pub repositories: Vec<String>,
    /// ARNs of ECR repositories holding base images (read only).
    pub base_repositories: Vec<String>,
    /// The registry layer cache's repository (full name), when the cache is used.
    pub cache_repository: Option<String>,
    /// The policy of a role that only builds (pull requests): reads, nothing else.
    pub read_only: bool,
    /// The KMS key resource (an ARN, or a `key/*` pattern) when repositories are created
    /// with `encryption = "KMS"`.
    pub kms_key: Option<String>,
}

/// Reading a repository's images: manifests and layers.
const READ_ACTIONS: [&str; 3] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// The partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The policy document.
pub fn policy(scope: &PolicyScope) -> Value {
    if scope.read_only {
        return read_only_policy(scope);
    }
    let mut statements = repository_statements(scope);
    statements.extend(base_images_statement(scope));
    statements.extend(cache_statement(scope, true));
    statements.extend(kms_statement(scope));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Login, then what every command does to the configured repositories.
fn repository_statements(scope: &PolicyScope) -> Vec<Value> {
    let arns = repository_arns(scope);
    let doc = json!([
            {
                "Sid": "OcibuildRegistryLogin",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*"
            },
            {
                "Sid": "OcibuildPush",
                "Effect": "Allow",
                "Action": push_actions(scope),
                "Resource": arns
            },
            {
                "Sid": "OcibuildRepositories",
                "Effect": "Allow",
                // `repos ensure`, including its lifecycle preview check.
                "Action": [
                    "ecr:CreateRepository",
                    "ecr:DescribeRepositories",
                    "ecr:GetLifecyclePolicy",
                    "ecr:GetLifecyclePolicyPreview",
                    "ecr:ListTagsForResource",
                    "ecr:PutImageScanningConfiguration",
                    "ecr:PutImageTagMutability",
                    "ecr:PutLifecyclePolicy",
                    "ecr:StartLifecyclePolicyPreview",
                    "ecr:TagResource"
                ],
                "Resource": arns
            },
            {
                "Sid": "OcibuildScanFindings",
                "Effect": "Allow",
                "Action": [
                    "ecr:DescribeImageScanFindings",
                    "ecr:DescribeImages",
                    "ecr:StartImageScan"
                ],
                "Resource": arns
            },
            {
                // `verify`, `images` and the source side of `copy`: image lists and details,
                // manifests, referrers (ListImageReferrers needs BatchGetImage), signature
                // payloads and blobs. `tag` and attaching need only the push actions
                // (PutImage; BatchGetImage to read what a tag names).
                "Sid": "OcibuildRead",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:DescribeImageScanFindings",
                    "ecr:DescribeImages",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:ListImages"
                ],
                "Resource": arns
            }
    ]);
    doc.as_array().cloned().unwrap_or_default()
}

/// Creating a repository encrypted with a KMS key: ECR checks the key and creates grants on
/// it (then pushes and pulls go through those grants). Only through ECR in this region.
fn kms_statement(scope: &PolicyScope) -> Option<Value> {
    let key = scope.kms_key.as_ref()?;
    // An unknown region is a wildcard, which only StringLike reads as one.
    let test = if scope.region.contains('*') {
        "StringLike"
    } else {
        "StringEquals"
    };
    let mut condition = json!({});
    condition[test] = json!({"kms:ViaService": format!("ecr.{}.amazonaws.com", scope.region)});
    Some(json!({
        "Sid": "OcibuildKmsKey",
        "Effect": "Allow",
        "Action": ["kms:CreateGrant", "kms:DescribeKey", "kms:RetireGrant"],
        "Resource": [key],
        "Condition": condition
    }))
}

/// The key resource for `key` (an ARN, a key id, or none: the AWS managed key) in `scope`'s
/// region and account: an ARN as given, else the account's keys (`key/*`), which the
/// statement's `kms:ViaService` condition limits to ECR's use.
pub fn kms_key_resource(key: Option<&str>, partition: &str, region: &str, account: &str) -> String {
    match key {
        // IAM checks grants against the key's ARN, never an alias's.
        Some(k) if k.starts_with("arn:") && !k.contains(":alias/") => k.to_string(),
        Some(k) if !k.starts_with("alias/") && !k.starts_with("arn:") => {
            format!("arn:{partition}:kms:{region}:{account}:key/{k}")
        }
        _ => format!("arn:{partition}:kms:{region}:{account}:key/*"),
    }
}

/// The policy of a role that builds without pushing (pull requests): log in, read the base
/// images and the layer cache. Nothing it does can write.
fn read_only_policy(scope: &PolicyScope) -> Value {
    let mut statements = vec![json!({
        "Sid": "OcibuildRegistryLogin",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": "*"
    })];
    statements.extend(base_images_statement(scope));
    statements.extend(cache_statement(scope, false));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The layer cache's statement: read (a build takes layers from it, a push mounts them from
/// it) and, with `write`, write (documents, and blobs mounted in from the services'
/// repositories) and set up (`repos ensure`).
fn cache_statement(scope: &PolicyScope, write: bool) -> Option<Value> {
    let repo = scope.cache_repository.as_ref()?;
    let arn = format!(
        "arn:{}:ecr:{}:{}:repository/{repo}",
        scope.partition, scope.region, scope.account
    );
    let mut actions: Vec<&str> = READ_ACTIONS.to_vec();
    if write {
        actions.extend([
            "ecr:CompleteLayerUpload",
            "ecr:CreateRepository",
            "ecr:DescribeRepositories",
            "ecr:GetLifecyclePolicy",
            "ecr:InitiateLayerUpload",
            "ecr:ListTagsForResource",
            "ecr:PutImage",
            "ecr:PutImageScanningConfiguration",
            "ecr:PutImageTagMutability",
            "ecr:PutLifecyclePolicy",
            "ecr:TagResource",
            "ecr:UploadLayerPart",
        ]);
        actions.sort_unstable();
    }
    Some(json!({
        "Sid": if write { "OcibuildLayerCache" } else { "OcibuildLayerCacheRead" },
        "Effect": "Allow",
        "Action": actions,
        "Resource": [arn]
    }))
}

/// The ARNs of the configured repositories.
fn repository_arns(scope: &PolicyScope) -> Vec<String> {
    scope
        .repositories
        .iter()
        .map(|r| {
            format!(
                "arn:{}:ecr:{}:{}:repository/{r}",
                scope.partition, scope.region, scope.account
            )
        })
        .collect()
}

/// The actions a push needs, sorted; reading layers only when several repositories share
/// blobs (mounting a blob from a sibling repository reads it there).
fn push_actions(scope: &PolicyScope) -> Vec<&'static str> {
    let mut push = vec![
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:CompleteLayerUpload",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
    ];
    // Mounting reads the blob in the repository it comes from: a sibling, or the cache
    // (whose documents' blobs are mounted in from the services' repositories).
    if scope.repositories.len() > 1 || scope.cache_repository.is_some() {
        push.push("ecr:GetDownloadUrlForLayer");
        push.sort_unstable();
    }
    push
}

/// The statement for reading base images kept in ECR, if there are any.
fn base_images_statement(scope: &PolicyScope) -> Option<Value> {
    if scope.base_repositories.is_empty() {
        return None;
    }
    let mut bases = scope.base_repositories.clone();
    bases.sort();
    bases.dedup();
    Some(json!({
        "Sid": "OcibuildBaseImages",
        "Effect": "Allow",
        "Action": READ_ACTIONS,
        "Resource": bases
    }))
}

/// The ARN of repository `repository` in `region` of `account`.
pub fn repository_arn(region: &str, account: &str, repository: &str) -> String {
    format!(
        "arn:{}:ecr:{region}:{account}:repository/{repository}",
        partition(region)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_to_repository_arns_with_mount_only_when_shared() {
        let scope = PolicyScope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            repositories: vec!["retail-store-cart".into(), "retail-store-ui".into()],
            base_repositories: vec![],
            cache_repository: None,
            read_only: false,
            kms_key: None,
        };
        let p = policy(&scope);
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st[0]["Resource"], "*");
        assert_eq!(st[0]["Action"], json!(["ecr:GetAuthorizationToken"]));
        for s in &st[1..] {
            assert_eq!(
                s["Resource"],
                json!([
                    "arn:aws:ecr:us-east-1:123456789012:repository/retail-store-cart",
                    "arn:aws:ecr:us-east-1:123456789012:repository/retail-store-ui"
                ])
            );
        }
        assert!(st[1]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("ecr:GetDownloadUrlForLayer")));
        let one = PolicyScope {
            repositories: vec!["retail-store-cart".into()],
            ..scope
        };
        assert!(!policy(&one)["Statement"][1]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("ecr:GetDownloadUrlForLayer")));
        assert_eq!(st.len(), 5, "no base statement without ECR bases");
        assert_eq!(st[4]["Sid"], "OcibuildRead");
        assert_eq!(
            st[4]["Action"],
            json!([
                "ecr:BatchGetImage",
                "ecr:DescribeImageScanFindings",
                "ecr:DescribeImages",
                "ecr:GetDownloadUrlForLayer",
                "ecr:ListImages"
            ])
        );
        assert!(
            !p.to_string().contains("kms:"),
            "no KMS without KMS encryption"
        );
        let with_base = PolicyScope {
            base_repositories: vec![repository_arn("eu-west-1", "210987654321", "base/jre")],
            ..one
        };
        let p = policy(&with_base);
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st[5]["Sid"], "OcibuildBaseImages");
        assert_eq!(
            st[5]["Resource"],
            json!(["arn:aws:ecr:eu-west-1:210987654321:repository/base/jre"])
        );
        assert!(st[5]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("ecr:GetDownloadUrlForLayer")));
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn the_layer_cache_is_written_by_the_push_role_and_only_read_by_a_pull_request_role() {
        let scope = PolicyScope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            repositories: vec!["retail-store-cart".into()],
            base_repositories: vec![repository_arn("us-east-1", "123456789012", "base/jre")],
            cache_repository: Some("ocibuild-cache".into()),
            read_only: false,
            kms_key: Some(kms_key_resource(None, "aws", "us-east-1", "123456789012")),
        };
        let cache_arn = json!(["arn:aws:ecr:us-east-1:123456789012:repository/ocibuild-cache"]);
        let p = policy(&scope);
        let st = p["Statement"].as_array().unwrap();
        let cache = st
            .iter()
            .find(|s| s["Sid"] == "OcibuildLayerCache")
            .unwrap();
        assert_eq!(cache["Resource"], cache_arn);
        let actions = cache["Action"].as_array().unwrap();
        for a in [
            "ecr:PutImage",
            "ecr:BatchGetImage",
            "ecr:PutLifecyclePolicy",
        ] {
            assert!(actions.contains(&json!(a)), "{a}");
        }
        // One repository, but blobs are mounted into the cache from it.
        assert!(st[1]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("ecr:GetDownloadUrlForLayer")));

        let pr = policy(&PolicyScope {
            read_only: true,
            ..scope
        });
        let st = pr["Statement"].as_array().unwrap();
        let sids: Vec<&str> = st.iter().map(|s| s["Sid"].as_str().unwrap()).collect();
        assert_eq!(
            sids,
            [
                "OcibuildRegistryLogin",
                "OcibuildBaseImages",
                "OcibuildLayerCacheRead"
            ]
        );
        assert_eq!(st[2]["Resource"], cache_arn);
        let text = pr.to_string();
        for write in [
            "kms:",
            "PutImage",
            "UploadLayerPart",
            "CreateRepository",
            "InitiateLayerUpload",
        ] {
            assert!(!text.contains(write), "a pull-request role may not {write}");
        }
    }

    #[test]
    fn a_kms_key_is_granted_to_ecr_only_and_named_as_precisely_as_the_config_does() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab";
        assert_eq!(kms_key_resource(Some(arn), "aws", "eu-west-1", "1"), arn);
        assert_eq!(
            kms_key_resource(Some("1234abcd-12ab"), "aws", "eu-west-1", "123456789012"),
            arn
        );
        for unnamed in [
            None,
            Some("alias/ecr"),
            Some("arn:aws:kms:eu-west-1:123456789012:alias/ecr"),
        ] {
            assert_eq!(
                kms_key_resource(unnamed, "aws", "eu-west-1", "123456789012"),
                "arn:aws:kms:eu-west-1:123456789012:key/*"
            );
        }
        let scope = PolicyScope {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            repositories: vec!["retail-store-cart".into()],
            base_repositories: vec![],
            cache_repository: None,
            read_only: false,
            kms_key: Some(arn.into()),
        };
        let p = policy(&scope);
        let kms = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "OcibuildKmsKey")
            .unwrap();
        assert_eq!(kms["Resource"], json!([arn]));
        assert_eq!(
            kms["Condition"]["StringEquals"]["kms:ViaService"],
            "ecr.eu-west-1.amazonaws.com"
        );
        let anywhere = policy(&PolicyScope {
            region: "*".into(),
            ..scope
        });
        let kms = anywhere["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "OcibuildKmsKey")
            .unwrap()
            .clone();
        assert_eq!(
            kms["Condition"]["StringLike"]["kms:ViaService"],
            "ecr.*.amazonaws.com"
        );
    }

    /// Every ECR API call this module makes, by its action name: the snake_case SDK methods
    /// (`.describe_images()`) found in the source of every file of the module.
    fn sdk_actions() -> std::collections::BTreeSet<String> {
        const PREFIXES: [&str; 13] = [
            "batch", "create", "describe", "get", "list", "put", "start", "tag", "untag", "delete",
            "initiate", "complete", "upload",
        ];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ecr");
        let sources: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        let mut out = std::collections::BTreeSet::new();
        for src in &sources {
            for call in src.split('.').skip(1) {
                let Some(name) = call
                    .strip_suffix("()")
                    .or_else(|| call.split_once("()").map(|c| c.0))
                else {
                    continue;
                };
                let first = name.split('_').next().unwrap_or("");
                if !name.contains('_') || !PREFIXES.contains(&first) {
                    continue;
                }
                if !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    continue;
                }
                let pascal: String = name
                    .split('_')
                    .map(|w| w[..1].to_uppercase() + &w[1..])
                    .collect();
                out.insert(format!("ecr:{pascal}"));
            }
        }
        out
    }

    #[test]
    fn the_push_role_may_make_every_ecr_call_ocibuild_makes() {
        let scope = PolicyScope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            repositories: vec!["retail-store-cart".into()],
            base_repositories: vec![],
            cache_repository: None,
            read_only: false,
            kms_key: None,
        };
        let text = policy(&scope).to_string();
        let calls = sdk_actions();
        assert!(calls.contains("ecr:GetAuthorizationToken"), "{calls:?}");
        assert!(calls.contains("ecr:PutLifecyclePolicy"), "{calls:?}");
        for action in &calls {
            assert!(
                text.contains(&format!("\"{action}\"")),
                "{action} is not in the policy"
            );
        }
    }
}

//! Amazon ECR through the AWS SDK for Rust: the only module that imports `aws-config` and
//! `aws-sdk-ecr`. It supplies registry credentials (`GetAuthorizationToken`, through the
//! standard AWS credential chain, endpoint overrides included) in the registry module's terms,
//! manages repositories (`repos`), reads scan findings (`scan`), and writes the IAM policy
//! ocibuild needs (`iam`, pure) and the role's trust policy for GitHub's OIDC tokens (`trust`,
//! pure). The registry client never depends on this module.

pub mod iam;
pub mod images;
pub mod lifecycle;
pub mod preview;
pub mod repos;
pub mod scan;
pub mod trust;

use crate::registry::auth::{Credential, CredentialSource, ExpiringCredential, Secret};
use crate::registry::error::RegistryError;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata};
use base64::Engine;
use std::time::{Duration, SystemTime};

/// An ECR call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct EcrError {
    /// The ECR operation, e.g. `GetAuthorizationToken`.
    pub operation: &'static str,
    /// What went wrong and, where possible, what to do.
    pub message: String,
    /// The service's error code, when it sent one (e.g. `RepositoryNotFoundException`).
    pub code: Option<String>,
}

/// The first line of an SDK error's text, cut at 300 characters (the rest is a debug dump
/// that may hold a whole response).
fn first_line(detail: &str) -> String {
    let line = detail.lines().next().unwrap_or("");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

impl EcrError {
    pub(crate) fn new(operation: &'static str, message: impl Into<String>) -> Self {
        EcrError {
            operation,
            message: message.into(),
            code: None,
        }
    }

    /// Turn an SDK error into a message a user can act on.
    pub(crate) fn from_sdk<E, R>(
        operation: &'static str,
        err: aws_sdk_ecr::error::SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        use aws_sdk_ecr::error::SdkError;
        let code = err.code().map(str::to_string);
        let detail = format!("{}", DisplayErrorContext(&err));
        let no_credentials =
            detail.contains("no credentials found") || detail.contains("CredentialsNotLoaded");
        let message = match (&err, code.as_deref()) {
            _ if no_credentials => "no AWS credentials found: the chain tried the environment \
                 (AWS_ACCESS_KEY_ID), profiles (AWS_PROFILE), web identity / OIDC \
                 (AWS_WEB_IDENTITY_TOKEN_FILE, as GitHub Actions sets), ECS and the instance role; \
                 configure one of them"
                .to_string(),
            (SdkError::DispatchFailure(_), _) | (SdkError::TimeoutError(_), _) => {
                // The first line says it; the rest is a debug dump.
                format!(
                    "cannot reach ECR: {}; check the network path to ECR (proxy, VPC endpoint) and the region",
                    first_line(&detail)
                )
            }
            (
                _,
                Some(
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
                    | "InvalidClientTokenId",
                ),
            ) => {
                format!("AWS credentials were refused ({}): refresh them (aws sso login, a new OIDC session) and check AWS_PROFILE", code.as_deref().unwrap_or(""))
            }
            (_, Some("AccessDeniedException")) => format!(
                "access denied: {}; grant the permissions `ocibuild iam-policy` prints",
                err.message().unwrap_or("")
            ),
            (_, Some("ThrottlingException" | "TooManyRequestsException")) => {
                format!(
                    "throttled by ECR: {}; try again later or lower --jobs",
                    err.message().unwrap_or("")
                )
            }
            (_, Some(c)) => format!("{c}: {}", err.message().unwrap_or("")),
            // No service error code: not ECR's own answer (a proxy's, an HTML page, ...).
            _ => format!(
                "ECR did not answer as ECR: {}; check the network path to ECR (proxy, VPC endpoint), the region and the AWS credentials (aws sts get-caller-identity)",
                first_line(&detail)
            ),
        };
        EcrError {
            operation,
            message,
            code,
        }
    }

    /// Whether the service said the repository does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "RepositoryNotFoundException"
                    | "LifecyclePolicyNotFoundException"
                    | "ImageNotFoundException"
                    | "ScanNotFoundException"
            )
        )
    }
}

/// A connected ECR client for one region.
#[derive(Clone, Debug)]
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    /// The region in use.
    pub region: String,
    /// The registry (account) id, when known.
    pub registry_id: Option<String>,
}

impl Ecr {
    /// Connect with the standard AWS configuration chain (environment, profiles, web
    /// identity, instance roles; `AWS_ENDPOINT_URL[_ECR]` overrides), in `region` if given.
    pub async fn connect(region: Option<&str>, registry_id: Option<&str>) -> Result<Ecr, EcrError> {
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let conf = loader.load().await;
        let region = conf
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| EcrError::new(
                "configuration",
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), a profile region, or `region` in [registry]",
            ))?;
        Ok(Ecr {
            client: aws_sdk_ecr::Client::new(&conf),
            region,
            registry_id: registry_id.map(str::to_string),
        })
    }

    /// The SDK client, for the submodules.
    pub(crate) fn sdk(&self) -> &aws_sdk_ecr::Client {
        &self.client
    }

    /// Registry credentials from `GetAuthorizationToken`, with their expiry.
    pub async fn registry_credentials(&self) -> Result<ExpiringCredential, EcrError> {
        let mut req = self.client.get_authorization_token();
        if let Some(id) = &self.registry_id {
            #[allow(deprecated)]
            {
                req = req.registry_ids(id);
            }
        }
        let out = req
            .send()
            .await
            .map_err(|e| EcrError::from_sdk("GetAuthorizationToken", e))?;
        let data = out.authorization_data().first().ok_or_else(|| {
            EcrError::new(
                "GetAuthorizationToken",
                "the answer holds no authorization data",
            )
        })?;
        let token = data
            .authorization_token()
            .ok_or_else(|| EcrError::new("GetAuthorizationToken", "the answer holds no token"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                EcrError::new(
                    "GetAuthorizationToken",
                    "the token is not base64 of user:password",
                )
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            EcrError::new("GetAuthorizationToken", "the token is not user:password")
        })?;
        let expires = data
            .expires_at()
            .and_then(|t| u64::try_from(t.secs()).ok())
            .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)));
        Ok(ExpiringCredential {
            source: CredentialSource {
                credential: Credential::Basic {
                    username: user.to_string(),
                    password: Secret(password.to_string()),
                },
                origin: format!(
                    "ECR GetAuthorizationToken (region {}, AWS credential chain)",
                    self.region
                ),
            },
            expires,
        })
    }

    /// A refresher for the registry client: a new token on demand.
    pub fn refresher(&self) -> crate::registry::client::Refresh {
        let ecr = self.clone();
        std::sync::Arc::new(move || {
            let ecr = ecr.clone();
            Box::pin(async move {
                ecr.registry_credentials().await.map_err(|e| RegistryError {
                    method: "POST".into(),
                    url: format!("ecr.{}", ecr.region),
                    status: None,
                    code: e.code.clone(),
                    message: e.to_string(),
                    retry_after: None,
                    hint: None,
                    local: false,
                })
            })
        })
    }
}

/// The SDK's HTTP client on rustls with the `ring` provider: the same TLS stack as the
/// registry client, so one crypto library is compiled (the SDK's default, aws-lc, is C code
/// that doubled the cold release build). Roots come from the system store.
fn https_client() -> aws_sdk_ecr::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

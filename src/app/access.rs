//! Which credentials each registry host gets: the one place that decides. The push destination
//! comes from `--registry` or the config's `[registry]`; ECR hosts (or `auth = "ecr"`) get
//! tokens from the AWS SDK through `ecr`; others Docker's config.json and credential helpers;
//! `auth = "anonymous"` none. Base image registries are reached through the same rule, as a
//! `registry::clients::Connect` (the config's settings for its own host, the SDK for ECR hosts,
//! Docker's config for the rest). Credentials go only to the host they are for.

use super::AppError;
use crate::config::{parse_ecr_host, AuthMode, Config, RegistryConfig, Scheme};
use crate::ecr::Ecr;
use crate::registry::auth::{self, CredentialSource};
use crate::registry::client::{RegistryClient, RetryPolicy};
use crate::registry::clients::{Clients, Connect};
use std::sync::Arc;

/// The destination registry: `arg` (with the config's other `[registry]` settings) or the
/// config's.
pub fn destination(
    config: &Config,
    arg: Option<&str>,
    insecure: bool,
) -> Result<RegistryConfig, AppError> {
    let from_config = config.registry.as_ref();
    match arg {
        Some(r) if r.trim().is_empty() => Err(AppError::Usage(
            "--registry is empty: in a workflow this usually means the variable it comes from (e.g. vars.ECR_REGISTRY) is not set; set it, or pass --registry HOST[/PREFIX]".into(),
        )),
        Some(r) => {
            let insecure = insecure || from_config.is_some_and(|c| c.insecure);
            let mut reg = RegistryConfig::parse(r, from_config.and_then(|c| c.auth), insecure)
                .map_err(AppError::Usage)?;
            if let Some(c) = from_config {
                reg.region = c.region.clone();
                reg.registry_id = c.registry_id.clone();
                reg.manifest_puts_per_second = c.manifest_puts_per_second;
            }
            Ok(reg)
        }
        None => match from_config {
            Some(c) => {
                let mut c = c.clone();
                c.insecure |= insecure;
                Ok(c)
            }
            None => Err(AppError::Usage(format!(
                "no registry: pass --registry HOST[/PREFIX] or set [registry] url in {}",
                config.file.display()
            ))),
        },
    }
}

/// A second registry named on the command line (`copy --to-registry`): the config's
/// `[registry]` settings only when it is that registry's host; otherwise its own (credentials
/// by host: the AWS SDK for an ECR host, Docker's config.json for the rest), so nothing of the
/// config's registry (auth mode, plain HTTP, region, account) goes to it.
pub fn other_registry(
    config: &Config,
    arg: &str,
    insecure: bool,
) -> Result<RegistryConfig, AppError> {
    if arg.trim().is_empty() {
        return Err(AppError::Usage(
            "the registry to copy to is empty: pass --to-registry HOST[/PREFIX]".into(),
        ));
    }
    let parsed = RegistryConfig::parse(arg, None, insecure).map_err(AppError::Usage)?;
    match &config.registry {
        Some(own) if own.host == parsed.host => destination(config, Some(arg), insecure),
        _ => Ok(parsed),
    }
}

/// Connect to ECR for `registry`, which must be an ECR registry (by host or `auth = "ecr"`).
pub async fn connect_ecr(registry: &RegistryConfig) -> Result<Ecr, AppError> {
    if registry.auth_mode() != AuthMode::Ecr {
        return Err(AppError::Usage(format!(
            "{} is not an Amazon ECR registry: use a <account>.dkr.ecr.<region>.amazonaws.com host or set auth = \"ecr\" in [registry]",
            registry.host
        )));
    }
    Ok(Ecr::connect(
        registry.ecr_region().as_deref(),
        registry.ecr_registry_id().as_deref(),
    )
    .await?)
}

/// Credentials for `host` from Docker's config.json (anonymous when there is none).
fn docker_credentials(host: &str) -> Result<CredentialSource, AppError> {
    Ok(match auth::docker_config_path() {
        Some(p) => auth::from_docker_config(host, &p)?,
        None => CredentialSource::anonymous("anonymous (no HOME or DOCKER_CONFIG)"),
    })
}

/// How a registry host is reached: the scheme written for it (always honoured), else plain
/// HTTP when `insecure` (or for a loopback host), else https.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    /// The scheme written, if any.
    pub scheme: Option<Scheme>,
    /// Plain HTTP for a host written without a scheme.
    pub insecure: bool,
}

impl Transport {
    /// How `registry` says to reach its host.
    pub fn of(registry: &RegistryConfig) -> Self {
        Transport {
            scheme: registry.scheme,
            insecure: registry.insecure,
        }
    }
}

/// A client for registry `host` with the credentials `mode` names (`ecr`: connected already,
/// required for `AuthMode::Ecr`).
pub async fn client(
    host: &str,
    mode: AuthMode,
    transport: Transport,
    ecr: Option<&Ecr>,
) -> Result<RegistryClient, AppError> {
    let retry = RetryPolicy::default();
    let Transport { scheme, insecure } = transport;
    Ok(match (mode, ecr) {
        (AuthMode::Ecr, Some(ecr)) => {
            let c = ecr.registry_credentials().await?;
            RegistryClient::new(host, scheme, insecure, c.source, retry)?
                .with_refresh(ecr.refresher(), c.expires)
        }
        (AuthMode::Ecr, None) => {
            return Err(AppError::Other(format!(
                "{host}: an ECR registry needs an ECR connection"
            )))
        }
        (AuthMode::Anonymous, _) => RegistryClient::new(
            host,
            scheme,
            insecure,
            CredentialSource::anonymous("anonymous (auth = \"anonymous\")"),
            retry,
        )?,
        (AuthMode::Docker, _) => {
            RegistryClient::new(host, scheme, insecure, docker_credentials(host)?, retry)?
        }
    })
}

/// The client for the destination `registry` (paced as its settings say).
pub async fn destination_client(
    registry: &RegistryConfig,
    ecr: Option<&Ecr>,
) -> Result<RegistryClient, AppError> {
    let mut c = client(
        &registry.host,
        registry.auth_mode(),
        Transport::of(registry),
        ecr,
    )
    .await?;
    if let Some(rate) = registry.manifest_rate() {
        c = c.with_manifest_rate(rate);
    }
    Ok(c)
}

/// How base image registries are reached: the config's `[registry]` settings for its own host,
/// the AWS SDK for ECR hosts, Docker's config.json for the rest (anonymous for public ones).
pub fn base_registries(config: &Config) -> Arc<Clients> {
    registries(config.registry.clone())
}

/// How registries are reached when `own` (if any) is reached by its settings: the AWS SDK
/// for other ECR hosts, Docker's config.json for the rest.
pub fn registries(own: Option<RegistryConfig>) -> Arc<Clients> {
    let connect: Connect = Arc::new(move |host: String| {
        let own = own.clone().filter(|r| r.host == host);
        Box::pin(async move {
            let (mode, transport, region, id) = match (&own, parse_ecr_host(&host)) {
                (Some(r), _) => (
                    r.auth_mode(),
                    Transport::of(r),
                    r.ecr_region(),
                    r.ecr_registry_id(),
                ),
                (None, Some(h)) => (
                    AuthMode::Ecr,
                    Transport::default(),
                    Some(h.region),
                    Some(h.account),
                ),
                (None, None) => (AuthMode::Docker, Transport::default(), None, None),
            };
            let ecr = match mode {
                AuthMode::Ecr => Some(
                    Ecr::connect(region.as_deref(), id.as_deref())
                        .await
                        .map_err(|e| format!("{host}: {e:#}"))?,
                ),
                _ => None,
            };
            client(&host, mode, transport, ecr.as_ref())
                .await
                .map_err(|e| format!("{host}: {e}"))
        })
    });
    Arc::new(Clients::new(connect))
}

/// The destination, connected: ECR (for an ECR registry) and the registry client.
pub struct Connected {
    /// The ECR connection, for an ECR registry.
    pub ecr: Option<Ecr>,
    /// The registry client.
    pub client: Arc<RegistryClient>,
}

impl Connected {
    /// Connect to `registry` (ECR first, for an ECR registry).
    pub fn open(
        runtime: &tokio::runtime::Runtime,
        registry: &RegistryConfig,
    ) -> Result<Self, AppError> {
        let ecr = match registry.auth_mode() {
            AuthMode::Ecr => Some(runtime.block_on(connect_ecr(registry))?),
            _ => None,
        };
        let client = runtime.block_on(destination_client(registry, ecr.as_ref()))?;
        Ok(Connected {
            ecr,
            client: Arc::new(client),
        })
    }
}

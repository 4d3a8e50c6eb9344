//! Where images are pushed: the registry (`[registry]` in the file, or `--registry`), how
//! credentials for it are found, and the recognition of ECR host names. Imports `model` (for
//! the repository name rule) and nothing outside `config`.

use super::model::is_valid_repository;
pub use crate::reference::Scheme;
use serde::Deserialize;

/// How credentials for the registry are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Docker's config.json (`auths`, `credHelpers`, `credsStore`); anonymous if none.
    Docker,
    /// No credentials.
    Anonymous,
    /// Amazon ECR through the AWS SDK.
    Ecr,
}

/// Where images are pushed: `[registry]` in the config, or `--registry`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// `host[:port]`.
    pub host: String,
    /// The scheme written before the host (`https://`, `http://`), always honoured; `None`:
    /// https, or plain HTTP when `insecure` or for a loopback host.
    pub scheme: Option<Scheme>,
    /// Repository prefix (`team` in `host/team`), without slashes at the ends.
    pub prefix: Option<String>,
    /// Credential source as configured; `None`: ECR for ECR hosts, else Docker.
    pub auth: Option<AuthMode>,
    /// Plain HTTP for a host written without a scheme (loopback hosts get it anyway).
    pub insecure: bool,
    /// AWS region for ECR (default: from the host name, else the AWS environment).
    pub region: Option<String>,
    /// ECR registry (account) id (default: from the host name, else the caller's account).
    pub registry_id: Option<String>,
    /// Most manifest PUTs per second (default: 10 for ECR, its PutImage quota; else none).
    pub manifest_puts_per_second: Option<f64>,
}

/// An ECR registry host: `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    /// 12-digit account id.
    pub account: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
}

/// Recognise an ECR registry host name.
pub fn parse_ecr_host(host: &str) -> Option<EcrHost> {
    let host = host.split(':').next()?;
    let host = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    if parts.next()? != "dkr" {
        return None;
    }
    let ecr = parts.next()?;
    if ecr != "ecr" && ecr != "ecr-fips" {
        return None;
    }
    let region = parts.next()?;
    if parts.next().is_some() || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(EcrHost {
        account: account.to_string(),
        region: region.to_string(),
    })
}

impl RegistryConfig {
    /// Parse `[http[s]://]host[:port][/prefix]`. A scheme written is kept and always
    /// honoured (`http://` also sets `insecure`).
    pub fn parse(s: &str, auth: Option<AuthMode>, insecure: bool) -> Result<Self, String> {
        let (rest, scheme, insecure) = if let Some(r) = s.strip_prefix("http://") {
            (r, Some(Scheme::Http), true)
        } else if let Some(r) = s.strip_prefix("https://") {
            (r, Some(Scheme::Https), insecure)
        } else {
            (s, None, insecure)
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, Some(p.to_string())),
            None => (rest, None),
        };
        if let Err(why) = crate::reference::check_host(host) {
            return Err(format!(
                "invalid registry {:?}: {why}; expected [https://]HOST[:PORT][/PREFIX], e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com or localhost:5000/team",
                crate::reference::without_userinfo(s)
            ));
        }
        if let Some(p) = &prefix {
            if !is_valid_repository(p) {
                return Err(format!(
                    "invalid repository prefix {p:?} in registry {s:?}: lowercase letters, digits, . _ - and /"
                ));
            }
        }
        Ok(RegistryConfig {
            host: host.to_string(),
            scheme,
            prefix,
            auth,
            insecure,
            region: None,
            registry_id: None,
            manifest_puts_per_second: None,
        })
    }

    /// The credential source in force: as configured, else ECR for ECR hosts, else Docker.
    pub fn auth_mode(&self) -> AuthMode {
        self.auth
            .unwrap_or(if parse_ecr_host(&self.host).is_some() {
                AuthMode::Ecr
            } else {
                AuthMode::Docker
            })
    }

    /// The AWS region: configured, else the one in an ECR host name.
    pub fn ecr_region(&self) -> Option<String> {
        self.region
            .clone()
            .or_else(|| parse_ecr_host(&self.host).map(|h| h.region))
    }

    /// The ECR registry id: configured, else the account in an ECR host name.
    pub fn ecr_registry_id(&self) -> Option<String> {
        self.registry_id
            .clone()
            .or_else(|| parse_ecr_host(&self.host).map(|h| h.account))
    }

    /// Manifest PUTs per second to stay under: configured, else 10 with ECR.
    pub fn manifest_rate(&self) -> Option<f64> {
        self.manifest_puts_per_second
            .or((self.auth_mode() == AuthMode::Ecr).then_some(10.0))
    }

    /// The full repository path of `repository` in this registry.
    pub fn repository_path(&self, repository: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}/{repository}"),
            None => repository.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_typed_into_the_registry_is_never_echoed() {
        for input in ["alice:s3cret@127.0.0.1:5000", "https://alice:s3cret@h:1/x"] {
            let e = RegistryConfig::parse(input, None, false).unwrap_err();
            assert!(!e.contains("s3cret") && e.contains("***"), "{e}");
        }
    }

    #[test]
    fn registry_urls() {
        let r = RegistryConfig::parse("http://reg.example:8080/", None, false).unwrap();
        assert!(r.insecure && r.prefix.is_none() && r.host == "reg.example:8080");
        assert_eq!(r.auth_mode(), AuthMode::Docker);
        assert!(RegistryConfig::parse("h/UPPER", None, false).is_err());
        let ecr =
            RegistryConfig::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com", None, false)
                .unwrap();
        assert_eq!(ecr.auth_mode(), AuthMode::Ecr);
        assert_eq!(ecr.ecr_region().as_deref(), Some("eu-west-1"));
        assert_eq!(ecr.ecr_registry_id().as_deref(), Some("123456789012"));
        assert_eq!(ecr.manifest_rate(), Some(10.0));
    }

    #[test]
    fn ecr_hosts() {
        let h = parse_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            (h.account.as_str(), h.region.as_str()),
            ("123456789012", "us-east-1")
        );
        assert!(parse_ecr_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com").is_some());
        assert_eq!(
            parse_ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
                .unwrap()
                .region,
            "cn-north-1"
        );
        for bad in [
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "public.ecr.aws",
            "localhost:5000",
            "123456789012.dkr.ecr.us-east-1.example.com",
        ] {
            assert!(parse_ecr_host(bad).is_none(), "{bad}");
        }
    }
}

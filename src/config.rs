//! The `ocibuild.toml` model: parsed, validated and resolved against the file's directory.
//!
//! Parsing is strict: unknown keys, missing required keys and bad values are errors that name
//! the file, line and column (value types validate themselves while deserializing, so serde and
//! toml attach the span). Relative paths in the file are relative to the file's directory.
//! Imports `platform`, `reference` and `spec`; nothing here touches the file system beyond
//! reading the file.

use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::spec::is_valid_tag;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The config file name looked up in the current directory.
pub const DEFAULT_FILE: &str = "ocibuild.toml";

/// A config error, already formatted with file and position.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A loaded, validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, as given.
    pub file: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// Platforms to build, in order.
    pub platforms: Vec<Platform>,
    /// Services by name (sorted).
    pub services: BTreeMap<String, Service>,
    /// The registry to push to, if the file names one.
    pub registry: Option<RegistryConfig>,
    /// How every service's repository is set up (`ocibuild repos ensure`).
    pub repositories: RepositorySettings,
    /// Paths (relative to the config's directory) whose change marks every service changed.
    pub shared_paths: Vec<String>,
    /// The branch that gets the `latest` tag.
    pub default_branch: String,
    /// How layers are compressed (`[build] compression`, `compression_level`).
    pub codec: crate::layer::compress::Codec,
}

/// Encryption of a repository (fixed at creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// AES-256, keys managed by ECR.
    Aes256,
    /// AWS KMS, with this key (None: the AWS managed key).
    Kms(Option<String>),
}

/// Tag mutability of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    /// Tags can move.
    Mutable,
    /// Tags cannot move.
    Immutable,
    /// Immutable except tags matching the exclusions.
    ImmutableWithExclusion,
    /// Mutable except tags matching the exclusions.
    MutableWithExclusion,
}

impl TagMutability {
    /// The ECR API's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }
}

/// Which images a lifecycle rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    /// Images with a tag matching the rule's prefixes or patterns.
    Tagged,
    /// Images without tags.
    Untagged,
    /// All images.
    Any,
}

/// One lifecycle rule: expire what is beyond `keep_last` images, or older than `expire_after_days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    /// Evaluation order, unique; lowest first.
    pub priority: u32,
    /// Shown in the console.
    pub description: String,
    /// Which images.
    pub tag_status: TagStatus,
    /// Tag prefixes (with `tagged`).
    pub tag_prefixes: Vec<String>,
    /// Tag wildcard patterns (with `tagged`).
    pub tag_patterns: Vec<String>,
    /// Keep this many images, expire older ones (`imageCountMoreThan`).
    pub keep_last: Option<u32>,
    /// Expire images pushed more than this many days ago (`sinceImagePushed`).
    pub expire_after_days: Option<u32>,
}

/// The repository settings ocibuild enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    /// Scan images on push.
    pub scan_on_push: bool,
    /// Encryption at creation.
    pub encryption: Encryption,
    /// Tag mutability.
    pub tag_mutability: TagMutability,
    /// Tag filters for the `*_WITH_EXCLUSION` mutabilities.
    pub tag_mutability_exclusions: Vec<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
    /// Lifecycle rules.
    pub lifecycle: Vec<LifecycleRule>,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        RepositorySettings {
            scan_on_push: true,
            encryption: Encryption::Aes256,
            tag_mutability: TagMutability::Mutable,
            tag_mutability_exclusions: vec![],
            tags: BTreeMap::new(),
            lifecycle: default_lifecycle(),
        }
    }
}

/// Keep the last 10 images tagged `v*`; expire untagged images after 7 days.
pub fn default_lifecycle() -> Vec<LifecycleRule> {
    vec![
        LifecycleRule {
            priority: 1,
            description: "keep the last 10 v-tagged (release) images".into(),
            tag_status: TagStatus::Tagged,
            tag_prefixes: vec!["v".into()],
            tag_patterns: vec![],
            keep_last: Some(10),
            expire_after_days: None,
        },
        LifecycleRule {
            priority: 2,
            description: "expire untagged images after 7 days".into(),
            tag_status: TagStatus::Untagged,
            tag_prefixes: vec![],
            tag_patterns: vec![],
            keep_last: None,
            expire_after_days: Some(7),
        },
    ]
}

/// Check lifecycle rules as ECR would, before any call: unique priorities >= 1, the `any` rule
/// last, counts >= 1, exactly one of `keep_last` / `expire_after_days`, prefixes or patterns
/// only (and required) with `tagged`.
pub fn validate_lifecycle(rules: &[LifecycleRule]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        let name = format!("lifecycle rule {} (priority {})", i + 1, r.priority);
        if r.priority == 0 {
            return Err(format!("{name}: priority must be 1 or more"));
        }
        if rules[..i].iter().any(|o| o.priority == r.priority) {
            return Err(format!(
                "{name}: priority {} is used twice; priorities must be unique",
                r.priority
            ));
        }
        match (r.keep_last, r.expire_after_days) {
            (Some(0), _) | (_, Some(0)) => return Err(format!("{name}: counts must be 1 or more")),
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!(
                    "{name}: give exactly one of keep_last or expire_after_days"
                ))
            }
            _ => {}
        }
        let filtered = !r.tag_prefixes.is_empty() || !r.tag_patterns.is_empty();
        match r.tag_status {
            TagStatus::Tagged if !filtered => {
                return Err(format!(
                    "{name}: tag_status = \"tagged\" needs tag_prefixes or tag_patterns"
                ))
            }
            TagStatus::Untagged | TagStatus::Any if filtered => {
                return Err(format!(
                    "{name}: tag_prefixes and tag_patterns only go with tag_status = \"tagged\""
                ))
            }
            _ => {}
        }
        if !r.tag_prefixes.is_empty() && !r.tag_patterns.is_empty() {
            return Err(format!(
                "{name}: use tag_prefixes or tag_patterns, not both"
            ));
        }
    }
    if let Some(any) = rules.iter().find(|r| r.tag_status == TagStatus::Any) {
        if rules.iter().any(|r| r.priority > any.priority) {
            return Err(format!(
                "lifecycle rule with tag_status = \"any\" (priority {}) must have the highest priority number",
                any.priority
            ));
        }
        if rules
            .iter()
            .filter(|r| r.tag_status == TagStatus::Any)
            .count()
            > 1
        {
            return Err("only one lifecycle rule may have tag_status = \"any\"".into());
        }
    }
    Ok(())
}

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
    /// Repository prefix (`team` in `host/team`), without slashes at the ends.
    pub prefix: Option<String>,
    /// Credential source as configured; `None`: ECR for ECR hosts, else Docker.
    pub auth: Option<AuthMode>,
    /// Plain HTTP (loopback hosts always may use it).
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
    /// Parse `[http[s]://]host[:port][/prefix]`.
    pub fn parse(s: &str, auth: Option<AuthMode>, insecure: bool) -> Result<Self, String> {
        let (rest, insecure) = if let Some(r) = s.strip_prefix("http://") {
            (r, true)
        } else if let Some(r) = s.strip_prefix("https://") {
            (r, insecure)
        } else {
            (s, insecure)
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, Some(p.to_string())),
            None => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !host_ok {
            return Err(format!(
                "invalid registry {s:?}: expected HOST[:PORT][/PREFIX], e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com or localhost:5000/team"
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

/// One service: what its image holds and how it runs.
#[derive(Debug, Clone)]
pub struct Service {
    /// The service name (the key under `[services]`).
    pub name: String,
    /// Repository name in the registry, e.g. `retail-store-catalog`.
    pub repository: String,
    /// Source paths (globs) whose changes mark the service changed.
    pub paths: Vec<String>,
    /// The base image.
    pub base: BaseRef,
    /// Image entrypoint; `None` keeps the base's.
    pub entrypoint: Option<Vec<String>>,
    /// Image cmd; `None` keeps the base's, unless `entrypoint` is set, which clears it.
    pub cmd: Option<Vec<String>>,
    /// Environment, added to (and overriding) the base's.
    pub env: BTreeMap<String, String>,
    /// Working directory; `None` keeps the base's.
    pub workdir: Option<String>,
    /// User (`uid`, `uid:gid`, `name`); `None` keeps the base's.
    pub user: Option<String>,
    /// Exposed ports, normalised to `port/proto`.
    pub ports: Vec<String>,
    /// Image labels, added to (and overriding) the base's.
    pub labels: BTreeMap<String, String>,
    /// Layers on top of the base, in order.
    pub layers: Vec<LayerConfig>,
}

/// One layer of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerConfig {
    /// Source path template, relative to the config directory, as written.
    pub source: SourceTemplate,
    /// Absolute, normalised path in the image where the source lands.
    pub target: String,
    /// Owner of every entry.
    pub uid: u64,
    /// Group of every entry.
    pub gid: u64,
    /// Globs (relative to the source) left out of the layer.
    pub exclude: Vec<String>,
    /// Mode overrides: glob (relative to the source) -> permission bits.
    pub modes: Vec<(String, u32)>,
    /// Keep the files' permission bits as they are instead of normalising them.
    pub preserve_modes: bool,
    /// Keep setuid/setgid bits found on files.
    pub setid: bool,
}

impl LayerConfig {
    /// A layer from `source` to `target` with every option at its default (root-owned,
    /// normalised modes, nothing excluded).
    pub fn new(source: SourceTemplate, target: &str) -> Self {
        LayerConfig {
            source,
            target: target.to_string(),
            uid: 0,
            gid: 0,
            exclude: vec![],
            modes: vec![],
            preserve_modes: false,
            setid: false,
        }
    }
}

/// Where a service's base image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BaseRef {
    /// No base: the image holds only the service's layers.
    Scratch,
    /// A local OCI image layout; `reference` selects a tag in its `index.json`.
    Layout {
        /// As written in the config.
        spelled: String,
        /// The layout directory (resolved against the config directory when loaded).
        dir: PathBuf,
        /// Tag to select; `None`: the only image, or `latest`.
        reference: Option<String>,
    },
    /// An image in a registry, by tag or digest (resolved once per run).
    Registry(ImageRef),
}

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseRef::Scratch => f.write_str("scratch"),
            BaseRef::Layout { spelled, .. } => f.write_str(spelled),
            BaseRef::Registry(r) => f.write_str(&r.spelled),
        }
    }
}

impl TryFrom<String> for BaseRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "scratch" {
            return Ok(BaseRef::Scratch);
        }
        let Some(rest) = s.strip_prefix("oci:") else {
            return ImageRef::parse(&s).map(BaseRef::Registry).map_err(|e| {
                format!("unsupported base {s:?}: use \"scratch\", \"oci:<layout-dir>[:<tag>]\" or a registry image ({e})")
            });
        };
        let (dir, reference) = match rest.rsplit_once(':') {
            Some((d, r)) if !r.contains('/') => (d, Some(r.to_string())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(format!("base {s:?} names no layout directory"));
        }
        if let Some(r) = &reference {
            if !is_valid_tag(r) {
                return Err(format!("base {s:?}: {r:?} is not a valid tag"));
            }
        }
        Ok(BaseRef::Layout {
            spelled: s.clone(),
            dir: PathBuf::from(dir),
            reference,
        })
    }
}

/// A source path with `{os}`, `{arch}` and `{variant}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceTemplate(String);

impl TryFrom<String> for SourceTemplate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty layer source".into());
        }
        let mut rest = s.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in layer source {s:?}"))?;
            let name = &rest[open + 1..open + close];
            if !matches!(name, "os" | "arch" | "variant") {
                return Err(format!(
                    "unknown placeholder {{{name}}} in layer source {s:?}: use {{os}}, {{arch}} or {{variant}}"
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray '}}' in layer source {s:?}"));
        }
        Ok(SourceTemplate(s))
    }
}

impl SourceTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether the source is the same for every platform.
    pub fn is_platform_independent(&self) -> bool {
        !self.0.contains('{')
    }
    /// The path for one platform.
    pub fn expand(&self, platform: &Platform) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').unwrap_or(0);
            let name = &rest[open + 1..close];
            out.push_str(platform.placeholder(name).unwrap_or(""));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Normalise an absolute path in the image (`/app//x/` -> `/app/x`), refusing `.` and `..`.
pub fn normalise_image_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?} is not an absolute path in the image (start it with /)"
        ));
    }
    let mut parts = Vec::new();
    for c in s.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(format!("path {s:?} may not contain '.' or '..'"));
        }
        if c.contains('\0') {
            return Err(format!("path {s:?} contains a NUL byte"));
        }
        parts.push(c);
    }
    Ok(format!("/{}", parts.join("/")))
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct ImagePath(String);
impl TryFrom<String> for ImagePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        normalise_image_path(&s).map(ImagePath)
    }
}

struct ServiceName(String);
impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ServiceName(s))
        } else {
            Err(format!(
                "invalid service name {s:?}: use lowercase letters, digits, '-' and '_' (at most 63)"
            ))
        }
    }
}

/// Whether `s` is a valid repository name per the OCI distribution spec.
pub fn is_valid_repository(s: &str) -> bool {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut prev_sep = false;
        let mut i = 0;
        while i < b.len() {
            let ch = b[i];
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                prev_sep = false;
            } else if ch == b'.' || ch == b'_' || ch == b'-' {
                // separators: ".", "_", "__", "-+"
                if prev_sep && !(ch == b'-' && b[i - 1] == b'-' || ch == b'_' && b[i - 1] == b'_') {
                    return false;
                }
                if ch == b'_' && i >= 2 && b[i - 1] == b'_' && b[i - 2] == b'_' {
                    return false;
                }
                prev_sep = true;
            } else {
                return false;
            }
            i += 1;
        }
        true
    }
    !s.is_empty() && s.len() <= 255 && s.split('/').all(component)
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Repository(String);
impl TryFrom<String> for Repository {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if is_valid_repository(&s) {
            Ok(Repository(s))
        } else {
            Err(format!(
                "invalid repository name {s:?}: lowercase letters, digits and . _ - separators, \
                 components split by /"
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Port(String);
impl TryFrom<String> for Port {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (num, proto) = s.split_once('/').unwrap_or((&s, "tcp"));
        let valid_num = num.parse::<u16>().map(|n| n > 0).unwrap_or(false)
            && !num.starts_with('0')
            && num.bytes().all(|b| b.is_ascii_digit());
        if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(format!(
                "invalid port {s:?}: expected PORT[/tcp|udp|sctp] with PORT in 1-65535"
            ));
        }
        Ok(Port(format!("{num}/{proto}")))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct User(String);
impl TryFrom<String> for User {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let ok = parts.len() <= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            });
        if ok {
            Ok(User(s))
        } else {
            Err(format!(
                "invalid user {s:?}: expected USER or USER:GROUP (names or numeric ids)"
            ))
        }
    }
}

#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct EnvName(String);
impl TryFrom<String> for EnvName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.contains('=') || s.contains('\0') {
            Err(format!("invalid environment variable name {s:?}"))
        } else {
            Ok(EnvName(s))
        }
    }
}

#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct GlobText(String);
impl TryFrom<String> for GlobText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.starts_with('/') {
            return Err(format!(
                "invalid pattern {s:?}: give a glob relative to the layer source"
            ));
        }
        globset::Glob::new(&s)
            .map(|_| GlobText(s.clone()))
            .map_err(|e| format!("invalid glob {s:?}: {e}"))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Mode(u32);
impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        u32::from_str_radix(&s, 8)
            .ok()
            .filter(|m| *m <= 0o7777 && !s.is_empty() && s.len() <= 5)
            .map(Mode)
            .ok_or_else(|| {
                format!("invalid mode {s:?}: expected octal permission bits like \"0755\"")
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    build: RawBuild,
    #[serde(default)]
    services: BTreeMap<Spanned<String>, RawService>,
    registry: Option<RawRegistry>,
    repositories: Option<Spanned<RawRepositories>>,
    ci: Option<RawCi>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCi {
    shared_paths: Option<Vec<GlobText>>,
    default_branch: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepositories {
    scan_on_push: Option<bool>,
    encryption: Option<Spanned<String>>,
    kms_key: Option<String>,
    tag_mutability: Option<TagMutability>,
    #[serde(default)]
    tag_mutability_exclusions: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    lifecycle: Option<Vec<RawLifecycleRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycleRule {
    priority: u32,
    description: Option<String>,
    tag_status: TagStatus,
    #[serde(default)]
    tag_prefixes: Vec<String>,
    #[serde(default)]
    tag_patterns: Vec<String>,
    keep_last: Option<u32>,
    expire_after_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    url: Spanned<String>,
    auth: Option<AuthMode>,
    #[serde(default)]
    insecure: bool,
    region: Option<String>,
    registry_id: Option<String>,
    manifest_puts_per_second: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    platforms: Option<Spanned<Vec<Platform>>>,
    base: Option<BaseRef>,
    compression: Option<Spanned<String>>,
    compression_level: Option<Spanned<i64>>,
}

impl<'de> Deserialize<'de> for BaseRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BaseRef::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for SourceTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SourceTemplate::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    repository: Repository,
    paths: Option<Vec<GlobText>>,
    base: Option<BaseRef>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<EnvName, String>,
    workdir: Option<ImagePath>,
    user: Option<User>,
    #[serde(default)]
    ports: Vec<Port>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    layers: Spanned<Vec<RawLayer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    source: SourceTemplate,
    target: ImagePath,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default)]
    exclude: Vec<GlobText>,
    #[serde(default)]
    modes: BTreeMap<GlobText, Mode>,
    #[serde(default)]
    preserve_modes: bool,
    #[serde(default)]
    setid: bool,
}

/// 1-based line and column of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn at(file: &Path, src: &str, span: Option<Range<usize>>, msg: impl fmt::Display) -> ConfigError {
    match span {
        Some(r) => {
            let (l, c) = line_col(src, r.start);
            ConfigError(format!("{}:{l}:{c}: {msg}", file.display()))
        }
        None => ConfigError(format!("{}: {msg}", file.display())),
    }
}

impl Config {
    /// Find the config: `explicit` if given, else `ocibuild.toml` in the current directory.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        match explicit {
            Some(p) => Ok(p.to_path_buf()),
            None => {
                let p = PathBuf::from(DEFAULT_FILE);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(ConfigError(format!(
                        "no {DEFAULT_FILE} in the current directory: run ocibuild where it is, or pass --config FILE"
                    )))
                }
            }
        }
    }

    /// Find (see [`Config::locate`]) and load the config.
    pub fn find_and_load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load(&Self::locate(explicit)?)
    }

    /// Read and validate the config file at `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(file)
            .map_err(|e| ConfigError(format!("reading config file {}: {e}", file.display())))?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::parse(&src, file, &dir)
    }

    /// Parse and validate config text; `file` names it in errors, `dir` resolves its paths.
    pub fn parse(src: &str, file: &Path, dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawFile =
            toml::from_str(src).map_err(|e| at(file, src, e.span(), e.message().trim_end()))?;

        let platforms = match raw.build.platforms {
            None => vec![
                "linux/amd64".parse().map_err(ConfigError)?,
                "linux/arm64".parse().map_err(ConfigError)?,
            ],
            Some(p) => {
                let span = p.span();
                let list = p.into_inner();
                if list.is_empty() {
                    return Err(at(
                        file,
                        src,
                        Some(span),
                        "build.platforms is empty: name at least one platform",
                    ));
                }
                for (i, a) in list.iter().enumerate() {
                    if list[..i].contains(a) {
                        return Err(at(
                            file,
                            src,
                            Some(span),
                            format!("platform {a} is listed twice"),
                        ));
                    }
                }
                list
            }
        };
        let default_base = raw.build.base.unwrap_or(BaseRef::Scratch);
        let codec = {
            use crate::layer::compress::{Codec, DEFAULT_GZIP_LEVEL};
            let level = raw
                .build
                .compression_level
                .as_ref()
                .map(|l| (*l.get_ref(), l.span()));
            let name = raw
                .build
                .compression
                .as_ref()
                .map(|c| (c.get_ref().as_str(), c.span()));
            match name {
                None | Some(("gzip", _)) => match level {
                    None => Codec::Gzip(DEFAULT_GZIP_LEVEL),
                    Some((l @ 1..=12, _)) => Codec::Gzip(l as u32),
                    Some((_, span)) => {
                        return Err(at(
                            file,
                            src,
                            Some(span),
                            "gzip compression_level must be 1-12",
                        ))
                    }
                },
                Some(("zstd", _)) => match level {
                    None => Codec::Zstd(3),
                    Some((l @ 1..=19, _)) => Codec::Zstd(l as i32),
                    Some((_, span)) => {
                        return Err(at(
                            file,
                            src,
                            Some(span),
                            "zstd compression_level must be 1-19",
                        ))
                    }
                },
                Some((other, span)) => {
                    return Err(at(
                        file,
                        src,
                        Some(span),
                        format!(
                            "unknown compression {other:?}: use \"gzip\" (default) or \"zstd\""
                        ),
                    ))
                }
            }
        };

        let raw_services = raw.services;
        if raw_services.is_empty() {
            return Err(at(
                file,
                src,
                None,
                "no services defined: add a [services.<name>] table",
            ));
        }
        let mut services = BTreeMap::new();
        for (name, s) in raw_services {
            let name_span = name.span();
            let name = ServiceName::try_from(name.into_inner())
                .map_err(|e| at(file, src, Some(name_span), e))?
                .0;
            let layers_span = s.layers.span();
            let raw_layers = s.layers.into_inner();
            if raw_layers.is_empty() {
                return Err(at(
                    file,
                    src,
                    Some(layers_span),
                    format!("service {name} has no layers: add a [[services.{name}.layers]] table"),
                ));
            }
            let layers = raw_layers
                .into_iter()
                .map(|l| LayerConfig {
                    source: l.source,
                    target: l.target.0,
                    uid: u64::from(l.uid),
                    gid: u64::from(l.gid),
                    exclude: l.exclude.into_iter().map(|g| g.0).collect(),
                    modes: l.modes.into_iter().map(|(g, m)| (g.0, m.0)).collect(),
                    preserve_modes: l.preserve_modes,
                    setid: l.setid,
                })
                .collect();
            let base = resolve_base(s.base.unwrap_or_else(|| default_base.clone()), dir);
            services.insert(
                name.clone(),
                Service {
                    repository: s.repository.0,
                    paths: s
                        .paths
                        .map(|p| p.into_iter().map(|g| g.0).collect())
                        .unwrap_or_else(|| vec![format!("src/{name}/")]),
                    base,
                    entrypoint: s.entrypoint,
                    cmd: s.cmd,
                    env: s.env.into_iter().map(|(k, v)| (k.0, v)).collect(),
                    workdir: s.workdir.map(|w| w.0),
                    user: s.user.map(|u| u.0),
                    ports: s.ports.into_iter().map(|p| p.0).collect(),
                    labels: s.labels,
                    layers,
                    name,
                },
            );
        }
        let registry = match raw.registry {
            None => None,
            Some(r) => {
                let span = r.url.span();
                let mut reg = RegistryConfig::parse(r.url.get_ref(), r.auth, r.insecure)
                    .map_err(|e| at(file, src, Some(span), e))?;
                reg.region = r.region;
                reg.registry_id = r.registry_id;
                if let Some(rate) = r.manifest_puts_per_second {
                    if !rate.get_ref().is_finite() || *rate.get_ref() <= 0.0 {
                        return Err(at(
                            file,
                            src,
                            Some(rate.span()),
                            "manifest_puts_per_second must be more than 0",
                        ));
                    }
                    reg.manifest_puts_per_second = Some(*rate.get_ref());
                }
                Some(reg)
            }
        };
        let repositories = match raw.repositories {
            None => RepositorySettings::default(),
            Some(r) => {
                let span = r.span();
                let r = r.into_inner();
                let encryption = match r.encryption {
                    None => Encryption::Aes256,
                    Some(e) => match e.get_ref().as_str() {
                        "AES256" => Encryption::Aes256,
                        "KMS" => Encryption::Kms(r.kms_key.clone()),
                        other => {
                            return Err(at(
                                file,
                                src,
                                Some(e.span()),
                                format!("unknown encryption {other:?}: use \"AES256\" or \"KMS\""),
                            ))
                        }
                    },
                };
                if r.kms_key.is_some() && encryption == Encryption::Aes256 {
                    return Err(at(
                        file,
                        src,
                        Some(span),
                        "kms_key needs encryption = \"KMS\"",
                    ));
                }
                let tag_mutability = r.tag_mutability.unwrap_or(TagMutability::Mutable);
                let with_exclusion = matches!(
                    tag_mutability,
                    TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion
                );
                if with_exclusion == r.tag_mutability_exclusions.is_empty() {
                    return Err(at(file, src, Some(span), "tag_mutability_exclusions go with (and only with) the *_WITH_EXCLUSION tag mutabilities"));
                }
                let lifecycle = match r.lifecycle {
                    None => default_lifecycle(),
                    Some(rules) => rules
                        .into_iter()
                        .map(|l| LifecycleRule {
                            description: l
                                .description
                                .unwrap_or_else(|| format!("ocibuild rule {}", l.priority)),
                            priority: l.priority,
                            tag_status: l.tag_status,
                            tag_prefixes: l.tag_prefixes,
                            tag_patterns: l.tag_patterns,
                            keep_last: l.keep_last,
                            expire_after_days: l.expire_after_days,
                        })
                        .collect(),
                };
                validate_lifecycle(&lifecycle).map_err(|e| at(file, src, Some(span), e))?;
                RepositorySettings {
                    scan_on_push: r.scan_on_push.unwrap_or(true),
                    encryption,
                    tag_mutability,
                    tag_mutability_exclusions: r.tag_mutability_exclusions,
                    tags: r.tags,
                    lifecycle,
                }
            }
        };
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_FILE.to_string());
        let (shared_paths, default_branch) = match raw.ci {
            None => (vec![file_name], "main".to_string()),
            Some(ci) => (
                ci.shared_paths
                    .map(|p| p.into_iter().map(|g| g.0).collect())
                    .unwrap_or_else(|| vec![file_name]),
                ci.default_branch.unwrap_or_else(|| "main".into()),
            ),
        };
        Ok(Config {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
            platforms,
            services,
            registry,
            repositories,
            shared_paths,
            default_branch,
            codec,
        })
    }

    /// The services named, in the order given, or all of them when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>, ConfigError> {
        if names.is_empty() {
            return Ok(self.services.values().collect());
        }
        let mut out: Vec<&Service> = Vec::new();
        for n in names {
            let s = self.services.get(n).ok_or_else(|| {
                ConfigError(format!(
                    "unknown service {n:?}: {} defines {}",
                    self.file.display(),
                    self.services.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            if !out.iter().any(|o| o.name == s.name) {
                out.push(s);
            }
        }
        Ok(out)
    }
}

fn resolve_base(base: BaseRef, dir: &Path) -> BaseRef {
    match base {
        BaseRef::Layout {
            spelled,
            dir: d,
            reference,
        } => BaseRef::Layout {
            spelled,
            dir: dir.join(d),
            reference,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("ocibuild.toml"), Path::new("/proj"))
    }

    const MINIMAL: &str = r#"
[services.catalog]
repository = "retail-store-catalog"
[[services.catalog.layers]]
source = "src/catalog/dist/{os}-{arch}"
target = "/app"
"#;

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        let s = &c.services["catalog"];
        assert_eq!(
            c.platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64/v8"]
        );
        assert_eq!(s.paths, ["src/catalog/"]);
        assert_eq!(s.base, BaseRef::Scratch);
        assert_eq!(s.layers[0].uid, 0);
        assert!(!s.layers[0].source.is_platform_independent());
        let arm = &c.platforms[1];
        assert_eq!(
            s.layers[0].source.expand(arm),
            "src/catalog/dist/linux-arm64"
        );
    }

    #[test]
    fn full_service() {
        let src = r#"
[build]
platforms = ["linux/arm64"]
base = "oci:base-images/static"
[services.catalog]
repository = "retail-store-catalog"
base = "oci:base-images/static:v1"
entrypoint = ["/app/catalog"]
cmd = []
env = { PORT = "8080" }
workdir = "/app/"
user = "1000:1000"
ports = ["8080", "53/udp"]
labels = { "org.opencontainers.image.title" = "catalog" }
[[services.catalog.layers]]
source = "dist/{os}-{arch}{variant}"
target = "/app//bin/"
uid = 1000
gid = 1000
exclude = ["*.log"]
modes = { "bin/*" = "0750" }
"#;
        let c = parse(src).unwrap();
        let s = &c.services["catalog"];
        assert_eq!(
            s.base,
            BaseRef::Layout {
                spelled: "oci:base-images/static:v1".into(),
                dir: PathBuf::from("/proj/base-images/static"),
                reference: Some("v1".into())
            }
        );
        assert_eq!(s.ports, ["8080/tcp", "53/udp"]);
        assert_eq!(s.workdir.as_deref(), Some("/app"));
        assert_eq!(s.cmd, Some(vec![]));
        let l = &s.layers[0];
        assert_eq!(l.target, "/app/bin");
        assert_eq!(l.modes, vec![("bin/*".to_string(), 0o750)]);
        assert_eq!(l.source.expand(&c.platforms[0]), "dist/linux-arm64v8");
    }

    fn err(src: &str) -> String {
        parse(src).unwrap_err().0
    }

    #[test]
    fn registry_bases_by_tag_and_digest() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let src = format!(
            "[build]\nbase = \"public.ecr.aws/distroless/java17:nonroot\"\n{}\n[services.cart]\nrepository = \"c\"\nbase = \"127.0.0.1:5000/base/jre@{d}\"\n[[services.cart.layers]]\nsource = \"x\"\ntarget = \"/x\"\n",
            MINIMAL
        );
        let c = parse(&src).unwrap();
        let BaseRef::Registry(r) = &c.services["catalog"].base else {
            panic!("{:?}", c.services["catalog"].base)
        };
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("public.ecr.aws", "distroless/java17", Some("nonroot"))
        );
        let BaseRef::Registry(r) = &c.services["cart"].base else {
            panic!("{:?}", c.services["cart"].base)
        };
        assert_eq!(r.digest.as_ref().map(|d| d.to_string()), Some(d.clone()));
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/base/jre@{d}"));
    }

    #[test]
    fn unknown_key_has_position() {
        let e = err(&MINIMAL.replace("target = \"/app\"", "target = \"/app\"\ntargte = \"x\""));
        assert!(e.starts_with("ocibuild.toml:7:1:"), "{e}");
        assert!(e.contains("targte"), "{e}");
    }

    #[test]
    fn missing_required_key_has_position() {
        let e = err(&MINIMAL.replace("repository = \"retail-store-catalog\"\n", ""));
        assert!(e.starts_with("ocibuild.toml:"), "{e}");
        assert!(e.contains("repository"), "{e}");
        let e = err(&MINIMAL.replace("target = \"/app\"\n", ""));
        assert!(e.contains("target"), "{e}");
    }

    #[test]
    fn bad_values_have_positions() {
        let cases = [
            ("target = \"/app\"", "target = \"app\"", "absolute"),
            ("target = \"/app\"", "target = \"/app/../etc\"", "'..'"),
            ("{arch}\"", "{cpu}\"", "unknown placeholder {cpu}"),
            (
                "repository = \"retail-store-catalog\"",
                "repository = \"Retail Store\"",
                "invalid repository",
            ),
            (
                "target = \"/app\"",
                "target = \"/app\"\nmodes = { \"x\" = \"999\" }",
                "invalid mode",
            ),
            (
                "target = \"/app\"",
                "target = \"/app\"\nexclude = [\"a[\"]",
                "invalid glob",
            ),
            (
                "[services.catalog]",
                "[build]\nplatforms = [\"linux/sparc\"]\n[services.catalog]",
                "unsupported architecture",
            ),
            (
                "[services.catalog]",
                "[build]\nbase = \"alpine:3\"\n[services.catalog]",
                "names no registry host",
            ),
            (
                "target = \"/app\"",
                "target = \"/app\"\nuid = -1",
                "invalid value",
            ),
        ];
        for (from, to, want) in cases {
            let e = err(&MINIMAL.replace(from, to));
            assert!(e.contains(want), "{to}: {e}");
            let pos = e.split(':').nth(1).unwrap_or("");
            assert!(pos.parse::<usize>().is_ok(), "no line in {e}");
        }
    }

    #[test]
    fn structural_errors() {
        assert!(err("").contains("no services"));
        let e = err(&MINIMAL
            .replace("[services.catalog]", "[services.Catalog]")
            .replace("services.catalog.layers", "services.Catalog.layers"));
        assert!(e.contains("invalid service name"), "{e}");
        let e = err("[build]\nplatforms = []\n[services.a]\nrepository = \"a\"\nlayers = []\n");
        assert!(e.starts_with("ocibuild.toml:2:"), "{e}");
        let e = err("[services.a]\nrepository = \"a\"\nlayers = []\n");
        assert!(
            e.contains("has no layers") && e.starts_with("ocibuild.toml:3:"),
            "{e}"
        );
        let e = err(&format!(
            "[build]\nplatforms = [\"linux/arm64\", \"linux/arm64/v8\"]\n{MINIMAL}"
        ));
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn select_services() {
        let c = parse(&format!(
            "{MINIMAL}\n[services.cart]\nrepository = \"c\"\n[[services.cart.layers]]\nsource = \"x\"\ntarget = \"/\"\n"
        ))
        .unwrap();
        assert_eq!(c.select(&[]).unwrap().len(), 2);
        assert_eq!(c.select(&["cart".into()]).unwrap()[0].name, "cart");
        let e = c.select(&["nope".into()]).unwrap_err().0;
        assert!(
            e.contains("unknown service \"nope\"") && e.contains("cart, catalog"),
            "{e}"
        );
    }

    #[test]
    fn registry_section() {
        let c = parse(&format!(
            "[registry]\nurl = \"localhost:5000/team/x\"\nauth = \"anonymous\"\n{MINIMAL}"
        ))
        .unwrap();
        let r = c.registry.unwrap();
        assert_eq!(r.host, "localhost:5000");
        assert_eq!(r.repository_path("cart"), "team/x/cart");
        assert_eq!(r.auth_mode(), AuthMode::Anonymous);
        assert_eq!(r.manifest_rate(), None);
        assert!(!r.insecure);
        let e = err(&format!("[registry]\nurl = \"bad host/x\"\n{MINIMAL}"));
        assert!(
            e.starts_with("ocibuild.toml:2:7:") && e.contains("invalid registry"),
            "{e}"
        );
        let e = err(&format!(
            "[registry]\nurl = \"h\"\nauth = \"kerberos\"\n{MINIMAL}"
        ));
        assert!(e.contains("kerberos"), "{e}");
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
        let e = err(&format!(
            "[registry]\nurl = \"h\"\nmanifest_puts_per_second = 0.0\n{MINIMAL}"
        ));
        assert!(e.contains("more than 0"), "{e}");
    }

    #[test]
    fn repository_settings_and_lifecycle_validation() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.repositories, RepositorySettings::default());
        assert!(c.repositories.scan_on_push);
        let src = format!(
            "[repositories]\nscan_on_push = false\nencryption = \"KMS\"\nkms_key = \"arn:k\"\ntag_mutability = \"IMMUTABLE_WITH_EXCLUSION\"\ntag_mutability_exclusions = [\"latest\"]\ntags = {{ team = \"platform\" }}\n[[repositories.lifecycle]]\npriority = 1\ntag_status = \"tagged\"\ntag_prefixes = [\"v\"]\nkeep_last = 5\n[[repositories.lifecycle]]\npriority = 9\ntag_status = \"any\"\nkeep_last = 40\n{MINIMAL}"
        );
        let r = parse(&src).unwrap().repositories;
        assert_eq!(r.encryption, Encryption::Kms(Some("arn:k".into())));
        assert_eq!(r.lifecycle.len(), 2);
        let bad = |from: &str, to: &str, want: &str| {
            let e = err(&src.replace(from, to));
            assert!(
                e.contains(want) && e.starts_with("ocibuild.toml:1:1:"),
                "{to}: {e}"
            );
        };
        bad("priority = 9", "priority = 1", "used twice");
        bad("priority = 9", "priority = 0", "1 or more");
        bad("keep_last = 5", "keep_last = 0", "1 or more");
        bad(
            "keep_last = 5",
            "keep_last = 5\nexpire_after_days = 3",
            "exactly one",
        );
        bad("tag_prefixes = [\"v\"]\n", "", "needs tag_prefixes");
        bad("priority = 1\n", "priority = 10\n", "highest priority");
        bad(
            "tag_mutability_exclusions = [\"latest\"]\n",
            "",
            "tag_mutability_exclusions",
        );
        let e = err(&src.replace("\"KMS\"", "\"DES\""));
        assert!(
            e.starts_with("ocibuild.toml:3:14:") && e.contains("unknown encryption"),
            "{e}"
        );
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

    #[test]
    fn repository_names() {
        for ok in [
            "a",
            "retail-store-catalog",
            "team/app",
            "a.b",
            "a__b",
            "a---b",
        ] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "-a", "a-", "a/", "/a", "a..b", "a___b", "a b", "a:b",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
    }
}

//! The file's shape as serde reads it: the `Raw*` tables (strict: unknown keys are errors) and
//! the value types that validate themselves while deserializing, so that toml attaches the
//! position of a bad value to its error. Imports `model`, `registry`, `repositories` and
//! `platform`; turning these into a `Config` is `parse`'s job.

use super::model::{is_valid_repository, normalise_image_path, BaseRef, SourceTemplate};
use super::registry::AuthMode;
use super::repositories::{TagMutability, TagStatus};
use crate::platform::Platform;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct ImagePath(pub(super) String);
impl TryFrom<String> for ImagePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        normalise_image_path(&s).map(ImagePath)
    }
}

pub(super) struct ServiceName(pub(super) String);
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

#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Repository(pub(super) String);
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
pub(super) struct Port(pub(super) String);
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
pub(super) struct User(pub(super) String);
impl TryFrom<String> for User {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        // A numeric id must fit in 32 bits (what runtimes take); a name may not be all digits
        // past that.
        let id_ok = |p: &str| !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u32>().is_ok();
        let ok = parts.len() <= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && id_ok(p)
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            });
        if ok {
            Ok(User(s))
        } else {
            Err(format!(
                "invalid user {s:?}: expected USER or USER:GROUP (names, or numeric ids up to 4294967295)"
            ))
        }
    }
}

#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
pub(super) struct EnvName(pub(super) String);
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
pub(super) struct GlobText(pub(super) String);
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
pub(super) struct Mode(pub(super) u32);
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
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) build: RawBuild,
    #[serde(default)]
    pub(super) services: BTreeMap<Spanned<String>, RawService>,
    pub(super) registry: Option<RawRegistry>,
    pub(super) repositories: Option<Spanned<RawRepositories>>,
    pub(super) ci: Option<RawCi>,
    pub(super) attest: Option<super::attest::RawAttest>,
    pub(super) sign: Option<super::attest::RawSign>,
    pub(super) cache: Option<super::cache::RawCache>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCi {
    pub(super) shared_paths: Option<Vec<GlobText>>,
    pub(super) default_branch: Option<String>,
    pub(super) tags: Option<Vec<TagText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepositories {
    pub(super) scan_on_push: Option<bool>,
    pub(super) encryption: Option<Spanned<String>>,
    pub(super) kms_key: Option<String>,
    pub(super) tag_mutability: Option<TagMutability>,
    #[serde(default)]
    pub(super) tag_mutability_exclusions: Vec<String>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, String>,
    pub(super) lifecycle: Option<Vec<RawLifecycleRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLifecycleRule {
    pub(super) priority: u32,
    pub(super) description: Option<String>,
    pub(super) tag_status: TagStatus,
    #[serde(default)]
    pub(super) tag_prefixes: Vec<String>,
    #[serde(default)]
    pub(super) tag_patterns: Vec<String>,
    pub(super) keep_last: Option<u32>,
    pub(super) expire_after_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    pub(super) url: Spanned<String>,
    pub(super) auth: Option<AuthMode>,
    #[serde(default)]
    pub(super) insecure: bool,
    pub(super) region: Option<String>,
    pub(super) registry_id: Option<String>,
    pub(super) manifest_puts_per_second: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuild {
    pub(super) platforms: Option<Spanned<Vec<Platform>>>,
    pub(super) base: Option<BaseRef>,
    pub(super) compression: Option<Spanned<String>>,
    pub(super) compression_level: Option<Spanned<i64>>,
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
pub(super) struct RawService {
    pub(super) repository: Repository,
    pub(super) paths: Option<Vec<GlobText>>,
    pub(super) base: Option<BaseRef>,
    pub(super) entrypoint: Option<Vec<String>>,
    pub(super) cmd: Option<Vec<String>>,
    #[serde(default)]
    pub(super) env: BTreeMap<EnvName, String>,
    pub(super) workdir: Option<ImagePath>,
    pub(super) user: Option<User>,
    #[serde(default)]
    pub(super) ports: Vec<Port>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    pub(super) layers: Spanned<Vec<RawLayer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    pub(super) source: SourceTemplate,
    pub(super) target: ImagePath,
    #[serde(default)]
    pub(super) uid: u32,
    #[serde(default)]
    pub(super) gid: u32,
    #[serde(default)]
    pub(super) exclude: Vec<GlobText>,
    #[serde(default)]
    pub(super) modes: BTreeMap<GlobText, Mode>,
    #[serde(default)]
    pub(super) preserve_modes: bool,
    #[serde(default)]
    pub(super) setid: bool,
}

/// A tag kind (`sha`, `timestamp`, ...) or a literal tag: a valid tag either way.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct TagText(pub(super) String);
impl TryFrom<String> for TagText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if crate::spec::is_valid_tag(&s) {
            Ok(TagText(s))
        } else {
            Err(format!(
                "invalid tag {s:?}: use sha, timestamp, latest, pr, release or a literal tag"
            ))
        }
    }
}

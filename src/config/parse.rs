//! From the raw file to a [`Config`]: each section checked and turned into the model, one
//! function per section (`[build]`, `[services.*]` and their layers, `[registry]`,
//! `[repositories]`, `[ci]`), with errors that name the file, line and column. Imports the
//! other `config` submodules and `platform`.

use super::model::{BaseRef, Compression, LayerConfig, Service};
use super::raw::{
    RawBuild, RawCi, RawFile, RawLayer, RawLifecycleRule, RawRegistry, RawRepositories, RawService,
    ServiceName,
};
use super::registry::RegistryConfig;
use super::repositories::{
    default_lifecycle, validate_lifecycle, Encryption, LifecycleRule, RepositorySettings,
    TagMutability,
};
use super::resolve::resolve_base;
use super::{Config, ConfigError, DEFAULT_FILE};
use crate::platform::Platform;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// The config text and the file it came from, for errors that point into it.
struct Text<'a> {
    file: &'a Path,
    src: &'a str,
}

impl Text<'_> {
    /// An error at the byte range `span` of the text (`file:line:col: msg`), or about the whole
    /// file (`file: msg`).
    fn error(&self, span: Option<Range<usize>>, msg: impl fmt::Display) -> ConfigError {
        match span {
            Some(r) => {
                let (l, c) = line_col(self.src, r.start);
                ConfigError(format!("{}:{l}:{c}: {msg}", self.file.display()))
            }
            None => ConfigError(format!("{}: {msg}", self.file.display())),
        }
    }

    /// An error at the byte range `span` of the text.
    fn at(&self, span: Range<usize>, msg: impl fmt::Display) -> ConfigError {
        self.error(Some(span), msg)
    }
}

/// 1-based line and column of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    /// Parse and validate config text; `file` names it in errors, `dir` resolves its paths.
    pub fn parse(src: &str, file: &Path, dir: &Path) -> Result<Config, ConfigError> {
        let text = Text { file, src };
        let raw: RawFile =
            toml::from_str(src).map_err(|e| text.error(e.span(), e.message().trim_end()))?;
        let RawBuild {
            platforms,
            base,
            compression,
            compression_level,
        } = raw.build;
        let platforms = parse_platforms(&text, platforms)?;
        let default_base = base.unwrap_or(BaseRef::Scratch);
        let compression = parse_compression(&text, compression, compression_level)?;
        let services = parse_services(&text, raw.services, &default_base, dir)?;
        let registry = match raw.registry {
            None => None,
            Some(r) => Some(parse_registry(&text, r)?),
        };
        let repositories = match raw.repositories {
            None => RepositorySettings::default(),
            Some(r) => parse_repositories(&text, r)?,
        };
        let (shared_paths, default_branch, tag_kinds) = parse_ci(file, raw.ci);
        let attest = super::attest::settings(raw.attest, raw.sign, dir);
        let cache = super::cache::settings(raw.cache, file)?;
        Ok(Config {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
            platforms,
            services,
            registry,
            repositories,
            shared_paths,
            default_branch,
            tag_kinds,
            compression,
            attest,
            cache,
            digest: crate::digest::Digest::of(src.as_bytes()),
        })
    }
}

/// `[build] platforms`: linux/amd64 and linux/arm64 unless given; not empty, none twice.
fn parse_platforms(
    text: &Text,
    raw: Option<Spanned<Vec<Platform>>>,
) -> Result<Vec<Platform>, ConfigError> {
    let Some(p) = raw else {
        return Ok(vec![
            "linux/amd64".parse().map_err(ConfigError)?,
            "linux/arm64".parse().map_err(ConfigError)?,
        ]);
    };
    let span = p.span();
    let list = p.into_inner();
    if list.is_empty() {
        return Err(text.at(span, "build.platforms is empty: name at least one platform"));
    }
    for (i, a) in list.iter().enumerate() {
        if list[..i].contains(a) {
            return Err(text.at(span, format!("platform {a} is listed twice")));
        }
    }
    Ok(list)
}

/// `[build] compression` and `compression_level`: gzip (level 6) unless given; the level is
/// checked against the codec's range.
fn parse_compression(
    text: &Text,
    name: Option<Spanned<String>>,
    level: Option<Spanned<i64>>,
) -> Result<Compression, ConfigError> {
    let level = level.as_ref().map(|l| (*l.get_ref(), l.span()));
    let name = name.as_ref().map(|c| (c.get_ref().as_str(), c.span()));
    match name {
        None | Some(("gzip", _)) => match level {
            None => Ok(Compression::default()),
            Some((l @ 1..=12, _)) => Ok(Compression::Gzip { level: l as u32 }),
            Some((_, span)) => Err(text.at(span, "gzip compression_level must be 1-12")),
        },
        Some(("zstd", _)) => match level {
            None => Ok(Compression::Zstd {
                level: Compression::DEFAULT_ZSTD_LEVEL,
            }),
            Some((l @ 1..=19, _)) => Ok(Compression::Zstd { level: l as i32 }),
            Some((_, span)) => Err(text.at(span, "zstd compression_level must be 1-19")),
        },
        Some((other, span)) => Err(text.at(
            span,
            format!("unknown compression {other:?}: use \"gzip\" (default) or \"zstd\""),
        )),
    }
}

/// `[services.*]`: at least one service.
fn parse_services(
    text: &Text,
    raw: BTreeMap<Spanned<String>, RawService>,
    default_base: &BaseRef,
    dir: &Path,
) -> Result<BTreeMap<String, Service>, ConfigError> {
    if raw.is_empty() {
        return Err(text.error(None, "no services defined: add a [services.<name>] table"));
    }
    let mut services = BTreeMap::new();
    for (name, s) in raw {
        let service = parse_service(text, name, s, default_base, dir)?;
        services.insert(service.name.clone(), service);
    }
    Ok(services)
}

/// One `[services.<name>]` table: a valid name, at least one layer, the base (default:
/// `[build] base`) resolved against `dir`, and the defaults for what it leaves out.
fn parse_service(
    text: &Text,
    name: Spanned<String>,
    s: RawService,
    default_base: &BaseRef,
    dir: &Path,
) -> Result<Service, ConfigError> {
    let name_span = name.span();
    let name = ServiceName::try_from(name.into_inner())
        .map_err(|e| text.at(name_span, e))?
        .0;
    no_nul(text, &name, &s)?;
    let layers_span = s.layers.span();
    let raw_layers = s.layers.into_inner();
    if raw_layers.is_empty() {
        return Err(text.at(
            layers_span,
            format!("service {name} has no layers: add a [[services.{name}.layers]] table"),
        ));
    }
    Ok(Service {
        repository: s.repository.0,
        paths: s
            .paths
            .map(|p| p.into_iter().map(|g| g.0).collect())
            .unwrap_or_else(|| vec![format!("src/{name}/")]),
        base: resolve_base(s.base.unwrap_or_else(|| default_base.clone()), dir),
        entrypoint: s.entrypoint,
        cmd: s.cmd,
        env: s.env.into_iter().map(|(k, v)| (k.0, v)).collect(),
        workdir: s.workdir.map(|w| w.0),
        user: s.user.map(|u| u.0),
        ports: s.ports.into_iter().map(|p| p.0).collect(),
        labels: s.labels,
        layers: raw_layers.into_iter().map(layer_config).collect(),
        name,
    })
}

/// Refuse a NUL byte in what becomes a process's arguments, environment or labels: no
/// runtime can pass it on (`execve` takes C strings), so the image would not start.
fn no_nul(text: &Text, name: &str, s: &RawService) -> Result<(), ConfigError> {
    let args = s.entrypoint.iter().chain(&s.cmd).flatten();
    let env = s.env.iter().map(|(k, v)| (k.0.as_str(), v));
    let labels = s.labels.iter().map(|(k, v)| (k.as_str(), v));
    let texts = args.map(|a| ("entrypoint/cmd", a.as_str())).chain(
        env.chain(labels)
            .flat_map(|(k, v)| [("env/labels", k), ("env/labels", v.as_str())]),
    );
    for (what, t) in texts {
        if t.contains('\0') {
            return Err(text.error(
                None,
                format!("service {name}: a value in {what} holds a NUL byte ({t:?}): remove it"),
            ));
        }
    }
    Ok(())
}

/// One `[[services.<name>.layers]]` table (its values validated themselves when read).
fn layer_config(l: RawLayer) -> LayerConfig {
    LayerConfig {
        source: l.source,
        target: l.target.0,
        uid: u64::from(l.uid),
        gid: u64::from(l.gid),
        exclude: l.exclude.into_iter().map(|g| g.0).collect(),
        modes: l.modes.into_iter().map(|(g, m)| (g.0, m.0)).collect(),
        preserve_modes: l.preserve_modes,
        setid: l.setid,
    }
}

/// Fewest manifest PUTs per second `manifest_puts_per_second` may ask for.
pub const MIN_MANIFEST_RATE: f64 = 0.001;
/// Most manifest PUTs per second `manifest_puts_per_second` may ask for.
pub const MAX_MANIFEST_RATE: f64 = 10_000.0;

/// `[registry]`: the URL as `--registry` takes it, plus the AWS and rate settings.
fn parse_registry(text: &Text, r: RawRegistry) -> Result<RegistryConfig, ConfigError> {
    let mut reg = RegistryConfig::parse(r.url.get_ref(), r.auth, r.insecure)
        .map_err(|e| text.at(r.url.span(), e))?;
    reg.region = r.region;
    reg.registry_id = r.registry_id;
    if let Some(rate) = r.manifest_puts_per_second {
        let v = *rate.get_ref();
        if !(MIN_MANIFEST_RATE..=MAX_MANIFEST_RATE).contains(&v) {
            return Err(text.at(
                rate.span(),
                format!(
                    "manifest_puts_per_second = {v} is out of range: it must be more than 0, a number from {MIN_MANIFEST_RATE} (one manifest every {} seconds) to {MAX_MANIFEST_RATE}",
                    1.0 / MIN_MANIFEST_RATE
                ),
            ));
        }
        reg.manifest_puts_per_second = Some(v);
    }
    Ok(reg)
}

/// `[repositories]`: errors about how its keys go together point at the table.
fn parse_repositories(
    text: &Text,
    raw: Spanned<RawRepositories>,
) -> Result<RepositorySettings, ConfigError> {
    let span = raw.span();
    let r = raw.into_inner();
    let encryption = parse_encryption(text, r.encryption, r.kms_key.clone())?;
    if r.kms_key.is_some() && encryption == Encryption::Aes256 {
        return Err(text.at(span, "kms_key needs encryption = \"KMS\""));
    }
    let tag_mutability = r.tag_mutability.unwrap_or(TagMutability::Mutable);
    let with_exclusion = matches!(
        tag_mutability,
        TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion
    );
    if with_exclusion == r.tag_mutability_exclusions.is_empty() {
        return Err(text.at(span, "tag_mutability_exclusions go with (and only with) the *_WITH_EXCLUSION tag mutabilities"));
    }
    let lifecycle = match r.lifecycle {
        None => default_lifecycle(),
        Some(rules) => rules.into_iter().map(lifecycle_rule).collect(),
    };
    validate_lifecycle(&lifecycle).map_err(|e| text.at(span, e))?;
    Ok(RepositorySettings {
        scan_on_push: r.scan_on_push.unwrap_or(true),
        encryption,
        tag_mutability,
        tag_mutability_exclusions: r.tag_mutability_exclusions,
        tags: r.tags,
        lifecycle,
    })
}

/// `[repositories] encryption`: AES256 (the default) or KMS with `kms_key`.
fn parse_encryption(
    text: &Text,
    raw: Option<Spanned<String>>,
    kms_key: Option<String>,
) -> Result<Encryption, ConfigError> {
    let Some(e) = raw else {
        return Ok(Encryption::Aes256);
    };
    match e.get_ref().as_str() {
        "AES256" => Ok(Encryption::Aes256),
        "KMS" => Ok(Encryption::Kms(kms_key)),
        other => Err(text.at(
            e.span(),
            format!("unknown encryption {other:?}: use \"AES256\" or \"KMS\""),
        )),
    }
}

/// One `[[repositories.lifecycle]]` rule (checked as a whole by `validate_lifecycle`).
fn lifecycle_rule(l: RawLifecycleRule) -> LifecycleRule {
    LifecycleRule {
        description: l
            .description
            .unwrap_or_else(|| format!("ocibuild rule {}", l.priority)),
        priority: l.priority,
        tag_status: l.tag_status,
        tag_prefixes: l.tag_prefixes,
        tag_patterns: l.tag_patterns,
        keep_last: l.keep_last,
        expire_after_days: l.expire_after_days,
    }
}

/// `[ci]`: the paths whose change marks every service changed (default: the config file) and
/// the branch that gets `latest` (default: main).
/// The tag kinds pushed when `[ci] tags` says nothing.
pub const DEFAULT_TAG_KINDS: [&str; 5] = ["sha", "timestamp", "latest", "pr", "release"];

/// `[ci]`: shared paths, the default branch, the tag kinds pushed.
fn parse_ci(file: &Path, raw: Option<RawCi>) -> (Vec<String>, String, Vec<String>) {
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_FILE.to_string());
    let default_kinds = || DEFAULT_TAG_KINDS.iter().map(|k| k.to_string()).collect();
    match raw {
        None => (vec![file_name], "main".to_string(), default_kinds()),
        Some(ci) => (
            ci.shared_paths
                .map(|p| p.into_iter().map(|g| g.0).collect())
                .unwrap_or_else(|| vec![file_name]),
            ci.default_branch.unwrap_or_else(|| "main".into()),
            ci.tags
                .map(|t| t.into_iter().map(|t| t.0).collect())
                .unwrap_or_else(default_kinds),
        ),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::AuthMode;
    use std::path::PathBuf;

    pub(in crate::config) fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("ocibuild.toml"), Path::new("/proj"))
    }

    pub(in crate::config) const MINIMAL: &str = r#"
[services.catalog]
repository = "retail-store-catalog"
[[services.catalog.layers]]
source = "src/catalog/dist/{os}-{arch}"
target = "/app"
"#;

    #[test]
    fn nul_bytes_and_out_of_range_ids_are_refused() {
        let with =
            |extra: &str| parse(&MINIMAL.replace("[[services", &format!("{extra}\n[[services")));
        for bad in [
            r#"env = { A = "x\u0000y" }"#,
            r#"entrypoint = ["/app\u0000"]"#,
            r#"labels = { "a\u0000" = "b" }"#,
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("NUL"), "{bad}: {e}");
        }
        let e = with(r#"user = "4294967296""#).unwrap_err().to_string();
        assert!(e.contains("4294967295"), "{e}");
        assert!(with(r#"user = "4294967295:0""#).is_ok());
        assert!(with(r#"user = "app:staff""#).is_ok());
    }

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
    fn compression_settings() {
        let with = |build: &str| parse(&format!("[build]\n{build}\n{MINIMAL}"));
        assert_eq!(
            parse(MINIMAL).unwrap().compression,
            Compression::Gzip { level: 6 }
        );
        let c = with("compression = \"zstd\"").unwrap().compression;
        assert_eq!(c, Compression::Zstd { level: 3 });
        let c = with("compression = \"zstd\"\ncompression_level = 19").unwrap();
        assert_eq!(c.compression, Compression::Zstd { level: 19 });
        let c = with("compression_level = 1").unwrap().compression;
        assert_eq!(c, Compression::Gzip { level: 1 });
        let e = with("compression_level = 13").unwrap_err().0;
        assert!(
            e.starts_with("ocibuild.toml:2:21:") && e.contains("1-12"),
            "{e}"
        );
        let e = with("compression = \"lz4\"").unwrap_err().0;
        assert!(
            e.starts_with("ocibuild.toml:2:15:") && e.contains("lz4"),
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
        let e = err(&format!(
            "[registry]\nurl = \"h\"\nmanifest_puts_per_second = 0.0\n{MINIMAL}"
        ));
        assert!(e.contains("more than 0"), "{e}");
        for bad in ["1e-300", "0.0009", "-1.0", "10001.0", "inf", "nan", "1e300"] {
            let e = err(&format!(
                "[registry]\nurl = \"h\"\nmanifest_puts_per_second = {bad}\n{MINIMAL}"
            ));
            assert!(
                e.starts_with("ocibuild.toml:3:") && e.contains("manifest_puts_per_second"),
                "{bad}: {e}"
            );
            assert!(e.contains("0.001") && e.contains("10000"), "{bad}: {e}");
        }
        for ok in ["0.001", "0.5", "10.0", "10000.0"] {
            let c = parse(&format!(
                "[registry]\nurl = \"h\"\nmanifest_puts_per_second = {ok}\n{MINIMAL}"
            ))
            .unwrap();
            assert!(
                c.registry.unwrap().manifest_puts_per_second.is_some(),
                "{ok}"
            );
        }
        let c = parse(&format!(
            "[registry]\nurl = \"https://127.0.0.1:5000/team\"\n{MINIMAL}"
        ))
        .unwrap();
        let r = c.registry.unwrap();
        assert_eq!(r.scheme, Some(crate::config::Scheme::Https));
        assert_eq!((r.host.as_str(), r.insecure), ("127.0.0.1:5000", false));
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
    fn ci_tags_default_to_every_kind_and_are_checked() {
        assert_eq!(
            parse(MINIMAL).unwrap().tag_kinds,
            ["sha", "timestamp", "latest", "pr", "release"]
        );
        let c = parse(&format!("[ci]\ntags = [\"sha\", \"stable\"]\n{MINIMAL}")).unwrap();
        assert_eq!(c.tag_kinds, ["sha", "stable"]);
        let e = err(&format!("[ci]\ntags = [\"bad tag\"]\n{MINIMAL}"));
        assert!(
            e.starts_with("ocibuild.toml:2:") && e.contains("invalid tag"),
            "{e}"
        );
    }
}

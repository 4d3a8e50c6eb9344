//! Property tests of the config parser: whatever the text, `Config::parse` returns a config
//! or an error naming the file, never panics; any value in any key either is refused or gives
//! a config every later step can use (a rate that makes a finite interval); valid services
//! come back as written. `PROPTEST_CASES=10000 cargo test --lib
//! config::proptests` runs them longer.

use super::parse::tests::{parse, MINIMAL};
use super::Config;
use proptest::prelude::*;
use std::time::Duration;

/// Where a key lives: the section header text that precedes it.
#[derive(Debug, Clone, Copy)]
enum Section {
    Build,
    Service,
    Layer,
    Registry,
    Repositories,
    Ci,
}

/// Every key of the file, with its section.
const KEYS: &[(Section, &str)] = &[
    (Section::Build, "platforms"),
    (Section::Build, "base"),
    (Section::Build, "compression"),
    (Section::Build, "compression_level"),
    (Section::Service, "repository"),
    (Section::Service, "paths"),
    (Section::Service, "base"),
    (Section::Service, "entrypoint"),
    (Section::Service, "cmd"),
    (Section::Service, "env"),
    (Section::Service, "workdir"),
    (Section::Service, "user"),
    (Section::Service, "ports"),
    (Section::Service, "labels"),
    (Section::Layer, "source"),
    (Section::Layer, "target"),
    (Section::Layer, "uid"),
    (Section::Layer, "gid"),
    (Section::Layer, "exclude"),
    (Section::Layer, "modes"),
    (Section::Layer, "preserve_modes"),
    (Section::Layer, "setid"),
    (Section::Registry, "url"),
    (Section::Registry, "auth"),
    (Section::Registry, "insecure"),
    (Section::Registry, "region"),
    (Section::Registry, "registry_id"),
    (Section::Registry, "manifest_puts_per_second"),
    (Section::Repositories, "scan_on_push"),
    (Section::Repositories, "encryption"),
    (Section::Repositories, "kms_key"),
    (Section::Repositories, "tag_mutability"),
    (Section::Repositories, "tag_mutability_exclusions"),
    (Section::Repositories, "tags"),
    (Section::Repositories, "lifecycle"),
    (Section::Ci, "shared_paths"),
    (Section::Ci, "default_branch"),
    (Section::Ci, "tags"),
];

/// A TOML basic string holding `s`, escaped.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Any TOML value: scalars at their edges, arrays and inline tables of them.
fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<String>().prop_map(|s| quoted(&s)),
        "[a-z0-9./:_{}-]{0,30}".prop_map(|s| quoted(&s)),
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN)
        ]
        .prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        prop_oneof![
            Just("1e-300"),
            Just("1e300"),
            Just("inf"),
            Just("-inf"),
            Just("nan"),
            Just("-0.0"),
            Just("5e-324"),
        ]
        .prop_map(str::to_string),
        any::<bool>().prop_map(|b| b.to_string()),
    ];
    scalar.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..3).prop_map(|kv| {
                let items: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", items.join(", "))
            }),
        ]
    })
}

/// A valid file with `key = value` set in its section (replacing the default line, if any).
fn file_with(section: Section, key: &str, value: &str) -> String {
    let set = |s: Section, default: &[(&str, &str)]| -> String {
        let mut lines: Vec<String> = default
            .iter()
            .filter(|(k, _)| !matches!(s, x if same(x, section) && *k == key))
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        if same(s, section) {
            lines.push(format!("{key} = {value}"));
        }
        lines.join("\n")
    };
    format!(
        "[build]\n{}\n[services.catalog]\n{}\n[[services.catalog.layers]]\n{}\n\
         [registry]\n{}\n[repositories]\n{}\n[ci]\n{}\n",
        set(Section::Build, &[]),
        set(
            Section::Service,
            &[("repository", "\"retail-store-catalog\"")]
        ),
        set(
            Section::Layer,
            &[("source", "\"dist/{arch}\""), ("target", "\"/app\"")]
        ),
        set(Section::Registry, &[("url", "\"127.0.0.1:5000\"")]),
        set(Section::Repositories, &[]),
        set(Section::Ci, &[]),
    )
}

fn same(a: Section, b: Section) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

/// What later steps need of an accepted config.
fn usable(c: &Config) -> Result<(), String> {
    if let Some(rate) = c.registry.as_ref().and_then(|r| r.manifest_puts_per_second) {
        if !rate.is_finite() || Duration::try_from_secs_f64(1.0 / rate).is_err() {
            return Err(format!("accepted manifest_puts_per_second = {rate}"));
        }
    }
    if c.services.is_empty() {
        return Err("accepted a config without services".into());
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_text_is_a_config_or_an_error_naming_the_file(src in "\\PC{0,300}") {
        if let Err(e) = parse(&src) {
            prop_assert!(e.to_string().starts_with("ocibuild.toml"), "{e}");
        }
    }

    #[test]
    fn any_text_spliced_into_a_valid_file(at in 0usize..=MINIMAL.len(), junk in "\\PC{0,12}") {
        let mut at = at;
        while !MINIMAL.is_char_boundary(at) {
            at -= 1;
        }
        let src = format!("{}{junk}{}", &MINIMAL[..at], &MINIMAL[at..]);
        match parse(&src) {
            Ok(c) => prop_assert!(usable(&c).is_ok()),
            Err(e) => prop_assert!(e.to_string().starts_with("ocibuild.toml"), "{e}"),
        }
    }

    #[test]
    fn any_value_in_any_key_is_refused_or_usable(k in 0..KEYS.len(), v in value()) {
        let (section, key) = KEYS[k];
        let src = file_with(section, key, &v);
        match parse(&src) {
            Ok(c) => {
                let verdict = usable(&c);
                prop_assert!(verdict.is_ok(), "{key} = {v}: {verdict:?}");
            }
            Err(e) => prop_assert!(e.to_string().starts_with("ocibuild.toml"), "{e}"),
        }
    }

    #[test]
    fn valid_services_come_back_as_written(
        name in "[a-z0-9][a-z0-9_-]{0,20}",
        repository in "[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}(/[a-z0-9]{1,8}){0,2}",
        target in "(/[A-Za-z0-9_][A-Za-z0-9._-]{0,10}){1,4}",
        env in prop::collection::btree_map("[A-Z_][A-Z0-9_]{0,10}", "\\PC{0,20}", 0..4),
    ) {
        let env_items: Vec<String> =
            env.iter().map(|(k, v)| format!("{k} = {}", quoted(v))).collect();
        let src = format!(
            "[services.{name}]\nrepository = {}\nenv = {{ {} }}\n\
             [[services.{name}.layers]]\nsource = \"dist\"\ntarget = {}\n",
            quoted(&repository),
            env_items.join(", "),
            quoted(&target),
        );
        let c = parse(&src).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let s = &c.services[&name];
        prop_assert_eq!(&s.repository, &repository);
        prop_assert_eq!(&s.layers[0].target, &target);
        prop_assert_eq!(s.env.len(), env.len());
    }
}

/// Values at the edges, tried in every key (random search rarely lands on them).
const EDGES: &[&str] = &[
    "1e-300",
    "1e300",
    "inf",
    "-inf",
    "nan",
    "-0.0",
    "0",
    "-1",
    "0.5",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "\"\"",
    "\" \"",
    "\"/\"",
    "\"..\"",
    "\"../../x\"",
    "\"a\\u0000b\"",
    "\"\\n\"",
    "[]",
    "[\"\"]",
    "{}",
    "true",
];

#[test]
fn every_edge_value_in_every_key_is_refused_or_usable() {
    let long = quoted(&"a".repeat(100_000));
    let mut wrong = Vec::new();
    for (section, key) in KEYS {
        for v in EDGES.iter().copied().chain([long.as_str()]) {
            match parse(&file_with(*section, key, v)) {
                Ok(c) => {
                    if let Err(why) = usable(&c) {
                        wrong.push(format!("{key} = {v:.20}: {why}"));
                    }
                }
                Err(e) if !e.to_string().starts_with("ocibuild.toml") => {
                    wrong.push(format!("{key} = {v:.20}: error without the file: {e}"));
                }
                Err(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_tiny_rate_is_refused_not_a_panic_later() {
    let src = file_with(Section::Registry, "manifest_puts_per_second", "1e-300");
    let err = parse(&src).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("manifest_puts_per_second"), "{err}");
}

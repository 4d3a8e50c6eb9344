//! Unit tests of the use cases that need no network: a push that must not push, and the
//! publish path from layouts to an in-memory registry (an unreadable layout fails only its
//! service; outcomes stay in service order; tags only on what was pushed).

use super::publish::{self, NoPush, Publish, PublishRequest};
use super::{Event, LayerSettings};
use crate::plan::PlanOptions;
use crate::transfer::memory::{Fake, MountMode};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A project with two services on `scratch`, each with one small layer.
fn project(dir: &Path) -> PathBuf {
    for svc in ["cart", "ui"] {
        let src = dir.join("dist").join(svc);
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("app.txt"), format!("{svc} app")).unwrap();
    }
    let config = dir.join("ocibuild.toml");
    std::fs::write(
        &config,
        r#"[build]
platforms = ["linux/amd64", "linux/arm64"]
base = "scratch"

[services.cart]
repository = "shop-cart"
[[services.cart.layers]]
source = "dist/cart"
target = "/app"

[services.ui]
repository = "shop-ui"
[[services.ui.layers]]
source = "dist/ui"
target = "/app"
"#,
    )
    .unwrap();
    config
}

fn request(config: PathBuf, out: PathBuf) -> PublishRequest {
    PublishRequest {
        config: Some(config),
        platforms: vec![],
        layers: LayerSettings {
            no_cache: true,
            ..LayerSettings::default()
        },
        tags: vec!["v1".into()],
        registry: None,
        insecure: false,
        layout: None,
        out: Some(out),
        jobs: 4,
        dry_run: false,
        create_repos: false,
        scan: None,
        selection: PlanOptions {
            base: None,
            head: None,
            services: vec![],
            all: true,
            changed: false,
        },
        no_push: true,
        timestamp_now: false,
        attest: Default::default(),
        cache_write: None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn no_push_builds_and_stops_before_any_registry_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    let out = dir.path().join("out");
    // No registry is configured: a publisher that pushed would fail asking for one.
    let req = request(config, out.clone());
    let seen = Mutex::new(Vec::new());
    let outcome = publish::publish(&req, &no_env, &|e| {
        seen.lock().unwrap().push(format!("{e:?}"))
    })
    .unwrap();
    let Publish::NotPushed {
        why,
        built,
        services,
        tags,
    } = outcome
    else {
        panic!("expected NotPushed, got {outcome:?}");
    };
    assert_eq!(why, NoPush::Asked);
    assert_eq!(services, ["cart", "ui"]);
    assert_eq!(tags, ["v1"]);
    assert_eq!(built.len(), 2);
    assert!(out.join("cart/oci-layout").is_file() && out.join("ui/oci-layout").is_file());
    let seen = seen.into_inner().unwrap();
    assert!(seen[0].starts_with("Planned"), "{seen:?}");
    assert!(seen.iter().any(|e| e.starts_with("Built")), "{seen:?}");
    assert!(!seen.iter().any(|e| e.starts_with("Transfer")), "{seen:?}");
}

#[test]
fn built_layouts_reach_the_registry_and_an_unreadable_one_fails_only_its_service() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    let out = dir.path().join("out");
    let req = request(config.clone(), out.clone());
    publish::publish(&req, &no_env, &|_| {}).unwrap();
    // Damage cart's layout: one of its layer blobs is gone.
    let cart_layer = std::fs::read_dir(out.join("cart/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
        .unwrap();
    std::fs::remove_file(&cart_layer).unwrap();

    let config = crate::config::Config::load(&config).unwrap();
    let services = config.select(&[]).unwrap();
    let registry = crate::config::RegistryConfig::parse("registry.test/team", None, false).unwrap();
    let images = publish::open_layouts(&services, &registry, &out, &["v1".into()], None).unwrap();
    let fake = Fake::new(MountMode::Link);
    let opts = crate::transfer::TransferOptions {
        jobs: 2,
        dry_run: false,
    };
    let events = Mutex::new(Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcomes = rt.block_on(publish::send(&fake, &images, &opts, &|e| {
        if let Event::Transfer(crate::transfer::Event::Service { service, error }) = e {
            events.lock().unwrap().push((service, error.is_some()));
        }
    }));
    let names: Vec<&str> = outcomes.iter().map(|o| o.push.service.as_str()).collect();
    assert_eq!(names, ["cart", "ui"]);
    let cart = &outcomes[0].push;
    let e = cart.error.as_deref().unwrap();
    let prefix = format!("reading layout: {}: ", out.join("cart").display());
    assert!(
        e.starts_with(&prefix) && e.ends_with("rebuild the layout"),
        "{e}"
    );
    assert!(cart.tags.is_empty());
    let ui = &outcomes[1].push;
    assert_eq!(ui.error, None);
    assert_eq!(ui.tags, ["v1"]);
    assert_eq!(ui.repository, "team/shop-ui");
    assert_eq!(ui.manifest_digests.len(), 2, "two platforms");
    let log = fake.log();
    assert!(
        log.iter().any(|l| l == "manifest team/shop-ui v1"),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("shop-cart")), "{log:#?}");
    let mut events = events.into_inner().unwrap();
    events.sort();
    assert_eq!(events, [("cart".into(), true), ("ui".into(), false)]);
}

#[test]
fn source_date_epoch_is_read_through_the_lookup_and_refused_with_its_cause() {
    let epoch = |v: &'static str| {
        super::source_date_epoch(&move |k: &str| (k == "SOURCE_DATE_EPOCH").then(|| v.to_string()))
    };
    assert_eq!(epoch("42").unwrap(), 42);
    assert_eq!(epoch(" ").unwrap(), 0);
    assert_eq!(super::source_date_epoch(&no_env).unwrap(), 0);
    let e = epoch("\u{fffd}").unwrap_err().to_string();
    assert!(
        e.starts_with("SOURCE_DATE_EPOCH=") && e.contains("invalid digit"),
        "{e}"
    );
    // The last second of year 9999 is the latest `created` RFC 3339 can write.
    assert_eq!(epoch("253402300799").unwrap(), 253_402_300_799);
    for bad in [
        "253402300800",
        "18446744073709551615",
        "99999999999999999999",
        "-1",
        "1.5",
        "1e9",
    ] {
        let e = epoch(bad).unwrap_err().to_string();
        assert!(
            e.starts_with("SOURCE_DATE_EPOCH=") && e.contains("from 0 to 253402300799"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn a_copy_destination_gets_nothing_of_the_configs_registry_unless_it_is_that_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = project(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let own = "[registry]\nurl = \"registry.test/team\"\nauth = \"ecr\"\ninsecure = true\nregion = \"eu-west-1\"\nregistry_id = \"123456789012\"\n";
    std::fs::write(&path, format!("{own}\n{text}")).unwrap();
    let config = crate::config::Config::find_and_load(Some(&path)).unwrap();
    let other = super::access::other_registry(&config, "mirror.example/x", false).unwrap();
    assert_eq!(other.host, "mirror.example");
    assert_eq!(other.auth_mode(), crate::config::AuthMode::Docker);
    assert!(!other.insecure, "no plain HTTP to another host");
    assert_eq!(other.ecr_region(), None);
    // The config's own host keeps its settings (another prefix there).
    let same = super::access::other_registry(&config, "registry.test/mirror", false).unwrap();
    assert_eq!(same.auth_mode(), crate::config::AuthMode::Ecr);
    assert!(same.insecure);
    assert_eq!(same.prefix.as_deref(), Some("mirror"));
    assert!(super::access::other_registry(&config, " ", false).is_err());
}

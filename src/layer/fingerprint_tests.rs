//! Fingerprints: the same inputs anywhere give the same fingerprint; any input that changes
//! the layer's bytes changes it.

use super::*;
use crate::config::SourceTemplate;
use crate::layer::walk;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn cfg(source: &str) -> LayerConfig {
    LayerConfig::new(
        SourceTemplate::try_from(source.to_string()).unwrap(),
        "/app",
    )
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::write(root.join("lib/a.txt"), b"alpha").unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("lib/a.txt", root.join("link")).unwrap();
}

fn fp_with(root: &Path, c: &LayerConfig, codec: Codec, epoch: u64, p: &str) -> Digest {
    let entries = walk::entries(root, c).unwrap();
    let platform: Platform = p.parse().unwrap();
    let inputs = Inputs {
        cfg: c,
        epoch,
        codec,
        platform: &platform,
    };
    fingerprint(&entries, &inputs).unwrap()
}

fn fp(root: &Path) -> Digest {
    fp_with(root, &cfg("app"), Codec::Gzip(6), 0, "linux/amd64")
}

#[test]
fn same_tree_elsewhere_same_fingerprint() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    tree(a.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    tree(b.path());
    assert_eq!(fp(a.path()), fp(b.path()));
    assert!(fp(a.path()).as_str().starts_with("sha256:"));
}

#[test]
fn every_input_that_shapes_the_bytes_changes_it() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let base = fp(d.path());
    let c = cfg("app");
    assert_ne!(
        base,
        fp_with(d.path(), &c, Codec::Gzip(9), 0, "linux/amd64")
    );
    assert_ne!(
        base,
        fp_with(d.path(), &c, Codec::Zstd(6), 0, "linux/amd64")
    );
    assert_ne!(
        base,
        fp_with(d.path(), &c, Codec::Gzip(6), 1, "linux/amd64")
    );
    let mut other_target = cfg("app");
    other_target.target = "/srv".into();
    assert_ne!(
        base,
        fp_with(d.path(), &other_target, Codec::Gzip(6), 0, "linux/amd64")
    );
    let mut owned = cfg("app");
    owned.uid = 1000;
    assert_ne!(
        base,
        fp_with(d.path(), &owned, Codec::Gzip(6), 0, "linux/amd64")
    );

    fs::write(d.path().join("lib/a.txt"), b"alphA").unwrap();
    let content = fp(d.path());
    assert_ne!(base, content);
    fs::set_permissions(d.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let mode = fp(d.path());
    assert_ne!(content, mode);
    fs::remove_file(d.path().join("link")).unwrap();
    std::os::unix::fs::symlink("run.sh", d.path().join("link")).unwrap();
    assert_ne!(mode, fp(d.path()));
}

#[test]
fn the_platform_counts_only_when_the_source_depends_on_it() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let plain = cfg("app");
    let amd = fp_with(d.path(), &plain, Codec::Gzip(6), 0, "linux/amd64");
    let arm = fp_with(d.path(), &plain, Codec::Gzip(6), 0, "linux/arm64");
    assert_eq!(amd, arm);
    let per_arch = cfg("app/{arch}");
    let amd = fp_with(d.path(), &per_arch, Codec::Gzip(6), 0, "linux/amd64");
    let arm = fp_with(d.path(), &per_arch, Codec::Gzip(6), 0, "linux/arm64");
    assert_ne!(amd, arm);
}

#[test]
fn a_file_gone_since_the_walk_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let c = cfg("app");
    let entries = walk::entries(d.path(), &c).unwrap();
    fs::remove_file(d.path().join("run.sh")).unwrap();
    let platform: Platform = "linux/amd64".parse().unwrap();
    let inputs = Inputs {
        cfg: &c,
        epoch: 0,
        codec: Codec::Gzip(6),
        platform: &platform,
    };
    assert!(fingerprint(&entries, &inputs).is_err());
}

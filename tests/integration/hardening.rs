//! Issue 13's layout, layer-cache and build findings: base layouts are verified, never
//! followed through symlinks and read with bounds; a damaged cache entry is detected, never
//! used and replaced, and no layout shares a writable file with the cache; an output or cache
//! directory inside a layer source is refused.

use crate::common::*;
use crate::registry::{docker_config, TestRegistry};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The largest blob of a layout (a layer, not a JSON document).
fn biggest_blob(layout: &Path) -> PathBuf {
    let dir = layout.join("blobs/sha256");
    fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::symlink_metadata(p).unwrap().len())
        .unwrap()
}

/// Flip one byte of `path` in place (same size, same inode).
fn flip_byte(path: &Path) {
    let mut perms = fs::metadata(path).unwrap().permissions();
    perms.set_mode(0o644);
    fs::set_permissions(path, perms).unwrap();
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(20)).unwrap();
    std::io::Read::read_exact(&mut f, &mut byte).unwrap();
    f.seek(SeekFrom::Start(20)).unwrap();
    f.write_all(&[byte[0] ^ 0xff]).unwrap();
}

/// Every blob of every layout under `out` is a read-only regular file matching its name.
fn assert_layouts_sound(out: &Path) {
    for svc in fs::read_dir(out).unwrap() {
        let svc = svc.unwrap().path();
        if svc.file_name().unwrap().to_str().unwrap().starts_with('.') {
            panic!("left behind in {}: {}", out.display(), svc.display());
        }
        for b in fs::read_dir(svc.join("blobs/sha256")).unwrap() {
            let b = b.unwrap().path();
            let meta = fs::symlink_metadata(&b).unwrap();
            assert!(meta.is_file(), "{} is not a regular file", b.display());
            assert_eq!(
                meta.permissions().mode() & 0o222,
                0,
                "{} is writable",
                b.display()
            );
            let name = b.file_name().unwrap().to_str().unwrap().to_string();
            assert_eq!(
                sha256_hex(fs::read(&b).unwrap()),
                format!("sha256:{name}"),
                "{}",
                b.display()
            );
        }
    }
}

#[test]
fn damaged_symlinked_or_oversized_base_layouts_are_refused() {
    let (tmp, p) = retail_store();
    let base = p.join("base-images/static");
    let out = tmp.path().join("out");
    let args = ["build", "--service", "ui", "--no-cache", "--out", "out"];
    let out_arg = out.to_str().unwrap();
    let run = |want: &[&str]| {
        let mut a = args.to_vec();
        a[5] = out_arg;
        let err = fails(ocibuild(&p, &a));
        for w in want {
            assert!(err.contains(w), "expected {w:?} in: {err}");
        }
        assert!(!out.exists(), "a failed build left {}", out.display());
    };
    let blob = biggest_blob(&base);
    let hex = blob.file_name().unwrap().to_str().unwrap().to_string();
    let good = fs::read(&blob).unwrap();

    // Same size, one byte changed: refused, not linked into the layout.
    flip_byte(&blob);
    run(&[&hex, "corrupt"]);

    // A symlink to a host file (even one with the right bytes) never becomes a blob.
    let host = tmp.path().join("host-file");
    fs::write(&host, &good).unwrap();
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&host, &blob).unwrap();
    run(&[&hex, "symbolic link"]);
    fs::remove_file(&blob).unwrap();
    fs::write(&blob, &good).unwrap();

    // Unbounded documents: a huge oci-layout, an index.json that never ends.
    let marker = base.join("oci-layout");
    let marker_text = fs::read(&marker).unwrap();
    fs::write(&marker, vec![b' '; 5 << 20]).unwrap();
    run(&["oci-layout", "larger than"]);
    fs::write(&marker, &marker_text).unwrap();
    let index = base.join("index.json");
    let index_text = fs::read(&index).unwrap();
    fs::remove_file(&index).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &index).unwrap();
    run(&["index.json"]);
    fs::remove_file(&index).unwrap();
    fs::write(&index, &index_text).unwrap();

    // blobs/sha256 itself a symlink to a directory outside the layout (even one holding the
    // right bytes): refused.
    let sha = base.join("blobs/sha256");
    let moved = tmp.path().join("moved-blobs");
    fs::rename(&sha, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &sha).unwrap();
    run(&["blobs/sha256", "must be inside the layout"]);
    fs::remove_file(&sha).unwrap();
    fs::rename(&moved, &sha).unwrap();

    let mut a = args.to_vec();
    a[5] = out_arg;
    ok(ocibuild(&p, &a));
    assert_layouts_sound(&out);
}

#[test]
fn push_layout_refuses_a_blob_that_is_a_symlink() {
    let reg = TestRegistry::start(None);
    let (tmp, p) = retail_store();
    let cfg = docker_config(tmp.path(), "{}");
    let out = tmp.path().join("out");
    ok(ocibuild(
        &p,
        &[
            "build",
            "--service",
            "ui",
            "--no-cache",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let blob = biggest_blob(&out.join("ui"));
    let host = tmp.path().join("host-file");
    fs::copy(&blob, &host).unwrap();
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&host, &blob).unwrap();
    let hex = blob.file_name().unwrap().to_str().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args([
            "push",
            "--service",
            "ui",
            "--registry",
            &reg.host(),
            "--layout",
        ])
        .arg(&out)
        .current_dir(&p)
        .env("DOCKER_CONFIG", &cfg)
        .output()
        .unwrap();
    let err = fails(o);
    assert!(err.contains(&hex), "{err}");
    assert!(
        reg.raw("retail-store-ui", "latest", None).is_none(),
        "pushed anyway"
    );
}

#[test]
fn a_damaged_cache_entry_is_never_used_and_is_replaced() {
    let (tmp, p) = retail_store();
    let cache = tmp.path().join("cache");
    let build = |out: &Path| {
        ok(ocibuild(
            &p,
            &[
                "build",
                "--cache-dir",
                cache.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ))
    };
    let first = tmp.path().join("first");
    build(&first);
    assert_layouts_sound(&first);
    let blobs = cache.join("v1/blobs/sha256");
    for b in fs::read_dir(&blobs).unwrap() {
        let mode = fs::metadata(b.unwrap().path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0, "cache blobs are read-only");
    }
    let victim = biggest_blob(&cache.join("v1"));
    let hex = victim.file_name().unwrap().to_str().unwrap().to_string();
    flip_byte(&victim);

    // Warm rebuild: the damaged entry is detected, rebuilt and stored again.
    let second = tmp.path().join("second");
    build(&second);
    assert_layouts_sound(&second);
    assert_eq!(
        sha256_hex(fs::read(&victim).unwrap()),
        format!("sha256:{hex}"),
        "the cache entry was not replaced"
    );
    // And again, from the repaired cache.
    let third = tmp.path().join("third");
    build(&third);
    assert_layouts_sound(&third);
}

#[test]
fn out_or_cache_inside_a_layer_source_is_refused() {
    let (tmp, p) = retail_store();
    let source = p.join("src/ui/target/app");
    let inside = source.join("out");
    let err = fails(ocibuild(
        &p,
        &["build", "--no-cache", "--out", inside.to_str().unwrap()],
    ));
    assert!(
        err.contains("--out") && err.contains("src/ui/target/app") && err.contains("service ui"),
        "{err}"
    );
    assert!(!inside.exists(), "left {}", inside.display());
    let cache = source.join("sub/cache");
    let out = tmp.path().join("out");
    let err = fails(ocibuild(
        &p,
        &[
            "build",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    assert!(
        err.contains("--cache-dir") && err.contains("src/ui/target/app"),
        "{err}"
    );
    assert!(!out.exists());
    assert!(
        !source.join("sub").exists(),
        "the refused cache was created"
    );
    // The same through `push` (which builds first), with paths not made yet and written with `..`.
    let cfg = tmp.path().join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    let sneaky = p.join("src/ui/target/lib/../app/new/cache");
    let err = fails(push(
        &p,
        &cfg,
        &[
            "--service",
            "ui",
            "--registry",
            "127.0.0.1:9",
            "--cache-dir",
            sneaky.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("--cache-dir"), "{err}");
    assert!(
        !source.join("new").exists(),
        "the refused cache was created"
    );
}

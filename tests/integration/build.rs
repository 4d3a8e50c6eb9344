//! `ocibuild build` on the retail-store fixtures, validated by skopeo and umoci, with the
//! catalog entrypoint run from the unpacked image on both platforms (arm64 under qemu).

use crate::common::*;
use ocibuild::config::{Config, LayerConfig};
use ocibuild::platform::Platform;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

#[derive(Debug, PartialEq, Eq, Clone)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(Vec<u8>),
}

/// (kind, permission bits, uid, gid) by path.
type Tree = BTreeMap<Vec<u8>, (Node, u32, u64, u64)>;

/// The fixture configs only use `NAME` and `*.EXT` patterns; check that, then match.
fn pattern_matches(pattern: &str, rel: &Path) -> bool {
    assert!(
        !pattern.contains('/') && pattern.matches('*').count() <= 1,
        "{pattern}"
    );
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match pattern.strip_prefix('*') {
        Some(suffix) => name.ends_with(suffix),
        None => name == pattern,
    }
}

/// What one layer should put in the image, by the rules the README documents: dirs 0755,
/// files 0755 if any exec bit is set else 0644, overrides from `modes`, excludes dropped,
/// parents of the target root-owned 0755.
fn apply_layer(tree: &mut Tree, src: &Path, l: &LayerConfig) {
    let target = l.target.trim_start_matches('/');
    let parts: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    for i in 1..parts.len() {
        tree.insert(parts[..i].join("/").into_bytes(), (Node::Dir, 0o755, 0, 0));
    }
    let mode_for = |rel: &Path, is_dir: bool, raw: u32| -> u32 {
        for (p, m) in &l.modes {
            if pattern_matches(p, rel) {
                return *m;
            }
        }
        if is_dir || raw & 0o111 != 0 {
            0o755
        } else {
            0o644
        }
    };
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<(std::path::PathBuf, std::path::PathBuf)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            out.push((e.path(), r.clone()));
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &r, out);
            }
        }
    }
    let join = |rel: &Path| -> Vec<u8> {
        let r = rel.as_os_str().as_bytes();
        match (target.is_empty(), r.is_empty()) {
            (true, _) => r.to_vec(),
            (false, true) => target.as_bytes().to_vec(),
            _ => [target.as_bytes(), b"/", r].concat(),
        }
    };
    let meta = fs::metadata(src).unwrap();
    if meta.is_file() {
        let node = Node::File(fs::read(src).unwrap());
        tree.insert(
            join(Path::new("")),
            (
                node,
                mode_for(Path::new(src.file_name().unwrap()), false, meta.mode()),
                l.uid,
                l.gid,
            ),
        );
        return;
    }
    if !target.is_empty() {
        tree.insert(
            join(Path::new("")),
            (
                Node::Dir,
                mode_for(Path::new(""), true, meta.mode()),
                l.uid,
                l.gid,
            ),
        );
    }
    let mut items = Vec::new();
    walk(src, Path::new(""), &mut items);
    for (abs, rel) in items {
        if rel
            .iter()
            .any(|c| l.exclude.iter().any(|p| pattern_matches(p, Path::new(c))))
        {
            continue;
        }
        let m = fs::symlink_metadata(&abs).unwrap();
        let (node, mode) = if m.file_type().is_symlink() {
            (
                Node::Link(fs::read_link(&abs).unwrap().as_os_str().as_bytes().to_vec()),
                0o777,
            )
        } else if m.is_dir() {
            (Node::Dir, mode_for(&rel, true, m.mode()))
        } else {
            (
                Node::File(fs::read(&abs).unwrap()),
                mode_for(&rel, false, m.mode()),
            )
        };
        tree.insert(join(&rel), (node, mode, l.uid, l.gid));
    }
}

fn expected_tree(project: &Path, service: &str, platform: &Platform) -> Tree {
    let mut tree = Tree::new();
    let base_dir = repo().join("fixtures/base-image");
    let base = Config::load(&base_dir.join("ocibuild.toml")).unwrap();
    for l in &base.services["static"].layers {
        apply_layer(&mut tree, &base_dir.join(l.source.expand(platform)), l);
    }
    let cfg = Config::load(&project.join("ocibuild.toml")).unwrap();
    for l in &cfg.services[service].layers {
        apply_layer(&mut tree, &project.join(l.source.expand(platform)), l);
    }
    tree
}

fn actual_tree(rootfs: &Path) -> Tree {
    let mut tree = Tree::new();
    fn go(base: &Path, dir: &Path, tree: &mut Tree) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let m = fs::symlink_metadata(&p).unwrap();
            let node = if m.file_type().is_symlink() {
                Node::Link(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec())
            } else if m.is_dir() {
                go(base, &p, tree);
                Node::Dir
            } else {
                Node::File(fs::read(&p).unwrap())
            };
            let mode = if matches!(node, Node::Link(_)) {
                0o777
            } else {
                m.mode() & 0o7777
            };
            tree.insert(rel, (node, mode, u64::from(m.uid()), u64::from(m.gid())));
        }
    }
    go(rootfs, rootfs, &mut tree);
    tree
}

fn describe(t: &Tree) -> String {
    t.iter()
        .map(|(p, (n, m, u, g))| {
            let kind = match n {
                Node::Dir => "dir".to_string(),
                Node::File(b) => format!("file {} bytes", b.len()),
                Node::Link(l) => format!("link -> {}", String::from_utf8_lossy(l)),
            };
            format!("{} {m:o} {u}:{g} {kind}\n", String::from_utf8_lossy(p))
        })
        .collect()
}

#[test]
fn fixtures_build_into_layouts_that_skopeo_and_umoci_read_and_that_run() {
    require("skopeo");
    require("umoci");
    require("qemu-aarch64-static");
    let (tmp, project) = retail_store();
    compile_catalog(&project);
    let out = tmp.path().join("out");
    let report = ok(ocibuild(
        &project,
        &["build", "--out", out.to_str().unwrap(), "--format", "json"],
    ));
    let report: Value = serde_json::from_str(&report).unwrap();
    let services = report.as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cart", "catalog", "checkout", "orders", "ui"]);
    assert_eq!(
        list_files(&out),
        ["cart", "catalog", "checkout", "orders", "ui"]
            .iter()
            .flat_map(|s| {
                list_files(&out.join(s))
                    .into_iter()
                    .map(move |f| format!("{s}/{f}"))
                    .chain([s.to_string()])
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "nothing but the five layouts in the output directory"
    );

    for svc in services {
        let name = svc["name"].as_str().unwrap();
        assert_eq!(svc["repository"], format!("retail-store-{name}"));
        let layout = out.join(name);
        let src = format!("oci:{}:latest", layout.display());

        // The raw index, as skopeo reads it, is the one reported.
        let raw = run(Command::new("skopeo").args(["inspect", "--raw", &src]));
        assert_eq!(
            sha256_hex(raw.as_bytes()),
            svc["index_digest"].as_str().unwrap(),
            "{name}"
        );
        let index: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let plats: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let p = &m["platform"];
                format!(
                    "{}/{}{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap(),
                    p["variant"]
                        .as_str()
                        .map(|v| format!("/{v}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(plats, ["linux/amd64", "linux/arm64/v8"], "{name}");

        // A full copy to another layout keeps every digest.
        let copy = tmp.path().join(format!("copy-{name}"));
        run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "--all",
            &src,
            &format!("oci:{}:latest", copy.display()),
        ]));
        let raw_copy = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:latest", copy.display()),
        ]));
        assert_eq!(raw_copy, raw, "{name}: skopeo copy --all changed the index");

        for (arch, platform) in [("amd64", "linux/amd64"), ("arm64", "linux/arm64")] {
            let platform: Platform = platform.parse().unwrap();
            let one = tmp.path().join(format!("one-{name}-{arch}"));
            run(Command::new("skopeo").args([
                "--insecure-policy",
                "--override-arch",
                arch,
                "copy",
                &src,
                &format!("oci:{}:x", one.display()),
            ]));
            let cfg: Value = serde_json::from_str(&run(Command::new("skopeo").args([
                "inspect",
                "--config",
                &format!("oci:{}:x", one.display()),
            ])))
            .unwrap();
            assert_eq!(cfg["architecture"], arch, "{name}");
            assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
            let bundle = tmp.path().join(format!("bundle-{name}-{arch}"));
            run(Command::new("umoci")
                .args(["unpack", "--image", &format!("{}:x", one.display())])
                .arg(&bundle));
            let rootfs = bundle.join("rootfs");
            let want = expected_tree(&project, name, &platform);
            let got = actual_tree(&rootfs);
            assert!(
                got == want,
                "{name} {arch}: unpacked tree differs\n--- expected\n{}--- unpacked\n{}",
                describe(&want),
                describe(&got)
            );
            assert_eq!(
                fs::read_to_string(rootfs.join("etc/ocibuild-base-arch"))
                    .unwrap()
                    .trim(),
                arch
            );

            let runtime: Value =
                serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
            let env: Vec<&str> = runtime["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(env.contains(&"PORT=8080"), "{name}: {env:?}");
            assert!(
                env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin")),
                "{name}: base env kept: {env:?}"
            );

            if name == "catalog" {
                assert_eq!(
                    runtime["process"]["args"],
                    serde_json::json!(["/app/catalog"])
                );
                assert_eq!(runtime["process"]["cwd"], "/app");
                assert_eq!(runtime["process"]["user"]["uid"], 1000);
                assert_eq!(runtime["process"]["user"]["gid"], 1000);
                let said = run_catalog(&rootfs.join("app/catalog"), arch, "--from-image");
                assert_eq!(
                    said.trim(),
                    format!("catalog running on {arch} --from-image")
                );
                assert!(rootfs.join("app/data").is_dir());
                assert_eq!(
                    fs::read_dir(rootfs.join("app/data")).unwrap().count(),
                    0,
                    "data/ is empty in the image"
                );
            }
        }
    }
}

#[test]
fn platform_independent_layers_are_built_once_and_shared() {
    let (tmp, project) = retail_store();
    let out = tmp.path().join("out");
    let report: Value = serde_json::from_str(&ok(ocibuild(
        &project,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
            "--service",
            "ui,catalog",
        ],
    )))
    .unwrap();
    let layers = |svc: usize, p: usize| -> Vec<(String, bool)> {
        report[svc]["platforms"][p]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().to_string(),
                    l["from_base"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    // services come back in the order named
    assert_eq!(report[0]["name"], "ui");
    let (ui_amd, ui_arm) = (layers(0, 0), layers(0, 1));
    assert_eq!(ui_amd.len(), 4);
    assert_eq!(
        ui_amd[..2].iter().filter(|l| l.1).count(),
        2,
        "two base layers first"
    );
    assert_eq!(
        ui_amd[2..],
        ui_arm[2..],
        "the ui's jars are the same blobs on both platforms"
    );
    assert_ne!(ui_amd[1], ui_arm[1], "the base's arch layer differs");
    let (cat_amd, cat_arm) = (layers(1, 0), layers(1, 1));
    assert_ne!(
        cat_amd[2], cat_arm[2],
        "catalog binaries differ per platform"
    );
    assert_eq!(cat_amd[0], ui_amd[0], "same base layer in both services");
    // every blob named in the reports exists with the reported size
    for svc in report.as_array().unwrap() {
        for p in svc["platforms"].as_array().unwrap() {
            for l in p["layers"].as_array().unwrap() {
                let d = l["digest"].as_str().unwrap();
                let path = out
                    .join(svc["name"].as_str().unwrap())
                    .join("blobs/sha256")
                    .join(&d[7..]);
                let bytes = fs::read(&path).unwrap();
                assert_eq!(bytes.len() as u64, l["size"].as_u64().unwrap());
                assert_eq!(sha256_hex(&bytes), d);
            }
        }
    }
}

#[test]
fn tags_services_and_platforms_can_be_chosen() {
    require("skopeo");
    let (tmp, project) = retail_store();
    let out = tmp.path().join("out");
    let text = ok(ocibuild(
        &project,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "catalog",
            "--platform",
            "linux/arm64",
            "--tag",
            "v1.2.0,abc1234",
            "--tag",
            "latest",
        ],
    ));
    assert!(text.starts_with("catalog (retail-store-catalog)"), "{text}");
    assert_eq!(
        list_files(&out)
            .iter()
            .filter(|f| !f.contains('/'))
            .collect::<Vec<_>>(),
        ["catalog"]
    );
    let index: Value =
        serde_json::from_slice(&fs::read(out.join("catalog/index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(refs, ["v1.2.0", "abc1234", "latest"]);
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:v1.2.0", out.join("catalog").display()),
    ]));
    let idx: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(idx["manifests"][0]["platform"]["architecture"], "arm64");

    // A second build replaces the layout in place.
    ok(ocibuild(
        &project,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "catalog",
        ],
    ));
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:latest", out.join("catalog").display()),
    ]));
    let idx: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
    assert!(
        list_files(&out)
            .iter()
            .all(|f| !f.contains(".ocibuild-staging")),
        "staging left behind"
    );
}

#[test]
fn base_image_fixture_is_current() {
    // The committed base layout is exactly what fixtures/make-base-image.sh makes.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("base-images");
    ok(ocibuild(
        &repo(),
        &[
            "build",
            "--config",
            "fixtures/base-image/ocibuild.toml",
            "--out",
            out.to_str().unwrap(),
            "--tag",
            "v1",
            "--tag",
            "latest",
        ],
    ));
    let committed = repo().join("fixtures/retail-store/base-images/static");
    let fresh = out.join("static");
    assert_eq!(
        list_files(&fresh),
        list_files(&committed),
        "run fixtures/make-base-image.sh"
    );
    for f in list_files(&fresh) {
        if fresh.join(&f).is_file() {
            assert_eq!(
                fs::read(fresh.join(&f)).unwrap(),
                fs::read(committed.join(&f)).unwrap(),
                "{f} differs: run fixtures/make-base-image.sh"
            );
        }
    }
}

#[test]
fn hard_links_long_names_and_non_utf8_names_survive_umoci() {
    require("skopeo");
    require("umoci");
    let (tmp, p) = retail_store();
    let st = p.join("src/cart/target/static");
    fs::write(st.join("z-original.txt"), "shared bytes").unwrap();
    fs::hard_link(st.join("z-original.txt"), st.join("a-link.txt")).unwrap();
    let deep = st.join("d".repeat(60)).join("e".repeat(60));
    fs::create_dir_all(&deep).unwrap();
    let long_name = format!("{}.txt", "f".repeat(90));
    fs::write(deep.join(&long_name), "deep").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.txt");
    fs::write(st.join(odd), "latin-1 name").unwrap();

    let out = tmp.path().join("out");
    ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "cart",
            "--platform",
            "linux/amd64",
        ],
    ));
    let one = tmp.path().join("one");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:latest", out.join("cart").display()),
        &format!("oci:{}:x", one.display()),
    ]));
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:x", one.display())])
        .arg(&bundle));
    let app = bundle.join("rootfs/app/static");
    let a = fs::metadata(app.join("a-link.txt")).unwrap();
    let z = fs::metadata(app.join("z-original.txt")).unwrap();
    assert_eq!(
        a.ino(),
        z.ino(),
        "a hard link in the tree is a hard link in the image"
    );
    assert_eq!(
        fs::read_to_string(app.join("z-original.txt")).unwrap(),
        "shared bytes"
    );
    let deep_in_image = app
        .join("d".repeat(60))
        .join("e".repeat(60))
        .join(&long_name);
    assert!(deep_in_image.as_os_str().len() > 200);
    assert_eq!(fs::read_to_string(deep_in_image).unwrap(), "deep");
    assert_eq!(fs::read_to_string(app.join(odd)).unwrap(), "latin-1 name");
    assert_eq!(
        fs::read_to_string(app.join("café-menü.txt")).unwrap(),
        "Menü du café\n"
    );
}

#[test]
fn layers_of_many_chunks_are_read_by_every_gzip_reader_and_umoci() {
    require("skopeo");
    require("umoci");
    require("gzip");
    require("python3");
    let (tmp, p) = retail_store();
    // 3.5 MiB of mixed content: four independently compressed chunks.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..3_670_016usize)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 4 == 0 {
                x as u8
            } else {
                b"jar class data "[i % 15]
            }
        })
        .collect();
    fs::write(p.join("src/cart/target/lib/big.jar"), &big).unwrap();
    let out = tmp.path().join("out");
    let report: Value = serde_json::from_str(&ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "cart",
            "--platform",
            "linux/arm64",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let layer = report[0]["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["size"].as_u64().unwrap() > 1 << 20)
        .expect("a big layer")
        .clone();
    let blob = out
        .join("cart/blobs/sha256")
        .join(&layer["digest"].as_str().unwrap()[7..]);
    let members = fs::read(&blob)
        .unwrap()
        .windows(4)
        .filter(|w| *w == [0x1f, 0x8b, 8, 0])
        .count();
    assert!(members >= 4, "{members} gzip members");
    // zlib's gzip reads it whole and checks every member's CRC.
    run(Command::new("gzip").arg("-t").arg(&blob));
    let zcat = Command::new("gzip").arg("-dc").arg(&blob).output().unwrap();
    assert_eq!(sha256_hex(&zcat.stdout), layer["diff_id"].as_str().unwrap());
    // Python's gzip too.
    let py = run(Command::new("python3").args([
        "-c",
        &format!("import gzip, hashlib; print('sha256:' + hashlib.sha256(gzip.open('{}').read()).hexdigest())", blob.display()),
    ]));
    assert_eq!(py.trim(), layer["diff_id"].as_str().unwrap());
    // And Go's, through skopeo and umoci: the big file comes back intact.
    let one = tmp.path().join("one");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "--override-arch",
        "arm64",
        "copy",
        &format!("oci:{}:latest", out.join("cart").display()),
        &format!("oci:{}:x", one.display()),
    ]));
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:x", one.display())])
        .arg(&bundle));
    assert!(fs::read(bundle.join("rootfs/app/lib/big.jar")).unwrap() == big);
}

/// Every entry under `root`, by relative path: `link -> target`, `file <size>` or `dir`.
fn entries_of(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                "dir".to_string()
            } else {
                format!("file {}", meta.len())
            };
            out.insert(rel, what);
        }
    }
    out
}

/// Build `service` of `project` for linux/amd64 and unpack it with umoci; the rootfs.
fn build_and_unpack(tmp: &Path, project: &Path, service: &str) -> std::path::PathBuf {
    let out = tmp.join("out");
    ok(ocibuild(
        project,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            service,
            "--platform",
            "linux/amd64",
        ],
    ));
    let one = tmp.join("one");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:latest", out.join(service).display()),
        &format!("oci:{}:x", one.display()),
    ]));
    let bundle = tmp.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:x", one.display())])
        .arg(&bundle));
    bundle.join("rootfs")
}

#[test]
fn every_symlink_is_stored_verbatim_and_unpacks_as_it_was() {
    require("skopeo");
    require("umoci");
    let (tmp, p) = retail_store();
    let st = p.join("src/cart/target/static/links");
    fs::create_dir_all(&st).unwrap();
    let links = [
        ("shadow", "/etc/shadow"),
        ("jdk-conf", "/etc/java-17-openjdk/accessibility.properties"),
        ("shared", "../../../../shared/y"),
        ("dangling", "no/such/file"),
        ("loop-a", "loop-b"),
        ("loop-b", "loop-a"),
        ("etc", "/etc"),
    ];
    for (at, to) in links {
        std::os::unix::fs::symlink(to, st.join(at)).unwrap();
    }
    let rootfs = build_and_unpack(tmp.path(), &p, "cart");
    for (at, to) in links {
        let got = rootfs.join("app/static/links").join(at);
        let meta = fs::symlink_metadata(&got).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(
            meta.file_type().is_symlink(),
            "{at} is still a link, never its target's bytes"
        );
        assert_eq!(fs::read_link(&got).unwrap(), Path::new(to), "{at}");
    }
}

#[test]
fn a_real_jdk_tree_builds_and_unpacks_link_for_link() {
    require("skopeo");
    require("umoci");
    let jdk = fs::read_dir("/usr/lib/jvm")
        .ok()
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("java-17-openjdk-") && !p.is_symlink() && p.join("bin/java").exists()
        })
        .expect("no JDK 17 under /usr/lib/jvm: run the tests with scripts/test.sh, which installs openjdk-17-jre-headless");
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    fs::create_dir_all(&project).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(&jdk)
        .arg(project.join("jre")));
    // The biggest files only cost time here; every link stays.
    for big in ["lib/modules", "lib/server", "jmods", "lib/src.zip"] {
        let p = project.join("jre").join(big);
        if p.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else if p.exists() {
            fs::remove_file(&p).unwrap();
        }
    }
    fs::write(
        project.join("ocibuild.toml"),
        "[build]\nplatforms = [\"linux/amd64\"]\nbase = \"scratch\"\n\n[services.jre]\nrepository = \"jre\"\n\
         [[services.jre.layers]]\nsource = \"jre\"\ntarget = \"/usr/lib/jvm/java-17\"\n",
    )
    .unwrap();
    let want = entries_of(&project.join("jre"));
    let absolute = want.values().filter(|w| w.starts_with("link -> /")).count();
    assert!(absolute > 5, "a JDK tree has absolute links: {absolute}");
    let rootfs = build_and_unpack(tmp.path(), &project, "jre");
    let got = entries_of(&rootfs.join("usr/lib/jvm/java-17"));
    let differ: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} became {:?}", got.get(k)))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert_eq!(got.len(), want.len());
}

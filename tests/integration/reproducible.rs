//! Reproducibility: the same inputs give the same digests whatever the checkout directory,
//! the files' mtimes and the umask; SOURCE_DATE_EPOCH sets every timestamp.

use crate::common::*;
use flate2::read::GzDecoder;
use serde_json::Value;
use std::fs;
use std::process::Command;

fn digests(report: &str) -> Vec<(String, String, Vec<String>)> {
    let v: Value = serde_json::from_str(report).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["index_digest"].as_str().unwrap().to_string(),
                s["platforms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["manifest_digest"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn two_checkouts_with_other_mtimes_and_umask_give_identical_images() {
    let (tmp_a, a) = retail_store();
    let out_a = tmp_a.path().join("out");
    let first = ok(ocibuild(
        &a,
        &[
            "build",
            "--out",
            out_a.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));

    // Second checkout: copied under umask 077 (cp without -p: modes lose group/other bits, mtimes
    // are now), then every mtime moved again; built under umask 077 from a deeper directory.
    let tmp_b = tempfile::tempdir().unwrap();
    let b = tmp_b.path().join("elsewhere/deeper/retail-store");
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    let script = format!(
        "umask 077 && cp -r '{}' '{}' && find '{}' -exec touch -h -d '2011-11-11 11:11:11' {{}} + && cd '{}' && '{}' build --out ../out --format json",
        repo().join("fixtures/retail-store").display(),
        b.display(),
        b.display(),
        b.display(),
        env!("CARGO_BIN_EXE_ocibuild"),
    );
    let second = run(Command::new("sh")
        .args(["-c", &script])
        .env("SOURCE_DATE_EPOCH", "0"));
    let mode = fs::metadata(b.join("src/ui/target/lib/ui-common.jar")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        mode.permissions().mode() & 0o777,
        0o600,
        "the copy really has other modes"
    );

    assert_eq!(digests(&first), digests(&second));
    assert_eq!(digests(&first).len(), 5);
    // and the layouts hold the same blobs
    let out_b = b.parent().unwrap().join("out");
    for svc in ["cart", "catalog", "checkout", "orders", "ui"] {
        assert_eq!(
            list_files(&out_a.join(svc)),
            list_files(&out_b.join(svc)),
            "{svc}"
        );
    }
}

#[test]
fn source_date_epoch_sets_every_timestamp() {
    let (tmp, project) = retail_store();
    let out = tmp.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args([
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "cart",
            "--platform",
            "linux/amd64",
            "--format",
            "json",
        ])
        .current_dir(&project)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&ok(o)).unwrap();
    let p = &report[0]["platforms"][0];
    let blobs = out.join("cart/blobs/sha256");
    let cfg: Value = serde_json::from_slice(
        &fs::read(blobs.join(&p["config_digest"].as_str().unwrap()[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    for h in cfg["history"].as_array().unwrap().iter().skip(2) {
        assert_eq!(h["created"], "2023-11-14T22:13:20Z");
    }
    let mut entries = 0;
    for l in p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| !l["from_base"].as_bool().unwrap())
    {
        let f = fs::File::open(blobs.join(&l["digest"].as_str().unwrap()[7..])).unwrap();
        let mut ar = tar::Archive::new(GzDecoder::new(f));
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 1_700_000_000);
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            entries += 1;
        }
    }
    assert!(entries >= 5, "{entries}");
    // a bad SOURCE_DATE_EPOCH is refused
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ocibuild"))
        .args(["build", "--out", out.to_str().unwrap()])
        .current_dir(&project)
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert!(fails(o).contains("SOURCE_DATE_EPOCH"));
}

mod cache {
    use super::*;

    fn build(
        project: &std::path::Path,
        out: &std::path::Path,
        cache: &std::path::Path,
        extra: &[&str],
    ) -> Value {
        let o = Command::new(env!("CARGO_BIN_EXE_ocibuild"))
            .args([
                "build",
                "--out",
                out.to_str().unwrap(),
                "--service",
                "cart,catalog",
                "--format",
                "json",
                "--cache-dir",
                cache.to_str().unwrap(),
            ])
            .args(extra)
            .current_dir(project)
            .env("SOURCE_DATE_EPOCH", "0")
            .output()
            .unwrap();
        serde_json::from_str(&ok(o)).unwrap()
    }

    /// (digest, cached) of every layer that is not the base's.
    fn own(report: &Value) -> Vec<(String, bool)> {
        report
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["platforms"].as_array().unwrap().iter())
            .flat_map(|p| p["layers"].as_array().unwrap().iter())
            .filter(|l| l["from_base"] == false)
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().to_string(),
                    l["cached"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn unchanged_layers_come_from_the_cache_changed_ones_are_rebuilt() {
        let (tmp, p) = retail_store();
        let cache = tmp.path().join("cache");
        let out = tmp.path().join("out");
        let first = own(&build(&p, &out, &cache, &[]));
        assert!(first.iter().all(|l| !l.1), "a cold build builds everything");
        let second = own(&build(&p, &out, &cache, &[]));
        assert!(
            second.iter().all(|l| l.1),
            "a warm build compresses nothing: {second:?}"
        );
        assert_eq!(
            first.iter().map(|l| &l.0).collect::<Vec<_>>(),
            second.iter().map(|l| &l.0).collect::<Vec<_>>()
        );

        // A fresh checkout elsewhere (other mtimes, inodes): found by content.
        let copy = tmp.path().join("copy");
        crate::common::copy_tree(&p, &copy);
        let third = own(&build(&copy, &tmp.path().join("out2"), &cache, &[]));
        assert!(third.iter().all(|l| l.1), "{third:?}");
        assert_eq!(
            third.iter().map(|l| &l.0).collect::<Vec<_>>(),
            second.iter().map(|l| &l.0).collect::<Vec<_>>()
        );

        // A changed file (same size, so only the content says so): that layer is rebuilt.
        let f = copy.join("src/cart/target/static/index.html");
        let mut bytes = fs::read(&f).unwrap();
        bytes[1] ^= 0x20;
        fs::write(&f, &bytes).unwrap();
        let fourth = build(&copy, &tmp.path().join("out3"), &cache, &[]);
        let layers = own(&fourth);
        assert_eq!(
            layers.iter().filter(|l| !l.1).count(),
            2,
            "the static layer, on both platforms: {layers:?}"
        );
        assert!(!layers
            .iter()
            .any(|l| !l.1 && second.iter().any(|s| s.0 == l.0)));

        // --no-cache builds everything again, to the same bytes.
        let fifth = own(&build(
            &copy,
            &tmp.path().join("out4"),
            &cache,
            &["--no-cache"],
        ));
        assert!(fifth.iter().all(|l| !l.1));
        assert_eq!(
            fifth.iter().map(|l| &l.0).collect::<Vec<_>>(),
            layers.iter().map(|l| &l.0).collect::<Vec<_>>()
        );

        // A cache whose blobs went missing is not trusted.
        fs::remove_dir_all(cache.join("v1/blobs")).unwrap();
        fs::create_dir_all(cache.join("v1/blobs/sha256")).unwrap();
        let sixth = own(&build(&copy, &tmp.path().join("out5"), &cache, &[]));
        assert!(sixth.iter().all(|l| !l.1));
        assert_eq!(
            sixth.iter().map(|l| &l.0).collect::<Vec<_>>(),
            layers.iter().map(|l| &l.0).collect::<Vec<_>>()
        );
    }
}

#[test]
fn zstd_layers_are_marked_and_readable() {
    require("zstd");
    require("skopeo");
    let (tmp, p) = retail_store();
    let cfg = fs::read_to_string(p.join("ocibuild.toml")).unwrap();
    fs::write(
        p.join("ocibuild.toml"),
        cfg.replacen(
            "[build]\n",
            "[build]\ncompression = \"zstd\"\ncompression_level = 5\n",
            1,
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let report: Value = serde_json::from_str(&ok(ocibuild(
        &p,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--service",
            "checkout",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let own: Vec<&Value> = report[0]["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["from_base"] == false)
        .collect();
    assert!(!own.is_empty());
    for l in own {
        assert_eq!(
            l["media_type"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let blob = out
            .join("checkout/blobs/sha256")
            .join(&l["digest"].as_str().unwrap()[7..]);
        let tar = Command::new("zstd")
            .args(["-dc"])
            .arg(&blob)
            .output()
            .unwrap();
        assert!(tar.status.success());
        use sha2::Digest as _;
        assert_eq!(
            format!("sha256:{:x}", sha2::Sha256::digest(&tar.stdout)),
            l["diff_id"].as_str().unwrap()
        );
    }
    // A full copy by skopeo (which reads the media types) keeps the index.
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--all",
        &format!("oci:{}:latest", out.join("checkout").display()),
        &format!("oci:{}:x", tmp.path().join("copy").display()),
    ]));
}

/// Index digests of the fixtures' images, recorded before the push/app redesign (issue 11):
/// a refactor must leave every byte of every image as it was. checkout, orders and ui were
/// re-recorded when their fixtures gained package metadata (issue 14: a lockfile, real jars,
/// a dist-info); the binary from before that change gives the same new digests. Change these only with a change
/// that means to change the images' bytes (and say so in its commit).
#[test]
fn fixture_images_keep_their_recorded_digests() {
    let recorded = |args: &[&str], want: &[(&str, &str)]| {
        let (tmp, project) = retail_store();
        let out = tmp.path().join("out");
        let mut all = vec!["build", "--no-cache", "--format", "json", "--out"];
        all.push(out.to_str().unwrap());
        all.extend_from_slice(args);
        let got: Vec<(String, String)> = digests(&ok(ocibuild(&project, &all)))
            .into_iter()
            .map(|(name, index, _)| (name, index))
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, d)| (n.to_string(), format!("sha256:{d}")))
            .collect();
        assert_eq!(got, want, "build {args:?}");
    };
    recorded(
        &[],
        &[
            (
                "cart",
                "4c9ad230d48fc36d7335995b31bb260bb8133a602f862e9dc7b289ca472dbdad",
            ),
            (
                "catalog",
                "0337a6928849da7bdc6f293c4bf725423767d9bee8cefa1f9e4084fa20259189",
            ),
            (
                "checkout",
                "f6e5beccabe9229176141fca888f8c0cd74ef7cdd5d61b544f1cdbebdcc28a98",
            ),
            (
                "orders",
                "0bcaba9e74cfa651ccbd78fcfa89d9c493e9de8b71ef4e6ee014ebd32cca8227",
            ),
            (
                "ui",
                "0344e51e954886b33ef64151f18d419c8c24919411d1deb5e2e4a43d4617e792",
            ),
        ],
    );
    recorded(
        &["--fast"],
        &[
            (
                "cart",
                "a44347fb99c1a9142f002be5db7a916ceeacca0753568bb019f54dcff6f87d3d",
            ),
            (
                "catalog",
                "ed8ed261f64c47c11a9754980f4c4173cf79c1ca17dae4fcf18cf635604d3ffe",
            ),
            (
                "checkout",
                "5ab7e73b875acea6dfb1b3992e560d70979fb1eac4781044077afebff42ce23c",
            ),
            (
                "orders",
                "731750e589ae4e7faaee26cd9b4f6d6d39c7979c4a33efcba4b46f9a232446b9",
            ),
            (
                "ui",
                "37291b0f3dd9a34d3cc004be77b54a2699b47a375d3b6e151df1adc94942af06",
            ),
        ],
    );
    recorded(
        &["--service", "catalog", "--platform", "linux/arm64"],
        &[(
            "catalog",
            "68e6c8171d0e65cfc69eb3ef6b646af90e6c4cd3f14e84df3b97d058f980bc4f",
        )],
    );
}

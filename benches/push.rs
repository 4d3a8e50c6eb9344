//! Push benchmark: a generated monorepo (five services, two platforms, a 40 MiB runtime layer
//! shared by all, 40 MiB of app each, 1 MiB of per-platform binary) pushed to a local
//! `docker-registry` through a proxy that adds 30 ms to every request (real registries are far
//! away), cold (nothing there) and warm (everything there): `ocibuild push --layout` against a
//! CI script running `skopeo copy --all` for each service, one after another, through the same
//! proxy. Prints the median of 3 runs of each and the ratios (BENCHMARKS.md keeps them).
//! Then the same services on a base image kept in that registry (the 40 MiB runtime moves into
//! the base): `ocibuild build` on the registry base against pulling the base first (`skopeo copy
//! --all` to a layout) and building on the layout, and the push of the result (base layers
//! mounted) against the skopeo script pushing the layouts built on the pulled base.
//! Last, the registry layer cache: a fresh runner against the registry cache, no cache and a
//! warm local cache (`support/registry_cache.rs`).
//! Run with `cargo bench --bench push` (needs docker-registry and skopeo: scripts/test.sh).

#[path = "support/mod.rs"]
mod support;
use support::{have, random_bytes};

#[path = "support/registry_cache.rs"]
mod registry_cache;

#[path = "../tests/integration/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVICES: usize = 5;
const RUNS: usize = 3;

fn write_files(dir: &Path, seed: u64, total: usize, files: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("part{i:03}.bin")),
            random_bytes(seed * 1000 + i as u64, total / files),
        )
        .unwrap();
    }
}

fn ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CI script people write today: `skopeo copy --all` of each service's layout under
/// `layouts` to `dest/svcN:latest`, one after another.
fn skopeo_script(layouts: &Path, dest: &str) {
    for i in 0..SERVICES {
        skopeo_copy(
            &format!("oci:{}:latest", layouts.join(format!("svc{i}")).display()),
            &format!("docker://{dest}/svc{i}:latest"),
        );
    }
}

/// `skopeo copy --all` from `src` to `dest`, registries over plain HTTP.
fn skopeo_copy(src: &str, dest: &str) {
    ok(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--all",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        src,
        dest,
    ]));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` / `cargo bench -- --list` probe
    }
    for tool in ["docker-registry", "skopeo"] {
        if !have(tool) {
            eprintln!("{tool} is not installed (scripts/test.sh installs it); skipping the push benchmark");
            return;
        }
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("mono");
    const MIB: usize = 1 << 20;
    write_files(&root.join("runtime"), 1, 40 * MIB, 40);
    let mut cfg = String::from("[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n");
    for s in 0..SERVICES {
        write_files(
            &root.join(format!("svc{s}/app")),
            10 + s as u64,
            40 * MIB,
            20,
        );
        for arch in ["amd64", "arm64"] {
            write_files(
                &root.join(format!("svc{s}/bin/linux-{arch}")),
                100 + s as u64 * 2 + (arch == "arm64") as u64,
                MIB,
                1,
            );
        }
        cfg.push_str(&format!(
            "[services.svc{s}]\nrepository = \"svc{s}\"\nentrypoint = [\"/usr/local/bin/part000.bin\"]\n\
             [[services.svc{s}.layers]]\nsource = \"runtime\"\ntarget = \"/opt/runtime\"\n\
             [[services.svc{s}.layers]]\nsource = \"svc{s}/app\"\ntarget = \"/app\"\n\
             [[services.svc{s}.layers]]\nsource = \"svc{s}/bin/{{os}}-{{arch}}\"\ntarget = \"/usr/local/bin\"\n"
        ));
    }
    fs::write(root.join("ocibuild.toml"), cfg).unwrap();
    let bin = support::ocibuild_bin();
    let bin = bin.as_str();
    let layouts = t.path().join("layouts");
    eprintln!("building the generated monorepo ...");
    ok(Command::new(bin)
        .current_dir(&root)
        .args(["build", "--out"])
        .arg(&layouts));

    // The registry and the 30 ms proxy in front of it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg_cfg = t.path().join("registry.yml");
    fs::write(
        &reg_cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            t.path().join("data").display()
        ),
    )
    .unwrap();
    let mut registry: Child = Command::new("docker-registry")
        .arg("serve")
        .arg(&reg_cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rule: proxy::Rule =
        Arc::new(|_: &str, _: &str, _: usize| proxy::Fault::Slow(Duration::from_millis(30)));
    let px = proxy::FaultProxy::start(port, rule, false);
    let host = px.host();

    let key = t.path().join("signing.pem");
    ok(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key));
    let key = key.to_string_lossy().into_owned();
    let ocibuild_push = |prefix: &str, extra: &[&str]| {
        let s = Instant::now();
        ok(Command::new(bin)
            .current_dir(&root)
            .args(["push", "-q", "--layout"])
            .arg(&layouts)
            .args(["--registry", &format!("{host}/{prefix}"), "--jobs", "8"])
            .args(extra)
            .env("DOCKER_CONFIG", t.path()));
        s.elapsed()
    };
    let bare = |prefix: &str| ocibuild_push(prefix, &["--sbom", "none", "--no-provenance"]);
    let attested = |prefix: &str| ocibuild_push(prefix, &[]);
    let signed = |prefix: &str| ocibuild_push(prefix, &["--sign-key", &key]);
    let skopeo_run = |prefix: &str| {
        let s = Instant::now();
        skopeo_script(&layouts, &format!("{host}/{prefix}"));
        s.elapsed()
    };

    let mut rows = Vec::new();
    for (tool, run) in [
        ("ocibuild push", &attested as &dyn Fn(&str) -> Duration),
        ("skopeo copy --all x5", &skopeo_run),
        ("ocibuild push, nothing attached", &bare),
        ("ocibuild push, signed too", &signed),
    ] {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for r in 0..RUNS {
            let prefix = format!("{}-{r}", tool.replace([' ', ',', '-'], ""));
            cold.push(run(&prefix));
            warm.push(run(&prefix));
        }
        eprintln!("{tool}: cold {cold:?} warm {warm:?}");
        rows.push((tool, median(cold), median(warm)));
    }
    let (o, s) = (&rows[0], &rows[1]);
    println!("push of 5 services x 2 platforms (40 MiB runtime shared, 40 MiB app each), 30 ms added per request; median of {RUNS}");
    println!("| scenario | ocibuild push (SBOM + provenance) | skopeo copy --all, one service after another | skopeo / ocibuild |");
    println!("|---|---|---|---|");
    println!(
        "| cold | {:.2} s | {:.2} s | {:.1}x |",
        o.1.as_secs_f64(),
        s.1.as_secs_f64(),
        s.1.as_secs_f64() / o.1.as_secs_f64()
    );
    println!(
        "| warm | {:.2} s | {:.2} s | {:.1}x |",
        o.2.as_secs_f64(),
        s.2.as_secs_f64(),
        s.2.as_secs_f64() / o.2.as_secs_f64()
    );
    let (b, g) = (&rows[2], &rows[3]);
    println!();
    println!("the cost of attaching, same run: nothing attached / SBOM per platform + provenance (the default) / and signatures");
    println!("| scenario | nothing attached | default | default / nothing | signed too | signed / nothing |");
    println!("|---|---|---|---|---|---|");
    for (name, i) in [("cold", 1), ("warm", 2)] {
        let pick = |r: &(&str, Duration, Duration)| if i == 1 { r.1 } else { r.2 }.as_secs_f64();
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.2}x | {:.2} s | {:.2}x |",
            pick(b),
            pick(o),
            pick(o) / pick(b),
            pick(g),
            pick(g) / pick(b)
        );
    }

    registry_base(t.path(), &root, &host, port);
    let seen = || px.seen.lock().map_or(0, |s| s.len());
    registry_cache::run(t.path(), bin, &host, RUNS, &seen);
    let _ = registry.kill();
    let _ = registry.wait();
}

/// The registry-base scenarios: the runtime layer moves into a base image in the registry.
fn registry_base(t: &Path, root: &Path, host: &str, port: u16) {
    let bin = support::ocibuild_bin();
    let bin = bin.as_str();
    // The base: the runtime layer, both platforms, put in the registry directly.
    fs::write(
        root.join("base.toml"),
        "[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
         [services.base]\nrepository = \"base/runtime\"\n\
         [[services.base.layers]]\nsource = \"runtime\"\ntarget = \"/opt/runtime\"\n",
    )
    .unwrap();
    let base_layout = t.join("base-layout");
    ok(Command::new(bin)
        .current_dir(root)
        .args(["build", "--no-cache", "--config", "base.toml", "--out"])
        .arg(&base_layout));
    skopeo_copy(
        &format!("oci:{}:latest", base_layout.join("base").display()),
        &format!("docker://127.0.0.1:{port}/base/runtime:v1"),
    );
    let services = |base: &str| {
        let mut cfg = String::from("[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n");
        cfg.push_str(&format!("base = \"{base}\"\n"));
        for s in 0..SERVICES {
            cfg.push_str(&format!(
                "[services.svc{s}]\nrepository = \"svc{s}\"\n\
                 [[services.svc{s}.layers]]\nsource = \"svc{s}/app\"\ntarget = \"/app\"\n\
                 [[services.svc{s}.layers]]\nsource = \"svc{s}/bin/{{os}}-{{arch}}\"\ntarget = \"/usr/local/bin\"\n"
            ));
        }
        cfg
    };
    let pulled = t.join("pulled");
    fs::write(
        root.join("remote.toml"),
        services(&format!("{host}/base/runtime:v1")),
    )
    .unwrap();
    fs::write(
        root.join("local.toml"),
        services(&format!("oci:{}:v1", pulled.display())),
    )
    .unwrap();
    // The services' own layers come from a warm layer cache, so the figures are the base's
    // handling (what a rebuild after a base update or on a fresh checkout pays); `--pull`
    // makes every run ask the registry what the tag points at.
    let cache = t.join("cache");
    let build = |config: &str, out: &Path| {
        let _ = fs::remove_dir_all(out);
        ok(Command::new(bin)
            .current_dir(root)
            .args(["build", "--pull", "--config", config, "--out"])
            .arg(out)
            .arg("--cache-dir")
            .arg(&cache)
            .env("DOCKER_CONFIG", t));
    };
    build("remote.toml", &t.join("warm-up"));
    let remote_out = t.join("on-registry-base");
    let local_out = t.join("on-pulled-base");
    let (mut ours, mut pull_then_build) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let s = Instant::now();
        build("remote.toml", &remote_out);
        ours.push(s.elapsed());
        let _ = fs::remove_dir_all(&pulled);
        let s = Instant::now();
        skopeo_copy(
            &format!("docker://{host}/base/runtime:v1"),
            &format!("oci:{}:v1", pulled.display()),
        );
        build("local.toml", &local_out);
        pull_then_build.push(s.elapsed());
    }
    eprintln!("build on registry base {ours:?}; pull then build {pull_then_build:?}");
    let (ours, theirs) = (median(ours), median(pull_then_build));

    let (mut push_ours, mut push_skopeo) = (Vec::new(), Vec::new());
    for r in 0..RUNS {
        let s = Instant::now();
        ok(Command::new(bin)
            .current_dir(root)
            .args(["push", "-q", "--config", "remote.toml", "--all", "--layout"])
            .arg(&remote_out)
            .args(["--registry", &format!("{host}/rb-{r}"), "--jobs", "8"])
            .env("DOCKER_CONFIG", t));
        push_ours.push(s.elapsed());
        let s = Instant::now();
        skopeo_script(&local_out, &format!("{host}/sk-{r}"));
        push_skopeo.push(s.elapsed());
    }
    eprintln!("push on registry base {push_ours:?}; skopeo {push_skopeo:?}");
    let (po, ps) = (median(push_ours), median(push_skopeo));
    println!();
    println!(
        "the same services on a 40 MiB two-platform base image in the registry; median of {RUNS}"
    );
    println!("| step | ocibuild | baseline | baseline / ocibuild |");
    println!("|---|---|---|---|");
    println!(
        "| build, service layers cached | {:.2} s (`build --pull` on the registry base) | {:.2} s (`skopeo copy --all` the base to a layout, `build` on it) | {:.1}x |",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "| push, cold | {:.2} s (`push --layout`, base layers mounted) | {:.2} s (`skopeo copy --all` x5 of the layouts) | {:.1}x |",
        po.as_secs_f64(),
        ps.as_secs_f64(),
        ps.as_secs_f64() / po.as_secs_f64()
    );
}

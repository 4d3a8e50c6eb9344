//! TLS end to end: a real `docker-registry` serving HTTPS on loopback with a certificate from a
//! test CA made by `openssl`. ocibuild (rustls on `ring`, roots from the system store, which
//! honours `SSL_CERT_FILE`) pushes to it when the CA is trusted, and refuses, with a clear
//! error and no panic, when it is not. The scheme written in `--registry` is honoured even on a
//! loopback address.

use crate::common::{fails, ok, require, retail_store, run};
use crate::registry::TestRegistry;
use std::path::Path;
use std::process::{Command, Output};

/// Make a CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    require("openssl");
    let run = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ocibuild test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

/// A registry serving HTTPS with the server certificate of `certs`.
fn tls_registry(certs: &Path) -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    // The block lands under `http:` in the registry's config.
    let tls = format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display()
    );
    TestRegistry::start_with_auth(dir, Some(tls))
}

fn push(project: &Path, registry: &str, ca: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocibuild"));
    cmd.args([
        "push",
        "--service",
        "catalog",
        "--registry",
        registry,
        "--tag",
        "tls",
    ])
    .current_dir(project)
    .env("SOURCE_DATE_EPOCH", "0")
    .env_remove("SSL_CERT_DIR");
    match ca {
        Some(ca) => cmd.env("SSL_CERT_FILE", ca),
        // A file with no certificate: nothing is trusted.
        None => cmd.env("SSL_CERT_FILE", "/dev/null"),
    };
    cmd.output().unwrap()
}

#[test]
fn pushes_over_tls_to_a_trusted_loopback_registry_and_refuses_an_untrusted_one() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let reg = tls_registry(certs.path());
    let (_tmp, project) = retail_store();
    let url = format!("https://127.0.0.1:{}", reg.port);

    let err = fails(push(&project, &url, None));
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    ok(push(&project, &url, Some(&certs.path().join("ca.pem"))));
    let trust = tempfile::tempdir().unwrap();
    std::fs::copy(certs.path().join("ca.pem"), trust.path().join("ca.crt")).unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(trust.path())
        .arg(format!(
            "docker://127.0.0.1:{}/retail-store-catalog:tls",
            reg.port
        ))
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json"),
        "{raw}"
    );
}

//! Signing checked with tools nobody here wrote: openssl verifies our signatures and signs for
//! ours to verify; Debian trixie's skopeo 1.18 (`scripts/skopeo-trixie.sh`, sigstore support)
//! makes encrypted keys we load, signs images whose signatures we read and merge, and verifies
//! the signature manifests we write against a `sigstoreSigned` policy.

use crate::common::*;
use crate::registry::TestRegistry;
use base64::Engine;
use ocibuild::digest::Digest;
use ocibuild::sign::cosign::{
    merge_signatures, parse_payload, payload, signature_tag, signatures_in, Signature,
    SignatureManifest,
};
use ocibuild::sign::{SignError, SigningKey, VerifyingKey};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Trixie's skopeo, fetched once per run by scripts/skopeo-trixie.sh. None (with a note) only
/// when the script cannot provide it outside CI; under CI a missing one fails the test.
pub fn trixie_skopeo() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = PATH.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/skopeo-trixie.sh"))
            .output()
            .expect("running scripts/skopeo-trixie.sh");
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(PathBuf::from);
        match path {
            Some(p) if out.status.success() && p.exists() => Some(p),
            _ => {
                let why = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(
                    std::env::var_os("CI").is_none(),
                    "scripts/skopeo-trixie.sh failed under CI:\n{why}"
                );
                eprintln!(
                    "NOTE: skipping a sigstore test: scripts/skopeo-trixie.sh failed:\n{why}"
                );
                None
            }
        }
    });
    found.clone()
}

fn openssl(args: &[&str], cwd: &Path) -> String {
    require("openssl");
    run(Command::new("openssl").args(args).current_dir(cwd))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A P-256 key made by `openssl genpkey` in `dir/<name>.pem`, its public key in `<name>.pub`.
pub fn openssl_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, pubk) = (format!("{name}.pem"), format!("{name}.pub"));
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
        dir,
    );
    openssl(&["pkey", "-in", &key, "-pubout", "-out", &pubk], dir);
    (dir.join(key), dir.join(pubk))
}

#[test]
fn our_signature_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, pub_path) = openssl_key(dir.path(), "k");
    let key = SigningKey::load(&key_path, None).unwrap();
    let data = payload("127.0.0.1:5000/shop/cart", &Digest::of(b"manifest"));
    fs::write(dir.path().join("payload"), &data).unwrap();
    let sig = key.sign(&data);
    let der = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    fs::write(dir.path().join("sig.der"), der).unwrap();
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "k.pub",
            "-signature",
            "sig.der",
            "payload",
        ],
        dir.path(),
    );
    assert!(out.contains("Verified OK"), "{out}");
    // Our public key in PEM is byte for byte what openssl writes.
    assert_eq!(
        key.verifying_key().to_pem(),
        fs::read_to_string(&pub_path).unwrap()
    );
    assert_eq!(VerifyingKey::load(&pub_path).unwrap(), key.verifying_key());
}

#[test]
fn openssl_signatures_and_sec1_keys_verify_with_ours() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pub_path) = openssl_key(dir.path(), "k");
    fs::write(dir.path().join("payload"), b"some payload").unwrap();
    let vk = VerifyingKey::load(&pub_path).unwrap();
    // Many signatures: about half of openssl's have a high S, which must verify too.
    for i in 0..8 {
        let sig = format!("sig{i}.der");
        openssl(
            &["dgst", "-sha256", "-sign", "k.pem", "-out", &sig, "payload"],
            dir.path(),
        );
        let sig = b64(&fs::read(dir.path().join(&sig)).unwrap());
        assert!(vk.verify(b"some payload", &sig), "openssl signature {i}");
        assert!(!vk.verify(b"other payload", &sig));
    }
    // `openssl ecparam -genkey` writes SEC1 with an EC PARAMETERS block first.
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "ec.pem",
        ],
        dir.path(),
    );
    openssl(
        &["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub"],
        dir.path(),
    );
    let ec = SigningKey::load(&dir.path().join("ec.pem"), None).unwrap();
    assert_eq!(
        VerifyingKey::load(&dir.path().join("ec.pub")).unwrap(),
        ec.verifying_key()
    );
}

#[test]
fn other_algorithms_from_openssl_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (args, found) in [
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
            "P-384",
        ),
        (
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"][..],
            "RSA",
        ),
        (&["-algorithm", "ED25519"][..], "Ed25519"),
    ] {
        let mut all = vec!["genpkey"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-out", "other.pem"]);
        openssl(&all, dir.path());
        let e = SigningKey::load(&dir.path().join("other.pem"), None).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SignError::WrongAlgorithm { .. }), "{text}");
        assert!(
            text.contains(found) && text.contains("ECDSA P-256 only"),
            "{text}"
        );
        assert!(text.contains("other.pem"), "{text}");
        openssl(
            &["pkey", "-in", "other.pem", "-pubout", "-out", "other.pub"],
            dir.path(),
        );
        let e = VerifyingKey::load(&dir.path().join("other.pub")).unwrap_err();
        assert!(e.to_string().contains(found), "{e}");
    }
}

/// A key pair by `skopeo generate-sigstore-key` in `dir`: (K.private, K.pub, passphrase).
pub fn skopeo_key(skopeo: &Path, dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let pass = format!("pass of {name}");
    let pass_file = dir.join(format!("{name}.pass"));
    fs::write(&pass_file, &pass).unwrap();
    run(Command::new(skopeo)
        .args([
            "generate-sigstore-key",
            "--output-prefix",
            name,
            "--passphrase-file",
        ])
        .arg(&pass_file)
        .current_dir(dir));
    (
        dir.join(format!("{name}.private")),
        dir.join(format!("{name}.pub")),
        pass,
    )
}

#[test]
fn a_key_from_skopeo_generate_sigstore_key_loads_with_its_password() {
    let Some(skopeo) = trixie_skopeo() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (private, public, pass) = skopeo_key(&skopeo, dir.path(), "K");
    let text = fs::read_to_string(&private).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED "), "{text}");
    let key = SigningKey::load(&private, Some(&pass)).unwrap();
    let vk = VerifyingKey::load(&public).unwrap();
    assert_eq!(key.verifying_key(), vk);
    let data = payload("r.example/a", &Digest::of(b"m"));
    let sig = key.sign(&data);
    assert!(vk.verify(&data, &sig));
    // And openssl agrees, with skopeo's .pub.
    fs::write(dir.path().join("payload"), &data).unwrap();
    fs::write(
        dir.path().join("sig.der"),
        base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap(),
    )
    .unwrap();
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "K.pub",
            "-signature",
            "sig.der",
            "payload",
        ],
        dir.path(),
    );
    assert!(out.contains("Verified OK"), "{out}");

    let e = SigningKey::load(&private, Some("not the password")).unwrap_err();
    assert!(matches!(e, SignError::WrongPassword { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("K.private") && text.contains("COSIGN_PASSWORD"),
        "{text}"
    );
    assert!(!text.contains("not the password"), "{text}");
    let e = SigningKey::load(&private, None).unwrap_err();
    assert!(matches!(e, SignError::PasswordNeeded { .. }), "{e}");
}

/// curl against the test registry (loopback only).
fn curl(args: &[&str]) -> Vec<u8> {
    require("curl");
    let out = Command::new("curl")
        .args(["-sSf"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn get_manifest(reg: &TestRegistry, repo: &str, reference: &str) -> Vec<u8> {
    curl(&[
        "-H",
        ACCEPT,
        &format!("http://{}/v2/{repo}/manifests/{reference}", reg.host()),
    ])
}

fn put_blob(reg: &TestRegistry, repo: &str, digest: &Digest, bytes: &[u8], dir: &Path) {
    let headers = String::from_utf8(curl(&[
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{}/v2/{repo}/blobs/uploads/", reg.host()),
    ]))
    .unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim();
    let url = if location.starts_with('/') {
        format!("http://{}{location}", reg.host())
    } else {
        location.to_string()
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let file = dir.join(digest.hex());
    fs::write(&file, bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{url}{sep}digest={digest}"),
    ]);
}

/// Upload a signature manifest's blobs and PUT it under `tag`.
fn put_signatures(
    reg: &TestRegistry,
    repo: &str,
    tag: &str,
    m: &ocibuild::sign::cosign::SignatureManifest,
) {
    let dir = tempfile::tempdir().unwrap();
    for (d, bytes) in &m.blobs {
        put_blob(reg, repo, d, bytes, dir.path());
    }
    let file = dir.path().join("manifest");
    fs::write(&file, &m.manifest).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {}", m.media_type),
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{}/v2/{repo}/manifests/{tag}", reg.host()),
    ]);
}

/// A registries.d directory turning sigstore attachments on for every registry.
pub fn registries_d(dir: &Path) -> PathBuf {
    let d = dir.join("registries.d");
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("default.yaml"),
        "default-docker:\n  use-sigstore-attachments: true\n",
    )
    .unwrap();
    d
}

/// A policy accepting only images of `scope` signed (sigstore) by the key in `pub_key`.
pub fn policy(dir: &Path, scope: &str, pub_key: &Path) -> PathBuf {
    let p = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {scope: [{
            "type": "sigstoreSigned",
            "keyPath": pub_key,
            "signedIdentity": {"type": "matchRepository"},
        }]}},
    });
    let file = dir.join(format!(
        "policy-{}.json",
        pub_key.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&file, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    file
}

/// `skopeo copy` of `image` to an OCI layout under `policy`: its output on failure. `all`
/// copies every platform of an index, each checked against the policy (the index's own
/// signature is not); else skopeo picks one platform.
pub fn pull_with_policy(
    skopeo: &Path,
    dir: &Path,
    image: &str,
    policy: &Path,
    all: bool,
) -> Result<(), String> {
    let dest = dir.join("pulled");
    let _ = fs::remove_dir_all(&dest);
    let out = Command::new(skopeo)
        .args(["--policy"])
        .arg(policy)
        .arg("--registries.d")
        .arg(registries_d(dir))
        .args(["copy", "--src-tls-verify=false", "--remove-signatures"])
        .args(all.then_some("--all"))
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:pulled", dest.display()))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Copy the fixture base into `reg` at `name:v1` (signed by `sign` = (key, passphrase file));
/// the digest of the manifest at the tag.
fn copy_in(
    skopeo: &Path,
    reg: &TestRegistry,
    name: &str,
    dir: &Path,
    sign: Option<(&Path, &Path)>,
) -> Digest {
    let mut c = Command::new(skopeo);
    c.arg("--insecure-policy")
        .arg("--registries.d")
        .arg(registries_d(dir));
    c.args(["copy", "--dest-tls-verify=false"]);
    if let Some((key, pass)) = sign {
        c.arg("--sign-by-sigstore-private-key")
            .arg(key)
            .arg("--sign-passphrase-file")
            .arg(pass);
    }
    c.arg(format!("oci:{}:v1", repo().join(BASE_LAYOUT).display()));
    c.arg(format!("docker://{}/{name}:v1", reg.host()));
    run(&mut c);
    Digest::of(&get_manifest(reg, name, "v1"))
}

/// A registry, a work directory and trixie's skopeo, for one image `shop/<name>:v1`.
struct Env {
    skopeo: PathBuf,
    reg: TestRegistry,
    dir: tempfile::TempDir,
    name: String,
}

impl Env {
    fn start(name: &str) -> Option<Env> {
        let skopeo = trixie_skopeo()?;
        Some(Env {
            skopeo,
            reg: TestRegistry::start(None),
            dir: tempfile::tempdir().unwrap(),
            name: format!("shop/{name}"),
        })
    }

    /// `host/shop/<name>`, the docker reference signed.
    fn image(&self) -> String {
        format!("{}/{}", self.reg.host(), self.name)
    }

    /// Copy the fixture in (signed by skopeo with `K` when `signed`): the manifest's digest.
    fn copy_in(&self, signed: bool) -> Digest {
        let (key, pass) = (
            self.dir.path().join("K.private"),
            self.dir.path().join("K.pass"),
        );
        let sign = signed.then_some((key.as_path(), pass.as_path()));
        copy_in(&self.skopeo, &self.reg, &self.name, self.dir.path(), sign)
    }

    /// Pull `:v1` under a policy requiring a signature by `pub_key`.
    fn pull(&self, pub_key: &Path) -> Result<(), String> {
        let policy = policy(self.dir.path(), &self.image(), pub_key);
        let v1 = format!("{}:v1", self.image());
        pull_with_policy(&self.skopeo, self.dir.path(), &v1, &policy, false)
    }

    fn get(&self, reference: &str) -> Vec<u8> {
        get_manifest(&self.reg, &self.name, reference)
    }

    fn put(&self, tag: &str, m: &SignatureManifest) {
        put_signatures(&self.reg, &self.name, tag, m);
    }

    fn blob(&self, digest: &Digest) -> Vec<u8> {
        let url = format!("http://{}/v2/{}/blobs/{digest}", self.reg.host(), self.name);
        curl(&[&url])
    }
}

fn signed_by(key: &SigningKey, payload: Vec<u8>) -> Signature {
    Signature {
        signature_b64: key.sign(&payload),
        payload,
    }
}

#[test]
fn skopeo_signatures_verify_with_ours_and_merging_keeps_both() {
    let Some(env) = Env::start("app") else { return };
    let (_, public, _) = skopeo_key(&env.skopeo, env.dir.path(), "K");
    let digest = env.copy_in(true);

    // skopeo's signature manifest, read and verified with our code.
    let tag = signature_tag(&digest);
    let theirs = env.get(&tag);
    let sigs = signatures_in(&theirs).unwrap();
    assert_eq!(sigs.len(), 1, "{}", String::from_utf8_lossy(&theirs));
    let their_payload = env.blob(&sigs[0].0);
    let claimed = parse_payload(&their_payload).unwrap();
    assert_eq!(claimed.manifest_digest, digest);
    let reference = claimed.docker_reference;
    assert!(reference.starts_with(&env.image()), "{reference}");
    let their_key = VerifyingKey::load(&public).unwrap();
    assert!(their_key.verify(&their_payload, &sigs[0].1));

    // Ours merged in: both kept, both accepted by skopeo's policy, a stranger's refused.
    let (our_key, our_pub) = openssl_key(env.dir.path(), "ours");
    let key = SigningKey::load(&our_key, None).unwrap();
    let ours = signed_by(&key, payload(&env.image(), &digest));
    let merged = merge_signatures(Some(&theirs), &[ours]).unwrap();
    let found = signatures_in(&merged.manifest).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0], sigs[0]);
    env.put(&tag, &merged);
    assert_eq!(env.get(&tag), merged.manifest);
    env.pull(&our_pub).unwrap();
    env.pull(&public).unwrap();
    let (_, stranger) = openssl_key(env.dir.path(), "stranger");
    let e = env.pull(&stranger).unwrap_err();
    assert!(e.contains("signature verification failed"), "{e}");

    // And skopeo signing again on top of our manifest keeps ours.
    env.copy_in(true);
    let after = signatures_in(&env.get(&tag)).unwrap();
    assert!(after.contains(&found[1]), "{after:?}");
}

#[test]
fn skopeo_accepts_our_signature_manifest_and_refuses_another_key() {
    let Some(env) = Env::start("cart") else {
        return;
    };
    let digest = env.copy_in(false);
    let (our_key, our_pub) = openssl_key(env.dir.path(), "ours");
    let (_, stranger) = openssl_key(env.dir.path(), "stranger");

    let e = env.pull(&our_pub).unwrap_err();
    assert!(e.contains("no signature exists"), "unsigned: {e}");

    let key = SigningKey::load(&our_key, None).unwrap();
    let tag = signature_tag(&digest);
    let ours = signed_by(&key, payload(&env.image(), &digest));
    env.put(&tag, &merge_signatures(None, &[ours]).unwrap());
    env.pull(&our_pub).unwrap();
    let e = env.pull(&stranger).unwrap_err();
    assert!(e.contains("signature verification failed"), "{e}");

    // A signature of another manifest's digest, by the right key, is refused too.
    let wrong = signed_by(
        &key,
        payload(&env.image(), &Digest::of(b"another manifest")),
    );
    env.put(&tag, &merge_signatures(None, &[wrong]).unwrap());
    let e = env.pull(&our_pub).unwrap_err();
    assert!(e.contains("does not match"), "{e}");
}

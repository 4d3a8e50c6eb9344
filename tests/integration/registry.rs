//! A real registry for the tests: Debian's `docker-registry` (CNCF distribution 2.8.2) started
//! on a free loopback port with a config of our own (optionally htpasswd auth), stopped on drop.

use crate::common::require;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRegistry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestRegistry {
    /// Start a registry; with `user`, it demands Basic auth with that user and password.
    pub fn start(user: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let auth = user.map(|(u, p)| {
            require("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .unwrap();
            assert!(out.status.success());
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                file.display()
            )
        });
        Self::start_with_auth(dir, auth)
    }

    /// Start a registry with this `auth:` config block (None: no auth), keeping `dir`.
    pub fn start_with_auth(dir: tempfile::TempDir, auth: Option<String>) -> TestRegistry {
        require("docker-registry");
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(a) = auth {
            cfg.push_str(&a);
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ))
            .spawn()
            .expect("starting docker-registry");
        let reg = TestRegistry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo inspect --raw` of `repo:reference` (with optional creds), or None if it fails.
    pub fn raw(&self, repo: &str, reference: &str, creds: Option<&str>) -> Option<String> {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(cr) = creds {
            c.args(["--creds", cr]);
        }
        let sep = if reference.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        let out = c
            .arg(format!("docker://{}/{repo}{sep}{reference}", self.host()))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DOCKER_CONFIG directory with `config.json` = `json`.
pub fn docker_config(dir: &Path, json: &str) -> PathBuf {
    let d = dir.join("docker-config");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), json).unwrap();
    d
}

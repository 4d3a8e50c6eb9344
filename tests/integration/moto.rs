//! The ECR control plane for the tests: moto in server mode (PyPI `moto[server]`), started on a
//! free loopback port and stopped on drop, plus boto3 (which moto brings) to set up and read
//! back state independently of ocibuild. And a hand-written fake of the ECR JSON API for what
//! moto cannot show: paginated findings, refused credentials, throttling.

use crate::common::{require, run};
use crate::registry::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "123456789012";
/// The registry password inside moto's authorization token (`AWS:<this>`).
pub const TOKEN_PASSWORD: &str = "123456789012-auth-token";

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        require("python3");
        let ok = Command::new("python3")
            .args(["-c", "import moto.server, boto3"])
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "moto[server] is not installed: run the tests with scripts/test.sh, which installs it"
        );
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run a boto3 snippet with `ecr` bound to a client on this moto; returns its stdout.
    pub fn boto(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json, sys\necr = boto3.client('ecr', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
            self.endpoint()
        );
        run(Command::new("python3").args(["-c", &script]))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment for ocibuild to use `endpoint` as ECR with static test credentials.
pub fn aws_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_ECR", endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

/// Answers one ECR JSON request: (operation, request body) -> (status, response body).
pub type FakeHandler =
    Arc<dyn Fn(&str, &serde_json::Value) -> (u16, serde_json::Value) + Send + Sync>;

/// A fake ECR JSON endpoint; returns its URL.
pub fn fake_ecr(handler: FakeHandler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                loop {
                    let (mut target, mut len) = (String::new(), 0usize);
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                        let (k, v) = l.split_once(':').unwrap_or(("", ""));
                        if k.eq_ignore_ascii_case("x-amz-target") {
                            target = v.trim().rsplit('.').next().unwrap_or("").to_string();
                        } else if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let (status, resp) = handler(&target, &req);
                    let text = resp.to_string();
                    let _ = write!(
                        out,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

//! A fake HTTP/1.1 server on a loopback port for tests that must see exactly what a client
//! sends (headers, targets, TLS hellos) or answer what no real registry would (endless bodies,
//! redirects elsewhere). One request per connection, answered by a handler. Shared by the
//! registry client's unit tests and the integration tests (`#[path]` includes).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Body {
    Bytes(Vec<u8>),
    /// Chunks of zeros until the client goes away.
    Endless,
    /// A byte now and then, each within any read timeout.
    Dribble,
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

pub fn answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: Body::Bytes(body.to_vec()),
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// An HTTP/1.1 server on a loopback port: one request per connection, answered by a handler.
pub struct Fake {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// The first bytes of connections that did not start with an HTTP request (a TLS hello).
    pub raw: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Fake {
    pub fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let raw: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let (seen2, raw2) = (seen.clone(), raw.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (h, seen, raw) = (handler.clone(), seen2.clone(), raw2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &h, &seen, &raw);
                });
            }
        });
        Fake { port, seen, raw }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    conn: TcpStream,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
    raw: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let first = reader.fill_buf()?.to_vec();
    if !first.first().is_some_and(u8::is_ascii_uppercase) {
        raw.lock().unwrap().push(first);
        return Ok(());
    }
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l)? == 0 || l == "\r\n" {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Seen {
        method,
        target,
        headers,
    };
    let len: u64 = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink())?;
    seen.lock().unwrap().push(req.clone());
    let a = handler(&req);
    let mut out = conn;
    let reason = match a.status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\nConnection: close\r\n", a.status);
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match &a.body {
        Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len())),
        Body::Endless | Body::Dribble => head.push_str("Transfer-Encoding: chunked\r\n\r\n"),
    }
    out.write_all(head.as_bytes())?;
    if req.method == "HEAD" {
        return Ok(());
    }
    match a.body {
        Body::Bytes(b) => out.write_all(&b)?,
        Body::Dribble => {
            // One byte every 100 ms, for at most a minute.
            for _ in 0..600 {
                out.write_all(b"1\r\nx\r\n")?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Body::Endless => {
            let chunk = vec![b'x'; 64 << 10];
            let framed = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            // Until the client hangs up (a write fails); bounded so a test can never spin.
            for _ in 0..(1 << 16) {
                out.write_all(&framed)?;
            }
        }
    }
    Ok(())
}

/// An answer with a body that never ends (chunked, until the client hangs up).
pub fn endless(status: u16) -> Answer {
    Answer {
        status,
        headers: vec![],
        body: Body::Endless,
    }
}

//! Real S3 API server for tests and demos: moto's server mode on a loopback port.
//!
//! Behind the `test-servers` feature. Used by this workspace's integration tests (which talk
//! only to 127.0.0.1) and usable by embedders' own tests. Needs `moto_server` on `PATH`
//! (`pip install 'moto[server]'`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The install command for moto's S3 server.
pub const MOTO_INSTALL: &str = "pip install 'moto[server]'";

/// A moto S3 server on `127.0.0.1:{port}`, killed (and reaped) on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `binary` on `PATH` (also `binary.cmd`, for npm shims on Windows).
pub fn find_program(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| [dir.join(binary), dir.join(format!("{binary}.cmd"))])
            .find(|p| p.is_file())
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends one HTTP/1.1 request (`head`: request line and headers, no final blank line) to
/// `127.0.0.1:port`; returns the status code and the body.
///
/// # Errors
/// The connection's I/O error.
pub fn http(port: u16, head: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port and waits (up to 60 s) until it answers.
    ///
    /// # Errors
    /// `NotFound` (with the install command) when `moto_server` is not on `PATH`; the spawn
    /// error; `TimedOut` or `Other` (with the server's log) when it does not come up.
    pub fn start() -> std::io::Result<Self> {
        let program = find_program("moto_server").ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("`moto_server` is not on PATH; install it with: {MOTO_INSTALL}"),
            )
        })?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http(port, "GET / HTTP/1.1").is_ok_and(|(status, _)| status != 0) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(server.dir.path().join("server.log"))
                    .unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "moto_server exited early ({status}):\n{log}"
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("moto_server did not answer on 127.0.0.1:{port} within 60 s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// For tests: starts the server; when `moto_server` is missing, prints a loud notice (with
    /// the install command) and returns `None` — except under `CI=true`, where a missing server
    /// is a failure, never a silent skip.
    ///
    /// # Panics
    /// Under `CI=true` when `moto_server` is missing; always when it exists but does not start.
    pub fn start_or_skip() -> Option<Self> {
        match Self::start() {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{e}\nCI=true: a missing S3 server fails the run"
                );
                eprintln!("\n**********\n** NOT RUN: {e}\n**********\n");
                None
            }
            Err(e) => panic!("starting moto_server: {e}"),
        }
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket`.
    ///
    /// # Errors
    /// The request's I/O error, or `Other` when moto does not answer 200.
    pub fn create_bucket(&self, bucket: &str) -> std::io::Result<()> {
        let (status, body) = http(
            self.port,
            &format!("PUT /{bucket} HTTP/1.1\r\nContent-Length: 0"),
        )?;
        if status == 200 {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "create bucket `{bucket}`: HTTP {status}: {body}"
            )))
        }
    }

    /// Stops the server now (to simulate an outage); the sink's next request fails.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The options an `s3://` [`ObjectStoreSink`](crate::ObjectStoreSink) needs for this
    /// server: endpoint, region, plain HTTP and moto's accept-anything test credentials.
    pub fn sink_options(&self) -> BTreeMap<String, String> {
        [
            ("aws_endpoint", self.endpoint()),
            ("aws_region", "us-east-1".to_owned()),
            ("allow_http", "true".to_owned()),
            ("aws_access_key_id", "wst-test-key-id".to_owned()),
            ("aws_secret_access_key", "wst-test-secret-key".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

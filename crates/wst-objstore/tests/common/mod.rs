//! Test harness: starts real storage servers (moto's S3 server, Azurite) on a free loopback
//! port, waits until they accept requests and kills them on drop. Tests talk only to 127.0.0.1.
//!
//! When a server binary is missing: under `CI=true` the test fails with the install command;
//! otherwise it prints a loud notice and the test returns early.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server child process, killed (and reaped) on drop.
pub(crate) struct Server {
    child: Child,
    /// The loopback port it listens on.
    pub(crate) port: u16,
    /// Its data directory, removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `binary` on `PATH`. Missing: panics under `CI=true` (naming `install`), otherwise
/// prints a notice and returns `None`.
pub(crate) fn require(binary: &str, install: &str) -> Option<PathBuf> {
    let found = wst_objstore::testing::find_program(binary);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{binary}` is not installed, and CI=true forbids skipping this integration test. \
             Install it with: {install}"
        );
        // Written to the stderr handle directly: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! NOTICE: `{binary}` not found on PATH: this integration test did NOT run.\n\
             !! Install it with: {install}\n\
             !! (under CI=true this is a failure)\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    found
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    l.local_addr().expect("local address").port()
}

/// Starts `program args…` (with `{port}` and `{dir}` substituted in `args`) and waits up to
/// 60 seconds until `ready(port)` says the server answers.
pub(crate) fn start(program: &PathBuf, args: &[&str], ready: fn(u16) -> bool) -> Server {
    let dir = tempfile::tempdir().expect("server data directory");
    let port = free_port();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{dir}", &dir.path().display().to_string())
        })
        .collect();
    let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut server = Server { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready(port) {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let log =
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            panic!("{} exited early ({status}):\n{log}", program.display());
        }
        assert!(
            Instant::now() < deadline,
            "{} did not become ready on 127.0.0.1:{port} within 60 s",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends one raw HTTP/1.1 request to 127.0.0.1:`port` and returns the status and body.
pub(crate) use wst_objstore::testing::http;

/// Whether anything answers HTTP on the port.
pub(crate) fn answers_http(port: u16) -> bool {
    http(port, "GET / HTTP/1.1").is_ok_and(|(status, _)| status != 0)
}

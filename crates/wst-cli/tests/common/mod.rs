//! Shared by the `wst` binary's integration tests: running the binary Cargo built for them
//! (never a stale copy) and reading what it printed.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

/// The operator binary, built by Cargo for the test that includes this module.
pub const WST: &str = env!("CARGO_BIN_EXE_wst");

/// moto's accept-anything test credentials, as the environment variables the tests'
/// configurations name: the S3 sinks read `AWS_*`, the `[[bucket]]` sections their
/// `options_env` names. Credentials never go into a test's `wst.toml` (issue 15).
pub const MOTO_ENV: [(&str, &str); 6] = [
    ("AWS_ACCESS_KEY_ID", "wst-test-key-id"),
    ("AWS_SECRET_ACCESS_KEY", "wst-test-secret-key"),
    ("WST_TEST_KEY_ID", "wst-test-key-id"),
    ("WST_TEST_SECRET", "wst-test-secret-key"),
    ("WST_TEST_PROOFS_KEY_ID", "wst-test-key-id"),
    ("WST_TEST_PROOFS_SECRET", "wst-test-secret-key"),
];

/// One finished run of the binary.
pub struct Run {
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `wst --config CONFIG ARGS…` with `RUST_LOG=warn` and `env` added to the test's
/// environment, waits for it, and echoes the command and its output into the test's log.
pub fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(WST)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ wst {}\n{}{}", args.join(" "), run.stdout, run.stderr);
    run
}

/// A run's standard output as JSON (for `--json` commands).
pub fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

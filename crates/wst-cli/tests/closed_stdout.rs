//! A run whose standard output goes away (`wst backup | head -1`, a cron mailer that died) still
//! finishes: its report is best-effort output, its outcome is the exit status and the audit
//! log. `println!` panicked there, after the artifact was written and before prune and the
//! signals ran.

use std::fs;
use std::process::{Command, Stdio};

const WST: &str = env!("CARGO_BIN_EXE_wst");

#[test]
fn a_closed_standard_output_does_not_stop_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app/config")).unwrap();
    for i in 0..50 {
        fs::write(
            t.join(format!("app/config/item{i}.json")),
            format!("{{\"id\": {i}}}"),
        )
        .unwrap();
    }
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
actor = "ops@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/app"
root = "app"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[[sinks]]
name = "mirror-d"
url = "{t}/D"
"#,
            t = t.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(WST)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["keygen"]).status.success());
    assert!(run(&["init"]).status.success());
    // Standard output is a pipe whose reader is gone before the run writes to it.
    let mut child = Command::new(WST)
        .arg("--config")
        .arg(&config)
        .arg("backup")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let audit = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    assert!(audit.contains("backup_completed"), "{audit}");
    // Both copies are there and verify.
    let verify = run(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

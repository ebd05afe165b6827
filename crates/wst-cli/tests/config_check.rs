//! Issue 15 through the operator binary `wst` (local disks only, no servers): the whole
//! configuration is checked before any work, every mistake listed at once with its key
//! (`wst config check`, `backup`, `status`, `drill`, …); output escapes control characters in
//! names; exit codes as the README documents them; `prune --dry-run` shows what is kept and
//! what would go, with reasons; advice names CLI commands; `[[files]]` exclusions and the
//! guards against silent emptiness (`min_entries`, `max_shrink`, the empty-tree warning).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The operator binary, built by Cargo for this test (never a stale copy).
const WST: &str = env!("CARGO_BIN_EXE_wst");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn run_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(WST);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ wst {}\n{}", args.join(" "), run.all());
    run
}

fn wst(config: &Path, args: &[&str]) -> Run {
    run_with(config, args, &[])
}

/// A job with one tree (`app/` from `<t>/app`) on two local disks, plus `extra` TOML.
fn write_config(t: &Path, extra: &str) -> PathBuf {
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/app"
root = "app"
{extra}

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
    config
}

/// Artifact objects on the local sink `dir`.
fn artifacts(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tar.zst.wst"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn ready(config: &Path) {
    let r = wst(config, &["keygen"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = wst(config, &["init"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

/// The shipped sample passes `config check` (exit 0, one line); nothing is opened.
#[test]
fn the_shipped_example_passes_config_check() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wst.toml");
    let r = wst(&example, &["config", "check"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("is valid: 2 file trees, database ops@db.internal:5432/wst_dev")
            && r.stdout.contains("3 sinks (1 offsite)")
            && r.stdout
                .contains("retention daily 30/weekly 12/monthly 12/yearly 7 in Europe/Amsterdam")
            && r.stdout.contains("drill with 4 checks"),
        "{}",
        r.stdout
    );
    let r = wst(&example, &["--json", "config", "check"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["sinks"].as_u64()),
        (Some(true), Some(3))
    );
}

/// Every configuration mistake the issue lists, in one file: `config check` and every command
/// that reads the configuration exit 2 listing all of them with their keys, before any work
/// (no audit record, no sink directory, no key). No secret value is echoed.
#[test]
fn every_mistake_of_issue_15_is_listed_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app")).unwrap();
    let config = write_config(
        t,
        r#"
[database]
url = "postgresql://ops@db.internal:5432/wst_dev"
password_env = "WST_DB_PASSWORD"
restore_url = "postgresql://ops:hunter2@restore-test:5432/postgres"

[[bucket]]
name = "proofs"
url = "s3://wst-proofs"
options = { aws_region = "eu", aws_secret_access_key = "s3cr3t-bucket" }

[[sinks]]
name = "offsite"
url = "s3://wst-backups/prod"
offsite = true
options = { aws_region = "eu", aws_secret_access_key = "s3cr3t-sink" }

[retention]
time_zone = "Europe/Amsterdm"
[retention.policy]
keep_daily = 0

[drill]
scratch_dir = "/var/tmp/wst-drill"
rto_target_minutes = -240.0

[compliance]
max_backup_age_hours = -24
min_copies = 0
"#,
    );
    let expected = [
        "database.restore_url: carries a password",
        "bucket[0].options.aws_secret_access_key: is a credential",
        // This [[sinks]] comes before the base's two in the file: index 0.
        "sinks[0].options.aws_secret_access_key: is a credential",
        "retention.time_zone: unknown time zone `Europe/Amsterdm`",
        "retention.policy: the retention policy keeps nothing",
        "drill.rto_target_minutes: -240 must be a positive number of minutes",
        "compliance.max_backup_age_hours: -24 is outside 1..=8784",
        "compliance.min_copies: must be at least 1",
    ];
    for args in [
        &["config", "check"][..],
        &["backup"],
        &["status"],
        &["drill"],
        &["prune", "--dry-run"],
        &["verify"],
        &["ls"],
        &["replicate"],
        &["init"],
        &["keygen"],
        &["audit", "verify"],
    ] {
        let r = wst(&config, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(
            r.stderr
                .contains("is not valid (8 problems; nothing was done)"),
            "{args:?}: {}",
            r.stderr
        );
        for e in expected {
            assert!(r.stderr.contains(e), "{args:?}: `{e}` in {}", r.stderr);
        }
        for secret in ["hunter2", "s3cr3t-bucket", "s3cr3t-sink"] {
            assert!(!r.all().contains(secret), "{secret} echoed: {}", r.all());
        }
    }
    for nothing in ["state", "C", "D", "control"] {
        assert!(!t.join(nothing).exists(), "`{nothing}` was created");
    }
}

/// Each mistake alone: exit 2, naming its key (a valid base plus one line).
#[test]
fn each_config_mistake_alone_is_exit_2_naming_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cases: &[(&str, &str)] = &[
        (
            "[retention]\ntime_zone = \"Mars/Base\"\n[retention.policy]\nkeep_daily = 7\n",
            "retention.time_zone: unknown time zone `Mars/Base`",
        ),
        (
            "[retention]\ntime_zone = \"UTC\"\n[retention.policy]\nmin_age = \"7d\"\n",
            "retention.policy: the retention policy keeps nothing",
        ),
        (
            "[retention]\ntime_zone = \"UTC\"\n[retention.policy]\nkeep_daily = 7\n\
             min_age = \"30d\"\nmax_age = \"14d\"\n",
            "retention.policy: conflicting retention durations",
        ),
        (
            "[compliance]\nmax_backup_age_hours = -24\n",
            "compliance.max_backup_age_hours: -24 is outside",
        ),
        ("[compliance]\nmin_copies = 0\n", "compliance.min_copies"),
        (
            "[drill]\nscratch_dir = \"/tmp/d\"\nrto_target_minutes = -240.0\n",
            "drill.rto_target_minutes",
        ),
        (
            "[drill]\nscratch_dir = \"/tmp/d\"\nrpo_target_hours = 0.0\n",
            "drill.rpo_target_hours",
        ),
        (
            "[database]\nurl = \"postgresql://ops@db/x\"\nrestore_url = \
             \"postgresql://ops:pw@scratch/postgres\"\n",
            "database.restore_url: carries a password",
        ),
        (
            "[database]\nurl = \"postgresql://ops:pw@db/x\"\n",
            "database.url: carries a password",
        ),
        (
            "[database]\nurl = \"host=db user=ops password=pw dbname=x\"\n",
            "database.url: carries `password=…`",
        ),
        (
            "[database]\nurl = \"postgresql://ops@db/x\"\n[drill]\nscratch_dir = \"/tmp/d\"\n",
            "database.restore_url: is not set, but [drill] restores the database",
        ),
        (
            "[[sinks]]\nname = \"s3\"\nurl = \"s3://AKIAEXAMPLE:wJalrXUtn@bucket/prod\"\n",
            "sinks[2].url: the URL carries a password",
        ),
        (
            "[[sinks]]\nname = \"s3\"\nurl = \"s3://bucket/prod\"\n\
             options = { aws_secret_access_key = \"wJalrXUtn\" }\n",
            "sinks[2].options.aws_secret_access_key: is a credential",
        ),
        (
            "[[sinks]]\nname = \"az\"\nurl = \"az://c/p?sv=2024&sig=wJalrXUtn\"\n",
            "sinks[2].url: the URL carries the query parameter `sig`",
        ),
        (
            "[[bucket]]\nname = \"p\"\nurl = \"s3://p\"\n\
             options = { aws_secret_access_key = \"wJalrXUtn\" }\n",
            "bucket[0].options.aws_secret_access_key: is a credential",
        ),
        (
            "[[sinks]]\nname = \"x\"\nurl = \"ftp://host/x\"\n",
            "sinks[2].url: scheme `ftp://` is not supported",
        ),
        (
            "[[sinks]]\nname = \"local-c\"\nurl = \"/elsewhere\"\n",
            "sinks[2].name: two [[sinks]] are named `local-c`",
        ),
        ("zstd_level = 0\n", "zstd_level: 0 is outside 1..=19"),
        (
            "[[files]]\npath = \"/srv/x\"\nroot = \"app/x\"\n",
            "files[1].root: `app/x` overlaps `app` (files[0].root)",
        ),
        (
            "[[files]]\npath = \"/srv/x\"\nroot = \"x\"\nexclude = [\"a[\"]\n",
            "files[1].exclude: invalid configuration: exclude pattern `a[`",
        ),
        (
            "[[files]]\npath = \"/srv/x\"\nroot = \"x\"\nmax_shrink = 2.0\n",
            "files[1].max_shrink: 2 must be a fraction strictly between 0 and 1",
        ),
        (
            "[drill]\nscratch_dir = \"/tmp/d\"\n[[drill.check]]\nkind = \"smoke\"\nname = \"s\"\n\
             program = \"true\"\nenv = { API_TOKEN = \"wJalrXUtn\" }\n",
            "drill.check[0].env.API_TOKEN: looks like a secret",
        ),
    ];
    for (extra, wanted) in cases {
        // Top-level keys go before the first table; tables after the base.
        let config = write_config(t, "");
        let base = fs::read_to_string(&config).unwrap();
        let text = if extra.starts_with('[') {
            format!("{base}{extra}")
        } else {
            format!("{extra}{base}")
        };
        fs::write(&config, text).unwrap();
        let r = wst(&config, &["config", "check"]);
        assert_eq!(r.code, 2, "{extra}: {}", r.all());
        assert!(
            r.stderr.contains(wanted),
            "{extra}\nwanted `{wanted}` in {}",
            r.stderr
        );
        assert!(
            !r.all().contains("wJalrXUtn") && !r.all().contains(":pw@"),
            "{}",
            r.all()
        );
        // `status` (which once accepted what `backup` refused) refuses it too.
        let r = wst(&config, &["status"]);
        assert_eq!(r.code, 2, "{extra}: {}", r.all());
    }
}

/// `wst ls` escapes control characters in entry names: a file named with ESC, CR and LF cannot
/// clear the screen or forge a `RESULT: PASS` line; `--json` keeps the exact name.
#[cfg(unix)]
#[test]
fn ls_escapes_control_characters_in_names() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let evil = "x\x1b[2J\x1b[H\r## RESULT: PASS\nRESULT: PASS\u{202e}txt";
    fs::create_dir_all(t.join("app")).unwrap();
    fs::write(t.join("app").join(evil), "payload").unwrap();
    let config = write_config(t, "");
    ready(&config);
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = wst(&config, &["ls"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for bad in ['\x1b', '\r', '\u{202e}'] {
        assert!(!r.stdout.contains(bad), "raw {bad:?} in ls output");
    }
    for line in r.stdout.lines() {
        assert!(
            !line.starts_with("RESULT") && !line.starts_with("## RESULT"),
            "forged line: {line:?}"
        );
    }
    assert!(
        r.stdout.contains(
            "app/x\\u{1b}[2J\\u{1b}[H\\u{d}## RESULT: PASS\\u{a}RESULT: PASS\\u{202e}txt"
        ),
        "{}",
        r.stdout
    );
    // Machines get the exact name.
    let r = wst(&config, &["--json", "ls"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&format!("app/{evil}").as_str()), "{names:?}");
}

/// A prune whose listing dropped is refused with exit 3 (degraded: prune refused something),
/// naming `--allow-listing-drop`; with the flag it proceeds (exit 0).
#[test]
fn listing_drop_refusal_exits_3_and_names_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app")).unwrap();
    fs::write(t.join("app/a.txt"), "a").unwrap();
    let config = write_config(
        t,
        "[retention]\ntime_zone = \"UTC\"\n[retention.policy]\nkeep_last = 7\n",
    );
    ready(&config);
    for _ in 0..2 {
        let r = wst(&config, &["backup"]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
    // The backup's prune recorded 2 artifacts per sink. Now C: lists none.
    let moved = t.join("C-moved");
    fs::create_dir_all(&moved).unwrap();
    for name in fs::read_dir(t.join("C")).unwrap().flatten() {
        let n = name.file_name().to_string_lossy().into_owned();
        if n.starts_with("wst-backup-") {
            fs::rename(name.path(), moved.join(&n)).unwrap();
        }
    }
    let r = wst(&config, &["prune"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("prune on `local-c` refused")
            && r.stderr
                .contains("lists 0 `wst-backup` artifacts but the previous prune left 2")
            && r.stderr.contains("wst prune --allow-listing-drop"),
        "{}",
        r.stderr
    );
    let r = wst(&config, &["prune", "--allow-listing-drop"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

/// `prune --dry-run` lists every kept artifact and every artifact it would delete, each with
/// its reason. Old artifacts come from backups taken with the clock moved back (libfaketime,
/// as `.ci/clock-shift` uses; Linux only).
#[cfg(target_os = "linux")]
#[test]
fn prune_dry_run_lists_kept_and_deleted_with_reasons() {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    if !Path::new(lib).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "libfaketime is missing (apt-get install faketime)"
        );
        eprintln!("libfaketime missing: test skipped (CI=true makes this a failure)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app")).unwrap();
    fs::write(t.join("app/a.txt"), "a").unwrap();
    // Backups without [retention] (a backup with it would prune the old ones itself).
    let config = write_config(t, "");
    ready(&config);
    for days in ["-40d", "-30d"] {
        let r = run_with(
            &config,
            &["backup"],
            &[
                ("LD_PRELOAD", lib),
                ("FAKETIME", days),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.all());
    }
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let names = artifacts(&t.join("C"));
    assert_eq!(names.len(), 3, "{names:?}");
    let text = fs::read_to_string(&config).unwrap()
        + "[retention]\ntime_zone = \"UTC\"\n[retention.policy]\nkeep_last = 1\nmin_age = \"7d\"\n";
    fs::write(&config, text).unwrap();
    let r = wst(&config, &["prune", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let stem = |n: &String| n.trim_end_matches(".tar.zst.wst").to_owned();
    assert!(
        r.stdout
            .contains("prune local-c (dry run): 3 listed, 1 kept, 2 would be deleted"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.trim_start().starts_with("keep")
            && l.contains(&stem(&names[2]))
            && l.contains("keep_last #1")),
        "{}",
        r.stdout
    );
    for old in &names[..2] {
        assert!(
            r.stdout.lines().any(|l| l.contains("would delete")
                && l.contains(&stem(old))
                && l.contains("no keep rule selects it")),
            "{}",
            r.stdout
        );
    }
    // A dry run deletes nothing.
    assert_eq!(artifacts(&t.join("C")).len(), 3);
}

/// A missing key file advises `wst keygen --out <path>`, not the library API; a wrong key adds
/// no "doctrine F3" lines (required entries are "not checked" on an unreadable artifact).
#[test]
fn key_advice_names_the_cli_and_a_wrong_key_blames_no_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app")).unwrap();
    fs::write(t.join("app/data.bin"), "data").unwrap();
    let config = write_config(t, "");
    let text = fs::read_to_string(&config).unwrap()
        + "[verify]\nrequired = [\"app/\", \"app/data.bin\"]\n";
    fs::write(&config, &text).unwrap();
    let r = wst(&config, &["status"]);
    assert_eq!(r.code, 2, "{}", r.all());
    let key = t.join("control/backup.key");
    assert!(
        r.stderr.contains(&format!(
            "create a key with `wst keygen --out {}`",
            key.display()
        )) && !r.stderr.contains("Key::generate"),
        "{}",
        r.stderr
    );
    ready(&config);
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // The same repository opened with another key: the repository's audit log is keyed, so
    // nothing is recorded under the wrong key (exit 2, naming both keys) ...
    let other = t.join("other.toml");
    let other_text = text.replace("control/backup.key", "control/other.key");
    fs::write(&other, &other_text).unwrap();
    assert_eq!(wst(&other, &["keygen"]).code, 0);
    let r = wst(&other, &["verify"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("not a configured key"), "{}", r.stderr);
    // ... and with a log of its own (another host), verify reads and reports.
    fs::write(
        &other,
        other_text.replace("state/audit.jsonl", "state/other-audit.jsonl"),
    )
    .unwrap();
    let r = wst(&other, &["verify"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("[FAIL] authenticated"), "{}", r.stdout);
    assert!(!r.all().contains("F3"), "{}", r.all());
    assert!(
        r.stdout.contains(
            "[FAIL] required_entry:app/data.bin: not checked: the artifact could not be read"
        ),
        "{}",
        r.stdout
    );
}

/// `[[files]]` exclusions (`exclude` and `--exclude`), the empty-tree warning (in the run
/// report and `status`), `min_entries` and `max_shrink` on real trees: a guarded run fails
/// before anything is published.
#[test]
fn file_tree_exclusions_and_guards() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (dir, n) in [
        ("app/src", 20),
        ("app/cache", 3),
        ("app/node_modules/m", 3),
        ("app/logs", 2),
    ] {
        fs::create_dir_all(t.join(dir)).unwrap();
        for i in 0..n {
            fs::write(t.join(dir).join(format!("f{i}.txt")), format!("{dir} {i}")).unwrap();
        }
    }
    fs::create_dir_all(t.join("mnt")).unwrap(); // an empty mount point
    let config = write_config(
        t,
        &format!(
            "exclude = [\"cache/\", \"node_modules\"]\nmax_shrink = 0.5\n\
             [[files]]\npath = \"{}/mnt\"\nroot = \"mnt\"\n",
            t.display()
        ),
    );
    ready(&config);
    let r = wst(&config, &["backup", "--exclude", "app/logs/**"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("SuccessWithWarnings"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "warning: `{}/mnt` (archive root `mnt/`) is empty",
            t.display()
        )),
        "{}",
        r.stdout
    );
    let r = wst(&config, &["--json", "ls"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let paths: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"app/src/f19.txt"), "{paths:?}");
    for gone in ["app/cache", "app/node_modules", "app/logs/f0.txt"] {
        assert!(
            !paths.iter().any(|p| p.starts_with(gone)),
            "{gone} in {paths:?}"
        );
    }
    assert!(
        paths.contains(&"app/logs"),
        "only the directory's files were excluded"
    );
    // `status` names the empty tree of the newest verified backup.
    let r = wst(&config, &["status"]);
    assert!(
        r.stdout.contains("warning: [[files]] `mnt`") && r.stdout.contains("was empty"),
        "{}",
        r.stdout
    );

    // min_entries: the empty mount point fails the run; nothing new is published.
    let before = artifacts(&t.join("C"));
    let guarded = fs::read_to_string(&config)
        .unwrap()
        .replace("root = \"mnt\"\n", "root = \"mnt\"\nmin_entries = 1\n");
    fs::write(&config, guarded).unwrap();
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("source `mnt` stopped the run: found 0 entries")
            && r.stderr.contains("min_entries = 1")
            && r.stderr.contains("nothing was published"),
        "{}",
        r.stderr
    );
    assert_eq!(artifacts(&t.join("C")), before);
    let audit = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    assert!(
        audit.contains("backup_failed") && audit.contains("min_entries"),
        "{audit}"
    );

    // max_shrink: most of app/ deleted (a half-mounted volume): the run fails.
    fs::write(t.join("mnt/now-mounted.txt"), "x").unwrap();
    for i in 0..18 {
        fs::remove_file(t.join(format!("app/src/f{i}.txt"))).unwrap();
    }
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("source `app` stopped the run")
            && r.stderr.contains("entries fell from")
            && r.stderr.contains(&before[0].replace(".tar.zst.wst", ""))
            && r.stderr.contains("max_shrink = 0.5"),
        "{}",
        r.stderr
    );
    assert_eq!(artifacts(&t.join("C")), before);
    assert_eq!(artifacts(&t.join("D")), before);
    // Within the allowed shrink the run succeeds, and is the next comparison's base.
    let relaxed = fs::read_to_string(&config)
        .unwrap()
        .replace("max_shrink = 0.5", "max_shrink = 0.9");
    fs::write(&config, relaxed).unwrap();
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(artifacts(&t.join("C")).len(), 2);
}

//! Every failure mode of a database dump, each with its specific error (doctrine 026 F1/F3),
//! against a real throwaway cluster.

mod common;

use wst_core::Source;
use wst_pg::{Error, PasswordSource, PgDumpSource, PgTools};

fn source(cluster: &wst_pg::TestCluster, db: &str) -> PgDumpSource {
    PgDumpSource::new(cluster.connection(db)).with_tools(cluster.tools().clone())
}

#[tokio::test]
async fn wrong_password_is_authentication_failed_naming_user_host_and_key_file() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = common::key_file(dir.path(), "Wr0ngPassw0rd\n", 0o600);
    let src = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_password(PasswordSource::KeyFile(key.clone())),
    )
    .with_tools(cluster.tools().clone());
    let err = src.dump().await.unwrap_err();
    let msg = err.to_string();
    match &err {
        Error::AuthenticationFailed {
            user,
            host,
            port,
            credential,
            ..
        } => {
            assert_eq!(user, "postgres");
            assert_eq!(host, "127.0.0.1");
            assert_eq!(*port, cluster.port());
            assert!(
                credential.contains(&key.display().to_string()),
                "{credential}"
            );
        }
        other => panic!("expected AuthenticationFailed, got {other:?}"),
    }
    assert!(
        msg.contains("authentication failed for user `postgres` at 127.0.0.1"),
        "{msg}"
    );
    assert!(
        msg.contains("db.key") && msg.contains("doctrine F1"),
        "{msg}"
    );
    assert!(!msg.contains("Wr0ngPassw0rd") && !format!("{err:?}").contains("Wr0ngPassw0rd"));
    assert!(!err.is_retryable());

    // Through the Source contract the run fails with wst_core::Error::Source carrying it.
    let core = src.prepare().await.map(|_| ()).unwrap_err();
    let wst_core::Error::Source { name, source } = &core else {
        panic!("{core:?}")
    };
    assert_eq!(name, "database");
    assert!(matches!(
        source.downcast_ref::<Error>(),
        Some(Error::AuthenticationFailed { .. })
    ));
}

#[tokio::test]
async fn no_password_configured_is_authentication_failed() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let err = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_password(PasswordSource::None),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::AuthenticationFailed { credential, .. } if credential == "no password"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_password_environment_variable_is_named() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let err = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_password(PasswordSource::Env("WST_TEST_UNSET_PW_VAR".into())),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::PasswordEnvMissing { var } if var == "WST_TEST_UNSET_PW_VAR"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_server_is_retryable() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgDumpSource::new(cluster.connection("postgres").with_port(port))
        .with_tools(cluster.tools().clone())
        .dump()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ServerUnreachable { host, port: p, .. } if host == "127.0.0.1" && *p == port),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{port} is unreachable")),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn missing_database_is_named() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let err = source(&cluster, "no_such_db").dump().await.unwrap_err();
    assert!(
        matches!(&err, Error::DatabaseMissing { database, .. } if database == "no_such_db"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database `no_such_db` does not exist on 127.0.0.1:{}",
            cluster.port()
        )
    );
}

#[tokio::test]
async fn missing_pg_dump_says_what_to_install() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    let err = source(&cluster, "postgres")
        .with_tools(PgTools::in_dir(empty.path()))
        .dump()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ToolMissing { tool, .. } if tool == "pg_dump"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("apt-get install postgresql-client"),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn pg_dump_older_than_server_names_both_versions() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let (_dir, tools) = common::stub_pg_dump(
        r#"if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 12.3"; exit 0; fi; exit 3"#,
    );
    let err = source(&cluster, "postgres")
        .with_tools(tools)
        .dump()
        .await
        .unwrap_err();
    match &err {
        Error::ToolTooOld {
            tool,
            tool_version,
            server_version,
        } => {
            assert_eq!(tool, "pg_dump");
            assert_eq!(tool_version, "12.3");
            assert!(server_version.starts_with("15."), "{server_version}");
        }
        other => panic!("expected ToolTooOld, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("version 12.3 but the server is 15."), "{msg}");
}

#[cfg(unix)]
#[tokio::test]
async fn pg_dump_failure_reports_its_stderr_redacted() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    // A pg_dump that fails and (maliciously) prints the password it was handed.
    let (_dir, tools) = common::stub_pg_dump(
        r#"if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.99"; exit 0; fi
echo "pg_dump: error: query failed: server closed the connection; pw=$(cut -d: -f5 "$PGPASSFILE")" >&2
exit 1"#,
    );
    let err = source(&cluster, "postgres")
        .with_tools(tools)
        .dump()
        .await
        .unwrap_err();
    let msg = err.to_string();
    match &err {
        Error::ToolFailed {
            tool,
            status,
            stderr,
        } => {
            assert_eq!(tool, "pg_dump");
            assert!(status.contains('1'), "{status}");
            assert_eq!(
                stderr,
                "pg_dump: error: query failed: server closed the connection; pw=[REDACTED]"
            );
        }
        other => panic!("expected ToolFailed, got {other:?}"),
    }
    assert!(!msg.contains(cluster.password()), "{msg}");
    assert!(!format!("{err:?}").contains(cluster.password()));
}

#[cfg(unix)]
#[tokio::test]
async fn empty_dump_is_refused() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let (_dir, tools) = common::stub_pg_dump(
        r#"if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.99"; exit 0; fi; exit 0"#,
    );
    let err = source(&cluster, "postgres")
        .with_tools(tools)
        .dump()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::EmptyDump { database } if database == "postgres"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("empty dump (doctrine F3)"),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn key_file_readable_by_group_is_refused_then_accepted_after_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let Some(cluster) = common::cluster() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The right password, but a group-readable file.
    let key = common::key_file(dir.path(), &format!("{}\n", cluster.password()), 0o640);
    let src = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_password(PasswordSource::KeyFile(key.clone())),
    )
    .with_tools(cluster.tools().clone());
    let err = src.dump().await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyFileInsecure { mode: 0o640, path } if *path == key),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("mode 0640") && msg.contains("group/others") && msg.contains("chmod 600"),
        "{msg}"
    );
    assert!(!msg.contains(cluster.password()));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dump = src.dump().await.expect("accepted once private");
    assert!(dump.facts().dump_bytes.unwrap() > 0);
}

#[tokio::test]
async fn quoted_password_in_key_file_is_refused() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = common::key_file(dir.path(), &format!("\"{}\"\n", cluster.password()), 0o600);
    let err = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_password(PasswordSource::KeyFile(key)),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::KeyFileFormat { .. }), "{err:?}");
    assert!(
        err.to_string().contains("quote character at byte offset 0"),
        "{err}"
    );
    assert!(!err.to_string().contains(cluster.password()));
}

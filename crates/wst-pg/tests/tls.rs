//! TLS with libpq `sslmode` semantics, against a real cluster with a throwaway CA.

mod common;

use wst_pg::{Error, PgDumpSource, SslMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_tls_server() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    // Before TLS is on: prefer falls back to plaintext, require fails with a TLS error.
    let prefer = PgDumpSource::new(cluster.connection("postgres").with_sslmode(SslMode::Prefer))
        .with_tools(cluster.tools().clone());
    assert!(prefer.dump().await.is_ok(), "prefer without server TLS");
    let err = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_sslmode(SslMode::Require),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::TlsFailed { mode, .. } if mode == "require"),
        "{err:?}"
    );

    let ca = cluster.enable_tls().expect("enable TLS");
    cluster
        .psql(
            "postgres",
            "CREATE TABLE public.t (x int); INSERT INTO public.t VALUES (1), (2);",
        )
        .unwrap();
    for mode in [
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ] {
        let conn = cluster
            .connection("postgres")
            .with_sslmode(mode)
            .with_sslrootcert(&ca);
        let dump = PgDumpSource::new(conn)
            .with_tools(cluster.tools().clone())
            .dump()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", mode.as_str()));
        assert_eq!(dump.facts().row_counts["public.t"], 2, "{}", mode.as_str());
    }
    // verify-full against the wrong CA fails before any password is sent.
    let other = tempfile::tempdir().unwrap();
    let wrong_ca = other.path().join("other-ca.crt");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(other.path().join("k"))
        .arg("-out")
        .arg(&wrong_ca)
        .args(["-days", "1", "-subj", "/CN=someone else"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_sslmode(SslMode::VerifyFull)
            .with_sslrootcert(&wrong_ca),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::TlsFailed { mode, .. } if mode == "verify-full"),
        "{err:?}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");

    // Prove the sessions are encrypted: reject every non-TLS TCP connection, then a dump
    // (wst's session and pg_dump) still works with require and fails with disable.
    let hba = cluster.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("hostnossl all all 0.0.0.0/0 reject\n{rules}")).unwrap();
    cluster.psql("postgres", "SELECT pg_reload_conf()").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dump = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_sslmode(SslMode::Require),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .expect("TLS-only server, sslmode=require");
    assert!(dump.facts().dump_bytes.unwrap() > 0);
    let err = PgDumpSource::new(
        cluster
            .connection("postgres")
            .with_sslmode(SslMode::Disable),
    )
    .with_tools(cluster.tools().clone())
    .dump()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
}

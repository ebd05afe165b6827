//! Opening a tokio-postgres session and classifying its failures (doctrine 026 F1).

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::config::{ConnectionConfig, Password, SslMode};
use crate::error::{Error, Result};
use crate::tls::{RustlsMakeConnect, client_config};

/// An open session; the connection task ends when the client is dropped.
pub(crate) struct Session {
    pub(crate) client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `conn` with `password`.
///
/// # Errors
/// [`Error::AuthenticationFailed`], [`Error::ServerUnreachable`], [`Error::DatabaseMissing`],
/// [`Error::TlsFailed`], or [`Error::Query`] for anything else.
pub(crate) async fn connect(
    conn: &ConnectionConfig,
    password: Option<&Password>,
) -> Result<Session> {
    let mut cfg = tokio_postgres::Config::new();
    #[cfg(unix)]
    if conn.host.starts_with('/') {
        cfg.host_path(&conn.host);
    } else {
        cfg.host(&conn.host);
    }
    #[cfg(not(unix))]
    cfg.host(&conn.host);
    cfg.port(conn.port)
        .user(&conn.user)
        .dbname(&conn.database)
        .application_name(&conn.application_name)
        .connect_timeout(Duration::from_secs(conn.connect_timeout_secs.max(1)));
    if let Some(p) = password {
        cfg.password(p.expose());
    }
    let (client, task) = match conn.sslmode {
        SslMode::Disable => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = cfg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| classify(&e, conn, password))?;
            (client, spawn_connection(connection))
        }
        mode => {
            cfg.ssl_mode(if mode == SslMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let tls = RustlsMakeConnect::new(client_config(mode, conn.sslrootcert.as_deref())?);
            let (client, connection) = cfg
                .connect(tls)
                .await
                .map_err(|e| classify(&e, conn, password))?;
            (client, spawn_connection(connection))
        }
    };
    Ok(Session { client, task })
}

fn spawn_connection<F>(connection: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended with an error");
        }
    })
}

/// Maps a connection error to the specific [`Error`].
pub(crate) fn classify(
    e: &tokio_postgres::Error,
    conn: &ConnectionConfig,
    password: Option<&Password>,
) -> Error {
    let detail = redact(&error_chain(e), password);
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::AuthenticationFailed {
                user: conn.user.clone(),
                host: conn.host.clone(),
                port: conn.port,
                credential: conn.password.describe(),
                detail: redact(db.message(), password),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::DatabaseMissing {
                database: conn.database.clone(),
                host: conn.host.clone(),
                port: conn.port,
            };
        }
        return Error::Query {
            context: format!("connecting to {}", conn.display_target()),
            detail,
        };
    }
    if detail.contains("TLS") || detail.contains("certificate") {
        return Error::TlsFailed {
            host: conn.host.clone(),
            port: conn.port,
            mode: conn.sslmode.as_str().to_owned(),
            detail,
        };
    }
    if detail.contains("password missing") {
        return Error::AuthenticationFailed {
            user: conn.user.clone(),
            host: conn.host.clone(),
            port: conn.port,
            credential: conn.password.describe(),
            detail: "the server asked for a password but none is configured".to_owned(),
        };
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    if io.is_some() || detail.contains("timeout") || detail.contains("error connecting") {
        let detail = io.map_or(detail, |io| redact(&io.to_string(), password));
        return Error::ServerUnreachable {
            host: conn.host.clone(),
            port: conn.port,
            detail,
        };
    }
    Error::Query {
        context: format!("connecting to {}", conn.display_target()),
        detail,
    }
}

/// Maps a query error, redacted.
pub(crate) fn query_error(
    context: impl Into<String>,
    e: &tokio_postgres::Error,
    password: Option<&Password>,
) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error_chain(e),
    };
    Error::Query {
        context: context.into(),
        detail: redact(&detail, password),
    }
}

/// An error's message followed by its sources' messages.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn redact(text: &str, password: Option<&Password>) -> String {
    match password {
        Some(p) => p.redact(text),
        None => text.to_owned(),
    }
}

/// Quotes an SQL identifier: `"…"` with `"` doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

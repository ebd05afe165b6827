//! `TestCluster`: a throwaway PostgreSQL cluster for tests, examples and benchmarks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{ConnectionConfig, Password, PasswordSource, SslMode};
use crate::error::{Error, Result};
use crate::tools::PgTools;

/// The demo schema loaded by [`TestCluster::load_demo`] after `pgbench -i`: several schemas,
/// an enum, identity and serial keys, foreign keys, `bytea`, `jsonb`, arrays, a partitioned
/// table, a table and columns with non-ASCII names, an empty table, a view, a sequence, SQL and
/// PL/pgSQL functions, a trigger, an extension (`pg_trgm`) index, and three large objects.
pub const DEMO_SQL: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE SCHEMA sales;
CREATE SCHEMA lager;
CREATE TYPE sales.order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE sales.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    email text CHECK (email LIKE '%@%'),
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sales.orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES sales.customers (id),
    status sales.order_status NOT NULL DEFAULT 'new',
    total numeric(12, 2) CHECK (total >= 0),
    tags text[],
    attrs jsonb,
    receipt bytea
);
INSERT INTO sales.customers (name, email)
    SELECT 'customer ' || g, 'c' || g || '@example.test' FROM generate_series(1, 200) g;
INSERT INTO sales.orders (customer_id, status, total, tags, attrs, receipt)
    SELECT 1 + g % 200,
           (ARRAY['new', 'paid', 'shipped']::sales.order_status[])[1 + g % 3],
           round(((g * 7.31) % 1000)::numeric, 2),
           ARRAY['t' || g % 5, 'x'],
           jsonb_build_object('n', g, 'nested', jsonb_build_object('even', g % 2 = 0)),
           decode(md5(g::text), 'hex')
    FROM generate_series(1, 2000) g;
CREATE INDEX orders_attrs_gin ON sales.orders USING gin (attrs);
CREATE INDEX customers_name_trgm ON sales.customers USING gin (name gin_trgm_ops);
CREATE TABLE sales.events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE sales.events_2025 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.events_2026 PARTITION OF sales.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO sales.events SELECT date '2025-06-01' + g, 'event ' || g FROM generate_series(0, 299) g;
CREATE TABLE lager."Lagerbestand_ü" ("größe" integer NOT NULL, "名前" text, "Menge" numeric DEFAULT 0);
INSERT INTO lager."Lagerbestand_ü" SELECT g, 'Ware ' || g || ' — 名前 ü', g * 1.5 FROM generate_series(1, 50) g;
CREATE TABLE lager.empty_table (id integer PRIMARY KEY);
CREATE SEQUENCE lager.ticket_seq START 100 INCREMENT 5;
SELECT nextval('lager.ticket_seq');
CREATE VIEW sales.big_orders AS
    SELECT o.id, c.name, o.total FROM sales.orders o JOIN sales.customers c ON c.id = o.customer_id
    WHERE o.total > 500;
CREATE FUNCTION sales.customer_total(cid bigint) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(total), 0) FROM sales.orders WHERE customer_id = cid $$;
CREATE FUNCTION sales.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.created := now(); RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE UPDATE ON sales.customers
    FOR EACH ROW EXECUTE FUNCTION sales.touch();
CREATE TABLE public.documents (id serial PRIMARY KEY, title text NOT NULL, body oid);
INSERT INTO public.documents (title, body)
    SELECT 'document ' || g, lo_from_bytea(0, convert_to(repeat('large object ' || g || ' ', 100), 'UTF8'))
    FROM generate_series(1, 3) g;
ANALYZE;
"#;

/// A throwaway PostgreSQL cluster built from the local server binaries: `initdb` into a
/// temporary directory, started on a free loopback TCP port (and a private Unix socket
/// directory) with durability settings off for speed (`fsync=off`), stopped and deleted on
/// drop.
///
/// When the process runs as root, the server programs run as the `postgres` system user (the
/// temporary directory is handed to it), because PostgreSQL refuses to run as root. Clients
/// (`psql`, `pgbench`, `pg_dump`) run as the current user and authenticate with the superuser
/// `postgres` and a random password (SCRAM), kept in a private key file
/// ([`TestCluster::key_file`]).
///
/// Only for tests and demonstrations: the data is lost on drop and nothing is durable.
#[derive(Debug)]
pub struct TestCluster {
    root: tempfile::TempDir,
    keys: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    tools: PgTools,
    run_as: Option<(u32, u32)>,
    password: Password,
    password_text: String,
    running: bool,
}

impl TestCluster {
    /// For tests and demos: starts a cluster; when the server programs are missing, prints a
    /// loud notice (with the install command) and returns `None` — except under `CI=true`,
    /// where a missing server is a failure, never a silent skip.
    ///
    /// # Panics
    /// Under `CI=true` when the programs are missing; always when they exist but the cluster
    /// cannot start (that is a real failure).
    pub fn start_or_skip() -> Option<Self> {
        match Self::server_tools() {
            Ok(_) => {
                Some(Self::start().unwrap_or_else(|e| panic!("starting the test cluster: {e}")))
            }
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{e}\nCI=true: a missing PostgreSQL server fails the run (apt-get install postgresql)"
                );
                eprintln!(
                    "\n**********\n** NOT RUN: PostgreSQL server programs missing: {e}\n**********\n"
                );
                None
            }
        }
    }

    /// The PostgreSQL server programs, if installed (`initdb`, `pg_ctl`, `postgres` next to
    /// `pg_dump`).
    ///
    /// # Errors
    /// [`Error::Cluster`] saying to `apt-get install postgresql` when they are missing.
    pub fn server_tools() -> Result<PgTools> {
        let tools = PgTools::discover();
        let missing: Vec<&str> = [
            "initdb",
            "pg_ctl",
            "postgres",
            "pg_dump",
            "pg_restore",
            "psql",
            "pgbench",
        ]
        .into_iter()
        .filter(|p| !tools.program(p).is_file())
        .collect();
        if missing.is_empty() {
            Ok(tools)
        } else {
            Err(Error::Cluster(format!(
                "PostgreSQL server programs not found ({}; looked in {}): install them with `apt-get install postgresql` (or set WST_PG_BINDIR)",
                missing.join(", "),
                tools
                    .bindir()
                    .map_or_else(|| "PATH".to_owned(), |d| d.display().to_string())
            )))
        }
    }

    /// Creates and starts a cluster.
    ///
    /// # Errors
    /// [`Error::Cluster`] when the programs are missing, the `postgres` user is missing (when
    /// root), or `initdb`/`pg_ctl start` fail (with the server log's tail).
    pub fn start() -> Result<Self> {
        let tools = Self::server_tools()?;
        let keys = tempfile::Builder::new()
            .prefix("wst-pg-keys-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster key directory", e))?;
        let root = tempfile::Builder::new()
            .prefix("wst-pg-cluster-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster directory", e))?;
        let run_as = run_as_user(keys.path())?;
        let password_text = random_password();
        let password = Password::new(password_text.clone());
        let key_file = keys.path().join("db.key");
        write_private(&key_file, format!("{password_text}\n").as_bytes())?;
        write_private(
            &keys.path().join("pgpass"),
            format!("*:*:*:*:{password_text}\n").as_bytes(),
        )?;

        let data = root.path().join("data");
        let sock = root.path().join("sock");
        std::fs::create_dir(&sock).map_err(|e| Error::io("creating the socket directory", e))?;
        let pwfile = root.path().join("initdb.pw");
        write_private(&pwfile, password_text.as_bytes())?;
        if let Some((uid, gid)) = run_as {
            chown(root.path(), uid, gid)?;
            chown(&sock, uid, gid)?;
            chown(&pwfile, uid, gid)?;
        }
        let mut cluster = Self {
            log: root.path().join("server.log"),
            root,
            keys,
            data,
            port: 0,
            tools,
            run_as,
            password,
            password_text,
            running: false,
        };
        let out = cluster
            .server_command("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args([
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| Error::Cluster(format!("cannot run initdb: {e}")))?;
        std::fs::remove_file(&pwfile).ok();
        if !out.status.success() {
            return Err(Error::Cluster(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let conf = format!(
            "\n# wst TestCluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n\
             shared_buffers = 256MB\nmax_wal_size = 4GB\nmaintenance_work_mem = 256MB\n",
            sock.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| Error::io("configuring the test cluster", e))?;

        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let out = cluster
                .server_command("pg_ctl")
                .arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(&cluster.log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("start")
                .output()
                .map_err(|e| Error::Cluster(format!("cannot run pg_ctl: {e}")))?;
            if out.status.success() {
                cluster.port = port;
                cluster.running = true;
                tracing::info!(port, data = %cluster.data.display(), "test cluster started");
                return Ok(cluster);
            }
            last = cluster.log_tail();
        }
        Err(Error::Cluster(format!(
            "pg_ctl start failed 5 times; server log: {last}"
        )))
    }

    /// The loopback address the server listens on (`127.0.0.1`).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser name (`postgres`).
    pub fn superuser(&self) -> &'static str {
        "postgres"
    }

    /// The superuser's password. Throwaway: generated for this cluster only; exposed so that
    /// tests can prove it never leaks into errors, logs or artifacts.
    pub fn password(&self) -> &str {
        &self.password_text
    }

    /// A private (0600) key file holding the superuser password (doctrine 026 R6 format).
    pub fn key_file(&self) -> PathBuf {
        self.keys.path().join("db.key")
    }

    /// The data directory (e.g. to edit `pg_hba.conf` in a test; reload afterwards with
    /// `SELECT pg_reload_conf()`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server log file.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// The PostgreSQL programs the cluster runs.
    pub fn tools(&self) -> &PgTools {
        &self.tools
    }

    /// A connection to `database` as the superuser over TCP, password from [`Self::key_file`],
    /// `sslmode=disable`.
    pub fn connection(&self, database: &str) -> ConnectionConfig {
        ConnectionConfig::new(self.host(), self.superuser(), database)
            .with_port(self.port)
            .with_password(PasswordSource::KeyFile(self.key_file()))
            .with_sslmode(SslMode::Disable)
    }

    /// A client command (`psql`, `pgbench`, `pg_dump`, …) from the cluster's bin directory,
    /// set up by [`Self::configure_client`] to reach this cluster as the superuser.
    pub fn client_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.tools.program(program));
        self.configure_client(&mut cmd);
        cmd
    }

    /// Sets up any command (e.g. `sh -c "pg_dump … | zstd"`) to reach this cluster as the
    /// superuser through libpq's environment: `PGHOST`, `PGPORT`, `PGUSER`, a private
    /// `PGPASSFILE`, `PGSSLMODE=disable`, no `PGPASSWORD`, no stdin.
    pub fn configure_client<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env_remove("PGPASSWORD")
            .env("PGHOST", self.host())
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", self.superuser())
            .env("PGPASSFILE", self.keys.path().join("pgpass"))
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null())
    }

    /// Runs `sql` (one or more statements) with `psql` in `database`, stopping at the first error;
    /// returns the unaligned, tuples-only output.
    ///
    /// # Errors
    /// [`Error::Cluster`] with `psql`'s error output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let mut child = self
            .client_command("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Cluster(format!("cannot run psql: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(|e| Error::Cluster(format!("writing to psql: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Cluster(format!("waiting for psql: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(Error::Cluster(format!(
                "psql in `{database}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Creates database `name`.
    ///
    /// # Errors
    /// [`Error::Cluster`].
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\";", name.replace('"', "\"\"")),
        )
        .map(drop)
    }

    /// Loads the demo data set into existing database `database`: `pgbench -i -s scale`
    /// (100 000 `pgbench_accounts` rows per scale unit) plus [`DEMO_SQL`].
    ///
    /// # Errors
    /// [`Error::Cluster`] when `pgbench` or `psql` fail.
    pub fn load_demo(&self, database: &str, scale: u32) -> Result<()> {
        let out = self
            .client_command("pgbench")
            .args(["-i", "-q", "-s", &scale.max(1).to_string(), database])
            .output()
            .map_err(|e| Error::Cluster(format!("cannot run pgbench: {e}")))?;
        if !out.status.success() {
            return Err(Error::Cluster(format!(
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        self.psql(database, DEMO_SQL).map(drop)
    }

    /// Turns TLS on: creates a throwaway certificate authority and a server certificate for
    /// `127.0.0.1`/`localhost` with the `openssl` command, configures `ssl = on` and reloads
    /// the server. Returns the CA certificate (PEM), for `sslrootcert`.
    ///
    /// # Errors
    /// [`Error::Cluster`] when `openssl` is missing or fails, or the reload fails.
    pub fn enable_tls(&self) -> Result<PathBuf> {
        let dir = self.keys.path();
        let ca = dir.join("ca.crt");
        let ext = dir.join("server.ext");
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            .map_err(|e| Error::io("writing the certificate extensions", e))?;
        let d = |name: &str| dir.join(name).display().to_string();
        let steps: [Vec<String>; 3] = [
            vec![
                "req".into(),
                "-x509".into(),
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:prime256v1".into(),
                "-nodes".into(),
                "-keyout".into(),
                d("ca.key"),
                "-out".into(),
                d("ca.crt"),
                "-days".into(),
                "2".into(),
                "-subj".into(),
                "/CN=wst TestCluster CA".into(),
            ],
            vec![
                "req".into(),
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:prime256v1".into(),
                "-nodes".into(),
                "-keyout".into(),
                d("server.key"),
                "-out".into(),
                d("server.csr"),
                "-subj".into(),
                "/CN=127.0.0.1".into(),
            ],
            vec![
                "x509".into(),
                "-req".into(),
                "-in".into(),
                d("server.csr"),
                "-CA".into(),
                d("ca.crt"),
                "-CAkey".into(),
                d("ca.key"),
                "-CAcreateserial".into(),
                "-out".into(),
                d("server.crt"),
                "-days".into(),
                "2".into(),
                "-extfile".into(),
                ext.display().to_string(),
            ],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| {
                    Error::Cluster(format!("cannot run openssl (apt-get install openssl): {e}"))
                })?;
            if !out.status.success() {
                return Err(Error::Cluster(format!(
                    "openssl {} failed: {}",
                    args[0],
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        for name in ["server.crt", "server.key"] {
            let target = self.data.join(name);
            std::fs::copy(dir.join(name), &target)
                .map_err(|e| Error::io(format!("installing `{name}`"), e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| Error::io(format!("securing `{name}`"), e))?;
            }
            if let Some((uid, gid)) = self.run_as {
                chown(&target, uid, gid)?;
            }
        }
        self.psql(
            "postgres",
            "ALTER SYSTEM SET ssl = on; ALTER SYSTEM SET ssl_cert_file = 'server.crt'; \
             ALTER SYSTEM SET ssl_key_file = 'server.key'; SELECT pg_reload_conf();",
        )?;
        // The reload is asynchronous: wait until new sessions see ssl = on.
        for _ in 0..50 {
            if self.psql("postgres", "SHOW ssl")? == "on" {
                return Ok(ca);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(Error::Cluster(format!(
            "ssl did not turn on; server log: {}",
            self.log_tail()
        )))
    }

    /// Restarts the server on the same port (`pg_ctl restart -m fast`), e.g. after
    /// `ALTER SYSTEM SET archive_mode = on`, which takes effect only at server start (the WAL
    /// archiving tests of issue 16).
    ///
    /// # Errors
    /// [`Error::Cluster`] with the server log's tail when `pg_ctl` fails.
    pub fn restart(&mut self) -> Result<()> {
        let out = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-m", "fast", "-w", "-t", "60", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("restart")
            .output()
            .map_err(|e| Error::Cluster(format!("cannot run pg_ctl: {e}")))?;
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            Err(Error::Cluster(format!(
                "pg_ctl restart failed: {}; server log: {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail()
            )))
        }
    }

    /// Stops the server (`pg_ctl stop -m fast`). Also done on drop.
    ///
    /// # Errors
    /// [`Error::Cluster`] when `pg_ctl` fails.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let out = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .map_err(|e| Error::Cluster(format!("cannot run pg_ctl: {e}")))?;
        self.running = false;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Cluster(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.tools.program(program));
        cmd.current_dir(self.root.path())
            .env("HOME", self.root.path())
            .stdin(Stdio::null());
        #[cfg(unix)]
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The password as a [`Password`].
    pub fn password_secret(&self) -> &Password {
        &self.password
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping the test cluster failed");
        }
    }
}

fn random_password() -> String {
    use rand::Rng;
    let bytes: [u8; 18] = rand::thread_rng().r#gen();
    format!("wst-{}", hex::encode(bytes))
}

fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(content))
        .map_err(|e| Error::io(format!("writing `{}`", path.display()), e))
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free loopback port", e))
}

/// When running as root, the `postgres` user's (uid, gid) to run the server as.
#[cfg(unix)]
fn run_as_user(probe: &Path) -> Result<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata(probe)
        .map_err(|e| Error::io("reading the key directory's owner", e))?
        .uid();
    if me != 0 {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&"postgres") && fields.len() > 3 {
            let uid = fields[2].parse().ok();
            let gid = fields[3].parse().ok();
            if let (Some(uid), Some(gid)) = (uid, gid) {
                return Ok(Some((uid, gid)));
            }
        }
    }
    Err(Error::Cluster(
        "running as root but there is no `postgres` user to run the server as: `apt-get install postgresql` creates it".to_owned(),
    ))
}

#[cfg(not(unix))]
fn run_as_user(_probe: &Path) -> Result<Option<(u32, u32)>> {
    Ok(None)
}

#[cfg(unix)]
fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
        Error::io(
            format!("handing `{}` to the postgres user", path.display()),
            e,
        )
    })
}

#[cfg(not(unix))]
fn chown(_path: &Path, _uid: u32, _gid: u32) -> Result<()> {
    Ok(())
}

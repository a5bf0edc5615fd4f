//! A real PostgreSQL server for the tests (Debian's `postgresql` 15): `initdb` + `pg_ctl` in a
//! temp dir on a free loopback port, shared by every test of one test binary (each test gets a
//! database of its own, so they stay independent).
//!
//! PostgreSQL refuses to run as root, so when we are root it runs as the `postgres` system user
//! (`runuser`). A shared server lives in a static and is never dropped, so a watchdog shell
//! stops it and removes its directory once the test process is gone (even if it was killed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::Connection;

use crate::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgServer {
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL program, as the `postgres` user when we are root.
fn pg_command(program: &str) -> Command {
    let path = format!("{BIN}/{program}");
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", &path]);
        cmd
    } else {
        Command::new(path)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e} (apt-get install postgresql; see scripts/setup.sh)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PgServer {
    /// The server shared by this test binary, started on first use.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(PgServer::start)
    }

    fn start() -> PgServer {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 not found under {BIN}: apt-get install postgresql (scripts/setup.sh)"
        );
        let dir = std::env::temp_dir().join(format!(
            "argus-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["postgres:postgres"]).arg(&dir);
                    c
                },
                "chown",
            )
            .expect("chown the temp dir to postgres");
        }
        let data = dir.join("data");
        let mut initdb = pg_command("initdb");
        initdb
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data);
        run(initdb, "initdb").expect("initdb");
        watchdog(&dir);

        // A free port can be taken between our probe and the server's bind: retry a few times.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                dir.display()
            );
            let mut start = pg_command("pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]);
            match run(start, "pg_ctl start") {
                Ok(()) => return PgServer { port },
                Err(e) => {
                    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                    last_error = format!("{e}\n{log}");
                }
            }
        }
        panic!("PostgreSQL did not start: {last_error}");
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database of its own for one test; its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("argus_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::postgres::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        self.url(&name)
    }
}

/// Stops the server and removes `dir` once this process has exited.
// The watchdog outlives this process on purpose (setsid): nobody waits for it.
#[allow(clippy::zombie_processes)]
fn watchdog(dir: &Path) {
    let pg_ctl = format!("{BIN}/pg_ctl");
    let stop = if is_root() {
        format!("runuser -u postgres -- {pg_ctl}")
    } else {
        pg_ctl
    };
    let script = format!(
        r#"while kill -0 {pid} 2>/dev/null; do sleep 0.5; done
{stop} -D "$1/data" -m immediate stop >/dev/null 2>&1
rm -rf "$1""#,
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["bash", "-c", &script, "pg-watchdog"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the PostgreSQL watchdog");
}

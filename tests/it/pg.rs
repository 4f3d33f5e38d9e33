//! A throwaway PostgreSQL server for the tests, started once per test process on first use:
//! `initdb` into a temp dir, a free port, `pg_ctl start`. Its binaries are found on `PATH` or
//! under `/usr/lib/postgresql/*/bin`; as root they run as the `postgres` user (PostgreSQL
//! refuses to run as root). Every test gets its own database on it.
//!
//! Test processes do not run destructors of statics, so a small watchdog process stops the
//! server and removes its directory as soon as the test process is gone (however it ended).
//!
//! `CHOICEBOARD_TEST_POSTGRES=postgres://USER@HOST:PORT` uses that server instead (the whole-
//! suite test hands its throwaway server to the child runs this way).
//!
//! Shared by both test binaries (`tests/components` includes this file by path). The tests that
//! need PostgreSQL are in `tests/components`: [`available`] decides there, without starting
//! anything, whether they run or are reported `ignored`; once running, they take the server
//! with [`server_or_panic`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor};

/// A running server: `postgres://postgres@127.0.0.1:PORT`, without a database name.
pub struct PgServer {
    pub url: String,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// The shared server, started on first use; `Err` says why there is none.
pub fn server() -> Result<&'static PgServer, String> {
    SERVER
        .get_or_init(|| match std::env::var("CHOICEBOARD_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => Ok(PgServer {
                url: url.trim_end_matches('/').to_string(),
            }),
            _ => start(),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether [`server`] can have a server, judged without starting one: `CHOICEBOARD_TEST_POSTGRES`
/// is set, or the binaries are there (and, as root, the `postgres` user to run them). `Err` says
/// what is missing. A server that is there but fails to start fails its tests.
pub fn available() -> Result<(), String> {
    match std::env::var("CHOICEBOARD_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Ok(()),
        _ => binaries().map(|_| ()),
    }
}

/// The shared server for a test that needs PostgreSQL; without one the test fails, saying why.
pub fn server_or_panic() -> &'static PgServer {
    server().unwrap_or_else(|why| panic!("PostgreSQL is unavailable: {why}"))
}

/// A new, empty database on `server`; returns its URL.
pub async fn fresh_database(server: &PgServer) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "cb_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = admin(server).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("CREATE DATABASE");
    admin.close().await.ok();
    format!("{}/{name}", server.url)
}

/// A connection to the server's `postgres` database, for administrative statements.
pub async fn admin(server: &PgServer) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&format!("{}/postgres", server.url))
        .await
        .expect("connect to the test PostgreSQL")
}

/// The database name at the end of a URL made by [`fresh_database`].
pub fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The directory holding `initdb` and `pg_ctl`, and whether they must run as `postgres`.
fn binaries() -> Result<(PathBuf, bool), String> {
    let bin = find_binaries().ok_or_else(|| {
        "no initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin".to_string()
    })?;
    let as_root = is_root();
    if as_root && !user_exists("postgres") {
        return Err("running as root and there is no `postgres` user to run the server".into());
    }
    Ok((bin, as_root))
}

fn start() -> Result<PgServer, String> {
    let (bin, as_root) = binaries()?;
    let dir = tempfile::Builder::new()
        .prefix("choiceboard-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let cleanup = |why: String| {
        let _ = std::fs::remove_dir_all(&dir);
        why
    };
    if as_root {
        run(Command::new("chown").arg("postgres:").arg(&dir)).map_err(cleanup)?;
    }
    let data = dir.join("data");
    run(tool(&bin, "initdb", as_root)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"]))
    .map_err(cleanup)?;
    // A free port can be taken between our probe and the server's bind: try a few.
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(cleanup)?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.display()
        );
        let started = run(tool(&bin, "pg_ctl", as_root)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-s", "-o", &options, "start"]));
        match started {
            Ok(()) => {
                watchdog(&dir, &data);
                return Ok(PgServer {
                    url: format!("postgres://postgres@127.0.0.1:{port}"),
                });
            }
            Err(e) => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                last_error = format!("{e}\n{log}");
            }
        }
    }
    Err(cleanup(format!("pg_ctl start failed: {last_error}")))
}

/// The directory holding `initdb` and `pg_ctl`: on PATH, else the newest under
/// /usr/lib/postgresql/*/bin (where Debian puts them, off PATH).
fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL tool, run as `postgres` when we are root.
fn tool(bin: &Path, name: &str, as_root: bool) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(name));
        c
    } else {
        Command::new(bin.join(name))
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(listener
        .local_addr()
        .map_err(|e| format!("addr: {e}"))?
        .port())
}

/// Once this test process is gone, stops the server at once (SIGQUIT: immediate shutdown;
/// nothing in it is worth keeping) and removes its directory.
fn watchdog(dir: &Path, data: &Path) {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        pg=$(head -n 1 "$3/postmaster.pid" 2>/dev/null)
        if [ -n "$pg" ]; then
            kill -QUIT "$pg" 2>/dev/null
            for _ in $(seq 100); do kill -0 "$pg" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -rf "$2"
    "#;
    use std::os::unix::process::CommandExt;
    let spawned = Command::new("sh")
        .args(["-c", script, "choiceboard-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C of the test run does not end it before it
        // has stopped the server.
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        eprintln!(
            "warning: no watchdog for the test PostgreSQL in {} ({e}); stop it by hand",
            dir.display()
        );
    }
}

//! The servers under test, each a real child process on a free loopback port: choiceboard
//! (release build, temp SQLite database), the plain-axum floor, and the two baselines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::fanout::Proto;
use crate::net::{self, Client};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stack {
    ChoiceboardSse,
    ChoiceboardWs,
    PlainAxum,
    FastApi,
    SocketIo,
}

impl Stack {
    pub fn name(self) -> &'static str {
        match self {
            Stack::ChoiceboardSse => "choiceboard-sse",
            Stack::ChoiceboardWs => "choiceboard-ws",
            Stack::PlainAxum => "plain-axum",
            Stack::FastApi => "fastapi",
            Stack::SocketIo => "socketio",
        }
    }

    pub fn proto(self) -> Proto {
        match self {
            Stack::ChoiceboardSse | Stack::PlainAxum => Proto::Sse,
            Stack::ChoiceboardWs | Stack::FastApi => Proto::Ws,
            Stack::SocketIo => Proto::SocketIo,
        }
    }

    /// Can the stack change a countdown (the floor cannot: it has no state)?
    pub fn has_changes(self) -> bool {
        self != Stack::PlainAxum
    }
}

/// Where things are: the workspace root, its target directory, a scratch directory.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    pub target: PathBuf,
    pub out: PathBuf,
}

impl Paths {
    pub fn find() -> Paths {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let out = target.join("bench");
        Paths { root, target, out }
    }

    pub fn choiceboard(&self) -> PathBuf {
        self.target.join("release/choiceboard")
    }
}

/// Builds the release server and the floor (a no-op when they are fresh).
pub fn build(paths: &Paths) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&paths.root)
        .args([
            "build",
            "--release",
            "-p",
            "choiceboard",
            "-p",
            "plain-axum",
            "--bins",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    Ok(())
}

pub fn install_baselines(paths: &Paths) -> anyhow::Result<()> {
    let status = std::process::Command::new("bash")
        .arg(paths.root.join("bench/baselines/install.sh"))
        .status()
        .context("running bench/baselines/install.sh")?;
    if !status.success() {
        bail!("installing the baselines' dependencies failed");
    }
    Ok(())
}

pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub struct Server {
    pub stack: Stack,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    dir: PathBuf,
    paths: Paths,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts `stack` in a fresh scratch directory and waits until it answers.
    pub async fn start(
        stack: Stack,
        paths: &Paths,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let dir =
            paths
                .out
                .join("tmp")
                .join(format!("{}-{}-{port}", stack.name(), std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = spawn(stack, paths, addr, &dir, &env)?;
        let pid = child.id().context("no pid")?;
        let server = Server {
            stack,
            addr,
            pid,
            child,
            dir,
            paths: paths.clone(),
            env,
        };
        net::wait_ready(addr, "/healthz", Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// SIGKILL, then the same server again on the same address and database; answers the
    /// monotonic time (ns) at which it answered `/healthz` again.
    pub async fn kill9_and_restart(&mut self) -> anyhow::Result<u64> {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.child = spawn(self.stack, &self.paths, self.addr, &self.dir, &self.env)?;
        self.pid = self.child.id().context("no pid")?;
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut client = net::Client::new(self.addr, None);
            if client
                .request("GET", "/healthz", None)
                .await
                .is_ok_and(|a| a.status == 200)
            {
                return Ok(crate::procstat::mono_ns());
            }
            if tokio::time::Instant::now() > until {
                bail!("the restarted server did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes one countdown of an hour; returns (stream path, room or id).
    pub async fn create(&self, client: &mut Client, n: usize) -> anyhow::Result<(String, String)> {
        let id = match self.stack {
            Stack::ChoiceboardSse | Stack::ChoiceboardWs => {
                let body = json!({"title": format!("bench {n}"), "options": [{"id": "a"}, {"id": "b"}],
                                  "timeout_seconds": 3600});
                let answer = client
                    .request("POST", "/api/choices", Some(&body.to_string()))
                    .await?;
                id_of(&answer.json()?)?
            }
            Stack::PlainAxum => format!("c{n}"),
            Stack::FastApi => {
                let body = json!({"timeout_seconds": 3600}).to_string();
                let answer = client.request("POST", "/choices", Some(&body)).await?;
                id_of(&answer.json()?)?
            }
            Stack::SocketIo => {
                let body = json!({"seconds": 3600}).to_string();
                let answer = client.request("POST", "/timers", Some(&body)).await?;
                id_of(&answer.json()?)?
            }
        };
        let path = match self.stack {
            Stack::ChoiceboardSse | Stack::PlainAxum => format!("/choice/{id}/events"),
            Stack::ChoiceboardWs | Stack::FastApi => format!("/ws/{id}"),
            Stack::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_string(),
        };
        Ok((path, id))
    }

    /// Sets a countdown to `seconds` from now; returns the new deadline (Unix ms).
    pub async fn change(&self, client: &mut Client, id: &str, seconds: u32) -> anyhow::Result<i64> {
        let body = json!({"seconds": seconds}).to_string();
        let path = match self.stack {
            Stack::ChoiceboardSse | Stack::ChoiceboardWs => format!("/choice/{id}/timeout"),
            Stack::FastApi => format!("/choices/{id}/timeout"),
            Stack::SocketIo => format!("/timers/{id}/timeout"),
            Stack::PlainAxum => bail!("the floor has no state to change"),
        };
        let answer = client.request("POST", &path, Some(&body)).await?;
        let value = answer.json()?;
        value["deadline"]
            .as_str()
            .and_then(net::parse_rfc3339_ms)
            .with_context(|| format!("no deadline in {value}"))
    }

    /// SIGTERM (so a profiler wrapping the server writes its output), SIGKILL after 5 s.
    pub async fn stop(mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_ok()
        {
            return;
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        // The database and the log stay in target/bench/tmp for a look afterwards.
        let _ = &self.dir;
    }
}

fn id_of(value: &serde_json::Value) -> anyhow::Result<String> {
    value["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no id in {value}"))
}

/// Starts `stack` on `addr`, its database and log in `dir`.
fn spawn(
    stack: Stack,
    paths: &Paths,
    addr: SocketAddr,
    dir: &std::path::Path,
    env: &[(String, String)],
) -> anyhow::Result<Child> {
    let port = addr.port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    let mut command = match stack {
        Stack::ChoiceboardSse | Stack::ChoiceboardWs => {
            // BENCH_WRAP runs the server under a profiler, e.g.
            // `BENCH_WRAP="valgrind --tool=massif --massif-out-file=massif.out"`.
            let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
            let mut words = wrap.split_whitespace();
            let mut c = match words.next() {
                Some(program) => {
                    let mut c = Command::new(program);
                    c.args(words).arg(paths.choiceboard());
                    c
                }
                None => Command::new(paths.choiceboard()),
            };
            c.arg("--bind")
                .arg(addr.to_string())
                .arg("--database")
                .arg(format!("sqlite://{}", dir.join("bench.db").display()))
                .env("RUST_LOG", "warn")
                // A load generator is one client with thousands of streams and commands: the
                // per-client and total limits a normal team never meets are off here.
                .env("CHOICEBOARD_RATE_LIMIT", "0")
                .env("CHOICEBOARD_MAX_STREAMS", "0")
                .env("CHOICEBOARD_MAX_STREAMS_PER_CLIENT", "0");
            c
        }
        Stack::PlainAxum => {
            let mut c = Command::new(paths.target.join("release/plain-axum"));
            c.arg(addr.to_string());
            c
        }
        Stack::FastApi => {
            let mut c = Command::new(paths.out.join("venv/bin/python"));
            c.args(["-m", "uvicorn", "app:app", "--app-dir"])
                .arg(paths.root.join("bench/baselines/fastapi"))
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--backlog", "4096", "--log-level", "warning"]);
            c
        }
        Stack::SocketIo => {
            let mut c = Command::new("node");
            c.arg(paths.root.join("bench/baselines/socketio/server.js"))
                .arg(port.to_string())
                .env("NODE_PATH", paths.out.join("node/node_modules"));
            c
        }
    };
    command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    command
        .spawn()
        .with_context(|| format!("starting {}", stack.name()))
}

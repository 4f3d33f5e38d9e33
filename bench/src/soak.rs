//! `soak`: K clients create and answer choices without pause while the release server is
//! killed with SIGKILL at random moments and restarted on the same database. After each
//! restart: every acknowledged command must be in the event log, every overdue deadline must
//! have fired, and the log must be gap-free (seqs strictly increasing by one).
//!
//! Prints `acknowledged A, lost L, kills K`; exits 1 if anything was lost, unfired or gapped.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tokio::process::{Child, Command};

use choiceboard_bench::net::{self, Client};
use choiceboard_bench::procstat::wall_ms;
use choiceboard_bench::servers::{self, Paths};

#[derive(Parser, Debug)]
#[command(
    about = "kill -9 the server at random moments under load; nothing acknowledged may be lost"
)]
struct Args {
    /// How many times the server is killed.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Concurrent clients creating and answering choices.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// The random wait before each kill lies between these, ms.
    #[arg(long, default_value_t = 300)]
    min_gap_ms: u64,
    #[arg(long, default_value_t = 3000)]
    max_gap_ms: u64,
    /// Use the binary as built (no `cargo build --release` first).
    #[arg(long)]
    no_build: bool,
}

/// What the server acknowledged: created choices (with their deadline) and submitted ones.
#[derive(Default, Clone)]
struct Acks {
    created: HashMap<String, i64>,
    submitted: HashSet<String>,
    count: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let paths = Paths::find();
    if !args.no_build {
        servers::build(&paths)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ok = runtime.block_on(run(args, paths))?;
    std::process::exit(if ok { 0 } else { 1 });
}

struct Node {
    paths: Paths,
    addr: SocketAddr,
    db: std::path::PathBuf,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl Node {
    async fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(self.paths.choiceboard())
            .arg("--bind")
            .arg(self.addr.to_string())
            .arg("--database")
            .arg(format!("sqlite://{}", self.db.display()))
            .env("RUST_LOG", "warn")
            // A load generator is one client with thousands of streams and commands: the
            // per-client and total limits a normal team never meets are off here.
            .env("CHOICEBOARD_RATE_LIMIT", "0")
            .env("CHOICEBOARD_MAX_STREAMS", "0")
            .env("CHOICEBOARD_MAX_STREAMS_PER_CLIENT", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting choiceboard")?;
        self.child = Some(child);
        net::wait_ready(self.addr, "/healthz", Duration::from_secs(30)).await
    }

    /// SIGKILL, no warning.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

async fn run(args: Args, paths: Paths) -> anyhow::Result<bool> {
    let dir = paths
        .out
        .join("tmp")
        .join(format!("soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", servers::free_port()?).parse()?;
    let mut node = Node {
        paths: paths.clone(),
        addr,
        db: dir.join("soak.db"),
        log: dir.join("server.log"),
        child: None,
    };
    node.start().await?;
    eprintln!("soak: serving on {addr}, database {}", node.db.display());

    let acks = Arc::new(Mutex::new(Acks::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..args.clients {
        clients.push(tokio::spawn(client(addr, n, acks.clone(), stop.clone())));
    }

    let mut seed = wall_ms() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut lost_ids: HashSet<String> = HashSet::new();
    let mut unfired_ids: HashSet<String> = HashSet::new();
    let mut gaps_total = 0u64;
    let mut kills = 0;
    for k in 1..=args.kills {
        seed = xorshift(seed);
        let gap = args.min_gap_ms + seed % (args.max_gap_ms - args.min_gap_ms).max(1);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let before = acks.lock().map(|a| a.clone()).unwrap_or_default();
        node.kill().await;
        kills += 1;
        node.start().await?;
        let restarted = wall_ms();
        // Overdue deadlines fire at start-up; give the scheduler a moment.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let check = verify(addr, &before, restarted).await?;
        gaps_total = gaps_total.max(check.gaps);
        lost_ids.extend(check.lost.iter().cloned());
        unfired_ids.extend(check.unfired.iter().cloned());
        eprintln!(
            "kill {k:>2} after {gap:>4} ms: acknowledged {}, events {}, lost {}, unfired {}, seq gaps {}",
            before.count,
            check.events,
            check.lost.len(),
            check.unfired.len(),
            check.gaps
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    // A last look with everything the clients were told.
    let last = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let check = verify(addr, &last, 0).await?;
    lost_ids.extend(check.lost.iter().cloned());
    gaps_total = gaps_total.max(check.gaps);
    node.kill().await;

    let ok = lost_ids.is_empty() && unfired_ids.is_empty() && gaps_total == 0;
    println!(
        "acknowledged {}, lost {}, kills {kills} (unfired deadlines {}, seq gaps {}, {} choices, {} events)",
        last.count,
        lost_ids.len(),
        unfired_ids.len(),
        gaps_total,
        last.created.len(),
        check.events
    );
    if !ok {
        for id in lost_ids.iter().chain(unfired_ids.iter()).take(10) {
            println!("  e.g. {id}");
        }
    }
    Ok(ok)
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Creates choices and answers most of them at once; one in three is left to time out (1 s).
async fn client(
    addr: SocketAddr,
    n: usize,
    acks: Arc<Mutex<Acks>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut client = Client::new(addr, Some(net::source(n)));
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let expire = i.is_multiple_of(3);
        let body = json!({"title": format!("soak {n}/{i}"), "options": [{"id": "a"}, {"id": "b"}],
                          "timeout_seconds": if expire { 1 } else { 3600 }})
        .to_string();
        let created = request(&mut client, "/api/choices", &body).await;
        let Some(choice) = created.filter(|(status, _)| *status == 201).map(|(_, v)| v) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let (Some(id), Some(deadline)) = (
            choice["id"].as_str().map(str::to_string),
            choice["deadline"].as_str().and_then(net::parse_rfc3339_ms),
        ) else {
            continue;
        };
        if let Ok(mut a) = acks.lock() {
            a.created.insert(id.clone(), deadline);
            a.count += 1;
        }
        if expire {
            continue;
        }
        let body = json!({"selection": ["a"]}).to_string();
        if let Some((200, _)) = request(&mut client, &format!("/choice/{id}/submit"), &body).await
            && let Ok(mut a) = acks.lock()
        {
            a.submitted.insert(id);
            a.count += 1;
        }
    }
}

async fn request(client: &mut Client, path: &str, body: &str) -> Option<(u16, serde_json::Value)> {
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.request("POST", path, Some(body)),
    )
    .await
    .ok()?
    .ok()?;
    Some((answer.status, answer.json().unwrap_or_default()))
}

struct Check {
    events: u64,
    gaps: u64,
    lost: Vec<String>,
    unfired: Vec<String>,
}

/// Reads the whole event log through `/api/status?since=` pages and checks `acks` against it.
/// `restarted` (Unix ms, 0 for none): deadlines before it must have fired.
async fn verify(addr: SocketAddr, acks: &Acks, restarted: i64) -> anyhow::Result<Check> {
    let mut client = Client::new(addr, None);
    let mut since = 0i64;
    let mut kinds: HashMap<String, Vec<String>> = HashMap::new();
    let mut events = 0u64;
    let mut gaps = 0u64;
    let mut last_seq = 0i64;
    loop {
        let answer = client
            .request(
                "GET",
                &format!("/api/status?since={since}&limit=1000"),
                None,
            )
            .await?;
        let page = answer.json()?;
        let list = page["events"].as_array().context("no events")?;
        if list.is_empty() {
            break;
        }
        for e in list {
            let seq = e["seq"].as_i64().context("no seq")?;
            if seq <= last_seq {
                bail!("seq {seq} after {last_seq}: not strictly increasing");
            }
            if seq != last_seq + 1 {
                gaps += 1;
            }
            last_seq = seq;
            events += 1;
            if let (Some(id), Some(kind)) = (e["choice_id"].as_str(), e["type"].as_str()) {
                kinds
                    .entry(id.to_string())
                    .or_default()
                    .push(kind.to_string());
            }
        }
        let cursor = page["cursor"].as_i64().context("no cursor")?;
        if cursor <= since {
            bail!("cursor did not advance past {since}");
        }
        since = cursor;
    }
    let has = |id: &str, kind: &str| kinds.get(id).is_some_and(|k| k.iter().any(|x| x == kind));
    let is_final = |id: &str| {
        ["submitted", "timed_out", "cancelled"]
            .iter()
            .any(|k| has(id, k))
    };
    let mut lost = Vec::new();
    let mut unfired = Vec::new();
    for (id, deadline) in &acks.created {
        if !has(id, "created") {
            lost.push(id.clone());
        } else if acks.submitted.contains(id) {
            if !has(id, "submitted") {
                lost.push(id.clone());
            }
        } else if restarted > 0 && *deadline < restarted && !is_final(id) {
            unfired.push(id.clone());
        }
    }
    Ok(Check {
        events,
        gaps,
        lost,
        unfired,
    })
}

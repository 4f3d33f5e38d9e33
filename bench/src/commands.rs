//! Durable commands: K clients, each on its own keep-alive connection, posting as fast as the
//! server acknowledges; throughput and latency of creates and of timeout changes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::net::{self, Client};
use crate::procstat::{self, percentiles};

#[derive(Debug, Default, serde::Serialize)]
pub struct Load {
    pub clients: usize,
    pub completed: u64,
    pub errors: u64,
    pub per_second: f64,
    /// p50, p99, max in ms.
    pub latency_ms: [f64; 3],
    /// Server CPU seconds per 1,000 commands.
    pub server_cpu_ms_per_command: f64,
    /// The load generator's own CPU seconds per 1,000 commands: it shares the machine's cores
    /// with the server, so every millisecond here is one the server could not use.
    pub generator_cpu_ms_per_command: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Timeout,
    /// `GET /choice/{id}` as a browser asks for it (HTML).
    Page,
    /// `GET /api/choices/{id}`.
    Json,
}

/// Runs `clients` loops for `duration`; each Timeout client changes its own choice.
pub async fn run(
    server: SocketAddr,
    pid: u32,
    kind: Kind,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    // Each client's own choice, made before the clock starts.
    let mut setup = Client::new(server, None);
    let mut ids = Vec::with_capacity(clients);
    if kind != Kind::Create {
        for n in 0..clients {
            ids.push(create(&mut setup, n).await?);
        }
    }
    let cpu0 = procstat::cpu_seconds(pid).unwrap_or(0.0);
    let own0 = procstat::own_cpu_seconds().unwrap_or(0.0);
    let until = tokio::time::Instant::now() + duration;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..clients {
        let id = ids.get(n).cloned();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(server, Some(net::source(n)));
            if kind == Kind::Page {
                client.accept = "text/html";
            }
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0u64;
            let mut i = 0u64;
            while tokio::time::Instant::now() < until {
                i += 1;
                let t = std::time::Instant::now();
                let ok = match (&kind, &id) {
                    (Kind::Timeout, Some(id)) => {
                        let body = json!({"seconds": 1000 + (i % 1000)}).to_string();
                        client
                            .request("POST", &format!("/choice/{id}/timeout"), Some(&body))
                            .await
                            .is_ok_and(|a| a.status == 200)
                    }
                    (Kind::Page, Some(id)) => client
                        .request("GET", &format!("/choice/{id}"), None)
                        .await
                        .is_ok_and(|a| a.status == 200 && a.body.starts_with(b"<!DOCTYPE")),
                    (Kind::Json, Some(id)) => client
                        .request("GET", &format!("/api/choices/{id}"), None)
                        .await
                        .is_ok_and(|a| a.status == 200),
                    _ => create(&mut client, n).await.is_ok(),
                };
                if ok {
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let (mut all, errors) = join(tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = procstat::cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let own = procstat::own_cpu_seconds().unwrap_or(0.0) - own0;
    let completed = all.len() as u64;
    let per_command = |seconds: f64| {
        if completed > 0 {
            seconds * 1000.0 / completed as f64
        } else {
            f64::NAN
        }
    };
    let p = percentiles(&mut all, &[50.0, 99.0, 100.0]);
    Ok(Load {
        clients,
        completed,
        errors,
        per_second: completed as f64 / elapsed,
        latency_ms: [p[0], p[1], p[2]],
        server_cpu_ms_per_command: per_command(cpu),
        generator_cpu_ms_per_command: per_command(own),
    })
}

async fn create(client: &mut Client, n: usize) -> anyhow::Result<String> {
    let body = json!({"title": format!("load {n}"), "options": [{"id": "a"}, {"id": "b"}],
                      "timeout_seconds": 3600})
    .to_string();
    let answer = client.request("POST", "/api/choices", Some(&body)).await?;
    if answer.status != 201 {
        bail!("create answered {}", answer.status);
    }
    answer.json()?["id"]
        .as_str()
        .map(str::to_string)
        .context("no id")
}

#[derive(Debug, Default, serde::Serialize)]
pub struct LongPolls {
    pub clients: usize,
    pub answered: u64,
    pub errors: u64,
    /// Each `wait?timeout=…` from sending to its answer: p50, p99, max (ms).
    pub latency_ms: [f64; 3],
}

/// `clients` long polls at once, each on its own (already open) connection, `rounds` times in
/// a row, with `timeout` seconds on choices nobody answers: each should come back after
/// `timeout`.
pub async fn long_polls(
    server: SocketAddr,
    clients: usize,
    choices: usize,
    timeout: f64,
    rounds: usize,
) -> anyhow::Result<LongPolls> {
    let mut setup = Client::new(server, None);
    let mut ids = Vec::with_capacity(choices);
    for n in 0..choices.max(1) {
        ids.push(create(&mut setup, n).await?);
    }
    let mut tasks = Vec::with_capacity(clients);
    for n in 0..clients {
        let path = format!("/api/choices/{}/wait?timeout={timeout}", ids[n % ids.len()]);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(server, Some(net::source(n)));
            let mut latencies = Vec::with_capacity(rounds);
            let mut errors = 0u64;
            // Connected first (4,000 connects at once queue in the kernel's backlog), so the
            // figure is the long poll's answer, not the handshake.
            if client.request("GET", "/healthz", None).await.is_err() {
                errors += 1;
            }
            for _ in 0..rounds {
                let t = std::time::Instant::now();
                match client.request("GET", &path, None).await {
                    Ok(a) if a.status == 200 => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let (mut all, errors) = join(tasks).await?;
    let answered = all.len() as u64;
    let p = percentiles(&mut all, &[50.0, 99.0, 100.0]);
    Ok(LongPolls {
        clients,
        answered,
        errors,
        latency_ms: [p[0], p[1], p[2]],
    })
}

/// Every client's latencies (ms) together, and their errors summed.
async fn join(
    tasks: Vec<tokio::task::JoinHandle<(Vec<f64>, u64)>>,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await?;
        all.extend(latencies);
        errors += e;
    }
    Ok((all, errors))
}

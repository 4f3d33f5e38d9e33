//! `bench`: starts each server under test as a release child process on a temp database and
//! measures fan-out (SSE and WebSocket), durable commands, and the references side by side.
//! Prints tables and writes JSON to `target/bench/`.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::watch;

use choiceboard_bench::commands::{self, Kind, Load};
use choiceboard_bench::fanout::{self, Analysis, Change};
use choiceboard_bench::net::Client;
use choiceboard_bench::procstat::{self, mono_ns, wall_ms};
use choiceboard_bench::servers::{self, Paths, Server, Stack};
use choiceboard_bench::storm;

#[derive(Parser, Debug, Clone)]
#[command(about = "choiceboard's load generator: fan-out, commands, baselines side by side")]
struct Args {
    /// Viewer counts to sweep (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000,19000")]
    viewers: Vec<usize>,
    /// Choices the viewers are spread over.
    #[arg(long, default_value_t = 100)]
    choices: usize,
    /// Stacks to measure: choiceboard-sse, choiceboard-ws, plain-axum, fastapi, socketio.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "choiceboard-sse,choiceboard-ws,plain-axum"
    )]
    stacks: Vec<String>,
    /// Also run the FastAPI and Socket.IO baselines (installs their dependencies in target/).
    #[arg(long)]
    baselines: bool,
    /// Length of the tick window, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Timeout changes posted after the tick window (round-robin over the choices).
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Pause between two changes, ms (not a divisor of 1000, so changes land all over the second).
    #[arg(long, default_value_t = 137)]
    change_gap_ms: u64,
    /// Concurrent clients for the command benchmark.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of each command run, seconds.
    #[arg(long, default_value_t = 5)]
    command_seconds: u64,
    /// Handshakes in flight while viewers connect.
    #[arg(long, default_value_t = 256)]
    connecting: usize,
    /// The generator's worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Storm: viewers opening their streams at once, over `--choices` choices (also the
    /// restart's viewers). 0 skips the storms.
    #[arg(long, default_value_t = 19_000)]
    storm_viewers: usize,
    /// Storm: viewers of one single choice, at once.
    #[arg(long, default_value_t = 5_000)]
    storm_one_choice: usize,
    /// Storm: WebSocket viewers at once.
    #[arg(long, default_value_t = 10_000)]
    storm_ws: usize,
    /// Length of each storm's window (connects included), seconds.
    #[arg(long, default_value_t = 20)]
    storm_seconds: u64,
    /// Concurrent long polls (`wait?timeout=1`, three rounds each).
    #[arg(long, default_value_t = 4_000)]
    long_polls: usize,
    #[arg(long)]
    skip_storm: bool,
    /// Skip the restart with the storm's viewers attached (the storms still run).
    #[arg(long)]
    skip_restart: bool,
    #[arg(long)]
    skip_reads: bool,
    #[arg(long)]
    skip_fanout: bool,
    #[arg(long)]
    skip_commands: bool,
    /// Use the binaries as built (do not run `cargo build --release` first).
    #[arg(long)]
    no_build: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.baselines {
        for s in ["fastapi", "socketio"] {
            if !args.stacks.iter().any(|x| x == s) {
                args.stacks.push(s.into());
            }
        }
    }
    let fds = procstat::raise_fd_limit();
    let paths = Paths::find();
    std::fs::create_dir_all(&paths.out)?;
    let _ = std::fs::remove_dir_all(paths.out.join("tmp"));
    if !args.no_build {
        servers::build(&paths)?;
    }
    let stacks: Vec<Stack> = args
        .stacks
        .iter()
        .map(|s| parse_stack(s))
        .collect::<anyhow::Result<_>>()?;
    if stacks.contains(&Stack::FastApi) || stacks.contains(&Stack::SocketIo) {
        servers::install_baselines(&paths)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args, paths, stacks, fds))
}

fn parse_stack(s: &str) -> anyhow::Result<Stack> {
    Ok(match s {
        "choiceboard-sse" | "sse" => Stack::ChoiceboardSse,
        "choiceboard-ws" | "ws" => Stack::ChoiceboardWs,
        "plain-axum" | "floor" => Stack::PlainAxum,
        "fastapi" => Stack::FastApi,
        "socketio" | "socket.io" => Stack::SocketIo,
        other => anyhow::bail!("unknown stack {other:?}"),
    })
}

async fn run(args: Args, paths: Paths, stacks: Vec<Stack>, fds: u64) -> anyhow::Result<()> {
    let load_before = procstat::load_average();
    eprintln!(
        "bench: open-file limit {fds}, load average {load_before}, stacks {:?}",
        args.stacks
    );
    let mut fanouts: Vec<(Stack, usize, Value)> = Vec::new();
    if !args.skip_fanout {
        for &viewers in &args.viewers {
            for &stack in &stacks {
                eprintln!("bench: {} with {viewers} viewers …", stack.name());
                match fanout_run(stack, &paths, viewers, &args).await {
                    Ok(result) => {
                        eprintln!("  {}", result);
                        fanouts.push((stack, viewers, result));
                    }
                    Err(e) => {
                        eprintln!("  failed: {e:#}");
                        fanouts.push((stack, viewers, json!({"error": format!("{e:#}")})));
                    }
                }
            }
        }
    }
    let storms = if args.skip_storm || args.storm_viewers == 0 {
        Value::Null
    } else {
        storms_run(&paths, &args).await?
    };
    let reads = if args.skip_reads {
        Value::Null
    } else {
        reads_run(&paths, &args).await?
    };
    let commands = if args.skip_commands {
        Value::Null
    } else {
        commands_run(&paths, &args).await?
    };
    let load_after = procstat::load_average();

    println!();
    println!(
        "machine: {} cores, {} GiB; load average before {load_before}, after {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_gib()
    );
    if !fanouts.is_empty() {
        print_fanout(&fanouts);
        print_ratios(&fanouts);
    }
    if !storms.is_null() {
        print_storms(&storms);
    }
    if !reads.is_null() {
        print_reads(&reads);
    }
    if !commands.is_null() {
        print_commands(&commands);
    }

    let report = json!({
        "at_unix_ms": wall_ms(),
        "machine": {"cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
                    "mem_gib": mem_gib(), "load_before": load_before, "load_after": load_after,
                    "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()},
        "config": format!("{args:?}"),
        "fanout": fanouts.iter().map(|(s, v, r)| json!({"stack": s.name(), "viewers": v, "result": r})).collect::<Vec<_>>(),
        "storms": storms,
        "reads": reads,
        "commands": commands,
    });
    let text = serde_json::to_string_pretty(&report)?;
    let file = paths.out.join(format!("bench-{}.json", wall_ms() / 1000));
    std::fs::write(&file, &text)?;
    std::fs::write(paths.out.join("latest.json"), &text)?;
    println!("\nJSON: {}", file.display());
    Ok(())
}

fn mem_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| (kib + (1 << 19)) >> 20)
}

async fn fanout_run(
    stack: Stack,
    paths: &Paths,
    viewers: usize,
    args: &Args,
) -> anyhow::Result<Value> {
    let server = Server::start(stack, paths, &[]).await?;
    let result = fanout_measure(&server, viewers, args).await;
    server.stop().await;
    // Let the sockets of this run drain before the next server starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    result
}

async fn fanout_measure(server: &Server, viewers: usize, args: &Args) -> anyhow::Result<Value> {
    let pid = server.pid;
    let mut client = Client::new(server.addr, None);
    let mut groups = Vec::with_capacity(args.choices);
    for n in 0..args.choices {
        groups.push(server.create(&mut client, n).await.context("create")?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = procstat::rss_kib(pid).unwrap_or(0);
    let (stop, stop_rx) = watch::channel(false);
    let connecting = std::time::Instant::now();
    let (handles, ready) = fanout::connect_all(
        server.stack.proto(),
        server.addr,
        &groups,
        viewers,
        args.connecting,
        Duration::from_secs(180),
        &stop_rx,
    )
    .await?;
    let connect_s = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procstat::rss_kib(pid).unwrap_or(0);

    let wall_minus_mono_ms = wall_ms() as f64 - mono_ns() as f64 / 1e6;
    let cpu0 = procstat::cpu_seconds(pid).unwrap_or(0.0);
    let own0 = procstat::own_cpu_seconds().unwrap_or(0.0);
    let w0 = mono_ns();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let w1 = mono_ns();
    let cpu = procstat::cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let own = procstat::own_cpu_seconds().unwrap_or(0.0) - own0;
    let window_s = (w1 - w0) as f64 / 1e9;

    let mut changes = Vec::new();
    if server.stack.has_changes() {
        for k in 0..args.changes {
            let g = k % groups.len();
            let at_ns = mono_ns();
            let deadline_ms = server
                .change(&mut client, &groups[g].1, 1800 + k as u32)
                .await
                .context("change")?;
            changes.push(Change {
                group: g,
                at_ns,
                deadline_ms,
            });
            tokio::time::sleep(Duration::from_millis(args.change_gap_ms)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rss2 = procstat::rss_kib(pid).unwrap_or(0);
    let _ = stop.send(true);
    let mut logs = Vec::with_capacity(handles.len());
    for h in handles {
        logs.push(h.await?);
    }
    let errors: Vec<&String> = logs.iter().filter_map(|l| l.error.as_ref()).collect();
    let dropped = logs.iter().filter(|l| l.ready && l.error.is_some()).count();
    let a: Analysis = fanout::analyse(&logs, groups.len(), (w0, w1), wall_minus_mono_ms, &changes);
    let per_viewer_kib = (rss1 as f64 - rss0 as f64) / ready.max(1) as f64;
    let cpu_us_per_tick = if a.delivered_in_window > 0 {
        cpu * 1e6 / a.delivered_in_window as f64
    } else {
        f64::NAN
    };
    Ok(json!({
        "viewers": viewers,
        "connected": ready,
        "dropped_after_connect": dropped,
        "connect_errors": errors.len() - dropped,
        "first_error": errors.first(),
        "connect_seconds": round(connect_s, 2),
        "rss_kib": {"before": rss0, "connected": rss1, "end": rss2},
        "rss_per_viewer_kib": round(per_viewer_kib, 2),
        "window_seconds": round(window_s, 2),
        "server_cpu_percent": round(cpu * 100.0 / window_s, 1),
        "server_cpu_us_per_delivered": round(cpu_us_per_tick, 2),
        "generator_cpu_percent": round(own * 100.0 / window_s, 1),
        "delivered_in_window": a.delivered_in_window,
        "ticks_expected": a.ticks_expected,
        "ticks_missed": a.ticks_missed,
        "spread_ms": {"p50": round(a.spread_ms[0], 2), "p99": round(a.spread_ms[1], 2), "max": round(a.spread_ms[2], 2)},
        "lateness_ms": {"p50": round(a.lateness_ms[0], 1), "p99": round(a.lateness_ms[1], 1), "max": round(a.lateness_ms[2], 1)},
        "change_all_viewers_ms": {"p50": round(a.change_all_ms[0], 1), "p99": round(a.change_all_ms[1], 1), "max": round(a.change_all_ms[2], 1)},
        "change_each_viewer_ms": {"p50": round(a.change_each_ms[0], 1), "p99": round(a.change_each_ms[1], 1)},
        "changes": a.changes,
        "worst_spreads": a.worst_spreads,
        "kernel_stamped_reads": fanout::STAMPED.swap(0, std::sync::atomic::Ordering::Relaxed),
        "unstamped_reads": fanout::UNSTAMPED.swap(0, std::sync::atomic::Ordering::Relaxed),
        "change_deliveries_missed": a.change_missed,
    }))
}

fn round(x: f64, digits: i32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    let f = 10f64.powi(digits);
    json!((x * f).round() / f)
}

async fn commands_run(paths: &Paths, args: &Args) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    let duration = Duration::from_secs(args.command_seconds);
    for (label, env) in [
        ("group_commit", vec![]),
        (
            "one_commit_per_command",
            vec![("CHOICEBOARD_MAX_BATCH", "1")],
        ),
    ] {
        eprintln!("bench: commands, {label} …");
        let server = Server::start(Stack::ChoiceboardSse, paths, &env).await?;
        let (addr, pid) = (server.addr, server.pid);
        let result: anyhow::Result<Value> = async {
            let create = commands::run(addr, pid, Kind::Create, args.clients, duration).await?;
            let timeout = commands::run(addr, pid, Kind::Timeout, args.clients, duration).await?;
            let unloaded = commands::run(addr, pid, Kind::Timeout, 1, duration).await?;
            Ok(
                json!({"create": load_json(&create), "timeout": load_json(&timeout),
                      "unloaded": load_json(&unloaded)}),
            )
        }
        .await;
        server.stop().await;
        let result = result?;
        eprintln!("  {result}");
        out.insert(label.into(), result);
    }
    Ok(Value::Object(out))
}

/// The storms, each on a fresh server: (label, stack, viewers, choices).
async fn storms_run(paths: &Paths, args: &Args) -> anyhow::Result<Value> {
    let window = Duration::from_secs(args.storm_seconds);
    let v = args.storm_viewers;
    let plan = [
        ("sse, over choices", Stack::PlainAxum, v, args.choices),
        ("sse, over choices", Stack::ChoiceboardSse, v, args.choices),
        (
            "sse, one choice",
            Stack::ChoiceboardSse,
            args.storm_one_choice,
            1,
        ),
        (
            "ws, over choices",
            Stack::ChoiceboardWs,
            args.storm_ws,
            args.choices,
        ),
    ];
    let mut rows = Vec::new();
    for (label, stack, viewers, choices) in plan {
        if viewers == 0 {
            continue;
        }
        eprintln!(
            "bench: storm, {label}: {} with {viewers} viewers at once …",
            stack.name()
        );
        let server = Server::start(stack, paths, &[]).await?;
        let result: anyhow::Result<Value> = async {
            let mut client = Client::new(server.addr, None);
            let mut streams = Vec::with_capacity(choices);
            for n in 0..choices {
                streams.push(server.create(&mut client, n).await.context("create")?.0);
            }
            let storm = storm::run(
                stack.proto(),
                server.addr,
                server.pid,
                &streams,
                viewers,
                window,
            )
            .await?;
            Ok(serde_json::to_value(&storm)?)
        }
        .await;
        server.stop().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let result = result.unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
        eprintln!("  {result}");
        rows.push(json!({"scenario": label, "stack": stack.name(), "result": result}));
    }
    if args.skip_restart {
        return Ok(json!({"storms": rows, "restart": null}));
    }
    eprintln!("bench: restart with {v} viewers attached …");
    let mut server = Server::start(Stack::ChoiceboardSse, paths, &[]).await?;
    let restart: anyhow::Result<Value> = async {
        let mut client = Client::new(server.addr, None);
        let mut streams = Vec::with_capacity(args.choices);
        for n in 0..args.choices {
            streams.push(server.create(&mut client, n).await.context("create")?.0);
        }
        let addr = server.addr;
        let result = storm::restart(
            addr,
            &streams,
            v,
            || server.kill9_and_restart(),
            Duration::from_secs(30),
        )
        .await?;
        Ok(serde_json::to_value(&result)?)
    }
    .await;
    server.stop().await;
    let restart = restart.unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
    eprintln!("  {restart}");
    Ok(json!({"storms": rows, "restart": restart}))
}

/// Reads at `--clients` connections (the choice page, the choice JSON) and the long polls.
async fn reads_run(paths: &Paths, args: &Args) -> anyhow::Result<Value> {
    eprintln!("bench: reads …");
    let server = Server::start(Stack::ChoiceboardSse, paths, &[]).await?;
    let (addr, pid) = (server.addr, server.pid);
    let duration = Duration::from_secs(args.command_seconds);
    let result: anyhow::Result<Value> = async {
        let page = commands::run(addr, pid, Kind::Page, args.clients, duration).await?;
        let one = commands::run(addr, pid, Kind::Json, args.clients, duration).await?;
        let polls = commands::long_polls(addr, args.long_polls, args.choices, 1.0, 3).await?;
        Ok(json!({"page": load_json(&page), "json": load_json(&one), "long_polls": polls}))
    }
    .await;
    server.stop().await;
    let result = result?;
    eprintln!("  {result}");
    Ok(result)
}

fn print_storms(s: &Value) {
    println!(
        "\nStorms (every viewer opens its stream at once; first = connect → first current frame)"
    );
    println!(
        "{:<18} {:<16} {:>7} {:>7} {:>14} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9} {:>8}",
        "scenario",
        "stack",
        "viewers",
        "current",
        "errors",
        "first p50",
        "first p99",
        "first max",
        "all current",
        "B/vwr/s",
        "srv cpu s",
        "srv MiB"
    );
    let rows = s["storms"].as_array().cloned().unwrap_or_default();
    for row in &rows {
        let r = &row["result"];
        if let Some(e) = r.get("error") {
            println!(
                "{:<18} {:<16} failed: {e}",
                f(&row["scenario"]),
                f(&row["stack"])
            );
            continue;
        }
        let errors = r["errors"]
            .as_object()
            .map_or(0, |e| e.values().filter_map(Value::as_u64).sum::<u64>());
        println!(
            "{:<18} {:<16} {:>7} {:>7} {:>14} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9} {:>8}",
            row["scenario"].as_str().unwrap_or(""),
            row["stack"].as_str().unwrap_or(""),
            f(&r["viewers"]),
            f(&r["current"]),
            if errors == 0 {
                "0".to_string()
            } else {
                r["errors"].to_string()
            },
            f(&r["first_frame_ms"][0]),
            f(&r["first_frame_ms"][1]),
            f(&r["first_frame_ms"][2]),
            f(&r["all_current_ms"]),
            f(&r["bytes_per_viewer_per_second"]),
            f(&r["cpu_until_current_s"][0]),
            r["server_rss_kib"].as_u64().map_or(0, |k| k / 1024),
        );
    }
    let find = |stack: &str| {
        rows.iter()
            .find(|r| {
                r["scenario"] == "sse, over choices"
                    && r["stack"] == stack
                    && r["result"].get("error").is_none()
            })
            .map(|r| &r["result"])
    };
    if let (Some(ours), Some(floor)) = (find("choiceboard-sse"), find("plain-axum")) {
        let ratio =
            |k: &str| ours[k].as_f64().unwrap_or(f64::NAN) / floor[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "ratio to the floor, same run: all current {:.2}×, bytes per viewer per second {:.2}×",
            ratio("all_current_ms"),
            ratio("bytes_per_viewer_per_second")
        );
    }
    let r = &s["restart"];
    if r.is_null() {
        return;
    }
    if let Some(e) = r.get("error") {
        println!("restart: failed: {e}");
    } else {
        println!(
            "restart (kill -9, then the same server again; viewers reconnect after the server's retry): \
             {} of {} attached viewers current again, errors {}, all current {} ms after the server answered \
             (p50 {}, p99 {}), {} reconnects refused while it was down",
            f(&r["current_again"]),
            f(&r["attached"]),
            r["errors"],
            f(&r["all_current_after_up_ms"]),
            f(&r["current_again_ms"][0]),
            f(&r["current_again_ms"][1]),
            f(&r["refused_while_down"])
        );
    }
}

fn print_reads(r: &Value) {
    println!("\nReads (keep-alive connections, as fast as answered)");
    println!(
        "{:<24} {:>7} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "read", "clients", "per s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for (label, key) in [
        ("GET /choice/ID (HTML)", "page"),
        ("GET /api/choices/ID", "json"),
    ] {
        let l = &r[key];
        println!(
            "{:<24} {:>7} {:>9} {:>8} {:>8} {:>8} {:>7}",
            label,
            f(&l["clients"]),
            f(&l["per_second"]),
            f(&l["latency_ms"]["p50"]),
            f(&l["latency_ms"]["p99"]),
            f(&l["latency_ms"]["max"]),
            f(&l["errors"])
        );
    }
    let p = &r["long_polls"];
    println!(
        "{:<24} {:>7} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "wait?timeout=1 (3 each)",
        f(&p["clients"]),
        f(&p["answered"]),
        f(&p["latency_ms"][0]),
        f(&p["latency_ms"][1]),
        f(&p["latency_ms"][2]),
        f(&p["errors"])
    );
}

fn load_json(l: &Load) -> Value {
    json!({
        "clients": l.clients,
        "completed": l.completed,
        "errors": l.errors,
        "per_second": round(l.per_second, 0),
        "latency_ms": {"p50": round(l.latency_ms[0], 2), "p99": round(l.latency_ms[1], 2), "max": round(l.latency_ms[2], 2)},
        "server_cpu_ms_per_command": round(l.server_cpu_ms_per_command, 3),
        "generator_cpu_ms_per_command": round(l.generator_cpu_ms_per_command, 3),
    })
}

fn f(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else if x.abs() >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        }
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn print_fanout(rows: &[(Stack, usize, Value)]) {
    println!("\nFan-out (tick window; spread = per tick, across the viewers of one choice)");
    println!(
        "{:<16} {:>6} {:>6} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} {:>6}",
        "stack",
        "viewers",
        "conn",
        "spr p50",
        "spr p99",
        "spr max",
        "late p99",
        "chg p50",
        "chg p99",
        "chg max",
        "missed",
        "KiB/vwr",
        "µs/tick",
        "srv%",
        "gen%"
    );
    for (stack, viewers, r) in rows {
        if let Some(e) = r.get("error") {
            println!("{:<16} {:>6}  failed: {}", stack.name(), viewers, e);
            continue;
        }
        println!(
            "{:<16} {:>6} {:>6} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} {:>6}",
            stack.name(),
            viewers,
            f(&r["connected"]),
            f(&r["spread_ms"]["p50"]),
            f(&r["spread_ms"]["p99"]),
            f(&r["spread_ms"]["max"]),
            f(&r["lateness_ms"]["p99"]),
            f(&r["change_all_viewers_ms"]["p50"]),
            f(&r["change_all_viewers_ms"]["p99"]),
            f(&r["change_all_viewers_ms"]["max"]),
            format!("{}/{}", f(&r["ticks_missed"]), f(&r["ticks_expected"])),
            f(&r["rss_per_viewer_kib"]),
            f(&r["server_cpu_us_per_delivered"]),
            f(&r["server_cpu_percent"]),
            f(&r["generator_cpu_percent"]),
        );
    }
    println!(
        "(ms; chg = POST of a timeout change → the last viewer of that choice has it; KiB/vwr = server RSS growth \
         per connected viewer; µs/tick = server CPU per countdown message delivered; srv%/gen% = CPU of one core \
         over the window)"
    );
}

fn print_ratios(rows: &[(Stack, usize, Value)]) {
    let refs = [Stack::PlainAxum, Stack::FastApi, Stack::SocketIo];
    let ours = [Stack::ChoiceboardSse, Stack::ChoiceboardWs];
    let find = |s: Stack, v: usize| {
        rows.iter()
            .find(|(st, vv, r)| *st == s && *vv == v && r.get("error").is_none())
            .map(|(_, _, r)| r)
    };
    let mut printed = false;
    for (stack, viewers, _) in rows.iter().filter(|(s, _, _)| ours.contains(s)) {
        for base in refs {
            let (Some(a), Some(b)) = (find(*stack, *viewers), find(base, *viewers)) else {
                continue;
            };
            if !printed {
                println!("\nRatios: choiceboard ÷ reference (below 1 = choiceboard better)");
                println!(
                    "{:<16} {:<11} {:>7} {:>9} {:>9} {:>9} {:>9}",
                    "ours", "reference", "viewers", "spr p99", "chg p99", "KiB/vwr", "µs/tick"
                );
                printed = true;
            }
            let ratio = |path: &[&str]| {
                let get = |r: &Value| {
                    path.iter()
                        .fold(r, |v, k| &v[*k])
                        .as_f64()
                        .unwrap_or(f64::NAN)
                };
                let x = get(a) / get(b);
                if x.is_finite() {
                    format!("{x:.2}×")
                } else {
                    "–".into()
                }
            };
            println!(
                "{:<16} {:<11} {:>7} {:>9} {:>9} {:>9} {:>9}",
                stack.name(),
                base.name(),
                viewers,
                ratio(&["spread_ms", "p99"]),
                ratio(&["change_all_viewers_ms", "p99"]),
                ratio(&["rss_per_viewer_kib"]),
                ratio(&["server_cpu_us_per_delivered"]),
            );
        }
    }
}

fn print_commands(c: &Value) {
    println!("\nDurable commands (SQLite, WAL, synchronous=FULL)");
    println!(
        "{:<24} {:<9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "writer",
        "load",
        "clients",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "cpu ms/cmd",
        "gen ms/cmd"
    );
    for (label, r) in c.as_object().into_iter().flatten() {
        for load in ["create", "timeout", "unloaded"] {
            let l = &r[load];
            println!(
                "{:<24} {:<9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
                label,
                load,
                f(&l["clients"]),
                f(&l["per_second"]),
                f(&l["latency_ms"]["p50"]),
                f(&l["latency_ms"]["p99"]),
                f(&l["latency_ms"]["max"]),
                f(&l["server_cpu_ms_per_command"]),
                f(&l["generator_cpu_ms_per_command"]),
            );
        }
    }
}

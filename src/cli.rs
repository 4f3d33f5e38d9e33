//! The command line: `serve` (the default), and the clients built on the JSON API. Every flag
//! also reads an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::limits::Limits;
use crate::local::ServerArgs;
use crate::server::{self, Config};

#[derive(Parser, Debug)]
#[command(
    name = "choiceboard",
    version,
    about = "Programs ask people to decide, with a countdown the server owns."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the dashboard, the pages and the API (what `choiceboard` alone does).
    Serve(ServeArgs),
    /// Ask a person and wait: exit 0 submitted, 2 cancelled, 3 timed out, 1 error, 130 Ctrl-C.
    Ask(crate::ask::AskArgs),
    /// A Model Context Protocol server on stdio with the tools provide_choice and poll_selection.
    Mcp(McpArgs),
    /// Post a program's activity note; the dashboard shows it live.
    Note(NoteArgs),
}

#[derive(Args, Debug, Clone)]
pub struct McpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// How long one tool call waits before answering `pending` (the choice keeps its deadline).
    #[arg(
        long,
        env = "CHOICEBOARD_MAX_WAIT",
        default_value = "50s",
        value_parser = crate::clock::parse_duration,
        value_name = "DURATION"
    )]
    pub max_wait: f64,
}

#[derive(Args, Debug, Clone)]
pub struct NoteArgs {
    /// What the note says (at most 2,000 characters).
    pub message: String,
    /// The program or project it is about.
    #[arg(long, env = "CHOICEBOARD_SOURCE", default_value = "shell")]
    pub source: String,
    /// A free label, e.g. spec_started, spec_failed, heartbeat.
    #[arg(long, default_value = "note")]
    pub kind: String,
    #[arg(long, value_enum, default_value = "info")]
    pub level: crate::note::Level,
    #[command(flatten)]
    pub client: crate::client::ClientArgs,
}

/// `choiceboard mcp`: the tools on stdin/stdout until the client closes the session, asking
/// the server (or one served in-process when nothing answers there).
async fn mcp(args: McpArgs) -> anyhow::Result<i32> {
    let (client, local) = args.server.connect().await?;
    let served = crate::mcp::serve_stdio(client, Duration::from_secs_f64(args.max_wait)).await;
    if let Some(local) = local {
        local.stop().await;
    }
    served.map(|()| 0)
}

/// `choiceboard note`: one POST; exit 0 when stored, 1 otherwise (with the reason).
async fn note(args: NoteArgs) -> anyhow::Result<i32> {
    let client = crate::client::Client::new(&args.client.server, args.client.token)?;
    let request = crate::note::NoteRequest {
        source: args.source,
        kind: Some(args.kind),
        message: args.message,
        level: Some(args.level),
    };
    match client.note(&request).await {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("choiceboard note: {e}");
            Ok(1)
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHOICEBOARD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// `sqlite://FILE` (created if missing) or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "CHOICEBOARD_DATABASE",
        default_value = "sqlite://choiceboard.db"
    )]
    pub database: String,
    /// The origin people reach this server at, used in links and origin checks
    /// (default: http://BIND).
    #[arg(long, env = "CHOICEBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Push new choices and last-minute warnings here (ntfy format); repeatable.
    #[arg(
        long = "notify-url",
        env = "CHOICEBOARD_NOTIFY_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub notify_urls: Vec<String>,
    /// Who push services may contact about this server's Web Push (mailto: or https: URL;
    /// default: the public URL when it is https).
    #[arg(long, env = "CHOICEBOARD_PUSH_CONTACT", value_name = "URL", value_parser = push_contact)]
    pub push_contact: Option<String>,
    /// Delete final choices and notes older than this (e.g. 30d, 12h).
    #[arg(long, env = "CHOICEBOARD_KEEP", default_value = "30d", value_parser = crate::clock::parse_duration)]
    pub keep: f64,
    /// The API (`Authorization: Bearer TOKEN`) and the dashboard (asked once, then a cookie)
    /// need this token; a choice's page needs only its link.
    #[arg(long, env = "CHOICEBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Serve on a non-loopback address without a token.
    #[arg(long, env = "CHOICEBOARD_ALLOW_PUBLIC")]
    pub allow_public: bool,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, env = "CHOICEBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Commands, creates and other state-changing requests per second per client (0: no limit).
    #[arg(long, env = "CHOICEBOARD_RATE_LIMIT", default_value_t = Limits::default().rate_per_second)]
    pub rate_limit: f64,
    /// How many of those a client may send at once before the rate applies.
    #[arg(long, env = "CHOICEBOARD_RATE_BURST", default_value_t = Limits::default().rate_burst)]
    pub rate_burst: f64,
    /// Open SSE streams and WebSockets per client (0: no cap).
    #[arg(long, env = "CHOICEBOARD_MAX_STREAMS_PER_CLIENT", default_value_t = Limits::default().streams_per_client)]
    pub max_streams_per_client: usize,
    /// Open SSE streams and WebSockets on this server (0: no cap). The default is the process's
    /// open-file limit (raised to its hard limit), less a twentieth for the database and requests.
    #[arg(long, env = "CHOICEBOARD_MAX_STREAMS", default_value_t = Limits::default().streams_total)]
    pub max_streams: usize,
    /// Seconds a request (not a stream, not the long poll) may take to be answered.
    #[arg(long, env = "CHOICEBOARD_REQUEST_TIMEOUT", default_value_t = Limits::default().request_timeout.as_secs_f64())]
    pub request_timeout: f64,
    /// Seconds a client may take to send a request's headers (and stay idle between requests).
    #[arg(long, env = "CHOICEBOARD_HEADER_TIMEOUT", default_value_t = Limits::default().header_timeout.as_secs_f64())]
    pub header_timeout: f64,
    /// Count clients by the last address in `X-Forwarded-For` (behind a reverse proxy that sets
    /// it); without it, every client of the proxy is one client to the limits.
    #[arg(long, env = "CHOICEBOARD_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// For benchmarks: the most commands one commit (one fsync) takes; 1 turns group commit
    /// off, to measure what it gains.
    #[arg(long, env = "CHOICEBOARD_MAX_BATCH", default_value_t = crate::engine::MAX_BATCH as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::engine::MAX_BATCH as u64))]
    pub max_batch: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// The limits the flags ask for; a nonsensical number is a usage error.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let seconds = |flag: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(anyhow::anyhow!(
                    "--{flag} must be a number of seconds from 0 to 86400"
                ))
            }
        };
        for (flag, v) in [
            ("rate-limit", self.rate_limit),
            ("rate-burst", self.rate_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                anyhow::bail!("--{flag} must be a number from 0 up");
            }
        }
        Ok(Limits {
            rate_per_second: self.rate_limit,
            rate_burst: self.rate_burst,
            streams_per_client: self.max_streams_per_client,
            streams_total: self.max_streams,
            request_timeout: seconds("request-timeout", self.request_timeout)?,
            header_timeout: seconds("header-timeout", self.header_timeout)?,
            trust_forwarded_for: self.trust_forwarded_for,
        })
    }

    /// Listening beyond this machine without a token is refused unless explicitly allowed.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        let has_token = self.token.as_deref().is_some_and(|t| !t.trim().is_empty());
        if !self.bind.ip().is_loopback() && !has_token && !self.allow_public {
            anyhow::bail!(
                "refusing to listen on {} without a token: anyone who can reach it could use the API and the dashboard; set --token (CHOICEBOARD_TOKEN), or pass --allow-public to serve it open",
                self.bind
            );
        }
        Ok(())
    }
}

/// Runs the command line; returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors exit 1, not clap's 2: for `ask`, 2 means "cancelled".
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    // The clients log only warnings: their stderr is for the person (and stdout for MCP).
    let (filter, format) = match &cli.command {
        Some(Cmd::Ask(_) | Cmd::Mcp(_) | Cmd::Note(_)) => ("warn,rmcp=error", LogFormat::Text),
        Some(Cmd::Serve(args)) => ("info,sqlx=warn", args.log_format),
        None => ("info,sqlx=warn", cli.serve.log_format),
    };
    init_logging(filter, format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("choiceboard: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Cmd::Serve(args)) => serve(args).await,
            Some(Cmd::Ask(args)) => crate::ask::run(args).await,
            Some(Cmd::Mcp(args)) => mcp(args).await,
            Some(Cmd::Note(args)) => note(args).await,
            None => serve(cli.serve).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("choiceboard: {e:#}");
            1
        }
    }
}

fn init_logging(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One JSON object a line; the request's span (its id, method and route) rides along.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    args.check_exposure()?;
    let limits = args.limits()?;
    let listener =
        listen(args.bind).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    let config = Config {
        public_url: args.public_url,
        notify_urls: args.notify_urls,
        push_contact: args.push_contact,
        keep: std::time::Duration::from_secs_f64(args.keep.max(60.0)),
        token: args.token,
        limits,
        max_batch: args.max_batch as usize,
        ..Config::new(args.database)
    };
    server::run(listener, config, shutdown_signal()).await?;
    Ok(0)
}

/// Pending connections the kernel queues before `accept` (capped by `net.core.somaxconn`):
/// a burst of thousands of viewers reconnecting at once is not dropped.
const BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // Restart on the same port at once, even with old connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// RFC 8292 §2.1: the contact is a `mailto:` or an `https:` URI.
fn push_contact(text: &str) -> Result<String, String> {
    let text = text.trim();
    if (text.starts_with("mailto:") && text.len() > 7) || text.starts_with("https://") {
        Ok(text.to_string())
    } else {
        Err("must be mailto:ADDRESS or an https:// URL".into())
    }
}

//! The command line: `serve` (the default), and the clients built on the JSON API. Every flag
//! also reads an environment variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

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
    Mcp(crate::mcp::McpArgs),
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
    /// The origin people reach this server at, used in links (default: http://BIND).
    #[arg(long, env = "CHOICEBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
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
    init_logging(match cli.command {
        Some(Cmd::Ask(_) | Cmd::Mcp(_)) => "warn,rmcp=error",
        _ => "info,sqlx=warn",
    });
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
            Some(Cmd::Mcp(args)) => crate::mcp::run(args).await,
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

fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let listener =
        listen(args.bind).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    let config = Config {
        public_url: args.public_url,
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

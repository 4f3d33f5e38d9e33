//! When nothing answers at the server's address, `ask` and `mcp` serve there themselves, in
//! this process, for as long as they run: [`ServerArgs::connect`] and the [`LocalServer`] it
//! may start.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::oneshot;

use crate::client::{Client, ClientArgs};
use crate::server::{self, Config};

/// A server this process started because nothing answered at the address.
pub struct LocalServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl LocalServer {
    /// Stops serving; waits a moment for open requests, never long.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// A client for `server`; when nothing answers there, says so on stderr and serves on that
/// address in this process, with `database`, until the returned [`LocalServer`] is stopped.
pub async fn connect(
    server: &str,
    token: Option<String>,
    database: &str,
) -> anyhow::Result<(Client, Option<LocalServer>)> {
    let url = Url::parse(server).map_err(|e| anyhow::anyhow!("--server {server:?}: {e}"))?;
    if url.scheme() != "http" {
        // No TLS stack in this binary: a remote server sits behind a proxy that speaks http.
        anyhow::bail!("--server {server:?}: only http:// addresses are spoken to");
    }
    let client = Client::new(server, token.clone())?;
    if client.answers().await {
        return Ok((client, None));
    }
    let addr = local_address(&url).await.map_err(|e| {
        anyhow::anyhow!("nothing answers at {server}, and this process cannot serve there: {e}")
    })?;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        // Someone else took the address between the probe and now: use them after all.
        Err(_) if client.answers().await => return Ok((client, None)),
        Err(e) => anyhow::bail!("nothing answers at {server}, and listening on {addr} failed: {e}"),
    };
    let addr = listener.local_addr()?;
    eprintln!(
        "choiceboard: nothing answers at {}; serving on http://{addr} myself (database {database}) while waiting",
        client.base()
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(listener, Config::new(database), async {
        let _ = rx.await;
    }));
    let local_base = format!("http://{addr}");
    let local = Client::new(&local_base, token)?;
    let mut local_server = LocalServer {
        addr,
        shutdown: Some(tx),
        task,
    };
    ready(&local, &mut local_server.task).await?;
    Ok((local, Some(local_server)))
}

/// Where to listen for an `http://HOST:PORT` server address: its host must be this machine's.
async fn local_address(url: &Url) -> anyhow::Result<SocketAddr> {
    let host = url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("the address has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let mut addrs = tokio::net::lookup_host((host, port)).await?;
    addrs
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} resolves to no address"))
}

/// Waits until the in-process server answers its health check, or reports why it stopped.
async fn ready(
    client: &Client,
    task: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    for _ in 0..400 {
        if task.is_finished() {
            return match task.await {
                Ok(Ok(())) => Err(anyhow::anyhow!("the in-process server stopped at once")),
                Ok(Err(e)) => Err(e.context("the in-process server failed")),
                Err(e) => Err(anyhow::anyhow!("the in-process server failed: {e}")),
            };
        }
        if client.answers().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the in-process server did not become ready within 10 s")
}

/// Where `ask` and `mcp` find the server, and what they serve with when nothing answers there.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The server (when nothing answers at `--server`, this command serves on that address
    /// itself for as long as it runs).
    #[command(flatten)]
    pub client: ClientArgs,
    /// The database when serving in-process (see --server).
    #[arg(
        long,
        env = "CHOICEBOARD_DATABASE",
        default_value = "sqlite://choiceboard.db"
    )]
    pub database: String,
}

impl ServerArgs {
    /// [`connect`] with these arguments.
    pub async fn connect(&self) -> anyhow::Result<(Client, Option<LocalServer>)> {
        connect(
            &self.client.server,
            self.client.token.clone(),
            &self.database,
        )
        .await
    }
}

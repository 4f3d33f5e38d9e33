//! Wires the parts together and serves: open the store, start the engine, serve the routes
//! until `shutdown` resolves. Takes its listener so tests can bind port 0.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::dashboard::Dashboard;
use crate::engine::Engine;
use crate::http::limits::{Guards, Limits};
use crate::http::{self, AppState, Services, Settings, access::Token};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::store::Store;
use crate::streams::Streams;
use crate::webpush::WebPush;

#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://FILE` or `postgres://...`.
    pub database: String,
    /// The origin used in links; defaults to `http://` and the listener's address.
    pub public_url: Option<String>,
    /// How long a viewer whose stream dropped is still shown as watching.
    pub presence_grace: std::time::Duration,
    /// Where to push "a question is waiting" and "a minute left" (ntfy format).
    pub notify_urls: Vec<String>,
    /// Web Push's VAPID contact (`mailto:` or `https:`); by default the public URL if https.
    pub push_contact: Option<String>,
    /// Final choices and notes older than this are deleted.
    pub keep: std::time::Duration,
    /// With a token, the API and the dashboard need it; a choice needs only its id.
    pub token: Option<String>,
    /// Rate limits, stream caps and timeouts.
    pub limits: Limits,
    /// The most commands one commit takes (benchmarks set 1: no group commit).
    pub max_batch: usize,
}

impl Config {
    pub fn new(database: impl Into<String>) -> Config {
        Config {
            database: database.into(),
            public_url: None,
            presence_grace: std::time::Duration::from_secs(10),
            notify_urls: Vec::new(),
            push_contact: None,
            keep: std::time::Duration::from_secs(30 * 86_400),
            token: None,
            limits: Limits::default(),
            max_batch: crate::engine::MAX_BATCH,
        }
    }
}

pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::open(&config.database).await?;
    let metrics = Metrics::new();
    metrics.seed_deadlines(store.pending_deadlines().await?);
    let engine = Engine::start(store.clone(), config.presence_grace, config.max_batch).await?;
    engine.add_subscriber(metrics.clone());
    let dashboard = Dashboard::start(engine.live().clone(), store.clone());
    engine.add_subscriber(Arc::new(dashboard.clone()));
    let streams = Streams::start(engine.live().clone(), dashboard);
    let addr = listener.local_addr()?;
    let url = browser_url(config.public_url.as_deref(), addr);
    let public_url = match config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };
    let contact = config.push_contact.or_else(|| {
        public_url
            .starts_with("https://")
            .then(|| public_url.clone())
    });
    let web_push = Arc::new(WebPush::open(store, contact).await?);
    engine.add_subscriber(Notifier::start(
        config.notify_urls,
        web_push.clone(),
        public_url.clone(),
    ));
    tokio::spawn(retention(engine.clone(), config.keep));
    let settings = Settings {
        token: Token::new(config.token.as_deref()),
        loopback: addr.ip().is_loopback(),
        ..Settings::new(public_url)
    };
    let options = http::listen::Options {
        header_timeout: config.limits.header_timeout,
        drain: DRAIN,
    };
    let guards = Arc::new(Guards::new(config.limits));
    let state = AppState::new(Services {
        engine,
        streams: streams.clone(),
        settings: Arc::new(settings),
        guards: guards.clone(),
        metrics,
        web_push,
    });
    tracing::info!(%addr, %url, database = %redact(&config.database), "choiceboard is serving");
    // Streams never end by themselves; end them so the graceful shutdown can finish.
    let end_streams = move || {
        tracing::info!("shutting down: no new connections; finishing requests, ending streams");
        streams.shutdown();
    };
    http::listen::serve(
        listener,
        http::router(state),
        options,
        shutdown,
        end_streams,
    )
    .await?;
    // WebSockets leave hyper's hands at their upgrade: give them a moment for their close frames.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    while guards.open_streams() != (0, 0) && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Deletes old final choices and notes now and then (every hour, or sooner for a short `keep`).
async fn retention(engine: Engine, keep: std::time::Duration) {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let every = (keep / 2).clamp(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(3600),
    );
    loop {
        match engine
            .purge_before(crate::clock::now_ms().saturating_sub(keep_ms))
            .await
        {
            Ok((0, 0)) => {}
            Ok((choices, notes)) => {
                tracing::info!(choices, notes, "retention deleted old choices and notes")
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "retention failed; trying again in an hour")
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// How long shutdown waits for requests in flight (then at most 1 s for sockets to close):
/// a SIGTERM is done within 5 s.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Where a person opens the server, for the start-up line: the public URL, or the address it
/// listens on (this machine's loopback for a wildcard bind: `0.0.0.0` is no place to browse to).
fn browser_url(public_url: Option<&str>, mut addr: SocketAddr) -> String {
    if let Some(url) = public_url {
        return format!("{}/", url.trim_end_matches('/'));
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/")
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::browser_url;

    #[test]
    fn the_start_up_line_names_an_address_a_browser_can_open() {
        let at = |addr: &str| addr.parse().expect("a socket address");
        assert_eq!(
            browser_url(None, at("127.0.0.1:8080")),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            browser_url(None, at("0.0.0.0:8080")),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(browser_url(None, at("[::]:8080")), "http://[::1]:8080/");
        assert_eq!(
            browser_url(Some("https://cb.example.com/"), at("0.0.0.0:80")),
            "https://cb.example.com/"
        );
    }
}

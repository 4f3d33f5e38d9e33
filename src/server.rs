//! Wires the parts together and serves: open the store, start the engine, serve the routes
//! until `shutdown` resolves. Takes its listener so tests can bind port 0.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::http::{self, AppState, Settings};
use crate::hub::Hub;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://FILE` or `postgres://...`.
    pub database: String,
    /// The origin used in links; defaults to `http://` and the listener's address.
    pub public_url: Option<String>,
    /// How long a viewer whose stream dropped is still shown as watching.
    pub presence_grace: std::time::Duration,
}

impl Config {
    pub fn new(database: impl Into<String>) -> Config {
        Config {
            database: database.into(),
            public_url: None,
            presence_grace: std::time::Duration::from_secs(10),
        }
    }
}

pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::open(&config.database).await?;
    let engine = Engine::start(store.clone()).await?;
    let hub = Hub::start(store, config.presence_grace);
    engine.add_subscriber(Arc::new(hub.clone()));
    let addr = listener.local_addr()?;
    let public_url = match config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };
    let state = AppState {
        engine,
        hub: hub.clone(),
        settings: Arc::new(Settings { public_url }),
    };
    tracing::info!(%addr, database = %redact(&config.database), "choiceboard is serving");
    let shutdown = async move {
        shutdown.await;
        // Streams never end by themselves; end them so the graceful shutdown can finish.
        hub.shutdown();
    };
    // `into_make_service`: each connection shares the route table (an `Arc` clone). Serving the
    // `Router` itself would rebuild it per connection (`with_state`), about 29 KiB per viewer.
    axum::serve(listener, http::router(state).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
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

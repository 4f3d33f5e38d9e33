//! `/mcp` on the server: the tools over Streamable HTTP, answered from its own engine.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::backend::InProcess;
use super::{ChoiceTools, MAX_WAIT};
use crate::engine::Engine;

/// `/mcp` on the server: MCP over Streamable HTTP, answered from this server's own engine. It
/// speaks every revision rmcp knows: 2025-11-25 and older with the initialize handshake (and a
/// session), 2026-07-28 without. Host, Origin and token are checked by the router's guards,
/// as on every other route.
pub fn http_service(
    engine: Engine,
    public_url: String,
    stopping: CancellationToken,
) -> StreamableHttpService<ChoiceTools<InProcess>, LocalSessionManager> {
    let tools = ChoiceTools::new(InProcess { engine, public_url }, MAX_WAIT);
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(stopping);
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

//! `choiceboard mcp`: the tools on stdin/stdout, over a server's JSON API.

use std::time::Duration;

use rmcp::ServiceExt;

use super::ChoiceTools;
use super::backend::Remote;
use crate::client::Client;

/// Serves the tools on stdin/stdout, asking through `client`, until the MCP client closes the
/// session.
pub async fn serve_stdio(client: Client, max_wait: Duration) -> anyhow::Result<()> {
    let tools = ChoiceTools::new(Remote(client), max_wait);
    match tools.serve(rmcp::transport::stdio()).await {
        Ok(service) => service
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("the MCP session failed: {e}")),
        Err(e) => Err(anyhow::anyhow!("the MCP client did not initialize: {e}")),
    }
}

//! choiceboard: programs ask people to decide, with a countdown the server owns.
//!
//! # Layout
//!
//! - [`choice`] — the pure state machine: what a choice is, the commands, the events they cause.
//!   No clock, no I/O; everything else wraps it.
//! - [`store`] — the only module that speaks SQL (SQLite or PostgreSQL): `choices` and the
//!   append-only `events` log, written in group-committed batches.
//! - [`engine`] — the only path that changes a choice: load, transition, store, publish.
//! - [`scheduler`] — holds every pending deadline and expires choices through the engine.
//! - [`hub`] — in-memory fan-out of rendered frames: per watched choice and for the dashboard,
//!   a 1 Hz ticker, who is watching.
//! - [`notify`] — pushes to phones (ntfy format) on new choices and a minute before deadlines.
//! - [`views`] — pages and fragments in Maud, one function per swap target.
//! - [`json`] — the JSON forms of choices and events from API.md.
//! - [`http`] — the route table, handlers by feature, errors, content negotiation; `access`
//!   (token, dashboard cookie, origin and host checks), `limits` (rate limit, stream caps,
//!   request timeout), `listen` (the accept loop: header timeout, graceful shutdown), `ops`
//!   (request ids, access log, `/metrics`), `openapi` (`/api/openapi.json`).
//! - [`metrics`] — the counters and histograms behind `/metrics`, in the Prometheus text format.
//! - [`server`] — wires store, engine and routes together and serves.
//! - [`cli`] — the command line.
//! - [`client`] — the JSON API as a client speaks it; serves in-process when nothing answers.
//! - [`ask`] — `choiceboard ask`: ask from a shell script, print the answer, exit by outcome.
//! - [`mcp`] — `choiceboard mcp`: the MCP tools `provide_choice` and `poll_selection` on stdio.
//! - [`clock`] — wall-clock milliseconds and RFC 3339.

pub mod ask;
pub mod choice;
pub mod cli;
pub mod client;
pub mod clock;
pub mod engine;
pub mod http;
pub mod hub;
pub mod json;
pub mod mcp;
pub mod metrics;
pub mod note;
pub mod notify;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod views;

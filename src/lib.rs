//! choiceboard: programs ask people to decide, with a countdown the server owns.
//!
//! # Layout
//!
//! - [`choice`] — what a choice is, and the pure state machine: the commands, the events they
//!   cause. No clock, no I/O; everything else wraps it. By file: the types and their limits
//!   (`mod.rs`), the commands (`machine`), the rules a new choice is checked against
//!   (`create`), approvers' keys and votes (`approval`).
//! - [`store`] — the only module that speaks SQL (SQLite or PostgreSQL), a file for each thing
//!   it is about: `database` (pool, migrations, LISTEN), `choices` (choices and the append-only
//!   `events` log, retention), `notes`, `push` (devices, secrets), `batch` (the writer's
//!   group-committed transaction).
//! - [`engine`] — the only path that changes a choice: transition, store, update the live
//!   state, publish; `writer` (its thread, group commit), `follow` (other nodes' commits),
//!   `error` (each refusal by its code from API.md).
//! - [`error_code`] — the error codes of API.md and their statuses, one enum for the handlers,
//!   the views, the metrics and the client.
//! - [`live`] — the live state: every active choice in memory with its rendered frames and its
//!   own channels, and a bounded cache of the rest. Every read is served from it. By file:
//!   `mod.rs` (the read-through live set, watchers, grace timers), `topic` (one live choice),
//!   `frames` (what viewers read, and the one function that renders it), `presence` (who
//!   watches), `cache` (the cold side).
//! - [`scheduler`] — holds every pending deadline and expires choices through the engine.
//! - [`streams`] — what every stream shares: the 1 Hz ticker, the shutdown signal, frame counts.
//! - [`dashboard`] — what the dashboard shows, read from the live state and the store, and its
//!   frames, rendered once for every viewer.
//! - [`frame`] — a rendered frame (the same bytes for every viewer) and the SSE format.
//! - [`notify`] — pushes to phones (ntfy format, and Web Push) on new choices and a minute
//!   before deadlines, updated once decided.
//! - [`webpush`] — Web Push devices, the VAPID key, and one encrypted push to one device.
//! - [`views`] — pages and fragments in Maud, one function per swap target.
//! - [`json`] — the JSON forms of choices and events from API.md; `request`, the create request
//!   programs send and its parse into a checked `NewChoice` (the boundary: json imports choice).
//! - [`http`] — the route table, handlers by feature, errors, content negotiation; `access`
//!   (token, dashboard cookie, origin and host checks), `limits` (rate limit, stream caps,
//!   request timeout), `listen` (the accept loop: header timeout, graceful shutdown), `ops`
//!   (request ids, access log, `/metrics`), `openapi` (`/api/openapi.json`).
//! - [`metrics`] — the counters and histograms behind `/metrics` (prometheus-client).
//! - [`server`] — wires store, engine and routes together and serves.
//! - [`cli`] — the command line.
//! - [`client`] — the JSON API as a client speaks it.
//! - [`local`] — for `ask` and `mcp`: serve in-process when nothing answers at the address.
//! - [`ask`] — `choiceboard ask`: ask from a shell script, print the answer, exit by outcome.
//! - [`mcp`] — the MCP tools `provide_choice` and `poll_selection` (`args`, `answer`,
//!   `elicit`), over a `backend`: a server's JSON API on stdio (`choiceboard mcp`, `stdio`), or
//!   this server's own engine over HTTP at `/mcp` (`http`).
//! - [`clock`] — wall-clock milliseconds, RFC 3339, and durations as people write them.

pub mod ask;
pub mod choice;
pub mod cli;
pub mod client;
pub mod clock;
pub mod dashboard;
pub mod engine;
pub mod error_code;
pub mod frame;
pub mod http;
pub mod ids;
pub mod json;
pub mod live;
pub mod local;
pub mod mcp;
pub mod metrics;
pub mod note;
pub mod notify;
pub mod paths;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod streams;
pub mod views;
pub mod webpush;

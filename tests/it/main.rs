//! The integration tests: every test starts the real server on a port with a real database (a
//! SQLite file, or a fresh PostgreSQL database: see `tests/components/postgres.rs`) and speaks
//! HTTP to it. The tests that need something a machine may lack (Chromium, PostgreSQL, the MCP
//! Python SDK) are in `tests/components`, a binary of its own that reports them `ignored`
//! when it is missing; it shares `helpers.rs`, `pg.rs`, `receiver.rs` and `browser_keys.rs`.

mod browser_keys;
mod helpers;
mod pg;

mod access;
mod api;
mod approvers;
mod ask;
mod commands;
mod durability;
mod first_frames;
mod garbage;
mod limits;
mod live;
mod logs;
mod mcp;
mod mcp_http;
mod metrics;
mod notes;
mod ntfy;
mod openapi;
mod pages;
mod receiver;
mod retention;
mod shutdown;
mod store;
mod streams;
mod timers;
mod webpush;
mod ws;

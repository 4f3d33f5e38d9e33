//! One integration-test binary: every test starts the real server on a port with a real
//! database (a SQLite file, or a fresh PostgreSQL database: see `postgres.rs`) and speaks HTTP
//! to it.

mod helpers;
mod pg;

mod access;
mod api;
mod approvers;
mod ask;
mod browser;
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
mod nodes;
mod notes;
mod ntfy;
mod openapi;
mod pages;
mod postgres;
mod receiver;
mod retention;
mod shutdown;
mod store;
mod streams;
mod timers;
mod webpush;
mod ws;

//! One integration-test binary: every test starts the real server on a port with a real
//! database file and speaks HTTP to it.

mod helpers;

mod activity;
mod api;
mod ask;
mod browser;
mod commands;
mod durability;
mod garbage;
mod mcp;
mod streams;
mod timers;
mod ws;

//! One integration-test binary: every test starts the real server on a port with a real
//! database file and speaks HTTP to it.

mod helpers;

mod api;
mod browser;
mod commands;
mod durability;
mod garbage;
mod streams;
mod timers;
mod ws;

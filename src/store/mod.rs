//! The store: the only module that speaks SQL. SQLite (one file, WAL, `synchronous=FULL`) by
//! default, PostgreSQL for several nodes; the same statements run on both through sqlx's `Any`
//! driver, and only the few places that differ ask which backend this is.
//!
//! Two tables hold the choices: `choices` (current state, with a `version`) and `events`
//! (append-only, global `seq`). Writes happen in a [`Batch`]: one transaction holding any
//! number of commands, which the engine's writer commits once for all of them (group commit),
//! always on the same connection (its [`Writer`]).
//! Beside them, `push_subscriptions` (the Web Push devices) and `server_secrets` (the VAPID key).
//!
//! On PostgreSQL several nodes may share the database: every commit sends one
//! `NOTIFY choiceboard, '<last seq>'`, and a [`Listener`] (one dedicated connection running
//! `LISTEN choiceboard`) tells the engine when to read the log for changes made elsewhere.
//!
//! A file for each thing the SQL is about, its statements at the top: `database` (the pool,
//! migrations, each connection's settings, LISTEN), `choices` (choices and the event log as
//! read back, retention), `notes` (the programs' notes), `push` (Web Push devices and the
//! server's secrets), `batch` (the writer's transaction). This file names them and hands on
//! what the rest of the crate uses.

mod batch;
mod choices;
mod database;
mod notes;
mod push;

pub use batch::{Batch, NewEvent, Writer};
pub use choices::{ListFilter, LogEvent};
pub use database::{Backend, LISTEN_APPLICATION_NAME, Listener, Store, is_busy};
pub use push::Device;

//! The load generator behind `just bench` and the kill -9 soak behind `just soak`.
//!
//! # Layout
//!
//! - [`net`] — raw TCP, a minimal HTTP/1.1 client, chunked decoding, WebSocket frames.
//! - [`fanout`] — viewers reading SSE, WebSocket or Socket.IO streams; skew, change latency.
//! - [`commands`] — K clients posting durable commands; throughput and latency.
//! - [`servers`] — the servers under test as child processes: choiceboard, the plain-axum
//!   floor, the FastAPI and Socket.IO baselines.
//! - [`procstat`] — RSS and CPU time from `/proc`, the fd limit, clocks, percentiles.

pub mod commands;
pub mod fanout;
pub mod net;
pub mod procstat;
pub mod servers;
pub mod storm;

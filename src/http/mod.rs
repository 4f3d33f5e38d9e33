//! The HTTP face: the state every handler is given, and where everything else lives: the
//! route table (`routes`), what a request carries (`extract`), how the server was started and
//! which requests it admits (`settings`, `access`), and handlers in files by feature.

pub mod access;
pub mod api;
pub mod commands;
pub mod error;
pub mod extract;
pub mod limits;
pub mod listen;
pub mod log;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod push;
pub mod routes;
pub mod settings;
pub mod sse;
pub mod ws;

use std::sync::Arc;

use crate::engine::Engine;
use crate::streams::Streams;
pub use error::AppError;
pub use extract::{
    Asks, Body, NAME_COOKIE, Params, PathIds, VIEWER_COOKIE, Wants, changes_state, from_json,
    parse_json, viewer_of,
};
pub use routes::{BODY_LIMIT, CONTENT_SECURITY_POLICY, router};
pub use settings::Settings;

/// What every handler and middleware is given. axum clones it for each layer a request passes
/// through, so it is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The server's parts every handler may reach.
pub struct Services {
    pub engine: Engine,
    pub streams: Streams,
    pub settings: Arc<Settings>,
    /// Rate limits and stream caps, with their live counts.
    pub guards: Arc<limits::Guards>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Web Push devices and the VAPID key.
    pub web_push: Arc<crate::webpush::WebPush>,
}

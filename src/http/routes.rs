//! The route table: every route in one place, in the group whose guards it gets (open to
//! anyone, or behind the token), and the layers every request passes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler as _;
use axum::http::{HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::paths;

use super::{AppState, access, api, commands, limits, log, openapi, ops, pages, push, sse, ws};

/// Only our own scripts and styles: no inline script, no eval, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Bodies larger than this get 413 `too_large`.
pub const BODY_LIMIT: usize = 1 << 20;

pub fn router(state: AppState) -> Router {
    let mcp_stopping = tokio_util::sync::CancellationToken::new();
    let mut shutdown = state.streams.shutdown_signal();
    let stop = mcp_stopping.clone();
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|down| *down).await;
        stop.cancel();
    });
    let mcp = Router::new()
        .route_service(
            "/mcp",
            crate::mcp::http_service(
                state.engine.clone(),
                state.settings.public_url.clone(),
                mcp_stopping,
            ),
        )
        .route_layer(from_fn_with_state(state.clone(), access::same_origin_only));
    let deadline = || from_fn_with_state(state.clone(), limits::deadline);
    let rate_limit = || from_fn_with_state(state.clone(), limits::rate_limit);
    let token = || from_fn_with_state(state.clone(), access::require_token);

    // Anyone may use these: nothing is at stake, or the choice id in the path is the capability.
    let open = Router::new()
        .route("/healthz", get(api::healthz))
        .route(paths::LOGIN, get(access::login_form).post(access::login))
        .route(paths::LOGOUT, post(access::logout))
        .route(paths::NAME, post(pages::set_name))
        .route(paths::CHOICE, get(pages::choice))
        .route(paths::CHOICE_EVENTS, get(sse::choice_events))
        .route(paths::CHOICE_LEAVE, post(pages::leave))
        .route(paths::CHOICE_ACTION, post(commands::command))
        .route(paths::CHOICE_SOCKET, get(ws::choice_socket))
        .route("/static/app.css", get(pages::stylesheet))
        .route("/static/htmx.js", get(pages::htmx))
        .route("/static/{version}/{file}", get(pages::module))
        .route("/static/icon-192.png", get(pages::icon_192))
        .route("/static/icon-512.png", get(pages::icon_512))
        .route("/manifest.webmanifest", get(pages::manifest))
        .route("/sw.js", get(pages::service_worker))
        .route("/offline", get(pages::offline))
        .route_layer(deadline())
        .route_layer(rate_limit());

    // These need the token, when one is set: the API, the log, metrics, the dashboard and MCP.
    let guarded = Router::new()
        .merge(mcp)
        .route(paths::API_CHOICES, post(api::create).get(api::list))
        .route("/api/openapi.json", get(openapi::document))
        .route(paths::API_CHOICE, get(api::one))
        .route("/api/status", get(api::status))
        .route(paths::API_NOTES, post(api::create_note).get(api::notes))
        .route("/api/events", get(log::events))
        .route("/api/push/key", get(push::key))
        .route(
            "/api/push/subscriptions",
            get(push::list).post(push::subscribe),
        )
        .route("/api/push/subscriptions/{id}", delete(push::unsubscribe))
        .route("/ws", get(ws::log_socket))
        .route("/metrics", get(ops::metrics))
        .route(paths::DASHBOARD, get(pages::dashboard))
        .route(paths::BOARD, get(pages::board))
        .route(paths::DASHBOARD_EVENTS, get(sse::dashboard_events))
        .route(paths::TIMERS, post(pages::new_timer))
        .route_layer(deadline())
        // A long poll holds its answer up to its own `timeout`, so the request time limit
        // does not apply.
        .route(paths::API_CHOICE_WAIT, get(api::wait))
        .route_layer(rate_limit())
        .route_layer(token());

    // An unknown path says 404 only to those who may ask about the guarded ones.
    let not_found = tower::Layer::layer(&token(), api::not_found.with_state(state.clone()));

    Router::new()
        .merge(open)
        .merge(guarded)
        .fallback_service(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Before any route: the host name and the cross-site check.
        .layer(from_fn_with_state(state.clone(), access::same_site))
        // Compresses pages, fragments, JSON and static files; never SSE (tower-http skips it).
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // A choice URL is a capability: it must not leak to other sites in Referer.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // Outermost: every request has an id, on every log line and on the response.
        .layer(from_fn_with_state(state.clone(), ops::access_log))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(ops::NewRequestId))
        .layer(axum::middleware::map_request(ops::drop_odd_request_id))
        .with_state(state)
}

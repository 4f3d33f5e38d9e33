//! Web Push devices under `/api/push`: the server's public key for subscribing, and the
//! subscriptions themselves (one per browser). What is sent to them is `notify`'s business.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[allow(unused_imports)] // named in the OpenAPI attributes
use super::error::{ErrorBody, errors};
use super::{AppError, AppState, Body, PathIds, parse_json};
use crate::clock::{now_ms, rfc3339};
use crate::store::Device;
use crate::webpush::Subscription;

/// The key a browser subscribes with (`applicationServerKey`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PushKey {
    /// The VAPID public key: a P-256 point, uncompressed, base64url.
    public_key: String,
}

/// A device that gets pushes. Its endpoint is its browser's secret: only its host is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceBody {
    id: String,
    /// The push service's host, e.g. `fcm.googleapis.com`.
    push_service: String,
    /// RFC 3339.
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceList {
    devices: Vec<DeviceBody>,
}

impl From<&Device> for DeviceBody {
    fn from(d: &Device) -> Self {
        DeviceBody {
            id: d.id.clone(),
            push_service: d.push_service(),
            created_at: rfc3339(d.created_ms),
        }
    }
}

/// The server's Web Push public key.
#[utoipa::path(
    get,
    path = "/api/push/key",
    tag = "push",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key to subscribe with.", body = PushKey),
        errors::Unauthorized,
    )
)]
pub async fn key(State(state): State<AppState>) -> Json<PushKey> {
    Json(PushKey {
        public_key: state.web_push.public_key().to_string(),
    })
}

/// The devices that get pushes, oldest first.
#[utoipa::path(
    get,
    path = "/api/push/subscriptions",
    tag = "push",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The devices.", body = DeviceList),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<DeviceList>, AppError> {
    let devices = state.web_push.devices().await?;
    Ok(Json(DeviceList {
        devices: devices.iter().map(DeviceBody::from).collect(),
    }))
}

/// Push to this browser: the body is its `PushSubscription` as JSON. The same browser again
/// replaces its keys.
#[utoipa::path(
    post,
    path = "/api/push/subscriptions",
    tag = "push",
    security(("bearer" = [])),
    request_body(content = Subscription, content_type = "application/json"),
    responses(
        (status = 201, description = "The device gets pushes.", body = DeviceBody),
        errors::BadJson,
        errors::Unauthorized,
        errors::ForeignOrigin,
        errors::TooLarge,
        (status = 422, description = "Not a usable subscription; `field` names the culprit.", body = ErrorBody),
        errors::Unavailable,
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, AppError> {
    let subscription: Subscription = parse_json(&body)?;
    let device = Device::new(subscription, now_ms())?;
    state.web_push.subscribe(&device).await?;
    Ok((StatusCode::CREATED, Json(DeviceBody::from(&device))).into_response())
}

/// Stop pushing to a device.
#[utoipa::path(
    delete,
    path = "/api/push/subscriptions/{id}",
    tag = "push",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device's id")),
    responses(
        (status = 204, description = "Removed."),
        errors::Unauthorized,
        errors::ForeignOrigin,
        (status = 404, description = "No such device.", body = ErrorBody),
        errors::Unavailable,
    )
)]
pub async fn unsubscribe(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
) -> Result<StatusCode, AppError> {
    if state.web_push.unsubscribe(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NoSuchDevice)
    }
}

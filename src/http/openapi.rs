//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the JSON API.

use axum::Json;
use serde_json::{Value, json};

pub async fn document() -> Json<Value> {
    Json(json!({}))
}

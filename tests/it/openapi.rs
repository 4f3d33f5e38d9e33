//! The OpenAPI document against the wire: every JSON response a route really sends conforms to
//! the schema the served document gives for that route and status, with no undocumented key.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser_keys::BrowserKeys;
use crate::helpers::{TestApp, id_of};

/// Checks `value` against `schema` (the subset of JSON Schema utoipa writes: `$ref`, `type`,
/// `enum`, `properties`, `required`, `items`, `oneOf`/`anyOf`/`allOf`). An object may carry
/// only the documented keys unless its schema allows more.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    for any in ["oneOf", "anyOf"] {
        if let Some(options) = schema[any].as_array() {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|s| conforms(doc, s, value, at).err())
                .collect();
            if errors.len() == options.len() {
                return Err(format!("{at}: none of {any} fits: {errors:?}"));
            }
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        // One object made of every part: a key documented by any part is documented.
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in all {
            let mut part = part;
            while let Some(reference) = part["$ref"].as_str() {
                part = &doc["components"]["schemas"]
                    [reference.trim_start_matches("#/components/schemas/")];
            }
            for (key, s) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][key] = s.clone();
            }
            for key in part["required"].as_array().into_iter().flatten() {
                merged["required"].as_array_mut().unwrap().push(key.clone());
            }
        }
        return conforms(doc, &merged, value, at);
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: the required {key} is missing"));
            }
        }
        if let Some(properties) = properties {
            let open = schema["additionalProperties"].is_object()
                || schema["additionalProperties"] == json!(true);
            for (key, v) in object {
                match properties.get(key) {
                    Some(s) => conforms(doc, s, v, &format!("{at}.{key}"))?,
                    None if open => {}
                    None => return Err(format!("{at}: {key} is not documented")),
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The JSON schema the document gives for `method path` answering `status`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: StatusCode) -> &'a Value {
    let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]["application/json"]
        ["schema"];
    assert!(
        !schema.is_null(),
        "the document has no JSON {status} for {method} {path}"
    );
    schema
}

#[tokio::test]
async fn every_json_response_conforms_to_the_served_document() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get_json("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let created = app
        .create(
            json!({"title": "Deploy?", "prompt": "**now**", "source": "nightly",
            "options": [{"id": "yes", "label": "Ship it", "description": "go"}, {"id": "no"}],
            "default_selection": ["no"], "on_timeout": "submit_default", "timeout_seconds": 60}),
        )
        .await;
    let id = id_of(&created);
    let approvers = app
        .create(json!({"title": "Two of two?", "options": [{"id": "yes"}],
            "approvers": ["Ana", "Bo"], "quorum": 2}))
        .await;
    let subscription = BrowserKeys::new().subscription("https://push.example/x");
    // (method, documented path, real path, body, the status it must answer)
    let cases: Vec<(&str, &str, String, Option<Value>, StatusCode)> = vec![
        (
            "get",
            "/api/choices",
            "/api/choices?status=all".into(),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            "/api/choices/{id}",
            format!("/api/choices/{id}"),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            "/api/choices/{id}",
            "/api/choices/nope".into(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "get",
            "/api/choices/{id}/wait",
            format!("/api/choices/{id}/wait?timeout=0"),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            "/api/choices/{id}/wait",
            format!("/api/choices/{id}/wait?timeout=x"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "post",
            "/api/choices",
            "/api/choices".into(),
            Some(json!({"title": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "post",
            "/api/notes",
            "/api/notes".into(),
            Some(json!({"source": "nightly", "message": "built"})),
            StatusCode::CREATED,
        ),
        (
            "get",
            "/api/notes",
            "/api/notes?since=0".into(),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            "/api/status",
            "/api/status?since=0".into(),
            None,
            StatusCode::OK,
        ),
        ("get", "/healthz", "/healthz".into(), None, StatusCode::OK),
        (
            "get",
            "/api/push/key",
            "/api/push/key".into(),
            None,
            StatusCode::OK,
        ),
        (
            "post",
            "/api/push/subscriptions",
            "/api/push/subscriptions".into(),
            Some(subscription),
            StatusCode::CREATED,
        ),
        (
            "post",
            "/api/push/subscriptions",
            "/api/push/subscriptions".into(),
            Some(json!({"endpoint": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "get",
            "/api/push/subscriptions",
            "/api/push/subscriptions".into(),
            None,
            StatusCode::OK,
        ),
        (
            "post",
            "/choice/{id}/{action}",
            format!("/choice/{id}/timeout"),
            Some(json!({"add": 30})),
            StatusCode::OK,
        ),
        (
            "post",
            "/choice/{id}/{action}",
            format!("/choice/{id}/submit"),
            Some(json!({"selection": ["maybe"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "post",
            "/choice/{id}/{action}",
            format!("/choice/{id}/submit"),
            Some(json!({"selection": ["yes"], "annotation": "ok"})),
            StatusCode::OK,
        ),
        (
            "post",
            "/choice/{id}/{action}",
            format!("/choice/{id}/cancel"),
            None,
            StatusCode::CONFLICT,
        ),
        (
            "post",
            "/choice/{id}/{action}",
            format!("/choice/{}/submit", id_of(&approvers)),
            Some(json!({"selection": ["yes"]})),
            StatusCode::FORBIDDEN,
        ),
    ];
    let schema = response_schema(&doc, "post", "/api/choices", StatusCode::CREATED);
    conforms(&doc, schema, &created, "create").unwrap();
    conforms(&doc, schema, &approvers, "create with approvers").unwrap();
    for (method, documented, path, body, wanted) in cases {
        let what = format!("{method} {path}");
        let mut request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&path))
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let value: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, wanted, "{what}: {value}");
        let schema = response_schema(&doc, method, documented, status);
        conforms(&doc, schema, &value, &what).unwrap_or_else(|e| panic!("{e}\n{value}"));
    }
}

#[test]
fn the_checker_refuses_what_the_document_does_not_say() {
    let doc = json!({"components": {"schemas": {"Thing": {"type": "object", "required": ["a"],
        "properties": {"a": {"type": "integer"}, "b": {"type": ["string", "null"]},
                       "c": {"type": "string", "enum": ["x", "y"]}}}}}});
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    assert!(conforms(&doc, &thing, &json!({"a": 1, "b": null, "c": "x"}), "").is_ok());
    for wrong in [
        json!({"b": "s"}),
        json!({"a": "1"}),
        json!({"a": 1, "b": 2}),
        json!({"a": 1, "c": "z"}),
        json!({"a": 1, "d": 0}),
    ] {
        assert!(conforms(&doc, &thing, &wrong, "").is_err(), "{wrong}");
    }
}

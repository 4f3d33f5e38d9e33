//! The JSON API as a client speaks it, for `ask` and `mcp`: create, read, long poll, cancel.
//! (Serving in-process when nothing answers is [`crate::local`].)

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::choice::{Mode, OnTimeout, Status};
use crate::error_code::ErrorCode;
use crate::json::request::CreateRequest;

/// How long a request other than a long poll may take before the server counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the probe at start-up waits for a server to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum Error {
    /// Nothing answered, or the connection broke.
    Unreachable(String),
    /// The server answered with its JSON error: `{"error": {"code", "message", "field"}}`.
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
        field: Option<String>,
    },
    /// The server answered something that is not the API's JSON.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable(e) => write!(f, "the server does not answer: {e}"),
            Error::Api {
                status,
                code,
                message,
                field: Some(field),
            } => write!(f, "{field}: {message} ({code}, HTTP {status})"),
            Error::Api {
                status,
                code,
                message,
                field: None,
            } => write!(f, "{message} ({code}, HTTP {status})"),
            Error::Protocol(e) => write!(f, "the server answered something unexpected: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The API's code, where the server answered with its JSON error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Where a command line finds the server: `--server` and `--token`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The choiceboard server.
    #[arg(
        long,
        env = "CHOICEBOARD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "CHOICEBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The final answer as the API reports it (`result` in the choice JSON).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoteOutcome {
    pub selection: Vec<String>,
    pub text: Option<String>,
    pub annotation: Option<String>,
    pub option_annotations: BTreeMap<String, String>,
    pub by: Option<String>,
}

/// A choice as the server returned it: the fields the clients act on, and the whole JSON.
#[derive(Clone, Debug, Deserialize)]
pub struct RemoteChoice {
    pub id: String,
    pub url: String,
    pub title: String,
    pub mode: Mode,
    pub status: Status,
    pub remaining_seconds: f64,
    pub on_timeout: OnTimeout,
    #[serde(default)]
    pub default_selection: Vec<String>,
    pub result: Option<RemoteOutcome>,
    /// RFC 3339 UTC.
    #[serde(default)]
    pub created_at: String,
    /// RFC 3339 UTC, once final.
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// Approver name → the link that votes as them (in the create answer only).
    #[serde(default)]
    pub approver_links: std::collections::BTreeMap<String, String>,
    /// The choice JSON exactly as received, for `--json`.
    #[serde(skip)]
    pub json: Value,
}

/// A client of one choiceboard server.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(PROBE_TIMEOUT)
            .build()
            .map_err(|e| Error::Unreachable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// True when anything answers HTTP at the base address (even an error status).
    pub async fn answers(&self) -> bool {
        self.request(reqwest::Method::GET, "/healthz")
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .is_ok()
    }

    pub async fn create(&self, request: &CreateRequest) -> Result<RemoteChoice, Error> {
        let r = self
            .request(reqwest::Method::POST, "/api/choices")
            .timeout(REQUEST_TIMEOUT)
            .json(request);
        self.choice(r).await
    }

    pub async fn get(&self, id: &str) -> Result<RemoteChoice, Error> {
        let r = self
            .request(
                reqwest::Method::GET,
                &format!("/api/choices/{}", escape(id)),
            )
            .timeout(REQUEST_TIMEOUT);
        self.choice(r).await
    }

    /// The long poll: answers as soon as the choice is final, or after `seconds` with its state.
    pub async fn wait(&self, id: &str, seconds: f64) -> Result<RemoteChoice, Error> {
        let seconds = seconds.clamp(0.0, 3600.0);
        let r = self
            .request(
                reqwest::Method::GET,
                &format!("/api/choices/{}/wait?timeout={seconds:.3}", escape(id)),
            )
            .timeout(Duration::from_secs_f64(seconds) + REQUEST_TIMEOUT);
        self.choice(r).await
    }

    /// Cancels the choice with an annotation; a choice already final is not an error here.
    pub async fn cancel(&self, id: &str, annotation: &str) -> Result<RemoteChoice, Error> {
        let r = self
            .request(
                reqwest::Method::POST,
                &format!("/choice/{}/cancel", escape(id)),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({ "annotation": annotation }));
        match self.choice(r).await {
            Err(e) if e.code() == Some(ErrorCode::AlreadyFinal) => self.get(id).await,
            other => other,
        }
    }

    /// Posts an activity note; returns its seq.
    pub async fn note(&self, note: &crate::note::NoteRequest) -> Result<i64, Error> {
        let request = self
            .request(reqwest::Method::POST, "/api/notes")
            .timeout(REQUEST_TIMEOUT)
            .json(note);
        let body = self.send(request).await?;
        body["seq"]
            .as_i64()
            .ok_or_else(|| Error::Protocol(format!("not a note: {body}")))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => r.bearer_auth(token),
            None => r,
        }
    }

    /// Sends a request and reads its JSON answer; an error status becomes the API's error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Error> {
        let response = request
            .send()
            .await
            .map_err(|e| Error::Unreachable(describe(&e)))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::Protocol(format!("HTTP {status}: {}", describe(&e))))?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        Ok(body)
    }

    async fn choice(&self, request: reqwest::RequestBuilder) -> Result<RemoteChoice, Error> {
        RemoteChoice::from_json(self.send(request).await?)
    }
}

impl RemoteChoice {
    /// A choice JSON, as the API answers it.
    pub fn from_json(json: Value) -> Result<RemoteChoice, Error> {
        let mut choice = RemoteChoice::deserialize(&json)
            .map_err(|e| Error::Protocol(format!("not a choice: {e}")))?;
        choice.json = json;
        Ok(choice)
    }
}

/// The API's JSON error; a code this client does not know makes it something unexpected.
fn api_error(status: StatusCode, body: &Value) -> Error {
    let error = &body["error"];
    let text = |name: &str| error[name].as_str().map(str::to_string);
    let code = ErrorCode::deserialize(&error["code"]).ok();
    match (code, text("message")) {
        (Some(code), Some(message)) => Error::Api {
            status: status.as_u16(),
            code,
            message,
            field: text("field"),
        },
        _ => Error::Protocol(format!("HTTP {status}: {body}")),
    }
}

/// An error with its causes, as reqwest nests the useful part (e.g. "connection refused").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A choice id as one path segment. Ids are URL-safe already; this keeps a stray `/` or `?`
/// from a caller (an agent's `choice_id`) from reaching another route.
fn escape(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

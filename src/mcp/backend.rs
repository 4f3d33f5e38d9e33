//! Where the tools find choices: a server over its JSON API (`choiceboard mcp`, [`Remote`]), or
//! this server's own engine (`/mcp`, [`InProcess`]). Either reads a choice into the one view the
//! tools answer from, and fails as the API does.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::choice::{Actor, Choice, Command, Mode, NewChoice, Submission};
use crate::choice::{OnTimeout, Status, Via};
use crate::client::{self, Client, RemoteChoice};
use crate::clock::{Millis, now_ms, rfc3339};
use crate::engine::{Engine, EngineError};
use crate::error_code::ErrorCode;
use crate::json::request::CreateRequest;

/// A choice as the tools answer from it, whichever backend read it.
#[derive(Clone, Debug)]
pub struct ChoiceView {
    pub id: String,
    /// Its page, where a person answers.
    pub url: String,
    pub title: String,
    pub mode: Mode,
    pub status: Status,
    pub remaining_seconds: f64,
    pub on_timeout: OnTimeout,
    /// The answer once final (while open: nothing selected, no notes).
    pub selection: Vec<String>,
    pub annotation: Option<String>,
    pub option_annotations: BTreeMap<String, String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub resolved_at: Option<String>,
}

/// What the tools ask of where the choices are. Both backends fail with the API's errors: the
/// in-process one names an engine's refusal by the code, status and message the API answers.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Whether a person may also answer in the agent's client (elicitation): only where the
    /// engine is at hand to take that answer like any other.
    const ANSWERS_IN_CLIENT: bool = false;

    fn create(
        &self,
        request: CreateRequest,
    ) -> impl Future<Output = Result<ChoiceView, client::Error>> + Send;

    fn get(&self, id: &str) -> impl Future<Output = Result<ChoiceView, client::Error>> + Send;

    /// The choice once final, or as it is after `within`.
    fn wait(
        &self,
        id: &str,
        within: Duration,
    ) -> impl Future<Output = Result<ChoiceView, client::Error>> + Send;

    /// Submits an answer given in the agent's client, `by` that client; asked only of a
    /// backend that [answers in the client](Backend::ANSWERS_IN_CLIENT).
    fn submit(
        &self,
        id: &str,
        answer: Submission,
        by: Option<String>,
    ) -> impl Future<Output = Result<(), client::Error>> + Send;
}

/// A server, over its JSON API (`choiceboard mcp`).
#[derive(Clone)]
pub struct Remote(pub Client);

impl Backend for Remote {
    async fn create(&self, request: CreateRequest) -> Result<ChoiceView, client::Error> {
        self.0.create(&request).await.map(ChoiceView::from)
    }

    async fn get(&self, id: &str) -> Result<ChoiceView, client::Error> {
        self.0.get(id).await.map(ChoiceView::from)
    }

    async fn wait(&self, id: &str, within: Duration) -> Result<ChoiceView, client::Error> {
        self.0
            .wait(id, within.as_secs_f64())
            .await
            .map(ChoiceView::from)
    }

    /// The API takes answers from people on the page, not from an agent's client.
    async fn submit(
        &self,
        _id: &str,
        _: Submission,
        _: Option<String>,
    ) -> Result<(), client::Error> {
        Err(client::Error::Protocol(
            "answers given in the client are taken only by the server's own /mcp".into(),
        ))
    }
}

impl From<RemoteChoice> for ChoiceView {
    fn from(c: RemoteChoice) -> ChoiceView {
        let answer = c.result.unwrap_or_default();
        ChoiceView {
            id: c.id,
            url: c.url,
            title: c.title,
            mode: c.mode,
            status: c.status,
            remaining_seconds: c.remaining_seconds,
            on_timeout: c.on_timeout,
            selection: answer.selection,
            annotation: answer.annotation,
            option_annotations: answer.option_annotations,
            created_at: c.created_at,
            resolved_at: c.resolved_at,
        }
    }
}

/// This server's engine and live state (`/mcp`): each read is the live choice itself.
#[derive(Clone)]
pub struct InProcess {
    pub engine: Engine,
    /// The base of the choices' page URLs, as the API gives them.
    pub public_url: String,
}

impl InProcess {
    fn view(&self, read: Result<Arc<Choice>, EngineError>) -> Result<ChoiceView, client::Error> {
        let choice = read.map_err(refused)?;
        Ok(ChoiceView::of(&choice, now_ms(), &self.public_url))
    }
}

impl Backend for InProcess {
    const ANSWERS_IN_CLIENT: bool = true;

    async fn create(&self, request: CreateRequest) -> Result<ChoiceView, client::Error> {
        let new = NewChoice::try_from(request).map_err(|r| refused(EngineError::Rejected(r)))?;
        self.view(self.engine.create(new).await)
    }

    async fn get(&self, id: &str) -> Result<ChoiceView, client::Error> {
        self.view(self.engine.get(id).await)
    }

    async fn wait(&self, id: &str, within: Duration) -> Result<ChoiceView, client::Error> {
        self.view(self.engine.wait_final(id, within).await)
    }

    /// Through the engine like any other answer: the first answer anywhere wins.
    async fn submit(
        &self,
        id: &str,
        answer: Submission,
        by: Option<String>,
    ) -> Result<(), client::Error> {
        let actor = Actor {
            via: Via::McpElicitation,
            by,
        };
        let submitted = self
            .engine
            .command(id, Command::Submit(answer), actor)
            .await;
        submitted.map(|_| ()).map_err(refused)
    }
}

impl ChoiceView {
    /// A choice of this server at `now`, as the API at `base_url` shows it.
    fn of(c: &Choice, now: Millis, base_url: &str) -> ChoiceView {
        let answer = c.result.clone().unwrap_or_default();
        ChoiceView {
            id: c.id.clone(),
            url: crate::paths::choice_url(base_url, &c.id),
            title: c.spec.title.clone(),
            mode: c.spec.mode,
            status: c.status,
            remaining_seconds: c.remaining_ms(now) as f64 / 1000.0,
            on_timeout: c.spec.on_timeout,
            selection: answer.selection,
            annotation: answer.annotation,
            option_annotations: answer.option_annotations,
            created_at: rfc3339(c.created_at),
            resolved_at: c.resolved_at.map(rfc3339),
        }
    }
}

/// An engine's refusal as the API answers it; a fault's cause is logged here, as the API logs
/// it, and not shown.
fn refused(e: EngineError) -> client::Error {
    let code = e.code();
    if let EngineError::Internal(cause) = &e
        && code == ErrorCode::Internal
    {
        tracing::error!(error = %format!("{cause:#}"), "internal error");
    }
    client::Error::Api {
        status: code.status().as_u16(),
        code,
        message: e.message(),
        field: e.field().map(str::to_string),
    }
}

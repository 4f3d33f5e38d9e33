//! The Model Context Protocol tools, so an AI agent can ask a person: `provide_choice` asks and
//! waits, `poll_selection` waits on. One implementation, two transports: `choiceboard mcp` on
//! stdio (over a server's JSON API), and `/mcp` on the server itself (Streamable HTTP, over its
//! own engine).
//!
//! Agent clients often cut a tool call after about a minute, so a call waits at most
//! `--max-wait` (sending progress notifications meanwhile) and then answers `pending`; the choice
//! keeps its own deadline on the server, and the person may still answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ClientResult,
    ContentBlock, CreateTaskResult, DetailedTask, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, EnumSchema, ErrorCode, GetTaskParams, GetTaskResult,
    Implementation, InputRequest, InputRequests, InputRequiredResult, InputResponses, JsonObject,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ServerCapabilities, ServerConfig, ServerRequest, Task, TaskPayload, TaskStatus, Tool,
};
use rmcp::service::{ElicitationMode, PeerRequestOptions, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::clock::countdown_secs;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::choice::{Actor, Answer, Command, NewChoice, OnTimeout, Status, Via};
use crate::choice::{Choice, MAX_SOURCE, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, Mode};
use crate::client::{self, Client, RemoteChoice};
use crate::engine::{Engine, EngineError};
use crate::http::error::AppError;
use crate::json::request::{CreateRequest, OptionRequest};

/// The key of the one input request a call sends: the choice's question.
const ANSWER: &str = "answer";

/// How often a waiting call tells the client how much time is left.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How long one call on `/mcp` waits before answering `pending`: what `choiceboard mcp`
/// defaults to, under the minute after which agent clients often give up on a call.
pub const MAX_WAIT: Duration = Duration::from_secs(50);

/// Serves the tools on stdin/stdout, asking through `client`, until the MCP client closes the
/// session.
pub async fn serve_stdio(client: Client, max_wait: Duration) -> anyhow::Result<()> {
    let tools = ChoiceTools::new(Choices::Remote(client), max_wait);
    match tools.serve(rmcp::transport::stdio()).await {
        Ok(service) => service
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("the MCP session failed: {e}")),
        Err(e) => Err(anyhow::anyhow!("the MCP client did not initialize: {e}")),
    }
}

/// `provide_choice` arguments: the contract agents already use, plus a deadline.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProvideChoice {
    /// The question, short, as the heading the person sees.
    pub title: String,
    /// Context for the person, in Markdown: what you found, what each option means.
    #[serde(default)]
    pub prompt: Option<String>,
    /// `single`: exactly one option; `multi`: one or more.
    #[serde(default)]
    pub selection_mode: SelectionMode,
    /// The options, in the order shown.
    pub options: Vec<ChoiceOptionArg>,
    /// How long the person has, in seconds (default 300); clamped to 1..=604800.
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// At the deadline: `submit` the recommended options (default), `cancel`, or `reinvoke`
    /// (nothing is chosen; you are asked to call provide_choice again).
    #[serde(default)]
    pub on_timeout: Option<TimeoutAction>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChoiceOptionArg {
    /// Unique id, returned in `selected_indices` when chosen (1 to 64 characters).
    pub id: String,
    /// The text shown for the option; defaults to the id.
    #[serde(default)]
    pub label: Option<String>,
    /// One or two sentences on what choosing it means.
    #[serde(default)]
    pub description: Option<String>,
    /// Marked as recommended and preselected; submitted at the deadline with `on_timeout: submit`.
    #[serde(default)]
    pub recommended: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMode {
    #[default]
    Single,
    Multi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    Submit,
    Cancel,
    Reinvoke,
}

/// `poll_selection` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PollSelection {
    /// The `choice_id` of a `pending` result.
    pub choice_id: String,
    /// How long to wait for the answer at most, in seconds (default and limit: the server's
    /// maximum wait per call).
    #[serde(default)]
    pub wait_seconds: Option<f64>,
}

/// `/mcp` on the server: MCP over Streamable HTTP, answered from this server's own engine. It
/// speaks every revision rmcp knows: 2025-11-25 and older with the initialize handshake (and a
/// session), 2026-07-28 without. Host, Origin and token are checked by the router's guards,
/// as on every other route.
pub fn http_service(
    engine: Engine,
    public_url: String,
    stopping: tokio_util::sync::CancellationToken,
) -> StreamableHttpService<ChoiceTools, LocalSessionManager> {
    let tools = ChoiceTools::new(Choices::Local { engine, public_url }, MAX_WAIT);
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(stopping);
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Where the tools find choices.
#[derive(Clone)]
enum Choices {
    /// A server, over its JSON API (`choiceboard mcp`).
    Remote(Client),
    /// This server's engine and live state (`/mcp`).
    Local { engine: Engine, public_url: String },
}

impl Choices {
    async fn create(&self, request: &CreateRequest) -> Result<RemoteChoice, client::Error> {
        match self {
            Choices::Remote(client) => client.create(request).await,
            Choices::Local { engine, .. } => {
                let new = NewChoice::try_from(request.clone()).map_err(api_error)?;
                self.view(engine.create(new).await)
            }
        }
    }

    async fn get(&self, id: &str) -> Result<RemoteChoice, client::Error> {
        match self {
            Choices::Remote(client) => client.get(id).await,
            Choices::Local { engine, .. } => self.view(engine.get(id).await),
        }
    }

    /// The choice once final, or as it is after `seconds`.
    async fn wait(&self, id: &str, seconds: f64) -> Result<RemoteChoice, client::Error> {
        match self {
            Choices::Remote(client) => client.wait(id, seconds).await,
            Choices::Local { engine, .. } => {
                let within = Duration::from_secs_f64(seconds.clamp(0.0, 3600.0));
                self.view(engine.wait_final(id, within).await)
            }
        }
    }

    /// Submits an answer given in the agent's client, through the engine like any other; `None`
    /// where the tools reach the server over HTTP, which takes no such answers.
    async fn answer_in_client(
        &self,
        id: &str,
        answer: Answer,
        client: Option<String>,
    ) -> Option<Result<Arc<Choice>, EngineError>> {
        let Choices::Local { engine, .. } = self else {
            return None;
        };
        let actor = Actor {
            via: Via::McpElicitation,
            by: client,
        };
        Some(engine.command(id, Command::Submit(answer), actor).await)
    }

    /// A choice of this server as the API shows it, so both transports answer alike.
    fn view(&self, read: Result<Arc<Choice>, EngineError>) -> Result<RemoteChoice, client::Error> {
        let Choices::Local { engine, public_url } = self else {
            return Err(client::Error::Protocol("not a local choice".into()));
        };
        let choice = read.map_err(api_error)?;
        let presence = engine.live().presence(&choice.id);
        let body = crate::json::choice(&choice, crate::clock::now_ms(), public_url, &presence);
        let json = serde_json::to_value(body)
            .map_err(|e| client::Error::Protocol(format!("a choice as JSON: {e}")))?;
        RemoteChoice::from_json(json)
    }
}

/// An engine's refusal as the API would have answered it.
fn api_error(e: impl Into<AppError>) -> client::Error {
    let e: AppError = e.into();
    client::Error::Api {
        status: e.status().as_u16(),
        code: e.code().to_string(),
        message: e.message(),
        field: e.field().map(str::to_string),
    }
}

#[derive(Clone)]
pub struct ChoiceTools {
    choices: Choices,
    max_wait: Duration,
    /// What each choice asked here does at its deadline: `reinvoke` is ours, not the server's
    /// (it cancels there), so the result is told apart here.
    asked: Arc<Mutex<HashMap<String, TimeoutAction>>>,
}

impl ChoiceTools {
    fn new(choices: Choices, max_wait: Duration) -> ChoiceTools {
        ChoiceTools {
            choices,
            max_wait,
            asked: Arc::default(),
        }
    }

    fn tools(&self) -> Vec<Tool> {
        let wait = self.max_wait.as_secs();
        vec![
            Tool::new(
                "provide_choice",
                format!(
                    "Ask a person to decide between options, on a web page with a countdown. \
                     Waits for the answer up to {wait} s per call; an answer still open then \
                     returns action_status \"pending\" with choice_id: call poll_selection with \
                     it to keep waiting (the person's deadline is the choice's own). Returns \
                     action_status (selected, cancelled, cancel_with_annotation, \
                     timeout_auto_submitted, timeout_cancelled, timeout_reinvoke_requested, \
                     pending), selected_indices (the chosen option ids), option_annotations, \
                     additional_annotation, url and choice_id."
                ),
                schema_for_type::<ProvideChoice>(),
            ),
            Tool::new(
                "poll_selection",
                format!(
                    "Keep waiting for the answer to a provide_choice call that returned \
                     \"pending\", up to {wait} s per call. Returns the same fields as \
                     provide_choice; \"pending\" again while the person has not answered."
                ),
                schema_for_type::<PollSelection>(),
            ),
        ]
    }

    async fn provide_choice(
        &self,
        args: ProvideChoice,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let action = args.on_timeout.unwrap_or(TimeoutAction::Submit);
        let options: Vec<(String, String)> = args
            .options
            .iter()
            .map(|o| {
                (
                    o.id.clone(),
                    o.label.clone().unwrap_or_else(|| o.id.clone()),
                )
            })
            .collect();
        let recommended: Vec<String> = args
            .options
            .iter()
            .filter(|o| o.recommended)
            .map(|o| o.id.clone())
            .collect();
        let limits = (
            MIN_TIMEOUT_MS as f64 / 1000.0,
            MAX_TIMEOUT_MS as f64 / 1000.0,
        );
        let source = context
            .client_info()
            .map(|info| info.name)
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "mcp".to_string())
            .chars()
            .take(MAX_SOURCE)
            .collect();
        let request = CreateRequest {
            title: args.title,
            prompt: args.prompt,
            mode: Some(match args.selection_mode {
                SelectionMode::Single => Mode::Single,
                SelectionMode::Multi => Mode::Multi,
            }),
            options: Some(
                args.options
                    .into_iter()
                    .map(|o| OptionRequest {
                        id: o.id,
                        label: o.label,
                        description: o.description,
                        recommended: o.recommended,
                    })
                    .collect(),
            ),
            default_selection: (!recommended.is_empty()).then_some(recommended),
            on_timeout: Some(match action {
                TimeoutAction::Submit => OnTimeout::SubmitDefault,
                TimeoutAction::Cancel | TimeoutAction::Reinvoke => OnTimeout::Cancel,
            }),
            timeout_seconds: args.timeout_seconds.map(|t| t.clamp(limits.0, limits.1)),
            source: Some(source),
            ..CreateRequest::default()
        };
        let created = match self.choices.create(&request).await {
            Ok(created) => created,
            Err(client::Error::Api {
                code,
                message,
                field,
                ..
            }) if code == "invalid" || code == "malformed" => {
                return Err(refused_argument(field.as_deref(), &message));
            }
            Err(e) => return Ok(tool_error(format!("asking failed: {e}")).into()),
        };
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(created.id.clone(), action);
        }
        if context
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks())
        {
            // The Tasks extension: answer at once; the client polls tasks/get.
            let task = task_of(&created, Some(action)).task;
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
        }
        if self.asks_by_input_request(context) {
            // 2026-07-28 lets a server send no requests: the question goes back as an input
            // request, and the client retries the call with its user's answer.
            if let Some(form) = form_for(&created, options.clone()) {
                let request = ElicitRequest::new(form);
                let questions =
                    InputRequests::from([(ANSWER.to_string(), InputRequest::Elicitation(request))]);
                return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                    Some(questions),
                    Some(created.id.clone()),
                )));
            }
        }
        let withdraw = tokio_util::sync::CancellationToken::new();
        if matches!(self.choices, Choices::Local { .. }) {
            tokio::spawn(self.clone().ask_in_client(
                created.clone(),
                options,
                context.clone(),
                withdraw.clone(),
            ));
        }
        let answered = self.wait(created, self.max_wait, context).await;
        // Whichever way the call ends, a question still open in the client is withdrawn.
        withdraw.cancel();
        answered.map(CallToolResponse::from)
    }

    fn asked_for(&self, id: &str) -> Option<TimeoutAction> {
        self.asked
            .lock()
            .ok()
            .and_then(|asked| asked.get(id).copied())
    }

    /// Whether a question for the client's user goes back as an input request: on this
    /// server's own `/mcp`, to a 2026-07-28 client that declared form elicitation.
    fn asks_by_input_request(&self, context: &RequestContext<RoleServer>) -> bool {
        let modern = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let form = context
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none());
        matches!(self.choices, Choices::Local { .. }) && modern && form
    }

    /// The retry of an input-required call: takes the client's answer (if its user gave one),
    /// then waits like any call. `request_state` is the choice's id, a capability the client
    /// already holds, so it needs no sealing.
    async fn answered_in_client(
        &self,
        id: &str,
        responses: &InputResponses,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let choice = match self.choices.get(id).await {
            Ok(choice) => choice,
            Err(client::Error::Api { code, .. }) if code == "not_found" => {
                return Err(invalid("requestState", "names no choice"));
            }
            Err(e) => return Ok(tool_error(format!("reading the choice failed: {e}")).into()),
        };
        let reply = responses
            .get(ANSWER)
            .and_then(|r| serde_json::from_value::<ElicitResult>(r.clone()).ok());
        if let Some(reply) = reply {
            self.take_client_answer(&choice.id, reply, context).await;
        }
        let now = self.choices.get(id).await.unwrap_or(choice);
        self.wait(now, self.max_wait, context)
            .await
            .map(CallToolResponse::from)
    }

    /// An answer given in the client, written through the engine like any other: accepted
    /// only if the user accepted, and only if nobody answered first.
    async fn take_client_answer(
        &self,
        id: &str,
        reply: ElicitResult,
        context: &RequestContext<RoleServer>,
    ) {
        if reply.action != ElicitationAction::Accept {
            return;
        }
        let Some(answer) = reply.content.and_then(|c| answer_from_form(&c)) else {
            return;
        };
        let client = context.client_info().map(|info| info.name);
        if let Some(Err(e)) = self.choices.answer_in_client(id, answer, client).await {
            // Most often: someone answered on the page first.
            tracing::debug!(choice = %id, error = ?e, "an answer given in the client was not taken");
        }
    }

    /// Elicitation, a second way to answer: a client that can ask its user a question asks the
    /// choice's question too. An answer there is written through the engine (the first answer
    /// anywhere wins); a decline or a cancel decides nothing, and the page stays open until
    /// the deadline. Clients without the capability, and sessionless 2026-07-28 clients (to
    /// which a server sends no requests), are not asked.
    async fn ask_in_client(
        self,
        choice: RemoteChoice,
        options: Vec<(String, String)>,
        context: RequestContext<RoleServer>,
        withdraw: tokio_util::sync::CancellationToken,
    ) {
        let modes = context.peer.supported_elicitation_modes();
        let params = if modes.contains(&ElicitationMode::Form) {
            match form_for(&choice, options) {
                Some(params) => params,
                None => return,
            }
        } else if modes.contains(&ElicitationMode::Url) {
            ElicitRequestParams::UrlElicitationParams {
                meta: None,
                message: format!("{}: answer on its page", choice.title),
                url: choice.url.clone(),
                elicitation_id: choice.id.clone(),
            }
        } else {
            return;
        };
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        let Ok(mut asked) = context
            .peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
        else {
            return;
        };
        let reply = tokio::select! {
            reply = &mut asked.rx => reply,
            () = withdraw.cancelled() => {
                let _ = asked.cancel(Some("answered elsewhere".into())).await;
                return;
            }
        };
        if let Ok(Ok(ClientResult::ElicitResult(reply))) = reply {
            self.take_client_answer(&choice.id, reply, &context).await;
        }
    }

    async fn poll_selection(
        &self,
        args: PollSelection,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let budget = match args.wait_seconds {
            Some(s) if !s.is_finite() || s < 0.0 => {
                return Err(invalid(
                    "wait_seconds",
                    "wait_seconds must be a number of seconds, 0 or more",
                ));
            }
            Some(s) => Duration::from_secs_f64(s).min(self.max_wait),
            None => self.max_wait,
        };
        if args.choice_id.is_empty() {
            return Err(invalid("choice_id", "choice_id is required"));
        }
        let choice = match self.choices.get(&args.choice_id).await {
            Ok(choice) => choice,
            Err(client::Error::Api { code, .. }) if code == "not_found" => {
                return Err(invalid(
                    "choice_id",
                    format!("no choice has the id {:?}", args.choice_id),
                ));
            }
            Err(e) => return Ok(tool_error(format!("reading the choice failed: {e}"))),
        };
        self.wait(choice, budget, context).await
    }

    /// Waits until the choice is final or `budget` has passed, telling the client how much time
    /// is left when it asked for progress. A cancelled call stops waiting and leaves the choice
    /// alone: the person may still be answering, and the deadline decides.
    async fn wait(
        &self,
        mut choice: RemoteChoice,
        budget: Duration,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let start = Instant::now();
        let progress = context.meta.get_progress_token();
        loop {
            if choice.status.is_final() {
                break;
            }
            let left = budget.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            if let Some(token) = &progress {
                let elapsed = (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
                let when = match choice.status {
                    Status::Paused => {
                        format!("paused with {}", countdown_secs(choice.remaining_seconds))
                    }
                    _ => countdown_secs(choice.remaining_seconds),
                };
                let note = ProgressNotificationParam::new(token.clone(), elapsed)
                    .with_total(elapsed + choice.remaining_seconds.max(0.0))
                    .with_message(format!(
                        "waiting for a person at {}: {when} left",
                        choice.url
                    ));
                // A client that stopped listening does not stop the wait.
                let _ = context.peer.notify_progress(note).await;
            }
            let step = if progress.is_some() {
                left.min(PROGRESS_EVERY)
            } else {
                left
            };
            tokio::select! {
                read = self.choices.wait(&choice.id, step.as_secs_f64()) => match read {
                    Ok(now) => choice = now,
                    Err(e) => {
                        return Ok(tool_error(format!(
                            "waiting for choice {} failed: {e}; it keeps its deadline, call \
                             poll_selection with its choice_id to wait again",
                            choice.id
                        )));
                    }
                },
                () = context.ct.cancelled() => {
                    return Err(ErrorData::new(
                        ErrorCode(-32800),
                        "the call was cancelled; the choice keeps its deadline",
                        Some(json!({"choice_id": choice.id})),
                    ));
                }
            }
        }
        Ok(CallToolResult::structured(result(
            &choice,
            self.asked_for(&choice.id),
        )))
    }
}

/// The form an elicitation shows: the options (one, or several for multi) by their labels, and
/// an optional note for the asker.
fn form_for(choice: &RemoteChoice, options: Vec<(String, String)>) -> Option<ElicitRequestParams> {
    let (ids, labels): (Vec<String>, Vec<String>) = options.into_iter().unzip();
    let options = EnumSchema::builder(ids).enum_titles(labels).ok()?;
    let selection = match choice.mode {
        Mode::Multi => options.multiselect().min_items(1).ok()?.build(),
        _ => options.build(),
    };
    let requested_schema = ElicitationSchema::builder()
        .required_enum_schema("selection", selection)
        .optional_string("note")
        .build()
        .ok()?;
    Some(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!("{} (also open at {})", choice.title, choice.url),
        requested_schema,
    })
}

/// An accepted form's content as an answer; the engine checks it like any other.
fn answer_from_form(content: &Value) -> Option<Answer> {
    let selection = match &content["selection"] {
        Value::String(id) => vec![id.clone()],
        Value::Array(ids) => ids
            .iter()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect(),
        _ => return None,
    };
    Some(Answer {
        selection,
        annotation: content["note"].as_str().map(str::to_string),
        ..Answer::default()
    })
}

/// A provide_choice call run as a task (the Tasks extension) is its choice: the task id is the
/// choice id, working while the choice is open, completed with the tool's result once it is
/// final. Read from the choice itself, so a task survives a restart and reads the same on every
/// node; nothing is kept in memory for it.
fn task_of(choice: &RemoteChoice, asked: Option<TimeoutAction>) -> DetailedTask {
    let created = choice.json["created_at"].as_str().unwrap_or_default();
    let updated = choice.json["resolved_at"].as_str().map_or_else(
        || crate::clock::rfc3339(crate::clock::now_ms()),
        str::to_string,
    );
    let task = Task::new(&choice.id, TaskStatus::Working, created, updated)
        .with_poll_interval_ms(PROGRESS_EVERY.as_millis() as u64);
    if !choice.status.is_final() {
        let left = match choice.status {
            Status::Paused => format!("paused with {}", countdown_secs(choice.remaining_seconds)),
            _ => countdown_secs(choice.remaining_seconds),
        };
        let task = task.with_status_message(format!(
            "waiting for a person at {}: {left} left",
            choice.url
        ));
        return DetailedTask::new(task, TaskPayload::Working);
    }
    let answer = CallToolResult::structured(result(choice, asked));
    let result = match serde_json::to_value(answer) {
        Ok(Value::Object(result)) => result,
        _ => JsonObject::new(),
    };
    DetailedTask::new(task, TaskPayload::Completed { result })
}

/// The tool result for a choice in its current state; empty fields are left out.
fn result(choice: &RemoteChoice, asked: Option<TimeoutAction>) -> Value {
    let answer = choice.result.clone().unwrap_or_default();
    let annotation = answer.annotation.filter(|a| !a.is_empty());
    let action = asked.unwrap_or(match choice.on_timeout {
        OnTimeout::SubmitDefault => TimeoutAction::Submit,
        OnTimeout::Cancel => TimeoutAction::Cancel,
    });
    let status = match choice.status {
        Status::Submitted => "selected",
        Status::Cancelled if annotation.is_some() || !answer.option_annotations.is_empty() => {
            "cancel_with_annotation"
        }
        Status::Cancelled => "cancelled",
        Status::TimedOut => match action {
            TimeoutAction::Reinvoke => "timeout_reinvoke_requested",
            TimeoutAction::Submit if !answer.selection.is_empty() => "timeout_auto_submitted",
            TimeoutAction::Submit | TimeoutAction::Cancel => "timeout_cancelled",
        },
        Status::Pending | Status::Paused => "pending",
    };
    let mut out = Map::new();
    out.insert("action_status".into(), json!(status));
    if !answer.selection.is_empty() {
        out.insert("selected_indices".into(), json!(answer.selection));
    }
    if !answer.option_annotations.is_empty() {
        out.insert(
            "option_annotations".into(),
            json!(answer.option_annotations),
        );
    }
    if let Some(annotation) = annotation {
        out.insert("additional_annotation".into(), json!(annotation));
    }
    out.insert("url".into(), json!(choice.url));
    out.insert("choice_id".into(), json!(choice.id));
    Value::Object(out)
}

/// A bad argument: the MCP error `invalid_params`, naming the field in its message and data.
fn invalid(field: &str, message: impl std::fmt::Display) -> ErrorData {
    ErrorData::invalid_params(
        format!("{field}: {message}"),
        Some(json!({ "field": field })),
    )
}

/// The server's 422 on a create, named by the tool argument that caused it.
fn refused_argument(field: Option<&str>, message: &str) -> ErrorData {
    let Some(field) = field else {
        return ErrorData::invalid_params(message.to_string(), None);
    };
    match field.split(['[', '.']).next().unwrap_or("") {
        "default_selection" => invalid(
            "options",
            format!("{message} (the recommended options are the default selection)"),
        ),
        "mode" | "min_selections" | "max_selections" => invalid("selection_mode", message),
        _ => invalid(field, message),
    }
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Tool arguments as `T`; a bad one is an error naming its field (`options[1].id`).
fn arguments<T: DeserializeOwned>(arguments: Option<JsonObject>) -> Result<T, ErrorData> {
    let value = Value::Object(arguments.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_string(),
            (_, Some(name)) => format!("{path}.{name}"),
            (".", None) => "arguments".to_string(),
            (_, None) => path,
        };
        invalid(&field, message)
    })
}

impl ServerHandler for ChoiceTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "choiceboard",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Ask a person with provide_choice when a decision is theirs (a destructive step, \
                 a missing preference, several good paths). If it returns \"pending\", call \
                 poll_selection with its choice_id until the answer comes.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match request.name.as_ref() {
            // The retry of a call that asked its question in the client (2026-07-28): the
            // choice exists, and the client's answer comes with it.
            "provide_choice" if request.request_state.is_some() => {
                let id = request.request_state.unwrap_or_default();
                let responses = request.input_responses.unwrap_or_default();
                self.answered_in_client(&id, &responses, &context).await
            }
            "provide_choice" => {
                self.provide_choice(arguments(request.arguments)?, &context)
                    .await
            }
            "poll_selection" => self
                .poll_selection(arguments(request.arguments)?, &context)
                .await
                .map(CallToolResponse::from),
            other => Err(invalid(
                "name",
                format!("no tool is named {other:?}; there are provide_choice and poll_selection"),
            )),
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let choice = self.task_choice(&request.task_id).await?;
        Ok(GetTaskResult::new(task_of(
            &choice,
            self.asked_for(&choice.id),
        )))
    }

    /// Acknowledged, and nothing is cancelled: a person may still be answering, and the
    /// choice's deadline decides, as for a call that is cancelled.
    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.task_choice(&request.task_id).await.map(|_| ())
    }
}

impl ChoiceTools {
    async fn task_choice(&self, task_id: &str) -> Result<RemoteChoice, ErrorData> {
        match self.choices.get(task_id).await {
            Ok(choice) => Ok(choice),
            Err(client::Error::Api { code, .. }) if code == "not_found" => {
                Err(invalid("taskId", format!("no task has the id {task_id:?}")))
            }
            Err(e) => Err(ErrorData::internal_error(
                format!("reading the task's choice failed: {e}"),
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(status: Status, result: Value, on_timeout: &str) -> RemoteChoice {
        let json = json!({
            "id": "abc", "url": "http://127.0.0.1:8080/choice/abc", "title": "Deploy?",
            "mode": "single", "status": status.as_str(), "remaining_seconds": 0.0,
            "on_timeout": on_timeout, "default_selection": ["no"], "result": result,
        });
        RemoteChoice::deserialize(&json).expect("a choice")
    }

    #[test]
    fn results_name_the_outcome_and_leave_out_empty_fields() {
        let selected = choice(
            Status::Submitted,
            json!({"selection": ["yes"], "option_annotations": {"yes": "after 6pm"}, "annotation": ""}),
            "submit_default",
        );
        assert_eq!(
            result(&selected, None),
            json!({"action_status": "selected", "selected_indices": ["yes"],
                   "option_annotations": {"yes": "after 6pm"},
                   "url": "http://127.0.0.1:8080/choice/abc", "choice_id": "abc"})
        );
        let cancelled = choice(Status::Cancelled, json!({"selection": []}), "cancel");
        assert_eq!(result(&cancelled, None)["action_status"], "cancelled");
        let noted = choice(
            Status::Cancelled,
            json!({"selection": [], "annotation": "wrong question"}),
            "cancel",
        );
        assert_eq!(
            result(&noted, None)["action_status"],
            "cancel_with_annotation"
        );
        assert_eq!(
            result(&noted, None)["additional_annotation"],
            "wrong question"
        );
        let pending = choice(Status::Pending, Value::Null, "submit_default");
        assert_eq!(
            result(&pending, None),
            json!({"action_status": "pending", "url": "http://127.0.0.1:8080/choice/abc", "choice_id": "abc"})
        );
    }

    #[test]
    fn timeouts_say_what_the_deadline_did() {
        let submitted = choice(
            Status::TimedOut,
            json!({"selection": ["no"]}),
            "submit_default",
        );
        assert_eq!(
            result(&submitted, None)["action_status"],
            "timeout_auto_submitted"
        );
        let cancelled = choice(Status::TimedOut, json!({"selection": []}), "cancel");
        assert_eq!(
            result(&cancelled, None)["action_status"],
            "timeout_cancelled"
        );
        assert_eq!(
            result(&cancelled, Some(TimeoutAction::Reinvoke))["action_status"],
            "timeout_reinvoke_requested"
        );
        let nothing_recommended =
            choice(Status::TimedOut, json!({"selection": []}), "submit_default");
        assert_eq!(
            result(&nothing_recommended, None)["action_status"],
            "timeout_cancelled"
        );
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let field = |args: Value| {
            let Value::Object(map) = args else {
                panic!("an object")
            };
            let e = arguments::<ProvideChoice>(Some(map)).expect_err("refused");
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
            e.data.expect("data")["field"]
                .as_str()
                .expect("field")
                .to_string()
        };
        assert_eq!(field(json!({"options": []})), "title");
        assert_eq!(field(json!({"title": "t"})), "options");
        assert_eq!(
            field(json!({"title": "t", "options": [{"id": "a"}, {"label": "b"}]})),
            "options[1].id"
        );
        assert_eq!(
            field(json!({"title": "t", "options": [{"id": "a"}], "selection_mode": "some"})),
            "selection_mode"
        );
        assert_eq!(
            field(json!({"title": "t", "options": [{"id": "a"}], "timeout_seconds": "soon"})),
            "timeout_seconds"
        );
        assert_eq!(
            refused_argument(Some("default_selection"), "at most 1").data,
            Some(json!({"field": "options"}))
        );
    }
}

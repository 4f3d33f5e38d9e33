//! The Model Context Protocol tools, so an AI agent can ask a person: `provide_choice` asks and
//! waits, `poll_selection` waits on. One implementation, two transports: `choiceboard mcp` on
//! stdio (over a server's JSON API), and `/mcp` on the server itself (Streamable HTTP, over its
//! own engine); `backend` is how each finds the choices.
//!
//! Agent clients often cut a tool call after about a minute, so a call waits at most
//! `--max-wait` (sending progress notifications meanwhile) and then answers `pending`; the choice
//! keeps its own deadline on the server, and the person may still answer.

mod answer;
mod args;
mod backend;
mod elicit;
mod http;
mod stdio;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, ElicitRequest, GetTaskParams, GetTaskResult, Implementation, InputRequest,
    InputRequests, InputRequiredResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

use crate::choice::names::Source;
use crate::client;
use crate::error_code::ErrorCode;
use answer::{result, task_of, waiting};
use args::{PollSelection, ProvideChoice, TimeoutAction, arguments, invalid, refused_argument};
use backend::{Backend, ChoiceView};
pub use http::http_service;
pub use stdio::serve_stdio;

/// How often a waiting call tells the client how much time is left.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How long one call on `/mcp` waits before answering `pending`: what `choiceboard mcp`
/// defaults to, under the minute after which agent clients often give up on a call.
pub const MAX_WAIT: Duration = Duration::from_secs(50);

/// The tools, asking wherever `B` finds the choices.
#[derive(Clone)]
pub struct ChoiceTools<B> {
    choices: B,
    max_wait: Duration,
    /// What each choice asked here does at its deadline: `reinvoke` is ours, not the server's
    /// (it cancels there), so the result is told apart here.
    asked: Arc<Mutex<HashMap<String, TimeoutAction>>>,
}

impl<B: Backend> ChoiceTools<B> {
    fn new(choices: B, max_wait: Duration) -> ChoiceTools<B> {
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
        let action = args.action();
        let options = args.labels();
        let source = context
            .client_info()
            .and_then(|info| Source::fitted(&info.name))
            .map_or_else(|| "mcp".to_string(), String::from);
        let created = match self.choices.create(args.into_request(source)).await {
            Ok(created) => created,
            Err(client::Error::Api {
                code: ErrorCode::Invalid | ErrorCode::Malformed,
                message,
                field,
                ..
            }) => {
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
            if let Some(form) = elicit::form_for(&created, options.clone()) {
                let request = ElicitRequest::new(form);
                let questions = InputRequests::from([(
                    elicit::ANSWER.to_string(),
                    InputRequest::Elicitation(request),
                )]);
                return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                    Some(questions),
                    Some(created.id.clone()),
                )));
            }
        }
        let withdraw = tokio_util::sync::CancellationToken::new();
        if B::ANSWERS_IN_CLIENT {
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

    /// The choice a task of the Tasks extension is (its id is the choice's).
    async fn task_choice(&self, task_id: &str) -> Result<ChoiceView, ErrorData> {
        match self.choices.get(task_id).await {
            Ok(choice) => Ok(choice),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                Err(invalid("taskId", format!("no task has the id {task_id:?}")))
            }
            Err(e) => Err(ErrorData::internal_error(
                format!("reading the task's choice failed: {e}"),
                None,
            )),
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
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
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
        mut choice: ChoiceView,
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
                let note = ProgressNotificationParam::new(token.clone(), elapsed)
                    .with_total(elapsed + choice.remaining_seconds.max(0.0))
                    .with_message(waiting(&choice));
                // A client that stopped listening does not stop the wait.
                let _ = context.peer.notify_progress(note).await;
            }
            let step = if progress.is_some() {
                left.min(PROGRESS_EVERY)
            } else {
                left
            };
            tokio::select! {
                read = self.choices.wait(&choice.id, step) => match read {
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
                        rmcp::model::ErrorCode(-32800),
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

impl<B: Backend> ServerHandler for ChoiceTools<B> {
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

/// A failure the agent reads in the tool's result (not a protocol error).
fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

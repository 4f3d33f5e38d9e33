//! Elicitation, a second way to answer: a client that can ask its user a question asks the
//! choice's question too, by a request of its own (sessions) or as an input request the call
//! returns (2026-07-28). An answer there is written through the engine like any other; the
//! first answer anywhere wins.

use rmcp::model::{
    CallToolResponse, ClientResult, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, EnumSchema, InputResponses, ProtocolVersion,
    ServerRequest,
};
use rmcp::service::{ElicitationMode, PeerRequestOptions, RequestContext};
use rmcp::{ErrorData, RoleServer};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::args::invalid;
use super::backend::{Backend, ChoiceView};
use super::{ChoiceTools, tool_error};
use crate::choice::{Mode, Submission};
use crate::error_code::ErrorCode;

/// The key of the one input request a call sends: the choice's question.
pub const ANSWER: &str = "answer";

impl<B: Backend> ChoiceTools<B> {
    /// Whether a question for the client's user goes back as an input request: on this
    /// server's own `/mcp`, to a 2026-07-28 client that declared form elicitation.
    pub(super) fn asks_by_input_request(&self, context: &RequestContext<RoleServer>) -> bool {
        let modern = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let form = context
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none());
        B::ANSWERS_IN_CLIENT && modern && form
    }

    /// The retry of an input-required call: takes the client's answer (if its user gave one),
    /// then waits like any call. `request_state` is the choice's id, a capability the client
    /// already holds, so it needs no sealing.
    pub(super) async fn answered_in_client(
        &self,
        id: &str,
        responses: &InputResponses,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let choice = match self.choices.get(id).await {
            Ok(choice) => choice,
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
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
        if !B::ANSWERS_IN_CLIENT || reply.action != ElicitationAction::Accept {
            return;
        }
        let Some(answer) = reply.content.and_then(|c| answer_from_form(&c)) else {
            return;
        };
        let client = context.client_info().map(|info| info.name);
        if let Err(e) = self.choices.submit(id, answer, client).await {
            // Most often: someone answered on the page first.
            tracing::debug!(choice = %id, error = %e, "an answer given in the client was not taken");
        }
    }

    /// Asks the client's user by a request of its own, until answered or `withdraw`n. A
    /// decline or a cancel decides nothing, and the page stays open until the deadline.
    /// Clients without the capability, and sessionless 2026-07-28 clients (to which a server
    /// sends no requests), are not asked.
    pub(super) async fn ask_in_client(
        self,
        choice: ChoiceView,
        options: Vec<(String, String)>,
        context: RequestContext<RoleServer>,
        withdraw: CancellationToken,
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
}

/// The form an elicitation shows: the options (one, or several for multi) by their labels, and
/// an optional note for the asker.
pub fn form_for(
    choice: &ChoiceView,
    options: Vec<(String, String)>,
) -> Option<ElicitRequestParams> {
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
fn answer_from_form(content: &Value) -> Option<Submission> {
    let selection = match &content["selection"] {
        Value::String(id) => vec![id.clone()],
        Value::Array(ids) => ids
            .iter()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect(),
        _ => return None,
    };
    Some(Submission {
        selection,
        annotation: content["note"].as_str().map(str::to_string),
        ..Submission::default()
    })
}

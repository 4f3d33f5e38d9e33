//! Body parsing, as the command and create routes do it, then the state machine: any bytes,
//! under any content type, either parse into a command or a create request or are refused
//! with an error — and whatever parses, the pure core applies or refuses without panicking,
//! keeping its invariants.
#![no_main]

use choiceboard::choice::{Actor, Choice, NewChoice, Via};
use choiceboard::http::commands::CommandBody;
use choiceboard::http::parse_json;
use choiceboard::json::request::CreateRequest;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "",
];
const ACTIONS: [&str; 7] = ["submit", "cancel", "timeout", "pause", "resume", "reset", "nope"];

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let content_type = CONTENT_TYPES[usize::from(*selector) % CONTENT_TYPES.len()];
    if !content_type.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }

    // A create: parse, validate, and start a choice from whatever is valid.
    let mut choice = None;
    if let Ok(request) = parse_json::<CreateRequest>(body) {
        if let Ok(new) = NewChoice::try_from(request) {
            choice = Some(Choice::new("fuzz".into(), new, 1_000_000));
        }
    }
    // Otherwise a known-good choice to aim the commands at.
    let mut choice = choice.unwrap_or_else(|| {
        let request: CreateRequest = parse_json(
            br#"{"title": "t", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}], "timeout_seconds": 60}"#,
        )
        .expect("a valid create request");
        Choice::new("fuzz".into(), NewChoice::try_from(request).expect("valid"), 1_000_000)
    });

    // Every action with this body, in turn, at moving times.
    let actor = Actor { via: Via::Api, by: None };
    let mut now = 1_000_000 + i64::from(*selector) * 997;
    for action in ACTIONS {
        let Ok(fields) = CommandBody::from_request(&headers, body) else {
            continue;
        };
        let Ok(command) = fields.into_command(action) else {
            continue;
        };
        let before = choice.clone();
        match choice.apply(command, &actor, now) {
            Ok(_) => assert_eq!(choice.version, before.version + 1),
            Err(_) => assert_eq!(choice, before, "a refused command changed the choice"),
        }
        assert!(choice.remaining_ms(now) >= 0);
        now += 1_500;
    }
});

//! Counters and histograms for `/metrics`, in the Prometheus text format (0.0.4).
//!
//! Each server has its own `prometheus-client` families rather than the `metrics` crate's one
//! global recorder: a process here may run several servers (the tests run dozens, `ask` serves
//! in-process), and each must count only its own traffic. What lives elsewhere (streams, the
//! dashboard, the store) is read at the moment of the scrape, as a [`Snapshot`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::choice::{EventKind, Status};
use crate::clock::Millis;
use crate::engine::{Change, Subscriber};
use crate::error_code::ErrorCode;

/// Command latency buckets, in seconds: a durable commit takes milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Deadline lag buckets, in seconds: the bar is 1 s; a restart may expire overdue ones late.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// The actions a command may name, and `create`; anything else is counted as `other`, so a
/// client cannot invent label values.
const ACTIONS: &[&str] = &[
    "create", "submit", "cancel", "timeout", "pause", "resume", "reset", "expire",
];

type Labels<const N: usize> = [(&'static str, &'static str); N];

pub struct Metrics {
    requests: Family<[(&'static str, String); 3], Counter>,
    commands: Family<Labels<2>, Counter>,
    latency: Family<Labels<1>, Histogram, fn() -> Histogram>,
    deadline_lag: Histogram,
    /// Every pending deadline this node knows of, to measure how late each fires.
    deadlines: Mutex<HashMap<String, Millis>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::default(),
            commands: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(LATENCY_BUCKETS.iter().copied())
            }),
            deadline_lag: Histogram::new(LAG_BUCKETS.iter().copied()),
            deadlines: Mutex::default(),
        }
    }
}

/// What a command came to, as a label.
pub fn outcome_label(code: Option<ErrorCode>) -> &'static str {
    match code {
        None => "ok",
        Some(
            code @ (ErrorCode::NotFound
            | ErrorCode::AlreadyFinal
            | ErrorCode::Conflict
            | ErrorCode::Invalid),
        ) => code.as_str(),
        Some(ErrorCode::Malformed | ErrorCode::TooLarge) => ErrorCode::Malformed.as_str(),
        Some(_) => "error",
    }
}

/// Everything `/metrics` shows that lives elsewhere, read at the moment of the scrape.
#[derive(Default)]
pub struct Snapshot {
    pub choices_by_status: Vec<(String, i64)>,
    pub open_sse: usize,
    pub open_websockets: usize,
    pub viewers: usize,
    pub pending_deadlines: usize,
    pub frames_sent: u64,
    pub frames_skipped: u64,
    pub rate_limited: u64,
    pub streams_refused: u64,
    /// Choices held in memory with their frames, and reads of the others from the store.
    pub live_choices: usize,
    pub store_reads: u64,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn deadlines(&self) -> std::sync::MutexGuard<'_, HashMap<String, Millis>> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One command or create, by action, outcome (`None` = done, else the error code) and
    /// how long it took.
    pub fn command(&self, action: &str, error_code: Option<ErrorCode>, took: Duration) {
        let action = ACTIONS
            .iter()
            .copied()
            .find(|a| *a == action)
            .unwrap_or("other");
        let outcome = outcome_label(error_code);
        self.commands
            .get_or_create(&[("action", action), ("outcome", outcome)])
            .inc();
        self.latency
            .get_or_create(&[("action", action)])
            .observe(took.as_secs_f64());
    }

    /// One answered request, by method, the route it matched and its status.
    pub fn request(&self, method: &Method, route: String, status: StatusCode) {
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            _ => "other",
        };
        self.requests
            .get_or_create(&[
                ("method", method.to_string()),
                ("route", route),
                ("status", status.as_str().to_string()),
            ])
            .inc();
    }

    /// The pending deadlines in the store when the server starts.
    pub fn seed_deadlines(&self, pending: impl IntoIterator<Item = (String, Millis)>) {
        self.deadlines().extend(pending);
    }

    /// The text exposition of everything: this server's own families, and the snapshot's
    /// values as constants of this scrape.
    pub fn render(&self, s: &Snapshot) -> String {
        let mut registry = Registry::default();

        let by_status = Family::<Labels<1>, Gauge>::default();
        for status in [
            Status::Pending,
            Status::Paused,
            Status::Submitted,
            Status::Cancelled,
            Status::TimedOut,
        ] {
            let n = s
                .choices_by_status
                .iter()
                .find(|(name, _)| name == status.as_str())
                .map_or(0, |(_, n)| *n);
            by_status
                .get_or_create(&[("status", status.as_str())])
                .set(n);
        }
        registry.register(
            "choiceboard_choices",
            "Choices in the store, by status.",
            by_status,
        );
        registry.register(
            "choiceboard_http_requests",
            "Answered requests, by method, route and status.",
            self.requests.clone(),
        );
        registry.register(
            "choiceboard_commands",
            "Commands and creates, by action and outcome (expire: deadlines that fired).",
            self.commands.clone(),
        );
        registry.register(
            "choiceboard_command_duration_seconds",
            "From receiving a command to its durable commit, by action.",
            self.latency.clone(),
        );
        registry.register(
            "choiceboard_deadline_lag_seconds",
            "How long after its deadline a choice was committed as timed out.",
            self.deadline_lag.clone(),
        );
        let streams = Family::<Labels<1>, Gauge>::default();
        streams
            .get_or_create(&[("kind", "sse")])
            .set(s.open_sse as i64);
        streams
            .get_or_create(&[("kind", "websocket")])
            .set(s.open_websockets as i64);
        registry.register(
            "choiceboard_open_streams",
            "Open SSE streams and WebSockets.",
            streams,
        );

        let gauges: [(&str, &str, usize); 3] = [
            (
                "choiceboard_hub_subscribers",
                "Open streams and sockets (choice viewers and dashboards).",
                s.viewers,
            ),
            (
                "choiceboard_pending_deadlines",
                "Deadlines this node is waiting for.",
                s.pending_deadlines,
            ),
            (
                "choiceboard_live_choices",
                "Choices held in memory with their rendered frames (every active one, and final ones being watched).",
                s.live_choices,
            ),
        ];
        for (name, help, value) in gauges {
            registry.register(name, help, ConstGauge::new(value as i64));
        }
        let counters: [(&str, &str, u64); 5] = [
            (
                "choiceboard_hub_frames_sent",
                "Frames written to streams.",
                s.frames_sent,
            ),
            (
                "choiceboard_hub_frames_skipped",
                "Stale frames a slow stream skipped for a newer one.",
                s.frames_skipped,
            ),
            (
                "choiceboard_rate_limited",
                "Requests refused with 429 by the per-client rate limit.",
                s.rate_limited,
            ),
            (
                "choiceboard_streams_refused",
                "Streams refused by the per-client or total cap.",
                s.streams_refused,
            ),
            (
                "choiceboard_store_reads",
                "Choices not in memory read from the store (one read however many asked at once).",
                s.store_reads,
            ),
        ];
        for (name, help, value) in counters {
            registry.register(name, help, ConstCounter::new(value));
        }

        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// Follows every committed change to know each pending deadline, and measures how late the
/// `timed_out` ones were committed.
impl Subscriber for Metrics {
    fn changed(&self, change: &Arc<Change>) {
        // Notes are events without a choice.
        let Some(choice) = &change.choice else {
            return;
        };
        let mut deadlines = self.deadlines();
        if change.kind == Some(EventKind::TimedOut) {
            self.commands
                .get_or_create(&[("action", "expire"), ("outcome", "ok")])
                .inc();
            if let Some(deadline) = deadlines.remove(&choice.id) {
                let lag = (change.event.at - deadline).max(0) as f64 / 1000.0;
                self.deadline_lag.observe(lag);
            }
            return;
        }
        match choice.deadline {
            Some(deadline) => {
                deadlines.insert(choice.id.clone(), deadline);
            }
            None => {
                deadlines.remove(&choice.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_and_well_formed_lines() {
        let m = Metrics::default();
        m.command("submit", None, Duration::from_millis(3));
        m.command(
            "submit",
            Some(ErrorCode::AlreadyFinal),
            Duration::from_millis(1),
        );
        m.command(
            "<script>",
            Some(ErrorCode::NotFound),
            Duration::from_millis(1),
        );
        let text = m.render(&Snapshot {
            choices_by_status: vec![("pending".into(), 2)],
            ..Snapshot::default()
        });
        for needle in [
            "choiceboard_choices{status=\"pending\"} 2",
            "choiceboard_choices{status=\"timed_out\"} 0",
            "choiceboard_commands_total{action=\"submit\",outcome=\"ok\"} 1",
            "choiceboard_commands_total{action=\"submit\",outcome=\"already_final\"} 1",
            "choiceboard_commands_total{action=\"other\",outcome=\"not_found\"} 1",
            "choiceboard_command_duration_seconds_bucket{action=\"submit\",le=\"0.005\"} 2",
            "choiceboard_command_duration_seconds_count{action=\"submit\"} 2",
            "choiceboard_deadline_lag_seconds_count 0",
            "choiceboard_open_streams{kind=\"sse\"} 0",
            "choiceboard_hub_frames_skipped_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}

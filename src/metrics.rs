//! Counters and histograms for `/metrics`, written out in the Prometheus text format.
//!
//! Hand-written rather than the `metrics` crates: those keep one global recorder per process,
//! and a process here may run several servers (the tests run dozens, `ask` serves in-process),
//! each of which must count only its own traffic. A few mutex-guarded maps cost nothing next
//! to a durable commit, and the exposition format is a page of code.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::choice::EventKind;
use crate::clock::Millis;
use crate::engine::{Change, Subscriber};

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

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    commands: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    deadline_lag: Option<Histogram>,
    /// Every pending deadline this node knows of, to measure how late each fires.
    deadlines: HashMap<String, Millis>,
}

#[derive(Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What a command came to, as a label.
pub fn outcome_label(code: Option<&str>) -> &'static str {
    match code {
        None => "ok",
        Some("not_found") => "not_found",
        Some("already_final") => "already_final",
        Some("conflict") => "conflict",
        Some("invalid") => "invalid",
        Some("malformed") | Some("too_large") => "malformed",
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One command or create, by action, outcome (`None` = done, else the error code) and
    /// how long it took.
    pub fn command(&self, action: &str, error_code: Option<&str>, took: Duration) {
        let action = ACTIONS
            .iter()
            .copied()
            .find(|a| *a == action)
            .unwrap_or("other");
        let outcome = outcome_label(error_code);
        let mut inner = self.lock();
        *inner.commands.entry((action, outcome)).or_insert(0) += 1;
        inner
            .latency
            .entry(action)
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(took.as_secs_f64());
    }

    /// The pending deadlines in the store when the server starts.
    pub fn seed_deadlines(&self, pending: impl IntoIterator<Item = (String, Millis)>) {
        self.lock().deadlines.extend(pending);
    }

    /// The text exposition of everything.
    pub fn render(&self, s: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        let inner = self.lock();

        help(
            &mut out,
            "choiceboard_choices",
            "gauge",
            "Choices in the store, by status.",
        );
        let mut by_status: BTreeMap<&str, i64> =
            ["pending", "paused", "submitted", "cancelled", "timed_out"]
                .into_iter()
                .map(|status| (status, 0))
                .collect();
        for (status, n) in &s.choices_by_status {
            if let Some(count) = by_status.get_mut(status.as_str()) {
                *count = *n;
            }
        }
        for (status, n) in by_status {
            let _ = writeln!(out, "choiceboard_choices{{status=\"{status}\"}} {n}");
        }

        help(
            &mut out,
            "choiceboard_commands_total",
            "counter",
            "Commands and creates, by action and outcome (expire: deadlines that fired).",
        );
        for ((action, outcome), n) in &inner.commands {
            let _ = writeln!(
                out,
                "choiceboard_commands_total{{action=\"{action}\",outcome=\"{outcome}\"}} {n}"
            );
        }

        help(
            &mut out,
            "choiceboard_command_duration_seconds",
            "histogram",
            "From receiving a command to its durable commit, by action.",
        );
        for (action, histogram) in &inner.latency {
            histogram.write(
                &mut out,
                "choiceboard_command_duration_seconds",
                &format!("action=\"{action}\""),
            );
        }

        help(
            &mut out,
            "choiceboard_deadline_lag_seconds",
            "histogram",
            "How long after its deadline a choice was committed as timed out.",
        );
        inner
            .deadline_lag
            .clone()
            .unwrap_or_else(|| Histogram::new(LAG_BUCKETS))
            .write(&mut out, "choiceboard_deadline_lag_seconds", "");

        help(
            &mut out,
            "choiceboard_open_streams",
            "gauge",
            "Open SSE streams and WebSockets.",
        );
        let _ = writeln!(
            out,
            "choiceboard_open_streams{{kind=\"sse\"}} {}",
            s.open_sse
        );
        let _ = writeln!(
            out,
            "choiceboard_open_streams{{kind=\"websocket\"}} {}",
            s.open_websockets
        );
        gauge(
            &mut out,
            "choiceboard_hub_subscribers",
            "Subscribers of the hub (choice viewers and dashboards).",
            s.viewers,
        );
        gauge(
            &mut out,
            "choiceboard_pending_deadlines",
            "Deadlines this node is waiting for.",
            s.pending_deadlines,
        );
        counter(
            &mut out,
            "choiceboard_hub_frames_sent_total",
            "Frames written to streams.",
            s.frames_sent,
        );
        counter(
            &mut out,
            "choiceboard_hub_frames_skipped_total",
            "Stale frames a slow stream skipped for a newer one.",
            s.frames_skipped,
        );
        counter(
            &mut out,
            "choiceboard_rate_limited_total",
            "Requests refused with 429 by the per-client rate limit.",
            s.rate_limited,
        );
        counter(
            &mut out,
            "choiceboard_streams_refused_total",
            "Streams refused by the per-client or total cap.",
            s.streams_refused,
        );
        gauge(
            &mut out,
            "choiceboard_live_choices",
            "Choices held in memory with their rendered frames (every active one, and final ones being watched).",
            s.live_choices,
        );
        counter(
            &mut out,
            "choiceboard_store_reads_total",
            "Choices not in memory read from the store (one read however many asked at once).",
            s.store_reads,
        );
        out
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, text: &str, value: usize) {
    help(out, name, "gauge", text);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, text: &str, value: u64) {
    help(out, name, "counter", text);
    let _ = writeln!(out, "{name} {value}");
}

/// Follows every committed change to know each pending deadline, and measures how late the
/// `timed_out` ones were committed.
impl Subscriber for Metrics {
    fn changed(&self, change: &Arc<Change>) {
        // Notes are events without a choice.
        let Some(choice) = &change.choice else {
            return;
        };
        let mut inner = self.lock();
        if change.kind == Some(EventKind::TimedOut) {
            *inner.commands.entry(("expire", "ok")).or_insert(0) += 1;
            if let Some(deadline) = inner.deadlines.remove(&choice.id) {
                let lag = (change.event.at - deadline).max(0) as f64 / 1000.0;
                inner
                    .deadline_lag
                    .get_or_insert_with(|| Histogram::new(LAG_BUCKETS))
                    .observe(lag);
            }
            return;
        }
        match choice.deadline {
            Some(deadline) => {
                inner.deadlines.insert(choice.id.clone(), deadline);
            }
            None => {
                inner.deadlines.remove(&choice.id);
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
        m.command("submit", Some("already_final"), Duration::from_millis(1));
        m.command("<script>", Some("not_found"), Duration::from_millis(1));
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

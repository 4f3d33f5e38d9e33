//! A choice's frames, and the one place they are rendered: from the choice, its seq, who is
//! watching and `now`, whichever parts are due.

use std::sync::Arc;

use axum::body::Bytes;

use crate::choice::{Choice, Status};
use crate::clock::Millis;
use crate::frame::{self, Part};
use crate::json::{self, Presence};
use crate::views::choice as view;

/// A choice's frames as they stand: what SSE and WebSocket viewers copy onto their sockets.
#[derive(Clone, Debug)]
pub struct Frames {
    pub status: Part,
    pub remaining: Part,
    pub viewers: Part,
    /// The choice is settled: send `close` after the status and end the stream (a rung timer's
    /// stays open for its next round).
    pub closed: bool,
    /// The choice these frames were rendered from, and the newest event seq they reflect.
    pub choice: Arc<Choice>,
    pub seq: i64,
    /// WebSocket `sync` (at every deadline change and every 5 s) and `status` messages.
    pub ws_sync: Part,
    pub ws_status: Part,
}

impl Frames {
    /// Nothing rendered yet: the parts are rendered when the first viewer joins.
    pub fn unrendered(choice: &Arc<Choice>, seq: i64) -> Frames {
        Frames {
            status: Part::default(),
            remaining: Part::default(),
            viewers: Part::default(),
            closed: choice.is_settled(),
            choice: choice.clone(),
            seq,
            ws_sync: Part::default(),
            ws_status: Part::default(),
        }
    }
}

/// Which parts are due. A part replaced counts as new to every viewer even when its bytes are
/// the same, so only the parts due are rendered and replaced. The viewers part is due when a
/// [`Presence`] is given to [`render`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Due {
    /// The status frame, and with it the choice, seq and `closed` the frames carry.
    pub status: bool,
    pub remaining: bool,
    pub ws_sync: bool,
    /// The WebSocket `status` message, from this status before the change.
    pub ws_status: Option<Status>,
}

impl Due {
    /// Every part (the first viewer joins, or one came back): the frames were stale.
    pub fn all() -> Due {
        Due {
            status: true,
            remaining: true,
            ws_sync: true,
            ws_status: None,
        }
    }

    /// A change from `before` to `after`: status and countdown, a `status` message if the
    /// status moved, a `sync` if the countdown did.
    pub fn change(before: &Choice, after: &Choice) -> Due {
        let countdown_moved = (before.deadline, before.paused_remaining, before.timeout_ms)
            != (after.deadline, after.paused_remaining, after.timeout_ms);
        Due {
            status: true,
            remaining: true,
            ws_sync: countdown_moved,
            ws_status: Some(before.status),
        }
    }

    /// One second of a choice's countdown: while it runs, the remaining time, and sockets get a
    /// fresh `sync` every 5 s (on the wall-clock second, like the ticks).
    pub fn second(choice: &Choice, now: Millis) -> Due {
        let running = choice.status == Status::Pending;
        Due {
            status: false,
            remaining: running,
            ws_sync: running && now.div_euclid(1000) % 5 == 0,
            ws_status: None,
        }
    }
}

/// Parts rendered and not yet written: rendered outside the frames' lock (every viewer reads
/// through it), then written in one go with [`Rendered::write`].
#[derive(Default)]
pub struct Rendered {
    /// The choice, seq and `closed` that go with a new status.
    settled: Option<(Arc<Choice>, i64, bool)>,
    status: Option<Bytes>,
    remaining: Option<Bytes>,
    viewers: Option<Bytes>,
    ws_sync: Option<Bytes>,
    ws_status: Option<Bytes>,
}

/// Renders the parts of a choice's frames that are due, as of event `seq` and `now`.
pub fn render(
    choice: &Arc<Choice>,
    seq: i64,
    presence: Option<&Presence>,
    now: Millis,
    due: Due,
) -> Rendered {
    let mut rendered = Rendered::default();
    if due.status {
        let status = view::status(choice).into_string();
        rendered.status = Some(frame::sse(seq, "status", &status));
        rendered.settled = Some((choice.clone(), seq, choice.is_settled()));
    }
    if due.remaining {
        let remaining = view::remaining(choice, now).into_string();
        rendered.remaining = Some(frame::sse(seq, "remaining", &remaining));
    }
    if let Some(presence) = presence {
        let viewers = view::viewers(presence).into_string();
        rendered.viewers = Some(frame::sse(seq, "viewers", &viewers));
    }
    if due.ws_sync {
        rendered.ws_sync = Some(Bytes::from(json::sync(choice, now).to_string()));
    }
    if let Some(before) = due.ws_status {
        rendered.ws_status = json::ws_status(before, choice.status).map(Bytes::from);
    }
    rendered
}

impl Rendered {
    /// Nothing was due.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.remaining.is_none()
            && self.viewers.is_none()
            && self.ws_sync.is_none()
            && self.ws_status.is_none()
    }

    /// Replaces the parts rendered, and no other.
    pub fn write(self, f: &mut Frames) {
        if let Some((choice, seq, closed)) = self.settled {
            f.choice = choice;
            f.seq = seq;
            f.closed = closed;
        }
        for (part, bytes) in [
            (&mut f.status, self.status),
            (&mut f.remaining, self.remaining),
            (&mut f.viewers, self.viewers),
            (&mut f.ws_sync, self.ws_sync),
            (&mut f.ws_status, self.ws_status),
        ] {
            if let Some(bytes) = bytes {
                part.replace(bytes);
            }
        }
    }
}

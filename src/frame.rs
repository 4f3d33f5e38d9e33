//! A rendered frame: rendered once, the same bytes for every viewer. A [`Part`] counts its
//! frames, so each viewer can tell which parts it has not sent yet; [`sse`] is the SSE message
//! format every stream speaks.

use axum::body::Bytes;

/// One part of a channel's state: its latest frame and how many frames it has had.
#[derive(Clone, Debug, Default)]
pub struct Part {
    pub count: u64,
    pub bytes: Bytes,
}

impl Part {
    pub fn new(bytes: Bytes) -> Part {
        Part { count: 1, bytes }
    }

    pub fn replace(&mut self, bytes: Bytes) {
        self.count += 1;
        self.bytes = bytes;
    }
}

/// One SSE message. Every line of `data` gets its own `data:` field (CR, LF and CRLF all end
/// a line in SSE), so no text can break out of the message.
pub fn sse(id: i64, event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + event.len() + 40);
    out.push_str("id: ");
    out.push_str(&id.to_string());
    out.push_str("\nevent: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split(['\n', '\r']) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

//! A rendered frame: rendered once, the same bytes for every viewer. A [`Part`] counts its
//! frames, so each viewer can tell which parts it has not sent yet; [`sse`] is the SSE message
//! format every stream speaks, and [`unnamed`] the same message as htmx swaps it.

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

/// The message without its `event:` line, as two slices of the same bytes. htmx 4's SSE
/// extension swaps unnamed messages and dispatches named ones as DOM events, so a page's own
/// stream gets its fragments unnamed; every other client reads the names.
pub fn unnamed(message: &Bytes) -> [Bytes; 2] {
    const FIELD: &[u8] = b"\nevent: ";
    let Some(start) = message.windows(FIELD.len()).position(|w| w == FIELD) else {
        return [message.clone(), Bytes::new()];
    };
    let after = start + FIELD.len();
    let end = message[after..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(message.len(), |n| after + n + 1);
    [message.slice(..start + 1), message.slice(end..)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_message_is_the_same_message_without_its_event_line() {
        let named = sse(7, "status", "<p>a</p>\n<p>b</p>");
        assert_eq!(
            &named[..],
            b"id: 7\nevent: status\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
        );
        assert_eq!(
            unnamed(&named).concat(),
            b"id: 7\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
        );
    }
}

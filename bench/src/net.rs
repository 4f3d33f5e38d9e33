//! Just enough HTTP/1.1, chunked decoding and WebSocket framing to read thousands of streams
//! cheaply: one small buffer per connection, no general-purpose client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Source addresses connections are spread over: one address has only ~28,000 ephemeral ports.
pub const SOURCES: u8 = 8;

/// The `n`th source address: 127.0.0.2, 127.0.0.3, …
pub fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCES as usize) as u8))
}

pub async fn connect(server: SocketAddr, from: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads until the end of the response head; returns (status, head, bytes after the head).
pub async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            buf.clear();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("no status line")?;
            return Ok((status, head, rest));
        }
        if buf.len() > 64 * 1024 {
            bail!("response head too large");
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("closed before the response head");
        }
    }
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Default)]
pub struct Chunked {
    /// Bytes of chunk data still to come in the current chunk.
    left: usize,
    /// CR LF still to skip after a chunk's data.
    skip: usize,
    size: usize,
    in_size_line: bool,
    pub done: bool,
}

impl Chunked {
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.done {
            if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.skip = 2;
                }
            } else if self.skip > 0 {
                let n = self.skip.min(input.len());
                self.skip -= n;
                input = &input[n..];
            } else {
                // Size line: hex digits, maybe extensions, CR LF.
                let b = input[0];
                input = &input[1..];
                if b == b'\n' {
                    if self.size == 0 {
                        self.done = true;
                    }
                    self.left = self.size;
                    self.size = 0;
                    self.in_size_line = false;
                } else if !self.in_size_line {
                    match (b as char).to_digit(16) {
                        Some(d) => self.size = self.size * 16 + d as usize,
                        None => self.in_size_line = true,
                    }
                }
            }
        }
    }
}

/// A keep-alive HTTP/1.1 client for one connection: sends a request, reads the whole answer.
pub struct Client {
    server: SocketAddr,
    from: Option<IpAddr>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// The `Accept` header sent (JSON unless told otherwise).
    pub accept: &'static str,
}

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {}, not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl Client {
    pub fn new(server: SocketAddr, from: Option<IpAddr>) -> Client {
        Client {
            server,
            from,
            stream: None,
            buf: Vec::with_capacity(4096),
            accept: "application/json",
        }
    }

    /// One request; a JSON body if given. A broken connection is reopened on the next call.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let reused = self.stream.is_some();
        let mut result = self.request_once(method, path, json).await;
        if result.is_err() {
            self.stream = None;
            // A kept-alive connection the server closed while idle: once more on a new one.
            if reused {
                result = self.request_once(method, path, json).await;
                if result.is_err() {
                    self.stream = None;
                }
            }
        }
        result
    }

    async fn request_once(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> anyhow::Result<Answer> {
        if self.stream.is_none() {
            self.stream = Some(connect(self.server, self.from).await?);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().context("no stream")?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {}\r\n",
            self.server, self.accept
        );
        if let Some(body) = json {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        stream.write_all(req.as_bytes()).await?;
        let (status, head, rest) = read_head(stream, &mut self.buf).await?;
        let mut body = Vec::new();
        if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            body = rest;
            while body.len() < len {
                if stream.read_buf(&mut body).await? == 0 {
                    bail!("closed mid-body");
                }
            }
            self.buf.extend_from_slice(&body[len..]);
            body.truncate(len);
        } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut decoder = Chunked::default();
            decoder.feed(&rest, &mut body);
            let mut chunk = Vec::with_capacity(4096);
            while !decoder.done {
                chunk.clear();
                if stream.read_buf(&mut chunk).await? == 0 {
                    bail!("closed mid-body");
                }
                decoder.feed(&chunk, &mut body);
            }
        }
        if header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.stream = None;
        }
        Ok(Answer { status, body })
    }
}

/// Polls `GET path` until it answers 200 or `limit` passes.
pub async fn wait_ready(server: SocketAddr, path: &str, limit: Duration) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + limit;
    loop {
        let mut client = Client::new(server, None);
        if let Ok(answer) = client.request("GET", path, None).await
            && answer.status == 200
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            bail!("{server}{path} did not answer 200 within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One WebSocket frame from the server (never masked).
pub enum Frame {
    Text(Vec<u8>),
    Ping(Vec<u8>),
    Close,
    Other,
}

/// Takes one whole frame off the front of `buf`, if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < start + len {
        return None;
    }
    let payload = buf[start..start + len].to_vec();
    buf.drain(..start + len);
    Some(match opcode {
        1 | 0 => Frame::Text(payload),
        8 => Frame::Close,
        9 => Frame::Ping(payload),
        _ => Frame::Other,
    })
}

/// A client frame (masked, as clients must; the mask is zero, which leaves the payload as is).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

pub fn upgrade_request(server: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Unix milliseconds of an RFC 3339 UTC instant like `2026-11-24T10:05:00.000Z`.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut ms = 0;
    if b.get(19) == Some(&b'.') {
        let frac: String = s[20..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let digits = format!("{frac:0<3}");
        ms = digits[..3].parse::<i64>().ok()?;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// `SO_TIMESTAMPNS` (also the control message type `SCM_TIMESTAMPNS`) on Linux with 64-bit
/// `time_t` (asm-generic/socket.h); the libc crate does not name it for glibc targets.
const SO_TIMESTAMPNS: libc::c_int = 35;

/// Asks the kernel to stamp received data (`SO_TIMESTAMPNS`), so a reader that runs late still
/// knows when its bytes arrived: the skew measured is the server's, not the generator's queue.
pub fn enable_rx_timestamps(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a plain setsockopt on our own socket with a stack value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Reads what is there into `buf`; returns the byte count (0 = closed) and the kernel's receive
/// time of the newest of those bytes (`CLOCK_REALTIME` ns), when it gave one.
pub async fn recv_stamped(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<(usize, Option<i64>)> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_once(stream, buf)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn recv_once(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(usize, Option<i64>)> {
    use std::os::fd::AsRawFd;
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer in it points at live stack or buffer memory
    // of the stated length, and recvmsg writes at most that much.
    let (n, stamp) = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, 0);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut stamp = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        (n as usize, stamp)
    };
    // SAFETY: recvmsg initialised the first n bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok((n, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decodes_across_splits() {
        let input = b"5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\n\r\n";
        for split in 0..input.len() {
            let mut d = Chunked::default();
            let mut out = Vec::new();
            d.feed(&input[..split], &mut out);
            d.feed(&input[split..], &mut out);
            assert_eq!(out, b"helloabc");
            assert!(d.done);
        }
    }

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T10:05:00.000Z"),
            Some(1_795_514_700_000)
        );
    }
}

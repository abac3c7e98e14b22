//! A small HTTP/1.1 server for the operations endpoint, built so that no client can hold it:
//! every connection gets its own short-lived thread (at most [`MAX_CONNECTIONS`] at once; more
//! are closed at once), a bounded request head ([`MAX_HEAD`]) and body ([`MAX_BODY`]), read and
//! write timeouts, and a deadline for the whole exchange ([`DEADLINE`]); one request per
//! connection (`Connection: close`). A stalled or slow client therefore costs one thread for at
//! most the deadline and never delays `/healthz` for anyone else.
//!
//! (tiny_http, used before, answers on the caller's thread with no socket timeouts: one client
//! that stopped reading a `/metrics` answer blocked every endpoint until it went away.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Connections served at once; one more is closed without an answer.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request line + headers.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body (the endpoints take none; `POST /admin/reload` has none).
pub const MAX_BODY: usize = 64 * 1024;
/// Longest a connection may take, request and answer together.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Longest a single read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub peer: SocketAddr,
}

/// What to answer.
pub struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(code: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            code,
            content_type: "text/plain",
            body: body.into(),
        }
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Serves `listener` until `stop`; `handler` answers each request (on the connection's thread).
pub fn serve(listener: TcpListener, stop: Arc<AtomicBool>, handler: Arc<Handler>) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("event=http_error error=\"set_nonblocking: {e}\"");
        return;
    }
    let active = Arc::new(AtomicUsize::new(0));
    let mut refused = crate::metrics::LogThrottle::default();
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                log::warn!("event=http_error error=\"accept: {e}\"");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            if refused.hit() {
                log::warn!(
                    "event=http_refused peer={peer} reason=\"{MAX_CONNECTIONS} connections open\" count={}",
                    refused.count()
                );
            }
            continue; // dropped: closed
        }
        let (handler, active2) = (handler.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                connection(stream, peer, &*handler);
                active2.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One connection: read the head (and any small body), answer, close.
fn connection(mut s: TcpStream, peer: SocketAddr, handler: &Handler) {
    let deadline = Instant::now() + DEADLINE;
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let resp = match read_request(&mut s, peer, deadline) {
        Ok(req) => handler(&req),
        Err(Some(resp)) => resp,
        Err(None) => return, // the client went away or timed out: nothing to answer
    };
    let reason = match resp.code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.code,
        resp.content_type,
        resp.body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    for chunk in out.chunks(16 * 1024) {
        if Instant::now() >= deadline || s.write_all(chunk).is_err() {
            return;
        }
    }
    let _ = s.flush();
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// `Err(Some(answer))` for a bad request, `Err(None)` when there is no one to answer.
fn read_request(
    s: &mut TcpStream,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<Request, Option<Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= MAX_HEAD {
            return Err(Some(Response::text(431, "request head too large\n")));
        }
        if Instant::now() >= deadline {
            return Err(Some(Response::text(408, "request too slow\n")));
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Some(Response::text(408, "request too slow\n")));
            }
            Err(_) => return Err(None),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| Some(Response::text(400, "request head is not UTF-8\n")))?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Err(Some(Response::text(400, "bad request line\n")));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(Some(Response::text(400, "bad request line\n")));
    }
    let mut length = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v
                    .trim()
                    .parse()
                    .map_err(|_| Some(Response::text(400, "bad Content-Length\n")))?;
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err(Some(Response::text(
                    400,
                    "no request body is taken (Transfer-Encoding)\n",
                )));
            }
        }
    }
    if length > MAX_BODY {
        return Err(Some(Response::text(413, "request body too large\n")));
    }
    // The endpoints take no body: read (and drop) what was announced.
    let mut have = buf.len() - head_end;
    while have < length {
        if Instant::now() >= deadline {
            return Err(Some(Response::text(408, "request too slow\n")));
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => have += n,
        }
    }
    Ok(Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or("").to_string(),
        peer,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (u16, Arc<AtomicBool>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::spawn(move || {
            serve(
                l,
                s2,
                Arc::new(|r: &Request| Response::text(200, format!("{} {}\n", r.method, r.path))),
            )
        });
        (port, stop)
    }

    fn ask(port: u16, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn answers_and_refuses_what_it_must() {
        let (port, stop) = server();
        let ok = ask(port, b"GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nGET /healthz\n"), "{ok}");
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(ask(port, big.as_bytes()).starts_with("HTTP/1.1 431"));
        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(ask(port, body.as_bytes()).starts_with("HTTP/1.1 413"));
        assert!(ask(port, b"garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        let posted = ask(port, b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert!(posted.ends_with("POST /x\n"), "{posted}");
        stop.store(true, Ordering::Relaxed);
    }
}

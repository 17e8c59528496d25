//! The HTTP endpoint for monitoring (`/system/metricsPort`): `GET /metrics` answers the
//! Prometheus text of the statistics, `GET /health` 200 while the node works (503 once its
//! log has failed), anything else 404 or 405. One request per connection, then it closes.
//!
//! Invariants: a request is parsed by httparse from at most 16 KiB read within 5 seconds;
//! nothing a client sends can make the server panic or hold a connection open longer.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::query::Engine;

const MAX_REQUEST: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the endpoint on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT * 2, answer(socket, &engine)).await;
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    Bad,
}

/// Reads the request head: what it asks for, and whether it is a HEAD request (headers
/// only); `None` while it is incomplete.
fn parse(bytes: &[u8]) -> Option<(Request, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some((Request::Bad, false)),
    }
    let path = request.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let asked = match (request.method, path) {
        (Some("GET" | "HEAD"), "/metrics") => Request::Metrics,
        (Some("GET" | "HEAD"), "/health") => Request::Health,
        (Some("GET" | "HEAD"), _) => Request::NotFound,
        _ => Request::MethodNotAllowed,
    };
    Some((asked, request.method == Some("HEAD")))
}

async fn answer(mut socket: TcpStream, engine: &Engine) {
    let mut buffer = Vec::with_capacity(1024);
    let (request, head_only) = loop {
        if buffer.len() >= MAX_REQUEST {
            break (Request::Bad, false);
        }
        let mut chunk = [0u8; 2048];
        let n = match tokio::time::timeout(READ_TIMEOUT, socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(request) = parse(&buffer) {
            break request;
        }
    };
    let (status, content_type, body) = match request {
        Request::Metrics => {
            let figures = super::collect(engine);
            (
                "200 OK",
                super::prometheus::CONTENT_TYPE,
                super::prometheus::render(&figures),
            )
        }
        Request::Health => {
            let failed = engine.txns.log().and_then(|log| log.failed());
            let role = engine
                .replication()
                .map_or("primary", |hub| hub.role().name());
            match failed {
                None => (
                    "200 OK",
                    "application/json",
                    format!("{{\"status\":\"ok\",\"role\":\"{role}\"}}\n"),
                ),
                Some(_) => (
                    "503 Service Unavailable",
                    "application/json",
                    format!("{{\"status\":\"abnormal\",\"role\":\"{role}\"}}\n"),
                ),
            }
        }
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /health\n".into(),
        ),
        Request::MethodNotAllowed => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
        Request::Bad => ("400 Bad Request", "text/plain", "bad request\n".into()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    if !head_only {
        let _ = socket.write_all(body.as_bytes()).await;
    }
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(bytes: &[u8]) -> Option<Request> {
        parse(bytes).map(|(request, _)| request)
    }

    #[test]
    fn requests_are_read_safely() {
        assert_eq!(
            asked(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Request::Metrics)
        );
        assert_eq!(
            asked(b"GET /health?x=1 HTTP/1.0\r\n\r\n"),
            Some(Request::Health)
        );
        assert_eq!(
            asked(b"GET /other HTTP/1.1\r\n\r\n"),
            Some(Request::NotFound)
        );
        assert_eq!(
            asked(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Request::MethodNotAllowed)
        );
        assert_eq!(
            parse(b"HEAD /health HTTP/1.1\r\n\r\n"),
            Some((Request::Health, true))
        );
        assert_eq!(asked(b"GET /metrics HTTP/1.1\r\n"), None);
        assert_eq!(asked(b"\x00\x01garbage\r\n\r\n"), Some(Request::Bad));
    }
}

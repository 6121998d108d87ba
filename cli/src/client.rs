//! The HTTP client of the Ollama API: JSON requests, NDJSON streams read line by
//! line (cancellable), and blob uploads. Errors keep the server's status and
//! message so callers can branch on 404 the way the `ollama` CLI does.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::Value;
use ureq::http;

use crate::env::Host;

/// Longest accepted NDJSON line and non-streamed body (a verbose `/api/show` with
/// every tensor is a few MB; anything near this is not a sane answer).
const MAX_BODY: u64 = 256 << 20;
const MAX_LINE: usize = 64 << 20;

/// A failed API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A non-2xx answer. `status_line` (`404 Not Found`) is kept for streamed
    /// endpoints, whose errors Ollama's client prints as `<status line>: <message>`.
    Status {
        code: u16,
        status_line: Option<String>,
        message: String,
    },
    /// An `{"error": ...}` line inside a 200 stream.
    Stream(String),
    /// The server could not be reached or the connection broke.
    Transport { refused: bool, message: String },
    /// Anything else (a malformed answer, a local failure while streaming).
    Other(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status {
                status_line,
                message,
                ..
            } => match (status_line, message.is_empty()) {
                (Some(s), false) => write!(f, "{s}: {message}"),
                (Some(s), true) => f.write_str(s),
                (None, false) => f.write_str(message),
                (None, true) => f.write_str(
                    "something went wrong, please see the ollama server logs for details",
                ),
            },
            ApiError::Stream(m) | ApiError::Other(m) => f.write_str(m),
            ApiError::Transport { message, .. } => f.write_str(message),
        }
    }
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.to_string()
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server closed the stream.
    Finished,
    /// The cancel flag was raised (Ctrl+C); the connection is dropped.
    Cancelled,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(host: &Host) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A local server: no proxy from the environment.
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(30)))
            .user_agent(format!(
                "ferrite/{} ({} {})",
                crate::VERSION,
                std::env::consts::ARCH,
                std::env::consts::OS
            ))
            .build();
        Client {
            base: host.connectable().base_url(),
            agent: config.new_agent(),
        }
    }

    pub fn from_env() -> Client {
        Client::new(&Host::from_env())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        accept: &str,
        extra: Option<(&str, String)>,
    ) -> Result<http::Response<ureq::Body>, ApiError> {
        let url = self.url(path);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", accept);
        if !body.is_empty() {
            req = req.header("Content-Type", "application/json");
        }
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        let req = req
            .body(body)
            .map_err(|e| ApiError::Other(format!("{method} {url}: {e}")))?;
        self.agent
            .run(req)
            .map_err(|e| transport_error(method, &url, e))
    }

    /// `HEAD /`: is the server there? Connection refused gives Ollama's message.
    pub fn heartbeat(&self) -> Result<(), ApiError> {
        match self.request("HEAD", "/", None) {
            Err(ApiError::Transport { refused: true, .. }) => Err(ApiError::Transport {
                refused: true,
                message: "could not connect to ollama app, is it running?".into(),
            }),
            other => other.map(|_| ()),
        }
    }

    /// A JSON request (or none); the decoded answer, `Value::Null` for an empty body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let resp = self.send(method, path, bytes, "application/json", None)?;
        let code = resp.status().as_u16();
        let text = read_body(resp, method == "HEAD")?;
        if code >= 400 {
            return Err(status_error(code, None, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| ApiError::Other(format!("invalid JSON from server: {e}")))
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.request("POST", path, Some(body))
    }

    /// A streamed `POST`: `on_chunk` sees every NDJSON object in order. An error
    /// status, an `{"error": ...}` line or an `Err` from `on_chunk` ends the stream
    /// with that error. While waiting, `cancel` (Ctrl+C) is polled; raising it
    /// drops the connection and returns [`StreamEnd::Cancelled`].
    pub fn stream(
        &self,
        path: &str,
        body: &Value,
        cancel: Option<&AtomicBool>,
        on_chunk: &mut dyn FnMut(&Value) -> Result<(), String>,
    ) -> Result<StreamEnd, ApiError> {
        let (tx, rx) = mpsc::sync_channel::<Result<Value, ApiError>>(64);
        let client = self.clone();
        let path = path.to_string();
        let bytes = body.to_string().into_bytes();
        // The request runs on its own thread so that a server still loading a model
        // (no headers yet) cannot keep Ctrl+C from taking effect.
        std::thread::spawn(move || {
            let result = client.stream_lines(&path, bytes, &mut |v| tx.send(Ok(v)).is_ok());
            if let Err(e) = result {
                let _ = tx.send(Err(e));
            }
        });
        loop {
            // Checked before every chunk too: a fast stream never times out.
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                return Ok(StreamEnd::Cancelled);
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(chunk)) => on_chunk(&chunk).map_err(ApiError::Other)?,
                Ok(Err(e)) => return Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(StreamEnd::Finished),
            }
        }
    }

    /// Reads the stream, handing each object to `emit` until it returns false.
    fn stream_lines(
        &self,
        path: &str,
        body: Vec<u8>,
        emit: &mut dyn FnMut(Value) -> bool,
    ) -> Result<(), ApiError> {
        let resp = self.send("POST", path, body, "application/x-ndjson", None)?;
        let status = resp.status();
        let code = status.as_u16();
        let status_line = format!(
            "{} {}",
            code,
            status.canonical_reason().unwrap_or("status code")
        );
        if code >= 400 {
            let text = read_body(resp, false)?;
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(status_error(code, Some(status_line), first));
        }
        let mut reader = BufReader::new(resp.into_body().into_reader());
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| ApiError::Transport {
                    refused: false,
                    message: format!("reading response: {e}"),
                })?;
            if n == 0 {
                return Ok(());
            }
            if line.len() > MAX_LINE {
                return Err(ApiError::Other("response line too long".into()));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(text)
                .map_err(|e| ApiError::Other(format!("unmarshal: {e}")))?;
            if let Some(err) = v
                .get("error")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
            {
                return Err(ApiError::Stream(err.to_string()));
            }
            if !emit(v) {
                return Ok(());
            }
        }
    }

    /// `ollama create`'s blob upload: `HEAD /api/blobs/<digest>`, and on 404 a
    /// `POST` of the file (its size as Content-Length). `sent` counts bytes read.
    pub fn create_blob(
        &self,
        digest: &str,
        path: &Path,
        sent: Arc<AtomicU64>,
    ) -> Result<(), ApiError> {
        let route = format!("/api/blobs/{digest}");
        match self.request("HEAD", &route, None) {
            Ok(_) => {
                if let Ok(meta) = std::fs::metadata(path) {
                    sent.store(meta.len(), Ordering::SeqCst);
                }
                return Ok(());
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
        let file = std::fs::File::open(path)
            .map_err(|e| ApiError::Other(format!("open {}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| ApiError::Other(format!("stat {}: {e}", path.display())))?
            .len();
        let url = self.url(&route);
        let counting = CountingReader {
            inner: file,
            count: sent,
        };
        let req = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("Content-Length", len.to_string())
            .header("Content-Type", "application/octet-stream")
            .body(())
            .map_err(|e| ApiError::Other(format!("POST {url}: {e}")))?;
        let (parts, ()) = req.into_parts();
        let req = http::Request::from_parts(parts, ureq::SendBody::from_owned_reader(counting));
        let resp = self
            .agent
            .run(req)
            .map_err(|e| transport_error("POST", &url, e))?;
        let code = resp.status().as_u16();
        let text = read_body(resp, false)?;
        if code >= 400 {
            return Err(status_error(code, None, &text));
        }
        Ok(())
    }
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

fn read_body(resp: http::Response<ureq::Body>, head: bool) -> Result<String, ApiError> {
    if head {
        return Ok(String::new());
    }
    let mut buf = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::Transport {
            refused: false,
            message: format!("reading response: {e}"),
        })?;
    if buf.len() as u64 > MAX_BODY {
        return Err(ApiError::Other("response too large".into()));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Ollama's error from a non-2xx body: the `error` field of a JSON object, else
/// the body itself (e.g. `404 page not found`).
fn status_error(code: u16, status_line: Option<String>, body: &str) -> ApiError {
    let message = match serde_json::from_str::<Value>(body) {
        Ok(v) => v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Err(_) => body.trim_end_matches('\n').to_string(),
    };
    ApiError::Status {
        code,
        status_line,
        message,
    }
}

fn transport_error(method: &str, url: &str, e: ureq::Error) -> ApiError {
    let refused = match &e {
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        ureq::Error::ConnectionFailed => true,
        _ => false,
    };
    let detail = match e {
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    ApiError::Transport {
        refused,
        message: format!("{method} \"{url}\": {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts() {
        let plain = status_error(404, None, "{\"error\":\"model 'x' not found\"}");
        assert_eq!(plain.to_string(), "model 'x' not found");
        assert_eq!(plain.status(), Some(404));
        let streamed = status_error(
            500,
            Some("500 Internal Server Error".into()),
            "{\"error\":\"llama runner process has terminated\"}",
        );
        assert_eq!(
            streamed.to_string(),
            "500 Internal Server Error: llama runner process has terminated"
        );
        assert_eq!(
            status_error(404, None, "404 page not found").to_string(),
            "404 page not found"
        );
        assert_eq!(
            status_error(500, None, "{}").to_string(),
            "something went wrong, please see the ollama server logs for details"
        );
    }
}

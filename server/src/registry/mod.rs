//! Ollama's registry protocol (a Docker Registry v2 subset): `pull` and `push` of
//! models between the local [`Store`] and `<scheme>://<host>/v2/<namespace>/<model>/…`,
//! with Ollama's signed-challenge bearer auth.
//!
//! Everything a registry sends is untrusted: manifests are size-limited and every digest
//! in them is validated before it names a file, downloaded bytes never exceed the size
//! the manifest declares, and a blob only becomes visible in the store (rename of its
//! `-partial` file) after its SHA-256 matched.
//!
//! The client is blocking (ureq): the catalog's long operations already run on blocking
//! threads, and downloads use a few scoped threads for the parts of a blob.

mod auth;
mod pull;
mod push;
mod url;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{self, Response};

use crate::api::{ApiError, ProgressResponse};
use crate::store::{ModelName, Store};

pub use auth::{KeyError, SigningKey};

/// Registry manifests are small (a few hundred bytes); anything bigger is hostile.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The config blob is JSON read whole by the store.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Error bodies and token responses are read into messages; keep them short.
const MAX_SMALL_BODY: u64 = 64 << 10;
/// At most this many layers in a manifest (Ollama models have a handful).
const MAX_LAYERS: usize = 4096;

/// `unauthorized: access denied` (a 401 after a fresh token).
pub const ERR_UNAUTHORIZED: &str = "unauthorized: access denied";
/// The client went away (Go's `context.Canceled`).
pub const ERR_CANCELED: &str = "context canceled";
/// Registry 404 (Go's `os.ErrNotExist`).
pub const ERR_NOT_EXIST: &str = "file does not exist";

/// Receives progress objects (`pulling <id>`, `verifying sha256 digest`, …).
pub type Progress<'a> = &'a mut dyn FnMut(ProgressResponse);

/// Tunables of the registry client; the defaults are Ollama's.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `~/.ollama/id_ed25519`: the key that signs token requests. `None` = no key
    /// (a registry that asks for auth then fails with the key's load error).
    pub key_path: Option<PathBuf>,
    /// Attempts per download part (Ollama: 6).
    pub max_retries: u32,
    /// First retry delay, doubled each retry (Ollama: 1 s).
    pub retry_base: Duration,
    /// A read stalled this long restarts the request (Ollama: 30 s).
    pub stall_timeout: Duration,
    /// Parts downloaded at once (Ollama: 16).
    pub max_parallel: usize,
    /// Download/upload part size bounds (Ollama: total/16 clamped to [100 MB, 1000 MB]).
    pub min_part: u64,
    pub max_part: u64,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            key_path: default_key_path(),
            max_retries: 6,
            retry_base: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(30),
            max_parallel: 16,
            min_part: 100_000_000,
            max_part: 1_000_000_000,
        }
    }
}

/// `$HOME/.ollama/id_ed25519`.
pub fn default_key_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".ollama").join("id_ed25519"))
}

/// A registry client (one per server; cheap to share).
pub struct RegistryClient {
    agent: ureq::Agent,
    opts: RegistryOptions,
    user_agent: String,
}

impl RegistryClient {
    pub fn new(opts: RegistryOptions) -> RegistryClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are resolved by hand: cross-host ones must not carry our token.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(opts.stall_timeout))
            .timeout_per_read(Some(opts.stall_timeout))
            .timeout_per_write(Some(opts.stall_timeout))
            .build();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        RegistryClient {
            agent: ureq::Agent::new_with_config(config),
            user_agent: format!(
                "ollama/{} ({arch} {}) ferrite/{}",
                crate::api::VERSION,
                std::env::consts::OS,
                env!("CARGO_PKG_VERSION")
            ),
            opts,
        }
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    /// `POST /api/pull`: downloads `name` into `store` (see [`pull`](self) docs in
    /// the module). Errors carry the spec's texts; progress goes to `progress`.
    ///
    /// `cancel` (the client went away) stops the transfer with `context canceled`;
    /// partial downloads stay and a later pull resumes them.
    pub fn pull(
        &self,
        store: &Store,
        name: &ModelName,
        insecure: bool,
        cancel: Option<&AtomicBool>,
        progress: Progress<'_>,
    ) -> Result<(), ApiError> {
        let mut session = Session::new(self, name, insecure)?;
        session.cancel = cancel;
        pull::pull(&session, store, name, progress)
    }

    /// `POST /api/push`: uploads `name` from `store` to its registry.
    pub fn push(
        &self,
        store: &Store,
        name: &ModelName,
        insecure: bool,
        cancel: Option<&AtomicBool>,
        progress: Progress<'_>,
    ) -> Result<(), ApiError> {
        let mut session = Session::new(self, name, insecure)?;
        session.cancel = cancel;
        push::push(&session, store, name, progress)
    }
}

/// A request body that can be sent again (after a 401 or a retry).
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`, counted into `sent` as they go.
    File {
        path: &'a std::path::Path,
        offset: u64,
        len: u64,
        sent: Option<&'a dyn Fn(u64)>,
    },
}

/// One operation against one repository: the base URL, and the bearer token once a
/// challenge was answered.
pub(crate) struct Session<'a> {
    client: &'a RegistryClient,
    /// `<scheme>://<host>`.
    base: String,
    /// `<namespace>/<model>`.
    repo: String,
    host: String,
    token: Mutex<Option<String>>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Session<'a> {
    fn new(client: &'a RegistryClient, name: &ModelName, insecure: bool) -> Result<Self, ApiError> {
        let scheme = if insecure { "http" } else { name.scheme() };
        match scheme {
            "https" => {}
            "http" if insecure => {}
            "http" => return Err(ApiError::internal("insecure protocol http")),
            other => {
                return Err(ApiError::internal(format!(
                    "unsupported protocol scheme {}",
                    crate::store::go_quote(other)
                )))
            }
        }
        Ok(Session {
            client,
            base: format!("{scheme}://{}", name.host()),
            repo: format!("{}/{}", name.namespace(), name.model()),
            host: name.host().to_string(),
            token: Mutex::new(None),
            cancel: None,
        })
    }

    /// `context canceled` once the client went away.
    fn check_cancel(&self) -> Result<(), ApiError> {
        match self.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(ApiError::internal(ERR_CANCELED)),
            _ => Ok(()),
        }
    }

    fn opts(&self) -> &RegistryOptions {
        &self.client.opts
    }

    /// `<base>/v2/<namespace>/<model>/<rest>`.
    fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repo)
    }

    /// Sends a request to the registry host with the session's token; on a 401,
    /// answers the challenge once and retries. Other statuses are the caller's.
    fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<Response<ureq::Body>, ApiError> {
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let resp = self.raw(method.clone(), url, headers, body, token.as_deref())?;
        if resp.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        drop(resp);
        let token = auth::token(self, &challenge)?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        let resp = self.raw(method, url, headers, body, Some(&token))?;
        if resp.status() == http::StatusCode::UNAUTHORIZED {
            return Err(ApiError::internal(ERR_UNAUTHORIZED));
        }
        Ok(resp)
    }

    /// One request, no auth handling. `bearer` is sent only to the registry host.
    fn raw(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
        bearer: Option<&str>,
    ) -> Result<Response<ureq::Body>, ApiError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("User-Agent", &self.client.user_agent);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = bearer {
            if url::same_origin(url, &self.base) {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
        }
        let net = |e: ureq::Error| ApiError::internal(format!("{url}: {e}"));
        let result = match body {
            Body::Empty => {
                let req = req.body(()).map_err(|e| bad_url(url, e))?;
                self.client.agent.run(req)
            }
            Body::Bytes(b) => {
                let req = req
                    .header("Content-Length", b.len())
                    .body(*b)
                    .map_err(|e| bad_url(url, e))?;
                self.client.agent.run(req)
            }
            Body::File {
                path,
                offset,
                len,
                sent,
            } => {
                let mut f = std::fs::File::open(path)
                    .map_err(|e| ApiError::internal(format!("open {}: {e}", path.display())))?;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(*offset))
                    .map_err(|e| ApiError::internal(format!("seek {}: {e}", path.display())))?;
                let mut reader = CountingReader {
                    inner: f.take(*len),
                    sent: 0,
                    report: *sent,
                };
                let req = req
                    .header("Content-Length", *len)
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map_err(|e| bad_url(url, e))?;
                self.client.agent.run(req)
            }
        };
        result.map_err(net)
    }
}

fn bad_url(url: &str, e: http::Error) -> ApiError {
    ApiError::internal(format!("parse {}: {e}", crate::store::go_quote(url)))
}

/// Reports bytes sent while a file part is uploaded.
struct CountingReader<'a, R> {
    inner: R,
    sent: u64,
    report: Option<&'a dyn Fn(u64)>,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        if let Some(r) = self.report {
            r(self.sent);
        }
        Ok(n)
    }
}

/// Reads at most `limit` bytes of a body (lossy text for messages).
fn read_small(resp: Response<ureq::Body>, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::internal(format!("read registry response: {e}")))?;
    Ok(out)
}

/// Ollama's mapping of a failed registry response: 404 → `file does not exist`, else
/// `<code>: <body>`.
fn status_error(resp: Response<ureq::Body>) -> ApiError {
    let code = resp.status().as_u16();
    if code == 404 {
        return ApiError::internal(ERR_NOT_EXIST);
    }
    let body = read_small(resp, MAX_SMALL_BODY).unwrap_or_default();
    let body = String::from_utf8_lossy(&body);
    ApiError::internal(format!("{code}: {}", body.trim_end()))
}

/// Errors a retry cannot fix: client errors (4xx, `file does not exist`), refused
/// auth, a cancelled request, a bad upload location.
fn permanent(e: &ApiError) -> bool {
    let m = e.message.as_str();
    m.starts_with('4')
        || m == ERR_UNAUTHORIZED
        || m == ERR_NOT_EXIST
        || m == ERR_CANCELED
        || m.starts_with("realm host")
        || m.starts_with("bad ")
}

/// Part size for a blob: total/16 clamped to the options' bounds (never 0).
fn part_size(opts: &RegistryOptions, total: u64) -> u64 {
    (total / 16).clamp(
        opts.min_part.max(1),
        opts.max_part.max(opts.min_part.max(1)),
    )
}

/// Location for the next upload request: `Docker-Upload-Location`, else `Location`.
fn upload_location(resp: &Response<ureq::Body>) -> Option<String> {
    let h = resp.headers();
    ["docker-upload-location", "location"]
        .iter()
        .find_map(|k| h.get(*k)?.to_str().ok().filter(|v| !v.is_empty()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_follow_ollama() {
        let o = RegistryOptions::default();
        assert_eq!(part_size(&o, 10), 100_000_000);
        assert_eq!(part_size(&o, 3_200_000_000), 200_000_000);
        assert_eq!(part_size(&o, 160_000_000_000), 1_000_000_000);
    }

    #[test]
    fn only_transient_errors_are_retried() {
        for m in ["403: denied", ERR_UNAUTHORIZED, ERR_NOT_EXIST, ERR_CANCELED] {
            assert!(permanent(&ApiError::internal(m)), "{m}");
        }
        for m in [
            "503: busy",
            "http://h/x: io: Connection reset by peer (os error 104)",
        ] {
            assert!(!permanent(&ApiError::internal(m)), "{m}");
        }
    }

    #[test]
    fn http_needs_insecure() {
        let client = RegistryClient::new(RegistryOptions::default());
        let name = ModelName::parse("http://localhost:5000/ns/m:1").unwrap();
        let e = Session::new(&client, &name, false).err().unwrap();
        assert_eq!(e.message, "insecure protocol http");
        let s = Session::new(&client, &name, true).unwrap();
        assert_eq!(
            s.url("manifests/1"),
            "http://localhost:5000/v2/ns/m/manifests/1"
        );
        let name = ModelName::parse("llama3.2").unwrap();
        let s = Session::new(&client, &name, false).unwrap();
        assert_eq!(
            s.url("manifests/latest"),
            "https://registry.ollama.ai/v2/library/llama3.2/manifests/latest"
        );
    }
}

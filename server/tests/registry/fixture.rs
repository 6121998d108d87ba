//! An in-process registry implementing the registry side of Ollama's protocol
//! (store-and-registry.md §5): manifests, ranged blob downloads, chunked uploads with
//! cross-repo mounts and Ollama's `X-Redirect-Uploads` object-storage redirects, and
//! the signed-challenge token endpoint. It is a test fixture: the client under test is
//! ferrite's real registry client talking HTTP to it.
//!
//! It records every request and can misbehave on purpose (cut blob downloads short,
//! serve corrupted bytes, demand auth).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// How the fixture misbehaves.
#[derive(Default, Clone)]
pub struct Faults {
    /// Blob GETs send this many bytes of their range, then drop the connection…
    pub cut_after: Option<u64>,
    /// …for this many requests (then behave).
    pub cuts_left: usize,
    /// Once the cuts are used up, answer blob GETs with 503 instead of behaving.
    pub then_fail: bool,
    /// Answer this many blob GETs with 503 first.
    pub fail_gets: usize,
    /// Send blob bodies in 64 KiB pieces with this pause between them.
    pub throttle: Option<std::time::Duration>,
    /// Blobs served with their first byte flipped.
    pub corrupt: HashSet<String>,
    /// Require `Authorization: Bearer` (401 with a challenge otherwise).
    pub auth: bool,
    /// Realm host in the challenge (defaults to the fixture's own address).
    pub realm_host: Option<String>,
    /// Answer `PATCH` with `X-Redirect-Uploads: 1` by a 307 to "object storage" on
    /// another origin (`localhost` instead of `127.0.0.1`).
    pub redirect_uploads: bool,
}

#[derive(Default)]
pub struct Registry {
    pub manifests: Mutex<HashMap<(String, String), Vec<u8>>>,
    pub blobs: Mutex<HashMap<String, Bytes>>,
    /// Which repositories hold which blobs (mounts add to it).
    pub repo_blobs: Mutex<HashSet<(String, String)>>,
    uploads: Mutex<HashMap<String, Vec<u8>>>,
    next_upload: Mutex<u64>,
    /// `METHOD path?query [range]` of every request, in order.
    pub log: Mutex<Vec<String>>,
    /// Blob bytes sent, per digest.
    pub served: Mutex<HashMap<String, u64>>,
    /// Bytes of throttled bodies actually produced.
    pub streamed: Mutex<u64>,
    pub faults: Mutex<Faults>,
    /// Public key (authorized-key base64) the token endpoint accepts.
    pub trusted_key: Mutex<Option<String>>,
    tokens: Mutex<HashSet<String>>,
    /// Authorization headers that reached the storage endpoint (must be none).
    pub storage_auth: Mutex<Vec<String>>,
    pub addr: Mutex<Option<SocketAddr>>,
}

impl Registry {
    /// Seeds a model: blobs (digest computed here unless given) and a manifest.
    pub fn seed_blob(&self, repo: &str, bytes: Vec<u8>) -> String {
        let d = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        self.blobs
            .lock()
            .unwrap()
            .insert(d.clone(), Bytes::from(bytes));
        self.repo_blobs
            .lock()
            .unwrap()
            .insert((repo.to_string(), d.clone()));
        d
    }

    pub fn seed_manifest(&self, repo: &str, tag: &str, bytes: Vec<u8>) {
        self.manifests
            .lock()
            .unwrap()
            .insert((repo.to_string(), tag.to_string()), bytes);
    }

    pub fn manifest(&self, repo: &str, tag: &str) -> Option<Vec<u8>> {
        self.manifests
            .lock()
            .unwrap()
            .get(&(repo.to_string(), tag.to_string()))
            .cloned()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
        self.served.lock().unwrap().clear();
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr.lock().unwrap().unwrap())
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub struct Fixture {
    pub addr: SocketAddr,
    pub reg: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    pub fn start() -> Fixture {
        let reg = Arc::new(Registry::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let r = reg.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                *r.addr.lock().unwrap() = Some(addr);
                tx.send(addr).unwrap();
                let app = Router::new()
                    .route("/token", get(token))
                    .route(
                        "/v2/{ns}/{model}/manifests/{tag}",
                        get(manifest_get).head(manifest_get).put(manifest_put),
                    )
                    .route("/v2/{ns}/{model}/blobs/uploads/", post(upload_start))
                    .route(
                        "/v2/{ns}/{model}/blobs/uploads/{id}",
                        put(upload_finish).patch(upload_patch),
                    )
                    .route(
                        "/v2/{ns}/{model}/blobs/{digest}",
                        get(blob_get).head(blob_get),
                    )
                    .route("/storage/{id}/{start}", put(storage_put))
                    .layer(axum::middleware::from_fn_with_state(r.clone(), gate))
                    .layer(axum::extract::DefaultBodyLimit::disable())
                    .with_state(r);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Fixture {
            addr,
            reg,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`, the host part of model names on this registry.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.reg.faults.lock().unwrap());
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Reg = State<Arc<Registry>>;

fn status(code: StatusCode, body: &str) -> Response {
    (code, body.to_string()).into_response()
}

fn registry_error(code: StatusCode, err: &str) -> Response {
    (
        code,
        [("content-type", "application/json")],
        format!(r#"{{"errors":[{{"code":"{err}","message":"{err}"}}]}}"#),
    )
        .into_response()
}

/// Logs every request; enforces bearer auth on `/v2/` when asked.
async fn gate(State(reg): Reg, req: Request, next: axum::middleware::Next) -> Response {
    let range = req
        .headers()
        .get("range")
        .map(|v| format!(" {}", v.to_str().unwrap_or("")))
        .unwrap_or_default();
    let line = format!("{} {}{range}", req.method(), req.uri());
    reg.log.lock().unwrap().push(line);
    let faults = reg.faults.lock().unwrap().clone();
    if faults.auth && req.uri().path().starts_with("/v2/") {
        let ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| reg.tokens.lock().unwrap().contains(t));
        if !ok {
            let realm_host = faults
                .realm_host
                .unwrap_or_else(|| reg.addr.lock().unwrap().unwrap().to_string());
            let parts: Vec<&str> = req.uri().path().split('/').collect();
            let scope = format!("repository:{}/{}:pull,push", parts[2], parts[3]);
            let challenge = format!(
                r#"Bearer realm="http://{realm_host}/token",service="fixture",scope="{scope}""#
            );
            let mut resp = registry_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            resp.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_str(&challenge).unwrap(),
            );
            return resp;
        }
    }
    next.run(req).await
}

/// Verifies `Authorization: <pubkey>:<sig>` over `GET,<url>,<base64(hex(sha256("")))>`.
async fn token(State(reg): Reg, headers: HeaderMap, req: Request) -> Response {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return status(StatusCode::UNAUTHORIZED, "no signature");
    };
    let Some((pubkey, sig)) = auth.split_once(':') else {
        return status(StatusCode::UNAUTHORIZED, "bad signature header");
    };
    if reg.trusted_key.lock().unwrap().as_deref() != Some(pubkey) {
        return status(StatusCode::UNAUTHORIZED, "unknown key");
    }
    let url = format!("{}{}", reg.base(), req.uri());
    let empty = hex(&Sha256::digest(b""));
    let data = format!("GET,{url},{}", STANDARD.encode(empty));
    let wire = STANDARD.decode(pubkey).unwrap();
    let raw_pk = &wire[wire.len() - 32..];
    let sig = STANDARD.decode(sig).unwrap_or_default();
    if ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw_pk)
        .verify(data.as_bytes(), &sig)
        .is_err()
    {
        return status(StatusCode::UNAUTHORIZED, "bad signature");
    }
    let q = req.uri().query().unwrap_or("");
    for k in ["service=fixture", "scope=repository", "ts=", "nonce="] {
        if !q.contains(k) {
            return status(StatusCode::BAD_REQUEST, &format!("missing {k}"));
        }
    }
    let t = format!("tok{}", reg.tokens.lock().unwrap().len());
    reg.tokens.lock().unwrap().insert(t.clone());
    (
        [("content-type", "application/json")],
        format!(r#"{{"token":"{t}"}}"#),
    )
        .into_response()
}

async fn manifest_get(
    State(reg): Reg,
    Path((ns, model, tag)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accept.contains(MANIFEST_TYPE) {
        return registry_error(StatusCode::NOT_ACCEPTABLE, "MANIFEST_UNKNOWN");
    }
    match reg.manifest(&format!("{ns}/{model}"), &tag) {
        Some(m) => ([("content-type", MANIFEST_TYPE)], m).into_response(),
        None => registry_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
    }
}

async fn manifest_put(
    State(reg): Reg,
    Path((ns, model, tag)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some(MANIFEST_TYPE) {
        return registry_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    }
    let Ok(m) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return registry_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    };
    let repo = format!("{ns}/{model}");
    let mut digests: Vec<String> = m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["digest"].as_str().unwrap_or("").to_string())
        .collect();
    digests.push(m["config"]["digest"].as_str().unwrap_or("").to_string());
    let have = reg.repo_blobs.lock().unwrap();
    if digests
        .iter()
        .any(|d| !have.contains(&(repo.clone(), d.clone())))
    {
        return registry_error(StatusCode::BAD_REQUEST, "BLOB_UNKNOWN");
    }
    drop(have);
    reg.seed_manifest(&repo, &tag, body.to_vec());
    StatusCode::CREATED.into_response()
}

async fn blob_get(
    State(reg): Reg,
    Path((ns, model, digest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let repo = format!("{ns}/{model}");
    if !reg
        .repo_blobs
        .lock()
        .unwrap()
        .contains(&(repo, digest.clone()))
    {
        return registry_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    }
    let Some(mut data) = reg.blobs.lock().unwrap().get(&digest).cloned() else {
        return registry_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    };
    let mut faults = reg.faults.lock().unwrap();
    if faults.corrupt.contains(&digest) && !data.is_empty() {
        let mut v = data.to_vec();
        v[0] ^= 0xff;
        data = Bytes::from(v);
    }
    let total = data.len() as u64;
    if method == Method::HEAD {
        return ([("content-length", total.to_string())], Body::empty()).into_response();
    }
    let (start, end, partial) = match headers.get("range").and_then(|v| v.to_str().ok()) {
        Some(r) => {
            let r = r.strip_prefix("bytes=").unwrap_or("");
            let (a, b) = r.split_once('-').unwrap_or(("", ""));
            let a: u64 = a.parse().unwrap_or(0);
            let b: u64 = b
                .parse()
                .unwrap_or(total.saturating_sub(1))
                .min(total.saturating_sub(1));
            if a > b || a >= total {
                return status(StatusCode::RANGE_NOT_SATISFIABLE, "bad range");
            }
            (a, b, true)
        }
        None => (0, total.saturating_sub(1), false),
    };
    let slice = if total == 0 {
        Bytes::new()
    } else {
        data.slice(start as usize..=end as usize)
    };
    let len = slice.len() as u64;
    if faults.fail_gets > 0 {
        faults.fail_gets -= 1;
        return status(StatusCode::SERVICE_UNAVAILABLE, "warming up");
    }
    if faults.cut_after.is_some() && faults.cuts_left == 0 && faults.then_fail {
        return status(StatusCode::SERVICE_UNAVAILABLE, "try later");
    }
    let cut = match faults.cut_after {
        Some(n) if faults.cuts_left > 0 && n < len => {
            faults.cuts_left -= 1;
            Some(n)
        }
        _ => None,
    };
    drop(faults);
    let sent = cut.unwrap_or(len);
    *reg.served.lock().unwrap().entry(digest).or_default() += sent;
    let throttle = reg.faults.lock().unwrap().throttle;
    let body = match cut {
        None if throttle.is_some() => {
            let pause = throttle.unwrap();
            let reg = reg.clone();
            let pieces: Vec<Bytes> = (0..slice.len())
                .step_by(64 << 10)
                .map(|i| slice.slice(i..(i + (64 << 10)).min(slice.len())))
                .collect();
            // Count what actually leaves, so a hang-up shows in `streamed`.
            Body::from_stream(futures_util::StreamExt::then(
                futures_util::stream::iter(pieces),
                move |p| {
                    let reg = reg.clone();
                    async move {
                        tokio::time::sleep(pause).await;
                        *reg.streamed.lock().unwrap() += p.len() as u64;
                        Ok::<Bytes, std::io::Error>(p)
                    }
                },
            ))
        }
        // Promise the whole range, send part of it, then fail the stream: the
        // connection drops mid-body.
        Some(n) => {
            let head = slice.slice(..n as usize);
            let head = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(head)]);
            // Let the bytes reach the client before the connection drops.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Err(std::io::Error::other("cut"))
            });
            Body::from_stream(futures_util::StreamExt::chain(head, cut))
        }
        None => Body::from(slice),
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert("content-length", HeaderValue::from(len));
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        resp.headers_mut().insert(
            "content-range",
            HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")).unwrap(),
        );
    }
    resp
}

async fn upload_start(
    State(reg): Reg,
    Path((ns, model)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let repo = format!("{ns}/{model}");
    if let (Some(d), Some(from)) = (q.get("mount"), q.get("from")) {
        let mut have = reg.repo_blobs.lock().unwrap();
        if have.contains(&(from.clone(), d.clone())) {
            have.insert((repo, d.clone()));
            return StatusCode::CREATED.into_response();
        }
    }
    let id = {
        let mut n = reg.next_upload.lock().unwrap();
        *n += 1;
        format!("u{n}")
    };
    reg.uploads.lock().unwrap().insert(id.clone(), Vec::new());
    // A relative location, as registry:2 answers.
    (
        StatusCode::ACCEPTED,
        [(
            "location",
            format!("/v2/{ns}/{model}/blobs/uploads/{id}?_state=s0"),
        )],
    )
        .into_response()
}

fn parse_range(headers: &HeaderMap) -> Option<(u64, u64)> {
    let r = headers.get("content-range")?.to_str().ok()?;
    let (a, b) = r.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

async fn upload_patch(
    State(reg): Reg,
    Path((ns, model, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((start, end)) = parse_range(&headers) else {
        return status(StatusCode::BAD_REQUEST, "missing content-range");
    };
    let next = format!("/v2/{ns}/{model}/blobs/uploads/{id}?_state=s{}", end + 1);
    let redirect =
        reg.faults.lock().unwrap().redirect_uploads && headers.get("x-redirect-uploads").is_some();
    if redirect {
        let port = reg.addr.lock().unwrap().unwrap().port();
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [
                (
                    "location",
                    format!("http://localhost:{port}/storage/{id}/{start}"),
                ),
                ("docker-upload-location", next),
            ],
        )
            .into_response();
    }
    let mut uploads = reg.uploads.lock().unwrap();
    let Some(buf) = uploads.get_mut(&id) else {
        return registry_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    };
    if start != buf.len() as u64 || end + 1 - start != body.len() as u64 {
        return status(StatusCode::RANGE_NOT_SATISFIABLE, "out of order");
    }
    buf.extend_from_slice(&body);
    (StatusCode::ACCEPTED, [("location", next)]).into_response()
}

async fn storage_put(
    State(reg): Reg,
    Path((id, start)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(a) = headers.get("authorization") {
        reg.storage_auth
            .lock()
            .unwrap()
            .push(a.to_str().unwrap_or("").to_string());
    }
    let mut uploads = reg.uploads.lock().unwrap();
    let Some(buf) = uploads.get_mut(&id) else {
        return status(StatusCode::NOT_FOUND, "no such upload");
    };
    if start != buf.len() as u64 {
        return status(StatusCode::BAD_REQUEST, "out of order");
    }
    buf.extend_from_slice(&body);
    StatusCode::OK.into_response()
}

async fn upload_finish(
    State(reg): Reg,
    Path((ns, model, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(data) = reg.uploads.lock().unwrap().remove(&id) else {
        return registry_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    };
    let d = format!("sha256:{}", hex(&Sha256::digest(&data)));
    if q.get("digest") != Some(&d) {
        return registry_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    }
    if !q.get("etag").is_some_and(|e| e.contains('-')) {
        return status(StatusCode::BAD_REQUEST, "missing etag");
    }
    reg.seed_blob(&format!("{ns}/{model}"), data);
    StatusCode::CREATED.into_response()
}

//! The HTTP server: Ollama's native `/api/*` routes, the OpenAI-compatible `/v1/*` layer,
//! CORS and the Host-header guard.

mod guard;
mod infer;
mod native;
mod openai;
mod think;
mod tools;

pub use guard::{Origins, ALLOWED_HEADERS};

use crate::api::ApiError;
use crate::catalog::{Catalog, PromptRenderer};
use crate::config::Config;
use crate::runner::{Runner, RunnerConfig};
use crate::sched::{LoadFn, SchedConfig, Scheduler};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, head, post};
use axum::Router;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// JSON request bodies larger than this are refused (413); blob uploads are streamed and
/// not limited.
pub const MAX_JSON_BODY: usize = 256 << 20;

/// Everything a handler needs.
pub struct Shared {
    pub config: Config,
    pub catalog: Arc<dyn Catalog>,
    pub renderer: Arc<dyn PromptRenderer>,
    pub sched: Arc<Scheduler<Runner>>,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// The real scheduler: models are loaded as [`Runner`]s with `OLLAMA_NUM_PARALLEL` slots.
    pub fn new(
        config: Config,
        catalog: Arc<dyn Catalog>,
        renderer: Arc<dyn PromptRenderer>,
    ) -> Shared {
        let num_parallel = config.num_parallel;
        let gpu_overhead = config.gpu_overhead;
        let loader: LoadFn<Runner> = Arc::new(move |spec| {
            Runner::load(
                &spec.path,
                &RunnerConfig {
                    num_parallel,
                    num_ctx: spec.num_ctx,
                    num_batch: spec.num_batch,
                    threads: spec.num_thread,
                    num_gpu: spec.num_gpu,
                    gpu_overhead,
                },
            )
        });
        let sched = Scheduler::new(
            SchedConfig {
                max_loaded: config.max_loaded_models,
                max_queue: config.max_queue,
                default_keep_alive: config.keep_alive,
                load_timeout: config.load_timeout,
            },
            loader,
        );
        Shared {
            config,
            catalog,
            renderer,
            sched,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &serde_json::json!({ "error": self.message }))
    }
}

/// `application/json; charset=utf-8`, as Go's gin writes it.
pub(crate) fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    let body =
        serde_json::to_vec(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Reads a JSON body like Go's decoder: empty → `missing request body`; only the first JSON
/// value is read; `null` is an empty object.
pub(crate) async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = read_body(body).await?;
    parse_json(&bytes)
}

pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            if too_large {
                ApiError::new(
                    413,
                    format!("request body is larger than {MAX_JSON_BODY} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err(ApiError::bad_request("missing request body"));
    }
    // Decoded straight from the bytes (no intermediate `Value`) so that types which keep
    // key order see it; like Go's decoder only the first value counts, `null` is `{}`.
    let text: &[u8] = if text == b"null" { b"{}" } else { text };
    let mut de = serde_json::Deserializer::from_slice(text);
    T::deserialize(&mut de).map_err(|e| ApiError::bad_request(decode_message(&e)))
}

/// serde_json's message without its " at line L column C" suffix.
fn decode_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) if e.line() > 0 => msg[..i].to_string(),
        _ => msg,
    }
}

/// Runs blocking catalog work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("internal task failed: {e}"))))
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "404 page not found")
}

async fn method_not_allowed() -> Response {
    plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed")
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// All routes, with CORS and the Host guard for a server bound to `bound`.
pub fn router(state: AppState, bound: SocketAddr) -> Router {
    let guard_cfg = Arc::new(guard::GuardConfig {
        origins: Origins::new(&state.config.origins),
        bound,
        hostname: guard::local_hostname(),
    });
    Router::new()
        .route("/", get(native::root))
        .route("/api/version", get(native::version))
        .route("/api/status", get(native::status))
        .route("/api/generate", post(native::generate))
        .route("/api/chat", post(native::chat))
        .route("/api/embed", post(native::embed))
        .route("/api/embeddings", post(native::embeddings))
        .route("/api/ps", get(native::ps))
        .route("/api/tags", get(native::tags))
        .route("/api/show", post(native::show))
        .route("/api/copy", post(native::copy))
        .route("/api/delete", delete(native::delete_model))
        .route("/api/create", post(native::create))
        .route("/api/pull", post(native::pull))
        .route("/api/push", post(native::push))
        .route(
            "/api/blobs/{digest}",
            head(native::blob_head).post(native::blob_post),
        )
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*model}", get(openai::model))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            guard_cfg,
            guard::guard,
        ))
        .with_state(state)
}

/// A server bound to its address, not yet accepting.
pub struct Bound {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
}

impl Bound {
    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then unloads idle models.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = router(self.state.clone(), self.addr);
        let sched = self.state.sched.clone();
        let out = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        sched.unload_idle();
        out
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}

/// Binds `addr` (port 0 picks a free port) with a fresh scheduler.
pub async fn bind(
    config: Config,
    catalog: Arc<dyn Catalog>,
    renderer: Arc<dyn PromptRenderer>,
    addr: SocketAddr,
) -> std::io::Result<Bound> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok(Bound {
        listener,
        state: Arc::new(Shared::new(config, catalog, renderer)),
        addr,
    })
}

/// Serves on `OLLAMA_HOST` until `shutdown` completes.
pub async fn serve(
    config: Config,
    catalog: Arc<dyn Catalog>,
    renderer: Arc<dyn PromptRenderer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = config
        .host
        .bind_addr()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let bound = bind(config, catalog, renderer, addr).await?;
    eprintln!(
        "Listening on {} (version {})",
        bound.local_addr(),
        crate::api::VERSION
    );
    bound.run_until(shutdown).await
}

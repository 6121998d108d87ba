//! Native `/api/*` handlers.

use super::infer::{self, Generation, Outcome, Piece};
use super::{blocking, json_response, plain, read_json, AppState};
use crate::api::time::rfc3339_nano;
use crate::api::{
    ApiError, ChatRequest, ChatResponse, CopyRequest, CreateRequest, DeleteRequest, EmbedRequest,
    EmbeddingsRequest, GenerateRequest, GenerateResponse, ListResponse, Message, ProcessResponse,
    ProgressResponse, PullRequest, ShowRequest, VersionResponse, VERSION,
};
use crate::catalog::Progress;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;
use std::convert::Infallible;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;

type HandlerResult = Result<Response, ApiError>;

pub(crate) fn now() -> String {
    rfc3339_nano(SystemTime::now())
}

fn line(v: &impl serde::Serialize) -> Bytes {
    let mut b =
        serde_json::to_vec(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    b.push(b'\n');
    Bytes::from(b)
}

fn error_line(msg: &str) -> Bytes {
    line(&serde_json::json!({ "error": msg }))
}

/// A 200 NDJSON response from a stream of lines.
fn ndjson(stream: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Response {
    let mut resp = Response::new(Body::from_stream(stream.map(Ok::<Bytes, Infallible>)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

pub(crate) async fn root() -> Response {
    plain(StatusCode::OK, "Ollama is running")
}

pub(crate) async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &VersionResponse {
            version: VERSION.to_string(),
        },
    )
}

/// Cloud features are never used by this server; `OLLAMA_NO_CLOUD` only changes the report.
pub(crate) async fn status(State(st): State<AppState>) -> Response {
    let disabled = st.config.no_cloud;
    json_response(
        StatusCode::OK,
        &serde_json::json!({"cloud": {"disabled": disabled, "source": if disabled { "env" } else { "none" }}}),
    )
}

fn gen_chunk(model: &str, piece: Piece) -> Result<GenerateResponse, String> {
    let mut r = GenerateResponse {
        model: model.to_string(),
        created_at: now(),
        ..Default::default()
    };
    match piece {
        Piece::Text {
            content,
            thinking,
            tool_calls,
            logprobs,
        } => {
            r.response = content;
            r.thinking = thinking;
            r.tool_calls = tool_calls;
            r.logprobs = logprobs;
        }
        Piece::Done {
            done_reason,
            metrics,
            context,
        } => {
            r.done = true;
            r.done_reason = done_reason.to_string();
            r.metrics = metrics;
            r.context = context;
        }
        Piece::Error(e) => return Err(e),
    }
    Ok(r)
}

fn chat_chunk(model: &str, piece: Piece) -> Result<ChatResponse, String> {
    let mut r = ChatResponse {
        model: model.to_string(),
        created_at: now(),
        message: Message::new("assistant", ""),
        ..Default::default()
    };
    match piece {
        Piece::Text {
            content,
            thinking,
            tool_calls,
            logprobs,
        } => {
            r.message.content = content;
            r.message.thinking = thinking;
            r.message.tool_calls = tool_calls;
            r.logprobs = logprobs;
        }
        Piece::Done {
            done_reason,
            metrics,
            ..
        } => {
            r.done = true;
            r.done_reason = done_reason.to_string();
            r.metrics = metrics;
        }
        Piece::Error(e) => return Err(e),
    }
    Ok(r)
}

/// Streams a generation as NDJSON lines built by `chunk`.
fn stream_generation<T: serde::Serialize + Send + 'static>(
    gen: Generation,
    model: String,
    chunk: fn(&str, Piece) -> Result<T, String>,
) -> Response {
    let s = futures_util::stream::unfold(Some(gen), move |gen| {
        let model = model.clone();
        async move {
            let mut gen = gen?;
            let piece = gen.next().await?;
            match chunk(&model, piece) {
                Ok(c) => Some((line(&c), Some(gen))),
                Err(e) => Some((error_line(&e), None)),
            }
        }
    });
    ndjson(s)
}

pub(crate) async fn generate(State(st): State<AppState>, body: Body) -> HandlerResult {
    let started = Instant::now();
    let req: GenerateRequest = read_json(body).await?;
    let model = req.model.clone();
    let stream = req.stream.unwrap_or(true);
    match infer::start_generate(&st, req, started).await? {
        Outcome::Loaded(reason) => Ok(json_response(
            StatusCode::OK,
            &GenerateResponse {
                model,
                created_at: now(),
                done: true,
                done_reason: reason.to_string(),
                ..Default::default()
            },
        )),
        Outcome::Debug(info) => Ok(json_response(
            StatusCode::OK,
            &GenerateResponse {
                model,
                created_at: now(),
                done: true,
                debug_info: Some(info),
                ..Default::default()
            },
        )),
        Outcome::Run(mut gen) => {
            gen.first().await?;
            if stream {
                return Ok(stream_generation(*gen, model, gen_chunk));
            }
            let (mut text, mut thinking, mut lps) = (String::new(), String::new(), Vec::new());
            while let Some(piece) = gen.next().await {
                match piece {
                    Piece::Text {
                        content,
                        thinking: t,
                        logprobs,
                        ..
                    } => {
                        text.push_str(&content);
                        thinking.push_str(&t);
                        lps.extend(logprobs);
                    }
                    Piece::Error(e) => return Err(ApiError::internal(e)),
                    done @ Piece::Done { .. } => {
                        let mut r = gen_chunk(&model, done).map_err(ApiError::internal)?;
                        r.response = text;
                        r.thinking = thinking;
                        r.logprobs = lps;
                        return Ok(json_response(StatusCode::OK, &r));
                    }
                }
            }
            Err(ApiError::internal("the generation ended without a result"))
        }
    }
}

pub(crate) async fn chat(State(st): State<AppState>, body: Body) -> HandlerResult {
    let started = Instant::now();
    let req: ChatRequest = read_json(body).await?;
    let model = req.model.clone();
    let stream = req.stream.unwrap_or(true);
    match infer::start_chat(&st, req, started).await? {
        Outcome::Loaded(reason) => Ok(json_response(
            StatusCode::OK,
            &ChatResponse {
                model,
                created_at: now(),
                message: Message::new("assistant", ""),
                done: true,
                done_reason: reason.to_string(),
                ..Default::default()
            },
        )),
        Outcome::Debug(info) => Ok(json_response(
            StatusCode::OK,
            &ChatResponse {
                model,
                created_at: now(),
                message: Message::new("assistant", ""),
                done: true,
                debug_info: Some(info),
                ..Default::default()
            },
        )),
        Outcome::Run(mut gen) => {
            gen.first().await?;
            if stream {
                return Ok(stream_generation(*gen, model, chat_chunk));
            }
            let (mut text, mut thinking, mut calls, mut lps) =
                (String::new(), String::new(), Vec::new(), Vec::new());
            while let Some(piece) = gen.next().await {
                match piece {
                    Piece::Text {
                        content,
                        thinking: t,
                        tool_calls,
                        logprobs,
                    } => {
                        text.push_str(&content);
                        thinking.push_str(&t);
                        calls.extend(tool_calls);
                        lps.extend(logprobs);
                    }
                    Piece::Error(e) => return Err(ApiError::internal(e)),
                    done @ Piece::Done { .. } => {
                        let mut r = chat_chunk(&model, done).map_err(ApiError::internal)?;
                        r.message.content = text;
                        r.message.thinking = thinking;
                        r.message.tool_calls = calls;
                        r.logprobs = lps;
                        return Ok(json_response(StatusCode::OK, &r));
                    }
                }
            }
            Err(ApiError::internal("the generation ended without a result"))
        }
    }
}

/// `input` as a list of strings (`invalid input type` otherwise).
pub(crate) fn embed_inputs(input: &Value) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::bad_request("invalid input type");
    match input {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// Embedding needs an embedding model; the engine has no encoder graph yet.
pub(crate) async fn embed_model_check(st: &AppState, name: &str) -> Result<(), ApiError> {
    let model = infer::resolve(st, name).await?;
    if !model.has_capability("embedding") {
        return Err(ApiError::bad_request(format!(
            "{} does not support embeddings",
            serde_json::to_string(name).unwrap_or_default()
        )));
    }
    Err(ApiError::new(
        501,
        "embedding models are not supported by this server yet",
    ))
}

pub(crate) async fn embed(State(st): State<AppState>, body: Body) -> HandlerResult {
    let req: EmbedRequest = read_json(body).await?;
    if req.model.is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    embed_inputs(&req.input)?;
    embed_model_check(&st, &req.model).await?;
    Err(ApiError::internal("unreachable: embedding check passed"))
}

pub(crate) async fn embeddings(State(st): State<AppState>, body: Body) -> HandlerResult {
    let req: EmbeddingsRequest = read_json(body).await?;
    if req.model.is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    match embed_model_check(&st, &req.model).await {
        Err(e) if e.status == 404 => Err(ApiError::not_found(format!(
            "model {} not found, try pulling it first",
            serde_json::to_string(&req.model).unwrap_or_default()
        ))),
        Err(e) => Err(e),
        Ok(()) => Err(ApiError::internal("unreachable: embedding check passed")),
    }
}

pub(crate) async fn ps(State(st): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &ProcessResponse {
            models: st.sched.ps(),
        },
    )
}

pub(crate) async fn tags(State(st): State<AppState>) -> HandlerResult {
    let catalog = st.catalog.clone();
    let list = blocking(move || catalog.list()).await?;
    Ok(json_response(
        StatusCode::OK,
        &ListResponse {
            models: list.iter().map(|m| m.to_list_model()).collect(),
        },
    ))
}

pub(crate) async fn show(State(st): State<AppState>, body: Body) -> HandlerResult {
    let mut req: ShowRequest = read_json(body).await?;
    if req.model.is_empty() {
        req.model = std::mem::take(&mut req.name);
    }
    if req.model.is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    let catalog = st.catalog.clone();
    let v = blocking(move || catalog.show(&req)).await?;
    Ok(json_response(StatusCode::OK, &v))
}

fn empty_ok() -> Response {
    (StatusCode::OK, Body::empty()).into_response()
}

pub(crate) async fn copy(State(st): State<AppState>, body: Body) -> HandlerResult {
    let req: CopyRequest = read_json(body).await?;
    let catalog = st.catalog.clone();
    blocking(move || catalog.copy(&req.source, &req.destination)).await?;
    Ok(empty_ok())
}

pub(crate) async fn delete_model(State(st): State<AppState>, body: Body) -> HandlerResult {
    let req: DeleteRequest = read_json(body).await?;
    let name = if req.model.is_empty() {
        req.name
    } else {
        req.model
    };
    let catalog = st.catalog.clone();
    blocking(move || catalog.delete(&name)).await?;
    Ok(empty_ok())
}

/// Runs a long catalog operation on a blocking thread and answers with its progress lines
/// (`stream`) or its last line; a final `success` line is added on success.
fn progress_response<F>(
    stream: bool,
    early_errors: bool,
    cancel: Option<Arc<AtomicBool>>,
    work: F,
) -> impl std::future::Future<Output = HandlerResult>
where
    F: FnOnce(Progress<'_>) -> Result<(), ApiError> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<ProgressResponse, ApiError>>();
    tokio::task::spawn_blocking(move || {
        let progress_tx = tx.clone();
        let mut report = move |p: ProgressResponse| {
            // The receiver is gone only when the client is.
            if progress_tx.send(Ok(p)).is_err() {
                if let Some(c) = &cancel {
                    c.store(true, Ordering::Relaxed);
                }
            }
        };
        let result = work(&mut report);
        let _ = tx.send(result.map(|()| ProgressResponse::status("success")));
    });
    async move {
        if stream {
            // With `early_errors`, an error before any progress is a plain error
            // response with its status (Ollama's streamResponse for pull/push: 400
            // `invalid model name`, 500 `insecure protocol http`).
            let head = if early_errors {
                match rx.recv().await {
                    Some(Err(e)) => return Err(e),
                    Some(Ok(p)) => Some(line(&p)),
                    None => None,
                }
            } else {
                None
            };
            let head = futures_util::stream::iter(head);
            let s = futures_util::stream::unfold(Some(rx), |rx| async move {
                let mut rx = rx?;
                match rx.recv().await? {
                    Ok(p) => Some((line(&p), Some(rx))),
                    Err(e) => Some((error_line(&e.message), None)),
                }
            });
            return Ok(ndjson(head.chain(s)));
        }
        let mut last = None;
        while let Some(item) = rx.recv().await {
            last = Some(item?);
        }
        match last {
            Some(p) => Ok(json_response(StatusCode::OK, &p)),
            None => Err(ApiError::internal("the operation ended without a result")),
        }
    }
}

pub(crate) async fn create(State(st): State<AppState>, body: Body) -> HandlerResult {
    let req: CreateRequest = read_json(body).await?;
    let stream = req.stream.unwrap_or(true);
    let catalog = st.catalog.clone();
    catalog.check_create(&req)?;
    progress_response(stream, false, None, move |p| catalog.create(&req, p)).await
}

pub(crate) async fn pull(State(st): State<AppState>, body: Body) -> HandlerResult {
    let mut req: PullRequest = read_json(body).await?;
    let stream = req.stream.unwrap_or(true);
    let catalog = st.catalog.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    req.cancel = Some(cancel.clone());
    progress_response(stream, true, Some(cancel), move |p| catalog.pull(&req, p)).await
}

pub(crate) async fn push(State(st): State<AppState>, body: Body) -> HandlerResult {
    let mut req: PullRequest = read_json(body).await?;
    let stream = req.stream.unwrap_or(true);
    let catalog = st.catalog.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    req.cancel = Some(cancel.clone());
    progress_response(stream, true, Some(cancel), move |p| catalog.push(&req, p)).await
}

pub(crate) async fn blob_head(
    State(st): State<AppState>,
    Path(digest): Path<String>,
) -> HandlerResult {
    let catalog = st.catalog.clone();
    let d = digest.clone();
    if blocking(move || catalog.blob_exists(&d)).await? {
        Ok(empty_ok())
    } else {
        Err(ApiError::not_found(format!(
            "blob {} not found",
            serde_json::to_string(&digest).unwrap_or_default()
        )))
    }
}

/// A blocking reader over the chunks of a request body.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

pub(crate) async fn blob_post(
    State(st): State<AppState>,
    Path(digest): Path<String>,
    body: Body,
) -> HandlerResult {
    let catalog = st.catalog.clone();
    let d = digest.clone();
    if blocking(move || catalog.blob_exists(&d)).await? {
        return Ok(empty_ok());
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let catalog = st.catalog.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        catalog.put_blob(&digest, &mut reader)
    });
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        let item = chunk.map_err(|e| format!("reading the upload: {e}"));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break; // the writer stopped (it reports why)
        }
    }
    drop(tx);
    writer
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("internal task failed: {e}"))))?;
    Ok((StatusCode::CREATED, Body::empty()).into_response())
}

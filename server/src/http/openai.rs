//! The OpenAI-compatible layer (openai.md): requests are translated into native ones, run
//! through the same code as `/api/chat` and `/api/generate`, and the output is rewritten
//! (SSE framing, usage, OpenAI's error shape).

use super::infer::{self, Generation, Outcome, Piece};
use super::native::embed_model_check;
use super::{blocking, json_response, parse_json, read_body, AppState};
use crate::api::duration::go_type_name;
use crate::api::time::unix_seconds;
use crate::api::{
    ApiError, ChatRequest, GenerateRequest, JsonObject, Message, Metrics, Think, ToolCall,
    ToolCallFunction,
};
use crate::catalog::namespace_of;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::time::{Instant, SystemTime};

/// `{"error":{"message","type","param":null,"code":null}}` with the native status.
pub(crate) fn oai_error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &error_body(&e))
}

fn error_body(e: &ApiError) -> Value {
    let kind = match e.status {
        400 => "invalid_request_error",
        404 => "not_found_error",
        _ => "api_error",
    };
    json!({"error": {"message": e.message, "type": kind, "param": null, "code": null}})
}

fn sse(stream: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Response {
    let mut resp = Response::new(Body::from_stream(stream.map(Ok::<Bytes, Infallible>)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

const DONE: &str = "data: [DONE]\n\n";

/// Not unique, as in Ollama (`<prefix>-<0..998>`); clients do not rely on it.
fn completion_id(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}", nanos % 999)
}

fn usage(m: &Metrics) -> Value {
    json!({
        "prompt_tokens": m.prompt_eval_count,
        "completion_tokens": m.eval_count,
        "total_tokens": m.prompt_eval_count + m.eval_count,
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

async fn body_object(body: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(body).await?;
    object_of(&bytes)
}

fn object_of(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match parse_json::<Value>(bytes)? {
        Value::Object(m) => Ok(m),
        other => Err(bad(format!(
            "json: cannot unmarshal {} into Go value of type openai.Request",
            go_type_name(&other)
        ))),
    }
}

fn model_field(obj: &Map<String, Value>) -> Result<String, ApiError> {
    match obj.get("model") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(bad(format!(
            "invalid type for 'model' field: {}",
            go_type_name(other)
        ))),
    }
}

/// `stop`: a string or a list; `strict` = non-string entries are errors (completions),
/// else they are dropped (chat).
fn stop_list(v: &Value, strict: bool) -> Result<Vec<Value>, ApiError> {
    match v {
        Value::String(s) => Ok(vec![Value::String(s.clone())]),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(_) => out.push(item.clone()),
                    other if strict => {
                        return Err(bad(format!(
                            "invalid type for 'stop' field: {}",
                            go_type_name(other)
                        )))
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
        Value::Null => Ok(Vec::new()),
        other => Err(bad(format!(
            "invalid type for 'stop' field: {}",
            go_type_name(other)
        ))),
    }
}

/// Sampling fields shared by chat and completions → native options.
fn options(
    obj: &Map<String, Value>,
    strict_stop: bool,
    completions: bool,
) -> Result<Map<String, Value>, ApiError> {
    let mut o = Map::new();
    let num = |k: &str| obj.get(k).filter(|v| !v.is_null()).cloned();
    if let Some(v) = num("max_tokens") {
        o.insert("num_predict".into(), v);
    }
    o.insert(
        "temperature".into(),
        num("temperature").unwrap_or(json!(1.0)),
    );
    let top_p = num("top_p").filter(|v| !(completions && v.as_f64() == Some(0.0)));
    o.insert("top_p".into(), top_p.unwrap_or(json!(1.0)));
    if let Some(v) = num("seed") {
        o.insert("seed".into(), v);
    }
    for k in ["frequency_penalty", "presence_penalty"] {
        match num(k) {
            Some(v) => {
                o.insert(k.into(), v);
            }
            None if completions => {
                o.insert(k.into(), json!(0.0));
            }
            None => {}
        }
    }
    if let Some(stop) = obj.get("stop") {
        let list = stop_list(stop, strict_stop)?;
        if !list.is_empty() {
            o.insert("stop".into(), Value::Array(list));
        }
    }
    Ok(o)
}

fn stream_flags(obj: &Map<String, Value>) -> (bool, bool) {
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = obj
        .get("stream_options")
        .and_then(|s| s.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (stream, include_usage)
}

/// `reasoning_effort` / `reasoning.effort` → `think`.
fn reasoning(obj: &Map<String, Value>) -> Result<Option<Think>, ApiError> {
    let effort = obj
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .or_else(|| {
            obj.get("reasoning")
                .and_then(|r| r.get("effort"))
                .and_then(Value::as_str)
        });
    let Some(e) = effort else { return Ok(None) };
    Ok(match e {
        "" => None,
        "none" => Some(Think::Bool(false)),
        "minimal" => Some(Think::Level("low".into())),
        "low" | "medium" | "high" | "max" => Some(Think::Level(e.into())),
        "xhigh" | "ultra" => Some(Think::Level("max".into())),
        other => {
            return Err(bad(format!(
                "invalid reasoning value: {} (must be \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", \"max\", or \"ultra\")",
                serde_json::to_string(other).unwrap_or_default()
            )))
        }
    })
}

/// `response_format` → native `format`. The schema is taken from the body bytes as written:
/// its key order decides the order of the generated properties.
fn response_format(obj: &Map<String, Value>, bytes: &[u8]) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Body {
        response_format: Option<Rf>,
    }
    #[derive(serde::Deserialize)]
    struct Rf {
        json_schema: Option<Js>,
    }
    #[derive(serde::Deserialize)]
    struct Js {
        schema: Option<Box<RawValue>>,
    }
    let rf = obj.get("response_format")?;
    let kind = rf.get("type").and_then(Value::as_str)?.to_lowercase();
    match kind.as_str() {
        "json_object" => RawValue::from_string("\"json\"".into()).ok(),
        "json_schema" => serde_json::from_slice::<Body>(bytes)
            .ok()?
            .response_format?
            .json_schema?
            .schema
            .filter(|s| s.get() != "null"),
        _ => None,
    }
}

fn image_data(v: &Value) -> Result<String, ApiError> {
    let url = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("url").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(bad(
            "image URLs are not currently supported, please use base64 encoded data instead",
        ));
    }
    for prefix in [
        "data:image/jpeg;base64,",
        "data:image/jpg;base64,",
        "data:image/png;base64,",
        "data:image/webp;base64,",
        "data:;base64,",
    ] {
        if let Some(b64) = url.strip_prefix(prefix) {
            return Ok(b64.to_string());
        }
    }
    Err(bad("invalid image input"))
}

fn convert_tool_calls(v: &Value) -> Result<Vec<ToolCall>, ApiError> {
    let Some(items) = v.as_array() else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, tc)| {
            let f = tc.get("function").cloned().unwrap_or(Value::Null);
            // The JSON string is decoded in its own key order.
            let args = match f.get("arguments") {
                Some(Value::String(s)) if s.trim().is_empty() => JsonObject::default(),
                Some(Value::String(s)) => serde_json::from_str::<JsonObject>(s)
                    .map_err(|_| bad("invalid tool call arguments"))?,
                Some(Value::Object(m)) => {
                    JsonObject(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                }
                None | Some(Value::Null) => JsonObject::default(),
                Some(_) => return Err(bad("invalid tool call arguments")),
            };
            Ok(ToolCall {
                id: tc
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                function: ToolCallFunction {
                    index: tc.get("index").and_then(Value::as_i64).unwrap_or(i as i64),
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    arguments: args,
                },
            })
        })
        .collect()
}

fn str_field(m: &Value, k: &str) -> String {
    m.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// OpenAI messages → native ones (openai.md "Message conversion").
fn convert_messages(items: &[Value]) -> Result<Vec<Message>, ApiError> {
    let mut out: Vec<Message> = Vec::new();
    for m in items {
        let role = str_field(m, "role").to_lowercase();
        let tool_calls = convert_tool_calls(m.get("tool_calls").unwrap_or(&Value::Null))?;
        let reasoning = str_field(m, "reasoning");
        let tool_call_id = str_field(m, "tool_call_id");
        let mut tool_name = str_field(m, "name");
        if role == "tool" && tool_name.is_empty() && !tool_call_id.is_empty() {
            for prev in &out {
                for tc in &prev.tool_calls {
                    if tc.id == tool_call_id {
                        tool_name = tc.function.name.clone();
                    }
                }
            }
        }
        let start = out.len();
        match m.get("content") {
            Some(Value::String(s)) => out.push(Message::new(&role, s.clone())),
            Some(Value::Array(parts)) => {
                for part in parts {
                    let mut msg = Message::new(&role, "");
                    match part.get("type").and_then(Value::as_str) {
                        Some("text") => msg.content = str_field(part, "text"),
                        Some("image_url") => msg
                            .images
                            .push(image_data(part.get("image_url").unwrap_or(&Value::Null))?),
                        Some("input_audio") => {
                            let data = part
                                .get("input_audio")
                                .map(|a| str_field(a, "data"))
                                .unwrap_or_default();
                            msg.images.push(data);
                        }
                        _ => return Err(bad("invalid message format")),
                    }
                    out.push(msg);
                }
            }
            None | Some(Value::Null) if !tool_calls.is_empty() => out.push(Message::new(&role, "")),
            None | Some(Value::Null) => return Err(bad("invalid message content type: <nil>")),
            Some(other) => {
                return Err(bad(format!(
                    "invalid message content type: {}",
                    go_type_name(other)
                )))
            }
        }
        if out.len() > start {
            let last = out.last_mut().expect("a message was added");
            last.tool_calls = tool_calls;
            last.thinking = reasoning;
            last.tool_call_id = tool_call_id;
            if role == "tool" {
                last.tool_name = tool_name;
            }
        }
    }
    Ok(out)
}

fn oai_tool_calls(calls: &[ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "index": c.function.index,
                    "type": "function",
                    "function": {
                        "name": c.function.name,
                        "arguments": c.function.arguments.to_json_string(),
                    }
                })
            })
            .collect(),
    )
}

/// `stop` becomes `tool_calls` when the answer called tools.
fn finish_with(reason: &str, called: bool) -> Value {
    if called && reason == "stop" {
        json!("tool_calls")
    } else {
        finish(reason)
    }
}

pub(crate) async fn chat_completions(State(st): State<AppState>, body: Body) -> Response {
    chat_inner(st, body).await.unwrap_or_else(oai_error)
}

async fn chat_inner(st: AppState, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let bytes = read_body(body).await?;
    let obj = object_of(&bytes)?;
    // Tools again from the bytes, in the client's key order.
    #[derive(serde::Deserialize)]
    struct RawTools {
        #[serde(default)]
        tools: Option<Vec<Box<serde_json::value::RawValue>>>,
    }
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => parse_json::<RawTools>(&bytes)?.tools.unwrap_or_default(),
    };
    let model = model_field(&obj)?;
    let messages = match obj.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => convert_messages(a)?,
        _ => return Err(bad("[] is too short - 'messages'")),
    };
    let (stream, include_usage) = stream_flags(&obj);
    let req = ChatRequest {
        model: model.clone(),
        messages,
        tools,
        stream: Some(stream),
        format: response_format(&obj, &bytes),
        options: Some(options(&obj, false, false)?),
        think: reasoning(&obj)?,
        logprobs: obj
            .get("logprobs")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        top_logprobs: obj.get("top_logprobs").and_then(Value::as_i64).unwrap_or(0),
        debug_render_only: obj
            .get("_debug_render_only")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..Default::default()
    };
    let mut gen = match infer::start_chat(&st, req, started).await? {
        Outcome::Run(gen) => gen,
        Outcome::Debug(info) => {
            return Ok(json_response(StatusCode::OK, &json!({"_debug_info": info})))
        }
        Outcome::Loaded(_) => return Err(bad("[] is too short - 'messages'")),
    };
    gen.first().await?;
    let id = completion_id("chatcmpl");
    let created = unix_seconds(SystemTime::now());
    if stream {
        return Ok(sse(chat_stream(*gen, id, created, model, include_usage)));
    }
    let (mut content, mut thinking, mut calls, mut lps) =
        (String::new(), String::new(), Vec::new(), Vec::new());
    while let Some(piece) = gen.next().await {
        match piece {
            Piece::Text {
                content: c,
                thinking: t,
                tool_calls,
                logprobs,
            } => {
                content.push_str(&c);
                thinking.push_str(&t);
                calls.extend(tool_calls);
                lps.extend(logprobs);
            }
            Piece::Error(e) => return Err(ApiError::internal(e)),
            Piece::Done {
                done_reason,
                metrics,
                ..
            } => {
                let mut message = json!({"role": "assistant", "content": content});
                if !thinking.is_empty() {
                    message["reasoning"] = json!(thinking);
                }
                if !calls.is_empty() {
                    message["tool_calls"] = oai_tool_calls(&calls);
                }
                let body = json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_ollama",
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": finish_with(done_reason, !calls.is_empty())}],
                    "usage": usage(&metrics),
                });
                let mut body = body;
                if !lps.is_empty() {
                    body["choices"][0]["logprobs"] = json!({ "content": lps });
                }
                return Ok(json_response(StatusCode::OK, &body));
            }
        }
    }
    Err(ApiError::internal("the generation ended without a result"))
}

fn finish(reason: &str) -> Value {
    if reason.is_empty() {
        Value::Null
    } else {
        json!(reason)
    }
}

fn chat_stream(
    gen: Generation,
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    let chunk = move |choices: Value, extra: Option<(&str, Value)>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_ollama", "choices": choices,
        });
        if let Some((k, v)) = extra {
            c[k] = v;
        }
        event(&c)
    };
    futures_util::stream::unfold(Some((gen, false)), move |state| {
        let chunk = chunk.clone();
        async move {
            let (mut gen, mut called) = state?;
            let Some(piece) = gen.next().await else {
                return Some((Bytes::from_static(DONE.as_bytes()), None));
            };
            let delta = |d: Value| json!([{"index": 0, "delta": d, "finish_reason": null}]);
            match piece {
                Piece::Text {
                    content,
                    thinking,
                    tool_calls,
                    logprobs,
                } => {
                    // Log-probabilities ride on the content delta they belong to.
                    let delta = |d: Value| {
                        let mut c = delta(d);
                        if !logprobs.is_empty() {
                            c[0]["logprobs"] = json!({ "content": logprobs });
                        }
                        c
                    };
                    let mut out = String::new();
                    if !thinking.is_empty() {
                        out += &chunk(
                            delta(
                                json!({"role": "assistant", "content": "", "reasoning": thinking}),
                            ),
                            None,
                        );
                    }
                    if !content.is_empty() {
                        out += &chunk(
                            delta(json!({"role": "assistant", "content": content})),
                            None,
                        );
                    }
                    if !tool_calls.is_empty() {
                        called = true;
                        out += &chunk(
                            delta(json!({"role": "assistant", "content": "",
                                         "tool_calls": oai_tool_calls(&tool_calls)})),
                            None,
                        );
                    }
                    Some((Bytes::from(out), Some((gen, called))))
                }
                Piece::Done {
                    done_reason,
                    metrics,
                    ..
                } => {
                    let reason = finish_with(done_reason, called);
                    let mut out = chunk(
                        json!([{"index": 0, "delta": {}, "finish_reason": reason}]),
                        None,
                    );
                    if include_usage {
                        out += &chunk(json!([]), Some(("usage", usage(&metrics))));
                    }
                    out += DONE;
                    Some((Bytes::from(out), None))
                }
                Piece::Error(e) => Some((
                    Bytes::from(event(&error_body(&ApiError::internal(e)))),
                    None,
                )),
            }
        }
    })
}

pub(crate) async fn completions(State(st): State<AppState>, body: Body) -> Response {
    completions_inner(st, body).await.unwrap_or_else(oai_error)
}

async fn completions_inner(st: AppState, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let obj = body_object(body).await?;
    let model = model_field(&obj)?;
    let prompt = match obj.get("prompt") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(bad(format!(
                "invalid type for 'prompt' field: {} (only a string is supported)",
                go_type_name(other)
            )))
        }
    };
    let (stream, include_usage) = stream_flags(&obj);
    let logprobs = obj.get("logprobs").and_then(Value::as_i64).unwrap_or(0);
    let req = GenerateRequest {
        model: model.clone(),
        prompt,
        suffix: str_field(&Value::Object(obj.clone()), "suffix"),
        stream: Some(stream),
        options: Some(options(&obj, true, true)?),
        logprobs: logprobs > 0,
        top_logprobs: logprobs.max(0),
        ..Default::default()
    };
    let mut gen = match infer::start_generate(&st, req, started).await? {
        Outcome::Run(gen) => gen,
        Outcome::Debug(info) => {
            return Ok(json_response(StatusCode::OK, &json!({"_debug_info": info})))
        }
        Outcome::Loaded(_) => {
            // An empty prompt only loads the model: an empty completion.
            let body = json!({
                "id": completion_id("cmpl"), "object": "text_completion",
                "created": unix_seconds(SystemTime::now()), "model": model,
                "system_fingerprint": "fp_ollama",
                "choices": [{"text": "", "index": 0, "finish_reason": "stop"}],
                "usage": usage(&Metrics::default()),
            });
            return Ok(json_response(StatusCode::OK, &body));
        }
    };
    gen.first().await?;
    let id = completion_id("cmpl");
    let created = unix_seconds(SystemTime::now());
    if stream {
        return Ok(sse(completion_stream(
            *gen,
            id,
            created,
            model,
            include_usage,
        )));
    }
    let (mut text, mut lps) = (String::new(), Vec::new());
    while let Some(piece) = gen.next().await {
        match piece {
            Piece::Text {
                content, logprobs, ..
            } => {
                text.push_str(&content);
                lps.extend(logprobs);
            }
            Piece::Error(e) => return Err(ApiError::internal(e)),
            Piece::Done {
                done_reason,
                metrics,
                ..
            } => {
                let body = json!({
                    "id": id, "object": "text_completion", "created": created, "model": model,
                    "system_fingerprint": "fp_ollama",
                    "choices": [{"text": text, "index": 0, "finish_reason": finish(done_reason)}],
                    "usage": usage(&metrics),
                });
                let mut body = body;
                if !lps.is_empty() {
                    body["choices"][0]["logprobs"] = json!({ "content": lps });
                }
                return Ok(json_response(StatusCode::OK, &body));
            }
        }
    }
    Err(ApiError::internal("the generation ended without a result"))
}

fn completion_stream(
    gen: Generation,
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    let chunk = move |choices: Value, usage_v: Option<Value>| {
        let mut c = json!({
            "id": id, "object": "text_completion", "created": created,
            "choices": choices, "model": model, "system_fingerprint": "fp_ollama",
        });
        if let Some(u) = usage_v {
            c["usage"] = u;
        }
        event(&c)
    };
    let zero = move || include_usage.then(|| usage(&Metrics::default()));
    futures_util::stream::unfold(Some(gen), move |gen| {
        let chunk = chunk.clone();
        async move {
            let mut gen = gen?;
            let Some(piece) = gen.next().await else {
                return Some((Bytes::from_static(DONE.as_bytes()), None));
            };
            match piece {
                Piece::Text {
                    content, logprobs, ..
                } => {
                    let mut choice = json!({"text": content, "index": 0, "finish_reason": null});
                    if !logprobs.is_empty() {
                        choice["logprobs"] = json!({ "content": logprobs });
                    }
                    Some((Bytes::from(chunk(json!([choice]), zero())), Some(gen)))
                }
                Piece::Done {
                    done_reason,
                    metrics,
                    ..
                } => {
                    let mut out = chunk(
                        json!([{"text": "", "index": 0, "finish_reason": finish(done_reason)}]),
                        zero(),
                    );
                    if include_usage {
                        out += &chunk(json!([]), Some(usage(&metrics)));
                    }
                    out += DONE;
                    Some((Bytes::from(out), None))
                }
                Piece::Error(e) => Some((
                    Bytes::from(event(&error_body(&ApiError::internal(e)))),
                    None,
                )),
            }
        }
    })
}

pub(crate) async fn embeddings(State(st): State<AppState>, body: Body) -> Response {
    embeddings_inner(st, body).await.unwrap_or_else(oai_error)
}

async fn embeddings_inner(st: AppState, body: Body) -> Result<Response, ApiError> {
    let obj = body_object(body).await?;
    let model = model_field(&obj)?;
    match obj.get("input") {
        Some(Value::String(_)) => {}
        Some(Value::Array(a)) if !a.is_empty() => {
            if a.iter().any(|v| !v.is_string()) {
                return Err(bad("invalid input"));
            }
        }
        _ => return Err(bad("invalid input")),
    }
    if let Some(f) = obj.get("encoding_format").and_then(Value::as_str) {
        let lf = f.to_lowercase();
        if !lf.is_empty() && lf != "float" && lf != "base64" {
            return Err(bad(format!(
                "Invalid value for 'encoding_format' = {f}. Supported values: ['float', 'base64']."
            )));
        }
    }
    if model.is_empty() {
        return Err(bad("model is required"));
    }
    embed_model_check(&st, &model).await?;
    Err(ApiError::internal("unreachable: embedding check passed"))
}

pub(crate) async fn models(State(st): State<AppState>) -> Response {
    let catalog = st.catalog.clone();
    match blocking(move || catalog.list()).await {
        Ok(list) => {
            let data: Vec<Value> = list
                .iter()
                .map(|m| {
                    json!({
                        "id": m.name,
                        "object": "model",
                        "created": unix_seconds(m.modified_at),
                        "owned_by": namespace_of(&m.name),
                    })
                })
                .collect();
            json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        Err(e) => oai_error(e),
    }
}

pub(crate) async fn model(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    match infer::resolve(&st, &name).await {
        Ok(m) => json_response(
            StatusCode::OK,
            &json!({
                "id": name,
                "object": "model",
                "created": m.modified_at.map(unix_seconds).unwrap_or(0),
                "owned_by": m.namespace(),
            }),
        ),
        Err(e) => oai_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_conversion() {
        let msgs = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ]);
        let out = convert_messages(msgs.as_array().unwrap()).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(out[1].content, "what is this?");
        assert_eq!(out[2].images, vec!["AAAA".to_string()]);
        assert_eq!(out[3].tool_calls[0].function.arguments["x"], json!(1));
        assert_eq!(out[4].tool_name, "f");
        assert_eq!(out[4].tool_call_id, "call_1");
    }

    #[test]
    fn message_errors() {
        let err = |v: Value| convert_messages(v.as_array().unwrap()).unwrap_err().message;
        assert_eq!(
            err(json!([{"role": "user"}])),
            "invalid message content type: <nil>"
        );
        assert_eq!(
            err(json!([{"role": "user", "content": [{"type": "video"}]}])),
            "invalid message format"
        );
        assert_eq!(
            err(
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}])
            ),
            "image URLs are not currently supported, please use base64 encoded data instead"
        );
        assert_eq!(
            err(
                json!([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}])
            ),
            "invalid tool call arguments"
        );
    }

    #[test]
    fn sampling_defaults() {
        let o = options(
            json!({"max_tokens": 5, "stop": ["a", 1]})
                .as_object()
                .unwrap(),
            false,
            false,
        )
        .unwrap();
        assert_eq!(o["num_predict"], json!(5));
        assert_eq!(o["temperature"], json!(1.0));
        assert_eq!(o["top_p"], json!(1.0));
        assert_eq!(o["stop"], json!(["a"]));
        assert!(!o.contains_key("frequency_penalty"));
        let e = options(json!({"stop": ["a", 1]}).as_object().unwrap(), true, true).unwrap_err();
        assert_eq!(e.message, "invalid type for 'stop' field: float64");
        let c = options(json!({"top_p": 0}).as_object().unwrap(), true, true).unwrap();
        assert_eq!(c["top_p"], json!(1.0));
        assert_eq!(c["presence_penalty"], json!(0.0));
    }

    #[test]
    fn reasoning_efforts() {
        let r = |e: &str| reasoning(json!({"reasoning_effort": e}).as_object().unwrap());
        assert_eq!(r("none").unwrap(), Some(Think::Bool(false)));
        assert_eq!(r("minimal").unwrap(), Some(Think::Level("low".into())));
        assert_eq!(r("xhigh").unwrap(), Some(Think::Level("max".into())));
        assert_eq!(r("").unwrap(), None);
        assert!(r("extreme").is_err());
    }
}

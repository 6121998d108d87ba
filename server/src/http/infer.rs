//! Generate and chat, shared by the native routes and the OpenAI layer: validation, model
//! resolution, scheduling, prompt building, and the stream of output pieces.

use super::think::ThinkParser;
use super::tools::ToolParser;
use super::{blocking, AppState};
use crate::api::{
    ApiError, ChatRequest, DebugInfo, GenerateRequest, KeepAlive, Message, Metrics, RunOptions,
    Think,
};
use crate::api::{Logprob, ToolCall, TopLogprob};
use crate::catalog::{ChatRender, GenerateRender, ResolvedModel};
use crate::runner::{fit_prompt, Completion, Event, Runner};
use crate::sched::{Lease, LoadSpec, QueueTicket};
use engine::grammar::{Constraint, Grammar};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock};

use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// How a generate/chat request is answered.
pub(crate) enum Outcome {
    /// An empty request: the model was loaded (`"load"`) or unloaded (`"unload"`).
    Loaded(&'static str),
    /// `_debug_render_only`: the rendered prompt instead of a completion.
    Debug(DebugInfo),
    Run(Box<Generation>),
}

/// Output of a running completion.
pub(crate) enum Piece {
    Text {
        content: String,
        thinking: String,
        tool_calls: Vec<ToolCall>,
        logprobs: Vec<Logprob>,
    },
    Done {
        done_reason: &'static str,
        metrics: Metrics,
        /// Prompt + response tokens (generate without `raw` only).
        context: Vec<u32>,
    },
    Error(String),
}

/// A completion in flight. Dropping it cancels the completion and frees the model.
pub(crate) struct Generation {
    rx: UnboundedReceiver<Event>,
    _lease: Lease<Runner>,
    started: Instant,
    load_duration: Duration,
    think: Option<ThinkParser>,
    tools: Option<ToolParser>,
    pushback: Option<Event>,
    finished: bool,
    with_context: bool,
    /// Log-probabilities not yet attached to a piece (their text is held by a parser).
    logprobs: Vec<Logprob>,
}

fn wire_logprob(t: crate::runner::TokenLogprob) -> Logprob {
    Logprob {
        token: t.token,
        logprob: t.logprob as f64,
        bytes: t.bytes,
        top_logprobs: t
            .top
            .into_iter()
            .map(|x| TopLogprob {
                token: x.token,
                logprob: x.logprob as f64,
                bytes: x.bytes,
            })
            .collect(),
    }
}

impl Generation {
    /// Runs output text (or, at the end, what the parsers hold) through the thinking and
    /// tool-call parsers.
    fn absorb(&mut self, text: Option<&str>) -> Option<Piece> {
        let (thinking, content) = match (&mut self.think, text) {
            (Some(p), Some(t)) => p.push(t),
            (Some(p), None) => p.finish(),
            (None, Some(t)) => (String::new(), t.to_string()),
            (None, None) => (String::new(), String::new()),
        };
        let (content, tool_calls) = match &mut self.tools {
            Some(p) => {
                let mut a = p.push(&content);
                if text.is_none() {
                    let b = p.finish();
                    a.content.push_str(&b.content);
                    a.calls.extend(b.calls);
                }
                (a.content, a.calls)
            }
            None => (content, Vec::new()),
        };
        if thinking.is_empty() && content.is_empty() && tool_calls.is_empty() {
            return None;
        }
        Some(Piece::Text {
            content,
            thinking,
            tool_calls,
            logprobs: std::mem::take(&mut self.logprobs),
        })
    }

    /// Waits for the first output so that a failure before any text is a plain error
    /// response with its status, not a line inside a 200 stream.
    pub(crate) async fn first(&mut self) -> Result<(), ApiError> {
        if self.pushback.is_some() {
            return Ok(());
        }
        match self.rx.recv().await {
            Some(Event::Error(e)) => Err(ApiError::internal(e)),
            None => Err(ApiError::internal("the model runner stopped unexpectedly")),
            Some(ev) => {
                self.pushback = Some(ev);
                Ok(())
            }
        }
    }

    pub(crate) async fn next(&mut self) -> Option<Piece> {
        loop {
            if self.finished {
                return None;
            }
            let ev = match self.pushback.take() {
                Some(e) => Some(e),
                None => self.rx.recv().await,
            };
            match ev {
                None => {
                    self.finished = true;
                    return Some(Piece::Error("the model runner stopped unexpectedly".into()));
                }
                Some(Event::Error(e)) => {
                    self.finished = true;
                    return Some(Piece::Error(e));
                }
                Some(Event::Text(t, lps)) => {
                    self.logprobs.extend(lps.into_iter().map(wire_logprob));
                    if let Some(p) = self.absorb(Some(&t)) {
                        return Some(p);
                    }
                }
                Some(Event::Done(stats)) => {
                    if self.think.is_some() || self.tools.is_some() {
                        let tail = self.absorb(None);
                        self.think = None;
                        self.tools = None;
                        if let Some(p) = tail {
                            self.pushback = Some(Event::Done(stats));
                            return Some(p);
                        }
                    }
                    self.finished = true;
                    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                    let metrics = Metrics {
                        total_duration: ns(self.started.elapsed()),
                        load_duration: ns(self.load_duration),
                        prompt_eval_count: stats.prompt_eval_count as u64,
                        prompt_eval_duration: ns(stats.prompt_eval_duration),
                        eval_count: stats.eval_count as u64,
                        eval_duration: ns(stats.eval_duration),
                    };
                    let context = if self.with_context {
                        stats.tokens
                    } else {
                        Vec::new()
                    };
                    return Some(Piece::Done {
                        done_reason: stats.done_reason.as_str(),
                        metrics,
                        context,
                    });
                }
            }
        }
    }
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `format`: `""`/`null` = none; `"json"` = any JSON object; an object = a JSON Schema,
/// compiled to a grammar (off the async threads: a large schema takes a while). Anything
/// else is Ollama's "invalid format" error; a schema the compiler refuses is a 400 too.
pub(crate) async fn format_grammar(
    format: Option<&RawValue>,
) -> Result<Option<Arc<Grammar>>, ApiError> {
    static JSON: OnceLock<Arc<Grammar>> = OnceLock::new();
    let Some(raw) = format else {
        return Ok(None);
    };
    let text = raw.get().trim();
    match text {
        "null" | "\"\"" => Ok(None),
        "\"json\"" => Ok(Some(JSON.get_or_init(|| Arc::new(Grammar::json())).clone())),
        t if t.starts_with('{') => {
            let t = t.to_string();
            blocking(move || {
                Grammar::from_schema_str(&t)
                    .map(|g| Some(Arc::new(g)))
                    .map_err(|e| {
                        ApiError::bad_request(format!("invalid JSON schema in format: {e}"))
                    })
            })
            .await
        }
        other => Err(ApiError::bad_request(format!(
            "invalid format: {}; expected \"json\" or a valid JSON Schema object",
            go_quote(other)
        ))),
    }
}

fn check_logprobs(top: i64) -> Result<(), ApiError> {
    if !(0..=20).contains(&top) {
        return Err(ApiError::bad_request(
            "top_logprobs must be between 0 and 20",
        ));
    }
    Ok(())
}

pub(crate) async fn resolve(st: &AppState, name: &str) -> Result<ResolvedModel, ApiError> {
    let catalog = st.catalog.clone();
    let name = name.to_string();
    blocking(move || catalog.resolve(&name)).await
}

fn has_cap(m: &ResolvedModel, cap: &str) -> bool {
    // A catalog that lists no capabilities at all describes a plain completion model.
    if m.capabilities.is_empty() {
        return cap == "completion";
    }
    m.has_capability(cap)
}

/// Thinking requested and supported; absent on a thinking model means on.
fn resolve_think(
    m: &ResolvedModel,
    req_name: &str,
    think: Option<Think>,
) -> Result<Option<Think>, ApiError> {
    let capable = has_cap(m, "thinking");
    match think {
        Some(t) if t.enabled() && !capable => Err(ApiError::bad_request(format!(
            "{} does not support thinking",
            go_quote(req_name)
        ))),
        None if capable => Ok(Some(Think::Bool(true))),
        other => Ok(other),
    }
}

fn merge_options(
    m: &ResolvedModel,
    req: Option<&Map<String, Value>>,
) -> Result<RunOptions, ApiError> {
    let mut opts = RunOptions::default();
    opts.apply(&m.parameters)?;
    if let Some(o) = req {
        opts.apply(o)?;
    }
    opts.sampler().validate().map_err(ApiError::bad_request)?;
    Ok(opts)
}

fn load_spec(st: &AppState, m: &ResolvedModel, opts: &RunOptions) -> LoadSpec {
    let num_ctx = match opts.num_ctx {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => st.config.context_length,
    };
    LoadSpec {
        name: m.name.clone(),
        digest: m.digest.clone(),
        details: m.details.clone(),
        path: m.gguf_path.clone(),
        num_ctx,
        num_batch: opts.num_batch.clamp(1, 1 << 16) as usize,
        num_thread: opts.num_thread.clamp(0, 1024) as usize,
        // Any negative value is Ollama's "auto" (its default is -1).
        num_gpu: opts.num_gpu.max(-1),
    }
}

async fn acquire(
    st: &AppState,
    spec: &LoadSpec,
    keep_alive: Option<KeepAlive>,
) -> Result<(Lease<Runner>, QueueTicket, Duration), ApiError> {
    let ticket = st.sched.admit()?;
    let t0 = Instant::now();
    let lease = st.sched.acquire(spec, keep_alive).await?;
    Ok((lease, ticket, t0.elapsed()))
}

/// The load/unload answer of an empty request.
async fn load_only(
    st: &AppState,
    m: &ResolvedModel,
    opts: &RunOptions,
    keep_alive: Option<KeepAlive>,
) -> Result<Outcome, ApiError> {
    if keep_alive.is_some_and(|k| k.is_zero()) {
        st.sched.expire(&m.gguf_path);
        return Ok(Outcome::Loaded("unload"));
    }
    let spec = load_spec(st, m, opts);
    let (lease, ticket, _) = acquire(st, &spec, keep_alive).await?;
    drop(ticket);
    drop(lease);
    Ok(Outcome::Loaded("load"))
}

struct Launch {
    tokens: Vec<u32>,
    opts: RunOptions,
    truncate: bool,
    started: Instant,
    load_duration: Duration,
    think: Option<ThinkParser>,
    tools: Option<ToolParser>,
    with_context: bool,
    logprobs: bool,
    top_logprobs: usize,
    constraint: Option<Constraint>,
    /// The rendered prompt ends inside an opened `<think>`.
    thinking_open: bool,
}

/// The grammar constraint of a request, over the loaded model's vocabulary (prepared once
/// per model, off the async threads).
async fn constraint(
    runner: &Arc<Runner>,
    grammar: Option<Arc<Grammar>>,
) -> Result<Option<Constraint>, ApiError> {
    let Some(g) = grammar else {
        return Ok(None);
    };
    let r = runner.clone();
    blocking(move || {
        Constraint::new(g, r.token_vocab())
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON schema in format: {e}")))
    })
    .await
}

fn launch(lease: Lease<Runner>, ticket: QueueTicket, l: Launch) -> Result<Generation, ApiError> {
    let info = lease.info().clone();
    let num_ctx = match l.opts.num_ctx {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX).min(info.num_ctx),
        _ => info.num_ctx,
    };
    let add_bos = lease.tokenizer().add_bos();
    let prompt = fit_prompt(l.tokens, num_ctx, l.opts.num_keep, add_bos, l.truncate)
        .map_err(ApiError::bad_request)?;
    if prompt.is_empty() {
        return Err(ApiError::bad_request(
            "the prompt is empty after tokenization",
        ));
    }
    let rx = lease
        .submit(Completion {
            prompt,
            num_ctx,
            num_predict: l.opts.num_predict,
            sampler: l.opts.sampler(),
            stop: l.opts.stop.clone(),
            logprobs: l.logprobs,
            top_logprobs: l.top_logprobs,
            // When the prompt opens the reasoning, only the answer after it is constrained
            // (otherwise the model starts with the answer, constrained from its first token).
            constrain_after: (l.constraint.is_some() && l.think.is_some() && l.thinking_open)
                .then(|| "</think>".to_string()),
            constraint: l.constraint,
            ticket: Some(Box::new(ticket)),
        })
        .map_err(ApiError::internal)?;
    Ok(Generation {
        rx,
        _lease: lease,
        started: l.started,
        load_duration: l.load_duration,
        think: l.think,
        tools: l.tools,
        pushback: None,
        finished: false,
        with_context: l.with_context,
        logprobs: Vec::new(),
    })
}

fn think_parser(m: &ResolvedModel, think: Option<&Think>, prompt: &str) -> Option<ThinkParser> {
    if !think.is_some_and(Think::enabled) || !has_cap(m, "thinking") {
        return None;
    }
    Some(ThinkParser::new(prompt_opens_thinking(prompt)))
}

fn prompt_opens_thinking(prompt: &str) -> bool {
    prompt.trim_end().ends_with("<think>")
}

pub(crate) async fn start_generate(
    st: &AppState,
    req: GenerateRequest,
    started: Instant,
) -> Result<Outcome, ApiError> {
    if req.model.is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    if req.raw && (!req.template.is_empty() || !req.system.is_empty() || req.context.is_some()) {
        return Err(ApiError::bad_request(
            "raw mode does not support template, system, or context",
        ));
    }
    check_logprobs(req.top_logprobs)?;
    let grammar = format_grammar(req.format.as_deref()).await?;
    let mut model = resolve(st, &req.model).await?;
    if !has_cap(&model, "completion") {
        return Err(ApiError::bad_request(format!(
            "{} does not support generate",
            go_quote(&req.model)
        )));
    }
    if !req.suffix.is_empty() && !has_cap(&model, "insert") {
        return Err(ApiError::bad_request(format!(
            "{} does not support insert",
            model.full_name
        )));
    }
    if !req.images.is_empty() && !has_cap(&model, "vision") {
        return Err(ApiError::bad_request(format!(
            "{} does not support vision",
            model.full_name
        )));
    }
    let think = resolve_think(&model, &req.model, req.think.clone())?;
    let opts = merge_options(&model, req.options.as_ref())?;
    if req.prompt.is_empty() && req.images.is_empty() && req.suffix.is_empty() {
        return load_only(st, &model, &opts, req.keep_alive).await;
    }
    if !req.template.is_empty() {
        model.template = Some(req.template.clone());
    }

    let spec = load_spec(st, &model, &opts);
    let (lease, ticket, load_duration) = acquire(st, &spec, req.keep_alive).await?;
    let runner = lease.model().clone();

    let prompt = if req.raw {
        req.prompt.clone()
    } else {
        let mut text = String::new();
        if let Some(ctx) = &req.context {
            let n_vocab = runner.info().n_vocab;
            if let Some(&bad) = ctx.iter().find(|&&t| t as usize >= n_vocab) {
                return Err(ApiError::bad_request(format!(
                    "context token {bad} is outside the vocabulary ({n_vocab} tokens)"
                )));
            }
            text = runner.detokenize(ctx);
        }
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let renderer = st.renderer.clone();
        let (system, suffix) = (nonempty(&req.system), nonempty(&req.suffix));
        let (user, images, use_history) =
            (req.prompt.clone(), req.images.len(), req.context.is_none());
        let (m, t) = (model.clone(), think.clone());
        let rendered = blocking(move || {
            renderer.generate(
                &m,
                &GenerateRender {
                    prompt: &user,
                    system: system.as_deref(),
                    suffix: suffix.as_deref(),
                    use_history,
                    images,
                    think: t.as_ref(),
                },
            )
        })
        .await?;
        text.push_str(&rendered);
        text
    };
    if req.debug_render_only {
        return Ok(Outcome::Debug(DebugInfo {
            rendered_template: prompt,
            image_count: req.images.len(),
        }));
    }
    let think_p = think_parser(&model, think.as_ref(), &prompt);
    let thinking_open = prompt_opens_thinking(&prompt);
    let constraint = constraint(&runner, grammar).await?;
    // The request's and the model's texts stay plain text inside the rendered prompt.
    let literals: Vec<String> = if req.raw {
        Vec::new()
    } else {
        let mut l = vec![req.system.clone()];
        if let Some(sys) = &model.system {
            l.push(sys.clone());
        }
        if req.context.is_none() {
            l.extend(model.messages.iter().map(|m| m.content.clone()));
        }
        l.push(req.prompt.clone());
        l.push(req.suffix.clone());
        l
    };
    let tokens = {
        let (r, p) = (runner.clone(), prompt);
        blocking(move || {
            let lits: Vec<&str> = literals.iter().map(String::as_str).collect();
            Ok(r.tokenize_prompt(&p, &lits))
        })
        .await?
    };
    let gen = launch(
        lease,
        ticket,
        Launch {
            tokens,
            opts,
            truncate: req.truncate.unwrap_or(true),
            started,
            load_duration,
            think: think_p,
            tools: None,
            with_context: !req.raw,
            logprobs: req.logprobs,
            top_logprobs: req.top_logprobs.clamp(0, 20) as usize,
            constraint,
            thinking_open,
        },
    )?;
    Ok(Outcome::Run(Box::new(gen)))
}

pub(crate) async fn start_chat(
    st: &AppState,
    req: ChatRequest,
    started: Instant,
) -> Result<Outcome, ApiError> {
    if req.model.is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    check_logprobs(req.top_logprobs)?;
    let grammar = format_grammar(req.format.as_deref()).await?;
    let model = resolve(st, &req.model).await?;
    if !has_cap(&model, "completion") {
        return Err(ApiError::bad_request(format!(
            "{} does not support chat",
            go_quote(&req.model)
        )));
    }
    if !req.tools.is_empty() && !has_cap(&model, "tools") {
        return Err(ApiError::bad_request(format!(
            "{} does not support tools",
            model.full_name
        )));
    }
    if req.messages.iter().any(|m| !m.images.is_empty()) && !has_cap(&model, "vision") {
        return Err(ApiError::bad_request(format!(
            "{} does not support vision",
            model.full_name
        )));
    }
    let think = resolve_think(&model, &req.model, req.think.clone())?;
    let opts = merge_options(&model, req.options.as_ref())?;
    if req.messages.is_empty() {
        return load_only(st, &model, &opts, req.keep_alive).await;
    }

    // The model's MESSAGE history first; its SYSTEM when the request brings none.
    let mut msgs: Vec<Message> = model.messages.clone();
    msgs.extend(req.messages.iter().cloned());
    if req.messages[0].role != "system" {
        if let Some(sys) = model.system.as_deref().filter(|s| !s.is_empty()) {
            msgs.insert(0, Message::new("system", sys));
        }
    }

    strip_old_thinking(&model, &mut msgs);

    let spec = load_spec(st, &model, &opts);
    let (lease, ticket, load_duration) = acquire(st, &spec, req.keep_alive).await?;
    let runner = lease.model().clone();
    let num_ctx = match opts.num_ctx {
        Some(n) if n > 0 => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(runner.info().num_ctx),
        _ => runner.info().num_ctx,
    };
    let truncate = req.truncate.unwrap_or(true);
    let (prompt, tokens) = {
        let renderer = st.renderer.clone();
        let (m, t, tools) = (model.clone(), think.clone(), req.tools.clone());
        let r = runner.clone();
        blocking(move || {
            let render = |msgs: &[Message]| {
                renderer.chat(
                    &m,
                    msgs,
                    &ChatRender {
                        tools: &tools,
                        think: t.as_ref(),
                    },
                )
            };
            // Message texts stay plain text inside the rendered prompt.
            let lits: Vec<&str> = msgs
                .iter()
                .flat_map(|m| [m.thinking.as_str(), m.content.as_str()])
                .collect();
            fit_messages(&msgs, num_ctx, truncate, render, |p| {
                r.tokenize_prompt(p, &lits)
            })
        })
        .await?
    };
    if req.debug_render_only {
        return Ok(Outcome::Debug(DebugInfo {
            rendered_template: prompt,
            image_count: req.messages.iter().map(|m| m.images.len()).sum(),
        }));
    }
    let think_p = think_parser(&model, think.as_ref(), &prompt);
    let thinking_open = prompt_opens_thinking(&prompt);
    let constraint = constraint(&runner, grammar).await?;
    let gen = launch(
        lease,
        ticket,
        Launch {
            tokens,
            opts,
            truncate,
            started,
            load_duration,
            think: think_p,
            tools: (!req.tools.is_empty()).then(|| ToolParser::new(&req.tools)),
            with_context: false,
            logprobs: req.logprobs,
            top_logprobs: req.top_logprobs.clamp(0, 20) as usize,
            constraint,
            thinking_open,
        },
    )?;
    Ok(Outcome::Run(Box::new(gen)))
}

/// qwen3 and deepseek-r1 templates expect earlier assistant turns without their reasoning:
/// `<think>…</think>` is removed from assistant messages before the last user message.
fn strip_old_thinking(model: &ResolvedModel, msgs: &mut [Message]) {
    let family = model.details.family.to_lowercase();
    if !(family.starts_with("qwen3") || model.name.to_lowercase().contains("deepseek-r1")) {
        return;
    }
    let Some(last_user) = msgs.iter().rposition(|m| m.role == "user") else {
        return;
    };
    for m in &mut msgs[..last_user] {
        if m.role != "assistant" {
            continue;
        }
        while let Some(start) = m.content.find("<think>") {
            let Some(end) = m.content[start..].find("</think>") else {
                break;
            };
            let end = start + end + "</think>".len();
            let rest = m.content[end..].trim_start().to_string();
            m.content.truncate(start);
            m.content.push_str(&rest);
        }
    }
}

/// Ollama's `chatPrompt`: drops the oldest messages (keeping system messages and always the
/// last message) until the rendered prompt fits `num_ctx`. Returns the prompt and its tokens.
fn fit_messages(
    msgs: &[Message],
    num_ctx: usize,
    truncate: bool,
    render: impl Fn(&[Message]) -> Result<String, ApiError>,
    tokenize: impl Fn(&str) -> Vec<u32>,
) -> Result<(String, Vec<u32>), ApiError> {
    let with_system = |i: usize| -> Vec<Message> {
        msgs[..i]
            .iter()
            .filter(|m| m.role == "system")
            .chain(&msgs[i..])
            .cloned()
            .collect()
    };
    let full = render(msgs)?;
    let tokens = tokenize(&full);
    if !truncate || tokens.len() <= num_ctx || msgs.len() <= 1 {
        return Ok((full, tokens));
    }
    let last = msgs.len() - 1;
    let mut best = (render(&with_system(last))?, None);
    for i in (1..last).rev() {
        let p = render(&with_system(i))?;
        let t = tokenize(&p);
        if t.len() > num_ctx {
            break;
        }
        best = (p, Some(t));
    }
    let (p, t) = best;
    let t = t.unwrap_or_else(|| tokenize(&p));
    Ok((p, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_messages_drops_the_oldest_but_keeps_system_and_last() {
        let msgs = vec![
            Message::new("system", "S"),
            Message::new("user", "aaaa"),
            Message::new("assistant", "bbbb"),
            Message::new("user", "cc"),
        ];
        let render = |m: &[Message]| Ok(m.iter().map(|m| m.content.as_str()).collect::<String>());
        let tok = |p: &str| p.bytes().map(u32::from).collect::<Vec<u32>>();
        assert_eq!(
            fit_messages(&msgs, 100, true, render, tok).unwrap().0,
            "Saaaabbbbcc"
        );
        assert_eq!(
            fit_messages(&msgs, 7, true, render, tok).unwrap().0,
            "Sbbbbcc"
        );
        assert_eq!(fit_messages(&msgs, 4, true, render, tok).unwrap().0, "Scc");
        assert_eq!(fit_messages(&msgs, 1, true, render, tok).unwrap().0, "Scc");
        assert_eq!(
            fit_messages(&msgs, 4, false, render, tok).unwrap().0,
            "Saaaabbbbcc"
        );
    }

    #[test]
    fn old_reasoning_is_stripped_for_qwen3() {
        let mut model = ResolvedModel::default();
        model.details.family = "qwen3".into();
        let mut msgs = vec![
            Message::new("user", "a"),
            Message::new("assistant", "<think>hmm</think>\n\nB"),
            Message::new("user", "c"),
            Message::new("assistant", "<think>keep</think>D"),
        ];
        strip_old_thinking(&model, &mut msgs);
        assert_eq!(msgs[1].content, "B");
        assert_eq!(msgs[3].content, "<think>keep</think>D");
        let mut other = vec![
            Message::new("assistant", "<think>x</think>y"),
            Message::new("user", "z"),
        ];
        strip_old_thinking(&ResolvedModel::default(), &mut other);
        assert_eq!(other[0].content, "<think>x</think>y");
    }

    fn format_of(text: &str) -> Result<Option<Arc<Grammar>>, ApiError> {
        let raw = RawValue::from_string(text.to_string()).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(format_grammar(Some(&raw)))
    }

    #[test]
    fn formats() {
        assert!(tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(format_grammar(None))
            .unwrap()
            .is_none());
        assert!(format_of("null").unwrap().is_none());
        assert!(format_of(r#""""#).unwrap().is_none());
        assert!(format_of(r#""json""#).unwrap().is_some());
        assert!(
            format_of(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#)
                .unwrap()
                .is_some()
        );
        let e = format_of(r#""yaml""#).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            r#"invalid format: "\"yaml\""; expected "json" or a valid JSON Schema object"#
        );
        let e = format_of("3").unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                400,
                r#"invalid format: "3"; expected "json" or a valid JSON Schema object"#
            )
        );
        let e = format_of(r#"{"type":"object","not":{}}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            r#"invalid JSON schema in format: the keyword "not" is not supported"#
        );
    }
}

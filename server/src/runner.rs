//! One loaded model served to several sequences at once (continuous batching).
//!
//! A worker thread owns the [`Model`] and `num_parallel` slots, each with its own KV cache.
//! Every step packs one decode token of each generating sequence plus prompt chunks of
//! newly joined ones (up to `num_batch` tokens in all) into a single forward pass, so a new
//! request starts at the next step instead of waiting for the others to finish. Each
//! request streams [`Event`]s through its own channel; dropping the receiver (the client
//! went away) frees the slot at the next step. A finished slot keeps its cache, and the next
//! request whose prompt starts with the same tokens reuses that prefix.
//!
//! With a GPU placement (`num_gpu`, see [`crate::gpu`]) the same steps run on the GPU: all
//! layers there = one batched GPU pass; a split = the CPU layers batched on the CPU, then
//! their hidden states batched through the GPU layers. Sampling stays on the CPU.

use crate::gpu::{self, KvShape};
use engine::generate::DoneReason;
use engine::grammar::{Constraint, TokenVocab};
use engine::model::{HParams, KvCache, LoadOptions, Model, SeqInput};
use engine::sampler::{Sampler, SamplerOptions};
use engine::stop::StopMatcher;
use engine::tokenizer::{StreamDecoder, Tokenizer, TokenizerOptions};
use ferrite_shaders::{GpuHiddenSeq, GpuKvCache, GpuModel, GpuSeq, SplitCache};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Tokenizes a rendered prompt as llama.cpp's chat path does, plus one guard:
///
/// - special tokens the template wrote (`<|im_start|>`, `<start_of_turn>`) are parsed;
/// - inside the `literals` (the users' message texts, located in the prompt in order)
///   they are not: a user who types `<|im_end|>` gets those characters, not a turn end;
/// - BOS is added where the model asks for it, unless the template wrote it already
///   (Gemma's `{{ bos_token }}`): llama.cpp strips a rendered BOS for the same reason.
pub fn prompt_tokens(tok: &Tokenizer, text: &str, literals: &[&str]) -> Vec<u32> {
    let ranges = literal_ranges(tok, text, literals);
    let mut ids = tok.encode_with_literals(text, true, &ranges);
    if let (true, Some(bos)) = (tok.add_bos(), tok.bos()) {
        if ids.len() >= 2 && ids[0] == bos && ids[1] == bos {
            ids.remove(0);
        }
    }
    ids
}

/// Byte ranges of `text` holding those `literals` that contain control-token text, found
/// left to right (a template may strip a message, so the trimmed text is tried too).
/// Literals without such text need no range: they tokenize the same either way.
fn literal_ranges(tok: &Tokenizer, text: &str, literals: &[&str]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut cursor = 0;
    for lit in literals {
        if lit.is_empty() || !tok.contains_control_text(lit) {
            continue;
        }
        let found = [*lit, lit.trim()].into_iter().find_map(|l| {
            let after = text[cursor..].find(l).map(|p| cursor + p);
            after.or_else(|| text.find(l)).map(|p| p..p + l.len())
        });
        if let Some(r) = found {
            if r.start >= cursor {
                cursor = r.end;
            }
            out.push(r);
        }
    }
    out
}

/// Load-time settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Sequences served at once (`OLLAMA_NUM_PARALLEL`).
    pub num_parallel: usize,
    /// Context per sequence; clamped to the model's training context.
    pub num_ctx: usize,
    /// Most tokens per forward pass.
    pub num_batch: usize,
    /// Compute threads; 0 = one per core.
    pub threads: usize,
    /// Ollama's `num_gpu`: layers on the GPU (the last ones); negative = as many as fit
    /// on a real GPU, none without one. See [`crate::gpu`].
    pub num_gpu: i64,
    /// Bytes of GPU memory to leave free (`OLLAMA_GPU_OVERHEAD`), for the automatic placement.
    pub gpu_overhead: u64,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            num_parallel: 1,
            num_ctx: 4096,
            num_batch: 512,
            threads: 0,
            num_gpu: -1,
            gpu_overhead: 0,
        }
    }
}

/// What a loaded runner reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerInfo {
    /// Context per sequence actually loaded.
    pub num_ctx: usize,
    pub num_parallel: usize,
    pub num_batch: usize,
    pub n_ctx_train: usize,
    pub n_vocab: usize,
    /// Bytes: weights plus the KV caches at full context, on the CPU and the GPU.
    pub size: u64,
    /// The part of `size` in GPU memory.
    pub size_vram: u64,
    /// Layers on the GPU (the last ones).
    pub gpu_layers: usize,
    /// The GPU adapter, when any layer is on it.
    pub gpu: Option<String>,
}

/// One completion request, already tokenized (and truncated to fit, see [`fit_prompt`]).
pub struct Completion {
    pub prompt: Vec<u32>,
    /// The request's context limit, at most the loaded one.
    pub num_ctx: usize,
    /// Tokens to generate at most; `<= 0` = until the context is full (Ollama's rule).
    pub num_predict: i64,
    pub sampler: SamplerOptions,
    pub stop: Vec<String>,
    /// Report the log-probability of each generated token.
    pub logprobs: bool,
    /// … and of this many most likely alternatives (at most 20).
    pub top_logprobs: usize,
    /// Structured output: only tokens the grammar allows are sampled, and the sequence ends
    /// when the grammar is complete and an end token is chosen (or nothing else may follow).
    pub constraint: Option<Constraint>,
    /// Apply `constraint` only after the generated text contains this (the end of the
    /// reasoning of a thinking model); unconstrained until then.
    pub constrain_after: Option<String>,
    /// Dropped as soon as the request gets a slot (the admission queue counts it until then).
    pub ticket: Option<Box<dyn Send>>,
}

/// Final numbers of a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionStats {
    /// Prompt tokens evaluated (a reused cached prefix is not counted).
    pub prompt_eval_count: usize,
    pub prompt_eval_duration: Duration,
    /// Generated tokens, the end-of-generation token included.
    pub eval_count: usize,
    pub eval_duration: Duration,
    /// `Stop` or `Length`.
    pub done_reason: DoneReason,
    /// Prompt and generated tokens (without a final end-of-generation token).
    pub tokens: Vec<u32>,
}

/// Log-probability of a token under the model's raw distribution (before penalties and
/// temperature), as Ollama reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    /// The most likely tokens at this position, best first.
    pub top: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Text safe to show: whole characters, never part of a stop sequence; with the
    /// log-probabilities of the tokens it completes (when asked for).
    Text(String, Vec<TokenLogprob>),
    /// The last event of a successful completion.
    Done(Box<CompletionStats>),
    /// The last event of a failed completion.
    Error(String),
}

/// A loaded model and its worker thread. Dropping it stops the worker once the sequences
/// in flight are finished or cancelled, which frees the weights and caches.
pub struct Runner {
    jobs: mpsc::Sender<Job>,
    tokenizer: Arc<Tokenizer>,
    info: RunnerInfo,
    /// The vocabulary trie for grammar constraints, built on first use.
    vocab: OnceLock<Arc<TokenVocab>>,
}

struct Job {
    completion: Completion,
    events: UnboundedSender<Event>,
}

impl Runner {
    /// Loads the GGUF model and starts the worker.
    pub fn load(path: &Path, cfg: &RunnerConfig) -> Result<Runner, String> {
        let model = Model::load(
            path,
            &LoadOptions {
                threads: cfg.threads,
            },
        )?;
        // Placement needs the model's shapes, so it is decided in `start`.
        let tokenizer = Tokenizer::from_gguf(&model.file, TokenizerOptions::default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Runner::start(model, tokenizer, cfg)
    }

    /// Starts a worker for an already loaded model.
    pub fn start(model: Model, tokenizer: Tokenizer, cfg: &RunnerConfig) -> Result<Runner, String> {
        let hp = &model.hp;
        let n_ctx_train = hp.n_ctx_train;
        let mut num_ctx = cfg.num_ctx.max(1);
        if n_ctx_train > 0 {
            num_ctx = num_ctx.min(n_ctx_train);
        }
        let num_parallel = cfg.num_parallel.max(1);
        if tokenizer.n_vocab() > hp.n_vocab {
            return Err(format!(
                "the tokenizer has {} tokens but the model only {}",
                tokenizer.n_vocab(),
                hp.n_vocab
            ));
        }
        let kv = KvShape {
            num_parallel,
            num_ctx,
        };
        let kv_layer = gpu::kv_bytes_per_layer(hp, kv);
        let placed = gpu::place(&model, cfg.num_gpu, kv, cfg.gpu_overhead).and_then(|g| {
            match gpu_caches(&model, &g, num_parallel, num_ctx) {
                Ok(caches) => Some((g, caches)),
                Err(e) => {
                    eprintln!("cannot allocate the KV caches on the GPU: {e}; running on the CPU");
                    None
                }
            }
        });
        let (gpu, caches, size, size_vram) = match placed {
            None => {
                let caches = (0..num_parallel)
                    .map(|_| Cache::Cpu(model.new_cache(num_ctx)))
                    .collect();
                let size = model
                    .file
                    .file_size()
                    .saturating_add(kv_layer.saturating_mul(hp.n_layer as u64));
                (None, caches, size, 0)
            }
            Some((g, caches)) => {
                let vram = g.weight_bytes() + caches.iter().map(Cache::gpu_bytes).sum::<u64>();
                let cpu_layers = g.first_gpu_layer() as u64;
                let cpu = gpu::cpu_weight_bytes(&model, g.gpu_layers())
                    .saturating_add(kv_layer.saturating_mul(cpu_layers));
                (Some(g), caches, vram.saturating_add(cpu), vram)
            }
        };
        let info = RunnerInfo {
            num_ctx,
            num_parallel,
            num_batch: cfg.num_batch.max(1),
            n_ctx_train,
            n_vocab: hp.n_vocab,
            size,
            size_vram,
            gpu_layers: gpu.as_ref().map_or(0, GpuModel::gpu_layers),
            gpu: gpu.as_ref().map(|g| g.context().adapter().to_string()),
        };
        let tokenizer = Arc::new(tokenizer);
        let (tx, rx) = mpsc::channel();
        let worker = Worker::new(model, gpu, caches, tokenizer.clone(), &info, rx);
        std::thread::Builder::new()
            .name("ferrite-runner".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the runner thread: {e}"))?;
        Ok(Runner {
            jobs: tx,
            tokenizer,
            info,
            vocab: OnceLock::new(),
        })
    }

    pub fn info(&self) -> &RunnerInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// The vocabulary prepared for grammar constraints (built on the first call: up to a
    /// second for a 262k vocabulary, so call it off the async threads).
    pub fn token_vocab(&self) -> Arc<TokenVocab> {
        self.vocab
            .get_or_init(|| Arc::new(TokenVocab::new(&self.tokenizer, self.info.n_vocab)))
            .clone()
    }

    /// Tokenizes prompt text whose special tokens are all meant (a raw prompt, a
    /// template's own text): see [`prompt_tokens`].
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        prompt_tokens(&self.tokenizer, text, &[])
    }

    /// Tokenizes a rendered prompt that holds the `literals` (message texts): see
    /// [`prompt_tokens`].
    pub fn tokenize_prompt(&self, text: &str, literals: &[&str]) -> Vec<u32> {
        prompt_tokens(&self.tokenizer, text, literals)
    }

    /// Token ids back to text (for a request's `context`).
    pub fn detokenize(&self, tokens: &[u32]) -> String {
        self.tokenizer.detokenize(tokens, false, false)
    }

    /// Queues a completion; it starts at the next step that has a free slot.
    pub fn submit(&self, completion: Completion) -> Result<UnboundedReceiver<Event>, String> {
        if completion.prompt.is_empty() {
            return Err("the prompt is empty".into());
        }
        if let Some(&t) = completion
            .prompt
            .iter()
            .find(|&&t| t as usize >= self.info.n_vocab)
        {
            return Err(format!(
                "token id {t} is outside the vocabulary ({} tokens)",
                self.info.n_vocab
            ));
        }
        let limit = completion.num_ctx.min(self.info.num_ctx);
        if completion.prompt.len() > limit {
            return Err(format!(
                "the prompt ({} tokens) exceeds the context length ({limit})",
                completion.prompt.len()
            ));
        }
        completion.sampler.validate()?;
        let (tx, rx) = unbounded_channel();
        self.jobs
            .send(Job {
                completion,
                events: tx,
            })
            .map_err(|_| "the model runner has stopped".to_string())?;
        Ok(rx)
    }
}

/// Fits a prompt into `num_ctx` tokens as Ollama's runner does: keep the first `num_keep`
/// tokens (one more for a BOS; negative = all), drop the oldest ones after them. Without
/// `truncate`, a prompt that does not fit is an error.
pub fn fit_prompt(
    mut tokens: Vec<u32>,
    num_ctx: usize,
    num_keep: i64,
    add_bos: bool,
    truncate: bool,
) -> Result<Vec<u32>, String> {
    if tokens.len() <= num_ctx {
        return Ok(tokens);
    }
    if !truncate || num_ctx == 0 {
        return Err("the input length exceeds the context length".into());
    }
    let mut keep = if num_keep < 0 {
        tokens.len()
    } else {
        usize::try_from(num_keep).unwrap_or(usize::MAX)
    };
    if add_bos {
        keep = keep.saturating_add(1);
    }
    keep = keep.min(num_ctx - 1).min(tokens.len());
    let discard = tokens.len() - num_ctx;
    tokens.drain(keep..keep + discard);
    Ok(tokens)
}

struct Seq {
    prompt: Vec<u32>,
    /// Prompt tokens already in the cache.
    fed: usize,
    num_ctx: usize,
    num_predict: i64,
    sampler: Sampler,
    stops: StopMatcher,
    decoder: StreamDecoder,
    events: UnboundedSender<Event>,
    /// Prompt + generated tokens (penalty history).
    history: Vec<u32>,
    /// Sampled, shown, and still to be fed to the model.
    next: Option<u32>,
    generated: usize,
    evaluated: usize,
    started: Option<Instant>,
    prompt_done: Option<Instant>,
    prompt_duration: Duration,
    logprobs: bool,
    top_logprobs: usize,
    /// Log-probabilities of tokens whose text is not out yet.
    pending_lp: Vec<TokenLogprob>,
    constraint: Option<Constraint>,
    /// While set: the text that activates `constraint`, and the text generated so far.
    constrain_after: Option<(String, String)>,
}

/// One slot's keys and values, where its layers are.
enum Cache {
    Cpu(KvCache),
    Gpu(GpuKvCache),
    Split(SplitCache),
}

impl Cache {
    fn n_ctx(&self) -> usize {
        match self {
            Cache::Cpu(c) => c.n_ctx(),
            Cache::Gpu(c) => c.n_ctx(),
            Cache::Split(c) => c.gpu.n_ctx(),
        }
    }
    fn truncate(&mut self, n: usize, hp: &HParams) {
        match self {
            Cache::Cpu(c) => c.truncate(n, hp),
            Cache::Gpu(c) => c.truncate(n),
            Cache::Split(c) => c.truncate(n, hp),
        }
    }
    fn clear(&mut self) {
        match self {
            Cache::Cpu(c) => c.clear(),
            Cache::Gpu(c) => c.clear(),
            Cache::Split(c) => c.clear(),
        }
    }
    fn gpu_bytes(&self) -> u64 {
        match self {
            Cache::Cpu(_) => 0,
            Cache::Gpu(c) => c.size_bytes(),
            Cache::Split(c) => c.gpu.size_bytes(),
        }
    }
}

/// Every slot's caches for a model placed (wholly or partly) on the GPU.
fn gpu_caches(
    model: &Model,
    g: &GpuModel,
    num_parallel: usize,
    num_ctx: usize,
) -> Result<Vec<Cache>, ferrite_shaders::GpuError> {
    (0..num_parallel)
        .map(|_| {
            if g.is_full() {
                g.new_cache(num_ctx).map(Cache::Gpu)
            } else {
                g.new_split_cache(model, num_ctx).map(Cache::Split)
            }
        })
        .collect()
}

struct Slot {
    cache: Cache,
    /// Exactly the tokens whose keys and values are in `cache`.
    cached: Vec<u32>,
    seq: Option<Seq>,
}

struct Worker {
    model: Model,
    /// The last layers (or all) on the GPU; the slots' caches match.
    gpu: Option<GpuModel>,
    tokenizer: Arc<Tokenizer>,
    slots: Vec<Slot>,
    num_batch: usize,
    jobs: mpsc::Receiver<Job>,
    waiting: VecDeque<Job>,
    closed: bool,
}

enum Finish {
    Stop,
    StopSequence,
    Length,
}

impl Worker {
    fn new(
        model: Model,
        gpu: Option<GpuModel>,
        caches: Vec<Cache>,
        tokenizer: Arc<Tokenizer>,
        info: &RunnerInfo,
        jobs: mpsc::Receiver<Job>,
    ) -> Worker {
        let slots = caches
            .into_iter()
            .map(|cache| Slot {
                cache,
                cached: Vec::new(),
                seq: None,
            })
            .collect();
        Worker {
            model,
            gpu,
            tokenizer,
            slots,
            num_batch: info.num_batch,
            jobs,
            waiting: VecDeque::new(),
            closed: false,
        }
    }

    fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.seq.is_some()).count()
    }

    fn run(mut self) {
        loop {
            if self.active() == 0 && self.waiting.is_empty() {
                if self.closed {
                    return;
                }
                match self.jobs.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(_) => return,
                }
            }
            loop {
                match self.jobs.try_recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.closed = true;
                        break;
                    }
                }
            }
            self.drop_cancelled();
            self.assign();
            self.step();
        }
    }

    fn drop_cancelled(&mut self) {
        self.waiting.retain(|j| !j.events.is_closed());
        for slot in &mut self.slots {
            if slot.seq.as_ref().is_some_and(|s| s.events.is_closed()) {
                slot.seq = None;
            }
        }
    }

    /// Gives free slots to waiting jobs, in arrival order, preferring the slot whose cache
    /// shares the longest prefix with the prompt.
    fn assign(&mut self) {
        while !self.waiting.is_empty() {
            let Some(job) = self.waiting.front() else {
                break;
            };
            let prompt = &job.completion.prompt;
            let best = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.seq.is_none())
                .map(|(i, s)| (i, common_prefix(&s.cached, prompt)))
                .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)));
            let Some((idx, common)) = best else { break };
            let job = self.waiting.pop_front().expect("front exists");
            let Job { completion, events } = job;
            drop(completion.ticket);
            let num_ctx = completion.num_ctx.min(self.slots[idx].cache.n_ctx());
            let sampler = match Sampler::new(completion.sampler, self.model.hp.n_vocab, num_ctx) {
                Ok(s) => s,
                Err(e) => {
                    let _ = events.send(Event::Error(e));
                    continue;
                }
            };
            // At least the last prompt token is evaluated again: its logits are needed.
            let reuse = common.min(completion.prompt.len() - 1);
            let slot = &mut self.slots[idx];
            slot.cache.truncate(reuse, &self.model.hp);
            slot.cached.truncate(reuse);
            slot.seq = Some(Seq {
                history: completion.prompt.clone(),
                prompt: completion.prompt,
                fed: reuse,
                num_ctx,
                num_predict: completion.num_predict,
                sampler,
                stops: StopMatcher::new(completion.stop),
                decoder: StreamDecoder::new(),
                events,
                next: None,
                generated: 0,
                evaluated: 0,
                started: None,
                prompt_done: None,
                prompt_duration: Duration::ZERO,
                logprobs: completion.logprobs || completion.top_logprobs > 0,
                top_logprobs: completion.top_logprobs.min(20),
                pending_lp: Vec::new(),
                constrain_after: completion
                    .constrain_after
                    .filter(|_| completion.constraint.is_some())
                    .map(|t| (t, String::new())),
                constraint: completion.constraint,
            });
        }
    }

    /// One forward pass over every active sequence, then sampling for those that are due.
    fn step(&mut self) {
        // (slot, tokens fed this step)
        let mut plan: Vec<(usize, Vec<u32>)> = Vec::new();
        let mut budget = self.num_batch;
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(tok) = slot.seq.as_ref().and_then(|s| s.next) {
                plan.push((i, vec![tok]));
                budget = budget.saturating_sub(1);
            }
        }
        let mut prefill_started = false;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(seq) = &slot.seq else { continue };
            if seq.next.is_some() || seq.fed >= seq.prompt.len() {
                continue;
            }
            // Prompts always progress, even when decode tokens used the whole budget.
            let room = if budget == 0 && !prefill_started {
                1
            } else {
                budget
            };
            if room == 0 {
                break;
            }
            let n = room.min(seq.prompt.len() - seq.fed);
            plan.push((i, seq.prompt[seq.fed..seq.fed + n].to_vec()));
            budget = budget.saturating_sub(n);
            prefill_started = true;
        }
        if plan.is_empty() {
            return;
        }
        plan.sort_by_key(|(i, _)| *i);

        let now = Instant::now();
        for (i, _) in &plan {
            if let Some(seq) = self.slots[*i].seq.as_mut() {
                seq.started.get_or_insert(now);
            }
        }
        let result = {
            let mut batch: Vec<(&mut Cache, &[u32])> = Vec::with_capacity(plan.len());
            let mut it = plan.iter().peekable();
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if let Some((_, toks)) = it.next_if(|(j, _)| *j == i) {
                    batch.push((&mut slot.cache, toks));
                }
            }
            let (model, gpu) = (&self.model, self.gpu.as_ref());
            std::panic::catch_unwind(AssertUnwindSafe(|| forward(model, gpu, &mut batch)))
                .unwrap_or_else(|_| Err("the model forward pass panicked".into()))
        };
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                for (i, _) in &plan {
                    let slot = &mut self.slots[*i];
                    if let Some(seq) = slot.seq.take() {
                        let _ = seq.events.send(Event::Error(e.clone()));
                    }
                    // A failed pass may have appended to some layers only.
                    slot.cache.clear();
                    slot.cached.clear();
                }
                return;
            }
        };
        let done_at = Instant::now();
        for ((i, toks), logits) in plan.into_iter().zip(logits) {
            let slot = &mut self.slots[i];
            slot.cached.extend_from_slice(&toks);
            let Some(seq) = slot.seq.as_mut() else {
                continue;
            };
            if seq.next.take().is_none() {
                seq.fed += toks.len();
                seq.evaluated += toks.len();
                if seq.fed < seq.prompt.len() {
                    continue;
                }
                seq.prompt_done = Some(done_at);
                seq.prompt_duration = done_at - seq.started.unwrap_or(done_at);
            }
            let cached = slot.cached.len();
            if let Some(outcome) = self.sample(i, &logits, cached) {
                self.finish(i, outcome);
            }
        }
    }

    /// Samples the next token of slot `i`; returns how the sequence ends, if it does.
    fn sample(
        &mut self,
        i: usize,
        logits: &[f32],
        cached: usize,
    ) -> Option<Result<Finish, String>> {
        let tokenizer = &self.tokenizer;
        let seq = self.slots[i].seq.as_mut()?;
        let constrained = seq.constrain_after.is_none();
        let tok = match seq.constraint.as_mut().filter(|_| constrained) {
            Some(c) => match c.sample(&mut seq.sampler, logits, &seq.history) {
                Ok(Some(t)) => t,
                // Complete, nothing may follow, and the model has no end token.
                Ok(None) => return Some(Ok(Finish::Stop)),
                Err(e) => return Some(Err(e)),
            },
            None => match seq.sampler.sample(logits, &seq.history) {
                Ok(t) => t,
                Err(e) => return Some(Err(e.to_string())),
            },
        };
        seq.generated += 1;
        seq.history.push(tok);
        if tokenizer.is_eog(tok) {
            return Some(Ok(Finish::Stop));
        }
        if seq.logprobs {
            seq.pending_lp
                .push(token_logprobs(tokenizer, logits, tok, seq.top_logprobs));
        }
        if let Some((tag, seen)) = &mut seq.constrain_after {
            // Rendered with special tokens: some models' `</think>` is one.
            seen.push_str(&String::from_utf8_lossy(
                tokenizer.token_to_piece(tok, true),
            ));
            if let Some(at) = seen.find(tag.as_str()) {
                // The rest of this token after the tag is the start of the answer.
                let rest = seen[at + tag.len()..].trim_start().to_string();
                seq.constrain_after = None;
                if let Some(c) = seq.constraint.as_mut() {
                    if !matches!(c.accept_bytes(rest.as_bytes()), Ok(true)) {
                        return Some(Err(
                            "the answer after the reasoning does not fit the format".into(),
                        ));
                    }
                }
            } else if seen.len() > 2 * tag.len() {
                // Keep only what could still hold the start of the tag.
                let mut cut = seen.len() - tag.len();
                while !seen.is_char_boundary(cut) {
                    cut -= 1;
                }
                seen.drain(..cut);
            }
        }
        let out = seq.stops.push(&seq.decoder.push(tokenizer, tok));
        if !out.emit.is_empty()
            && seq
                .events
                .send(Event::Text(out.emit, std::mem::take(&mut seq.pending_lp)))
                .is_err()
        {
            self.slots[i].seq = None;
            return None;
        }
        if out.stopped {
            return Some(Ok(Finish::StopSequence));
        }
        if seq.num_predict > 0 && seq.generated as i64 >= seq.num_predict {
            return Some(Ok(Finish::Length));
        }
        if cached + 1 > seq.num_ctx {
            return Some(Ok(Finish::Length));
        }
        seq.next = Some(tok);
        None
    }

    fn finish(&mut self, i: usize, outcome: Result<Finish, String>) {
        let Some(mut seq) = self.slots[i].seq.take() else {
            return;
        };
        let reason = match outcome {
            Err(e) => {
                let _ = seq.events.send(Event::Error(e));
                return;
            }
            Ok(Finish::StopSequence) => DoneReason::Stop,
            Ok(f) => {
                let tail = seq.stops.push(&seq.decoder.finish());
                let mut rest = tail.emit;
                rest.push_str(&seq.stops.finish());
                if !rest.is_empty() {
                    let _ = seq
                        .events
                        .send(Event::Text(rest, std::mem::take(&mut seq.pending_lp)));
                }
                match f {
                    Finish::Length => DoneReason::Length,
                    _ => DoneReason::Stop,
                }
            }
        };
        let now = Instant::now();
        let mut tokens = seq.history;
        if tokens.last().is_some_and(|&t| self.tokenizer.is_eog(t)) {
            tokens.pop();
        }
        let stats = CompletionStats {
            prompt_eval_count: seq.evaluated,
            prompt_eval_duration: seq.prompt_duration,
            eval_count: seq.generated,
            eval_duration: now - seq.prompt_done.unwrap_or(now),
            done_reason: reason,
            tokens,
        };
        let _ = seq.events.send(Event::Done(Box::new(stats)));
    }
}

/// One forward pass over `batch` (each slot's cache and the tokens it is fed); per slot
/// the logits of its last token. GPU errors come back as `Err`, like the CPU's.
fn forward(
    model: &Model,
    gpu: Option<&GpuModel>,
    batch: &mut [(&mut Cache, &[u32])],
) -> Result<Vec<Vec<f32>>, String> {
    const MISMATCH: &str = "internal error: a slot's cache does not match the model placement";
    let Some(g) = gpu else {
        let mut inputs = Vec::with_capacity(batch.len());
        for (cache, tokens) in batch.iter_mut() {
            let Cache::Cpu(cache) = &mut **cache else {
                return Err(MISMATCH.into());
            };
            inputs.push(SeqInput {
                cache,
                tokens,
                all_logits: false,
            });
        }
        return model.forward(&mut inputs);
    };
    if g.is_full() {
        let mut seqs = Vec::with_capacity(batch.len());
        for (cache, tokens) in batch.iter_mut() {
            let Cache::Gpu(cache) = &mut **cache else {
                return Err(MISMATCH.into());
            };
            seqs.push(GpuSeq { cache, tokens });
        }
        return g.forward_batch(&mut seqs).map_err(|e| e.to_string());
    }
    // Split: the CPU layers for every sequence in one batch, then the GPU layers likewise.
    let mut splits = Vec::with_capacity(batch.len());
    for (cache, tokens) in batch.iter_mut() {
        let Cache::Split(cache) = &mut **cache else {
            return Err(MISMATCH.into());
        };
        if cache.cpu.len() != cache.gpu.len() {
            return Err(format!(
                "internal error: CPU and GPU caches disagree ({} vs {} tokens)",
                cache.cpu.len(),
                cache.gpu.len()
            ));
        }
        splits.push((cache, *tokens));
    }
    let hidden = {
        let mut inputs: Vec<SeqInput<'_>> = splits
            .iter_mut()
            .map(|(cache, tokens)| SeqInput {
                cache: &mut cache.cpu,
                tokens,
                all_logits: false,
            })
            .collect();
        model.forward_layers(&mut inputs, g.first_gpu_layer())?
    };
    let mut seqs: Vec<GpuHiddenSeq<'_>> = splits
        .iter_mut()
        .zip(&hidden)
        .map(|((cache, tokens), h)| GpuHiddenSeq {
            cache: &mut cache.gpu,
            hidden: h,
            ntok: tokens.len(),
        })
        .collect();
    g.forward_hidden_batch(&mut seqs).map_err(|e| e.to_string())
}

fn piece(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tokenizer.token_to_piece(id, true).to_vec();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// `tok`'s log-softmax over the raw logits, and the `top` most likely tokens.
fn token_logprobs(tokenizer: &Tokenizer, logits: &[f32], tok: u32, top: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    let lp = |id: u32| (logits[id as usize] as f64 - lse) as f32;
    let mut best: Vec<u32> = Vec::with_capacity(top + 1);
    if top > 0 {
        for id in 0..logits.len() as u32 {
            let l = logits[id as usize];
            if best.len() == top && l <= logits[best[top - 1] as usize] {
                continue;
            }
            let at = best.partition_point(|&b| logits[b as usize] >= l);
            best.insert(at, id);
            best.truncate(top);
        }
    }
    let (token, bytes) = piece(tokenizer, tok);
    TokenLogprob {
        token,
        bytes,
        logprob: lp(tok),
        top: best
            .into_iter()
            .map(|id| {
                let (token, bytes) = piece(tokenizer, id);
                TokenLogprob {
                    token,
                    bytes,
                    logprob: lp(id),
                    top: Vec::new(),
                }
            })
            .collect(),
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_prompt_keeps_the_head_and_the_tail() {
        let p: Vec<u32> = (0..10).collect();
        assert_eq!(fit_prompt(p.clone(), 10, 4, false, true).unwrap(), p);
        assert_eq!(
            fit_prompt(p.clone(), 6, 2, false, true).unwrap(),
            vec![0, 1, 6, 7, 8, 9]
        );
        assert_eq!(
            fit_prompt(p.clone(), 6, 2, true, true).unwrap(),
            vec![0, 1, 2, 7, 8, 9]
        );
        // num_keep is capped so that something can be dropped.
        assert_eq!(
            fit_prompt(p.clone(), 4, -1, false, true).unwrap(),
            vec![0, 1, 2, 9]
        );
        assert_eq!(
            fit_prompt(p, 4, 4, false, false).unwrap_err(),
            "the input length exceeds the context length"
        );
    }

    /// GPU failures (here: a full cache, a cache of the wrong placement) are `Err`s that
    /// the worker sends to the requests, never panics. Runs on lavapipe in CI.
    #[test]
    fn gpu_errors_come_back_as_errors() {
        let path = ferrite_tests::model_path(ferrite_tests::Model::SmolLm2);
        let model = Model::load(path, &LoadOptions { threads: 1 }).unwrap();
        let ctx = crate::gpu::shared_context()
            .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}"));
        let toks = [1u32, 2, 3, 4, 5];
        for layers in [usize::MAX, 2] {
            let g = GpuModel::new(ctx.clone(), &model, layers).unwrap();
            let mut caches = gpu_caches(&model, &g, 1, 4).unwrap();
            let err = forward(&model, Some(&g), &mut [(&mut caches[0], &toks[..])]).unwrap_err();
            assert!(err.contains("context overflow"), "{layers} layers: {err}");
            let mut cpu = Cache::Cpu(model.new_cache(8));
            let err = forward(&model, Some(&g), &mut [(&mut cpu, &toks[..])]).unwrap_err();
            assert!(err.contains("does not match the model placement"), "{err}");
            // And a good pass after the errors.
            let mut caches = gpu_caches(&model, &g, 1, 8).unwrap();
            let logits = forward(&model, Some(&g), &mut [(&mut caches[0], &toks[..])]).unwrap();
            assert_eq!(logits[0].len(), model.hp.n_vocab);
            assert!(logits[0].iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }
}

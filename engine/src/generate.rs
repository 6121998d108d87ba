//! The generation loop: prompt processing in batches, then sample → decode →
//! stream, with stop sequences held back and end-of-generation tokens honoured.

use crate::model::{KvCache, Model, SeqInput};
use crate::sampler::{Sampler, SamplerOptions};
use crate::stop::StopMatcher;
use crate::tokenizer::{StreamDecoder, Tokenizer};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub sampler: SamplerOptions,
    /// Maximum tokens to generate; negative = until the context is full.
    pub num_predict: i64,
    pub stop: Vec<String>,
    /// Tokens per prompt-processing batch.
    pub num_batch: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            sampler: SamplerOptions::default(),
            num_predict: -1,
            stop: Vec::new(),
            num_batch: 512,
        }
    }
}

/// Why generation ended, as Ollama reports it in `done_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneReason {
    /// An end-of-generation token or a stop sequence.
    Stop,
    /// `num_predict` reached or the context filled up.
    Length,
    /// The caller's callback asked to stop (e.g. the client went away).
    Cancelled,
}

impl DoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
            DoneReason::Cancelled => "cancel",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub prompt_duration: Duration,
    pub eval_tokens: usize,
    pub eval_duration: Duration,
    pub done_reason: DoneReason,
    /// Every token of the sequence: prompt, then generated.
    pub tokens: Vec<u32>,
}

/// Run `prompt` (already tokenized) through `model` into `cache` and generate.
/// `on_text` receives each piece of text that is safe to show (whole UTF-8
/// characters, never a prefix of a stop sequence); returning `false` cancels.
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    cache: &mut KvCache,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<GenerateStats, String> {
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    if prompt.len() >= cache.n_ctx() - cache.len() {
        return Err(format!(
            "the prompt ({} tokens) does not fit the context window ({} tokens)",
            prompt.len(),
            cache.n_ctx() - cache.len()
        ));
    }
    let mut sampler = Sampler::new(opts.sampler.clone(), model.hp.n_vocab, cache.n_ctx())?;
    let batch = opts.num_batch.max(1);

    let t0 = Instant::now();
    let mut logits = Vec::new();
    for chunk in prompt.chunks(batch) {
        logits = model
            .forward(&mut [SeqInput {
                cache,
                tokens: chunk,
                all_logits: false,
            }])?
            .remove(0);
    }
    let prompt_duration = t0.elapsed();

    let mut tokens = prompt.to_vec();
    let mut stops = StopMatcher::new(opts.stop.iter());
    let mut decoder = StreamDecoder::new();
    let t1 = Instant::now();
    let mut generated = 0usize;
    let done_reason = loop {
        if opts.num_predict >= 0 && generated as i64 >= opts.num_predict {
            break DoneReason::Length;
        }
        let tok = sampler
            .sample(&logits, &tokens)
            .map_err(|e| e.to_string())?;
        generated += 1;
        tokens.push(tok);
        if tokenizer.is_eog(tok) {
            break DoneReason::Stop;
        }
        let out = stops.push(&decoder.push(tokenizer, tok));
        if !out.emit.is_empty() && !on_text(&out.emit) {
            break DoneReason::Cancelled;
        }
        if out.stopped {
            break DoneReason::Stop;
        }
        if cache.len() >= cache.n_ctx() {
            break DoneReason::Length;
        }
        logits = model
            .forward(&mut [SeqInput {
                cache,
                tokens: &[tok],
                all_logits: false,
            }])?
            .remove(0);
    };
    if done_reason != DoneReason::Cancelled && !stops.is_stopped() {
        let tail = stops.push(&decoder.finish());
        let mut rest = tail.emit;
        rest.push_str(&stops.finish());
        if !rest.is_empty() {
            on_text(&rest);
        }
    }
    Ok(GenerateStats {
        prompt_tokens: prompt.len(),
        prompt_duration,
        eval_tokens: generated,
        eval_duration: t1.elapsed(),
        done_reason,
        tokens,
    })
}

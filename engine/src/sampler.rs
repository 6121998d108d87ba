//! Token sampling: Ollama's runtime sampling options and llama.cpp's sampler chain.
//!
//! The chain follows llama.cpp's `common/sampling.cpp` as Ollama's llama-server runner uses it:
//! penalties → top_k → typical_p → top_p → min_p → temperature → softmax → draw with a seeded
//! RNG. `temperature <= 0` is greedy: the argmax of the penalised logits (ties → lowest id),
//! taken before any filter, as Ollama's own sampler does.
//!
//! Sampling is deterministic for a given seed on every platform: the RNG is our own
//! (SplitMix64-seeded xoshiro256**) and candidate order never depends on unstable sort details
//! (ties in every ordering are broken by token id).

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hasher};

/// Ollama's runtime sampling options (api.md §8), with Ollama's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    /// Softmax temperature; `<= 0` selects greedy decoding (Ollama clamps negatives to 0).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; `<= 0` disables the filter.
    pub top_k: i64,
    /// Nucleus sampling: keep the smallest set whose probability reaches `top_p`; `1` disables.
    pub top_p: f32,
    /// Keep tokens with probability ≥ `min_p` × the top probability; `0` disables.
    pub min_p: f32,
    /// Locally typical sampling mass; `1` disables.
    pub typical_p: f32,
    /// Multiplicative penalty for tokens in the recent window; `1` disables.
    pub repeat_penalty: f32,
    /// Size of the penalty window: `0` = off, `-1` = the whole context (`num_ctx`).
    pub repeat_last_n: i64,
    /// Subtracted once from the logit of every token present in the window.
    pub presence_penalty: f32,
    /// Subtracted per occurrence in the window.
    pub frequency_penalty: f32,
    /// RNG seed; `-1` = a fresh random seed.
    pub seed: i64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: -1,
        }
    }
}

impl SamplerOptions {
    /// Rejects values without a meaning. Accepted as Ollama/llama.cpp accept them: any
    /// `top_k` (`<= 0` = off, as llama.cpp and vLLM's `-1`), any finite temperature
    /// (`<= 0` = greedy), any finite presence/frequency penalty (negative ones encourage
    /// repetition, as in OpenAI's API), any seed (`-1` = random). Rejected: non-finite floats,
    /// probabilities outside `[0, 1]` (Ollama would silently clamp them), `repeat_penalty <= 0`
    /// (divides logits by zero or flips their sign), `repeat_last_n < -1`.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("min_p", self.min_p),
            ("typical_p", self.typical_p),
            ("repeat_penalty", self.repeat_penalty),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ];
        for (name, v) in finite {
            if !v.is_finite() {
                return Err(format!("option {name:?} must be a finite number, got {v}"));
            }
        }
        for (name, v) in [
            ("top_p", self.top_p),
            ("min_p", self.min_p),
            ("typical_p", self.typical_p),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("option {name:?} must be between 0 and 1, got {v}"));
            }
        }
        if self.repeat_penalty <= 0.0 {
            return Err(format!(
                "option \"repeat_penalty\" must be greater than 0 (1 disables it), got {}",
                self.repeat_penalty
            ));
        }
        if self.repeat_last_n < -1 {
            return Err(format!(
                "option \"repeat_last_n\" must be -1 (whole context), 0 (off) or positive, got {}",
                self.repeat_last_n
            ));
        }
        Ok(())
    }

    /// The penalty window length for a context of `num_ctx` tokens.
    pub fn penalty_window(&self, num_ctx: usize) -> usize {
        match self.repeat_last_n {
            -1 => num_ctx,
            n if n <= 0 => 0,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    fn penalties_active(&self) -> bool {
        self.repeat_penalty != 1.0 || self.frequency_penalty != 0.0 || self.presence_penalty != 0.0
    }
}

/// The last `window` tokens of `history` (all of it when shorter).
pub fn penalty_window(history: &[u32], window: usize) -> &[u32] {
    &history[history.len().saturating_sub(window)..]
}

/// Applies llama.cpp's penalties to `logits` for every distinct token in `window`
/// (already cut to `repeat_last_n`): a repeated token's logit is divided by `repeat_penalty`
/// when positive and multiplied by it otherwise, then `count · frequency_penalty` and
/// `presence_penalty` are subtracted. Tokens outside the vocabulary (`>= logits.len()`) are
/// ignored.
pub fn apply_penalties(
    logits: &mut [f32],
    window: &[u32],
    repeat_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
) {
    let mut counts = vec![0u32; logits.len()];
    penalize(
        logits,
        window,
        repeat_penalty,
        frequency_penalty,
        presence_penalty,
        &mut counts,
    );
}

/// `counts` must be all zero and as long as `logits`; it is left all zero.
fn penalize(
    logits: &mut [f32],
    window: &[u32],
    repeat: f32,
    freq: f32,
    presence: f32,
    counts: &mut [u32],
) {
    debug_assert_eq!(counts.len(), logits.len());
    let n = logits.len();
    for &t in window {
        if (t as usize) < n {
            counts[t as usize] += 1;
        }
    }
    // Second pass visits each distinct token once: its count is reset after use.
    for &t in window {
        let t = t as usize;
        if t >= n || counts[t] == 0 {
            continue;
        }
        let c = counts[t];
        counts[t] = 0;
        let l = &mut logits[t];
        if *l <= 0.0 {
            *l *= repeat;
        } else {
            *l /= repeat;
        }
        *l -= c as f32 * freq + presence;
    }
}

/// Index of the largest value; ties go to the lowest index. NaN never wins.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// Why a draw failed: the model produced logits nothing can be sampled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleError {
    /// A logit is NaN or +inf (a model/kernel bug).
    NonFiniteLogit { token: u32 },
    /// Every logit is -inf.
    NoCandidates,
}

impl std::fmt::Display for SampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleError::NonFiniteLogit { token } => {
                write!(
                    f,
                    "sample: logit of token {token} is NaN or +inf, check model output"
                )
            }
            SampleError::NoCandidates => write!(f, "sample: every logit is -inf"),
        }
    }
}

impl std::error::Error for SampleError {}

/// A candidate token during filtering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
    /// Probability over the current candidate set (valid after a softmax). In the final set,
    /// `logit` is the temperature-scaled logit shifted so that the largest is 0.
    pub p: f32,
}

/// Descending logit, ties by ascending id.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Sets `p` to the softmax of the logits over `cands` (max-subtracted).
fn softmax(cands: &mut [Candidate]) {
    let max = cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for c in cands.iter_mut() {
        c.p = (c.logit - max).exp();
        sum += c.p as f64;
    }
    let inv = (1.0 / sum) as f32;
    for c in cands.iter_mut() {
        c.p *= inv;
    }
}

/// Keeps the `k` best candidates, sorted by descending logit. O(n + k log k).
fn top_k(cands: &mut Vec<Candidate>, k: usize) {
    if k == 0 || k >= cands.len() {
        return;
    }
    cands.select_nth_unstable_by(k - 1, by_logit_desc);
    cands.truncate(k);
    cands.sort_unstable_by(by_logit_desc);
}

/// Collects the `k` best finite-logit tokens of `logits` into `out`, sorted, without
/// materialising every token: a token is kept only if it beats the current k-th best, and the
/// buffer is cut back to `k` whenever it reaches `2k`. Ties keep the lower id, as [`top_k`]
/// does. `k` must be positive.
fn collect_top_k(logits: &[f32], k: usize, out: &mut Vec<Candidate>) {
    out.clear();
    let cap = k.saturating_mul(2).max(k.saturating_add(64));
    // Strictly better than the k-th kept: an equal logit arriving later has a higher id.
    let mut threshold = f32::NEG_INFINITY;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > threshold {
            out.push(Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            });
            if out.len() == cap {
                out.select_nth_unstable_by(k - 1, by_logit_desc);
                out.truncate(k);
                threshold = out[k - 1].logit;
            }
        }
    }
    if k >= out.len() {
        out.sort_unstable_by(by_logit_desc);
    } else {
        top_k(out, k);
    }
}

/// Orders a growing prefix of `cands` by `cmp` and accumulates `p` along it until `done(cum)`;
/// returns the length of the prefix up to and including the token that satisfied `done`
/// (`cands.len()` if none did). Only the needed prefix gets sorted, so a nucleus of a few
/// hundred tokens out of 262k costs a few selections, not a full sort.
fn cumulative_prefix(
    cands: &mut [Candidate],
    cmp: impl Fn(&Candidate, &Candidate) -> Ordering,
    done: impl Fn(f32) -> bool,
) -> usize {
    let n = cands.len();
    let mut sorted = 0;
    let mut end = n.min(64);
    let mut cum = 0.0f32;
    loop {
        let rest = &mut cands[sorted..];
        let want = end - sorted;
        if want < rest.len() {
            rest.select_nth_unstable_by(want - 1, &cmp);
        }
        rest[..want].sort_unstable_by(&cmp);
        for (i, c) in cands[sorted..end].iter().enumerate() {
            cum += c.p;
            if done(cum) {
                return sorted + i + 1;
            }
        }
        if end == n {
            return n;
        }
        sorted = end;
        end = n.min(end.saturating_mul(4));
    }
}

/// Nucleus filter (llama.cpp): keep the most likely tokens until their mass reaches `p`.
fn top_p(cands: &mut Vec<Candidate>, p: f32) {
    if p >= 1.0 || cands.is_empty() {
        return;
    }
    softmax(cands);
    let keep = cumulative_prefix(cands, by_logit_desc, |cum| cum >= p);
    cands.truncate(keep);
}

/// Locally typical filter (llama.cpp): keep tokens whose surprisal is closest to the
/// entropy until their mass exceeds `p`. `logits_by_id` holds every candidate's logit at
/// its id: the filter borrows `logit` as its sort key and restores it from there.
fn typical_p(cands: &mut Vec<Candidate>, p: f32, logits_by_id: &[f32]) {
    if p >= 1.0 || cands.is_empty() {
        return;
    }
    softmax(cands);
    // p == 0 (underflow) contributes nothing to the entropy; 0·ln 0 would be NaN.
    let entropy: f32 = cands
        .iter()
        .filter(|c| c.p > 0.0)
        .map(|c| -c.p * c.p.ln())
        .sum();
    for c in cands.iter_mut() {
        c.logit = (-c.p.ln() - entropy).abs();
    }
    let keep = cumulative_prefix(
        cands,
        |a, b| a.logit.total_cmp(&b.logit).then(a.id.cmp(&b.id)),
        |cum| cum > p,
    );
    cands.truncate(keep);
    for c in cands.iter_mut() {
        c.logit = logits_by_id[c.id as usize];
    }
}

/// Min-p filter (llama.cpp): keep tokens with `p >= min_p · p_max`, i.e.
/// `logit >= max_logit + ln(min_p)`. Order is preserved.
fn min_p(cands: &mut Vec<Candidate>, p: f32) {
    if p <= 0.0 || cands.is_empty() {
        return;
    }
    let max = cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let min_logit = max + p.ln();
    cands.retain(|c| c.logit >= min_logit);
}

/// xoshiro256** seeded through SplitMix64: fast, tiny, identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut split = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [split(), split(), split(), split()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A seed from the OS-seeded hasher keys and the clock, for `seed = -1`.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(nanos);
    h.finish()
}

/// Samples next tokens for one sequence. Buffers are reused across calls, so a draw
/// allocates nothing after the first.
#[derive(Debug, Clone)]
pub struct Sampler {
    opts: SamplerOptions,
    vocab_size: usize,
    window: usize,
    seed: u64,
    rng: Rng,
    logits: Vec<f32>,
    counts: Vec<u32>,
    cands: Vec<Candidate>,
}

impl Sampler {
    /// Validates `opts`; `num_ctx` resolves `repeat_last_n = -1`.
    pub fn new(opts: SamplerOptions, vocab_size: usize, num_ctx: usize) -> Result<Self, String> {
        opts.validate()?;
        if vocab_size == 0 {
            return Err("sampler: vocabulary is empty".into());
        }
        if vocab_size > u32::MAX as usize {
            return Err(format!(
                "sampler: vocabulary of {vocab_size} tokens is too large"
            ));
        }
        let seed = if opts.seed == -1 {
            random_seed()
        } else {
            opts.seed as u64
        };
        Ok(Sampler {
            window: opts.penalty_window(num_ctx),
            opts,
            vocab_size,
            seed,
            rng: Rng::new(seed),
            logits: Vec::new(),
            counts: Vec::new(),
            cands: Vec::new(),
        })
    }

    pub fn options(&self) -> &SamplerOptions {
        &self.opts
    }

    /// The seed in use (the drawn one when `seed = -1`).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Picks the next token from `logits` (one per vocabulary entry) given the sequence so far
    /// (`history`: prompt + generated tokens; only the penalty window is read).
    ///
    /// Panics if `logits.len()` differs from the vocabulary size given to [`Sampler::new`].
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32, SampleError> {
        self.prepare(logits, history)?;
        self.choose()
    }

    /// Like [`Sampler::sample`], with only the tokens whose bit is set in `allowed` (bit
    /// `i % 64` of word `i / 64`) eligible: the others are masked to `-inf` after the
    /// penalties, before the filter chain (constrained decoding).
    ///
    /// Panics if `allowed` has fewer than `ceil(vocab / 64)` words.
    pub fn sample_masked(
        &mut self,
        logits: &[f32],
        history: &[u32],
        allowed: &[u64],
    ) -> Result<u32, SampleError> {
        assert!(
            allowed.len() * 64 >= logits.len(),
            "sampler: the token mask is shorter than the vocabulary"
        );
        self.prepare(logits, history)?;
        for (chunk, &bits) in self.logits.chunks_mut(64).zip(allowed) {
            if bits == u64::MAX {
                continue;
            }
            for (j, l) in chunk.iter_mut().enumerate() {
                if bits >> j & 1 == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        self.choose()
    }

    fn choose(&mut self) -> Result<u32, SampleError> {
        if self.opts.temperature <= 0.0 {
            return self.greedy();
        }
        self.filter();
        if self.cands.is_empty() {
            return Err(SampleError::NoCandidates);
        }
        Ok(self.draw())
    }

    /// The candidates the next draw would choose from, after the whole chain, with their
    /// final (temperature-scaled) probabilities; for greedy decoding, the argmax with p = 1.
    /// Draws nothing, so the RNG is untouched. Same panics as [`Sampler::sample`].
    pub fn candidates(
        &mut self,
        logits: &[f32],
        history: &[u32],
    ) -> Result<&[Candidate], SampleError> {
        self.prepare(logits, history)?;
        if self.opts.temperature <= 0.0 {
            let id = self.greedy()?;
            self.cands.clear();
            self.cands.push(Candidate {
                id,
                logit: self.logits[id as usize],
                p: 1.0,
            });
        } else {
            self.filter();
            if self.cands.is_empty() {
                return Err(SampleError::NoCandidates);
            }
        }
        Ok(&self.cands)
    }

    /// Copies `logits` into the work buffer, checks them and applies the penalties.
    fn prepare(&mut self, logits: &[f32], history: &[u32]) -> Result<(), SampleError> {
        assert_eq!(
            logits.len(),
            self.vocab_size,
            "sampler: logits length does not match the vocabulary size"
        );
        self.logits.clear();
        self.logits.extend_from_slice(logits);
        let window = penalty_window(history, self.window);
        if !window.is_empty() && self.opts.penalties_active() {
            self.counts.resize(self.vocab_size, 0);
            penalize(
                &mut self.logits,
                window,
                self.opts.repeat_penalty,
                self.opts.frequency_penalty,
                self.opts.presence_penalty,
                &mut self.counts,
            );
        }
        // Checked after the penalties, which can overflow a huge logit to ±inf. Non-short-
        // circuit `|` keeps the scan branch-free (vectorisable).
        let bad = |l: &f32| l.is_nan() | (*l == f32::INFINITY);
        if self.logits.iter().fold(false, |acc, l| acc | bad(l)) {
            let i = self.logits.iter().position(bad).unwrap_or(0);
            return Err(SampleError::NonFiniteLogit { token: i as u32 });
        }
        Ok(())
    }

    fn greedy(&self) -> Result<u32, SampleError> {
        let i = argmax(&self.logits);
        if self.logits[i] == f32::NEG_INFINITY {
            return Err(SampleError::NoCandidates);
        }
        Ok(i as u32)
    }

    /// Runs the filter chain on the penalised logits and leaves the survivors, with
    /// temperature-scaled probabilities, in `self.cands`. Requires `temperature > 0`.
    fn filter(&mut self) {
        let cands = &mut self.cands;
        // -inf tokens (masked) can never be drawn; dropping them also keeps the entropy finite.
        if self.opts.top_k > 0 {
            let k = usize::try_from(self.opts.top_k).unwrap_or(usize::MAX);
            collect_top_k(&self.logits, k, cands);
        } else {
            cands.clear();
            cands.extend(
                self.logits
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l != f32::NEG_INFINITY)
                    .map(|(i, &logit)| Candidate {
                        id: i as u32,
                        logit,
                        p: 0.0,
                    }),
            );
        }
        if cands.is_empty() {
            return;
        }
        typical_p(cands, self.opts.typical_p, &self.logits);
        top_p(cands, self.opts.top_p);
        min_p(cands, self.opts.min_p);
        // Shifting by the max first keeps a tiny temperature from overflowing to inf − inf.
        let max = cands
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let t = self.opts.temperature;
        for c in cands.iter_mut() {
            c.logit = (c.logit - max) / t;
        }
        softmax(cands);
    }

    fn draw(&mut self) -> u32 {
        let total: f64 = self.cands.iter().map(|c| c.p as f64).sum();
        let r = self.rng.next_f64() * total;
        let mut cum = 0.0f64;
        for c in &self.cands {
            cum += c.p as f64;
            if r < cum {
                return c.id;
            }
        }
        // Rounding left r at the very top: the last token with mass.
        self.cands
            .iter()
            .rev()
            .find(|c| c.p > 0.0)
            .unwrap_or(&self.cands[0])
            .id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options that disable every filter: plain softmax sampling at temperature `t`.
    fn plain(t: f32, seed: i64) -> SamplerOptions {
        SamplerOptions {
            temperature: t,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            typical_p: 1.0,
            seed,
            ..SamplerOptions::default()
        }
    }

    fn ln_probs(p: &[f64]) -> Vec<f32> {
        p.iter().map(|&x| x.ln() as f32).collect()
    }

    fn candidate_ids(opts: SamplerOptions, logits: &[f32], history: &[u32]) -> Vec<u32> {
        let mut s = Sampler::new(opts, logits.len(), 4096).unwrap();
        let mut ids: Vec<u32> = s
            .candidates(logits, history)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn frequencies(opts: SamplerOptions, logits: &[f32], draws: usize) -> Vec<f64> {
        let mut s = Sampler::new(opts, logits.len(), 4096).unwrap();
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..draws {
            counts[s.sample(logits, &[]).unwrap() as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    /// Deterministic pseudo-random logits in [-8, 8).
    fn random_logits(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| (rng.next_f64() * 16.0 - 8.0) as f32)
            .collect()
    }

    #[test]
    fn defaults_match_ollama() {
        let d = SamplerOptions::default();
        assert_eq!(d.temperature, 0.8);
        assert_eq!(d.top_k, 40);
        assert_eq!(d.top_p, 0.9);
        assert_eq!(d.min_p, 0.0);
        assert_eq!(d.typical_p, 1.0);
        assert_eq!(d.repeat_penalty, 1.0);
        assert_eq!(d.repeat_last_n, 64);
        assert_eq!(d.presence_penalty, 0.0);
        assert_eq!(d.frequency_penalty, 0.0);
        assert_eq!(d.seed, -1);
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn greedy_picks_argmax() {
        let logits = [0.1, 2.0, -1.0, 1.9, f32::NEG_INFINITY];
        for t in [0.0, -1.0] {
            let opts = SamplerOptions {
                temperature: t,
                ..SamplerOptions::default()
            };
            let mut s = Sampler::new(opts, logits.len(), 16).unwrap();
            for _ in 0..10 {
                assert_eq!(s.sample(&logits, &[]).unwrap(), 1);
            }
        }
    }

    #[test]
    fn greedy_ties_go_to_lowest_id() {
        let logits = [1.0, 3.0, 3.0, 2.0, 3.0];
        let mut s = Sampler::new(plain(0.0, 1), logits.len(), 16).unwrap();
        assert_eq!(s.sample(&logits, &[]).unwrap(), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    }

    #[test]
    fn greedy_uses_penalised_logits() {
        let logits = [2.0, 1.5, 0.0];
        let opts = SamplerOptions {
            temperature: 0.0,
            repeat_penalty: 2.0,
            ..SamplerOptions::default()
        };
        let mut s = Sampler::new(opts, 3, 16).unwrap();
        assert_eq!(s.sample(&logits, &[]).unwrap(), 0);
        assert_eq!(s.sample(&logits, &[0]).unwrap(), 1);
    }

    #[test]
    fn top_k_one_always_picks_argmax() {
        for seed in 0..5u64 {
            let logits = random_logits(1000, seed);
            let best = argmax(&logits) as u32;
            let opts = SamplerOptions {
                temperature: 5.0,
                top_k: 1,
                top_p: 1.0,
                seed: seed as i64,
                ..SamplerOptions::default()
            };
            let mut s = Sampler::new(opts, logits.len(), 16).unwrap();
            for _ in 0..200 {
                assert_eq!(s.sample(&logits, &[]).unwrap(), best);
            }
        }
    }

    #[test]
    fn top_k_keeps_exactly_the_k_best() {
        let logits = random_logits(5000, 7);
        let mut order: Vec<u32> = (0..5000).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        for k in [1usize, 2, 40, 777] {
            let opts = SamplerOptions {
                top_k: k as i64,
                ..plain(1.0, 1)
            };
            let mut want = order[..k].to_vec();
            want.sort_unstable();
            assert_eq!(candidate_ids(opts, &logits, &[]), want, "k={k}");
        }
        // 0, negative and oversized k keep everything.
        for k in [0i64, -1, 5000, 1 << 40] {
            let opts = SamplerOptions {
                top_k: k,
                ..plain(1.0, 1)
            };
            assert_eq!(candidate_ids(opts, &logits, &[]).len(), 5000, "k={k}");
        }
    }

    #[test]
    fn streamed_top_k_matches_full_selection() {
        // Few distinct values: many ties across buffer cut-backs; lower ids must win.
        let mut rng = Rng::new(2);
        let mut logits: Vec<f32> = (0..20_000).map(|_| (rng.next_u64() % 7) as f32).collect();
        logits[5] = f32::NEG_INFINITY;
        for k in [1usize, 3, 40, 1000, 19_999, 20_000, 50_000] {
            let mut got = Vec::new();
            collect_top_k(&logits, k, &mut got);
            let mut all: Vec<Candidate> = logits
                .iter()
                .enumerate()
                .filter(|(_, l)| **l != f32::NEG_INFINITY)
                .map(|(i, &logit)| Candidate {
                    id: i as u32,
                    logit,
                    p: 0.0,
                })
                .collect();
            all.sort_by(by_logit_desc);
            all.truncate(k);
            assert_eq!(got, all, "k={k}");
        }
    }

    #[test]
    fn fixed_seed_is_reproducible_and_seeds_differ() {
        let logits = random_logits(2000, 3);
        let run = |seed: i64| {
            let opts = SamplerOptions {
                temperature: 1.5,
                top_k: 0,
                top_p: 1.0,
                seed,
                ..SamplerOptions::default()
            };
            let mut s = Sampler::new(opts, logits.len(), 16).unwrap();
            (0..300)
                .map(|_| s.sample(&logits, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        let b = run(43);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        // The distribution is wide: two independent streams agree on a few draws at most.
        assert!(same < 60, "seeds 42 and 43 agree on {same}/300 draws");
        // Many distinct tokens are drawn, so the draws really are random.
        let mut distinct = a.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() > 50,
            "only {} distinct tokens",
            distinct.len()
        );
    }

    #[test]
    fn random_seed_differs_between_samplers() {
        let a = Sampler::new(plain(1.0, -1), 10, 16).unwrap();
        let b = Sampler::new(plain(1.0, -1), 10, 16).unwrap();
        assert_ne!(a.seed(), b.seed());
        let c = Sampler::new(plain(1.0, 12345), 10, 16).unwrap();
        assert_eq!(c.seed(), 12345);
        let d = Sampler::new(plain(1.0, -7), 10, 16).unwrap();
        assert_eq!(d.seed(), (-7i64) as u64);
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut rng = Rng::new(0);
        let n = 100_000;
        let mut buckets = [0usize; 10];
        for _ in 0..n {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
            buckets[(x * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((b as f64 / n as f64 - 0.1).abs() < 0.01, "{buckets:?}");
        }
    }

    #[test]
    fn temperature_changes_frequencies_as_expected() {
        let logits = [0.0f32, 1.0, 2.0];
        let draws = 20_000;
        let mut top = Vec::new();
        for t in [0.5f32, 1.0, 2.0] {
            let freq = frequencies(plain(t, 9), &logits, draws);
            let z: f64 = logits.iter().map(|&l| (l as f64 / t as f64).exp()).sum();
            for (i, &l) in logits.iter().enumerate() {
                let want = (l as f64 / t as f64).exp() / z;
                assert!(
                    (freq[i] - want).abs() < 0.02,
                    "t={t} token {i}: {} vs {want}",
                    freq[i]
                );
            }
            top.push(freq[2]);
        }
        // Sharpening raises the top token's share, flattening lowers it.
        assert!(top[0] > top[1] + 0.1 && top[1] > top[2] + 0.1, "{top:?}");
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let logits = ln_probs(&[0.5, 0.3, 0.15, 0.05]);
        let ids = |p: f32| {
            candidate_ids(
                SamplerOptions {
                    top_p: p,
                    ..plain(1.0, 1)
                },
                &logits,
                &[],
            )
        };
        assert_eq!(ids(0.0), [0]);
        assert_eq!(ids(0.4), [0]);
        assert_eq!(ids(0.75), [0, 1]);
        assert_eq!(ids(0.85), [0, 1, 2]);
        assert_eq!(ids(0.99), [0, 1, 2, 3]);
        assert_eq!(ids(1.0), [0, 1, 2, 3]);
    }

    /// A nucleus of thousands of tokens: exercises the growing partial sort.
    #[test]
    fn top_p_large_vocab_matches_full_sort() {
        let logits = random_logits(262_144, 11);
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        let max = logits[order[0] as usize] as f64;
        let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        // cum[i] = mass of the i most likely tokens, in f64.
        let mut cum = vec![0.0f64];
        for &id in &order {
            cum.push(cum.last().unwrap() + (logits[id as usize] as f64 - max).exp() / z);
        }
        for p in [0.3f32, 0.9, 0.999] {
            let got = candidate_ids(
                SamplerOptions {
                    top_p: p,
                    ..plain(1.0, 1)
                },
                &logits,
                &[],
            );
            let n = got.len();
            assert!(
                n > 64,
                "p={p}: the nucleus should span several growth steps"
            );
            // Exactly the n most likely tokens ...
            let mut want = order[..n].to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "p={p}");
            // ... where n is where the mass reaches p (f32 accumulation tolerance).
            let p = p as f64;
            assert!(cum[n - 1] < p + 1e-4 && cum[n] >= p - 1e-4, "p={p} n={n}");
        }
    }

    #[test]
    fn min_p_keeps_tokens_above_the_scaled_maximum() {
        let logits = ln_probs(&[0.5, 0.3, 0.15, 0.05]);
        let ids = |p: f32| {
            candidate_ids(
                SamplerOptions {
                    min_p: p,
                    ..plain(1.0, 1)
                },
                &logits,
                &[],
            )
        };
        assert_eq!(ids(0.0), [0, 1, 2, 3]);
        assert_eq!(ids(0.05), [0, 1, 2, 3]);
        assert_eq!(ids(0.25), [0, 1, 2]);
        assert_eq!(ids(0.5), [0, 1]);
        assert_eq!(ids(0.7), [0]);
        assert_eq!(ids(1.0), [0]);
    }

    #[test]
    fn typical_p_keeps_the_most_typical_tokens() {
        // H = 1.2799; |surprisal − H| = [0.364, 0.076, 0.329, 1.023]: token 1 is the most
        // typical, then 2, then 0 (the most likely one), then 3.
        let logits = ln_probs(&[0.4, 0.3, 0.2, 0.1]);
        let ids = |p: f32| {
            candidate_ids(
                SamplerOptions {
                    typical_p: p,
                    ..plain(1.0, 1)
                },
                &logits,
                &[],
            )
        };
        assert_eq!(ids(0.0), [1]);
        assert_eq!(ids(0.25), [1]);
        assert_eq!(ids(0.45), [1, 2]);
        assert_eq!(ids(0.85), [0, 1, 2]);
        assert_eq!(ids(0.95), [0, 1, 2, 3]);
        assert_eq!(ids(1.0), [0, 1, 2, 3]);
    }

    #[test]
    fn typical_p_restores_logits_for_later_stages() {
        let logits = ln_probs(&[0.4, 0.3, 0.2, 0.1]);
        let opts = SamplerOptions {
            typical_p: 0.45,
            ..plain(1.0, 1)
        };
        let mut s = Sampler::new(opts, 4, 16).unwrap();
        let cands = s.candidates(&logits, &[]).unwrap();
        let p = |id| cands.iter().find(|c| c.id == id).unwrap().p;
        // Renormalised over {1, 2}: 0.3 / 0.5 and 0.2 / 0.5.
        assert!((p(1) - 0.6).abs() < 1e-5 && (p(2) - 0.4).abs() < 1e-5);
    }

    #[test]
    fn chain_order_top_k_then_top_p_then_min_p() {
        let logits = ln_probs(&[0.3, 0.25, 0.2, 0.15, 0.1]);
        // top_k 3 renormalises to [0.4, 0.333, 0.267]; top_p 0.7 then keeps two.
        let opts = SamplerOptions {
            top_k: 3,
            top_p: 0.7,
            ..plain(1.0, 1)
        };
        assert_eq!(candidate_ids(opts.clone(), &logits, &[]), [0, 1]);
        // min_p 0.9 of the maximum drops token 1 (0.25 < 0.27).
        let opts = SamplerOptions { min_p: 0.9, ..opts };
        assert_eq!(candidate_ids(opts, &logits, &[]), [0]);
    }

    #[test]
    fn final_probabilities_include_temperature() {
        let logits = ln_probs(&[0.5, 0.3, 0.2]);
        let mut s = Sampler::new(plain(0.5, 1), 3, 16).unwrap();
        let cands = s.candidates(&logits, &[]).unwrap();
        // T = 0.5 squares and renormalises: 0.25, 0.09, 0.04 over 0.38.
        for (id, want) in [(0u32, 0.25 / 0.38), (1, 0.09 / 0.38), (2, 0.04 / 0.38)] {
            let got = cands.iter().find(|c| c.id == id).unwrap().p;
            assert!((got - want as f32).abs() < 1e-5, "{id}: {got} vs {want}");
        }
    }

    #[test]
    fn penalties_change_logits_exactly() {
        let mut logits = [2.0f32, -1.0, 0.0, 3.0, 1.0];
        apply_penalties(&mut logits, &[0, 1, 2, 0, 0, 99], 2.0, 0.5, 0.25);
        // token 0 ×3: 2 / 2 − (3·0.5 + 0.25); token 1: −1 · 2 − 0.75; token 2: 0 · 2 − 0.75.
        assert_eq!(logits, [-0.75, -2.75, -0.75, 3.0, 1.0]);

        let mut logits = [2.0f32, -1.0, 4.0];
        apply_penalties(&mut logits, &[0, 1, 1], 1.0, 0.0, 0.0);
        assert_eq!(logits, [2.0, -1.0, 4.0]);
        apply_penalties(&mut logits, &[0, 1, 1], 1.0, 1.0, 0.0);
        assert_eq!(logits, [1.0, -3.0, 4.0]);
        apply_penalties(&mut logits, &[2, 2], 1.0, 0.0, -0.5);
        assert_eq!(logits, [1.0, -3.0, 4.5]);
    }

    #[test]
    fn sampler_applies_penalties_before_filters() {
        // Without penalties top_k 1 keeps token 0; the presence penalty demotes it.
        let logits = [3.0f32, 2.5, 0.0];
        let opts = SamplerOptions {
            top_k: 1,
            presence_penalty: 1.0,
            ..plain(1.0, 1)
        };
        assert_eq!(candidate_ids(opts.clone(), &logits, &[]), [0]);
        assert_eq!(candidate_ids(opts, &logits, &[0]), [1]);
    }

    #[test]
    fn repeat_last_n_window() {
        assert_eq!(penalty_window(&[1, 2, 3], 2), [2, 3]);
        assert_eq!(penalty_window(&[1, 2, 3], 10), [1, 2, 3]);
        assert_eq!(penalty_window(&[1, 2, 3], 0), [] as [u32; 0]);
        let o = |n| SamplerOptions {
            repeat_last_n: n,
            ..SamplerOptions::default()
        };
        assert_eq!(o(0).penalty_window(100), 0);
        assert_eq!(o(-1).penalty_window(100), 100);
        assert_eq!(o(64).penalty_window(100), 64);

        // Token 0 is the oldest in the history: penalised only if the window reaches it.
        let logits = [3.0f32, 2.9, 1.0];
        let history = [0u32, 2, 2];
        let pick = |n: i64, num_ctx: usize| {
            let opts = SamplerOptions {
                temperature: 0.0,
                repeat_penalty: 10.0,
                repeat_last_n: n,
                ..SamplerOptions::default()
            };
            let mut s = Sampler::new(opts, 3, num_ctx).unwrap();
            s.sample(&logits, &history).unwrap()
        };
        assert_eq!(pick(0, 4096), 0);
        assert_eq!(pick(2, 4096), 0);
        assert_eq!(pick(3, 4096), 1);
        assert_eq!(pick(64, 4096), 1);
        assert_eq!(pick(-1, 3), 1);
        assert_eq!(pick(-1, 2), 0);
    }

    #[test]
    fn validation_errors() {
        let bad = |o: SamplerOptions, name: &str| {
            let err = o.validate().unwrap_err();
            assert!(err.contains(name), "{err}");
            assert!(Sampler::new(o, 10, 16).is_err());
        };
        let d = SamplerOptions::default;
        bad(
            SamplerOptions {
                temperature: f32::NAN,
                ..d()
            },
            "temperature",
        );
        bad(
            SamplerOptions {
                temperature: f32::INFINITY,
                ..d()
            },
            "temperature",
        );
        bad(SamplerOptions { top_p: 1.5, ..d() }, "top_p");
        bad(SamplerOptions { top_p: -0.1, ..d() }, "top_p");
        bad(
            SamplerOptions {
                top_p: f32::NAN,
                ..d()
            },
            "top_p",
        );
        bad(SamplerOptions { min_p: 2.0, ..d() }, "min_p");
        bad(SamplerOptions { min_p: -1.0, ..d() }, "min_p");
        bad(
            SamplerOptions {
                typical_p: 1.01,
                ..d()
            },
            "typical_p",
        );
        bad(
            SamplerOptions {
                repeat_penalty: 0.0,
                ..d()
            },
            "repeat_penalty",
        );
        bad(
            SamplerOptions {
                repeat_penalty: -1.0,
                ..d()
            },
            "repeat_penalty",
        );
        bad(
            SamplerOptions {
                presence_penalty: f32::NEG_INFINITY,
                ..d()
            },
            "presence_penalty",
        );
        bad(
            SamplerOptions {
                frequency_penalty: f32::NAN,
                ..d()
            },
            "frequency_penalty",
        );
        bad(
            SamplerOptions {
                repeat_last_n: -2,
                ..d()
            },
            "repeat_last_n",
        );
        // Accepted as Ollama/llama.cpp accept them.
        for ok in [
            SamplerOptions { top_k: -1, ..d() },
            SamplerOptions { top_k: 0, ..d() },
            SamplerOptions {
                temperature: -1.0,
                ..d()
            },
            SamplerOptions { top_p: 0.0, ..d() },
            SamplerOptions { top_p: 1.0, ..d() },
            SamplerOptions { min_p: 1.0, ..d() },
            SamplerOptions {
                typical_p: 0.0,
                ..d()
            },
            SamplerOptions {
                repeat_last_n: -1,
                ..d()
            },
            SamplerOptions {
                presence_penalty: -2.0,
                frequency_penalty: 2.0,
                ..d()
            },
            SamplerOptions { seed: -5, ..d() },
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok:?}");
        }
        assert!(Sampler::new(d(), 0, 16).is_err());
    }

    #[test]
    fn bad_logits_are_errors() {
        let mut s = Sampler::new(SamplerOptions::default(), 3, 16).unwrap();
        assert_eq!(
            s.sample(&[0.0, f32::NAN, 1.0], &[]),
            Err(SampleError::NonFiniteLogit { token: 1 })
        );
        assert_eq!(
            s.sample(&[f32::INFINITY, 0.0, 1.0], &[]),
            Err(SampleError::NonFiniteLogit { token: 0 })
        );
        let ninf = [f32::NEG_INFINITY; 3];
        assert_eq!(s.sample(&ninf, &[]), Err(SampleError::NoCandidates));
        let mut g = Sampler::new(plain(0.0, 1), 3, 16).unwrap();
        assert_eq!(g.sample(&ninf, &[]), Err(SampleError::NoCandidates));
    }

    #[test]
    fn masked_tokens_are_never_drawn() {
        let logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        let opts = SamplerOptions {
            typical_p: 0.9,
            ..plain(1.0, 5)
        };
        let f = frequencies(opts, &logits, 2000);
        assert_eq!((f[0], f[2]), (0.0, 0.0));
        assert!(f[1] > 0.3 && f[3] > 0.3, "{f:?}");
    }

    #[test]
    #[should_panic(expected = "vocabulary size")]
    fn logits_length_mismatch_panics() {
        let mut s = Sampler::new(SamplerOptions::default(), 3, 16).unwrap();
        let _ = s.sample(&[0.0, 1.0], &[]);
    }

    #[test]
    fn default_chain_on_a_large_vocabulary() {
        let logits = random_logits(262_144, 5);
        let opts = SamplerOptions {
            seed: 3,
            repeat_penalty: 1.1,
            ..SamplerOptions::default()
        };
        let mut s = Sampler::new(opts, logits.len(), 4096).unwrap();
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        let mut history = Vec::new();
        for _ in 0..50 {
            let t = s.sample(&logits, &history).unwrap();
            // top_k 40 (penalties only lower logits, so the pick is among the top 40 + window).
            assert!(order[..40 + history.len()].contains(&t));
            history.push(t);
        }
    }
}

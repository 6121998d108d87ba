//! The decoder of `engine::model` on the GPU: the same graph (llama / qwen2 /
//! gemma3 flags: biases, Q/K norms, post norms, sliding window, GeGLU, embedding
//! scale, tied output, logit soft-capping), weights uploaded once, the KV cache on
//! the GPU, one command encoder per forward pass and only the logits read back.
//!
//! Placement follows Ollama's `num_gpu`: [`GpuModel::new`] takes how many of the
//! last layers to put on the GPU; with all of them the embedding lookup runs there
//! too ([`GpuModel::forward`]), otherwise the caller runs the first layers on the
//! CPU and hands the hidden states over ([`GpuModel::forward_hidden`]).

use crate::graph::{rope_table, Arena, AttnShape, KvBuffer, Recorder};
use crate::pipelines::Ew;
use crate::{GpuContext, GpuError, GpuTensor};
use engine::model::{Activation, HParams, KvCache, Matrix, Model, SeqInput};
use kernels::ops::Rope;
use kernels::GgmlType;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

mod exact_chunk;

/// What the exact path ([`crate::exact`]) needs besides the weights.
struct ExactPath {
    flavor: kernels::ggml_math::Flavor,
    gelu: Option<crate::exact::ops::GeluTable>,
}

struct GpuLayer {
    attn_norm: GpuTensor,
    wq: Arc<GpuTensor>,
    wk: Arc<GpuTensor>,
    wv: Arc<GpuTensor>,
    wo: Arc<GpuTensor>,
    bq: Option<GpuTensor>,
    bk: Option<GpuTensor>,
    bv: Option<GpuTensor>,
    q_norm: Option<GpuTensor>,
    k_norm: Option<GpuTensor>,
    post_attn_norm: Option<GpuTensor>,
    ffn_norm: GpuTensor,
    w_gate: Arc<GpuTensor>,
    w_up: Arc<GpuTensor>,
    w_down: Arc<GpuTensor>,
    post_ffn_norm: Option<GpuTensor>,
}

/// Keys and values of one sequence for the GPU layers, in GPU memory (f16).
pub struct GpuKvCache {
    k: Vec<KvBuffer>,
    v: Vec<KvBuffer>,
    len: usize,
    n_ctx: usize,
}

impl GpuKvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Forget everything after the first `n` tokens (prefix reuse); later tokens overwrite them.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Bytes of GPU memory held.
    pub fn size_bytes(&self) -> u64 {
        self.k.iter().chain(&self.v).map(|b| b.size_bytes()).sum()
    }
}

/// One sequence's caches when a model is split: the CPU layers' and the GPU layers'.
pub struct SplitCache {
    pub cpu: KvCache,
    pub gpu: GpuKvCache,
}

impl SplitCache {
    pub fn len(&self) -> usize {
        self.gpu.len()
    }
    pub fn is_empty(&self) -> bool {
        self.gpu.is_empty()
    }
    /// Forget everything after the first `n` tokens (prefix reuse).
    pub fn truncate(&mut self, n: usize, hp: &HParams) {
        self.cpu.truncate(n, hp);
        self.gpu.truncate(n);
    }
    pub fn clear(&mut self) {
        self.cpu.clear();
        self.gpu.clear();
    }
}

/// A model's last `gpu_layers` layers (and its output) on a GPU.
pub struct GpuModel {
    ctx: Arc<GpuContext>,
    hp: HParams,
    first_layer: usize,
    /// Present when every layer is on the GPU.
    token_embd: Option<Arc<GpuTensor>>,
    layers: Vec<GpuLayer>,
    output_norm: GpuTensor,
    output: Arc<GpuTensor>,
    rope_global: Rope,
    rope_swa: Rope,
    weight_bytes: u64,
    arena: Mutex<Option<Arena>>,
    /// Present when every op has an exact shader for this model (see [`GpuModel::is_exact`]).
    exact: Option<ExactPath>,
}

/// Offsets (f32 elements) of one forward chunk's activations in the arena.
struct Layout {
    ids: usize,
    x: usize,
    h: usize,
    q: usize,
    k: usize,
    v: usize,
    att: usize,
    o: usize,
    gate: usize,
    up: usize,
    cs_global: usize,
    cs_swa: usize,
    fin: usize,
    logits: usize,
    /// Quantized copy of a matmul input.
    xq: usize,
    total: usize,
}

impl Layout {
    /// `b` tokens of `nseq` sequences (each sequence's last token gets logits).
    fn new(hp: &HParams, b: usize, nseq: usize) -> Layout {
        let mut at = 0;
        // Regions start at multiples of 4: matmul reads its input as vec4.
        let mut take = |n: usize| {
            let o = at;
            at = (at + n).next_multiple_of(4);
            o
        };
        let d = hp.n_embd;
        let l = Layout {
            ids: take(b),
            x: take(b * d),
            h: take(b * d),
            q: take(b * hp.q_dim()),
            k: take(b * hp.kv_dim_k()),
            v: take(b * hp.kv_dim_v()),
            att: take(b * hp.n_head * hp.head_dim_v),
            o: take(b * d),
            gate: take(b * hp.n_ff),
            up: take(b * hp.n_ff),
            cs_global: take(b * hp.n_rot),
            cs_swa: take(b * hp.n_rot),
            fin: take(nseq * d),
            logits: take(nseq * hp.n_vocab),
            // Values, then Q8_1 block sums; or the exact path's quantized activations.
            xq: take(
                [d, hp.n_ff, hp.n_head * hp.head_dim_v]
                    .iter()
                    .map(|&c| {
                        (b.max(nseq) * c * 33 / 32 + 1)
                            .max(crate::exact::mm::scratch_len(c, b.max(nseq)))
                    })
                    .max()
                    .unwrap_or(0),
            ),
            total: 0,
        };
        Layout { total: at, ..l }
    }
}

/// Most tokens one forward chunk carries (longer prompts are split).
const MAX_BATCH: usize = 512;

fn vector(ctx: &GpuContext, name: &str, v: &[f32]) -> Result<GpuTensor, GpuError> {
    GpuTensor::upload_f32(ctx, name, v)
}

fn opt_vector(
    ctx: &GpuContext,
    name: &str,
    v: &Option<Vec<f32>>,
) -> Result<Option<GpuTensor>, GpuError> {
    v.as_ref().map(|v| vector(ctx, name, v)).transpose()
}

/// Uploads matrices once, even when the model uses one twice (tied embeddings).
struct Uploader<'a> {
    ctx: &'a GpuContext,
    done: HashMap<String, Arc<GpuTensor>>,
    bytes: u64,
}

impl Uploader<'_> {
    fn matrix(&mut self, m: &Matrix) -> Result<Arc<GpuTensor>, GpuError> {
        if let Some(t) = self.done.get(&m.name) {
            return Ok(t.clone());
        }
        let t = Arc::new(GpuTensor::upload(
            self.ctx,
            &m.name,
            m.dtype(),
            m.rows,
            m.cols,
            m.bytes(),
        )?);
        self.bytes += t.size_bytes();
        self.done.insert(m.name.clone(), t.clone());
        Ok(t)
    }
    fn vector(&mut self, name: String, v: &[f32]) -> Result<GpuTensor, GpuError> {
        let t = vector(self.ctx, &name, v)?;
        self.bytes += t.size_bytes();
        Ok(t)
    }
    fn opt(&mut self, name: String, v: &Option<Vec<f32>>) -> Result<Option<GpuTensor>, GpuError> {
        let t = opt_vector(self.ctx, &name, v)?;
        self.bytes += t.as_ref().map_or(0, |t| t.size_bytes());
        Ok(t)
    }
}

impl GpuModel {
    /// Upload the last `gpu_layers` layers of `model` (all of them, and the token
    /// embeddings, when `gpu_layers >= n_layer`) plus the output norm and projection.
    pub fn new(
        ctx: Arc<GpuContext>,
        model: &Model,
        gpu_layers: usize,
    ) -> Result<GpuModel, GpuError> {
        let hp = model.hp.clone();
        if gpu_layers == 0 {
            return Err(GpuError::Unsupported(
                "0 GPU layers: run the model on the CPU".into(),
            ));
        }
        let n = gpu_layers.min(hp.n_layer);
        let first_layer = hp.n_layer - n;
        let w = &model.weights;
        let mut up = Uploader {
            ctx: &ctx,
            done: HashMap::new(),
            bytes: 0,
        };
        let token_embd = if first_layer == 0 {
            Some(up.matrix(&w.token_embd)?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(n);
        for (il, l) in w.layers.iter().enumerate().skip(first_layer) {
            let nm = |s: &str| format!("blk.{il}.{s}");
            layers.push(GpuLayer {
                attn_norm: up.vector(nm("attn_norm"), &l.attn_norm)?,
                wq: up.matrix(&l.wq)?,
                wk: up.matrix(&l.wk)?,
                wv: up.matrix(&l.wv)?,
                wo: up.matrix(&l.wo)?,
                bq: up.opt(nm("attn_q.bias"), &l.bq)?,
                bk: up.opt(nm("attn_k.bias"), &l.bk)?,
                bv: up.opt(nm("attn_v.bias"), &l.bv)?,
                q_norm: up.opt(nm("attn_q_norm"), &l.q_norm)?,
                k_norm: up.opt(nm("attn_k_norm"), &l.k_norm)?,
                post_attn_norm: up.opt(nm("post_attention_norm"), &l.post_attn_norm)?,
                ffn_norm: up.vector(nm("ffn_norm"), &l.ffn_norm)?,
                w_gate: up.matrix(&l.w_gate)?,
                w_up: up.matrix(&l.w_up)?,
                w_down: up.matrix(&l.w_down)?,
                post_ffn_norm: up.opt(nm("post_ffw_norm"), &l.post_ffn_norm)?,
            });
        }
        let output_norm = up.vector("output_norm".into(), &w.output_norm)?;
        let output = up.matrix(&w.output)?;
        let weight_bytes = up.bytes;
        let exact = if exact_wanted()
            && up
                .done
                .values()
                .all(|t| crate::exact::mm::supported(t.dtype))
        {
            Some(ExactPath {
                flavor: kernels::ggml_math::Flavor::active(),
                gelu: match hp.activation {
                    Activation::GeluTanh => Some(crate::exact::ops::GeluTable::new(&ctx)?),
                    Activation::Silu => None,
                },
            })
        } else {
            None
        };
        let rope_global = Rope::new(hp.n_rot, hp.rope_base, 1.0, hp.rope_style);
        let rope_swa = Rope::new(hp.n_rot, hp.rope_base_swa, 1.0, hp.rope_style);
        // Fail now, not at the first request, if one token's activations cannot be bound.
        let min_arena = Layout::new(&hp, 1, 1).total as u64 * 4;
        if min_arena > ctx.max_binding() {
            return Err(GpuError::OutOfMemory(format!(
                "one token's activations ({min_arena} bytes) exceed the storage binding limit"
            )));
        }
        ctx.take_errors()?;
        Ok(GpuModel {
            ctx,
            hp,
            first_layer,
            token_embd,
            layers,
            output_norm,
            output,
            rope_global,
            rope_swa,
            weight_bytes,
            arena: Mutex::new(None),
            exact,
        })
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }
    pub fn hparams(&self) -> &HParams {
        &self.hp
    }
    /// Layers on the GPU (the last ones).
    pub fn gpu_layers(&self) -> usize {
        self.layers.len()
    }
    /// The first layer on the GPU; the layers before it run on the CPU.
    pub fn first_gpu_layer(&self) -> usize {
        self.first_layer
    }
    /// Whether every layer (and the embeddings) is on the GPU.
    pub fn is_full(&self) -> bool {
        self.first_layer == 0
    }
    /// Whether this model runs on the exact path: the CPU's (and llama.cpp's) bits, op
    /// for op, so generations match the CPU token for token. Every weight type must have
    /// an exact matrix shader; `FERRITE_GPU_EXACT=0` opts out (the faster shaders in their
    /// own summation order).
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }

    /// GPU memory held by the weights (for `/api/ps`'s `size_vram`, plus caches).
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// A cache for one sequence of at most `n_ctx` tokens, in GPU memory.
    pub fn new_cache(&self, n_ctx: usize) -> Result<GpuKvCache, GpuError> {
        let mut k = Vec::with_capacity(self.layers.len());
        let mut v = Vec::with_capacity(self.layers.len());
        for _ in &self.layers {
            k.push(KvBuffer::new(&self.ctx, n_ctx, self.hp.kv_dim_k())?);
            v.push(KvBuffer::new(&self.ctx, n_ctx, self.hp.kv_dim_v())?);
        }
        Ok(GpuKvCache {
            k,
            v,
            len: 0,
            n_ctx,
        })
    }

    /// Caches for one sequence of at most `n_ctx` tokens on both sides of the split.
    pub fn new_split_cache(&self, model: &Model, n_ctx: usize) -> Result<SplitCache, GpuError> {
        Ok(SplitCache {
            cpu: model.new_cache(n_ctx),
            gpu: self.new_cache(n_ctx)?,
        })
    }

    /// Run `tokens` through the model, the first layers on the CPU (`model`, the one
    /// this was built from) and the rest here; returns the logits of the last token.
    /// With every layer on the GPU the CPU cache stays empty.
    pub fn forward_split(
        &self,
        model: &Model,
        cache: &mut SplitCache,
        tokens: &[u32],
    ) -> Result<Vec<f32>, GpuError> {
        if model.hp != self.hp {
            return Err(GpuError::Input(
                "the CPU model is not the one on the GPU".into(),
            ));
        }
        if self.is_full() {
            return self.forward(&mut cache.gpu, tokens);
        }
        if cache.cpu.len() != cache.gpu.len() {
            return Err(GpuError::Input(format!(
                "CPU and GPU caches disagree ({} vs {} tokens)",
                cache.cpu.len(),
                cache.gpu.len()
            )));
        }
        if cache.gpu.len() + tokens.len() > cache.gpu.n_ctx() {
            return Err(GpuError::Input(format!(
                "context overflow: {} cached + {} new tokens exceed num_ctx {}",
                cache.gpu.len(),
                tokens.len(),
                cache.gpu.n_ctx()
            )));
        }
        let hidden = model
            .forward_layers(
                &mut [SeqInput {
                    cache: &mut cache.cpu,
                    tokens,
                    all_logits: false,
                }],
                self.first_layer,
            )
            .map_err(GpuError::Input)?
            .remove(0);
        self.forward_hidden(&mut cache.gpu, &hidden, tokens.len())
    }

    /// Run `tokens` through the whole model (needs every layer on the GPU), appending
    /// them to `cache`; returns the logits of the last token.
    pub fn forward(&self, cache: &mut GpuKvCache, tokens: &[u32]) -> Result<Vec<f32>, GpuError> {
        if !self.is_full() {
            return Err(GpuError::Unsupported(format!(
                "only the last {} of {} layers are on the GPU: run the first on the CPU and call forward_hidden",
                self.layers.len(),
                self.hp.n_layer
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.hp.n_vocab) {
            return Err(GpuError::Input(format!(
                "token id {t} is outside the vocabulary ({})",
                self.hp.n_vocab
            )));
        }
        self.run(cache, tokens.len(), Input::Tokens(tokens))
    }

    /// Run hidden states (the output of layer `first_gpu_layer() - 1`, `ntok × n_embd`)
    /// through the GPU layers; returns the logits of the last token.
    pub fn forward_hidden(
        &self,
        cache: &mut GpuKvCache,
        x: &[f32],
        ntok: usize,
    ) -> Result<Vec<f32>, GpuError> {
        if x.len() != ntok * self.hp.n_embd {
            return Err(GpuError::Input(format!(
                "{} hidden values are not {ntok} tokens of {}",
                x.len(),
                self.hp.n_embd
            )));
        }
        self.run(cache, ntok, Input::Hidden(x))
    }

    /// Tokens one chunk may carry with `nseq` sequences' logits.
    fn batch_limit(&self, nseq: usize) -> usize {
        let l1 = Layout::new(&self.hp, 1, nseq).total as u64 * 4;
        let per_tok = (Layout::new(&self.hp, 2, nseq).total as u64 * 4)
            .saturating_sub(l1)
            .max(1);
        let fit = (self.ctx.max_binding().saturating_sub(l1) / per_tok) as usize + 1;
        MAX_BATCH.min(fit)
    }

    fn arena(&self, lay: &Layout) -> Result<std::sync::MutexGuard<'_, Option<Arena>>, GpuError> {
        let mut guard = self
            .arena
            .lock()
            .map_err(|_| GpuError::Wgpu("arena lock poisoned".into()))?;
        if guard.as_ref().is_none_or(|a| a.len() < lay.total) {
            *guard = Some(Arena::new(&self.ctx, lay.total)?);
        }
        Ok(guard)
    }

    fn check_cache(&self, cache: &GpuKvCache, ntok: usize) -> Result<(), GpuError> {
        if cache.k.len() != self.layers.len() {
            return Err(GpuError::Input("the cache belongs to another model".into()));
        }
        if cache.len + ntok > cache.n_ctx {
            return Err(GpuError::Input(format!(
                "context overflow: {} cached + {ntok} new tokens exceed num_ctx {}",
                cache.len, cache.n_ctx
            )));
        }
        Ok(())
    }

    /// Several sequences in one pass (their matrix products share each weight read);
    /// needs every layer on the GPU. Returns per sequence the logits of its last token
    /// (empty for a sequence without tokens).
    pub fn forward_batch(&self, seqs: &mut [GpuSeq<'_>]) -> Result<Vec<Vec<f32>>, GpuError> {
        if !self.is_full() {
            return Err(GpuError::Unsupported(
                "batched forward needs every layer on the GPU".into(),
            ));
        }
        for s in seqs.iter() {
            if let Some(&t) = s.tokens.iter().find(|&&t| t as usize >= self.hp.n_vocab) {
                return Err(GpuError::Input(format!(
                    "token id {t} is outside the vocabulary ({})",
                    self.hp.n_vocab
                )));
            }
            self.check_cache(s.cache, s.tokens.len())?;
        }
        let active: Vec<usize> = (0..seqs.len())
            .filter(|&i| !seqs[i].tokens.is_empty())
            .collect();
        let total: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        let mut out = vec![Vec::new(); seqs.len()];
        if active.is_empty() {
            return Ok(out);
        }
        if total > self.batch_limit(active.len()) || active.len() == 1 {
            // Too many tokens for one pass (or one sequence): each in its own chunks.
            for &i in &active {
                let s = &mut seqs[i];
                out[i] = self.run(s.cache, s.tokens.len(), Input::Tokens(s.tokens))?;
            }
            return Ok(out);
        }
        let lay = Layout::new(&self.hp, total, active.len());
        let guard = self.arena(&lay)?;
        let arena = guard.as_ref().expect("allocated");
        let mut segs = Vec::with_capacity(active.len());
        let mut tokens = Vec::with_capacity(total);
        for &i in &active {
            segs.push(Seg {
                cache: &*seqs[i].cache,
                pos0: seqs[i].cache.len,
                t0: tokens.len(),
                n: seqs[i].tokens.len(),
            });
            tokens.extend_from_slice(seqs[i].tokens);
        }
        let logits = self.chunk(arena, &lay, &segs, Input::Tokens(&tokens), true)?;
        for (&i, l) in active.iter().zip(logits) {
            seqs[i].cache.len += seqs[i].tokens.len();
            out[i] = l;
        }
        Ok(out)
    }

    /// [`GpuModel::forward_hidden`] for several sequences in one pass (a split model's
    /// GPU layers after the CPU ran its layers for all of them): the matrix products
    /// share each weight read. Returns per sequence the logits of its last token (empty
    /// for a sequence without tokens).
    pub fn forward_hidden_batch(
        &self,
        seqs: &mut [GpuHiddenSeq<'_>],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let d = self.hp.n_embd;
        for s in seqs.iter() {
            if s.hidden.len() != s.ntok * d {
                return Err(GpuError::Input(format!(
                    "{} hidden values are not {} tokens of {d}",
                    s.hidden.len(),
                    s.ntok
                )));
            }
            self.check_cache(s.cache, s.ntok)?;
        }
        let active: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].ntok > 0).collect();
        let total: usize = seqs.iter().map(|s| s.ntok).sum();
        let mut out = vec![Vec::new(); seqs.len()];
        if active.is_empty() {
            return Ok(out);
        }
        if total > self.batch_limit(active.len()) || active.len() == 1 {
            for &i in &active {
                let s = &mut seqs[i];
                out[i] = self.run(s.cache, s.ntok, Input::Hidden(s.hidden))?;
            }
            return Ok(out);
        }
        let lay = Layout::new(&self.hp, total, active.len());
        let guard = self.arena(&lay)?;
        let arena = guard.as_ref().expect("allocated");
        let mut segs = Vec::with_capacity(active.len());
        let mut x = Vec::with_capacity(total * d);
        let mut t0 = 0;
        for &i in &active {
            segs.push(Seg {
                cache: &*seqs[i].cache,
                pos0: seqs[i].cache.len,
                t0,
                n: seqs[i].ntok,
            });
            t0 += seqs[i].ntok;
            x.extend_from_slice(seqs[i].hidden);
        }
        let logits = self.chunk(arena, &lay, &segs, Input::Hidden(&x), true)?;
        for (&i, l) in active.iter().zip(logits) {
            seqs[i].cache.len += seqs[i].ntok;
            out[i] = l;
        }
        Ok(out)
    }

    /// One sequence, split into chunks the arena holds.
    fn run(&self, cache: &mut GpuKvCache, ntok: usize, input: Input) -> Result<Vec<f32>, GpuError> {
        self.check_cache(cache, ntok)?;
        if ntok == 0 {
            return Ok(Vec::new());
        }
        let batch = ntok.min(self.batch_limit(1));
        let lay = Layout::new(&self.hp, batch, 1);
        let guard = self.arena(&lay)?;
        let arena = guard.as_ref().expect("allocated");
        let mut logits = Vec::new();
        let mut t0 = 0;
        while t0 < ntok {
            let b = batch.min(ntok - t0);
            let last = t0 + b == ntok;
            let input = match input {
                Input::Tokens(t) => Input::Tokens(&t[t0..t0 + b]),
                Input::Hidden(x) => {
                    Input::Hidden(&x[t0 * self.hp.n_embd..(t0 + b) * self.hp.n_embd])
                }
            };
            let seg = Seg {
                cache,
                pos0: cache.len,
                t0: 0,
                n: b,
            };
            let out = self.chunk(arena, &lay, &[seg], input, last)?;
            cache.len += b;
            if last {
                logits = out.into_iter().next().unwrap_or_default();
            }
            t0 += b;
        }
        Ok(logits)
    }

    /// A chunk's inputs: the tokens' embeddings (or the hidden states) at `lay.x` and
    /// the RoPE angles of their positions.
    fn chunk_inputs(
        &self,
        r: &mut Recorder,
        lay: &Layout,
        segs: &[Seg],
        input: Input,
    ) -> Result<(), GpuError> {
        let hp = &self.hp;
        let b: usize = segs.iter().map(|s| s.n).sum();
        match input {
            Input::Tokens(t) => {
                let table = self.token_embd.as_ref().ok_or_else(|| {
                    GpuError::Unsupported("the token embeddings are not on the GPU".into())
                })?;
                r.write_u32(lay.ids, t)?;
                if self.exact.is_some() {
                    r.exact_get_rows(table, lay.ids, lay.x, b, hp.embd_scale)?;
                } else {
                    r.get_rows(table, lay.ids, lay.x, b, hp.embd_scale)?;
                }
            }
            Input::Hidden(x) => r.write(lay.x, x)?,
        }
        let positions = || segs.iter().flat_map(|s| s.pos0..s.pos0 + s.n);
        r.write(lay.cs_global, &rope_table(&self.rope_global, positions()))?;
        if hp.sliding_window > 0 {
            r.write(lay.cs_swa, &rope_table(&self.rope_swa, positions()))?;
        }
        Ok(())
    }

    /// One submit: the segments' tokens through the GPU layers; each segment's
    /// last-token logits when `logits`.
    fn chunk(
        &self,
        arena: &Arena,
        lay: &Layout,
        segs: &[Seg],
        input: Input,
        logits: bool,
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        if self.exact.is_some() {
            return self.chunk_exact(arena, lay, segs, input, logits);
        }
        let hp = &self.hp;
        let d = hp.n_embd;
        let b: usize = segs.iter().map(|s| s.n).sum();
        let (qd, kd, vd, ad) = (
            hp.q_dim(),
            hp.kv_dim_k(),
            hp.kv_dim_v(),
            hp.n_head * hp.head_dim_v,
        );
        let mut r = Recorder::new(&self.ctx, arena);
        self.chunk_inputs(&mut r, lay, segs, input)?;
        let eps = hp.rms_eps;
        for (i, l) in self.layers.iter().enumerate() {
            let il = self.first_layer + i;
            r.rms_norm(lay.x, lay.h, b, d, Some(&l.attn_norm), eps)?;
            mm(
                &mut r,
                &[(&l.wq, lay.q), (&l.wk, lay.k), (&l.wv, lay.v)],
                lay.h,
                lay.xq,
                b,
            )?;
            for (off, bias) in [(lay.q, &l.bq), (lay.k, &l.bk), (lay.v, &l.bv)] {
                if let Some(bias) = bias {
                    r.add_bias(off, b, bias)?;
                }
            }
            if let Some(w) = &l.q_norm {
                r.rms_norm(lay.q, lay.q, b * hp.n_head, hp.head_dim_k, Some(w), eps)?;
            }
            if let Some(w) = &l.k_norm {
                r.rms_norm(lay.k, lay.k, b * hp.n_head_kv, hp.head_dim_k, Some(w), eps)?;
            }
            let swa = hp.is_swa_layer(il);
            let cs = if swa { lay.cs_swa } else { lay.cs_global };
            r.rope(
                lay.q,
                b,
                hp.n_head,
                hp.head_dim_k,
                hp.n_rot,
                cs,
                hp.rope_style,
            )?;
            r.rope(
                lay.k,
                b,
                hp.n_head_kv,
                hp.head_dim_k,
                hp.n_rot,
                cs,
                hp.rope_style,
            )?;
            for s in segs {
                r.kv_store(&s.cache.k[i], lay.k + s.t0 * kd, s.n, s.pos0)?;
                r.kv_store(&s.cache.v[i], lay.v + s.t0 * vd, s.n, s.pos0)?;
                r.attention(
                    &s.cache.k[i],
                    &s.cache.v[i],
                    lay.q + s.t0 * qd,
                    lay.att + s.t0 * ad,
                    AttnShape {
                        ntok: s.n,
                        n_head: hp.n_head,
                        n_head_kv: hp.n_head_kv,
                        head_dim_k: hp.head_dim_k,
                        head_dim_v: hp.head_dim_v,
                        pos0: s.pos0,
                        window: if swa { hp.sliding_window } else { 0 },
                        scale: hp.attn_scale,
                    },
                )?;
            }
            mm(&mut r, &[(&l.wo, lay.o)], lay.att, lay.xq, b)?;
            if let Some(w) = &l.post_attn_norm {
                r.rms_norm(lay.o, lay.o, b, d, Some(w), eps)?;
            }
            r.ew(Ew::Add, lay.x, lay.o, b * d, 0.0)?;
            r.rms_norm(lay.x, lay.h, b, d, Some(&l.ffn_norm), eps)?;
            mm(
                &mut r,
                &[(&l.w_gate, lay.gate), (&l.w_up, lay.up)],
                lay.h,
                lay.xq,
                b,
            )?;
            let act = match hp.activation {
                Activation::Silu => Ew::Swiglu,
                // As the CPU path and llama.cpp's CPU backend: GELU through an f16 table.
                Activation::GeluTanh => Ew::GegluF16,
            };
            r.ew(act, lay.gate, lay.up, b * hp.n_ff, 0.0)?;
            mm(&mut r, &[(&l.w_down, lay.o)], lay.gate, lay.xq, b)?;
            if let Some(w) = &l.post_ffn_norm {
                r.rms_norm(lay.o, lay.o, b, d, Some(w), eps)?;
            }
            r.ew(Ew::Add, lay.x, lay.o, b * d, 0.0)?;
        }
        if !logits {
            r.submit()?;
            return Ok(Vec::new());
        }
        let m = segs.len();
        for (j, s) in segs.iter().enumerate() {
            let last = lay.x + (s.t0 + s.n - 1) * d;
            r.rms_norm(last, lay.fin + j * d, 1, d, Some(&self.output_norm), eps)?;
        }
        mm(&mut r, &[(&self.output, lay.logits)], lay.fin, lay.xq, m)?;
        let nv = hp.n_vocab;
        if let Some(cap) = hp.final_logit_softcap {
            r.ew(Ew::Softcap, lay.logits, 0, m * nv, cap)?;
        }
        r.read(lay.logits, m * nv)?;
        let all = r.submit()?.pop().unwrap_or_default();
        Ok(all.chunks(nv).map(|c| c.to_vec()).collect())
    }
}

/// `FERRITE_GPU_EXACT`: the exact path unless it says `0`.
fn exact_wanted() -> bool {
    std::env::var("FERRITE_GPU_EXACT").map_or(true, |v| v != "0")
}

/// Tokens `t0 .. t0 + n` of a chunk belong to the sequence whose cache is `cache`.
struct Seg<'a> {
    cache: &'a GpuKvCache,
    pos0: usize,
    t0: usize,
    n: usize,
}

/// One sequence's part of a batched forward pass ([`GpuModel::forward_batch`]).
pub struct GpuSeq<'a> {
    pub cache: &'a mut GpuKvCache,
    pub tokens: &'a [u32],
}

/// The activation rounding the CPU kernels apply for `t` weights, or `None` for float
/// weights, which take f32 activations. Q8_0 and Q8_1 round alike; Q8_1 also keeps
/// block sums (unused by Q8_0 weights), so one pass serves both.
fn act_quant(t: GgmlType) -> Option<GgmlType> {
    match kernels::dispatch::kernels(t)?.act {
        GgmlType::Q8_0 | GgmlType::Q8_1 => Some(GgmlType::Q8_1),
        GgmlType::Q8K => Some(GgmlType::Q8K),
        _ => None,
    }
}

/// Products of one input `x` (`b` rows) with several matrices. Activations are first
/// rounded as the CPU kernels (and llama.cpp's) round them, once per activation type:
/// these small models amplify that difference into different greedy tokens.
fn mm(
    r: &mut Recorder,
    ws: &[(&GpuTensor, usize)],
    x: usize,
    xq: usize,
    b: usize,
) -> Result<(), GpuError> {
    let mut acts: Vec<Option<GgmlType>> = Vec::new();
    for (w, _) in ws {
        let a = act_quant(w.dtype);
        if !acts.contains(&a) {
            acts.push(a);
        }
    }
    for act in acts {
        if let Some(a) = act {
            r.quantize_act(a, x, xq, b * ws[0].0.cols)?;
        }
        for (w, y) in ws.iter().filter(|(w, _)| act_quant(w.dtype) == act) {
            match act {
                Some(a) => r.matmul_quantized(w, a, xq, *y, b)?,
                None => r.matmul(w, x, *y, b)?,
            }
        }
    }
    Ok(())
}

/// One sequence's part of a batched pass over the GPU layers of a split model
/// ([`GpuModel::forward_hidden_batch`]): `ntok` tokens' hidden states, `ntok × n_embd`.
pub struct GpuHiddenSeq<'a> {
    pub cache: &'a mut GpuKvCache,
    pub hidden: &'a [f32],
    pub ntok: usize,
}

#[derive(Clone, Copy)]
enum Input<'a> {
    Tokens(&'a [u32]),
    Hidden(&'a [f32]),
}

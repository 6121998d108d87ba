//! The decoder: one graph, driven by [`HParams`] flags, for llama, qwen2 and gemma3.
//!
//! The weights are shared and immutable; each sequence owns its [`KvCache`], so
//! several sequences can run on one loaded model, and one forward pass can carry
//! tokens of several sequences (their matrix products are batched together).

mod attention;
pub mod hparams;
pub mod weights;

use crate::gguf::GgufFile;
pub use attention::{attend, attend_tiled};
use half::f16;
pub use hparams::{Activation, Arch, HParams, RopeStyle};
use kernels::matmul;
use kernels::ops;
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
pub use weights::{Layer, Matrix, Weights};

pub struct Model {
    pub hp: HParams,
    pub weights: Weights,
    pub file: Arc<GgufFile>,
    pool: rayon::ThreadPool,
    rope_global: ops::Rope,
    /// RoPE of sliding-window layers (their own base on gemma3).
    rope_swa: ops::Rope,
}

/// Keys and values of one sequence, per layer, position-major (`[pos][kv_dim]`),
/// grown as tokens arrive up to `n_ctx`. Stored as f16, as llama.cpp and Ollama
/// do by default: half the memory, and the same rounding as the reference.
pub struct KvCache {
    n_ctx: usize,
    len: usize,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
}

impl KvCache {
    pub fn new(hp: &HParams, n_ctx: usize) -> KvCache {
        KvCache {
            n_ctx,
            len: 0,
            k: vec![Vec::new(); hp.n_layer],
            v: vec![Vec::new(); hp.n_layer],
        }
    }
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
    /// Forget everything after the first `n` tokens (prefix reuse).
    pub fn truncate(&mut self, n: usize, hp: &HParams) {
        let n = n.min(self.len);
        for l in 0..self.k.len() {
            self.k[l].truncate(n * hp.kv_dim_k());
            self.v[l].truncate(n * hp.kv_dim_v());
        }
        self.len = n;
    }
    pub fn clear(&mut self) {
        for l in 0..self.k.len() {
            self.k[l].clear();
            self.v[l].clear();
        }
        self.len = 0;
    }
}

/// One sequence's part of a forward pass.
pub struct SeqInput<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
    /// Logits for every token (`tokens.len() × n_vocab`) instead of only the last.
    pub all_logits: bool,
}

/// Options fixed when a model is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
}

impl Model {
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model, String> {
        let path = path.as_ref();
        let file = GgufFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Model::from_gguf(Arc::new(file), opts)
    }

    pub fn from_gguf(file: Arc<GgufFile>, opts: &LoadOptions) -> Result<Model, String> {
        let hp = HParams::from_gguf(&file)?;
        let weights = Weights::from_gguf(&file, &hp)?;
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            opts.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ferrite-worker-{i}"))
            .build()
            .map_err(|e| format!("cannot start {threads} worker threads: {e}"))?;
        let rope_global = ops::Rope::new(hp.n_rot, hp.rope_base, 1.0, hp.rope_style);
        let rope_swa = ops::Rope::new(hp.n_rot, hp.rope_base_swa, 1.0, hp.rope_style);
        Ok(Model {
            hp,
            weights,
            file,
            pool,
            rope_global,
            rope_swa,
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// A fresh cache for a sequence of at most `n_ctx` tokens.
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        KvCache::new(&self.hp, n_ctx)
    }

    /// Run the tokens of every sequence through the model, appending them to each
    /// sequence's cache. Returns per sequence the logits of its last token (or of all
    /// its tokens when `all_logits`).
    pub fn forward(&self, seqs: &mut [SeqInput<'_>]) -> Result<Vec<Vec<f32>>, String> {
        self.check_inputs(seqs)?;
        self.pool.install(|| self.forward_inner(seqs, None))
    }

    /// Run only the first `n_layers` layers (the CPU part of a partial GPU offload):
    /// appends the tokens to each cache for those layers and returns per sequence the
    /// hidden states of all its tokens (`tokens × n_embd`), the next layer's input.
    pub fn forward_layers(
        &self,
        seqs: &mut [SeqInput<'_>],
        n_layers: usize,
    ) -> Result<Vec<Vec<f32>>, String> {
        if n_layers > self.hp.n_layer {
            return Err(format!(
                "{n_layers} layers asked of a {}-layer model",
                self.hp.n_layer
            ));
        }
        self.check_inputs(seqs)?;
        self.pool
            .install(|| self.forward_inner(seqs, Some(n_layers)))
    }

    /// Token ids inside the vocabulary and room in every cache, before any work.
    fn check_inputs(&self, seqs: &[SeqInput<'_>]) -> Result<(), String> {
        for s in seqs.iter() {
            if let Some(&t) = s.tokens.iter().find(|&&t| t as usize >= self.hp.n_vocab) {
                return Err(format!(
                    "token id {t} is outside the vocabulary ({})",
                    self.hp.n_vocab
                ));
            }
            if s.cache.len + s.tokens.len() > s.cache.n_ctx {
                return Err(format!(
                    "context overflow: {} cached + {} new tokens exceed num_ctx {}",
                    s.cache.len,
                    s.tokens.len(),
                    s.cache.n_ctx
                ));
            }
        }
        Ok(())
    }

    fn forward_inner(
        &self,
        seqs: &mut [SeqInput<'_>],
        stop: Option<usize>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let hp = &self.hp;
        let w = &self.weights;
        let d = hp.n_embd;
        // Every token of the batch: (sequence, position).
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for (si, s) in seqs.iter().enumerate() {
            slots.extend((0..s.tokens.len()).map(|i| (si, s.cache.len + i)));
        }
        let n = slots.len();
        if n == 0 {
            return Ok(seqs.iter().map(|_| Vec::new()).collect());
        }

        let mut x = vec![0f32; n * d];
        let all_tokens: Vec<u32> = seqs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        x.par_chunks_mut(d).zip(&all_tokens).for_each(|(row, &t)| {
            w.token_embd.row_into(t as usize, row);
            if hp.embd_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= hp.embd_scale);
            }
        });

        let (qd, kd, vd) = (hp.q_dim(), hp.kv_dim_k(), hp.kv_dim_v());
        let mut h = vec![0f32; n * d];
        let mut q = vec![0f32; n * qd];
        let mut k = vec![0f32; n * kd];
        let mut v = vec![0f32; n * vd];
        let mut att = vec![0f32; n * hp.n_head * hp.head_dim_v];
        let mut o = vec![0f32; n * d];
        let mut gate = vec![0f32; n * hp.n_ff];
        let mut up = vec![0f32; n * hp.n_ff];
        let mut acts = matmul::Activations::new();
        let flavor = kernels::ggml_math::Flavor::active();

        // The rows whose logits are asked for. As llama.cpp does, the last layer
        // drops the other rows after its attention output (they feed nothing
        // else), which also decides which of its matrix kernels a row meets.
        let mut out_rows: Vec<usize> = Vec::new();
        let mut t0 = 0;
        for s in seqs.iter() {
            let t = s.tokens.len();
            if s.all_logits {
                out_rows.extend(t0..t0 + t);
            } else if t > 0 {
                out_rows.push(t0 + t - 1);
            }
            t0 += t;
        }
        let mut live = n;

        for (il, layer) in w.layers.iter().enumerate().take(stop.unwrap_or(hp.n_layer)) {
            rms_norm_rows(&x, &layer.attn_norm, hp.rms_eps, &mut h, d);
            trace("attn_norm", il, &h);
            mm_group(
                &mut acts,
                &h,
                n,
                &mut [
                    (&layer.wq, &mut q),
                    (&layer.wk, &mut k),
                    (&layer.wv, &mut v),
                ],
            );
            trace("Vcur", il, &v);
            trace("Qcur_mm", il, &q);
            trace("Kcur_mm", il, &k);
            for (buf, bias) in [
                (&mut q, &layer.bq),
                (&mut k, &layer.bk),
                (&mut v, &layer.bv),
            ] {
                if let Some(b) = bias {
                    buf.par_chunks_mut(b.len()).for_each(|r| ops::add(r, b));
                }
            }
            if let Some(qn) = &layer.q_norm {
                q.par_chunks_mut(hp.head_dim_k)
                    .for_each(|r| ops::rms_norm_inplace(r, Some(qn), hp.rms_eps));
            }
            if let Some(kn) = &layer.k_norm {
                k.par_chunks_mut(hp.head_dim_k)
                    .for_each(|r| ops::rms_norm_inplace(r, Some(kn), hp.rms_eps));
            }
            let swa = hp.is_swa_layer(il);
            let rope = if swa {
                &self.rope_swa
            } else {
                &self.rope_global
            };
            q.par_chunks_mut(qd)
                .zip(k.par_chunks_mut(kd))
                .zip(&slots)
                .for_each_init(Vec::new, |cs, ((qr, kr), &(_, pos))| {
                    rope.cos_sin(pos, cs);
                    rope.apply_cached(qr, hp.head_dim_k, cs);
                    rope.apply_cached(kr, hp.head_dim_k, cs);
                });

            trace("Qcur_rope", il, &q);
            trace("Kcur_rope", il, &k);

            // Append this layer's keys and values to each sequence's cache.
            let mut t0 = 0;
            for s in seqs.iter_mut() {
                let t = s.tokens.len();
                s.cache.k[il].extend(k[t0 * kd..(t0 + t) * kd].iter().map(|&x| f16::from_f32(x)));
                s.cache.v[il].extend(v[t0 * vd..(t0 + t) * vd].iter().map(|&x| f16::from_f32(x)));
                t0 += t;
            }

            let window = if swa { hp.sliding_window } else { 0 };
            let caches: Vec<(&[f16], &[f16])> = seqs
                .iter()
                .map(|s| (&s.cache.k[il][..], &s.cache.v[il][..]))
                .collect();
            // As llama.cpp's CPU flash attention: tiled (f32) from 64 query rows on.
            if n >= ggml_math_fa_rows() {
                attention::attend_tiled(hp, &q, &caches, &slots, window, &mut att);
            } else {
                attention::attend(hp, &q, &caches, &slots, window, &mut att);
            }
            trace("kqv_out", il, &att);

            mm(&layer.wo, &att, n, &mut o);
            trace("attn_out", il, &o);
            if stop.is_none() && il + 1 == hp.n_layer && out_rows.len() < n {
                live = out_rows.len();
                for (i, &r) in out_rows.iter().enumerate() {
                    x.copy_within(r * d..(r + 1) * d, i * d);
                    o.copy_within(r * d..(r + 1) * d, i * d);
                }
                for buf in [&mut x, &mut o, &mut h] {
                    buf.truncate(live * d);
                }
                gate.truncate(live * hp.n_ff);
                up.truncate(live * hp.n_ff);
                out_rows = (0..live).collect();
            }
            if let Some(pn) = &layer.post_attn_norm {
                o.par_chunks_mut(d)
                    .for_each(|r| ops::rms_norm_inplace(r, Some(pn), hp.rms_eps));
            }
            ops::add(&mut x, &o);

            rms_norm_rows(&x, &layer.ffn_norm, hp.rms_eps, &mut h, d);
            trace("ffn_inp", il, &x);
            trace("ffn_norm", il, &h);
            mm_group(
                &mut acts,
                &h,
                live,
                &mut [(&layer.w_gate, &mut gate), (&layer.w_up, &mut up)],
            );
            gate.par_chunks_mut(hp.n_ff)
                .zip(up.par_chunks(hp.n_ff))
                .for_each(|(g, u)| match hp.activation {
                    Activation::Silu => kernels::ggml_math::swiglu(flavor, g, u),
                    Activation::GeluTanh => ops::geglu_f16_table(g, u),
                });
            mm(&layer.w_down, &gate, live, &mut o);
            trace("ffn_act", il, &gate);
            trace("ffn_out", il, &o);
            if let Some(pn) = &layer.post_ffn_norm {
                o.par_chunks_mut(d)
                    .for_each(|r| ops::rms_norm_inplace(r, Some(pn), hp.rms_eps));
            }
            ops::add(&mut x, &o);
            trace("l_out", il, &x);
        }
        for s in seqs.iter_mut() {
            s.cache.len += s.tokens.len();
        }
        if stop.is_some() {
            let mut t0 = 0;
            return Ok(seqs
                .iter()
                .map(|s| {
                    let t = s.tokens.len();
                    t0 += t;
                    x[(t0 - t) * d..t0 * d].to_vec()
                })
                .collect());
        }

        // Logits only for the rows asked for.
        let rows = out_rows;
        let m = rows.len();
        let mut fin = vec![0f32; m * d];
        for (dst, &r) in fin.chunks_mut(d).zip(&rows) {
            dst.copy_from_slice(&x[r * d..(r + 1) * d]);
        }
        fin.par_chunks_mut(d)
            .for_each(|r| ops::rms_norm_inplace(r, Some(&w.output_norm), hp.rms_eps));
        trace("result_norm", 0, &fin);
        let mut logits = vec![0f32; m * hp.n_vocab];
        mm(&w.output, &fin, m, &mut logits);
        if let Some(cap) = hp.final_logit_softcap {
            logits
                .par_iter_mut()
                .for_each(|l| *l = cap * (*l / cap).tanh());
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut off = 0;
        for s in seqs.iter() {
            let rows_here = if s.all_logits {
                s.tokens.len()
            } else {
                usize::from(!s.tokens.is_empty())
            };
            out.push(logits[off * hp.n_vocab..(off + rows_here) * hp.n_vocab].to_vec());
            off += rows_here;
        }
        Ok(out)
    }
}

/// Query rows from which llama.cpp switches to its tiled flash attention.
fn ggml_math_fa_rows() -> usize {
    kernels::ggml_math::FA_TILE
}

fn mm(m: &Matrix, x: &[f32], tokens: usize, y: &mut [f32]) {
    // llama.cpp's repacked kernels: whole groups of four tokens, then the rest.
    let grouped = match m.batch4 {
        Some(_) => tokens / 4 * 4,
        None => 0,
    };
    // llama.cpp's tiled K-quant kernels: every token of a batch of 8 or more.
    let single = match &m.batch8 {
        Some(k) if tokens >= 8 => k,
        _ => &m.kernels,
    };
    let parts = [
        (m.batch4.as_ref(), 0..grouped),
        (Some(single), grouped..tokens),
    ];
    for (k, ts) in parts {
        let (Some(k), false) = (k, ts.is_empty()) else {
            continue;
        };
        matmul::matmul(
            k,
            m.bytes(),
            m.rows,
            m.cols,
            &x[ts.start * m.cols..ts.end * m.cols],
            ts.len(),
            &mut y[ts.start * m.rows..ts.end * m.rows],
        );
    }
}

/// Products of one input with several matrices: one activation conversion and one
/// parallel pass when they share an activation type, else one product each.
fn mm_group(
    acts: &mut matmul::Activations,
    x: &[f32],
    tokens: usize,
    mats: &mut [(&Matrix, &mut Vec<f32>)],
) {
    let cols = mats[0].0.cols;
    let act = mats[0].0.kernels.act;
    if mats.iter().any(|(m, _)| {
        m.kernels.act != act || m.cols != cols || m.batch4.is_some() || m.batch8.is_some()
    }) {
        for (m, y) in mats.iter_mut() {
            mm(m, x, tokens, y);
        }
        return;
    }
    acts.quantize(&mats[0].0.kernels, &x[..tokens * cols], cols);
    let mut parts: Vec<matmul::GroupPart> = mats
        .iter_mut()
        .map(|(m, y)| matmul::GroupPart {
            k: &m.kernels,
            w: m.bytes(),
            rows: m.rows,
            y: &mut y[..tokens * m.rows],
        })
        .collect();
    matmul::matmul_group(&mut parts, acts);
}

/// `FERRITE_TRACE=1`: print a checksum of every named intermediate (llama.cpp's
/// tensor names, as its `llama-eval-callback` prints them) to diff runs layer by layer.
/// `FERRITE_DUMP=DIR`: write each one whole, as raw little-endian f32, to
/// `DIR/NAME-LAYER.f32` (overwritten by every forward pass), for bitwise diffs.
fn trace(name: &str, layer: usize, x: &[f32]) {
    static ON: std::sync::OnceLock<(bool, Option<std::path::PathBuf>)> = std::sync::OnceLock::new();
    let (print, dump) = ON.get_or_init(|| {
        (
            std::env::var_os("FERRITE_TRACE").is_some_and(|v| v == "1"),
            std::env::var_os("FERRITE_DUMP").map(Into::into),
        )
    });
    if let Some(dir) = dump {
        let bytes: &[u8] = bytemuck::cast_slice(x);
        let path = dir.join(format!("{name}-{layer}.f32"));
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("ferrite-trace: cannot write {}: {e}", path.display());
        }
    }
    if !*print {
        return;
    }
    // An f32 running sum in element order, as llama-eval-callback computes it.
    let sum = x.iter().fold(0f32, |s, &v| s + v);
    let head: Vec<String> = x.iter().take(3).map(|v| format!("{v:.4}")).collect();
    eprintln!(
        "ferrite-trace {name}-{layer} n={} sum={sum:.6} first=[{}]",
        x.len(),
        head.join(", ")
    );
}

fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], d: usize) {
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, r)| ops::rms_norm(r, w, eps, o));
}

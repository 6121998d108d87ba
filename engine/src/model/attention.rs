//! Attention over the f16 KV cache, with the numerics of llama.cpp's CPU flash
//! attention (the path it takes for decode and short prompts): queries rounded to
//! f16, online softmax, and the weighted sum of values accumulated in f16.
//!
//! Small models are chaotic under rounding (rounding Q to f16 alone moves their
//! logits by ~0.3), so matching llama.cpp token for token means rounding where it
//! rounds.

use super::HParams;
use half::f16;
use kernels::attn::{mad_f16, scale_f16};
use kernels::ggml_math;
use rayon::prelude::*;

/// Causal attention of every batch token over its own sequence's cache (which
/// already holds the batch's keys). GQA maps query head `h` to kv head
/// `h / (n_head / n_head_kv)`; `window` > 0 limits a token to the last `window` positions.
pub(super) fn attend(
    hp: &HParams,
    q: &[f32],
    caches: &[(&[f16], &[f16])],
    slots: &[(usize, usize)],
    window: usize,
    out: &mut [f32],
) {
    let (hdk, hdv) = (hp.head_dim_k, hp.head_dim_v);
    let (kd, vd) = (hp.kv_dim_k(), hp.kv_dim_v());
    let group = hp.n_head / hp.n_head_kv;
    let flavor = ggml_math::Flavor::active();
    out.par_chunks_mut(hdv).enumerate().for_each_init(
        || (vec![f16::ZERO; hdk], vec![f16::ZERO; hdv]),
        |(q16, acc), (idx, o)| {
            let (tok, head) = (idx / hp.n_head, idx % hp.n_head);
            let (seq, pos) = slots[tok];
            let (kc, vc) = caches[seq];
            let g = head / group;
            let qh = &q[(tok * hp.n_head + head) * hdk..][..hdk];
            let (pre, post) = if hp.scale_queries {
                (hp.attn_scale, 1.0)
            } else {
                (1.0, hp.attn_scale)
            };
            for (d, &s) in q16.iter_mut().zip(qh) {
                *d = f16::from_f32(s * pre);
            }
            let start = if window > 0 {
                (pos + 1).saturating_sub(window)
            } else {
                0
            };
            acc.fill(f16::ZERO);
            let mut max = f32::NEG_INFINITY;
            let mut sum = 0f32;
            for p in start..=pos {
                let kh = &kc[p * kd + g * hdk..][..hdk];
                let s = ggml_math::dot_f16(flavor, kh, q16) * post;
                let vh = &vc[p * vd + g * hdv..][..hdv];
                let (ms, vs) = if s > max {
                    let ms = (max - s).exp();
                    max = s;
                    scale_f16(acc, ms);
                    (ms, 1.0)
                } else {
                    (1.0, (s - max).exp())
                };
                mad_f16(acc, vh, vs);
                sum = sum.mul_add(ms, vs);
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            for (d, &a) in o.iter_mut().zip(acc.iter()) {
                *d = a.to_f32() * inv;
            }
        },
    );
}

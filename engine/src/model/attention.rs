//! Attention over the f16 KV cache, with the numerics of llama.cpp's CPU flash
//! attention (the path it takes for decode and short prompts): queries rounded to
//! f16, online softmax, and the weighted sum of values accumulated in f16.
//!
//! Small models are chaotic under rounding (rounding Q to f16 alone moves their
//! logits by ~0.3), so matching llama.cpp token for token means rounding where it
//! rounds.

use super::HParams;
use half::f16;
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
    out.par_chunks_mut(hdv).enumerate().for_each_init(
        || (vec![0f32; hdk], vec![0f32; hdv]),
        |(q16, acc), (idx, o)| {
            let (tok, head) = (idx / hp.n_head, idx % hp.n_head);
            let (seq, pos) = slots[tok];
            let (kc, vc) = caches[seq];
            let g = head / group;
            let qh = &q[(tok * hp.n_head + head) * hdk..][..hdk];
            for (d, &s) in q16.iter_mut().zip(qh) {
                *d = f16::from_f32(s).to_f32();
            }
            let start = if window > 0 {
                (pos + 1).saturating_sub(window)
            } else {
                0
            };
            acc.fill(0.0);
            let mut max = f32::NEG_INFINITY;
            let mut sum = 0f32;
            for p in start..=pos {
                let kh = &kc[p * kd + g * hdk..][..hdk];
                let s = dot_f16(q16, kh) * hp.attn_scale;
                let vh = &vc[p * vd + g * hdv..][..hdv];
                let (ms, vs) = if s > max {
                    let ms = (max - s).exp();
                    max = s;
                    // The accumulator lives in f16: every update rounds.
                    for a in acc.iter_mut() {
                        *a = round_f16(*a * ms);
                    }
                    (ms, 1.0)
                } else {
                    (1.0, (s - max).exp())
                };
                for (a, &v) in acc.iter_mut().zip(vh) {
                    *a = round_f16(v.to_f32().mul_add(vs, *a));
                }
                sum = sum * ms + vs;
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            for (d, &a) in o.iter_mut().zip(acc.iter()) {
                *d = a * inv;
            }
        },
    );
}

#[inline]
fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// f32 dot of an f16-exact query with an f16 key row, in eight independent lanes.
#[inline]
fn dot_f16(q: &[f32], k: &[f16]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = q.len() / 8 * 8;
    for (qc, kc) in q[..n8].chunks_exact(8).zip(k[..n8].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] = qc[i].mul_add(kc[i].to_f32(), acc[i]);
        }
    }
    let tail: f32 = q[n8..]
        .iter()
        .zip(&k[n8..])
        .map(|(a, b)| a * b.to_f32())
        .sum();
    acc.iter().sum::<f32>() + tail
}

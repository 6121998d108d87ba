//! Attention over the f16 KV cache, with the numerics of llama.cpp's CPU flash
//! attention. [`attend`]: the path it takes for decode and batches of under 64
//! rows (queries rounded to f16, online softmax, values accumulated in f16);
//! [`attend_tiled`]: its tiled path for larger batches.
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
pub fn attend(
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

/// Attention with the numerics of llama.cpp's tiled CPU flash attention, which
/// it takes when a batch has 64 or more query rows: queries stay f32, keys and
/// values are widened to f32, scores are FMA chains over the head dimension,
/// the softmax runs over tiles of 64 keys (vector `expf`, tile sums in f64), and
/// values accumulate in f32.
pub fn attend_tiled(
    hp: &HParams,
    q: &[f32],
    caches: &[(&[f16], &[f16])],
    slots: &[(usize, usize)],
    window: usize,
    out: &mut [f32],
) {
    use ggml_math::FA_TILE;
    let (hdk, hdv) = (hp.head_dim_k, hp.head_dim_v);
    let (kd, vd) = (hp.kv_dim_k(), hp.kv_dim_v());
    let group = hp.n_head / hp.n_head_kv;
    let flavor = ggml_math::Flavor::active();
    let (pre, scale) = if hp.scale_queries {
        (hp.attn_scale, 1.0)
    } else {
        (1.0, hp.attn_scale)
    };
    // Each sequence's keys, once per layer, in key tiles laid out [kv head][tile]
    // [dim][FA_TILE] as f32 (zero past the cache), shared by every query row.
    let tiles_of = |len: usize| len.div_ceil(FA_TILE);
    let key_tiles: Vec<Vec<f32>> = caches
        .iter()
        .map(|&(kc, _)| {
            let len = kc.len() / kd;
            let per_tile = hdk * FA_TILE;
            let mut t = vec![0f32; hp.n_head_kv * tiles_of(len) * per_tile];
            t.par_chunks_mut(per_tile)
                .enumerate()
                .for_each(|(i, tile)| {
                    let (g, ic) = (i / tiles_of(len), (i % tiles_of(len)) * FA_TILE);
                    for j in 0..FA_TILE.min(len - ic) {
                        let kh = &kc[(ic + j) * kd + g * hdk..][..hdk];
                        for (e, k) in kh.iter().enumerate() {
                            tile[e * FA_TILE + j] = k.to_f32();
                        }
                    }
                });
            t
        })
        .collect();
    out.par_chunks_mut(hdv).enumerate().for_each_init(
        || vec![0f32; hdk],
        |qf, (idx, o)| {
            let (tok, head) = (idx / hp.n_head, idx % hp.n_head);
            let (seq, pos) = slots[tok];
            let (kc, vc) = caches[seq];
            let g = head / group;
            let n_tiles = tiles_of(kc.len() / kd);
            for (d, &s) in qf
                .iter_mut()
                .zip(&q[(tok * hp.n_head + head) * hdk..][..hdk])
            {
                *d = s * pre;
            }
            let first = if window > 0 {
                (pos + 1).saturating_sub(window)
            } else {
                0
            };
            o.fill(0.0);
            let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
            let mut s = [0f32; FA_TILE];
            for ic in (0..=pos).step_by(FA_TILE) {
                let live = |c: usize| c >= first && c <= pos;
                if !(ic..ic + FA_TILE).any(live) {
                    continue;
                }
                let tile = (g * n_tiles + ic / FA_TILE) * hdk * FA_TILE;
                let kt = &key_tiles[seq][tile..tile + hdk * FA_TILE];
                ggml_math::fa_scores(qf, kt, &mut s);
                for (j, v) in s.iter_mut().enumerate() {
                    *v = if live(ic + j) {
                        *v * scale + 0.0
                    } else {
                        f32::NEG_INFINITY
                    };
                }
                let tmax = s
                    .iter()
                    .fold(f32::NEG_INFINITY, |t, &v| if t > v { t } else { v });
                let m_new = m.max(tmax);
                if m_new > m {
                    let ms = (m - m_new).exp();
                    o.iter_mut().for_each(|a| *a *= ms);
                    sum *= ms;
                }
                m = m_new;
                let tile_sum = ggml_math::fa_exp_sum(flavor, &mut s, m);
                sum = (sum as f64 + tile_sum) as f32;
                // Masked keys have weight 0 and add exactly nothing (the
                // accumulators are never -0), so only live ones are visited.
                for (j, &p) in s.iter().enumerate() {
                    let c = ic + j;
                    if live(c) && p != 0.0 {
                        ggml_math::fa_accumulate(o, p, &vc[c * vd + g * hdv..][..hdv]);
                    }
                }
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            o.iter_mut().for_each(|a| *a *= inv);
        },
    );
}

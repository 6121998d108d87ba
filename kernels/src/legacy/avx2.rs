//! AVX2 kernels (with FMA and F16C).
//!
//! One 32-element block per 256-bit register, eight blocks per loop step: the
//! eight weight and activation scales are converted together, and each block's
//! integer dot (`maddubs` + `madd`) is converted to f32 and multiplied into one
//! f32 accumulator by its broadcast scale; one horizontal sum ends the row.
//! A partial last group is zero-padded (zero scales add nothing).
//!
//! The float operations are llama.cpp's AVX2 ones, in its order: one accumulator
//! fed in block order, Q4_1/Q5_1 minimums summed by a scalar FMA chain and added
//! after the horizontal sum. The small models amplify a last-bit difference into
//! logit changes of 0.1–0.4 (activation quantization rounds differently), so
//! token-for-token parity with llama.cpp needs its exact bits, not just its
//! precision. Speed comes from running several rows or tokens side by side.

use std::arch::x86_64::*;

use half::f16;

use super::{reference, LevelKernels};
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use crate::cpu::Isa;

pub(super) const KERNELS: LevelKernels = LevelKernels {
    isa: Isa::Avx2,
    q4_0,
    q4_1,
    q5_0,
    q5_1,
    q8_0,
    quantize_q8_0: quantize_q8_0_bytes,
    quantize_q8_1: quantize_q8_1_bytes,
    tiles: Some(super::LevelTiles {
        q4_0: super::avx2_tile::tile_q4_0,
        q4_1: super::avx2_tile::tile_q4_1,
        q5_0: super::avx2_tile::tile_q5_0,
        q5_1: super::avx2_tile::tile_q5_1,
        q8_0: super::avx2_tile::tile_q8_0,
    }),
};

simd_wrappers! {
    dot q4_0: BlockQ4_0, BlockQ8_0 => dot_q4_0_q8_0;
    dot q4_1: BlockQ4_1, BlockQ8_1 => dot_q4_1_q8_1;
    dot q5_0: BlockQ5_0, BlockQ8_0 => dot_q5_0_q8_0;
    dot q5_1: BlockQ5_1, BlockQ8_1 => dot_q5_1_q8_1;
    dot q8_0: BlockQ8_0, BlockQ8_0 => dot_q8_0_q8_0;
    quantize quantize_q8_0_bytes: BlockQ8_0 => quantize_q8_0;
    quantize quantize_q8_1_bytes: BlockQ8_1 => quantize_q8_1;
}

#[inline(always)]
fn pack4(f: &impl Fn(usize) -> f16, base: usize) -> i64 {
    (f(base).to_bits() as u64
        | (f(base + 1).to_bits() as u64) << 16
        | (f(base + 2).to_bits() as u64) << 32
        | (f(base + 3).to_bits() as u64) << 48) as i64
}

/// Eight f16 fields as f32, gathered in general registers.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(super) unsafe fn f16x8(f: impl Fn(usize) -> f16) -> __m256 {
    _mm256_cvtph_ps(_mm_set_epi64x(pack4(&f, 4), pack4(&f, 0)))
}

/// Lane `k` of `s` in every lane.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn lane(s: __m256, k: usize) -> __m256 {
    _mm256_permutevar8x32_ps(s, _mm256_set1_epi32(k as i32))
}

/// A block's 4-bit quants as 32 bytes in element order.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn nibbles(q: &[u8; 16]) -> __m256i {
    // The 16 bytes in both lanes (a plain load), the high lane shifted by 4:
    // one shift and one mask on the vector ports instead of shift, insert, mask.
    let x = _mm256_broadcastsi128_si256(_mm_loadu_si128(q.as_ptr().cast()));
    let y = _mm256_srlv_epi64(x, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(y, _mm256_set1_epi8(0x0F))
}

/// Adds 16 to the bytes whose bit is set in `qh` (bit i = element i).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn high_bits(q: __m256i, qh: [u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(qh));
    // Byte i takes qh byte i / 8 and tests bit i % 8.
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, spread), bits), bits);
    _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)))
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load(q: &[i8; QK]) -> __m256i {
    _mm256_loadu_si256(q.as_ptr().cast())
}

/// Σ u·s per group of four bytes (u unsigned ≤ 31, so the i16 pairs never saturate).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn dot_u(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Σ (u − c)·s per group of four bytes (u, c unsigned ≤ 31).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn dot_biased(u: __m256i, s: __m256i, c: __m256i) -> __m256i {
    let d = _mm256_sub_epi16(_mm256_maddubs_epi16(u, s), _mm256_maddubs_epi16(c, s));
    _mm256_madd_epi16(d, _mm256_set1_epi16(1))
}

/// Σ w·s per group of four bytes, both signed, as |w|·(±s). `maddubs` saturates
/// only for w = s = −128, which the Q8 quantizers never produce (as in ggml).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn dot_ss(w: __m256i, s: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(s, w));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn accumulate(acc: &mut __m256, s: __m256, k: usize, sum: __m256i) {
    *acc = _mm256_fmadd_ps(lane(s, k), _mm256_cvtepi32_ps(sum), *acc);
}

/// llama.cpp's `summs += m·s` for the eight blocks of a group: a scalar FMA chain
/// (how its compiler contracts that line), in block order.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn min_chain(summs: &mut f32, m: __m256, s: __m256) {
    let (mut mv, mut sv) = ([0f32; 8], [0f32; 8]);
    _mm256_storeu_ps(mv.as_mut_ptr(), m);
    _mm256_storeu_ps(sv.as_mut_ptr(), s);
    for k in 0..8 {
        *summs = mv[k].mul_add(sv[k], *summs);
    }
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    let x = _mm_add_ss(x, _mm_movehdup_ps(x));
    _mm_cvtss_f32(x)
}

/// `hsum_float_8(acc) + summs`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn finish(acc: __m256, summs: f32) -> f32 {
    hsum(acc) + summs
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let eight = _mm256_set1_epi8(8);
    for_groups!(w, a, |w, a| {
        let s = _mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d));
        for k in 0..8 {
            let sum = dot_biased(nibbles(&w[k].qs), load(&a[k].qs), eight);
            accumulate(&mut acc, s, k, sum);
        }
    });
    finish(acc, 0.0)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for_groups!(w, a, |w, a| {
        let s = _mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d));
        min_chain(&mut summs, f16x8(|i| w[i].m), f16x8(|i| a[i].s));
        for k in 0..8 {
            let sum = dot_u(nibbles(&w[k].qs), load(&a[k].qs));
            accumulate(&mut acc, s, k, sum);
        }
    });
    finish(acc, summs)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_0_q8_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let sixteen = _mm256_set1_epi8(16);
    for_groups!(w, a, |w, a| {
        let s = _mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d));
        for k in 0..8 {
            let q = high_bits(nibbles(&w[k].qs), w[k].qh);
            let sum = dot_biased(q, load(&a[k].qs), sixteen);
            accumulate(&mut acc, s, k, sum);
        }
    });
    finish(acc, 0.0)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_1_q8_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for_groups!(w, a, |w, a| {
        let s = _mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d));
        min_chain(&mut summs, f16x8(|i| w[i].m), f16x8(|i| a[i].s));
        for k in 0..8 {
            let q = high_bits(nibbles(&w[k].qs), w[k].qh);
            let sum = dot_u(q, load(&a[k].qs));
            accumulate(&mut acc, s, k, sum);
        }
    });
    finish(acc, summs)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for_groups!(w, a, |w, a| {
        let s = _mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d));
        for k in 0..8 {
            let sum = dot_ss(load(&w[k].qs), load(&a[k].qs));
            accumulate(&mut acc, s, k, sum);
        }
    });
    finish(acc, 0.0)
}

/// One Q8 block exactly as [`reference::quantize_q8_block`] computes it
/// (`roundf` is `trunc(t + copysign(0.49999997, t))`, exact for all floats).
/// Blocks with NaN, infinities or a scale whose inverse overflows go to the
/// reference, whose C-conversion quirks they depend on.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q8_block(xb: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(xb.as_ptr().add(8 * i)));
    let abs = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    let mut nan = _mm256_setzero_ps();
    for x in v {
        m = _mm256_max_ps(m, _mm256_andnot_ps(abs, x));
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
    }
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    if _mm256_movemask_ps(nan) != 0 || !amax.is_finite() || !id.is_finite() {
        return reference::quantize_q8_block_act(xb, qs);
    }
    let idv = _mm256_set1_ps(id);
    // cvtps2dq rounds half to even (the default MXCSR mode), as llama.cpp's
    // `_mm256_round_ps(_MM_ROUND_NEAREST)` + convert.
    let i = v.map(|x| _mm256_cvtps_epi32(_mm256_mul_ps(x, idv)));
    let sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    let sum = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let sum = _mm_add_epi32(sum, _mm_unpackhi_epi64(sum, sum));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32::<1>(sum)));
    // packs works per 128-bit lane: the dwords come out as 0 2 4 6 1 3 5 7.
    let p = _mm256_packs_epi16(
        _mm256_packs_epi32(i[0], i[1]),
        _mm256_packs_epi32(i[2], i[3]),
    );
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(qs.as_mut_ptr().cast(), p);
    (d, sum)
}

/// # Safety
/// The CPU must support AVX2; `x.len() == 32 · y.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, _) = q8_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
    }
}

/// # Safety
/// The CPU must support AVX2; `x.len() == 32 · y.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, sum) = q8_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

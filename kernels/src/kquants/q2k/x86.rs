//! x86-64 dots of Q2_K with Q8_K: AVX2, AVX-512 and AVX-512 VNNI.
//!
//! Per block the 2-bit values are multiplied with the 8-bit activations by
//! `maddubs` (pairs of u8·i8 into i16, at most 2·3·128 so no saturation), the i16
//! pairs are weighted by the group scale and widened by `madd` (or VNNI `vpdpwssd`,
//! which does the multiply-add and the accumulation in one instruction), and the
//! exact i32 lane sums are scaled by `d` into f32 accumulators once per block.
//! The mins go through Q8_K's `bsums` on a separate accumulator.
//! The small helpers here are shared with Q3_K.

use std::arch::x86_64::*;

use super::cast_row;
use crate::blocks::{BlockQ2K, BlockQ8K};
use crate::kquants::common::x86::f16x2;

pub(in crate::kquants) fn vec_dot_avx2_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ2K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_avx2()`.
    unsafe { vec_dot_avx2(x, y) }
}

pub(in crate::kquants) fn vec_dot_avx512_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ2K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_avx512()`.
    unsafe { vec_dot_avx512(x, y) }
}

pub(in crate::kquants) fn vec_dot_avx512vnni_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ2K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_avx512_vnni()`.
    unsafe { vec_dot_avx512vnni(x, y) }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(in crate::kquants) unsafe fn hsum_ps_256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `acc + Σpairs(p·s)` without VNNI.
#[inline]
#[target_feature(enable = "avx512bw")]
pub(in crate::kquants) unsafe fn madd_acc(acc: __m512i, p: __m512i, s: __m512i) -> __m512i {
    _mm512_add_epi32(acc, _mm512_madd_epi16(p, s))
}

/// `acc + Σpairs(p·s)` in one VNNI instruction.
#[inline]
#[target_feature(enable = "avx512vnni")]
pub(in crate::kquants) unsafe fn dpwssd_acc(acc: __m512i, p: __m512i, s: __m512i) -> __m512i {
    _mm512_dpwssd_epi32(acc, p, s)
}

/// Σ (dmin-scaled) mins·bsums of one block, as 8 i32 lanes: `accm += dmin·lanes`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn mins_acc(accm: __m256, sc: __m128i, yb: &BlockQ8K, dmin: f32) -> __m256 {
    let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), _mm_set1_epi8(0xF)));
    let bsums = _mm256_loadu_si256(yb.bsums.as_ptr().cast());
    let prod = _mm256_madd_epi16(mins, bsums);
    _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), accm)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn vec_dot_avx2(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0xF);
    // Chunk k (32 elements, groups 2k and 2k+1): the low lane takes scale byte 2k,
    // the high lane 2k+1, as i16 (index 0x80 zeroes the high byte).
    let idx0 = _mm256_setr_m128i(
        _mm_set1_epi16(0x8000u16 as i16),
        _mm_set1_epi16(0x8001u16 as i16),
    );
    let two = _mm256_set1_epi16(2);
    let mut acc = _mm256_setzero_ps();
    let mut accm = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        crate::prefetch::ahead(std::ptr::from_ref(xb).cast(), std::mem::size_of_val(xb));
        // `d` and `dmin` are adjacent f16s.
        let (xd, xdmin) = f16x2((&raw const xb.d).cast());
        let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
        // SAFETY (loads): every pointer below stays inside `xb` / `yb`.
        let sc = _mm_loadu_si128(xb.scales.as_ptr().cast());
        accm = mins_acc(accm, sc, yb, dmin);
        let scales = _mm256_broadcastsi128_si256(_mm_and_si128(sc, m4));
        let q8 = yb.qs.as_ptr();
        let mut idx = idx0;
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let mut q = _mm256_loadu_si256(xb.qs.as_ptr().add(32 * half).cast());
            for s in 0..4 {
                let q2 = _mm256_and_si256(q, m3);
                q = _mm256_srli_epi16::<2>(q);
                let a = _mm256_loadu_si256(q8.add(128 * half + 32 * s).cast());
                let p = _mm256_maddubs_epi16(q2, a);
                let s16 = _mm256_shuffle_epi8(scales, idx);
                idx = _mm256_add_epi16(idx, two);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s16));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps_256(_mm256_add_ps(acc, accm))
}

/// One body for the AVX-512 levels; `$acc` is [`madd_acc`] or [`dpwssd_acc`].
/// Each 512-bit step covers 64 consecutive elements (4 groups, one per 128-bit
/// lane): two bit-planes of one half, taken from a broadcast of that half's 32
/// bytes shifted by 0 (low 256 bits) and 2 (high 256 bits).
macro_rules! avx512_dot {
    ($name:ident, $features:literal, $acc:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
            let m3 = _mm512_set1_epi8(3);
            let m4 = _mm_set1_epi8(0xF);
            // 128-bit lane k picks scale byte k (then k+4, k+8, k+12) as i16.
            let lane = |k: i64| (0x8000_8000_8000_8000u64 as i64) | (k * 0x0001_0001_0001_0001);
            let idx0 = _mm512_set_epi64(
                lane(3),
                lane(3),
                lane(2),
                lane(2),
                lane(1),
                lane(1),
                lane(0),
                lane(0),
            );
            let four = _mm512_set1_epi16(4);
            let s2 = 0x0002_0002_0002_0002i64;
            let shifts = _mm512_set_epi64(s2, s2, s2, s2, 0, 0, 0, 0);
            let mut acc = _mm512_setzero_ps();
            let mut accm = _mm256_setzero_ps();
            for (xb, yb) in x.iter().zip(y) {
                crate::prefetch::ahead(std::ptr::from_ref(xb).cast(), std::mem::size_of_val(xb));
                // `d` and `dmin` are adjacent f16s.
                let (xd, xdmin) = f16x2((&raw const xb.d).cast());
                let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
                // SAFETY (loads): every pointer below stays inside `xb` / `yb`.
                let sc = _mm_loadu_si128(xb.scales.as_ptr().cast());
                accm = mins_acc(accm, sc, yb, dmin);
                let scales = _mm512_broadcast_i32x4(_mm_and_si128(sc, m4));
                let q8 = yb.qs.as_ptr();
                let mut idx = idx0;
                let mut sumi = _mm512_setzero_si512();
                for half in 0..2 {
                    let q = _mm256_loadu_si256(xb.qs.as_ptr().add(32 * half).cast());
                    let q = _mm512_srlv_epi16(_mm512_broadcast_i64x4(q), shifts);
                    for pair in 0..2 {
                        let q2 = if pair == 0 {
                            _mm512_and_si512(q, m3)
                        } else {
                            _mm512_and_si512(_mm512_srli_epi16::<4>(q), m3)
                        };
                        let a = _mm512_loadu_si512(q8.add(128 * half + 64 * pair).cast());
                        let p = _mm512_maddubs_epi16(q2, a);
                        let s16 = _mm512_shuffle_epi8(scales, idx);
                        idx = _mm512_add_epi16(idx, four);
                        sumi = $acc(sumi, p, s16);
                    }
                }
                acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
            }
            _mm512_reduce_add_ps(acc) + hsum_ps_256(accm)
        }
    };
}

avx512_dot!(
    vec_dot_avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq",
    madd_acc
);
avx512_dot!(
    vec_dot_avx512vnni,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni",
    dpwssd_acc
);

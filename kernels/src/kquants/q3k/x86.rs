//! x86-64 dots of Q3_K with Q8_K: AVX2, AVX-512 and AVX-512 VNNI.
//!
//! As Q2_K's (see `q2k::x86`), with `u = q + 4h` in 0..=7 as the unsigned
//! operand of `maddubs` (pairs at most 2·7·128, no saturation), signed i16 scales,
//! and `-4·Σ sc·bsums` subtracted from each block's integer sum.

use std::arch::x86_64::*;

use super::{cast_row, scales_biased};
use crate::blocks::{BlockQ3K, BlockQ8K};
use crate::kquants::common::x86::f16x1;
use crate::kquants::q2k::x86::{dpwssd_acc, hsum_ps_256, madd_acc};

pub(super) fn vec_dot_avx2_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ3K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_avx2()`.
    unsafe { vec_dot_avx2(x, y) }
}

pub(super) fn vec_dot_avx512_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ3K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_avx512()`.
    unsafe { vec_dot_avx512(x, y) }
}

pub(super) fn vec_dot_avx512vnni_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ3K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_avx512_vnni()`.
    unsafe { vec_dot_avx512vnni(x, y) }
}

/// The block's 16 signed scales as i16, and `-4·Σ sc·bsums` as 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scales_and_correction(xb: &BlockQ3K, yb: &BlockQ8K) -> (__m256i, __m256i) {
    let w = scales_biased(&xb.scales);
    let sc8 = _mm_sub_epi8(
        _mm_setr_epi32(w[0] as i32, w[1] as i32, w[2] as i32, w[3] as i32),
        _mm_set1_epi8(32),
    );
    let sc16 = _mm256_cvtepi8_epi16(sc8);
    // SAFETY: the 32-byte load covers exactly `yb.bsums`.
    let bsums = unsafe { _mm256_loadu_si256(yb.bsums.as_ptr().cast()) };
    let corr = _mm256_slli_epi32::<2>(_mm256_madd_epi16(sc16, bsums));
    (sc16, _mm256_sub_epi32(_mm256_setzero_si256(), corr))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn vec_dot_avx2(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    // Chunk s of a half (groups 2s, 2s+1 of its 8): the low lane takes i16 word 2s,
    // the high lane word 2s+1, of the half's 8 scales.
    let idx0 = _mm256_setr_m128i(_mm_set1_epi16(0x0100), _mm_set1_epi16(0x0302));
    let step = _mm256_set1_epi16(0x0404);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        crate::prefetch::ahead(std::ptr::from_ref(xb).cast(), std::mem::size_of_val(xb));
        let d = yb.d * f16x1((&raw const xb.d).cast());
        let (sc16, mut sumi) = scales_and_correction(xb, yb);
        // SAFETY (loads): every pointer below stays inside `xb` / `yb`.
        let mut hm = _mm256_loadu_si256(xb.hmask.as_ptr().cast());
        let q8 = yb.qs.as_ptr();
        for half in 0..2 {
            let scales = if half == 0 {
                _mm256_permute2x128_si256::<0x00>(sc16, sc16)
            } else {
                _mm256_permute2x128_si256::<0x11>(sc16, sc16)
            };
            let mut idx = idx0;
            let mut q = _mm256_loadu_si256(xb.qs.as_ptr().add(32 * half).cast());
            for s in 0..4 {
                // Bit 4·half + s of each hmask byte, moved to bit 2 (epi16 shifts
                // keep each byte's bits in that byte at these distances).
                let hb = _mm256_and_si256(_mm256_slli_epi16::<2>(hm), four);
                hm = _mm256_srli_epi16::<1>(hm);
                let u = _mm256_or_si256(_mm256_and_si256(q, m3), hb);
                q = _mm256_srli_epi16::<2>(q);
                let a = _mm256_loadu_si256(q8.add(128 * half + 32 * s).cast());
                let p = _mm256_maddubs_epi16(u, a);
                let s16 = _mm256_shuffle_epi8(scales, idx);
                idx = _mm256_add_epi16(idx, step);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s16));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps_256(acc)
}

/// One body for the AVX-512 levels; `$acc` is `madd_acc` or `dpwssd_acc`. Each
/// 512-bit step covers 64 consecutive elements, as in Q2_K's; the high bits come
/// from the 32 hmask bytes broadcast and shifted by 0 (low 256 bits) and 1.
macro_rules! avx512_dot {
    ($name:ident, $features:literal, $acc:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
            let m3 = _mm512_set1_epi8(3);
            let four8 = _mm512_set1_epi8(4);
            // Four i16 lanes of `k`.
            let by = |k: i64| k * 0x0001_0001_0001_0001;
            // Word index per 128-bit lane k of chunk c: group 4c + k.
            let idx0 = _mm512_set_epi64(by(3), by(3), by(2), by(2), by(1), by(1), by(0), by(0));
            let four16 = _mm512_set1_epi16(4);
            let qshift = _mm512_set_epi64(by(2), by(2), by(2), by(2), 0, 0, 0, 0);
            let hshift = _mm512_set_epi64(by(1), by(1), by(1), by(1), 0, 0, 0, 0);
            let mut acc = _mm512_setzero_ps();
            for (xb, yb) in x.iter().zip(y) {
                crate::prefetch::ahead(std::ptr::from_ref(xb).cast(), std::mem::size_of_val(xb));
                let d = yb.d * f16x1((&raw const xb.d).cast());
                let (sc16, corr) = scales_and_correction(xb, yb);
                let scales = _mm512_zextsi256_si512(sc16);
                let mut sumi = _mm512_zextsi256_si512(corr);
                // SAFETY (loads): every pointer below stays inside `xb` / `yb`.
                let hm = _mm256_loadu_si256(xb.hmask.as_ptr().cast());
                let mut hm = _mm512_srlv_epi16(_mm512_broadcast_i64x4(hm), hshift);
                let q8 = yb.qs.as_ptr();
                let mut idx = idx0;
                for half in 0..2 {
                    let q = _mm256_loadu_si256(xb.qs.as_ptr().add(32 * half).cast());
                    let q = _mm512_srlv_epi16(_mm512_broadcast_i64x4(q), qshift);
                    for pair in 0..2 {
                        let q2 = if pair == 0 {
                            _mm512_and_si512(q, m3)
                        } else {
                            _mm512_and_si512(_mm512_srli_epi16::<4>(q), m3)
                        };
                        let hb = _mm512_and_si512(_mm512_slli_epi16::<2>(hm), four8);
                        hm = _mm512_srli_epi16::<2>(hm);
                        let u = _mm512_or_si512(q2, hb);
                        let a = _mm512_loadu_si512(q8.add(128 * half + 64 * pair).cast());
                        let p = _mm512_maddubs_epi16(u, a);
                        let s16 = _mm512_permutexvar_epi16(idx, scales);
                        idx = _mm512_add_epi16(idx, four16);
                        sumi = $acc(sumi, p, s16);
                    }
                }
                acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
            }
            _mm512_reduce_add_ps(acc)
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

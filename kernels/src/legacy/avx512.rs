//! AVX-512 kernels (F/BW/VL/DQ, VNNI `vpdpbusd` when present).
//!
//! Two 32-element blocks fill one 512-bit register. Rows are walked eight blocks
//! at a time: the eight weight and activation scales are converted together
//! (`vcvtph2ps`), each pair's integer dot is converted to f32 and multiplied
//! into one of four independent f32 accumulators by its lanes' scale, and a
//! single horizontal sum ends the row. A partial last group is copied into a
//! zero-padded group (zero scales contribute exactly nothing).
//!
//! Signed weights use an offset: `Σ (q − c)·a = Σ q·a − Σ c·a` with `q` unsigned,
//! so `vpdpbusd` (unsigned × signed) is exact for every input byte.

use std::arch::x86_64::*;

use half::f16;

use super::{reference, LevelKernels};
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use crate::cpu::Isa;

pub(super) fn kernels(vnni: bool) -> LevelKernels {
    if vnni {
        LevelKernels {
            isa: Isa::Avx512,
            q4_0: q4_0_vnni,
            q4_1: q4_1_vnni,
            q5_0: q5_0_vnni,
            q5_1: q5_1_vnni,
            q8_0: q8_0_vnni,
            quantize_q8_0: quantize_q8_0_bytes,
            quantize_q8_1: quantize_q8_1_bytes,
            tiles: None,
        }
    } else {
        LevelKernels {
            isa: Isa::Avx512,
            q4_0: q4_0_bw,
            q4_1: q4_1_bw,
            q5_0: q5_0_bw,
            q5_1: q5_1_bw,
            q8_0: q8_0_bw,
            quantize_q8_0: quantize_q8_0_bytes,
            quantize_q8_1: quantize_q8_1_bytes,
            tiles: None,
        }
    }
}

simd_wrappers! {
    dot q4_0_vnni: BlockQ4_0, BlockQ8_0 => dot_q4_0_q8_0_vnni;
    dot q4_1_vnni: BlockQ4_1, BlockQ8_1 => dot_q4_1_q8_1_vnni;
    dot q5_0_vnni: BlockQ5_0, BlockQ8_0 => dot_q5_0_q8_0_vnni;
    dot q5_1_vnni: BlockQ5_1, BlockQ8_1 => dot_q5_1_q8_1_vnni;
    dot q8_0_vnni: BlockQ8_0, BlockQ8_0 => dot_q8_0_q8_0_vnni;
    dot q4_0_bw: BlockQ4_0, BlockQ8_0 => dot_q4_0_q8_0_bw;
    dot q4_1_bw: BlockQ4_1, BlockQ8_1 => dot_q4_1_q8_1_bw;
    dot q5_0_bw: BlockQ5_0, BlockQ8_0 => dot_q5_0_q8_0_bw;
    dot q5_1_bw: BlockQ5_1, BlockQ8_1 => dot_q5_1_q8_1_bw;
    dot q8_0_bw: BlockQ8_0, BlockQ8_0 => dot_q8_0_q8_0_bw;
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

/// Eight f16 fields as f32. The halves are gathered in general registers, which
/// are otherwise idle in these loops.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn f16x8(f: impl Fn(usize) -> f16) -> __m256 {
    _mm256_cvtph_ps(_mm_set_epi64x(pack4(&f, 4), pack4(&f, 0)))
}

/// Lanes 0..8 take scale `2k`, lanes 8..16 scale `2k + 1`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pair_scale(s: __m512, k: i32) -> __m512 {
    let (a, b) = (2 * k, 2 * k + 1);
    _mm512_permutexvar_ps(
        _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a),
        s,
    )
}

/// The 4-bit quants of two blocks as bytes in element order:
/// `[b0 0..16, b0 16..32, b1 0..16, b1 16..32]`.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn nibbles2(q0: &[u8; 16], q1: &[u8; 16]) -> __m512i {
    let x0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(q0.as_ptr().cast()));
    let x1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(q1.as_ptr().cast()));
    let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(x0), x1);
    let z = _mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
}

/// Adds the fifth bits (`qh`, bit i = element i) of two Q5 blocks as 16.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn high_bits2(q: __m512i, qh0: [u8; 4], qh1: [u8; 4]) -> __m512i {
    let m = u32::from_le_bytes(qh0) as u64 | (u32::from_le_bytes(qh1) as u64) << 32;
    _mm512_mask_add_epi8(q, m, q, _mm512_set1_epi8(16))
}

/// Two blocks' 32 int8 quants.
#[target_feature(enable = "avx512f,avx2")]
#[inline]
unsafe fn load2(q0: &[i8; QK], q1: &[i8; QK]) -> __m512i {
    let lo = _mm256_loadu_si256(q0.as_ptr().cast());
    let hi = _mm256_loadu_si256(q1.as_ptr().cast());
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
unsafe fn dpbusd(u: __m512i, s: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s)
}

/// Σ u·s over each group of four bytes (u unsigned ≤ 31, s signed).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn dot_u<const VNNI: bool>(u: __m512i, s: __m512i) -> __m512i {
    if VNNI {
        dpbusd(u, s)
    } else {
        // |u·s| ≤ 31·128, so the pairwise i16 sums cannot saturate.
        _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1))
    }
}

/// Σ (u − c)·s over each group of four bytes (u, c unsigned ≤ 31, s signed).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn dot_biased<const VNNI: bool>(u: __m512i, s: __m512i, c: __m512i) -> __m512i {
    if VNNI {
        _mm512_sub_epi32(dpbusd(u, s), dpbusd(c, s))
    } else {
        let d = _mm512_sub_epi16(_mm512_maddubs_epi16(u, s), _mm512_maddubs_epi16(c, s));
        _mm512_madd_epi16(d, _mm512_set1_epi16(1))
    }
}

/// Σ w·s over each group of four bytes, both signed.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn dot_ss<const VNNI: bool>(w: __m512i, s: __m512i) -> __m512i {
    let bias = _mm512_set1_epi8(-128);
    if VNNI {
        // w + 128 is unsigned: Σ (w+128)·s − Σ 128·s, exact for every byte.
        _mm512_sub_epi32(dpbusd(_mm512_xor_si512(w, bias), s), dpbusd(bias, s))
    } else {
        // |w|·(±s): maddubs saturates only for w = s = −128, which the Q8
        // quantizers never produce (|q| ≤ 127), as in ggml.
        let neg = _mm512_movepi8_mask(w);
        let sy = _mm512_mask_sub_epi8(s, neg, _mm512_setzero_si512(), s);
        _mm512_madd_epi16(
            _mm512_maddubs_epi16(_mm512_abs_epi8(w), sy),
            _mm512_set1_epi16(1),
        )
    }
}

/// acc += scale · f32(sum) for the pair `k` of the group.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn accumulate(acc: &mut __m512, s: __m512, k: i32, sum: __m512i) {
    *acc = _mm512_fmadd_ps(pair_scale(s, k), _mm512_cvtepi32_ps(sum), *acc);
}

#[target_feature(enable = "avx512f,avx2")]
#[inline]
unsafe fn finish(acc: [__m512; 4], ms: __m256) -> f32 {
    let a = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let a = _mm512_add_ps(a, _mm512_castps256_ps512(ms));
    _mm512_reduce_add_ps(a)
}

macro_rules! dot_kernel {
    ($vnni:ident, $bw:ident, $imp:ident, $W:ty, $A:ty) => {
        /// # Safety
        /// The CPU must support AVX-512 F/BW/VL/DQ, VNNI, AVX2, FMA and F16C.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
        pub(super) unsafe fn $vnni(w: &[$W], a: &[$A]) -> f32 {
            $imp::<true>(w, a)
        }
        /// # Safety
        /// The CPU must support AVX-512 F/BW/VL/DQ, AVX2, FMA and F16C.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
        pub(super) unsafe fn $bw(w: &[$W], a: &[$A]) -> f32 {
            $imp::<false>(w, a)
        }
    };
}

dot_kernel!(
    dot_q4_0_q8_0_vnni,
    dot_q4_0_q8_0_bw,
    dot_q4_0_q8_0,
    BlockQ4_0,
    BlockQ8_0
);
dot_kernel!(
    dot_q4_1_q8_1_vnni,
    dot_q4_1_q8_1_bw,
    dot_q4_1_q8_1,
    BlockQ4_1,
    BlockQ8_1
);
dot_kernel!(
    dot_q5_0_q8_0_vnni,
    dot_q5_0_q8_0_bw,
    dot_q5_0_q8_0,
    BlockQ5_0,
    BlockQ8_0
);
dot_kernel!(
    dot_q5_1_q8_1_vnni,
    dot_q5_1_q8_1_bw,
    dot_q5_1_q8_1,
    BlockQ5_1,
    BlockQ8_1
);
dot_kernel!(
    dot_q8_0_q8_0_vnni,
    dot_q8_0_q8_0_bw,
    dot_q8_0_q8_0,
    BlockQ8_0,
    BlockQ8_0
);

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
#[inline]
unsafe fn dot_q4_0_q8_0<const VNNI: bool>(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let eight = _mm512_set1_epi8(8);
    for_groups!(w, a, |w, a| {
        let s = _mm512_castps256_ps512(_mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d)));
        for k in 0..4 {
            let q = nibbles2(&w[2 * k].qs, &w[2 * k + 1].qs);
            let y = load2(&a[2 * k].qs, &a[2 * k + 1].qs);
            accumulate(&mut acc[k], s, k as i32, dot_biased::<VNNI>(q, y, eight));
        }
    });
    finish(acc, _mm256_setzero_ps())
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
#[inline]
unsafe fn dot_q4_1_q8_1<const VNNI: bool>(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut ms = _mm256_setzero_ps();
    for_groups!(w, a, |w, a| {
        let s = _mm512_castps256_ps512(_mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d)));
        ms = _mm256_fmadd_ps(f16x8(|i| w[i].m), f16x8(|i| a[i].s), ms);
        for k in 0..4 {
            let q = nibbles2(&w[2 * k].qs, &w[2 * k + 1].qs);
            let y = load2(&a[2 * k].qs, &a[2 * k + 1].qs);
            accumulate(&mut acc[k], s, k as i32, dot_u::<VNNI>(q, y));
        }
    });
    finish(acc, ms)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
#[inline]
unsafe fn dot_q5_0_q8_0<const VNNI: bool>(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let sixteen = _mm512_set1_epi8(16);
    for_groups!(w, a, |w, a| {
        let s = _mm512_castps256_ps512(_mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d)));
        for k in 0..4 {
            let (w0, w1) = (&w[2 * k], &w[2 * k + 1]);
            let q = high_bits2(nibbles2(&w0.qs, &w1.qs), w0.qh, w1.qh);
            let y = load2(&a[2 * k].qs, &a[2 * k + 1].qs);
            accumulate(&mut acc[k], s, k as i32, dot_biased::<VNNI>(q, y, sixteen));
        }
    });
    finish(acc, _mm256_setzero_ps())
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
#[inline]
unsafe fn dot_q5_1_q8_1<const VNNI: bool>(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut ms = _mm256_setzero_ps();
    for_groups!(w, a, |w, a| {
        let s = _mm512_castps256_ps512(_mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d)));
        ms = _mm256_fmadd_ps(f16x8(|i| w[i].m), f16x8(|i| a[i].s), ms);
        for k in 0..4 {
            let (w0, w1) = (&w[2 * k], &w[2 * k + 1]);
            let q = high_bits2(nibbles2(&w0.qs, &w1.qs), w0.qh, w1.qh);
            let y = load2(&a[2 * k].qs, &a[2 * k + 1].qs);
            accumulate(&mut acc[k], s, k as i32, dot_u::<VNNI>(q, y));
        }
    });
    finish(acc, ms)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
#[inline]
unsafe fn dot_q8_0_q8_0<const VNNI: bool>(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    for_groups!(w, a, |w, a| {
        let s = _mm512_castps256_ps512(_mm256_mul_ps(f16x8(|i| w[i].d), f16x8(|i| a[i].d)));
        for k in 0..4 {
            let x = load2(&w[2 * k].qs, &w[2 * k + 1].qs);
            let y = load2(&a[2 * k].qs, &a[2 * k + 1].qs);
            accumulate(&mut acc[k], s, k as i32, dot_ss::<VNNI>(x, y));
        }
    });
    finish(acc, _mm256_setzero_ps())
}

/// One Q8 block exactly as [`reference::quantize_q8_block_act`] computes it.
/// Blocks with NaN, infinities or a scale whose inverse overflows go to the
/// reference, whose C-conversion quirks they depend on.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
unsafe fn q8_block(xb: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let v0 = _mm512_loadu_ps(xb.as_ptr());
    let v1 = _mm512_loadu_ps(xb.as_ptr().add(16));
    let nan =
        _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v0) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v1, v1);
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    if nan != 0 || !amax.is_finite() || !id.is_finite() {
        return reference::quantize_q8_block_act(xb, qs);
    }
    let idv = _mm512_set1_ps(id);
    // Round half to even (default MXCSR), as llama.cpp's x86 activation quantizer.
    let i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv));
    let i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv));
    _mm_storeu_si128(qs.as_mut_ptr().cast(), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(qs.as_mut_ptr().add(16).cast(), _mm512_cvtsepi32_epi8(i1));
    (d, _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1)))
}

/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ; `x.len() == 32 · y.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, _) = q8_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
    }
}

/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ; `x.len() == 32 · y.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, sum) = q8_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

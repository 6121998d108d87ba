//! Q4_K: 256 weights in 8 sub-blocks of 32, `w = d*sc_j * q - dmin*m_j` with 4-bit
//! `q` and 6-bit `sc_j`, `m_j` (packed by [`common::pack_scales_mins_k4`]).
//! Byte `32*i + l` of `qs` holds element `64*i + l` (low nibble) and `64*i + 32 + l`
//! (high nibble).

use crate::blocks::{BlockQ4K, BlockQ8K, GgmlType, QK_K};
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels};
use crate::kquants::common::{self, get_scale_min_k4, DotFns};
use crate::kquants::q8k::nearest_int;
use half::f16;

/// ggml's `dequantize_row_q4_K`, with the same f32 operations
/// (`d1 = d*sc; m1 = dmin*m; y = d1*q - m1`).
pub fn dequantize(blocks: &[BlockQ4K], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * QK_K,
        "q4_K: output length mismatch"
    );
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let min = b.dmin.to_f32();
        for (i, (q, y)) in
            b.qs.chunks_exact(32)
                .zip(y.chunks_exact_mut(64))
                .enumerate()
        {
            let (sc, m) = get_scale_min_k4(2 * i, &b.scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = get_scale_min_k4(2 * i + 1, &b.scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let (lo, hi) = y.split_at_mut(32);
            for l in 0..32 {
                lo[l] = d1 * (q[l] & 0xF) as f32 - m1;
                hi[l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// ggml's `quantize_row_q4_K_ref`.
pub fn quantize(x: &[f32], out: &mut [BlockQ4K]) {
    assert_eq!(
        x.len(),
        out.len() * QK_K,
        "q4_K: length is not a whole number of blocks"
    );
    for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 32];
        let mut weights = [0f32; 32];
        let mut mins = [0f32; 8];
        let mut scales = [0f32; 8];
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for j in 0..8 {
            let xs = &x[32 * j..32 * j + 32];
            let mut sum_x2 = 0f32;
            for &v in xs {
                sum_x2 += v * v;
            }
            let av_x = (sum_x2 / 32.0).sqrt();
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = av_x + v.abs();
            }
            let (s, m) = common::make_qkx2_quants(
                15,
                xs,
                &weights,
                &mut l[32 * j..32 * j + 32],
                &mut laux,
                -1.0,
                0.1,
                20,
                false,
            );
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        // `as u8` truncates like ggml's assignment of an int to uint8_t.
        let ls: [u8; 8] =
            std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
        let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
        y.scales = common::pack_scales_mins_k4(&ls, &lm);
        y.d = f16::from_f32(max_scale / 63.0);
        y.dmin = f16::from_f32(max_min / 63.0);
        for j in 0..8 {
            let (sc, m) = get_scale_min_k4(j, &y.scales);
            let d = y.d.to_f32() * sc as f32;
            if d == 0.0 {
                continue;
            }
            let dm = y.dmin.to_f32() * m as f32;
            for ii in 0..32 {
                let q = nearest_int((x[32 * j + ii] + dm) / d);
                l[32 * j + ii] = q.clamp(0, 15) as u8;
            }
        }
        for (q, l) in y.qs.chunks_exact_mut(32).zip(l.chunks_exact(64)) {
            for i in 0..32 {
                q[i] = l[i] | (l[i + 32] << 4);
            }
        }
    }
}

/// Per sub-block `j` of a super-block, the exact integers `sc_j · Σ q·a` and
/// `m_j · Σ a` (the latter from the Q8_K sums).
pub(crate) fn sub_block_terms(xb: &BlockQ4K, yb: &BlockQ8K) -> ([i32; 8], [i32; 8]) {
    let (mut sums, mut mins) = ([0i32; 8], [0i32; 8]);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &xb.scales);
        let q4 = &xb.qs[32 * (j / 2)..32 * (j / 2) + 32];
        let q8 = &yb.qs[32 * j..32 * j + 32];
        let shift = 4 * (j % 2);
        let s: i32 = q4
            .iter()
            .zip(q8)
            .map(|(&q, &a)| ((q >> shift) & 0xF) as i32 * a as i32)
            .sum();
        sums[j] = sc as i32 * s;
        mins[j] = m as i32 * (yb.bsums[2 * j] as i32 + yb.bsums[2 * j + 1] as i32);
    }
    (sums, mins)
}

/// Scalar reference of the dot product with Q8_K (ggml's generic
/// `ggml_vec_dot_q4_K_q8_K`): exact integer sums per sub-block times its scale,
/// the mins through the Q8_K `bsums`, then `d*Σ - dmin*Σ` per block in f32.
pub fn vec_dot_ref(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_K dot: block counts differ");
    let mut sumf = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let (sums, mins) = sub_block_terms(xb, yb);
        let (sumi, summ): (i32, i32) = (sums.iter().sum(), mins.iter().sum());
        sumf += xb.d.to_f32() * yb.d * sumi as f32 - xb.dmin.to_f32() * yb.d * summ as f32;
    }
    sumf
}

fn dot_scalar(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
    vec_dot_ref(x, y)
}

fn quantize_bytes(src: &[f32], dst: &mut [u8]) {
    quantize(src, common::blocks_of_mut(dst))
}

fn dequantize_bytes(src: &[u8], dst: &mut [f32]) {
    dequantize(common::blocks_of(src), dst)
}

pub(crate) fn kernels(isa: Isa) -> Option<TypeKernels> {
    #[cfg(target_arch = "x86_64")]
    let (avx2, avx512) = (
        Some(x86::dot_avx2 as crate::dispatch::VecDotFn),
        Some(x86::dot_avx512 as crate::dispatch::VecDotFn),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (avx2, avx512) = (None, None);
    #[cfg(target_arch = "x86_64")]
    let avx2_tile = Some(super::avx2_tile::tile_q4k as crate::dispatch::TileFn);
    #[cfg(not(target_arch = "x86_64"))]
    let avx2_tile = None;
    #[cfg(target_arch = "aarch64")]
    let neon = Some(neon::dot as crate::dispatch::VecDotFn);
    #[cfg(not(target_arch = "aarch64"))]
    let neon = None;
    Some(common::pick_kernels(
        GgmlType::Q4K,
        isa,
        dequantize_bytes,
        DotFns {
            scalar: dot_scalar,
            avx2,
            avx2_tile,
            avx512,
            neon,
        },
    ))
}

pub(crate) fn quantizer() -> Option<QuantizeFn> {
    Some(quantize_bytes)
}

pub(crate) fn dequantizer() -> Option<DequantizeFn> {
    Some(dequantize_bytes)
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::*;
    use crate::kquants::common::unpack_scales_mins_k4;
    use crate::kquants::common::x86::*;
    use std::arch::x86_64::*;

    /// The AVX2 / AVX-512 VNNI kernel body: 256-bit vectors (on Zen 4, 512-bit
    /// ones only halve the instruction count at the same throughput, and the
    /// nibble layout would need extra shuffles). Per block: one i32 accumulator
    /// pair of `sc_j * maddubs(q4, q8)`, one f32 FMA for `d`, one for the mins.
    macro_rules! dot_kernel {
        ($name:ident, $feat:literal, $madd_acc:ident) => {
            #[target_feature(enable = $feat)]
            unsafe fn $name(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
                let m4 = _mm256_set1_epi8(0x0F);
                let mut acc = _mm256_setzero_ps();
                let mut acc_m = _mm256_setzero_ps();
                for (xb, yb) in x.iter().zip(y) {
                    crate::prefetch::ahead(
                        std::ptr::from_ref(xb).cast(),
                        std::mem::size_of_val(xb),
                    );
                    // SAFETY: `d` and `dmin` are the block's first 4 bytes.
                    let (d, dmin) = unsafe { f16x2(xb as *const BlockQ4K as *const u8) };
                    let u = unpack_scales_mins_k4(&xb.scales);
                    let sm = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
                    // Mins: m_j times the sum of the two 16-element bsums of sub-block j.
                    let mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
                    // SAFETY: bsums is 32 bytes.
                    let bsums = unsafe { _mm256_loadu_si256(yb.bsums.as_ptr() as *const __m256i) };
                    let pm = _mm256_madd_epi16(bsums, mins);
                    acc_m =
                        _mm256_fmadd_ps(_mm256_set1_ps(dmin * yb.d), _mm256_cvtepi32_ps(pm), acc_m);
                    // The eight scales as i16, in both 128-bit lanes.
                    let sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
                    let q4 = xb.qs.as_ptr();
                    let q8 = yb.qs.as_ptr();
                    let mut s0 = _mm256_setzero_si256();
                    let mut s1 = _mm256_setzero_si256();
                    for j in 0..4 {
                        // SAFETY: j < 4 keeps the reads inside qs (128 bytes) and the
                        // Q8_K qs (256 bytes).
                        let (q, a, b) = unsafe {
                            (
                                _mm256_loadu_si256(q4.add(32 * j) as *const __m256i),
                                _mm256_loadu_si256(q8.add(64 * j) as *const __m256i),
                                _mm256_loadu_si256(q8.add(64 * j + 32) as *const __m256i),
                            )
                        };
                        let lo = _mm256_and_si256(q, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                        let pa = _mm256_maddubs_epi16(lo, a);
                        let pb = _mm256_maddubs_epi16(hi, b);
                        let ja = (2 * j) as i16;
                        let sa = _mm256_shuffle_epi8(
                            sc,
                            _mm256_set1_epi16(((2 * ja + 1) << 8) | (2 * ja)),
                        );
                        let jb = ja + 1;
                        let sb = _mm256_shuffle_epi8(
                            sc,
                            _mm256_set1_epi16(((2 * jb + 1) << 8) | (2 * jb)),
                        );
                        s0 = $madd_acc(s0, pa, sa);
                        s1 = $madd_acc(s1, pb, sb);
                    }
                    let sumi = _mm256_add_epi32(s0, s1);
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * yb.d), _mm256_cvtepi32_ps(sumi), acc);
                }
                hsum_ps(acc) - hsum_ps(acc_m)
            }
        };
    }

    dot_kernel!(dot_avx2_impl, "avx2,fma,f16c", madd_acc_avx2);
    dot_kernel!(
        dot_vnni_impl,
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        madd_acc_vnni
    );

    pub(crate) fn dot_avx2(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
        assert!(crate::cpu::has_avx2());
        // SAFETY: the CPU has AVX2/FMA/F16C (checked above; the table also only
        // installs this kernel then).
        unsafe { dot_avx2_impl(x, y) }
    }

    pub(super) fn dot_avx512(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
        assert!(crate::cpu::has_avx512_vnni());
        // SAFETY: the CPU has AVX-512 F/BW/VL and VNNI (checked above).
        unsafe { dot_vnni_impl(x, y) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::*;
    use crate::kquants::common::neon::*;
    use std::arch::aarch64::*;

    macro_rules! dot_kernel {
        ($name:ident, $feat:literal, $dot:ident) => {
            #[target_feature(enable = $feat)]
            unsafe fn $name(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
                let m4 = vdupq_n_u8(0x0F);
                let mut sumf = 0f32;
                for (xb, yb) in x.iter().zip(y) {
                    let u = common::unpack_scales_mins_k4(&xb.scales);
                    let sm: [u8; 16] = bytemuck::cast(u);
                    // SAFETY: bsums is 16 i16.
                    let bs = unsafe { vld1q_s16_x2(yb.bsums.as_ptr()) };
                    let bsp = vpaddq_s16(bs.0, bs.1); // pair sums, sub-blocks 0..8
                                                      // SAFETY: bytes 8..16 of sm are the mins.
                    let mins =
                        vreinterpretq_s16_u16(vmovl_u8(unsafe { vld1_u8(sm.as_ptr().add(8)) }));
                    let pm = vaddq_s32(
                        vmull_s16(vget_low_s16(bsp), vget_low_s16(mins)),
                        vmull_high_s16(bsp, mins),
                    );
                    let summ = vaddvq_s32(pm);
                    let q4 = xb.qs.as_ptr();
                    let q8 = yb.qs.as_ptr();
                    let mut sumi = 0i32;
                    for j in 0..4 {
                        // SAFETY: j < 4 keeps the reads inside qs and the Q8_K qs.
                        let (q, a, b) = unsafe {
                            (
                                vld1q_u8_x2(q4.add(32 * j)),
                                vld1q_s8_x2(q8.add(64 * j)),
                                vld1q_s8_x2(q8.add(64 * j + 32)),
                            )
                        };
                        let z = vdupq_n_s32(0);
                        let lo = $dot(
                            $dot(z, vreinterpretq_s8_u8(vandq_u8(q.0, m4)), a.0),
                            vreinterpretq_s8_u8(vandq_u8(q.1, m4)),
                            a.1,
                        );
                        let hi = $dot(
                            $dot(z, vreinterpretq_s8_u8(vshrq_n_u8(q.0, 4)), b.0),
                            vreinterpretq_s8_u8(vshrq_n_u8(q.1, 4)),
                            b.1,
                        );
                        sumi += vaddvq_s32(lo) * sm[2 * j] as i32
                            + vaddvq_s32(hi) * sm[2 * j + 1] as i32;
                    }
                    sumf +=
                        xb.d.to_f32() * yb.d * sumi as f32 - xb.dmin.to_f32() * yb.d * summ as f32;
                }
                sumf
            }
        };
    }

    dot_kernel!(dot_sdot_impl, "neon,dotprod", dot_sdot);
    dot_kernel!(dot_mull_impl, "neon", dot_mull);

    pub(super) fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
        if crate::cpu::has_neon_dotprod() {
            // SAFETY: the CPU has NEON with the dot-product extension.
            unsafe { dot_sdot_impl(x, y) }
        } else {
            assert!(crate::cpu::has_neon());
            // SAFETY: the CPU has NEON.
            unsafe { dot_mull_impl(x, y) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kquants::common::testing;

    #[test]
    fn roundtrip_rmse_within_ggml_tolerance() {
        let (ggml, rms) = testing::roundtrip_rmse(GgmlType::Q4K);
        assert!(ggml < 0.002, "q4_K ggml error {ggml}");
        // A 4-bit grid over a range of ~4 in each sub-block of 32.
        assert!(rms < 0.07, "q4_K rms error {rms}");
    }

    #[test]
    fn known_answer_dequantization_incl_high_scale_bits() {
        let ls = [1u8, 2, 3, 4, 33, 47, 60, 63];
        let lm = [5u8, 6, 7, 8, 17, 50, 62, 40];
        let mut b = BlockQ4K {
            d: f16::from_f32(0.5),
            dmin: f16::from_f32(0.25),
            scales: common::pack_scales_mins_k4(&ls, &lm),
            qs: [0; 128],
        };
        for (i, q) in b.qs.iter_mut().enumerate() {
            *q = (i % 16) as u8 | ((15 - i % 16) as u8) << 4;
        }
        let mut y = vec![0f32; QK_K];
        dequantize(&[b], &mut y);
        for (e, &v) in y.iter().enumerate() {
            let (j, l) = (e / 32, e % 32);
            let byte = 32 * (j / 2) + l;
            let q = if j % 2 == 0 {
                byte % 16
            } else {
                15 - byte % 16
            };
            let want = 0.5 * ls[j] as f32 * q as f32 - 0.25 * lm[j] as f32;
            assert_eq!(v, want, "element {e}");
        }
    }

    #[test]
    fn dot_every_isa_matches_scalar_and_f64() {
        testing::check_dots(GgmlType::Q4K, |w, a| vec_dot_ref(common::blocks_of(w), a));
    }

    #[test]
    fn zero_input_quantizes_to_zero() {
        let x = vec![0f32; QK_K];
        let mut b = [bytemuck::Zeroable::zeroed(); 1];
        quantize(&x, &mut b);
        let mut y = vec![1f32; QK_K];
        dequantize(&b, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }
}

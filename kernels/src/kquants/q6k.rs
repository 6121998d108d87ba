//! Q6_K: 256 weights in 16 sub-blocks of 16, `w = d * sc_j * (q - 32)` with 6-bit
//! `q` and signed 8-bit `sc_j`. Per half of 128 elements, `ql` byte `l` (0..64)
//! holds the low 4 bits of elements `l` (low nibble) and `l + 64` (high nibble),
//! and `qh` byte `l` (0..32) the top 2 bits of elements `l`, `l+32`, `l+64`, `l+96`.

use crate::blocks::{BlockQ6K, BlockQ8K, GgmlType, QK_K};
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels};
use crate::kquants::common::{self, DotFns, GROUP_MAX_EPS};
use crate::kquants::q8k::nearest_int;
use half::f16;

/// The 6-bit quant (0..64) of element `128*h + 32*k + l` (k in 0..4, l in 0..32).
#[inline]
fn q6(b: &BlockQ6K, h: usize, k: usize, l: usize) -> u8 {
    let ql = b.ql[64 * h + l + 32 * (k % 2)];
    let lo = if k < 2 { ql & 0xF } else { ql >> 4 };
    let hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
    lo | (hi << 4)
}

/// ggml's `dequantize_row_q6_K`, with the same f32 operations (`d * sc * q`).
pub fn dequantize(blocks: &[BlockQ6K], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * QK_K,
        "q6_K: output length mismatch"
    );
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for h in 0..2 {
            for k in 0..4 {
                for l in 0..32 {
                    let sc = b.scales[8 * h + 2 * k + l / 16] as f32;
                    let q = q6(b, h, k, l) as i32 - 32;
                    y[128 * h + 32 * k + l] = d * sc * q as f32;
                }
            }
        }
    }
}

/// ggml's `quantize_row_q6_K_ref`.
pub fn quantize(x: &[f32], out: &mut [BlockQ6K]) {
    assert_eq!(
        x.len(),
        out.len() * QK_K,
        "q6_K: length is not a whole number of blocks"
    );
    for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut max_scale = 0f32;
        let mut max_abs_scale = 0f32;
        for ib in 0..16 {
            let s =
                common::make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..], 1, None);
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *y = bytemuck::Zeroable::zeroed();
            continue;
        }
        let iscale = -128.0 / max_scale;
        y.d = f16::from_f32(1.0 / iscale);
        for (ys, &s) in y.scales.iter_mut().zip(&scales) {
            // `as i8` wraps like ggml's int to int8_t store; the value is >= -128.
            *ys = nearest_int(iscale * s).min(127) as i8;
        }
        for j in 0..16 {
            let d = y.d.to_f32() * y.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        let l: [u8; QK_K] = bytemuck::cast(l);
        for h in 0..2 {
            let lh = &l[128 * h..128 * h + 128];
            for i in 0..32 {
                let (q1, q2, q3, q4) = (lh[i], lh[i + 32], lh[i + 64], lh[i + 96]);
                y.ql[64 * h + i] = (q1 & 0xF) | ((q3 & 0xF) << 4);
                y.ql[64 * h + i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
                y.qh[32 * h + i] =
                    (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
    }
}

/// Scalar reference of the dot product with Q8_K (ggml's generic
/// `ggml_vec_dot_q6_K_q8_K`): exact integer sums per sub-block of 16 times its
/// scale, then `d * Σ` per block in f32.
/// A super-block's exact integer dot: `Σ_s sc_s · Σ (q − 32)·a` over its 16 groups.
fn block_total(xb: &BlockQ6K, yb: &BlockQ8K) -> i32 {
    let mut sumi = 0i32;
    for h in 0..2 {
        for k in 0..4 {
            for half in 0..2 {
                let mut s = 0i32;
                for l in 16 * half..16 * half + 16 {
                    let q = q6(xb, h, k, l) as i32 - 32;
                    s += q * yb.qs[128 * h + 32 * k + l] as i32;
                }
                sumi += xb.scales[8 * h + 2 * k + half] as i32 * s;
            }
        }
    }
    sumi
}

pub fn vec_dot_ref(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q6_K dot: block counts differ");
    let mut sumf = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let sumi = block_total(xb, yb);
        sumf += xb.d.to_f32() * yb.d * sumi as f32;
    }
    sumf
}

/// The dot product as llama.cpp's tiled K-quant matmul computes it (batches of 8
/// or more tokens on weights it does not repack): per super-block the exact
/// integer total, `res = d_w · (f32)total`, then `acc = fma(res, d_a, acc)`.
pub fn vec_dot_tiled_ref(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q6_K dot: block counts differ");
    let mut acc = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let sumi = block_total(xb, yb);
        let res = xb.d.to_f32() * sumi as f32;
        acc = res.mul_add(yb.d, acc);
    }
    acc
}

fn dot_tiled_scalar(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = common::dot_blocks::<BlockQ6K>(n, w, a);
    vec_dot_tiled_ref(x, y)
}

/// Q6_K kernels with llama.cpp's tiled roundings, for batches of 8+ tokens.
pub(crate) fn kernels_tiled(isa: Isa) -> Option<TypeKernels> {
    let base = kernels(isa)?;
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2 && crate::cpu::has_avx2() {
        return Some(TypeKernels {
            isa: Isa::Avx2,
            vec_dot: super::avx2_tile::dot_q6k_tiled,
            tile: Some(super::avx2_tile::tile_q6k_tiled),
            quantize_act: crate::kquants::q8k::quantizer_at(Isa::Avx2),
            ..base
        });
    }
    Some(TypeKernels {
        isa: Isa::Scalar,
        vec_dot: dot_tiled_scalar,
        tile: None,
        quantize_act: crate::kquants::q8k::quantizer_at(Isa::Scalar),
        ..base
    })
}

fn dot_scalar(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = common::dot_blocks::<BlockQ6K>(n, w, a);
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
    let avx2_tile = Some(super::avx2_tile::tile_q6k as crate::dispatch::TileFn);
    #[cfg(not(target_arch = "x86_64"))]
    let avx2_tile = None;
    #[cfg(target_arch = "aarch64")]
    let neon = Some(neon::dot as crate::dispatch::VecDotFn);
    #[cfg(not(target_arch = "aarch64"))]
    let neon = None;
    Some(common::pick_kernels(
        GgmlType::Q6K,
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
    use crate::kquants::common::x86::*;
    use std::arch::x86_64::*;

    /// AVX2 / AVX-512 VNNI body on 256-bit vectors. The 6-bit quants go into
    /// `maddubs` unsigned (0..64); the `-32` offset is folded in once per block as
    /// `-32 * Σ_j sc_j * bsum_j` from the Q8_K sums.
    macro_rules! dot_kernel {
        ($name:ident, $feat:literal, $madd_acc:ident) => {
            #[target_feature(enable = $feat)]
            unsafe fn $name(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
                let m4 = _mm256_set1_epi8(0x0F);
                let m30 = _mm256_set1_epi8(0x30);
                // Picks, per 128-bit lane, i16 scale 2k (low lane) / 2k+1 (high lane).
                let shuf = |k: i16| {
                    _mm256_set_m128i(
                        _mm_set1_epi16(((4 * k + 3) << 8) | (4 * k + 2)),
                        _mm_set1_epi16(((4 * k + 1) << 8) | (4 * k)),
                    )
                };
                let mut acc = _mm256_setzero_ps();
                for (xb, yb) in x.iter().zip(y) {
                    crate::prefetch::ahead(
                        std::ptr::from_ref(xb).cast(),
                        std::mem::size_of_val(xb),
                    );
                    // SAFETY: `d` is 2 bytes inside the block.
                    let d = unsafe { f16x1(&xb.d as *const f16 as *const u8) };
                    // SAFETY: scales is 16 bytes, bsums 32 bytes.
                    let (sc8, bsums) = unsafe {
                        (
                            _mm_loadu_si128(xb.scales.as_ptr() as *const __m128i),
                            _mm256_loadu_si256(yb.bsums.as_ptr() as *const __m256i),
                        )
                    };
                    let sc16 = _mm256_cvtepi8_epi16(sc8);
                    let neg32 =
                        _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));
                    let mut s0 = $madd_acc(_mm256_setzero_si256(), bsums, neg32);
                    let mut s1 = _mm256_setzero_si256();
                    for h in 0..2 {
                        // This half's eight scales as i16, in both 128-bit lanes.
                        let sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(if h == 0 {
                            sc8
                        } else {
                            _mm_srli_si128(sc8, 8)
                        }));
                        // SAFETY: h < 2 keeps the reads inside ql (128), qh (64) and the
                        // Q8_K qs (256 bytes).
                        let (ql0, ql1, qh, q8) = unsafe {
                            (
                                _mm256_loadu_si256(xb.ql.as_ptr().add(64 * h) as *const __m256i),
                                _mm256_loadu_si256(
                                    xb.ql.as_ptr().add(64 * h + 32) as *const __m256i
                                ),
                                _mm256_loadu_si256(xb.qh.as_ptr().add(32 * h) as *const __m256i),
                                yb.qs.as_ptr().add(128 * h),
                            )
                        };
                        let q = [
                            _mm256_or_si256(
                                _mm256_and_si256(ql0, m4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(ql1, m4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                _mm256_and_si256(qh, m30),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
                            ),
                        ];
                        for (k, &qk) in q.iter().enumerate() {
                            // SAFETY: k < 4 keeps the read inside this half's 128 bytes.
                            let a = unsafe { _mm256_loadu_si256(q8.add(32 * k) as *const __m256i) };
                            let p = _mm256_maddubs_epi16(qk, a);
                            let s = _mm256_shuffle_epi8(sch, shuf(k as i16));
                            if k % 2 == 0 {
                                s0 = $madd_acc(s0, p, s);
                            } else {
                                s1 = $madd_acc(s1, p, s);
                            }
                        }
                    }
                    let sumi = _mm256_add_epi32(s0, s1);
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * yb.d), _mm256_cvtepi32_ps(sumi), acc);
                }
                hsum_ps(acc)
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
        let (x, y) = common::dot_blocks::<BlockQ6K>(n, w, a);
        assert!(crate::cpu::has_avx2());
        // SAFETY: the CPU has AVX2/FMA/F16C (checked above).
        unsafe { dot_avx2_impl(x, y) }
    }

    pub(super) fn dot_avx512(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ6K>(n, w, a);
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
            unsafe fn $name(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
                let m4 = vdupq_n_u8(0x0F);
                let m3 = vdupq_n_u8(0x03);
                let off = vdupq_n_s8(32);
                let mut sumf = 0f32;
                for (xb, yb) in x.iter().zip(y) {
                    let mut sumi = 0i32;
                    for h in 0..2 {
                        // SAFETY: h < 2 keeps the reads inside ql, qh and the Q8_K qs.
                        let (ql0, ql1, qh, q8) = unsafe {
                            (
                                vld1q_u8_x2(xb.ql.as_ptr().add(64 * h)),
                                vld1q_u8_x2(xb.ql.as_ptr().add(64 * h + 32)),
                                vld1q_u8_x2(xb.qh.as_ptr().add(32 * h)),
                                yb.qs.as_ptr().add(128 * h),
                            )
                        };
                        for half in 0..2 {
                            let (l0, l1, hb) = if half == 0 {
                                (ql0.0, ql1.0, qh.0)
                            } else {
                                (ql0.1, ql1.1, qh.1)
                            };
                            let q = [
                                vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(hb, m3), 4)),
                                vorrq_u8(
                                    vandq_u8(l1, m4),
                                    vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4),
                                ),
                                vorrq_u8(
                                    vshrq_n_u8(l0, 4),
                                    vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4),
                                ),
                                vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4)),
                            ];
                            for (k, &qk) in q.iter().enumerate() {
                                let qs = vsubq_s8(vreinterpretq_s8_u8(qk), off);
                                // SAFETY: element 32k + 16*half.. +16 of this half.
                                let a = unsafe { vld1q_s8(q8.add(32 * k + 16 * half)) };
                                let s = vaddvq_s32($dot(vdupq_n_s32(0), qs, a));
                                sumi += s * xb.scales[8 * h + 2 * k + half] as i32;
                            }
                        }
                    }
                    sumf += xb.d.to_f32() * yb.d * sumi as f32;
                }
                sumf
            }
        };
    }

    dot_kernel!(dot_sdot_impl, "neon,dotprod", dot_sdot);
    dot_kernel!(dot_mull_impl, "neon", dot_mull);

    pub(super) fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ6K>(n, w, a);
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
mod tiled_tests {
    use super::*;
    use crate::testutil::Rng;

    /// Every level's tiled-order kernels (dot and tile) equal the scalar
    /// definition bit for bit, and stay within f32 rounding of the exact product.
    #[test]
    fn tiled_order_levels_match_definition() {
        let mut rng = Rng::new(21);
        for isa in crate::cpu::supported_levels() {
            let k = kernels_tiled(isa).unwrap();
            for (rows, tokens, nb) in [(1usize, 1usize, 1usize), (3, 9, 2), (2, 8, 3)] {
                let n = nb * QK_K;
                let mut w = vec![bytemuck::Zeroable::zeroed(); rows * nb];
                quantize(&rng.weights(rows * n), &mut w);
                let xa: Vec<f32> = (0..tokens * n).map(|_| rng.normal(1.0)).collect();
                let mut a = vec![bytemuck::Zeroable::zeroed(); tokens * nb];
                crate::kquants::q8k::quantize(&xa, &mut a);
                let (wb, ab): (&[u8], &[u8]) = (bytemuck::cast_slice(&w), bytemuck::cast_slice(&a));
                let mut out = vec![0f32; rows * tokens];
                if let Some(tile) = k.tile {
                    tile(n, wb, ab, &mut out);
                }
                for t in 0..tokens {
                    for r in 0..rows {
                        let (x, y) = (&w[r * nb..][..nb], &a[t * nb..][..nb]);
                        let want = vec_dot_tiled_ref(x, y);
                        let got = (k.vec_dot)(n, bytemuck::cast_slice(x), bytemuck::cast_slice(y));
                        assert_eq!(got.to_bits(), want.to_bits(), "{isa:?} dot r {r} t {t}");
                        if k.tile.is_some() {
                            assert_eq!(
                                out[t * rows + r].to_bits(),
                                want.to_bits(),
                                "{isa:?} tile r {r} t {t}"
                            );
                        }
                        let mut deq = vec![0f32; n];
                        dequantize(x, &mut deq);
                        let mut da = vec![0f32; n];
                        crate::kquants::q8k::dequantize(y, &mut da);
                        let exact: f64 = deq
                            .iter()
                            .zip(&da)
                            .map(|(&p, &q)| p as f64 * q as f64)
                            .sum();
                        let mag: f64 = deq
                            .iter()
                            .zip(&da)
                            .map(|(&p, &q)| (p as f64 * q as f64).abs())
                            .sum();
                        assert!(
                            (got as f64 - exact).abs() <= 1e-5 * mag + 1e-6,
                            "{got} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kquants::common::testing;

    #[test]
    fn roundtrip_rmse_within_ggml_tolerance() {
        let (ggml, rms) = testing::roundtrip_rmse(GgmlType::Q6K);
        assert!(ggml < 0.002, "q6_K ggml error {ggml}");
        assert!(rms < 0.02, "q6_K rms error {rms}");
    }

    #[test]
    fn known_answer_dequantization() {
        let mut b: BlockQ6K = bytemuck::Zeroable::zeroed();
        b.d = f16::from_f32(0.125);
        for (j, s) in b.scales.iter_mut().enumerate() {
            *s = (j as i32 * 9 - 70) as i8; // negative and positive scales
        }
        // Element e gets quant (e * 7) % 64, packed by hand.
        let want_q = |e: usize| ((e * 7) % 64) as u8;
        for h in 0..2 {
            for l in 0..32 {
                let e = |k: usize| want_q(128 * h + 32 * k + l);
                b.ql[64 * h + l] = (e(0) & 0xF) | ((e(2) & 0xF) << 4);
                b.ql[64 * h + l + 32] = (e(1) & 0xF) | ((e(3) & 0xF) << 4);
                b.qh[32 * h + l] =
                    (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
            }
        }
        let mut y = vec![0f32; QK_K];
        dequantize(&[b], &mut y);
        for (e, &v) in y.iter().enumerate() {
            let sc = b.scales[e / 16] as f32;
            assert_eq!(
                v,
                0.125 * sc * (want_q(e) as i32 - 32) as f32,
                "element {e}"
            );
        }
    }

    #[test]
    fn dot_every_isa_matches_scalar_and_f64() {
        testing::check_dots(GgmlType::Q6K, |w, a| vec_dot_ref(common::blocks_of(w), a));
    }

    #[test]
    fn zero_input_quantizes_to_zero() {
        let x = vec![0f32; 2 * QK_K];
        let mut b = [bytemuck::Zeroable::zeroed(); 2];
        quantize(&x, &mut b);
        let mut y = vec![1f32; 2 * QK_K];
        dequantize(&b, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }
}

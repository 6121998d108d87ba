//! Q4_K with the float arithmetic of llama.cpp's repacked kernels.
//!
//! On x86 with AVX2, llama.cpp repacks every Q4_K matrix whose row count is a
//! multiple of 8 (`q4_K_8x8_q8_K`) and multiplies it with two kernels of their own
//! rounding, not `ggml_vec_dot_q4_K_q8_K`'s:
//! - **gemv** (decode, and the tokens of a batch after the last whole group of
//!   four): per super-block one exact integer `Σ_j sc_j·dot_j` and one
//!   `Σ_j m_j·bsum_j`, each folded into its f32 accumulator by one FMA;
//! - **gemm** (a batch's tokens in whole groups of four): the same, but one FMA
//!   per 64 elements (each pair of sub-blocks), and the activations quantized by
//!   `ggml_quantize_mat_q8_K_4x8`, which breaks a ±max tie toward the positive
//!   element where the row quantizer takes the first one.
//!
//! The result is `acc − acc_min`. The AVX2 and AVX-512 builds of llama.cpp do the
//! same per output, so one emulation serves both.

use crate::blocks::{BlockQ4K, BlockQ8K, QK_K};
use crate::cpu::Isa;
use crate::dispatch::TypeKernels;
use crate::kquants::common;
use crate::kquants::q8k::nearest_int;

/// Which of llama.cpp's two repacked kernels to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// One FMA per super-block.
    Gemv,
    /// One FMA per 64 elements.
    Gemm,
}

/// Scalar definition: exact integer sums per pair of sub-blocks, then the FMAs.
pub fn dot_ref(order: Order, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_K dot: block counts differ");
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (xb, yb) in x.iter().zip(y) {
        let scale = xb.d.to_f32() * yb.d;
        let scale_min = xb.dmin.to_f32() * yb.d;
        let (terms, min_terms) = super::q4k::sub_block_terms(xb, yb);
        // Pairs of sub-blocks: the 64-element steps of the gemm kernel.
        let sums: [i32; 4] = std::array::from_fn(|k| terms[2 * k] + terms[2 * k + 1]);
        let mins: [i32; 4] = std::array::from_fn(|k| min_terms[2 * k] + min_terms[2 * k + 1]);
        match order {
            Order::Gemv => {
                acc = (sums.iter().sum::<i32>() as f32).mul_add(scale, acc);
                acc_min = (mins.iter().sum::<i32>() as f32).mul_add(scale_min, acc_min);
            }
            Order::Gemm => {
                for k in 0..4 {
                    acc = (sums[k] as f32).mul_add(scale, acc);
                    acc_min = (mins[k] as f32).mul_add(scale_min, acc_min);
                }
            }
        }
    }
    acc - acc_min
}

/// `ggml_quantize_mat_q8_K_4x8`'s values for one row: as the row quantizer
/// ([`crate::kquants::q8k::quantize`]), except that the scale's sign comes from a
/// positive element of largest magnitude whenever there is one.
pub fn quantize_act_gemm(x: &[f32], out: &mut [BlockQ8K]) {
    assert_eq!(
        x.len(),
        out.len() * QK_K,
        "q8_K: length is not a whole number of blocks"
    );
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 {
            *yb = BlockQ8K {
                d: 0.0,
                qs: [0; QK_K],
                bsums: [0; QK_K / 16],
            };
            continue;
        }
        let iscale = if xb.contains(&amax) {
            -127.0 / amax
        } else {
            127.0 / amax
        };
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).clamp(-128, 127) as i8;
        }
        for (s, g) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        yb.d = 1.0 / iscale;
    }
}

fn quantize_gemm_bytes(src: &[f32], dst: &mut [u8]) {
    quantize_act_gemm(src, common::blocks_of_mut(dst))
}

fn gemv_scalar(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
    dot_ref(Order::Gemv, x, y)
}

fn gemm_scalar(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
    dot_ref(Order::Gemm, x, y)
}

/// The kernels llama.cpp's repacked Q4_K uses for a matrix of `rows` rows, as
/// `(gemv, gemm)`: `gemv` for single tokens and a batch's last `tokens % 4`,
/// `gemm` for the rest. `None` where llama.cpp would not repack (rows not a
/// multiple of 8): its plain `vec_dot` applies there.
pub fn kernels(rows: usize, isa: Isa) -> Option<(TypeKernels, TypeKernels)> {
    if !rows.is_multiple_of(8) {
        return None;
    }
    let base = super::q4k::kernels(isa)?;
    type Fns = (
        crate::dispatch::VecDotFn,
        crate::dispatch::VecDotFn,
        Option<crate::dispatch::TileFn>,
        Option<crate::dispatch::TileFn>,
        Isa,
    );
    let scalar: Fns = (gemv_scalar, gemm_scalar, None, None, Isa::Scalar);
    #[cfg(target_arch = "x86_64")]
    let (gemv, gemm, gemv_tile, gemm_tile, level): Fns =
        if isa >= Isa::Avx2 && crate::cpu::has_avx2() {
            let (gv, gm): (crate::dispatch::TileFn, crate::dispatch::TileFn) =
                (x86::tile_gemv, x86::tile_gemm);
            (x86::gemv, x86::gemm, Some(gv), Some(gm), Isa::Avx2)
        } else {
            scalar
        };
    #[cfg(not(target_arch = "x86_64"))]
    let (gemv, gemm, gemv_tile, gemm_tile, level): Fns = scalar;
    let make = |vec_dot, quantize_act, tile| TypeKernels {
        isa: level,
        vec_dot,
        quantize_act,
        tile,
        ..base
    };
    Some((
        make(gemv, crate::kquants::q8k::quantizer_at(level), gemv_tile),
        make(gemm, quantize_gemm_bytes, gemm_tile),
    ))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::kquants::common::unpack_scales_mins_k4;
    use crate::kquants::common::x86::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
        _mm_cvtsi128_si32(_mm_add_epi32(x, _mm_shuffle_epi32::<1>(x)))
    }

    /// What one weight super-block contributes independently of the token: its
    /// scales, its unpacked nibbles and the per-sub-block scale shuffles.
    struct Prepared {
        d: f32,
        dmin: f32,
        mins: __m256i,
        lo: [__m256i; 4],
        hi: [__m256i; 4],
        sa: [__m256i; 4],
        sb: [__m256i; 4],
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn prepare(xb: &BlockQ4K) -> Prepared {
        let m4 = _mm256_set1_epi8(0x0F);
        // SAFETY: `d` and `dmin` are the block's first 4 bytes.
        let (d, dmin) = f16x2(xb as *const BlockQ4K as *const u8);
        let u = unpack_scales_mins_k4(&xb.scales);
        let sm = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
        // Lane j: m_j, paired with the two 16-element bsums of sub-block j.
        let mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
        let sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        let q4 = xb.qs.as_ptr();
        let mut p = Prepared {
            d,
            dmin,
            mins,
            lo: [_mm256_setzero_si256(); 4],
            hi: [_mm256_setzero_si256(); 4],
            sa: [_mm256_setzero_si256(); 4],
            sb: [_mm256_setzero_si256(); 4],
        };
        for j in 0..4 {
            let q = _mm256_loadu_si256(q4.add(32 * j) as *const __m256i);
            p.lo[j] = _mm256_and_si256(q, m4);
            p.hi[j] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            let ja = (2 * j) as i16;
            p.sa[j] = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(((2 * ja + 1) << 8) | (2 * ja)));
            let jb = ja + 1;
            p.sb[j] = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(((2 * jb + 1) << 8) | (2 * jb)));
        }
        p
    }

    /// One super-block of one token into its accumulators: the integer sums of
    /// each 64 elements (scaled) and of the mins, then the FMAs of `ORDER`
    /// (0 = gemv, 1 = gemm).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn step<const ORDER: u8>(p: &Prepared, yb: &BlockQ8K, acc: &mut f32, acc_min: &mut f32) {
        let (scale, scale_min) = (p.d * yb.d, p.dmin * yb.d);
        let bsums = _mm256_loadu_si256(yb.bsums.as_ptr() as *const __m256i);
        let pm = _mm256_madd_epi16(bsums, p.mins);
        let mut pmv = [0i32; 8];
        _mm256_storeu_si256(pmv.as_mut_ptr().cast(), pm);
        let q8 = yb.qs.as_ptr();
        let mut total = _mm256_setzero_si256();
        for j in 0..4 {
            let a = _mm256_loadu_si256(q8.add(64 * j) as *const __m256i);
            let b = _mm256_loadu_si256(q8.add(64 * j + 32) as *const __m256i);
            let s = _mm256_add_epi32(
                madd_acc_avx2(
                    _mm256_setzero_si256(),
                    _mm256_maddubs_epi16(p.lo[j], a),
                    p.sa[j],
                ),
                madd_acc_avx2(
                    _mm256_setzero_si256(),
                    _mm256_maddubs_epi16(p.hi[j], b),
                    p.sb[j],
                ),
            );
            if ORDER == 1 {
                *acc = (hsum_i32(s) as f32).mul_add(scale, *acc);
                let m = pmv[2 * j] + pmv[2 * j + 1];
                *acc_min = (m as f32).mul_add(scale_min, *acc_min);
            } else {
                total = _mm256_add_epi32(total, s);
            }
        }
        if ORDER == 0 {
            *acc = (hsum_i32(total) as f32).mul_add(scale, *acc);
            *acc_min = (pmv.iter().sum::<i32>() as f32).mul_add(scale_min, *acc_min);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const ORDER: u8>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
        let (mut acc, mut acc_min) = (0f32, 0f32);
        for (xb, yb) in x.iter().zip(y) {
            crate::prefetch::ahead(std::ptr::from_ref(xb).cast(), std::mem::size_of_val(xb));
            step::<ORDER>(&prepare(xb), yb, &mut acc, &mut acc_min);
        }
        acc - acc_min
    }

    /// Every (row, token) product with each weight super-block prepared once for
    /// up to four tokens; the same steps in the same order as [`dot`].
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile<const ORDER: u8>(nb: usize, w: &[BlockQ4K], a: &[BlockQ8K], out: &mut [f32]) {
        let rows = w.len() / nb;
        let tokens = a.len() / nb;
        for r in 0..rows {
            let row = &w[r * nb..(r + 1) * nb];
            let mut t0 = 0;
            if ORDER == 1 {
                while t0 + 4 <= tokens {
                    let ys: [&[BlockQ8K]; 4] =
                        std::array::from_fn(|t| &a[(t0 + t) * nb..(t0 + t + 1) * nb]);
                    let y = gemm4(row, ys);
                    for (t, v) in y.into_iter().enumerate() {
                        out[(t0 + t) * rows + r] = v;
                    }
                    t0 += 4;
                }
            }
            while t0 < tokens {
                let tn = (tokens - t0).min(4);
                let mut acc = [0f32; 4];
                let mut acc_min = [0f32; 4];
                for (bi, xb) in row.iter().enumerate() {
                    let p = prepare(xb);
                    for t in 0..tn {
                        let yb = &a[(t0 + t) * nb + bi];
                        step::<ORDER>(&p, yb, &mut acc[t], &mut acc_min[t]);
                    }
                }
                for t in 0..tn {
                    out[(t0 + t) * rows + r] = acc[t] - acc_min[t];
                }
                t0 += tn;
            }
        }
    }

    /// Four tokens of the gemm order at once: each token's FMA chain is one lane
    /// of a 4-lane vector (lanes are independent, so the bits are [`step`]'s), and
    /// the horizontal integer sums of the four tokens share their adds.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn gemm4(row: &[BlockQ4K], ys: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = _mm_setzero_ps();
        let mut acc_min = _mm_setzero_ps();
        for (bi, xb) in row.iter().enumerate() {
            let p = prepare(xb);
            let yb: [&BlockQ8K; 4] = std::array::from_fn(|t| &ys[t][bi]);
            let dv = _mm_setr_ps(yb[0].d, yb[1].d, yb[2].d, yb[3].d);
            let scale = _mm_mul_ps(_mm_set1_ps(p.d), dv);
            let scale_min = _mm_mul_ps(_mm_set1_ps(p.dmin), dv);
            let pm: [__m256i; 4] = std::array::from_fn(|t| {
                _mm256_madd_epi16(
                    _mm256_loadu_si256(yb[t].bsums.as_ptr() as *const __m256i),
                    p.mins,
                )
            });
            // Lanes: m-pair sums for j = 0,1 (low half) and 2,3 (high half).
            let (h01, h23) = (
                _mm256_hadd_epi32(pm[0], pm[1]),
                _mm256_hadd_epi32(pm[2], pm[3]),
            );
            let pick = |h: __m256i, hi: bool| {
                if hi {
                    _mm_castsi128_ps(_mm256_extracti128_si256::<1>(h))
                } else {
                    _mm_castsi128_ps(_mm256_castsi256_si128(h))
                }
            };
            let mins_j = |j: usize| -> __m128i {
                let (a, b) = (pick(h01, j >= 2), pick(h23, j >= 2));
                _mm_castps_si128(if j.is_multiple_of(2) {
                    _mm_shuffle_ps::<0b10_00_10_00>(a, b)
                } else {
                    _mm_shuffle_ps::<0b11_01_11_01>(a, b)
                })
            };
            for j in 0..4 {
                let s: [__m256i; 4] = std::array::from_fn(|t| {
                    let q8 = yb[t].qs.as_ptr();
                    let a8 = _mm256_loadu_si256(q8.add(64 * j) as *const __m256i);
                    let b8 = _mm256_loadu_si256(q8.add(64 * j + 32) as *const __m256i);
                    _mm256_add_epi32(
                        _mm256_madd_epi16(_mm256_maddubs_epi16(p.lo[j], a8), p.sa[j]),
                        _mm256_madd_epi16(_mm256_maddubs_epi16(p.hi[j], b8), p.sb[j]),
                    )
                });
                let h =
                    _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
                let sums =
                    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), scale, acc);
                acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(mins_j(j)), scale_min, acc_min);
            }
        }
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), _mm_sub_ps(acc, acc_min));
        out
    }

    fn tile_checked<const ORDER: u8>(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
        let (w, a): (&[BlockQ4K], &[BlockQ8K]) = (common::blocks_of(w), common::blocks_of(a));
        let nb = n / QK_K;
        assert!(
            n > 0
                && n.is_multiple_of(QK_K)
                && w.len().is_multiple_of(nb)
                && a.len().is_multiple_of(nb),
            "q4_K tile: {n} columns do not fit {} weight and {} activation blocks",
            w.len(),
            a.len()
        );
        assert_eq!(
            out.len(),
            (w.len() / nb) * (a.len() / nb),
            "q4_K tile: output size"
        );
        assert!(crate::cpu::has_avx2());
        // SAFETY: the CPU has AVX2/FMA/F16C (checked above); shapes checked above.
        unsafe { tile::<ORDER>(nb, w, a, out) }
    }

    pub(super) fn tile_gemv(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
        tile_checked::<0>(n, w, a, out)
    }

    pub(super) fn tile_gemm(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
        tile_checked::<1>(n, w, a, out)
    }

    pub(super) fn gemv(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
        assert!(crate::cpu::has_avx2());
        // SAFETY: the CPU has AVX2/FMA/F16C (checked above).
        unsafe { dot::<0>(x, y) }
    }

    pub(super) fn gemm(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let (x, y) = common::dot_blocks::<BlockQ4K>(n, w, a);
        assert!(crate::cpu::has_avx2());
        // SAFETY: as in `gemv`.
        unsafe { dot::<1>(x, y) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kquants::q8k;
    use crate::testutil::Rng;

    fn q4k_row(x: &[f32]) -> Vec<BlockQ4K> {
        let mut w = vec![bytemuck::Zeroable::zeroed(); x.len() / QK_K];
        crate::kquants::q4k::quantize(x, &mut w);
        w
    }

    /// Every level's kernels equal the scalar definition bit for bit, and both
    /// orders stay within f32 rounding of the exact dot product of the dequantized
    /// operands.
    #[test]
    fn levels_match_definition_and_f64() {
        let mut rng = Rng::new(5);
        for nb in [1usize, 2, 5] {
            let n = nb * QK_K;
            let w = q4k_row(&rng.weights(n));
            let xa: Vec<f32> = (0..n).map(|_| rng.normal(1.0)).collect();
            let mut deq = vec![0f32; n];
            crate::kquants::q4k::dequantize(&w, &mut deq);
            for isa in cpu::supported_levels() {
                let (gemv, gemm) = kernels(8, isa).unwrap();
                for (k, order) in [(gemv, Order::Gemv), (gemm, Order::Gemm)] {
                    let mut a = vec![bytemuck::Zeroable::zeroed(); nb];
                    (k.quantize_act)(&xa, bytemuck::cast_slice_mut(&mut a));
                    let want = dot_ref(order, &w, &a);
                    let got = (k.vec_dot)(n, bytemuck::cast_slice(&w), bytemuck::cast_slice(&a));
                    assert_eq!(got.to_bits(), want.to_bits(), "{isa:?} {order:?} nb {nb}");
                    let mut da = vec![0f32; n];
                    q8k::dequantize(&a, &mut da);
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
                        "{order:?}: {got} vs {exact}"
                    );
                }
            }
        }
    }

    /// Tiles give each (row, token) exactly its dot's bits.
    #[test]
    fn tiles_equal_dots_bit_for_bit() {
        let mut rng = Rng::new(8);
        for isa in cpu::supported_levels() {
            let (gemv, gemm) = kernels(8, isa).unwrap();
            for k in [gemv, gemm] {
                let Some(tile) = k.tile else { continue };
                for (rows, tokens, nb) in [(3usize, 1usize, 1usize), (2, 5, 2), (1, 9, 3)] {
                    let n = nb * QK_K;
                    let w: Vec<BlockQ4K> =
                        (0..rows).flat_map(|_| q4k_row(&rng.weights(n))).collect();
                    let xa: Vec<f32> = (0..n * tokens).map(|_| rng.normal(1.0)).collect();
                    let mut a = vec![bytemuck::Zeroable::zeroed(); nb * tokens];
                    (k.quantize_act)(&xa, bytemuck::cast_slice_mut::<BlockQ8K, u8>(&mut a));
                    let (wb, ab): (&[u8], &[u8]) =
                        (bytemuck::cast_slice(&w), bytemuck::cast_slice(&a));
                    let mut out = vec![0f32; rows * tokens];
                    tile(n, wb, ab, &mut out);
                    let (wr, ar) = (wb.len() / rows, ab.len() / tokens);
                    for t in 0..tokens {
                        for r in 0..rows {
                            let want = (k.vec_dot)(n, &wb[r * wr..][..wr], &ab[t * ar..][..ar]);
                            assert_eq!(
                                out[t * rows + r].to_bits(),
                                want.to_bits(),
                                "{isa:?} r {r} t {t}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The two orders round differently somewhere (else one would do).
    #[test]
    fn orders_differ_on_some_rows() {
        let mut rng = Rng::new(9);
        let differ = (0..100)
            .filter(|_| {
                let w = q4k_row(&rng.weights(4 * QK_K));
                let xa: Vec<f32> = (0..4 * QK_K).map(|_| rng.normal(1.0)).collect();
                let mut a = vec![bytemuck::Zeroable::zeroed(); 4];
                q8k::quantize(&xa, &mut a);
                dot_ref(Order::Gemv, &w, &a) != dot_ref(Order::Gemm, &w, &a)
            })
            .count();
        assert!(differ > 0);
    }

    /// The 4x8 quantizer equals the row quantizer except on a ±max tie, where it
    /// takes the positive element's sign.
    #[test]
    fn gemm_quantizer_breaks_ties_toward_positive() {
        let mut rng = Rng::new(2);
        let x: Vec<f32> = (0..2 * QK_K).map(|_| rng.normal(2.0)).collect();
        let (mut a, mut b) = (
            vec![bytemuck::Zeroable::zeroed(); 2],
            vec![bytemuck::Zeroable::zeroed(); 2],
        );
        q8k::quantize(&x, &mut a);
        quantize_act_gemm(&x, &mut b);
        assert_eq!(
            bytemuck::cast_slice::<BlockQ8K, u8>(&a),
            bytemuck::cast_slice::<BlockQ8K, u8>(&b)
        );
        let mut tie = vec![0.5f32; QK_K];
        tie[3] = -4.0;
        tie[100] = 4.0;
        let (mut a, mut b) = (
            vec![bytemuck::Zeroable::zeroed(); 1],
            vec![bytemuck::Zeroable::zeroed(); 1],
        );
        q8k::quantize(&tie, &mut a);
        quantize_act_gemm(&tie, &mut b);
        let (a, b): (&BlockQ8K, &BlockQ8K) = (&a[0], &b[0]);
        assert!(
            a.d > 0.0 && b.d < 0.0,
            "row quantizer follows the first (negative) max, 4x8 the positive"
        );
        assert_eq!((a.qs[3], a.qs[100]), (-127, 127));
        assert_eq!((b.qs[3], b.qs[100]), (127, -127));
    }
}

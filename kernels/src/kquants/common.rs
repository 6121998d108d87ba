//! Helpers shared by the K-quant types: 6-bit scale/min packing of Q4_K/Q5_K,
//! ports of ggml's `make_qkx2_quants` / `make_qx_quants` (same iteration
//! constants, same order of f32 operations), and byte-slice glue for the
//! dispatch table.

use crate::blocks::{as_blocks, Block, BlockQ8K, K_SCALE_SIZE, QK_K};
use crate::kquants::q8k::nearest_int;

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below this are all zero.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) of a
/// Q4_K/Q5_K block. Sub-blocks 0..4 keep theirs in the low 6 bits of bytes `j` and
/// `j + 4`; sub-blocks 4..8 take their low 4 bits from byte `j + 4` and their top
/// 2 bits from the spare top bits of bytes `j - 4` (scale) and `j` (min).
#[inline]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All eight scales and mins of a Q4_K/Q5_K block at once, as four little-endian
/// words: bytes 0..8 are the scales of sub-blocks 0..8, bytes 8..16 the mins.
/// Same result as eight calls of [`get_scale_min_k4`], in a dozen integer ops
/// (the SIMD kernels feed the words straight into a vector register).
#[inline(always)]
pub(crate) fn unpack_scales_mins_k4(q: &[u8; K_SCALE_SIZE]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let u0 = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
    let u1 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
    let u2 = u32::from_le_bytes([q[8], q[9], q[10], q[11]]);
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

/// The inverse of [`get_scale_min_k4`] for quantizers: pack eight 6-bit scales
/// and mins (values above 63 are a caller bug and lose their high bits).
pub(crate) fn pack_scales_mins_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// ggml's `make_qkx2_quants`: fit `x ≈ scale * L - min` with `L` in `0..=nmax`,
/// by weighted least squares over `nstep + 1` trial inverse scales
/// `(rmin + rdelta * is + nmax) / (max - min)`. Writes `l` (and uses `laux` as
/// scratch, both at least `x.len()` long); returns `(scale, min)` where the
/// dequantized value is `scale * l - min` (`min >= 0`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let (l, laux) = (&mut l[..n], &mut laux[..n]);
    let weights = &weights[..n];
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let err = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let (w, lf) = (weights[i], q as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants`: symmetric fit `x ≈ scale * (L - nmax)` with `L` in
/// `0..2*nmax`, the element of largest magnitude mapping to `-nmax`. `rmse_type`
/// picks the weighting as in ggml (0: plain rounding; 1: x², 2: 1, 3: |x|,
/// else √|x|; negative: one refinement step only); `qw` overrides it. Writes `l`
/// (at least `x.len()` long) and returns the scale.
pub(crate) fn make_qx_quants(
    nmax: i32,
    x: &[f32],
    l: &mut [i8],
    mut rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let n = x.len();
    let l = &mut l[..n];
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    if rmse_type == 0 {
        for (q, &v) in l.iter_mut().zip(x) {
            *q = (nmax + quant(iscale, v)) as i8;
        }
        return 1.0 / iscale;
    }
    let mut return_early = false;
    if rmse_type < 0 {
        rmse_type = -rmse_type;
        return_early = true;
    }
    let weight = |i: usize| match qw {
        Some(qw) => qw[i],
        None => match rmse_type {
            1 => x[i] * x[i],
            2 => 1.0,
            3 => x[i].abs(),
            _ => x[i].abs().sqrt(),
        },
    };
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for i in 0..n {
        let q = quant(iscale, x[i]);
        l[i] = (q + nmax) as i8;
        let (w, lf) = (weight(i), q as f32);
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for (i, &xi) in x.iter().enumerate() {
            let (w, lf) = (weight(i), quant(iscale, xi) as f32);
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                l[i] = (nmax + quant(iscale, x[i])) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Views a weight row and a Q8_K activation row of `n` elements as blocks for a
/// dot product. Panics (caller bug) when `n` is not a multiple of 256, the byte
/// lengths do not match `n`, or the bytes are misaligned for the block types.
#[inline]
pub(crate) fn dot_blocks<'a, B: Block>(
    n: usize,
    w: &'a [u8],
    a: &'a [u8],
) -> (&'a [B], &'a [BlockQ8K]) {
    assert!(
        n.is_multiple_of(QK_K),
        "{}: row length {n} is not a multiple of {QK_K}",
        B::TYPE
    );
    let x: &[B] = as_blocks(w).expect("weight row is misaligned or not whole blocks");
    let y: &[BlockQ8K] = as_blocks(a).expect("q8_K row is misaligned or not whole blocks");
    assert!(
        x.len() == n / QK_K && y.len() == n / QK_K,
        "{}: row byte lengths do not match n = {n}",
        B::TYPE
    );
    (x, y)
}

/// Views bytes as blocks for (de)quantization, panicking on a caller bug.
pub(crate) fn blocks_of<B: Block>(bytes: &[u8]) -> &[B] {
    as_blocks(bytes).expect("source is misaligned or not whole blocks")
}

pub(crate) fn blocks_of_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    bytemuck::try_cast_slice_mut(bytes).expect("destination is misaligned or not whole blocks")
}

#[cfg(test)]
pub(crate) mod testing {
    //! Checks every K-quant type runs through: quantization error, and every
    //! ISA level's dot against the scalar reference and an f64 dot.
    use crate::blocks::{BlockQ8K, GgmlType, QK_K};
    use crate::cpu;
    use crate::dispatch::kernels_at;
    use crate::kquants::q8k;
    use crate::testutil::{dot_f64, ggml_synthetic, rel_diff, rmse, Rng};

    /// Quantize ggml's synthetic data with the table's quantizer, dequantize, and
    /// return ggml's error metric (test-quantize-fns' `array_rmse`, which is
    /// `sqrt(Σ diff²) / n`, not a true RMS) and the true root mean square error.
    pub(crate) fn roundtrip_rmse(dtype: GgmlType) -> (f64, f64) {
        let x = ggml_synthetic(32 * 128, 0.0);
        let bytes = dtype.row_bytes(x.len()).unwrap();
        let mut q = vec![0u16; bytes / 2];
        (crate::dispatch::quantizer(dtype).unwrap())(&x, bytemuck::cast_slice_mut(&mut q));
        let mut y = vec![0f32; x.len()];
        (crate::dispatch::dequantizer(dtype))(bytemuck::cast_slice(&q), &mut y);
        let e = rmse(&x, &y);
        (e / (x.len() as f64).sqrt(), e)
    }

    pub(crate) fn q8k_row(x: &[f32]) -> Vec<BlockQ8K> {
        let mut a = vec![bytemuck::Zeroable::zeroed(); x.len() / QK_K];
        q8k::quantize(x, &mut a);
        a
    }

    /// Every supported level's `vec_dot` against `reference` (the scalar dot on the
    /// same bytes, within 1e-5 relative) and against the f64 dot of the
    /// dequantized weights with the f32 activations (ggml's tolerance).
    pub(crate) fn check_dots(dtype: GgmlType, reference: fn(&[u8], &[BlockQ8K]) -> f32) {
        let mut rng = Rng::new(0x5eed ^ dtype.id() as u64);
        let quantize = crate::dispatch::quantizer(dtype).unwrap();
        let dequantize = crate::dispatch::dequantizer(dtype);
        for &nb in &[1usize, 2, 3, 5, 7, 17, 33] {
            for case in 0..4 {
                let n = nb * QK_K;
                let mut x = rng.weights(n);
                let mut act = rng.weights(n);
                if case == 1 {
                    // A zero block and a block with a huge range among normal ones.
                    x[..QK_K].fill(0.0);
                    let k = (nb - 1) * QK_K;
                    x[k..k + QK_K].iter_mut().for_each(|v| *v *= 1e4);
                } else if case == 2 {
                    x.iter_mut().for_each(|v| *v *= 1e-3);
                    act.iter_mut().for_each(|v| *v *= 1e3);
                }
                let mut w = vec![0u16; dtype.row_bytes(n).unwrap() / 2];
                let wb: &mut [u8] = bytemuck::cast_slice_mut(&mut w);
                if case == 3 {
                    // Raw random bytes with sane f16 scales: every bit pattern of quants.
                    rng.bytes(wb.len())
                        .iter()
                        .zip(wb.iter_mut())
                        .for_each(|(s, d)| *d = *s);
                    fix_scales(dtype, wb, &mut rng);
                } else {
                    quantize(&x, wb);
                }
                let wb: &[u8] = bytemuck::cast_slice(&w);
                let mut deq = vec![0f32; n];
                dequantize(wb, &mut deq);
                let a = q8k_row(&act);
                let ab: &[u8] = bytemuck::cast_slice(&a);
                let r = reference(wb, &a);
                let exact = dot_f64(&deq, &act);
                let scale: f64 = deq
                    .iter()
                    .zip(&act)
                    .map(|(&p, &q)| (p as f64 * q as f64).abs())
                    .sum::<f64>()
                    .max(1e-30);
                // ggml's criterion (|dot - ref| / n < 0.02) on data of unit size; on the
                // scaled cases the same bound relative to the sum of |products|.
                let err = (r as f64 - exact).abs();
                if case == 0 || case == 3 {
                    assert!(
                        err / (n as f64) < 0.02,
                        "{dtype} ref dot {r} vs f64 {exact} (nb {nb}, case {case})"
                    );
                }
                assert!(
                    err <= 0.02 * scale,
                    "{dtype} ref dot {r} vs f64 {exact} (nb {nb}, case {case})"
                );
                for isa in cpu::supported_levels() {
                    let k = kernels_at(dtype, isa).unwrap();
                    assert_eq!(k.act, GgmlType::Q8K);
                    let got = (k.vec_dot)(n, wb, ab);
                    // Floor: results that cancel to far below the sum of |products|
                    // keep the f32 rounding of the per-block terms (~1e-8 of that sum).
                    assert!(
                        rel_diff(got as f64, r as f64, 0.05 * scale) <= 1e-5,
                        "{dtype} {isa} ({}) dot {got} vs scalar {r} (nb {nb}, case {case})",
                        k.isa
                    );
                }
            }
        }
    }

    /// Overwrites the f16 scale fields of random blocks with small normal values
    /// (random f16 bits would include inf/NaN).
    fn fix_scales(dtype: GgmlType, wb: &mut [u8], rng: &mut Rng) {
        let bb = dtype.block_bytes();
        let offsets: &[usize] = match dtype {
            GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
            GgmlType::Q6K => &[208],
            _ => unreachable!("only Q4_K/Q5_K/Q6_K use these checks"),
        };
        for blk in wb.chunks_exact_mut(bb) {
            for &o in offsets {
                let v = half::f16::from_f32(rng.range(-0.002, 0.002));
                blk[o..o + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_matches_get_scale_min_and_pack_round_trips() {
        let mut rng = crate::testutil::Rng::new(7);
        for _ in 0..200 {
            let ls: [u8; 8] = std::array::from_fn(|_| rng.below(64) as u8);
            let lm: [u8; 8] = std::array::from_fn(|_| rng.below(64) as u8);
            let packed = pack_scales_mins_k4(&ls, &lm);
            let words = unpack_scales_mins_k4(&packed);
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            for j in 0..8 {
                assert_eq!(get_scale_min_k4(j, &packed), (ls[j], lm[j]));
                assert_eq!((bytes[j], bytes[8 + j]), (ls[j], lm[j]));
            }
        }
    }

    #[test]
    fn qx_quants_maps_largest_magnitude_to_minus_nmax() {
        let x: Vec<f32> = (0..16).map(|i| (i as f32 - 5.0) * 0.25).collect();
        let mut l = [0i8; 16];
        let s = make_qx_quants(32, &x, &mut l, 0, None);
        // max |x| is 2.5 at i = 15 (positive), so iscale = -32/2.5.
        assert_eq!(l[15], 0);
        assert!((s - 2.5 / -32.0).abs() < 1e-7);
        let s1 = make_qx_quants(32, &x, &mut l, 1, None);
        let y: Vec<f32> = l.iter().map(|&q| s1 * (q as i32 - 32) as f32).collect();
        assert!(crate::testutil::rmse(&x, &y) < 0.05);
    }

    #[test]
    fn qkx2_quants_constant_and_affine_inputs() {
        let x = [0.5f32; 32];
        let w = [1f32; 32];
        let (mut l, mut aux) = ([9u8; 32], [0u8; 32]);
        // All positive and equal: min clamps to 0, max != min, scale 0.5/15.
        let (s, m) = make_qkx2_quants(15, &x, &w, &mut l, &mut aux, -1.0, 0.1, 20, false);
        assert_eq!(m, 0.0);
        for &q in &l {
            assert!((s * q as f32 - 0.5).abs() < 1e-6);
        }
        let x: Vec<f32> = (0..32).map(|i| -1.0 + (i % 16) as f32 * 0.1).collect();
        let (s, m) = make_qkx2_quants(15, &x, &w, &mut l, &mut aux, -1.0, 0.1, 20, false);
        for (i, &q) in l.iter().enumerate() {
            assert!((s * q as f32 - m - x[i]).abs() < 1e-5, "{i}");
        }
    }
}

/// Picks the best dot kernel at or below `isa` that this CPU runs and builds the
/// table entry. The AVX-512 kernels use VNNI; without VNNI an AVX-512 request
/// gets the AVX2 kernel (the returned `isa` says so).
pub(crate) fn pick_kernels(
    dtype: crate::blocks::GgmlType,
    isa: crate::cpu::Isa,
    dequantize: crate::dispatch::DequantizeFn,
    dots: DotFns,
) -> crate::dispatch::TypeKernels {
    use crate::cpu::{self, Isa};
    let mut level = Isa::Scalar;
    let mut vec_dot = dots.scalar;
    let mut tile = None;
    if isa >= Isa::Avx2 && cpu::has_avx2() {
        if let Some(f) = dots.avx2 {
            (level, vec_dot, tile) = (Isa::Avx2, f, dots.avx2_tile);
        }
    }
    if isa >= Isa::Avx512 && cpu::has_avx512_vnni() {
        if let Some(f) = dots.avx512 {
            (level, vec_dot, tile) = (Isa::Avx512, f, None);
        }
    }
    if isa >= Isa::Neon && cpu::has_neon() {
        if let Some(f) = dots.neon {
            (level, vec_dot, tile) = (Isa::Neon, f, None);
        }
    }
    crate::dispatch::TypeKernels {
        dtype,
        isa: level,
        act: crate::blocks::GgmlType::Q8K,
        dequantize,
        quantize_act: crate::kquants::q8k::quantizer_at(level),
        vec_dot,
        tile,
    }
}

/// The dot kernels one type has; `None` where it has none for that level.
pub(crate) struct DotFns {
    pub scalar: crate::dispatch::VecDotFn,
    pub avx2: Option<crate::dispatch::VecDotFn>,
    /// Prefill tiles bit-identical to `avx2`.
    pub avx2_tile: Option<crate::dispatch::TileFn>,
    /// AVX-512 with VNNI.
    pub avx512: Option<crate::dispatch::VecDotFn>,
    pub neon: Option<crate::dispatch::VecDotFn>,
}

/// x86 helpers for the K-quant kernels. Each carries the target features of its
/// callers so that it inlines into them.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// Two consecutive f16 values (e.g. `d` and `dmin`) as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn f16x2(p: *const u8) -> (f32, f32) {
        // SAFETY: the caller passes a pointer to 4 readable bytes.
        let bits = unsafe { std::ptr::read_unaligned(p as *const i32) };
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
    }

    /// One f16 value as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn f16x1(p: *const u8) -> f32 {
        // SAFETY: the caller passes a pointer to 2 readable bytes.
        let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn hsum_ps(v: __m256) -> f32 {
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_movehdup_ps(v));
        _mm_cvtss_f32(v)
    }

    /// `acc + madd(p, s)`: pairwise i16 products summed into i32 lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn madd_acc_avx2(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
    }

    /// The same in one VNNI instruction (`vpdpwssd`; AVX-512 intrinsics need Rust ≥ 1.89).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    pub(crate) fn madd_acc_vnni(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, p, s)
    }
}

/// NEON helpers: a 16-lane i8 dot product into four i32 lanes, with and without
/// the ARMv8.2 dot-product instructions.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    use std::arch::aarch64::*;

    /// `acc[i] += Σ_k a[4i+k] * b[4i+k]` with `sdot`.
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    pub(crate) fn dot_sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // `vdotq_s32` is not stable in Rust yet; `sdot` is the instruction it maps to.
        // SAFETY: register-only instruction, available under the `dotprod` feature
        // this function is compiled with.
        unsafe {
            std::arch::asm!(
                "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
                inout(vreg) acc,
                in(vreg) a,
                in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }

    /// The same sums (grouped differently across lanes, equal in total) with
    /// widening multiplies.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn dot_mull(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let p1 = vmull_high_s8(a, b);
        vpadalq_s16(vpadalq_s16(acc, p0), p1)
    }
}

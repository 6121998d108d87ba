//! Q8_K: the activation type of the K-quants (f32 scale, 256 int8, sums of each 16).

use crate::blocks::{as_blocks, BlockQ8K, QK_K};

/// Round to nearest, ties to even, as ggml's `nearest_int` does for |x| < 2^22.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    // ggml's trick (adding 1.5·2^23 rounds to an integer in the low mantissa
    // bits): no libm call on targets without a rounding instruction.
    if x.abs() <= 4_194_303.0 {
        let v = x + 12_582_912.0;
        (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
    } else {
        x.round_ties_even() as i32
    }
}

/// ggml's `quantize_row_q8_K_ref`: scale by the element of largest magnitude so
/// that it maps to -127 (sign kept), clamp at 127.
pub fn quantize(x: &[f32], out: &mut [BlockQ8K]) {
    assert_eq!(
        x.len(),
        out.len() * QK_K,
        "q8_K: length is not a whole number of blocks"
    );
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut amax = 0f32;
        let mut max = 0f32;
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *yb = BlockQ8K {
                d: 0.0,
                qs: [0; QK_K],
                bsums: [0; QK_K / 16],
            };
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, g) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        yb.d = 1.0 / iscale;
    }
}

pub fn dequantize(blocks: &[BlockQ8K], out: &mut [f32]) {
    assert_eq!(out.len(), blocks.len() * QK_K);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = b.d * q as f32;
        }
    }
}

/// Byte-level entry for the dispatch table. `dst` must be 4-byte aligned
/// (allocate it as `Vec<BlockQ8K>` and view it as bytes).
pub(crate) fn quantize_bytes(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ8K] = bytemuck::try_cast_slice_mut(dst)
        .expect("q8_K destination is misaligned or not whole blocks");
    quantize(src, blocks)
}

/// The Q8_K activation quantizer for kernels of level `isa`: bit-identical to
/// [`quantize`] at every level (the AVX-512 level uses the AVX2 code, which is
/// far from the bottleneck: activations are quantized once per matrix).
pub(crate) fn quantizer_at(isa: crate::cpu::Isa) -> crate::dispatch::QuantizeFn {
    #[cfg(target_arch = "x86_64")]
    if isa >= crate::cpu::Isa::Avx2 && crate::cpu::has_avx2() {
        return x86::quantize_bytes_avx2;
    }
    let _ = isa;
    quantize_bytes
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    pub(super) fn quantize_bytes_avx2(src: &[f32], dst: &mut [u8]) {
        let out: &mut [BlockQ8K] = bytemuck::try_cast_slice_mut(dst)
            .expect("q8_K destination is misaligned or not whole blocks");
        assert_eq!(
            src.len(),
            out.len() * QK_K,
            "q8_K: length is not a whole number of blocks"
        );
        assert!(crate::cpu::has_avx2());
        // SAFETY: the CPU has AVX2 (checked above); lengths checked above.
        unsafe { quantize_avx2(src, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn hmax(v: __m256) -> f32 {
        let v = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_max_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_max_ss(v, _mm_movehdup_ps(v)))
    }

    /// Sums of each 16 bytes of 128 quants, in order.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn group_sums(q: &[__m256i; 4]) -> __m256i {
        let ones8 = _mm256_set1_epi8(1);
        let ones16 = _mm256_set1_epi16(1);
        // Per vector: lanes 0..4 sum bytes 0..16 in fours, lanes 4..8 bytes 16..32.
        let t = q.map(|v| _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16));
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
        // h = [g0, g2, g4, g6 | g1, g3, g5, g7]
        _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quantize_avx2(x: &[f32], out: &mut [BlockQ8K]) {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            let p = xb.as_ptr();
            // SAFETY: xb holds 256 floats; every load below stays inside it.
            let load = |i: usize| unsafe { _mm256_loadu_ps(p.add(8 * i)) };
            let mut vmax = load(0);
            let mut vmin = vmax;
            let mut vamax = _mm256_and_ps(vmax, abs_mask);
            for i in 1..32 {
                let v = load(i);
                vmax = _mm256_max_ps(vmax, v);
                vmin = _mm256_min_ps(vmin, v);
                vamax = _mm256_max_ps(vamax, _mm256_and_ps(v, abs_mask));
            }
            let amax = hmax(vamax);
            if amax == 0.0 {
                *yb = bytemuck::Zeroable::zeroed();
                continue;
            }
            let has_pos = hmax(vmax) == amax;
            let has_neg = hmax(_mm256_sub_ps(_mm256_setzero_ps(), vmin)) == amax;
            // The reference takes the sign of the first element of largest magnitude.
            let max = match (has_pos, has_neg) {
                (true, false) => amax,
                (false, true) => -amax,
                _ => *xb.iter().find(|v| v.abs() == amax).unwrap_or(&amax),
            };
            let iscale = -127.0 / max;
            let vs = _mm256_set1_ps(iscale);
            let lim = _mm256_set1_epi32(127);
            let mut q = [_mm256_setzero_si256(); 8];
            for (k, qk) in q.iter_mut().enumerate() {
                // Round to nearest even (the default MXCSR mode), as `nearest_int`.
                let c = |i: usize| {
                    _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(load(4 * k + i), vs)), lim)
                };
                let ab = _mm256_packs_epi32(c(0), c(1));
                let cd = _mm256_packs_epi32(c(2), c(3));
                *qk = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
                // SAFETY: k < 8 keeps the store inside the 256-byte qs.
                unsafe { _mm256_storeu_si256(yb.qs.as_mut_ptr().add(32 * k) as *mut __m256i, *qk) };
            }
            let g0 = group_sums(&[q[0], q[1], q[2], q[3]]);
            let g1 = group_sums(&[q[4], q[5], q[6], q[7]]);
            let s = _mm256_permute4x64_epi64(_mm256_packs_epi32(g0, g1), 0b11_01_10_00);
            // SAFETY: bsums is 16 i16 = 32 bytes.
            unsafe { _mm256_storeu_si256(yb.bsums.as_mut_ptr() as *mut __m256i, s) };
            yb.d = 1.0 / iscale;
        }
    }
}

pub(crate) fn dequantize_bytes(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ8K] =
        as_blocks(src).expect("q8_K source is misaligned or not whole blocks");
    dequantize(blocks, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_magnitude_maps_to_minus_127_and_sums_match() {
        let mut x: Vec<f32> = (0..QK_K).map(|i| ((i as f32) * 0.37).sin()).collect();
        x[5] = 3.0;
        let mut b = [BlockQ8K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; 16],
        }];
        quantize(&x, &mut b);
        assert_eq!(b[0].qs[5], -127);
        assert!((b[0].d * -127.0 - 3.0).abs() < 1e-6);
        for g in 0..16 {
            let s: i32 = b[0].qs[g * 16..g * 16 + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(b[0].bsums[g] as i32, s);
        }
        let mut y = vec![0f32; QK_K];
        dequantize(&b, &mut y);
        for (a, r) in x.iter().zip(&y) {
            assert!((a - r).abs() <= b[0].d.abs() * 0.5 + 1e-6);
        }
    }

    #[test]
    fn every_level_is_bit_identical_to_the_reference() {
        let mut rng = crate::testutil::Rng::new(3);
        let nb = 9;
        let mut x = rng.weights(nb * QK_K);
        x[QK_K..2 * QK_K].fill(0.0); // zero block
        x[2 * QK_K + 7] = 5.0; // tie of +5 and -5: the first one wins
        x[2 * QK_K + 100] = -5.0;
        x[3 * QK_K + 3] = -9.0; // tie with the negative first
        x[3 * QK_K + 200] = 9.0;
        x[4 * QK_K..5 * QK_K].iter_mut().for_each(|v| *v *= 1e-30);
        x[5 * QK_K..6 * QK_K].iter_mut().for_each(|v| *v *= 1e30);
        // Values that land exactly on .5 after scaling (ties to even).
        for (i, v) in x[6 * QK_K..7 * QK_K].iter_mut().enumerate() {
            *v = (i as f32 - 127.5).clamp(-127.0, 127.0) * 0.5;
        }
        let mut want = vec![bytemuck::Zeroable::zeroed(); nb];
        quantize(&x, &mut want);
        for isa in crate::cpu::supported_levels() {
            let mut got = vec![0u32; nb * std::mem::size_of::<BlockQ8K>() / 4];
            (quantizer_at(isa))(&x, bytemuck::cast_slice_mut(&mut got));
            assert_eq!(
                bytemuck::cast_slice::<BlockQ8K, u8>(&want),
                bytemuck::cast_slice::<u32, u8>(&got),
                "{isa}"
            );
        }
    }

    #[test]
    fn zero_block_quantizes_to_zero() {
        let x = vec![0f32; QK_K];
        let mut b = [BlockQ8K {
            d: 1.0,
            qs: [1; QK_K],
            bsums: [1; 16],
        }];
        quantize(&x, &mut b);
        assert_eq!(b[0].d, 0.0);
        assert!(b[0].qs.iter().all(|&q| q == 0) && b[0].bsums.iter().all(|&s| s == 0));
    }
}

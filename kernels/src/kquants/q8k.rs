//! Q8_K: the activation type of the K-quants (f32 scale, 256 int8, sums of each 16).

use crate::blocks::{as_blocks, BlockQ8K, QK_K};

/// Round to nearest, ties to even, as ggml's `nearest_int` does for |x| < 2^22.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    x.round_ties_even() as i32
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

/// The Q8_K activation quantizer for kernels of level `isa` (bit-identical to
/// [`quantize`] at every level).
pub(crate) fn quantizer_at(isa: crate::cpu::Isa) -> crate::dispatch::QuantizeFn {
    let _ = isa;
    quantize_bytes
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

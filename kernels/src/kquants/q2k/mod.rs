//! Q2_K: 256 weights in 16 groups of 16, `w = d·sc·q - dmin·m` with 2-bit `q` and
//! 4-bit group scale `sc` / min `m` (low / high nibble of `scales[g]`).
//!
//! `qs` holds two halves of 32 bytes; byte `l` of half `h` carries, in bits `2s..2s+2`,
//! element `128h + 32s + l`. The dot with Q8_K folds the mins into Q8_K's 16-element
//! sums (`bsums`), so the inner loops only multiply 2-bit values by 8-bit ones.

#[cfg(target_arch = "aarch64")]
pub(in crate::kquants) mod neon;
#[cfg(target_arch = "x86_64")]
pub(in crate::kquants) mod x86;

use crate::blocks::{as_blocks, BlockQ2K, BlockQ8K, GgmlType, QK_K};
use crate::cpu::{self, Isa};
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels, VecDotFn};
use bytemuck::Zeroable;
use half::f16;

use super::common::make_qkx2_quants;
use super::q8k::nearest_int;

pub(crate) fn kernels(isa: Isa) -> Option<TypeKernels> {
    let (isa, vec_dot) = best_dot(isa);
    Some(TypeKernels {
        dtype: GgmlType::Q2K,
        isa,
        act: GgmlType::Q8K,
        dequantize: dequantize_bytes,
        quantize_act: super::q8k::quantize_bytes,
        vec_dot,
        tile: None,
    })
}

pub(crate) fn quantizer() -> Option<QuantizeFn> {
    Some(quantize_bytes)
}

pub(crate) fn dequantizer() -> Option<DequantizeFn> {
    Some(dequantize_bytes)
}

/// The fastest dot at or below `isa` that this CPU can run.
fn best_dot(isa: Isa) -> (Isa, VecDotFn) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa >= Isa::Avx512 && cpu::has_avx512() {
            return if cpu::has_avx512_vnni() {
                (Isa::Avx512, x86::vec_dot_avx512vnni_bytes)
            } else {
                (Isa::Avx512, x86::vec_dot_avx512_bytes)
            };
        }
        if isa >= Isa::Avx2 && cpu::has_avx2() {
            return (Isa::Avx2, x86::vec_dot_avx2_bytes);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if isa >= Isa::Neon && cpu::has_neon() {
            return if cpu::has_neon_dotprod() {
                (Isa::Neon, neon::vec_dot_dotprod_bytes)
            } else {
                (Isa::Neon, neon::vec_dot_neon_bytes)
            };
        }
    }
    let _ = isa;
    (Isa::Scalar, vec_dot_ref_bytes)
}

/// Weight and activation rows of `n` elements as blocks. Panics on a caller bug:
/// lengths that do not match `n`, or misaligned bytes.
pub(in crate::kquants) fn cast_row<'a, W: crate::blocks::Block>(
    n: usize,
    w: &'a [u8],
    a: &'a [u8],
) -> (&'a [W], &'a [BlockQ8K]) {
    assert_eq!(
        n % QK_K,
        0,
        "{}: {n} is not a whole number of blocks",
        W::TYPE
    );
    let x: &[W] = as_blocks(w).unwrap_or_else(|| panic!("{} weights misaligned", W::TYPE));
    let y: &[BlockQ8K] = as_blocks(a).expect("q8_K activations misaligned");
    assert_eq!(
        x.len(),
        n / QK_K,
        "{} weight row is not {n} elements",
        W::TYPE
    );
    assert_eq!(y.len(), n / QK_K, "q8_K activation row is not {n} elements");
    (x, y)
}

fn vec_dot_ref_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ2K>(n, w, a);
    vec_dot_ref(x, y)
}

/// ggml's `dequantize_row_q2_K`, with the same f32 operations (`dl·q - ml`).
pub fn dequantize(blocks: &[BlockQ2K], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * QK_K,
        "q2_K: output is not blocks·256 long"
    );
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let min = b.dmin.to_f32();
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let (half, s, sub) = (g / 8, (g % 8) / 2, g % 2);
            let sc = b.scales[g];
            let dl = d * (sc & 0xF) as f32;
            let ml = min * (sc >> 4) as f32;
            let q = &b.qs[32 * half + 16 * sub..][..16];
            for (o, &qb) in yg.iter_mut().zip(q) {
                *o = dl * ((qb >> (2 * s)) & 3) as f32 - ml;
            }
        }
    }
}

/// Dequantize any alignment of whole Q2_K blocks (GGUF rows need not be aligned).
pub(crate) fn dequantize_bytes(src: &[u8], dst: &mut [f32]) {
    const B: usize = std::mem::size_of::<BlockQ2K>();
    assert_eq!(src.len() % B, 0, "q2_K: source is not whole blocks");
    assert_eq!(dst.len(), src.len() / B * QK_K, "q2_K: output length");
    for (s, d) in src.chunks_exact(B).zip(dst.chunks_exact_mut(QK_K)) {
        let b: BlockQ2K = bytemuck::pod_read_unaligned(s);
        dequantize(std::slice::from_ref(&b), d);
    }
}

/// ggml's generic `ggml_vec_dot_q2_K_q8_K`: exact integer sums per block, the mins
/// through Q8_K's `bsums`, then `dall·isum - dmin·summs` in f32.
pub fn vec_dot_ref(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q2_K dot: block counts differ");
    let mut sumf = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let summs: i32 = (0..16)
            .map(|g| yb.bsums[g] as i32 * (xb.scales[g] >> 4) as i32)
            .sum();
        let dall = yb.d * xb.d.to_f32();
        let dmin = yb.d * xb.dmin.to_f32();
        let mut isum = 0i32;
        for g in 0..16 {
            let (half, s, sub) = (g / 8, (g % 8) / 2, g % 2);
            let q2 = &xb.qs[32 * half + 16 * sub..][..16];
            let q8 = &yb.qs[16 * g..][..16];
            let isuml: i32 = q2
                .iter()
                .zip(q8)
                .map(|(&q, &a)| a as i32 * ((q >> (2 * s)) & 3) as i32)
                .sum();
            isum += (xb.scales[g] & 0xF) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Every dot this CPU can run, by name (tests reach variants `kernels` skips, such
/// as AVX-512 without VNNI on a VNNI machine).
#[cfg(test)]
pub(in crate::kquants) fn all_dots() -> Vec<(&'static str, VecDotFn)> {
    let mut v: Vec<(&'static str, VecDotFn)> = vec![("scalar", vec_dot_ref_bytes)];
    #[cfg(target_arch = "x86_64")]
    {
        if cpu::has_avx2() {
            v.push(("avx2", x86::vec_dot_avx2_bytes));
        }
        if cpu::has_avx512() {
            v.push(("avx512", x86::vec_dot_avx512_bytes));
        }
        if cpu::has_avx512_vnni() {
            v.push(("avx512vnni", x86::vec_dot_avx512vnni_bytes));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if cpu::has_neon() {
            v.push(("neon", neon::vec_dot_neon_bytes));
        }
        if cpu::has_neon_dotprod() {
            v.push(("dotprod", neon::vec_dot_dotprod_bytes));
        }
    }
    v
}

/// The dot at the process's active ISA level.
pub fn vec_dot(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q2_K dot: block counts differ");
    let (_, f) = best_dot(cpu::active());
    f(
        x.len() * QK_K,
        bytemuck::cast_slice(x),
        bytemuck::cast_slice(y),
    )
}

/// ggml's `quantize_row_q2_K_ref`: per group a min/scale fit weighted by |x|, the
/// 16 scales and mins quantized to 4 bits against their maxima, then every weight
/// re-rounded against the quantized scale and min.
pub fn quantize(x: &[f32], out: &mut [BlockQ2K]) {
    assert_eq!(
        x.len(),
        out.len() * QK_K,
        "q2_K: length is not a whole number of blocks"
    );
    const Q4SCALE: f32 = 15.0;
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut weights = [0f32; 16];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for j in 0..16 {
            let xg = &xb[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xg) {
                *w = v.abs();
            }
            let (scale, min) = make_qkx2_quants(
                3,
                xg,
                &weights,
                &mut l[16 * j..16 * j + 16],
                &mut laux,
                -0.5,
                0.1,
                15,
                true,
            );
            scales[j] = scale;
            mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (out, &s) in yb.scales.iter_mut().zip(&scales) {
                // ggml stores the int into a uint8_t: keep its wrapping.
                *out = nearest_int(iscale * s) as u8;
            }
            yb.d = f16::from_f32(max_scale / Q4SCALE);
        } else {
            yb.scales = [0; 16];
            yb.d = f16::from_f32(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (out, &m) in yb.scales.iter_mut().zip(&mins) {
                *out |= (nearest_int(iscale * m) << 4) as u8;
            }
            yb.dmin = f16::from_f32(max_min / Q4SCALE);
        } else {
            yb.dmin = f16::from_f32(0.0);
        }
        for j in 0..16 {
            let d = yb.d.to_f32() * (yb.scales[j] & 0xF) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = yb.dmin.to_f32() * (yb.scales[j] >> 4) as f32;
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((xb[16 * j + ii] + dm) / d).clamp(0, 3) as u8;
            }
        }
        for half in 0..2 {
            let lh = &l[128 * half..];
            for i in 0..32 {
                yb.qs[32 * half + i] =
                    lh[i] | (lh[i + 32] << 2) | (lh[i + 64] << 4) | (lh[i + 96] << 6);
            }
        }
    }
}

/// Quantize into any alignment of `dst` (whole Q2_K blocks).
pub(crate) fn quantize_bytes(src: &[f32], dst: &mut [u8]) {
    const B: usize = std::mem::size_of::<BlockQ2K>();
    assert_eq!(src.len() % QK_K, 0, "q2_K: source is not whole blocks");
    assert_eq!(dst.len(), src.len() / QK_K * B, "q2_K: destination length");
    for (s, d) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(B)) {
        let mut b = [BlockQ2K::zeroed()];
        quantize(s, &mut b);
        d.copy_from_slice(bytemuck::bytes_of(&b[0]));
    }
}

#[cfg(test)]
pub(in crate::kquants) mod tests;

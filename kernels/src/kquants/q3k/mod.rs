//! Q3_K: 256 weights in 16 groups of 16, `w = d·(sc - 32)·(q - 4·!h)` with a 2-bit
//! `q` in `qs` (laid out as Q2_K's), a high bit `h` in `hmask` (bit `j` of byte `l`
//! belongs to element `32j + l`; a clear bit subtracts 4) and 6-bit group scales
//! packed into 12 bytes: low nibbles in bytes 0..8 (groups 0..8 low, 8..16 high),
//! top two bits in bytes 8..12 (group `g` at byte `8 + g%4`, bits `2·(g/4)`).
//!
//! The fast dots use `u = q + 4h` (0..=7, unsigned, as the byte-multiply
//! instructions want) and take the `-4` back per group through Q8_K's `bsums`.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::blocks::{BlockQ3K, BlockQ8K, GgmlType, QK_K};
use crate::cpu::{self, Isa};
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels, VecDotFn};
use bytemuck::Zeroable;
use half::f16;

use super::q2k::cast_row;
use super::q8k::nearest_int;

pub(crate) fn kernels(isa: Isa) -> Option<TypeKernels> {
    let (isa, vec_dot) = best_dot(isa);
    Some(TypeKernels {
        dtype: GgmlType::Q3K,
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

/// Every dot this CPU can run, by name (tests reach variants `kernels` skips).
#[cfg(test)]
fn all_dots() -> Vec<(&'static str, VecDotFn)> {
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

fn vec_dot_ref_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ3K>(n, w, a);
    vec_dot_ref(x, y)
}

/// The 16 scales biased by +32 (0..=63), one per byte, in four little-endian
/// words: ggml's kmask shuffle of the 12 packed bytes.
#[inline]
pub(in crate::kquants) fn scales_biased(s: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let word = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (a0, a1, tmp) = (word(0), word(4), word(8));
    [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ]
}

/// The 16 signed group scales (-32..=31).
pub fn unpack_scales(s: &[u8; 12]) -> [i8; 16] {
    let w = scales_biased(s);
    std::array::from_fn(|g| ((w[g / 4] >> (8 * (g % 4))) & 0xFF) as i8 - 32)
}

/// ggml's `dequantize_row_q3_K`, with the same f32 operations (`d·(sc-32)` then
/// times the integer quant).
pub fn dequantize(blocks: &[BlockQ3K], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * QK_K,
        "q3_K: output is not blocks·256 long"
    );
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d_all = b.d.to_f32();
        let sc = unpack_scales(&b.scales);
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let (half, s, sub) = (g / 8, (g % 8) / 2, g % 2);
            let dl = d_all * sc[g] as f32;
            let m = 1u8 << (4 * half + s);
            let q = &b.qs[32 * half + 16 * sub..][..16];
            let hm = &b.hmask[16 * sub..][..16];
            for ((o, &qb), &h) in yg.iter_mut().zip(q).zip(hm) {
                let v = ((qb >> (2 * s)) & 3) as i32 - if h & m != 0 { 0 } else { 4 };
                *o = dl * v as f32;
            }
        }
    }
}

/// Dequantize any alignment of whole Q3_K blocks.
pub(crate) fn dequantize_bytes(src: &[u8], dst: &mut [f32]) {
    const B: usize = std::mem::size_of::<BlockQ3K>();
    assert_eq!(src.len() % B, 0, "q3_K: source is not whole blocks");
    assert_eq!(dst.len(), src.len() / B * QK_K, "q3_K: output length");
    for (s, d) in src.chunks_exact(B).zip(dst.chunks_exact_mut(QK_K)) {
        let b: BlockQ3K = bytemuck::pod_read_unaligned(s);
        dequantize(std::slice::from_ref(&b), d);
    }
}

/// ggml's generic `ggml_vec_dot_q3_K_q8_K`: exact integer sums per 16-element group
/// times the signed scales, then `d_x·d_y·isum` per block in f32.
pub fn vec_dot_ref(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q3_K dot: block counts differ");
    let mut sumf = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let sc = unpack_scales(&xb.scales);
        let mut isum = 0i32;
        for (g, &scale) in sc.iter().enumerate() {
            let (half, s, sub) = (g / 8, (g % 8) / 2, g % 2);
            let m = 1u8 << (4 * half + s);
            let q3 = &xb.qs[32 * half + 16 * sub..][..16];
            let hm = &xb.hmask[16 * sub..][..16];
            let q8 = &yb.qs[16 * g..][..16];
            let mut isuml = 0i32;
            for l in 0..16 {
                let v = ((q3[l] >> (2 * s)) & 3) as i32 - if hm[l] & m != 0 { 0 } else { 4 };
                isuml += q8[l] as i32 * v;
            }
            isum += scale as i32 * isuml;
        }
        sumf += xb.d.to_f32() * yb.d * isum as f32;
    }
    sumf
}

/// The dot at the process's active ISA level.
pub fn vec_dot(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q3_K dot: block counts differ");
    let (_, f) = best_dot(cpu::active());
    f(
        x.len() * QK_K,
        bytemuck::cast_slice(x),
        bytemuck::cast_slice(y),
    )
}

/// ggml's `make_q3_quants` with `do_rmse`: symmetric quants in -nmax..nmax-1 fitted
/// by least squares weighted by x², refined by up to 5 passes of single-element
/// changes. Writes `L + nmax` (or 0 for an all-zero group) and returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    const GROUP_MAX_EPS: f32 = 1e-15;
    let n = x.len();
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in l_out[..n].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// ggml's `quantize_row_q3_K_ref`: per group a symmetric least-squares scale, the
/// 16 scales quantized to 6 bits against the one of largest magnitude, then every
/// weight re-rounded against its quantized scale.
pub fn quantize(x: &[f32], out: &mut [BlockQ3K]) {
    assert_eq!(
        x.len(),
        out.len() * QK_K,
        "q3_K: length is not a whole number of blocks"
    );
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut max_scale = 0f32;
        let mut amax = 0f32;
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &xb[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        yb.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // ggml keeps this in an int8_t; |iscale·s| <= 32 so nothing wraps.
                let lq = (nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
                if j < 8 {
                    yb.scales[j] = (lq & 0xF) as u8;
                } else {
                    yb.scales[j - 8] |= ((lq & 0xF) << 4) as u8;
                }
                yb.scales[j % 4 + 8] |= ((lq >> 4) << (2 * (j / 4))) as u8;
            }
            yb.d = f16::from_f32(1.0 / iscale);
        } else {
            yb.d = f16::from_f32(0.0);
        }
        let sc = unpack_scales(&yb.scales);
        for j in 0..16 {
            let d = yb.d.to_f32() * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(xb[16 * j + ii] / d).clamp(-4, 3);
                l[16 * j + ii] = (q + 4) as i8;
            }
        }
        yb.hmask = [0; 32];
        for (j, lj) in l.iter_mut().enumerate() {
            if *lj > 3 {
                yb.hmask[j % 32] |= 1 << (j / 32);
                *lj -= 4;
            }
        }
        for half in 0..2 {
            let lh = &l[128 * half..];
            let q = |k: usize| lh[k] as u8;
            for i in 0..32 {
                yb.qs[32 * half + i] =
                    q(i) | (q(i + 32) << 2) | (q(i + 64) << 4) | (q(i + 96) << 6);
            }
        }
    }
}

/// Quantize into any alignment of `dst` (whole Q3_K blocks).
pub(crate) fn quantize_bytes(src: &[f32], dst: &mut [u8]) {
    const B: usize = std::mem::size_of::<BlockQ3K>();
    assert_eq!(src.len() % QK_K, 0, "q3_K: source is not whole blocks");
    assert_eq!(dst.len(), src.len() / QK_K * B, "q3_K: destination length");
    for (s, d) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(B)) {
        let mut b = [BlockQ3K::zeroed()];
        quantize(s, &mut b);
        d.copy_from_slice(bytemuck::bytes_of(&b[0]));
    }
}

#[cfg(test)]
mod tests;

//! Float weights: F32, F16 and BF16 rows multiplied with f32 activations.
//!
//! Activations stay f32 (`act = F32`), so `quantize_act` is a copy and every
//! kernel converts one weight vector to f32 and accumulates with FMA in f32
//! lanes. Weight bytes come straight from a GGUF mapping, which only promises
//! 2-byte alignment, so every load is unaligned.

use crate::blocks::GgmlType;
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels};

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) fn kernels(dtype: GgmlType, isa: Isa) -> Option<TypeKernels> {
    let (isa, vec_dot) = vec_dot_for(dtype, isa)?;
    Some(TypeKernels {
        dtype,
        isa,
        act: GgmlType::F32,
        dequantize: dequantizer(dtype)?,
        quantize_act: copy_f32,
        vec_dot,
        tile: None,
    })
}

/// The best `vec_dot` for `dtype` at a level not above `isa`, with the level it was built for.
fn vec_dot_for(dtype: GgmlType, isa: Isa) -> Option<(Isa, crate::dispatch::VecDotFn)> {
    #[cfg(target_arch = "x86_64")]
    {
        if isa >= Isa::Avx512 && isa != Isa::Neon && Isa::Avx512.supported() {
            return x86::avx512_vec_dot(dtype).map(|f| (Isa::Avx512, f));
        }
        if isa >= Isa::Avx2 && isa != Isa::Neon && Isa::Avx2.supported() {
            return x86::avx2_vec_dot(dtype).map(|f| (Isa::Avx2, f));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if isa == Isa::Neon && Isa::Neon.supported() {
            return neon::vec_dot(dtype).map(|f| (Isa::Neon, f));
        }
    }
    let f: crate::dispatch::VecDotFn = match dtype {
        GgmlType::F32 => vec_dot_f32,
        GgmlType::F16 => vec_dot_f16,
        GgmlType::Bf16 => vec_dot_bf16,
        _ => return None,
    };
    Some((Isa::Scalar, f))
}

/// f32 → F16 and f32 → BF16; F32 needs no quantizer.
pub(crate) fn quantizer(dtype: GgmlType) -> Option<QuantizeFn> {
    match dtype {
        GgmlType::F16 => Some(quantize_f16),
        GgmlType::Bf16 => Some(quantize_bf16),
        _ => None,
    }
}

pub(crate) fn dequantizer(dtype: GgmlType) -> Option<DequantizeFn> {
    match dtype {
        GgmlType::F32 => Some(dequantize_f32),
        GgmlType::F16 => Some(dequantize_f16),
        GgmlType::Bf16 => Some(dequantize_bf16),
        _ => None,
    }
}

/// IEEE half → f32 (exact).
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// f32 → IEEE half, rounding to nearest even (as F16C and ggml do).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// bfloat16 → f32 (exact: the upper half of an f32).
#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// f32 → bfloat16 as `ggml_compute_fp32_to_bf16`: NaNs stay NaN (forced quiet),
/// everything else rounds to nearest even (overflowing to infinity).
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

fn check_lengths(n: usize, w: &[u8], a: &[u8], w_elem: usize) {
    assert_eq!(w.len(), n * w_elem, "weight row is not {n} elements");
    assert_eq!(a.len(), n * 4, "activation row is not {n} f32");
}

#[inline(always)]
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[2 * i], b[2 * i + 1]])
}

#[inline(always)]
fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Scalar reference: eight f32 partial sums (the lanes of one AVX2 vector),
/// FMA-free, summed pairwise at the end.
#[inline(always)]
fn dot_scalar(n: usize, w: impl Fn(usize) -> f32, a: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    let full = n / 8 * 8;
    for i in (0..full).step_by(8) {
        for (l, s) in acc.iter_mut().enumerate() {
            *s += w(i + l) * f32_at(a, i + l);
        }
    }
    for i in full..n {
        acc[i % 8] += w(i) * f32_at(a, i);
    }
    let s4 = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (s4[0] + s4[2]) + (s4[1] + s4[3])
}

pub fn vec_dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_lengths(n, w, a, 4);
    dot_scalar(n, |i| f32_at(w, i), a)
}

pub fn vec_dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_lengths(n, w, a, 2);
    dot_scalar(n, |i| f16_to_f32(u16_at(w, i)), a)
}

pub fn vec_dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_lengths(n, w, a, 2);
    dot_scalar(n, |i| bf16_to_f32(u16_at(w, i)), a)
}

/// F32 "quantization" of activations: the bytes of `src`.
fn copy_f32(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 4, "f32 row length mismatch");
    for (d, &s) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

pub fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2, "f16 row length mismatch");
    for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_f16(s).to_le_bytes());
    }
}

pub fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2, "bf16 row length mismatch");
    for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_bf16(s).to_le_bytes());
    }
}

fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() * 4, "f32 row length mismatch");
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() * 2, "f16 row length mismatch");
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() * 2, "bf16 row length mismatch");
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = bf16_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::testutil::{ggml_synthetic, rmse, Rng};

    const TYPES: [GgmlType; 3] = [GgmlType::F32, GgmlType::F16, GgmlType::Bf16];

    fn to_bytes(dtype: GgmlType, x: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; dtype.row_bytes(x.len()).unwrap()];
        match dtype {
            GgmlType::F32 => copy_f32(x, &mut out),
            t => quantizer(t).unwrap()(x, &mut out),
        }
        out
    }

    fn dequant(dtype: GgmlType, b: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; b.len() / dtype.block_bytes()];
        dequantizer(dtype).unwrap()(b, &mut out);
        out
    }

    #[test]
    fn bf16_rounding_matches_ggml() {
        // Ties go to even; NaN stays NaN with the quiet bit; overflow rounds to inf.
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16(f32::from_bits(0xff80_0001)), 0xffc0);
        assert_eq!(f32_to_bf16(-0.0), 0x8000);
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let x = f32::from_bits(rng.next_u64() as u32);
            assert_eq!(f32_to_bf16(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
        }
    }

    #[test]
    fn f16_rounding_is_nearest_even() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn round_trip_error_within_half_an_ulp() {
        let x = ggml_synthetic(32 * 128, 0.0);
        for t in TYPES {
            let y = dequant(t, &to_bytes(t, &x));
            // Round to nearest: at most half an ulp, i.e. 2^-11 (F16) or 2^-8 (BF16) relative.
            let rel = match t {
                GgmlType::F32 => 0.0,
                GgmlType::F16 => 2f32.powi(-11),
                _ => 2f32.powi(-8),
            };
            for (&a, &b) in x.iter().zip(&y) {
                assert!((a - b).abs() <= a.abs() * rel, "{t}: {a} -> {b}");
            }
            let err = rmse(&x, &y);
            assert!(t == GgmlType::Bf16 || err < 0.002, "{t}: rmse {err}");
        }
    }

    #[test]
    fn every_level_matches_reference_and_f64() {
        let mut rng = Rng::new(7);
        for t in TYPES {
            for &n in &[1usize, 3, 7, 8, 15, 16, 31, 33, 63, 64, 65, 127, 576, 4097] {
                let wf = rng.weights(n);
                let mut x = rng.weights(n);
                if n > 4 {
                    x[n / 2] = 0.0;
                    x[1] = 1e-30;
                    x[2] = 3e4;
                }
                let w = to_bytes(t, &wf);
                let wd = dequant(t, &w);
                let a = to_bytes(GgmlType::F32, &x);
                let exact: f64 = wd.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
                let mag: f64 = wd
                    .iter()
                    .zip(&x)
                    .map(|(&p, &q)| (p as f64 * q as f64).abs())
                    .sum();
                let reference = kernels(t, Isa::Scalar).unwrap();
                assert_eq!(reference.isa, Isa::Scalar);
                let r = (reference.vec_dot)(n, &w, &a);
                assert!(
                    (r as f64 - exact).abs() <= 1e-6 * mag + 1e-30,
                    "{t} n={n}: ref {r} vs f64 {exact}"
                );
                for isa in cpu::supported_levels() {
                    let k = kernels(t, isa).unwrap();
                    assert_eq!(k.isa, isa, "{t}: a kernel for every level");
                    let f = (k.vec_dot)(n, &w, &a);
                    assert!(
                        (f as f64 - r as f64).abs() <= 1e-5 * r.abs().max(1e-3 * mag as f32) as f64,
                        "{t} {isa} n={n}: {f} vs reference {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_read_unaligned_weights() {
        let mut rng = Rng::new(3);
        let n = 100;
        let x = rng.weights(n);
        let a = to_bytes(GgmlType::F32, &x);
        for t in TYPES {
            let w = to_bytes(t, &rng.weights(n));
            let mut shifted = vec![0u8; w.len() + 1];
            shifted[1..].copy_from_slice(&w);
            for isa in cpu::supported_levels() {
                let k = kernels(t, isa).unwrap();
                assert_eq!(
                    (k.vec_dot)(n, &w, &a),
                    (k.vec_dot)(n, &shifted[1..], &a),
                    "{t} {isa}"
                );
            }
        }
    }

    #[test]
    fn non_finite_values_propagate() {
        for t in TYPES {
            for isa in cpu::supported_levels() {
                let k = kernels(t, isa).unwrap();
                let mut x = vec![1.0f32; 40];
                let w = to_bytes(t, &x);
                x[37] = f32::NAN;
                let a = to_bytes(GgmlType::F32, &x);
                assert!((k.vec_dot)(40, &w, &a).is_nan(), "{t} {isa}");
                x[37] = f32::INFINITY;
                let a = to_bytes(GgmlType::F32, &x);
                assert_eq!((k.vec_dot)(40, &w, &a), f32::INFINITY, "{t} {isa}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "activation row")]
    fn length_mismatch_panics() {
        let k = kernels(GgmlType::F16, cpu::best_supported()).unwrap();
        (k.vec_dot)(4, &[0u8; 8], &[0u8; 12]);
    }
}

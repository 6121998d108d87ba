//! The table from a weight type to its activation type and kernels, per ISA level.
//!
//! Kernels work on raw bytes (rows of blocks as stored in GGUF), so the drivers
//! and the engine can call any type through one function-pointer table. Each
//! block family module (`legacy`, `kquants`, `float`) fills in its own types and
//! falls back to a weaker level where it has no kernel for the one asked.

use crate::blocks::GgmlType;
use crate::cpu::Isa;

/// Dequantize a whole number of blocks (`src` bytes) into `dst` (one f32 per element).
pub type DequantizeFn = fn(src: &[u8], dst: &mut [f32]);
/// Quantize `src` (a whole number of blocks of elements) into `dst` bytes.
pub type QuantizeFn = fn(src: &[f32], dst: &mut [u8]);
/// Dot product of one weight row (`w` bytes) with one activation row (`a` bytes,
/// already in the activation type); both hold `n` elements.
pub type VecDotFn = fn(n: usize, w: &[u8], a: &[u8]) -> f32;
/// Every product of whole weight rows (`w`) with whole activation rows (`a`), each
/// row `n` elements, into `out[token · rows + row]`; each output has exactly the
/// bits `vec_dot` gives for it. For prefill: work that depends on one operand only
/// (unpacking weights, converting scales) is done once per row or token.
pub type TileFn = fn(n: usize, w: &[u8], a: &[u8], out: &mut [f32]);

/// The kernels of one weight type at one ISA level.
#[derive(Clone, Copy)]
pub struct TypeKernels {
    pub dtype: GgmlType,
    /// The level these kernels were actually built for (may be below the one asked).
    pub isa: Isa,
    /// The type activations are converted to before `vec_dot` (F32 for float weights).
    pub act: GgmlType,
    pub dequantize: DequantizeFn,
    /// Converts f32 activations to `act` bytes.
    pub quantize_act: QuantizeFn,
    pub vec_dot: VecDotFn,
    /// A faster way to compute many `vec_dot`s at once, where the level has one.
    pub tile: Option<TileFn>,
}

impl std::fmt::Debug for TypeKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeKernels")
            .field("dtype", &self.dtype)
            .field("isa", &self.isa)
            .field("act", &self.act)
            .finish()
    }
}

/// The kernels for weight type `dtype` at the best level not above `isa`, or `None`
/// when ferrite cannot multiply with that type (e.g. Q8_1/Q8_K, which are activation
/// types only).
pub fn kernels_at(dtype: GgmlType, isa: Isa) -> Option<TypeKernels> {
    crate::legacy::kernels(dtype, isa)
        .or_else(|| crate::kquants::kernels(dtype, isa))
        .or_else(|| crate::float::kernels(dtype, isa))
}

/// The kernels for `dtype` at the process's active level ([`crate::cpu::active`]).
pub fn kernels(dtype: GgmlType) -> Option<TypeKernels> {
    kernels_at(dtype, crate::cpu::active())
}

/// Quantize to `dtype` with the reference quantizer, or `None` when ferrite has no
/// quantizer for it (Q2_K, Q3_K, F32, ...; see [`crate::legacy`], [`crate::kquants`], [`crate::float`]).
pub fn quantizer(dtype: GgmlType) -> Option<QuantizeFn> {
    crate::legacy::quantizer(dtype)
        .or_else(|| crate::kquants::quantizer(dtype))
        .or_else(|| crate::float::quantizer(dtype))
}

/// Dequantize with the reference (scalar) code for any type, activation types included.
pub fn dequantizer(dtype: GgmlType) -> DequantizeFn {
    crate::legacy::dequantizer(dtype)
        .or_else(|| crate::kquants::dequantizer(dtype))
        .or_else(|| crate::float::dequantizer(dtype))
        .expect("every GgmlType has a dequantizer")
}

/// The kernels a model's matrix products use: the active level's, except that
/// x86 CPUs with AVX-512 run the AVX2 ones. Those reproduce llama.cpp's roundings
/// (its AVX-512 build runs the same AVX2 code for these dots), on which
/// token-for-token parity depends; decode is bound by memory either way. The
/// AVX-512 kernels stay available through [`kernels_at`] (benchmarks, tests).
pub fn kernels_for_models(dtype: GgmlType) -> Option<TypeKernels> {
    let isa = crate::cpu::active();
    if isa == Isa::Avx512 {
        return kernels_at(dtype, Isa::Avx2);
    }
    kernels_at(dtype, isa)
}

/// For a matrix of `dtype` with `rows` rows: the kernels llama.cpp's CPU backend
/// would multiply it with if it repacks that matrix (x86 AVX2 repacks Q4_K when
/// `rows % 8 == 0`), as `(single tokens and a batch's last tokens % 4, the
/// batch's whole groups of four)`; `None` where it multiplies with the plain
/// `vec_dot` kernels of [`kernels`]. Their roundings differ from `vec_dot`'s, and
/// token-for-token parity with llama.cpp needs them (see `kquants::q4k_repacked`).
pub fn llama_repacked(dtype: GgmlType, rows: usize) -> Option<(TypeKernels, TypeKernels)> {
    // llama.cpp repacks these only where the CPU has AVX2 (ARM repacks differ).
    if !matches!(crate::cpu::active(), Isa::Avx2 | Isa::Avx512) {
        return None;
    }
    match dtype {
        GgmlType::Q4K => crate::kquants::q4k_repacked::kernels(rows, Isa::Avx2),
        _ => None,
    }
}

/// For a matrix of `dtype` multiplied with a batch of 8 or more tokens: the
/// kernels of llama.cpp's tiled K-quant matmul, which it takes instead of
/// `vec_dot` there for K-quant weights it does not repack (x86: Q6_K here), with
/// roundings of its own; `None` where its plain kernels apply.
pub fn llama_tiled(dtype: GgmlType) -> Option<TypeKernels> {
    if !matches!(crate::cpu::active(), Isa::Avx2 | Isa::Avx512) {
        return None;
    }
    match dtype {
        GgmlType::Q6K => crate::kquants::q6k::kernels_tiled(Isa::Avx2),
        _ => None,
    }
}

//! K-quants: 256-element super-blocks (Q2_K … Q6_K) and their activation partner Q8_K.
//!
//! One file per block type, each holding its scalar reference and the glue to its
//! SIMD kernels; `kernels()` routes a type to its file.

use crate::blocks::GgmlType;
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels};

#[cfg(target_arch = "x86_64")]
mod avx2_tile;
pub(crate) mod common;
pub mod q2k;
pub mod q3k;
pub mod q4k;
pub mod q4k_repacked;
pub mod q5k;
pub mod q6k;
pub mod q8k;

pub(crate) fn kernels(dtype: GgmlType, isa: Isa) -> Option<TypeKernels> {
    match dtype {
        GgmlType::Q2K => q2k::kernels(isa),
        GgmlType::Q3K => q3k::kernels(isa),
        GgmlType::Q4K => q4k::kernels(isa),
        GgmlType::Q5K => q5k::kernels(isa),
        GgmlType::Q6K => q6k::kernels(isa),
        _ => None,
    }
}

pub(crate) fn quantizer(dtype: GgmlType) -> Option<QuantizeFn> {
    match dtype {
        GgmlType::Q8K => Some(q8k::quantize_bytes),
        GgmlType::Q2K => q2k::quantizer(),
        GgmlType::Q3K => q3k::quantizer(),
        GgmlType::Q4K => q4k::quantizer(),
        GgmlType::Q5K => q5k::quantizer(),
        GgmlType::Q6K => q6k::quantizer(),
        _ => None,
    }
}

pub(crate) fn dequantizer(dtype: GgmlType) -> Option<DequantizeFn> {
    match dtype {
        GgmlType::Q8K => Some(q8k::dequantize_bytes),
        GgmlType::Q2K => q2k::dequantizer(),
        GgmlType::Q3K => q3k::dequantizer(),
        GgmlType::Q4K => q4k::dequantizer(),
        GgmlType::Q5K => q5k::dequantizer(),
        GgmlType::Q6K => q6k::dequantizer(),
        _ => None,
    }
}

//! PLACEHOLDER
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels};

pub(crate) fn kernels(_isa: Isa) -> Option<TypeKernels> {
    None
}
pub(crate) fn quantizer() -> Option<QuantizeFn> {
    None
}
pub(crate) fn dequantizer() -> Option<DequantizeFn> {
    None
}

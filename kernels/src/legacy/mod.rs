//! PLACEHOLDER: filled in by its owner.
use crate::blocks::GgmlType;
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TypeKernels};

pub(crate) fn kernels(_dtype: GgmlType, _isa: Isa) -> Option<TypeKernels> {
    None
}
pub(crate) fn quantizer(_dtype: GgmlType) -> Option<QuantizeFn> {
    None
}
pub(crate) fn dequantizer(_dtype: GgmlType) -> Option<DequantizeFn> {
    None
}

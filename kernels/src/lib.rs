//! ferrite's CPU kernels: GGUF block formats, reference and SIMD quantization
//! kernels, matrix drivers over a thread pool, and f32 ops.
//!
//! Leaf crate, no I/O. Every fast kernel has a scalar reference beside it and is
//! tested against it and against an f64 computation.

pub mod attn;
pub mod blocks;
pub mod cpu;
pub mod dispatch;
pub mod float;
pub mod ggml_math;
pub mod kquants;
pub mod legacy;
pub mod matmul;
pub mod ops;
#[cfg(target_arch = "x86_64")]
mod prefetch;
#[doc(hidden)]
pub mod testutil;

pub use blocks::GgmlType;
pub use cpu::Isa;
pub use dispatch::{kernels, kernels_at, TypeKernels};

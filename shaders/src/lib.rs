//! ferrite's GPU backend: WGSL compute shaders (in `wgsl/`) run through wgpu on
//! Vulkan, Metal, DX12 or GL.
//!
//! - [`GpuContext`]: adapter choice (`WGPU_BACKEND`, `FERRITE_GPU_DEVICE`), device,
//!   lazily compiled pipelines keyed by (op, weight type, variant).
//! - [`GpuTensor`]: weights uploaded once, repacked into 4-byte-aligned blocks and
//!   split into windows when larger than one storage binding.
//! - [`Recorder`]: ops recorded over one activation [`Arena`] into a single command
//!   encoder; only what is asked for is read back.
//! - [`GpuModel`]: the decoder of `engine::model` (llama, qwen2, gemma3) on the GPU,
//!   whole or the last N layers.
//!
//! Shaders that use shader-f16 or subgroups have fallbacks chosen at run time when the
//! adapter lacks the feature (GL has neither).

mod context;
pub mod exact;
mod graph;
pub mod model;
pub mod pipelines;
mod tensor;

pub use context::{adapters, AdapterDesc, GpuContext, GpuOptions};
pub use graph::{rope_table, Arena, AttnShape, KvBuffer, Recorder, PARAM_BYTES};
pub use model::{GpuHiddenSeq, GpuKvCache, GpuModel, GpuSeq, SplitCache};
pub use pipelines::{Ew, GPU_TYPES};
pub use tensor::GpuTensor;

/// Errors of the GPU path; none of them panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuError {
    /// No usable adapter (or the one asked for is not there).
    NoAdapter(String),
    /// The device could not be opened.
    Device(String),
    /// A shader failed to compile or validate.
    Shader(String),
    /// Something the GPU path does not do (a weight type, a shape).
    Unsupported(String),
    /// The model or a buffer does not fit in GPU memory or one binding.
    OutOfMemory(String),
    /// An error wgpu reported while running.
    Wgpu(String),
    /// Bad input from the caller (token outside the vocabulary, context overflow).
    Input(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NoAdapter(m) => write!(f, "no GPU: {m}"),
            GpuError::Device(m) => write!(f, "GPU device: {m}"),
            GpuError::Shader(m) => write!(f, "GPU shader: {m}"),
            GpuError::Unsupported(m) => write!(f, "not supported on the GPU: {m}"),
            GpuError::OutOfMemory(m) => write!(f, "does not fit on the GPU: {m}"),
            GpuError::Wgpu(m) => write!(f, "GPU error: {m}"),
            GpuError::Input(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for GpuError {}

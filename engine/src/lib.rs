//! ferrite's inference engine.

pub mod gguf;

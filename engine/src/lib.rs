//! ferrite's inference engine.

pub mod gguf;
pub mod model;
pub mod sampler;
pub mod stop;
pub mod tokenizer;

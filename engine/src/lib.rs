//! ferrite's inference engine.

pub mod generate;
pub mod gguf;
pub mod grammar;
pub mod model;
pub mod sampler;
pub mod stop;
pub mod tokenizer;

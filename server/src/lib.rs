//! The Ollama-compatible surface of ferrite, on top of the engine.
//!
//! - `store`: Ollama's on-disk model store (names, digests, manifests, blobs).
//! - `modelfile`: the Modelfile language (parse, render back).
//! - `template`: Go `text/template` (Ollama TEMPLATE) and GGUF Jinja chat templates.

pub mod create;
pub mod modelfile;
pub mod show;
pub mod store;
pub mod template;

//! The Ollama-compatible surface of ferrite, on top of the engine.
//!
//! - `store`: Ollama's on-disk model store (names, digests, manifests, blobs).
//! - `modelfile`: the Modelfile language (parse, render back).
//! - `template`: Go `text/template` (Ollama TEMPLATE) and GGUF Jinja chat templates.
//! - `config`: every `OLLAMA_*` variable; `api`: wire types; `catalog`: the boundary
//!   between routes and store/templates; `runner`: continuous batching over one model;
//!   `sched`: loaded models, keep-alive, eviction, admission; `http`: the axum routes.
//! - `registry`: pull/push against Ollama registries.
//! - `store_catalog` / `renderer`: the real catalog (the store) and prompt renderer (the
//!   template engines) that `ferrite serve` runs with.

pub mod api;
pub mod catalog;
pub mod config;
pub mod create;
pub mod gpu;
pub mod http;
pub mod modelfile;
pub mod registry;
pub mod renderer;
pub mod runner;
pub mod sched;
pub mod show;
pub mod store;
pub mod store_catalog;
pub mod template;

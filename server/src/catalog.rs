//! The boundary between the HTTP layer and the model store / prompt templates.
//!
//! Routes see models only through [`Catalog`] (names → files and metadata, management
//! operations) and prompts only through [`PromptRenderer`]; the store and template modules
//! implement them, tests use in-memory versions.

use crate::api::{
    ApiError, CreateRequest, ListModel, Message, ModelDetails, ProgressResponse, PullRequest,
    ShowRequest, Think,
};
use serde_json::{Map, Value};
use std::io::Read;
use std::path::PathBuf;
use std::time::SystemTime;

/// A model resolved from its name: what the scheduler loads and the renderer formats with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedModel {
    /// Shortest display name (`llama3.2:latest`, `user/m:tag`).
    pub name: String,
    /// Fully qualified name (`registry.ollama.ai/library/llama3.2:latest`), used in
    /// capability errors.
    pub full_name: String,
    /// Hex SHA-256 of the manifest (no `sha256:` prefix).
    pub digest: String,
    pub gguf_path: PathBuf,
    /// Go TEMPLATE text (or the GGUF chat template); `None` = the renderer's default.
    pub template: Option<String>,
    pub system: Option<String>,
    /// Modelfile PARAMETER values, typed as in `options`.
    pub parameters: Map<String, Value>,
    /// MESSAGE history.
    pub messages: Vec<Message>,
    pub details: ModelDetails,
    /// `completion`, `tools`, `insert`, `vision`, `embedding`, `thinking`, …
    pub capabilities: Vec<String>,
    /// Manifest mtime.
    pub modified_at: Option<SystemTime>,
}

impl ResolvedModel {
    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }

    /// The namespace of the name (`library` for official models), as `/v1/models` reports
    /// it in `owned_by`.
    pub fn namespace(&self) -> String {
        namespace_of(&self.name)
    }
}

/// `owned_by` of a display name: the path segment before the model, else `library`.
pub fn namespace_of(display_name: &str) -> String {
    let parts: Vec<&str> = display_name.split('/').collect();
    if parts.len() >= 2 {
        parts[parts.len() - 2].to_string()
    } else {
        "library".to_string()
    }
}

/// One `/api/tags` entry before formatting.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub name: String,
    pub size: u64,
    pub digest: String,
    pub modified_at: SystemTime,
    pub details: ModelDetails,
    pub capabilities: Vec<String>,
}

impl ModelSummary {
    pub fn to_list_model(&self) -> ListModel {
        ListModel {
            name: self.name.clone(),
            model: self.name.clone(),
            modified_at: crate::api::time::rfc3339_nano(self.modified_at),
            size: self.size,
            digest: self.digest.clone(),
            details: self.details.clone(),
            capabilities: self.capabilities.clone(),
        }
    }
}

/// Receives progress lines of long operations (create, pull, push).
pub type Progress<'a> = &'a mut dyn FnMut(ProgressResponse);

/// The model store as routes need it. Methods block (file I/O); routes call them from
/// blocking tasks. Errors carry the spec's status and text (e.g. 404
/// `model 'x' not found`, 400 `invalid model name`).
pub trait Catalog: Send + Sync {
    /// Resolves a name as the client wrote it.
    fn resolve(&self, name: &str) -> Result<ResolvedModel, ApiError>;
    /// Every local model, newest first.
    fn list(&self) -> Result<Vec<ModelSummary>, ApiError>;
    /// The whole `/api/show` response (`model_info` always present).
    fn show(&self, req: &ShowRequest) -> Result<Value, ApiError>;
    /// Checks a create request before any progress is streamed: what fails here is a
    /// plain error response with its status (Ollama: an invalid name or file path), not an
    /// error line after a 200.
    fn check_create(&self, req: &CreateRequest) -> Result<(), ApiError> {
        let _ = req;
        Ok(())
    }
    /// Creates a model, reporting progress; the last line written on success is
    /// `success` (sent by the route, not by the catalog).
    fn create(&self, req: &CreateRequest, progress: Progress<'_>) -> Result<(), ApiError>;
    /// 404 `model "<source>" not found` when the source is missing.
    fn copy(&self, source: &str, destination: &str) -> Result<(), ApiError>;
    fn delete(&self, name: &str) -> Result<(), ApiError>;
    /// `Ok(false)` when absent; 400 `invalid digest format` when malformed.
    fn blob_exists(&self, digest: &str) -> Result<bool, ApiError>;
    /// Stores a blob from `body`, verifying its SHA-256 (400 `digest mismatch, …`).
    fn put_blob(&self, digest: &str, body: &mut dyn Read) -> Result<(), ApiError>;
    /// Downloads a model from its registry. Catalogs without a registry client refuse.
    fn pull(&self, req: &PullRequest, progress: Progress<'_>) -> Result<(), ApiError> {
        let _ = (req, progress);
        Err(ApiError::internal(
            "pulling models is not supported by this server",
        ))
    }
    /// Uploads a model to its registry. Catalogs without a registry client refuse.
    fn push(&self, req: &PullRequest, progress: Progress<'_>) -> Result<(), ApiError> {
        let _ = (req, progress);
        Err(ApiError::internal(
            "pushing models is not supported by this server",
        ))
    }
}

/// What a chat prompt is rendered with besides the messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatRender<'a> {
    /// The request's `tools` as the client wrote them (empty = none).
    pub tools: &'a [Box<serde_json::value::RawValue>],
    pub think: Option<&'a Think>,
}

/// A `/api/generate` prompt (non-raw).
#[derive(Debug, Clone, Copy, Default)]
pub struct GenerateRender<'a> {
    pub prompt: &'a str,
    /// The request's `system`, overriding the model's SYSTEM.
    pub system: Option<&'a str>,
    /// Fill-in-the-middle: the template gets `.Prompt`, `.Suffix` and an empty `.Response`.
    pub suffix: Option<&'a str>,
    /// Prepend the model's MESSAGE history (false when the request carried `context`).
    pub use_history: bool,
    /// The number of images attached to the prompt.
    pub images: usize,
    pub think: Option<&'a Think>,
}

/// Turns messages into the prompt text the model is fed. The model's `template` may have
/// been replaced by the request's `template` before the call.
pub trait PromptRenderer: Send + Sync {
    /// The model's MESSAGE history and SYSTEM are already part of `messages` (the route
    /// assembles them as Ollama does).
    fn chat(
        &self,
        model: &ResolvedModel,
        messages: &[Message],
        opts: &ChatRender<'_>,
    ) -> Result<String, ApiError>;
    fn generate(&self, model: &ResolvedModel, req: &GenerateRender<'_>)
        -> Result<String, ApiError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(namespace_of("llama3.2:latest"), "library");
        assert_eq!(namespace_of("user/m:tag"), "user");
        assert_eq!(namespace_of("example.com/ns/m:tag"), "ns");
    }
}

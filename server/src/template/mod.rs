//! Prompt templates.
//!
//! - [`Template`]: an Ollama `TEMPLATE` (Go `text/template`, our own engine in [`go`]),
//!   rendered with Ollama's algorithm by [`render_chat`], [`render_chat_truncated`] and
//!   [`render_generate`].
//! - [`ChatTemplate`]: a GGUF's Jinja `tokenizer.chat_template` (or a built-in one for
//!   families whose files have none), rendered with MiniJinja.
//! - [`ModelTemplate`]: either of the two, as a model uses it.
//! - [`named`]: Ollama's built-in templates and their detection from a Jinja template.
//! - [`Message`], [`ToolCall`], [`Tool`], [`Think`]: the API's chat types.
//!
//! Both engines are sandboxed: output size, evaluation steps/fuel and nesting are bounded
//! and exceeding them is an error.

pub mod go;
mod jinja;
mod model;
pub mod named;
mod ollama;
mod types;

use std::fmt;

pub use jinja::{ChatTemplate, JinjaLimits, JinjaOptions, CHAT_TEMPLATE_KEY};
pub use model::ModelTemplate;
pub use ollama::{
    chat_messages, collate, execute, render_chat, render_chat_truncated, render_generate,
    tag_images, ChatPrompt, GenerateInput, Template, Values, DEFAULT_TEMPLATE,
};
pub use types::{
    Message, PropertyType, Think, Tool, ToolArguments, ToolCall, ToolCallFunction, ToolFunction,
    ToolFunctionParameters, ToolProperties, ToolProperty, THINK_LEVELS,
};

/// A template error. `Display` gives the message the API reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// The Go template does not parse (Go's message, e.g. `template: :3: unexpected EOF`;
    /// 1-based line and column, 0 when unknown). `/api/create` answers
    /// 400 `template error: <message>`.
    Parse {
        message: String,
        line: usize,
        column: usize,
    },
    /// Executing the Go template failed (Go's message format), including the limits.
    Exec(String),
    /// The Jinja template failed to compile or render.
    Jinja(String),
    /// Reading the template from a GGUF failed.
    Gguf(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Parse { message, .. } => f.write_str(message),
            TemplateError::Exec(m) | TemplateError::Jinja(m) | TemplateError::Gguf(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for TemplateError {}

impl From<go::ParseError> for TemplateError {
    fn from(e: go::ParseError) -> TemplateError {
        TemplateError::Parse {
            message: e.message,
            line: e.line,
            column: e.column,
        }
    }
}

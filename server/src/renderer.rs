//! The real [`PromptRenderer`]: which template a model renders its prompts with.
//!
//! 1. the model's TEMPLATE layer (or a request's `template`), a Go template rendered with
//!    Ollama's algorithm;
//! 2. else the GGUF's own Jinja `tokenizer.chat_template` ("native" mode);
//! 3. else ferrite's built-in Jinja template for the architecture (Gemma 3 files carry none);
//! 4. else `{{ .Prompt }}`.
//!
//! The Jinja template of a GGUF is read once per weights file (the blob path names its
//! digest). BOS: a template that writes `{{ bos_token }}` keeps it in the text; the
//! runner's [`crate::runner::prompt_tokens`] then adds no second one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::api::{ApiError, Message, Think};
use crate::catalog::{ChatRender, GenerateRender, PromptRenderer, ResolvedModel};
use crate::template::{self, ChatTemplate, GenerateInput, ModelTemplate, Template};

/// Jinja templates kept before the cache is cleared (one per weights file).
const MAX_CACHED: usize = 64;

/// Renders prompts with [`crate::template`].
#[derive(Default)]
pub struct TemplateRenderer {
    /// Weights file → its Jinja chat template (`None`: the file has none and there is no
    /// built-in one).
    jinja: Mutex<HashMap<PathBuf, Option<ChatTemplate>>>,
}

impl TemplateRenderer {
    pub fn new() -> TemplateRenderer {
        TemplateRenderer::default()
    }

    /// The template `model` renders with (see the module docs for the order).
    pub fn template_for(&self, model: &ResolvedModel) -> Result<ModelTemplate, ApiError> {
        if let Some(src) = &model.template {
            return Template::parse(src)
                .map(ModelTemplate::Go)
                .map_err(|e| ApiError::bad_request(format!("template error: {e}")));
        }
        let mut cache = self.jinja.lock().unwrap_or_else(|e| e.into_inner());
        let cached = match cache.get(&model.gguf_path) {
            Some(t) => t.clone(),
            None => {
                // Read under the lock: metadata only, once per weights file.
                let t = ChatTemplate::from_gguf_path(&model.gguf_path)
                    .map_err(|e| ApiError::internal(format!("{}: {e}", model.name)))?;
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(model.gguf_path.clone(), t.clone());
                t
            }
        };
        Ok(match cached {
            Some(j) => ModelTemplate::Jinja(j),
            None => ModelTemplate::Go(Template::default_template()),
        })
    }
}

fn think(t: Option<&Think>) -> Option<template::Think> {
    t.map(|t| match t {
        Think::Bool(b) => template::Think::Bool(*b),
        Think::Level(l) => template::Think::Level(l.clone()),
    })
}

/// An API message as the template engines take it.
pub fn template_message(m: &Message) -> template::Message {
    template::Message {
        role: m.role.clone(),
        content: m.content.clone(),
        thinking: m.thinking.clone(),
        images: m.images.clone(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| template::ToolCall {
                id: c.id.clone(),
                function: template::ToolCallFunction {
                    index: c.function.index,
                    name: c.function.name.clone(),
                    arguments: template::ToolArguments(c.function.arguments.0.clone()),
                },
            })
            .collect(),
        tool_name: m.tool_name.clone(),
        tool_call_id: m.tool_call_id.clone(),
    }
}

fn render_error(e: template::TemplateError) -> ApiError {
    ApiError::internal(e.to_string())
}

impl PromptRenderer for TemplateRenderer {
    fn chat(
        &self,
        model: &ResolvedModel,
        messages: &[Message],
        opts: &ChatRender<'_>,
    ) -> Result<String, ApiError> {
        let tmpl = self.template_for(model)?;
        let msgs: Vec<template::Message> = messages.iter().map(template_message).collect();
        let tools = opts
            .tools
            .iter()
            .map(|raw| {
                serde_json::from_str::<template::Tool>(raw.get())
                    .map_err(|e| ApiError::bad_request(format!("invalid tool: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tmpl.render_chat(&msgs, &tools, think(opts.think).as_ref())
            .map_err(render_error)
    }

    fn generate(
        &self,
        model: &ResolvedModel,
        req: &GenerateRender<'_>,
    ) -> Result<String, ApiError> {
        let tmpl = self.template_for(model)?;
        let history: Vec<template::Message> = model.messages.iter().map(template_message).collect();
        // Only the number of images matters to the text (`[img-N]` tags).
        let images = vec![String::new(); req.images];
        let think = think(req.think);
        tmpl.render_generate(&GenerateInput {
            prompt: req.prompt,
            suffix: req.suffix.unwrap_or(""),
            system: req.system.unwrap_or(""),
            model_system: model.system.as_deref().unwrap_or(""),
            history: &history,
            has_context: !req.use_history,
            images: &images,
            think: think.as_ref(),
            raw: false,
        })
        .map_err(render_error)
    }
}

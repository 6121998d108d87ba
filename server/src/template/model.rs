//! One type for "the template a model renders its prompts with": an Ollama Go template
//! (from the TEMPLATE layer) or, for models without one, the GGUF's Jinja chat template.

use super::jinja::{ChatTemplate, JinjaOptions};
use super::ollama::{self, GenerateInput, Template};
use super::types::{Message, Think, Tool};
use super::TemplateError;

#[derive(Clone, Debug)]
pub enum ModelTemplate {
    Go(Template),
    Jinja(ChatTemplate),
}

impl ModelTemplate {
    /// The `tools` capability.
    pub fn uses_tools(&self) -> bool {
        match self {
            ModelTemplate::Go(t) => t.uses_tools(),
            ModelTemplate::Jinja(t) => t.uses_tools(),
        }
    }

    /// The `insert` capability (only Go templates know `.Suffix`).
    pub fn uses_suffix(&self) -> bool {
        match self {
            ModelTemplate::Go(t) => t.uses_suffix(),
            ModelTemplate::Jinja(_) => false,
        }
    }

    /// The template text (`/api/show` `template`).
    pub fn source(&self) -> &str {
        match self {
            ModelTemplate::Go(t) => t.source(),
            ModelTemplate::Jinja(t) => t.source(),
        }
    }

    /// Renders a chat. For Jinja the generation prompt is added unless the last message
    /// is the assistant's (a prefill), and `think` is passed as `enable_thinking`.
    pub fn render_chat(
        &self,
        messages: &[Message],
        tools: &[Tool],
        think: Option<&Think>,
    ) -> Result<String, TemplateError> {
        match self {
            ModelTemplate::Go(t) => ollama::render_chat(t, messages, tools, think),
            ModelTemplate::Jinja(t) => {
                let mut extra = serde_json::Map::new();
                if let Some(th) = think {
                    extra.insert("enable_thinking".into(), th.enabled().into());
                }
                let mut msgs = messages.to_vec();
                ollama::tag_images(&mut msgs, 0);
                t.render(
                    &msgs,
                    &JinjaOptions {
                        tools,
                        add_generation_prompt: messages
                            .last()
                            .is_none_or(|m| m.role != "assistant"),
                        extra: Some(&extra),
                    },
                )
            }
        }
    }

    /// Renders a `/api/generate` prompt (see [`ollama::render_generate`]). Jinja templates
    /// have no fill-in-the-middle form: a suffix is an error.
    pub fn render_generate(&self, req: &GenerateInput) -> Result<String, TemplateError> {
        match self {
            ModelTemplate::Go(t) => ollama::render_generate(t, req),
            ModelTemplate::Jinja(_) if req.raw => Ok(req.prompt.to_string()),
            ModelTemplate::Jinja(_) if !req.suffix.is_empty() => Err(TemplateError::Exec(
                "the model's chat template does not support a suffix".into(),
            )),
            ModelTemplate::Jinja(_) => {
                let mut msgs = Vec::new();
                let system = if req.system.is_empty() {
                    req.model_system
                } else {
                    req.system
                };
                if !system.is_empty() {
                    msgs.push(Message::new("system", system));
                }
                if !req.has_context {
                    msgs.extend_from_slice(req.history);
                }
                let mut user = Message::new("user", req.prompt);
                user.images = req.images.to_vec();
                msgs.push(user);
                self.render_chat(&msgs, &[], req.think)
            }
        }
    }
}

//! The real [`Catalog`]: the on-disk model store ([`crate::store`]), model creation
//! ([`crate::create`]) and `/api/show` ([`crate::show`]), with errors worded and coded as
//! the spec says; and [`EngineTemplates`], the [`TemplateSupport`] backed by the Go
//! template engine of [`crate::template`].
//!
//! A model without a TEMPLATE layer runs on its GGUF's own Jinja chat template ("native"
//! mode, see [`crate::renderer`]); its capabilities and `/api/show` reflect that.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::api::{self, ApiError, ProgressResponse};
use crate::catalog::{Catalog, ModelSummary, Progress, ResolvedModel};
use crate::create::{self, CreateOptions, License};
use crate::registry::{RegistryClient, RegistryOptions};
use crate::show::{self, DetectedTemplate, TemplateSupport};
use crate::store::{self, go_quote, Digest, ModelName, Store, StoreError};
use crate::template::go::{ArgKind, GoTemplate, Node, Pipe};
use crate::template::{ChatTemplate, Template};

/// Capability lists kept before the cache is cleared (one entry per manifest digest).
const MAX_CACHED: usize = 1024;

/// [`TemplateSupport`] on the real Go template engine.
///
/// `detect` is Ollama's template auto-detection ([`crate::template::named`]): a GGUF whose
/// Jinja template is close to one of Ollama's known ones gets that built-in Go template
/// (and its `stop` parameters); any other is rendered with its own Jinja template.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineTemplates;

impl TemplateSupport for EngineTemplates {
    fn validate(&self, template: &str) -> Result<(), String> {
        Template::parse(template)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn detect(&self, chat_template: &str) -> Option<DetectedTemplate> {
        let t = crate::template::named::detect(chat_template)?;
        Some(DetectedTemplate {
            name: t.name.to_string(),
            template: t.template.clone(),
            parameters: t.stop.as_ref().map(|stop| {
                let mut m = serde_json::Map::new();
                m.insert("stop".into(), Value::from(stop.clone()));
                m
            }),
        })
    }

    fn vars(&self, template: &str) -> Vec<String> {
        Template::parse(template)
            .map(|t| t.vars().to_vec())
            .unwrap_or_default()
    }

    fn thinking_tags(&self, template: &str) -> Option<(String, String)> {
        let t = GoTemplate::parse(template).ok()?;
        let mut walk = TagWalk::default();
        walk.list(&t.tree.root);
        let (open, close) = walk.tags;
        (!open.is_empty() && !close.is_empty()).then_some((open, close))
    }
}

/// Ollama's `thinking.InferTags`: for every `.Thinking` field whose innermost enclosing
/// `range` iterates `.Messages`, the nearest enclosing list's first and last nodes, when
/// they are text, give the opening and closing tags (trimmed). Later matches win.
#[derive(Default)]
struct TagWalk<'a> {
    lists: Vec<&'a [Node]>,
    ranges: Vec<&'a Pipe>,
    tags: (String, String),
}

impl<'a> TagWalk<'a> {
    fn list(&mut self, nodes: &'a [Node]) {
        self.lists.push(nodes);
        for n in nodes {
            match n {
                Node::Action(p) => self.pipe(p),
                Node::If(b) | Node::With(b) => {
                    self.pipe(&b.pipe);
                    self.list(&b.list);
                    if let Some(e) = &b.else_list {
                        self.list(e);
                    }
                }
                Node::Range(b) => {
                    self.ranges.push(&b.pipe);
                    self.pipe(&b.pipe);
                    self.list(&b.list);
                    if let Some(e) = &b.else_list {
                        self.list(e);
                    }
                    self.ranges.pop();
                }
                Node::Template { pipe: Some(p), .. } => self.pipe(p),
                _ => {}
            }
        }
        self.lists.pop();
    }

    fn pipe(&mut self, p: &Pipe) {
        if !mentions_field(p, "Thinking") {
            return;
        }
        let in_messages = self
            .ranges
            .last()
            .is_some_and(|r| mentions_field(r, "Messages"));
        if !in_messages {
            return;
        }
        if let Some(list) = self.lists.last() {
            if let Some(Node::Text(t)) = list.first() {
                self.tags.0 = t.trim().to_string();
            }
            if let Some(Node::Text(t)) = list.last() {
                self.tags.1 = t.trim().to_string();
            }
        }
    }
}

/// Whether a pipeline reads `.<field>` (at any depth of parentheses).
fn mentions_field(p: &Pipe, field: &str) -> bool {
    fn arg(a: &ArgKind, field: &str) -> bool {
        match a {
            ArgKind::Field(f) => f.first().is_some_and(|x| x == field),
            ArgKind::Pipe(p) => mentions_field(p, field),
            ArgKind::Chain(inner, _) => arg(&inner.kind, field),
            _ => false,
        }
    }
    p.cmds
        .iter()
        .any(|c| c.args.iter().any(|a| arg(&a.kind, field)))
}

/// The store as the HTTP layer's [`Catalog`].
pub struct StoreCatalog {
    store: Arc<Store>,
    templates: EngineTemplates,
    /// Manifest digest → capabilities (they depend only on the manifest's content, and
    /// computing them opens the GGUF).
    caps: Mutex<HashMap<String, Vec<String>>>,
    registry: RegistryClient,
}

impl StoreCatalog {
    /// A catalog whose pulls and pushes sign with `$HOME/.ollama/id_ed25519`.
    pub fn new(store: Arc<Store>) -> StoreCatalog {
        StoreCatalog {
            store,
            templates: EngineTemplates,
            caps: Mutex::new(HashMap::new()),
            registry: RegistryClient::new(RegistryOptions::default()),
        }
    }

    /// Replaces the registry client (another key, retry timing, part sizes).
    pub fn with_registry(mut self, registry: RegistryClient) -> StoreCatalog {
        self.registry = registry;
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// `show::capabilities`, plus `tools` for a model in native mode whose Jinja
    /// template handles tools.
    fn capabilities(&self, m: &store::ResolvedModel) -> Result<Vec<String>, ApiError> {
        let mut cache = self.caps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&m.digest) {
            return Ok(c.clone());
        }
        drop(cache);
        let mut caps = show::capabilities(m, &self.templates).map_err(api_error)?;
        if let (None, Some(path)) = (&m.template, &m.model_path) {
            let jinja = ChatTemplate::from_gguf_path(path)
                .map_err(|e| ApiError::internal(format!("{}: {e}", m.short_name())))?;
            if jinja.is_some_and(|j| j.uses_tools()) && !caps.iter().any(|c| c == "tools") {
                caps.push("tools".into());
            }
        }
        cache = self.caps.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(m.digest.clone(), caps.clone());
        Ok(caps)
    }

    fn resolve_store(&self, name: &str) -> Result<store::ResolvedModel, ApiError> {
        self.store.resolve(name).map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::model_not_found(name),
            e => api_error(e),
        })
    }
}

/// A store error as the API answers it: Ollama's status and text.
fn api_error(e: StoreError) -> ApiError {
    ApiError::new(e.status_code(), e.to_string())
}

fn details(d: &store::ModelDetails) -> api::ModelDetails {
    api::ModelDetails {
        parent_model: d.parent_model.clone(),
        format: d.format.clone(),
        family: d.family.clone(),
        families: d.families.clone(),
        parameter_size: d.parameter_size.clone(),
        quantization_level: d.quantization_level.clone(),
        context_length: None,
        embedding_length: None,
    }
}

fn api_message(m: &store::Message) -> Result<api::Message, ApiError> {
    let tool_calls = m
        .tool_calls
        .iter()
        .map(|v| serde_json::from_value::<api::ToolCall>(v.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal(format!("bad tool call in the messages layer: {e}")))?;
    Ok(api::Message {
        role: m.role.clone(),
        content: m.content.clone(),
        thinking: m.thinking.clone(),
        images: m.images.clone(),
        tool_calls,
        tool_name: m.tool_name.clone(),
        tool_call_id: m.tool_call_id.clone(),
    })
}

fn store_message(m: &api::Message) -> Result<store::Message, ApiError> {
    let tool_calls = m
        .tool_calls
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| ApiError::bad_request(format!("bad tool call: {e}")))?;
    Ok(store::Message {
        role: m.role.clone(),
        content: m.content.clone(),
        thinking: m.thinking.clone(),
        images: m.images.clone(),
        tool_calls,
        tool_name: m.tool_name.clone(),
        tool_call_id: m.tool_call_id.clone(),
    })
}

/// The `/api/create` body as [`create::create`] takes it.
fn create_request(r: &api::CreateRequest) -> Result<create::CreateRequest, ApiError> {
    let opt_map = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
    Ok(create::CreateRequest {
        model: r.model.clone(),
        name: r.name.clone(),
        stream: r.stream,
        quantize: r.quantize.clone(),
        quantization: r.quantization.clone(),
        from: r.from.clone(),
        files: opt_map(&r.files),
        adapters: opt_map(&r.adapters),
        template: r.template.clone(),
        license: (!r.license.is_empty()).then(|| License::Many(r.license.clone())),
        system: r.system.clone(),
        parameters: (!r.parameters.is_empty()).then(|| r.parameters.clone()),
        messages: r
            .messages
            .iter()
            .map(store_message)
            .collect::<Result<_, _>>()?,
        renderer: r.renderer.clone(),
        parser: r.parser.clone(),
        requires: r.requires.clone(),
    })
}

impl Catalog for StoreCatalog {
    fn resolve(&self, name: &str) -> Result<ResolvedModel, ApiError> {
        let m = self.resolve_store(name)?;
        let gguf_path = m.model_path.clone().ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} has no local weights (remote models are not supported)",
                go_quote(name)
            ))
        })?;
        Ok(ResolvedModel {
            name: m.short_name(),
            full_name: m.name.to_string(),
            digest: m.digest.clone(),
            gguf_path,
            template: m.template.clone(),
            system: m.system.clone(),
            parameters: m.parameters.clone(),
            messages: m
                .messages
                .iter()
                .map(api_message)
                .collect::<Result<_, _>>()?,
            details: details(&m.details),
            capabilities: self.capabilities(&m)?,
            modified_at: Some(m.modified_at),
        })
    }

    fn list(&self) -> Result<Vec<ModelSummary>, ApiError> {
        let listed = self.store.list().map_err(api_error)?;
        Ok(listed
            .into_iter()
            .map(|l| {
                // A model whose layers cannot be read is still listed, without capabilities.
                let capabilities = self
                    .store
                    .resolve(&l.name)
                    .ok()
                    .and_then(|m| self.capabilities(&m).ok())
                    .unwrap_or_default();
                ModelSummary {
                    name: l.name,
                    size: l.size,
                    digest: l.digest,
                    modified_at: l.modified_at,
                    details: details(&l.details),
                    capabilities,
                }
            })
            .collect())
    }

    fn show(&self, req: &api::ShowRequest) -> Result<Value, ApiError> {
        let name = if req.model.is_empty() {
            &req.name
        } else {
            &req.model
        };
        let m = self.resolve_store(name)?;
        let sreq = show::ShowRequest {
            model: name.clone(),
            name: String::new(),
            verbose: req.verbose,
            system: req.system.clone(),
            options: req.options.clone(),
        };
        let mut resp = show::show(&self.store, &sreq, &self.templates).map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::model_not_found(name),
            e => api_error(e),
        })?;
        resp.capabilities = self.capabilities(&m)?;
        if let (None, Some(path)) = (&m.template, &m.model_path) {
            let jinja = ChatTemplate::from_gguf_path(path)
                .map_err(|e| ApiError::internal(format!("{name}: {e}")))?;
            if let Some(j) = jinja {
                // Native mode: the template the model really renders with. The Modelfile
                // leaves TEMPLATE out so that re-creating from it keeps native mode.
                resp.template = j.source().to_string();
                let line = format!("\nTEMPLATE {}\n", show::DEFAULT_TEMPLATE);
                if let Some(i) = resp.modelfile.find(&line) {
                    resp.modelfile.replace_range(i + 1..i + line.len(), "");
                }
            }
        }
        serde_json::to_value(&resp).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Ollama's order: file paths, then the name; digests too (nothing is written for
    /// a request that names no valid blob).
    fn check_create(&self, req: &api::CreateRequest) -> Result<(), ApiError> {
        for (path, digest) in req.files.iter().chain(req.adapters.iter()) {
            if !create::valid_rel_path(path) {
                return Err(ApiError::bad_request("file path must be relative"));
            }
            Digest::parse(digest).map_err(api_error)?;
        }
        let name = if req.model.is_empty() {
            &req.name
        } else {
            &req.model
        };
        ModelName::parse(name).map_err(api_error)?;
        Ok(())
    }

    fn create(&self, req: &api::CreateRequest, progress: Progress<'_>) -> Result<(), ApiError> {
        let creq = create_request(req)?;
        // A `from` model missing here is pulled first, its progress streamed (Ollama's
        // parseFromModel); a pull failure is the create's error.
        if let Ok(from) = ModelName::parse(&req.from) {
            if matches!(
                self.store.read_manifest(&from),
                Err(StoreError::NotFound(_))
            ) {
                self.registry
                    .pull(&self.store, &from, false, None, &mut *progress)?;
            }
        }
        let opts = CreateOptions {
            templates: &self.templates,
            pull: None,
        };
        // The route writes the final `success` itself.
        create::create(&self.store, &creq, &opts, &mut |status: &str| {
            if status != "success" {
                progress(ProgressResponse::status(status));
            }
        })
        .map_err(api_error)
    }

    fn copy(&self, source: &str, destination: &str) -> Result<(), ApiError> {
        let src = ModelName::parse(source).map_err(|_| {
            ApiError::bad_request(format!("source {} is invalid", go_quote(source)))
        })?;
        let dst = ModelName::parse(destination).map_err(|_| {
            ApiError::bad_request(format!("destination {} is invalid", go_quote(destination)))
        })?;
        self.store.copy(&src, &dst).map_err(|e| match e {
            StoreError::NotFound(_) => {
                ApiError::not_found(format!("model {} not found", go_quote(source)))
            }
            e => api_error(e),
        })
    }

    fn delete(&self, name: &str) -> Result<(), ApiError> {
        let parsed = ModelName::parse(name)
            .map_err(|_| ApiError::bad_request(format!("name {} is invalid", go_quote(name))))?;
        self.store.delete(&parsed).map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::model_not_found(name),
            e => api_error(e),
        })
    }

    fn blob_exists(&self, digest: &str) -> Result<bool, ApiError> {
        let d = Digest::parse(digest).map_err(api_error)?;
        Ok(self.store.blob_exists(&d))
    }

    fn put_blob(&self, digest: &str, body: &mut dyn Read) -> Result<(), ApiError> {
        let d = Digest::parse(digest).map_err(api_error)?;
        self.store.put_blob(&d, body).map(|_| ()).map_err(api_error)
    }

    fn pull(&self, req: &api::PullRequest, progress: Progress<'_>) -> Result<(), ApiError> {
        let raw = if req.model.is_empty() {
            &req.name
        } else {
            &req.model
        };
        let name = ModelName::parse(raw).map_err(api_error)?;
        let cancel = req.cancel.as_deref();
        self.registry
            .pull(&self.store, &name, req.insecure, cancel, progress)?;
        self.caps.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }

    fn push(&self, req: &api::PullRequest, progress: Progress<'_>) -> Result<(), ApiError> {
        let raw = if req.model.is_empty() {
            &req.name
        } else {
            &req.model
        };
        if raw.is_empty() {
            return Err(ApiError::bad_request("model is required"));
        }
        let name = ModelName::parse(raw).map_err(api_error)?;
        let name = self.store.existing_name(&name).map_err(api_error)?;
        let cancel = req.cancel.as_deref();
        self.registry
            .push(&self.store, &name, req.insecure, cancel, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_templates_validate_and_list_vars() {
        let t = EngineTemplates;
        assert_eq!(t.validate("{{ .Prompt }}"), Ok(()));
        let err = t.validate("{{ if .X }}").unwrap_err();
        assert!(err.starts_with("template: :1:"), "{err}");
        let err = t.validate("{{ nosuchfunc .X }}").unwrap_err();
        assert!(err.contains("function \"nosuchfunc\" not defined"), "{err}");
        let vars = t.vars("{{ range .Messages }}{{ .Content }}{{ end }}{{ if $.Tools }}{{ end }}");
        for v in ["messages", "content", "tools"] {
            assert!(vars.iter().any(|x| x == v), "{v} missing from {vars:?}");
        }
        assert!(t.vars("{{ .Suffix }}").iter().any(|v| v == "suffix"));
        assert!(t.vars("{{ if }}").is_empty());
        assert_eq!(t.detect("{% for m in messages %}{% endfor %}"), None);
    }

    #[test]
    fn thinking_tags_follow_ollamas_inference() {
        let t = EngineTemplates;
        let tpl = "{{- range .Messages }}{{ if eq .Role \"assistant\" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}{{ end }}";
        assert_eq!(
            t.thinking_tags(tpl),
            Some(("<think>".into(), "</think>".into()))
        );
        // `$.Thinking` is a variable, not a field: Ollama's inference ignores it, and the
        // `.Thinking` of the `with` has no text-bounded list around it.
        let tpl = "{{ range $i, $m := .Messages }}{{ with .Thinking }}\n<reasoning> {{ . }}{{ $.Thinking }} </reasoning>\n{{ end }}{{ end }}";
        assert_eq!(t.thinking_tags(tpl), None);
        // Whitespace around the tags is trimmed.
        let tpl = "{{ range $i, $m := .Messages }}{{ if $m.Content }}\n<r> {{ .Thinking }} </r>\n{{ end }}{{ end }}";
        assert_eq!(t.thinking_tags(tpl), Some(("<r>".into(), "</r>".into())));
        // Outside a range over the messages, or with no text around it: no tags.
        assert_eq!(t.thinking_tags("<think>{{ .Thinking }}</think>"), None);
        assert_eq!(
            t.thinking_tags("{{ range .Messages }}{{ .Thinking }}{{ end }}"),
            None
        );
        assert_eq!(
            t.thinking_tags("{{ range .Tools }}<a>{{ .Thinking }}</a>{{ end }}"),
            None
        );
        assert_eq!(t.thinking_tags("{{ if"), None);
    }

    #[test]
    fn messages_convert_both_ways() {
        let m: api::Message = serde_json::from_value(serde_json::json!({
            "role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]
        }))
        .unwrap();
        let s = store_message(&m).unwrap();
        assert_eq!(
            serde_json::to_string(&s.tool_calls[0]).unwrap(),
            r#"{"function":{"arguments":{"a":2,"b":1},"index":0,"name":"f"}}"#
        );
        let back = api_message(&s).unwrap();
        assert_eq!(back.tool_calls[0].function.name, "f");
        assert_eq!(back.tool_calls[0].function.arguments["a"], 2);
    }
}

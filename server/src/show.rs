//! `/api/show`: a model's Modelfile, parameters, template, details, GGUF metadata
//! (`model_info`), tensors and capabilities, as serde values the HTTP layer
//! serialises as is.

use std::time::SystemTime;

use engine::gguf::{Array, GgufFile, Value as GgufValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::modelfile::{Instruction, Modelfile};
use crate::store::*;

/// What create and show need to know about Go TEMPLATEs. The template module
/// (a real Go `text/template` parser plus Ollama's built-in template index)
/// should implement this; [`BasicTemplates`] is a structural fallback.
pub trait TemplateSupport: Sync {
    /// Parse-checks a template; `Err(reason)` is reported as `template error: <reason>`.
    fn validate(&self, template: &str) -> Result<(), String>;
    /// The built-in template closest to a GGUF Jinja chat template, for
    /// `using autodetected template <name>` on create.
    fn detect(&self, chat_template: &str) -> Option<DetectedTemplate>;
    /// Lowercased identifiers of the template's field references (`.Tools` →
    /// `tools`, `.Function.Name` → `function`, `name`): Ollama's `Template.Vars`.
    fn vars(&self, template: &str) -> Vec<String>;
    /// Opening and closing tags around `.Thinking` (Ollama's `thinking.InferTags`).
    fn thinking_tags(&self, template: &str) -> Option<(String, String)>;
}

/// A built-in template chosen for a GGUF chat template.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedTemplate {
    pub name: String,
    pub template: String,
    /// Its default parameters (e.g. `stop`), stored as a params layer.
    pub parameters: Option<Map<String, Value>>,
}

/// Ollama's default when a model has no template.
pub const DEFAULT_TEMPLATE: &str = "{{ .Prompt }}";

/// The `/api/show` request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShowRequest {
    pub model: String,
    /// Deprecated alias of `model`.
    pub name: String,
    /// Full arrays in `model_info` (else arrays longer than 5 become `[]`).
    pub verbose: bool,
    /// Replaces the SYSTEM shown in `modelfile` and `system`.
    pub system: String,
    /// Merged into the PARAMETERs of the rendered `modelfile` (not `parameters`).
    pub options: Option<Map<String, Value>>,
}

/// One tensor of `tensors`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// ggml order (row length first).
    pub shape: Vec<u64>,
}

/// The `/api/show` response, in Ollama's field order and omission rules.
#[derive(Debug, Clone, Serialize)]
pub struct ShowResponse {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub license: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub modelfile: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parameters: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub template: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub renderer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parser: String,
    pub details: ModelDetails,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<ShowMessage>,
    /// Always present (`{}` at least): some clients crash on null.
    pub model_info: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projector_info: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tensors: Vec<TensorSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(serialize_with = "crate::store::time_serialize")]
    pub modified_at: SystemTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub requires: String,
}

/// MESSAGE history in show: role and content only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShowMessage {
    pub role: String,
    pub content: String,
}

/// Builds the `/api/show` answer. Errors: `InvalidName` (400), `NotFound` with
/// the name as given (404; the handler words it `model '<name>' not found`).
pub fn show(
    store: &Store,
    req: &ShowRequest,
    templates: &dyn TemplateSupport,
) -> Result<ShowResponse, StoreError> {
    let name = if req.model.is_empty() {
        &req.name
    } else {
        &req.model
    };
    let m = store.resolve(name)?;
    let capabilities = capabilities(&m, templates)?;
    let system = if req.system.is_empty() {
        m.system.clone().unwrap_or_default()
    } else {
        req.system.clone()
    };
    let mut params = m.parameters.clone();
    let parameters = parameters_text(&params);
    if let Some(opts) = &req.options {
        for (k, v) in opts {
            params.insert(k.clone(), v.clone());
        }
    }
    let modelfile = render_modelfile(&m, &system, &params);

    let mut resp = ShowResponse {
        license: m.license.join("\n"),
        modelfile,
        parameters,
        template: m
            .template
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string()),
        system,
        renderer: m.config.renderer.clone(),
        parser: m.config.parser.clone(),
        details: m.details.clone(),
        messages: m
            .messages
            .iter()
            .map(|msg| ShowMessage {
                role: msg.role.clone(),
                content: msg.content.clone(),
            })
            .collect(),
        model_info: Map::new(),
        projector_info: None,
        tensors: Vec::new(),
        capabilities,
        modified_at: m.modified_at,
        requires: m.config.requires.clone(),
    };
    if let Some(path) = &m.model_path {
        let g = open_gguf(path)?;
        resp.model_info = model_info(&g, req.verbose);
        if resp.details.quantization_level.is_empty()
            || resp.details.quantization_level == "unknown"
        {
            if let Some(t) = g.get("general.file_type").and_then(|v| v.as_u64()) {
                resp.details.quantization_level = crate::create::file_type_name(t).to_string();
            }
        }
        resp.tensors = g
            .tensors()
            .iter()
            .map(|t| TensorSummary {
                name: t.name.clone(),
                kind: t.dtype.name().to_ascii_uppercase(),
                shape: t.dims.clone(),
            })
            .collect();
    }
    if let Some(path) = m.projector_paths.first() {
        resp.projector_info = Some(model_info(&open_gguf(path)?, req.verbose));
    }
    Ok(resp)
}

fn open_gguf(path: &std::path::Path) -> Result<GgufFile, StoreError> {
    GgufFile::open(path).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The model's capabilities as Ollama derives them: `embedding` when the GGUF has
/// `<arch>.pooling_type`, else `completion`; `vision` for `<arch>.vision.block_count`
/// or a projector layer; `tools`/`insert` when the template uses `.Tools`/`.Suffix`;
/// `thinking` when thinking tags are inferable (or the family is gpt-oss). Without a
/// model layer, the config's `capabilities`.
pub fn capabilities(
    m: &ResolvedModel,
    templates: &dyn TemplateSupport,
) -> Result<Vec<String>, StoreError> {
    if m.config.capabilities.iter().any(|c| c == "image") {
        return Ok(vec!["image".into()]);
    }
    let mut caps: Vec<String> = Vec::new();
    let add = |c: &str, caps: &mut Vec<String>| {
        if !caps.iter().any(|x| x == c) {
            caps.push(c.to_string());
        }
    };
    if let Some(path) = &m.model_path {
        let g = open_gguf(path)?;
        let arch = g.architecture().unwrap_or_default();
        if g.get(&format!("{arch}.pooling_type")).is_some() {
            add("embedding", &mut caps);
        } else {
            add("completion", &mut caps);
        }
        if g.get(&format!("{arch}.vision.block_count")).is_some() {
            add("vision", &mut caps);
        }
    } else {
        for c in &m.config.capabilities {
            add(c, &mut caps);
        }
    }
    let template = m.template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
    let vars = templates.vars(template);
    if vars.iter().any(|v| v == "tools") {
        add("tools", &mut caps);
    }
    if vars.iter().any(|v| v == "suffix") {
        add("insert", &mut caps);
    }
    if !m.projector_paths.is_empty() {
        add("vision", &mut caps);
    }
    let gpt_oss = matches!(m.config.model_family.as_str(), "gptoss" | "gpt-oss");
    if gpt_oss || templates.thinking_tags(template).is_some() {
        add("thinking", &mut caps);
    }
    Ok(caps)
}

/// `ollama show --modelfile`: header, then FROM (model blob), ADAPTERs, projector
/// FROMs, TEMPLATE, SYSTEM, RENDERER, PARSER, PARAMETERs (sorted by name; list
/// values one line each), LICENSEs, MESSAGEs.
pub fn render_modelfile(m: &ResolvedModel, system: &str, params: &Map<String, Value>) -> String {
    let path_str = |p: &std::path::PathBuf| p.display().to_string();
    let mut ins = Vec::new();
    ins.push(Instruction::From(
        m.model_path.as_ref().map(path_str).unwrap_or_default(),
    ));
    for a in &m.adapter_paths {
        ins.push(Instruction::Adapter(path_str(a)));
    }
    for p in &m.projector_paths {
        ins.push(Instruction::From(path_str(p)));
    }
    ins.push(Instruction::Template(
        m.template
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string()),
    ));
    if !system.is_empty() {
        ins.push(Instruction::System(system.to_string()));
    }
    if !m.config.renderer.is_empty() {
        ins.push(Instruction::Renderer(m.config.renderer.clone()));
    }
    if !m.config.parser.is_empty() {
        ins.push(Instruction::Parser(m.config.parser.clone()));
    }
    for (k, v) in params {
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            ins.push(Instruction::Parameter {
                name: k.clone(),
                value: go_value(v, false),
            });
        }
    }
    for l in &m.license {
        ins.push(Instruction::License(l.clone()));
    }
    for msg in &m.messages {
        ins.push(Instruction::Message {
            role: msg.role.clone(),
            content: msg.content.clone(),
        });
    }
    format!(
        "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\n{}",
        m.short_name(),
        Modelfile::new(ins)
    )
}

/// `parameters` of `/api/show`: `name` left-justified to 30 columns, a space, the
/// value as Go's `%#v` (strings quoted), one line per list element; sorted by name.
pub fn parameters_text(params: &Map<String, Value>) -> String {
    let mut lines = Vec::new();
    for (k, v) in params {
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            lines.push(format!("{k:<30} {}", go_value(v, true)));
        }
    }
    lines.join("\n")
}

/// Go's `%v` (or `%#v` with `sharp`) of a JSON-decoded value. Integral numbers
/// print as integers (Go would print `1e+06` for a decoded 1000000, which a
/// Modelfile cannot read back).
fn go_value(v: &Value, sharp: bool) -> String {
    match v {
        Value::String(s) if sharp => go_quote(s),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                format!("{}", f as i64)
            }
            (_, _, Some(f)) => gojson::format_go_g(f),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".to_string(),
        other => other.to_string(),
    }
}

/// GGUF metadata as `model_info`: every key but `general.name` and
/// `tokenizer.chat_template`, plus `general.parameter_count` (summed from the
/// tensors, as Ollama does). Unless `verbose`, arrays longer than 5 become `[]`.
pub fn model_info(g: &GgufFile, verbose: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in g.metadata() {
        if k == "general.name" || k == "tokenizer.chat_template" {
            continue;
        }
        let value = match v {
            GgufValue::Array(a) if !verbose && a.len() > 5 => Value::Array(Vec::new()),
            v => gguf_json(v),
        };
        out.insert(k.clone(), value);
    }
    let params = g
        .tensors()
        .iter()
        .fold(0u64, |a, t| a.saturating_add(t.n_elements()));
    out.insert("general.parameter_count".into(), Value::from(params));
    out
}

fn f32_json(x: f32) -> Value {
    // The shortest decimal of the f32 (Go encodes float32 that way): 1e-5, not 9.99e-6.
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn f64_json(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn gguf_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(x) => Value::from(*x),
        GgufValue::I8(x) => Value::from(*x),
        GgufValue::U16(x) => Value::from(*x),
        GgufValue::I16(x) => Value::from(*x),
        GgufValue::U32(x) => Value::from(*x),
        GgufValue::I32(x) => Value::from(*x),
        GgufValue::U64(x) => Value::from(*x),
        GgufValue::I64(x) => Value::from(*x),
        GgufValue::F32(x) => f32_json(*x),
        GgufValue::F64(x) => f64_json(*x),
        GgufValue::Bool(x) => Value::Bool(*x),
        GgufValue::String(s) => Value::String(s.clone()),
        GgufValue::Array(a) => array_json(a),
    }
}

fn array_json(a: &Array) -> Value {
    fn list<T>(v: &[T], f: impl Fn(&T) -> Value) -> Value {
        Value::Array(v.iter().map(f).collect())
    }
    match a {
        Array::U8(v) => list(v, |x| Value::from(*x)),
        Array::I8(v) => list(v, |x| Value::from(*x)),
        Array::U16(v) => list(v, |x| Value::from(*x)),
        Array::I16(v) => list(v, |x| Value::from(*x)),
        Array::U32(v) => list(v, |x| Value::from(*x)),
        Array::I32(v) => list(v, |x| Value::from(*x)),
        Array::U64(v) => list(v, |x| Value::from(*x)),
        Array::I64(v) => list(v, |x| Value::from(*x)),
        Array::F32(v) => list(v, |x| f32_json(*x)),
        Array::F64(v) => list(v, |x| f64_json(*x)),
        Array::Bool(v) => list(v, |x| Value::Bool(*x)),
        Array::String(v) => list(v, |x| Value::String(x.clone())),
        Array::Array(v) => list(v, array_json),
    }
}

// ---- structural template analysis ------------------------------------------

/// The template support `show`/`create` use: the real Go template engine
/// (validation, variables, Ollama's thinking-tag inference); no template detection,
/// which needs Ollama's template index.
pub use crate::store_catalog::EngineTemplates as BasicTemplates;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_and_validation() {
        let t = BasicTemplates;
        let tpl = "{{- if .System }}{{ .System }}{{ end }}{{- range $i, $m := .Messages }}{{ if eq .Role \"user\" }}{{ .Content }}{{ else if .ToolCalls }}{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}{{ end }}{{ end }}{{ if $.Tools }}x{{ end }}";
        assert_eq!(t.validate(tpl), Ok(()));
        assert_eq!(
            t.vars(tpl),
            [
                "$",
                "content",
                "function",
                "messages",
                "name",
                "role",
                "system",
                "toolcalls",
                "tools"
            ]
        );
        assert_eq!(
            t.vars("{{ range $i, $m := .Messages }}{{ $m.Content }}{{ end }}"),
            ["$m", "content", "messages"]
        );
        assert!(t.vars("{{ .Tools }}").contains(&"tools".to_string()));
        assert!(t.vars("{{ .Suffix }}").contains(&"suffix".to_string()));
        assert!(t
            .validate("{{ if .X }}")
            .unwrap_err()
            .contains("unexpected EOF"));
        assert!(t
            .validate("{{ end }}")
            .unwrap_err()
            .contains("unexpected {{end}}"));
        assert!(t
            .validate("{{ .X ")
            .unwrap_err()
            .contains("unclosed action"));
        assert!(t
            .validate("{{ foo .X }}")
            .unwrap_err()
            .contains("function \"foo\" not defined"));
        assert_eq!(t.validate("{{/* } */}}{{ \"}}\" }}{{ json .X }}"), Ok(()));
    }

    #[test]
    fn thinking_tags() {
        let t = BasicTemplates;
        let tpl = "{{- range .Messages }}{{ if eq .Role \"assistant\" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}{{ end }}";
        assert_eq!(
            t.thinking_tags(tpl),
            Some(("<think>".into(), "</think>".into()))
        );
        assert_eq!(t.thinking_tags("{{ .Thinking }}"), None);
        assert_eq!(
            t.thinking_tags("{{ range .Messages }}{{ .Content }}{{ end }}"),
            None
        );
    }

    #[test]
    fn parameter_lines() {
        let params: Map<String, Value> = serde_json::from_str(
            r#"{"stop":["<|eot_id|>","a\"b"],"temperature":0.7,"num_ctx":4096,"use_mmap":true}"#,
        )
        .unwrap();
        assert_eq!(
            parameters_text(&params),
            format!(
                "{:<30} 4096\n{:<30} \"<|eot_id|>\"\n{:<30} \"a\\\"b\"\n{:<30} 0.7\n{:<30} true",
                "num_ctx", "stop", "stop", "temperature", "use_mmap"
            )
        );
    }
}

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

/// A structural Go-template scanner: splits text and actions (honouring `{{-`/`-}}`
/// trim markers, comments and string literals), nests `if`/`range`/`with`/
/// `define`/`block` … `else` … `end`, and checks function names against Go's and
/// Ollama's built-ins. Enough for validation of common mistakes, `vars` and
/// thinking-tag inference; no template detection (that needs Ollama's template index).
#[derive(Debug, Clone, Copy, Default)]
pub struct BasicTemplates;

impl TemplateSupport for BasicTemplates {
    fn validate(&self, template: &str) -> Result<(), String> {
        scan::parse(template).map(|_| ())
    }

    fn detect(&self, _chat_template: &str) -> Option<DetectedTemplate> {
        None
    }

    fn vars(&self, template: &str) -> Vec<String> {
        let Ok(nodes) = scan::parse(template) else {
            return Vec::new();
        };
        let mut vars = Vec::new();
        scan::collect_vars(&nodes, &mut vars);
        vars.sort();
        vars.dedup();
        vars
    }

    fn thinking_tags(&self, template: &str) -> Option<(String, String)> {
        let nodes = scan::parse(template).ok()?;
        let mut tags = (String::new(), String::new());
        scan::infer_tags(&nodes, &mut Vec::new(), &mut tags);
        (!tags.0.is_empty() && !tags.1.is_empty()).then_some(tags)
    }
}

mod scan {
    //! The tree is text nodes, actions (pipeline text) and blocks.

    #[derive(Debug, Clone, PartialEq)]
    pub enum Node {
        Text(String),
        Action(String),
        Block {
            keyword: String,
            pipe: String,
            list: Vec<Node>,
            else_list: Vec<Node>,
        },
    }

    const FUNCS: &[&str] = &[
        "and",
        "or",
        "not",
        "len",
        "index",
        "slice",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "print",
        "printf",
        "println",
        "html",
        "js",
        "urlquery",
        "call",
        "json",
        "currentDate",
        "yesterdayDate",
        "toTypeScriptType",
        "toJson",
    ];

    struct Frame {
        keyword: String,
        pipe: String,
        list: Vec<Node>,
        else_list: Vec<Node>,
        in_else: bool,
        /// Opened by `else if`/`else with`: closed by its parent's `end`.
        chained: bool,
    }

    fn line_of(src: &str, at: usize) -> usize {
        src[..at].matches('\n').count() + 1
    }

    fn err(src: &str, at: usize, msg: &str) -> String {
        format!("template: :{}: {msg}", line_of(src, at))
    }

    /// Splits into text and actions and builds the tree.
    pub fn parse(src: &str) -> Result<Vec<Node>, String> {
        let mut stack: Vec<Frame> = vec![Frame {
            keyword: String::new(),
            pipe: String::new(),
            list: Vec::new(),
            else_list: Vec::new(),
            in_else: false,
            chained: false,
        }];
        let mut pos = 0;
        let mut trim_next = false;
        let push = |stack: &mut Vec<Frame>, n: Node| {
            let f = stack.last_mut().expect("root frame");
            if f.in_else {
                f.else_list.push(n)
            } else {
                f.list.push(n)
            }
        };
        while pos < src.len() {
            let open = src[pos..].find("{{").map(|i| pos + i);
            let text_end = open.unwrap_or(src.len());
            let mut text = &src[pos..text_end];
            if trim_next {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            let Some(open) = open else {
                if !text.is_empty() {
                    push(&mut stack, Node::Text(text.to_string()));
                }
                break;
            };
            let mut inner_start = open + 2;
            let trim_left = src[inner_start..].starts_with("- ")
                || src[inner_start..].starts_with("-\t")
                || src[inner_start..].starts_with("-\n")
                || src[inner_start..].starts_with("-\r");
            if trim_left {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
                inner_start += 1;
            }
            if !text.is_empty() {
                push(&mut stack, Node::Text(text.to_string()));
            }
            let close =
                find_close(src, inner_start).ok_or_else(|| err(src, open, "unclosed action"))?;
            let mut inner = &src[inner_start..close];
            trim_next = false;
            if let Some(stripped) = inner.strip_suffix('-') {
                if stripped.ends_with([' ', '\t', '\r', '\n']) {
                    inner = stripped;
                    trim_next = true;
                }
            }
            pos = close + 2;
            let action = inner.trim();
            if action.starts_with("/*") {
                if !action.ends_with("*/") {
                    return Err(err(src, open, "unclosed comment"));
                }
                continue;
            }
            if action.is_empty() {
                return Err(err(src, open, "missing value for command"));
            }
            let (word, rest) = match action.split_once(|c: char| c.is_whitespace()) {
                Some((w, r)) => (w, r.trim()),
                None => (action, ""),
            };
            match word {
                "if" | "range" | "with" | "define" | "block" => {
                    if rest.is_empty() {
                        return Err(err(src, open, &format!("missing value for {word}")));
                    }
                    check_pipe(rest).map_err(|m| err(src, open, &m))?;
                    stack.push(Frame {
                        keyword: word.to_string(),
                        pipe: rest.to_string(),
                        list: Vec::new(),
                        else_list: Vec::new(),
                        in_else: false,
                        chained: false,
                    });
                }
                "else" => {
                    let depth = stack.len();
                    let top = stack.last_mut().expect("root frame");
                    if depth == 1 || top.in_else {
                        return Err(err(src, open, "unexpected {{else}}"));
                    }
                    top.in_else = true;
                    if !rest.is_empty() {
                        let (kw, pipe) = match rest.split_once(|c: char| c.is_whitespace()) {
                            Some((k, p)) => (k, p.trim()),
                            None => (rest, ""),
                        };
                        if !matches!(kw, "if" | "with") || pipe.is_empty() {
                            return Err(err(src, open, "unexpected {{else}}"));
                        }
                        check_pipe(pipe).map_err(|m| err(src, open, &m))?;
                        stack.push(Frame {
                            keyword: kw.to_string(),
                            pipe: pipe.to_string(),
                            list: Vec::new(),
                            else_list: Vec::new(),
                            in_else: false,
                            chained: true,
                        });
                    }
                }
                "end" => loop {
                    if stack.len() == 1 {
                        return Err(err(src, open, "unexpected {{end}}"));
                    }
                    let f = stack.pop().expect("checked");
                    let chained = f.chained;
                    push(
                        &mut stack,
                        Node::Block {
                            keyword: f.keyword,
                            pipe: f.pipe,
                            list: f.list,
                            else_list: f.else_list,
                        },
                    );
                    if !chained {
                        break;
                    }
                },
                "break" | "continue" => {
                    if !stack.iter().any(|f| f.keyword == "range") {
                        return Err(err(
                            src,
                            open,
                            &format!("{{{{{word}}}}} outside {{{{range}}}}"),
                        ));
                    }
                }
                "template" => {}
                _ => {
                    check_pipe(action).map_err(|m| err(src, open, &m))?;
                    push(&mut stack, Node::Action(action.to_string()));
                }
            }
        }
        if stack.len() > 1 {
            return Err(err(src, src.len(), "unexpected EOF"));
        }
        Ok(stack.pop().expect("root frame").list)
    }

    /// The index of the `}}` closing an action that starts at `from`, skipping
    /// string/raw-string/char literals and comments.
    fn find_close(src: &str, from: usize) -> Option<usize> {
        let b = src.as_bytes();
        let mut i = from;
        while i < b.len() {
            match b[i] {
                b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
                b'"' | b'\'' => {
                    let q = b[i];
                    i += 1;
                    while i < b.len() && b[i] != q {
                        if b[i] == b'\\' {
                            i += 1;
                        }
                        if b[i.min(b.len() - 1)] == b'\n' {
                            return None;
                        }
                        i += 1;
                    }
                }
                b'`' => {
                    i += 1;
                    while i < b.len() && b[i] != b'`' {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let end = src[i + 2..].find("*/")?;
                    i += 2 + end + 1;
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// Tokens of a pipeline outside literals.
    fn tokens(pipe: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = pipe.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' | '\'' | '`' => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    let mut esc = false;
                    for d in chars.by_ref() {
                        if esc {
                            esc = false;
                        } else if d == '\\' && c != '`' {
                            esc = true;
                        } else if d == c {
                            break;
                        }
                    }
                    out.push("\"\"".into());
                }
                c if c.is_whitespace() || "()|,".contains(c) => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    if c != ' ' && !c.is_whitespace() {
                        out.push(c.to_string());
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    fn ident_start(c: char) -> bool {
        c.is_alphabetic() || c == '_'
    }

    /// Checks that words in function position are known functions.
    fn check_pipe(pipe: &str) -> Result<(), String> {
        for t in tokens(pipe) {
            let Some(c) = t.chars().next() else { continue };
            if !ident_start(c) || matches!(t.as_str(), "true" | "false" | "nil") {
                continue;
            }
            let word = t.split('.').next().unwrap_or("");
            if !FUNCS.contains(&word) {
                return Err(format!("function \"{word}\" not defined"));
            }
        }
        Ok(())
    }

    /// Field chains (`.A.B` → `["A","B"]`) in a pipeline: tokens starting with `.`
    /// (not `$x.A` variables nor `(…).A` chains, which Go parses differently).
    pub fn fields(pipe: &str) -> Vec<Vec<String>> {
        tokens(pipe)
            .into_iter()
            .filter(|t| t.len() > 1 && t.starts_with('.'))
            .filter_map(|t| {
                let parts: Vec<String> = t[1..].split('.').map(str::to_string).collect();
                parts
                    .iter()
                    .all(|p| p.chars().next().is_some_and(ident_start))
                    .then_some(parts)
            })
            .collect()
    }

    /// Identifiers Ollama's `Template.Vars` collects from a pipeline: every part of
    /// field (`.A.B`) and variable (`$.A`, `$m.B`, `$i`) references, lowercased;
    /// declared variables (left of `:=`/`=`) are not references.
    fn idents(pipe: &str) -> impl Iterator<Item = String> {
        let toks = tokens(pipe);
        let start = toks
            .iter()
            .position(|t| t == ":=" || t == "=")
            .map_or(0, |i| i + 1);
        toks.into_iter()
            .skip(start)
            .filter(|t| (t.len() > 1 && t.starts_with('.')) || t.starts_with('$'))
            .flat_map(|t| {
                let t = t.strip_prefix('.').unwrap_or(&t).to_string();
                t.split('.')
                    .filter(|p| !p.is_empty())
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            })
    }

    pub fn collect_vars(nodes: &[Node], out: &mut Vec<String>) {
        for n in nodes {
            match n {
                Node::Text(_) => {}
                Node::Action(p) => out.extend(idents(p)),
                Node::Block {
                    pipe,
                    list,
                    else_list,
                    ..
                } => {
                    out.extend(idents(pipe));
                    collect_vars(list, out);
                    collect_vars(else_list, out);
                }
            }
        }
    }

    /// Ollama's `thinking.InferTags`: for each `.Thinking` field inside a `range`
    /// over `.Messages`, the first and last text nodes (trimmed) of the list that
    /// holds it become the opening and closing tags; later matches win.
    pub fn infer_tags<'a>(
        list: &'a [Node],
        ranges: &mut Vec<&'a str>,
        tags: &mut (String, String),
    ) {
        for n in list {
            let (pipe, block) = match n {
                Node::Text(_) => continue,
                Node::Action(p) => (p.as_str(), None),
                Node::Block {
                    keyword,
                    pipe,
                    list: l,
                    else_list,
                } => (pipe.as_str(), Some((keyword, l, else_list))),
            };
            let is_range = matches!(block, Some((k, _, _)) if k == "range");
            if is_range {
                ranges.push(pipe);
            }
            let thinking = fields(pipe).iter().any(|f| f[0] == "Thinking");
            let in_messages = ranges
                .last()
                .is_some_and(|r| fields(r).iter().any(|f| f[0] == "Messages"));
            if thinking && in_messages {
                if let Some(Node::Text(t)) = list.first() {
                    tags.0 = t.trim().to_string();
                }
                if let Some(Node::Text(t)) = list.last() {
                    tags.1 = t.trim().to_string();
                }
            }
            if let Some((_, l, e)) = block {
                infer_tags(l, ranges, tags);
                infer_tags(e, ranges, tags);
            }
            if is_range {
                ranges.pop();
            }
        }
    }
}

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

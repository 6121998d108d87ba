//! Ollama's prompt rendering on top of the Go template engine (Ollama's
//! `template/template.go` and `server/prompt.go`): which variables a template sees,
//! messages mode vs legacy Prompt/Response mode vs suffix mode, message collation, the
//! cut at `.Response` for the turn being generated, image tags and history truncation.

use std::rc::Rc;

use super::go::parse::{Arg, Command};
use super::go::{
    ArgKind, GoTemplate, Limits, ListKind, MapKind, Node, Pipe, Stringer, StructBuilder, Value,
};
use super::types::{Message, Think, Tool, ToolProperties, ToolProperty};
use super::TemplateError;

/// An Ollama `TEMPLATE`: a parsed Go template plus what Ollama derives from it.
#[derive(Clone, Debug)]
pub struct Template {
    go: GoTemplate,
    /// The main body, with `{{ .Response }}` appended when the template mentions neither
    /// `.Messages` nor `.Response`.
    root: Vec<Node>,
    /// Lowercased identifiers, sorted and deduplicated (Ollama's `Vars`).
    vars: Vec<String>,
    limits: Limits,
}

/// The template of models that have none.
pub const DEFAULT_TEMPLATE: &str = "{{ .Prompt }}";

impl Template {
    /// Parses a template as `ollama create` / `template` overrides do. The error's
    /// `Display` is Go's message (`template: :1: unexpected EOF`); the HTTP layer reports
    /// it as `template error: <message>`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let go = GoTemplate::parse(source).map_err(TemplateError::from)?;
        let ids = go.identifiers().map_err(|message| TemplateError::Parse {
            message,
            line: 0,
            column: 0,
        })?;
        let mut vars: Vec<String> = ids.iter().map(|s| s.to_lowercase()).collect();
        vars.sort();
        vars.dedup();
        let mut root = go.tree.root.clone();
        if !vars.iter().any(|v| v == "messages" || v == "response") {
            let pos = source.len();
            root.push(Node::Action(Pipe {
                pos,
                end: pos,
                is_assign: false,
                decl: Vec::new(),
                cmds: vec![Command {
                    pos,
                    end: pos,
                    args: vec![Arg {
                        pos,
                        end: pos,
                        kind: ArgKind::Field(vec!["Response".into()]),
                    }],
                }],
            }));
        }
        Ok(Template {
            go,
            root,
            vars,
            limits: Limits::default(),
        })
    }

    /// `{{ .Prompt }}`, for models without a template.
    pub fn default_template() -> Template {
        match Template::parse(DEFAULT_TEMPLATE) {
            Ok(t) => t,
            Err(e) => unreachable!("the default template parses: {e}"),
        }
    }

    /// The template text as given.
    pub fn source(&self) -> &str {
        self.go.source()
    }

    /// Lowercased field/variable names the template mentions, sorted.
    pub fn vars(&self) -> &[String] {
        &self.vars
    }

    fn has_var(&self, v: &str) -> bool {
        self.vars.iter().any(|x| x == v)
    }

    /// Messages mode (the template reads `.Messages`).
    pub fn uses_messages(&self) -> bool {
        self.has_var("messages")
    }

    /// The `tools` capability: the template reads `.Tools`.
    pub fn uses_tools(&self) -> bool {
        self.has_var("tools")
    }

    /// The `insert` capability: the template reads `.Suffix`.
    pub fn uses_suffix(&self) -> bool {
        self.has_var("suffix")
    }

    /// Whether the template text contains `s` (Ollama's `Contains`).
    pub fn contains(&self, s: &str) -> bool {
        self.source().contains(s)
    }

    /// Replaces the execution limits (output size, steps, depth).
    pub fn with_limits(mut self, limits: Limits) -> Template {
        self.limits = limits;
        self
    }

    fn run(&self, root: &[Node], data: Value) -> Result<String, TemplateError> {
        self.go
            .execute_root(root, &data, &self.limits)
            .map_err(|e| TemplateError::Exec(e.message))
    }
}

/// What a template is executed with (Ollama's `template.Values`).
#[derive(Clone, Debug, Default)]
pub struct Values<'a> {
    pub messages: &'a [Message],
    pub tools: &'a [Tool],
    pub prompt: &'a str,
    pub suffix: &'a str,
    pub think: Option<&'a Think>,
}

fn think_vars(think: Option<&Think>) -> [(String, Value); 3] {
    let (on, level) = match think {
        Some(t) => (t.enabled(), t.level().to_string()),
        None => (false, String::new()),
    };
    [
        ("Think".into(), Value::Bool(on)),
        ("ThinkLevel".into(), Value::str(&level)),
        ("IsThinkSet".into(), Value::Bool(think.is_some())),
    ]
}

fn data(mut entries: Vec<(String, Value)>, think: Option<&Think>) -> Value {
    entries.extend(think_vars(think));
    Value::map(MapKind::Map, entries, Stringer::None)
}

/// Merges consecutive messages of the same role (except `tool`) with a blank line and
/// collects all system contents (Ollama's `collate`).
pub fn collate(messages: &[Message]) -> (String, Vec<Message>) {
    let mut system: Vec<&str> = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    for m in messages {
        if m.role == "system" {
            system.push(&m.content);
        }
        match out.last_mut() {
            Some(last) if last.role == m.role && m.role != "tool" => {
                last.content.push_str("\n\n");
                last.content.push_str(&m.content);
            }
            _ => out.push(m.clone()),
        }
    }
    (system.join("\n\n"), out)
}

/// Executes an Ollama template (Ollama's `Template.Execute`):
/// - suffix mode (non-empty prompt and suffix): once with `Prompt`, `Suffix`;
/// - messages mode (the template reads `.Messages`): once with the collated messages;
/// - legacy mode: one Prompt/Response execution per completed turn, then the open turn
///   with the template cut after its first `.Response`.
pub fn execute(tmpl: &Template, v: &Values) -> Result<String, TemplateError> {
    let (system, messages) = collate(v.messages);
    if !v.prompt.is_empty() && !v.suffix.is_empty() {
        let d = data(
            vec![
                ("Prompt".into(), Value::str(v.prompt)),
                ("Suffix".into(), Value::str(v.suffix)),
                ("Response".into(), Value::str("")),
            ],
            v.think,
        );
        return tmpl.run(&tmpl.root, d);
    }
    if tmpl.uses_messages() {
        let d = data(
            vec![
                ("System".into(), Value::str(&system)),
                ("Messages".into(), messages_value(&messages)),
                ("Tools".into(), tools_value(v.tools)),
                ("Response".into(), Value::str("")),
            ],
            v.think,
        );
        return tmpl.run(&tmpl.root, d);
    }

    let mut out = String::new();
    let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
    let turn = |s: &str, p: &str, r: &str| {
        data(
            vec![
                ("System".into(), Value::str(s)),
                ("Prompt".into(), Value::str(p)),
                ("Response".into(), Value::str(r)),
            ],
            v.think,
        )
    };
    for m in &messages {
        let flush = match m.role.as_str() {
            "system" => !prompt.is_empty() || !response.is_empty(),
            "user" => !response.is_empty(),
            _ => false,
        };
        if flush {
            out.push_str(&tmpl.run(&tmpl.root, turn(&system, &prompt, &response))?);
            system.clear();
            prompt.clear();
            response.clear();
        }
        match m.role.as_str() {
            "system" => system = m.content.clone(),
            "user" => prompt = m.content.clone(),
            "assistant" => response = m.content.clone(),
            _ => {}
        }
    }
    let cut = cut_after_response(&tmpl.root);
    out.push_str(&tmpl.run(&cut, turn(&system, &prompt, &response))?);
    if out.len() > tmpl.limits.max_output {
        return Err(TemplateError::Exec(format!(
            "template output exceeded the limit of {} bytes",
            tmpl.limits.max_output
        )));
    }
    Ok(out)
}

/// Ollama's `deleteNode` walk: keeps everything up to and including the first `.Response`
/// field in an action, drops what follows (an `{{else}}` branch after the cut is dropped
/// too).
fn cut_after_response(root: &[Node]) -> Vec<Node> {
    let mut cut = false;
    cut_list(root, &mut cut)
}

fn cut_list(list: &[Node], cut: &mut bool) -> Vec<Node> {
    list.iter().filter_map(|n| cut_node(n, cut)).collect()
}

fn cut_node(n: &Node, cut: &mut bool) -> Option<Node> {
    if *cut {
        return None;
    }
    match n {
        Node::Action(p) => cut_pipe(p, cut).map(Node::Action),
        Node::If(b) | Node::With(b) | Node::Range(b) => {
            let mut b2 = (**b).clone();
            b2.list = cut_list(&b.list, cut);
            b2.else_list = match (&b.else_list, *cut) {
                (Some(e), false) => Some(cut_list(e, cut)),
                _ => None,
            };
            let b2 = Box::new(b2);
            Some(match n {
                Node::If(_) => Node::If(b2),
                Node::With(_) => Node::With(b2),
                _ => Node::Range(b2),
            })
        }
        other => Some(other.clone()),
    }
}

fn cut_pipe(p: &Pipe, cut: &mut bool) -> Option<Pipe> {
    if *cut {
        return None;
    }
    let mut cmds = Vec::new();
    for c in &p.cmds {
        let mut args = Vec::new();
        for a in &c.args {
            if let Some(a) = cut_arg(a, cut) {
                args.push(a);
            }
        }
        if args.is_empty() {
            return None;
        }
        cmds.push(Command { args, ..c.clone() });
    }
    if cmds.is_empty() {
        return None;
    }
    Some(Pipe { cmds, ..p.clone() })
}

fn cut_arg(a: &Arg, cut: &mut bool) -> Option<Arg> {
    if let ArgKind::Field(idents) = &a.kind {
        if idents.iter().any(|i| i == "Response") {
            *cut = true;
            return Some(a.clone());
        }
    }
    if *cut {
        return None;
    }
    match &a.kind {
        ArgKind::Pipe(p) => cut_pipe(p, cut).map(|p| Arg {
            kind: ArgKind::Pipe(Box::new(p)),
            ..a.clone()
        }),
        _ => Some(a.clone()),
    }
}

fn str_list(items: &[String]) -> Value {
    Value::list_of(
        items.iter().map(|s| Value::str(s)).collect(),
        ListKind::Plain,
        items.is_empty(),
    )
}

fn json_or_nil(v: &Option<serde_json::Value>) -> Value {
    v.as_ref().map_or(Value::Nil, Value::from_json)
}

/// Ollama's `templateMessage` (a pointer to a struct without JSON tags).
fn messages_value(messages: &[Message]) -> Value {
    let items = messages
        .iter()
        .map(|m| {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|tc| {
                    let args = Value::map(
                        MapKind::Map,
                        tc.function
                            .arguments
                            .0
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::from_json(v)))
                            .collect(),
                        Stringer::JsonOrEmptyObject,
                    );
                    StructBuilder::new("template.templateToolCall")
                        .field("ID", Value::str(&tc.id))
                        .field(
                            "Function",
                            StructBuilder::new("template.templateToolCallFunction")
                                .field("Index", Value::Int(tc.function.index))
                                .field("Name", Value::str(&tc.function.name))
                                .field("Arguments", args)
                                .build(),
                        )
                        .build()
                })
                .collect();
            let no_calls = calls.is_empty();
            StructBuilder::new("*template.templateMessage")
                .field("Role", Value::str(&m.role))
                .field("Content", Value::str(&m.content))
                .field("Thinking", Value::str(&m.thinking))
                .field("Images", str_list(&m.images))
                .field(
                    "ToolCalls",
                    Value::list_of(calls, ListKind::Plain, no_calls),
                )
                .field("ToolName", Value::str(&m.tool_name))
                .field("ToolCallID", Value::str(&m.tool_call_id))
                .build()
        })
        .collect();
    Value::list_of(items, ListKind::Plain, messages.is_empty())
}

/// Ollama's `templateTools`: prints as its JSON.
fn tools_value(tools: &[Tool]) -> Value {
    let items = tools
        .iter()
        .map(|t| {
            let p = &t.function.parameters;
            let props = match &p.properties {
                Some(props) => properties_value(props, MapKind::Map, Stringer::JsonOrEmptyObject),
                None => nil_map(Stringer::JsonOrEmptyObject),
            };
            let params = StructBuilder::new("template.templateToolFunctionParameters")
                .json_field("Type", "type", false, Value::str(&p.kind))
                .json_field("Defs", "$defs", true, json_or_nil(&p.defs))
                .json_field("Items", "items", true, json_or_nil(&p.items))
                .json_field("Required", "required", true, str_list(&p.required))
                .json_field("Properties", "properties", false, props)
                .stringer(Stringer::Json)
                .build();
            let function = StructBuilder::new("template.templateToolFunction")
                .json_field("Name", "name", false, Value::str(&t.function.name))
                .json_field(
                    "Description",
                    "description",
                    false,
                    Value::str(&t.function.description),
                )
                .json_field("Parameters", "parameters", false, params)
                .stringer(Stringer::Json)
                .build();
            StructBuilder::new("template.templateTool")
                .json_field("Type", "type", false, Value::str(&t.kind))
                .json_field("Items", "items", true, json_or_nil(&t.items))
                .json_field("Function", "function", false, function)
                .stringer(Stringer::Json)
                .build()
        })
        .collect();
    Value::list_of(items, ListKind::Json, tools.is_empty())
}

fn nil_map(stringer: Stringer) -> Value {
    Value::Map(Rc::new(super::go::Map {
        kind: MapKind::Map,
        entries: Vec::new(),
        stringer,
        type_name: "template.templateProperties",
        nil: true,
        pointer: false,
    }))
}

/// Top-level properties are a Go map (ranged and marshalled in key order); nested ones
/// keep the client's order.
fn properties_value(props: &ToolProperties, kind: MapKind, stringer: Stringer) -> Value {
    Value::map(
        kind,
        props
            .0
            .iter()
            .map(|(k, v)| (k.clone(), property_value(v)))
            .collect(),
        stringer,
    )
}

/// Ollama's `api.ToolProperty`.
fn property_value(p: &ToolProperty) -> Value {
    let any_of: Vec<Value> = p.any_of.iter().map(property_value).collect();
    let no_any_of = any_of.is_empty();
    let kind = Value::list_of(
        p.kind.0.iter().map(|s| Value::str(s)).collect(),
        ListKind::PropertyType,
        p.kind.0.is_empty(),
    );
    let enum_values = Value::list_of(
        p.enum_values.iter().map(Value::from_json).collect(),
        ListKind::Plain,
        p.enum_values.is_empty(),
    );
    let props = match &p.properties {
        Some(ps) => properties_value(ps, MapKind::Ordered, Stringer::Json),
        None => Value::Nil,
    };
    StructBuilder::new("api.ToolProperty")
        .json_field(
            "AnyOf",
            "anyOf",
            true,
            Value::list_of(any_of, ListKind::Plain, no_any_of),
        )
        .json_field("Type", "type", true, kind)
        .json_field("Items", "items", true, json_or_nil(&p.items))
        .json_field(
            "Description",
            "description",
            true,
            Value::str(&p.description),
        )
        .json_field("Enum", "enum", true, enum_values)
        .json_field("Properties", "properties", true, props)
        .json_field("Required", "required", true, str_list(&p.required))
        .build()
}

/// Prefixes `[img-N]` tags (or fills `[img]` placeholders) for each message's images,
/// numbering from `first_id`. Returns the next id.
pub fn tag_images(messages: &mut [Message], first_id: usize) -> usize {
    let mut id = first_id;
    for m in messages.iter_mut() {
        let mut prefix = String::new();
        let mut content = std::mem::take(&mut m.content);
        for _ in &m.images {
            let tag = format!("[img-{id}]");
            id += 1;
            if content.contains("[img]") {
                content = content.replacen("[img]", &tag, 1);
            } else {
                prefix.push_str(&tag);
            }
        }
        m.content = prefix + &content;
    }
    id
}

/// The message list `/api/chat` renders: the model's MESSAGE history, then the request's
/// messages, with the model's SYSTEM in front unless the request starts with a system
/// message.
pub fn chat_messages(model_system: &str, history: &[Message], request: &[Message]) -> Vec<Message> {
    let mut out = Vec::with_capacity(history.len() + request.len() + 1);
    let starts_with_system = request.first().is_some_and(|m| m.role == "system");
    if !starts_with_system && !model_system.is_empty() {
        out.push(Message::new("system", model_system));
    }
    out.extend_from_slice(history);
    out.extend_from_slice(request);
    out
}

/// Renders a chat prompt (`/api/chat`): image tags, then [`execute`] in messages or
/// legacy mode. `messages` is the full list (see [`chat_messages`]).
pub fn render_chat(
    tmpl: &Template,
    messages: &[Message],
    tools: &[Tool],
    think: Option<&Think>,
) -> Result<String, TemplateError> {
    let mut msgs = messages.to_vec();
    tag_images(&mut msgs, 0);
    execute(
        tmpl,
        &Values {
            messages: &msgs,
            tools,
            think,
            ..Values::default()
        },
    )
}

/// Where a tool-result block starts: tool messages directly after the assistant message
/// that called them are never separated from it.
fn tool_block_start(msgs: &[Message], idx: usize) -> usize {
    if idx == 0 || idx >= msgs.len() || msgs[idx].role != "tool" {
        return idx;
    }
    let mut start = idx;
    while start > 0 && msgs[start - 1].role == "tool" {
        start -= 1;
    }
    if start > 0 && msgs[start - 1].role == "assistant" && !msgs[start - 1].tool_calls.is_empty() {
        return start - 1;
    }
    idx
}

/// The result of [`render_chat_truncated`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatPrompt {
    pub prompt: String,
    /// How many messages were left out to fit the context (system messages are kept).
    pub dropped: usize,
    /// Images in the kept messages, in `[img-N]` order (base64).
    pub images: Vec<String>,
}

/// Ollama's `chatPrompt`: drops the oldest messages (keeping every system message and at
/// least the latest message, and never splitting a tool-call turn from its results)
/// until the rendered prompt's token count plus `image_tokens` per image fits `num_ctx`,
/// then renders. `count_tokens` tokenises a candidate prompt.
pub fn render_chat_truncated<E>(
    tmpl: &Template,
    messages: &[Message],
    tools: &[Tool],
    think: Option<&Think>,
    num_ctx: usize,
    image_tokens: Option<usize>,
    mut count_tokens: impl FnMut(&str) -> Result<usize, E>,
) -> Result<Result<ChatPrompt, TemplateError>, E> {
    let mut current = 0;
    let mut system: Vec<Message> = Vec::new();
    let last = messages.len().saturating_sub(1);
    for i in 0..messages.len() {
        let start = tool_block_start(messages, i);
        system = messages[..start]
            .iter()
            .filter(|m| m.role == "system")
            .cloned()
            .collect();
        let mut candidate = system.clone();
        candidate.extend_from_slice(&messages[start..]);
        let p = match execute(
            tmpl,
            &Values {
                messages: &candidate,
                tools,
                think,
                ..Values::default()
            },
        ) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let mut n = count_tokens(&p)?;
        if let Some(per) = image_tokens {
            n += messages[start..]
                .iter()
                .map(|m| m.images.len() * per)
                .sum::<usize>();
        }
        if n <= num_ctx || i == last {
            current = start;
            break;
        }
    }
    let mut kept = system;
    let first_kept = kept.len();
    kept.extend_from_slice(&messages[current..]);
    let images: Vec<String> = kept[first_kept..]
        .iter()
        .flat_map(|m| m.images.iter().cloned())
        .collect();
    tag_images(&mut kept[first_kept..], 0);
    Ok(execute(
        tmpl,
        &Values {
            messages: &kept,
            tools,
            think,
            ..Values::default()
        },
    )
    .map(|prompt| ChatPrompt {
        prompt,
        dropped: current - first_kept,
        images,
    }))
}

/// A `/api/generate` request's prompt inputs.
#[derive(Clone, Debug, Default)]
pub struct GenerateInput<'a> {
    pub prompt: &'a str,
    pub suffix: &'a str,
    /// The request's `system`, or "" for the model's.
    pub system: &'a str,
    /// The model's SYSTEM.
    pub model_system: &'a str,
    /// The model's MESSAGE history (left out when the request carries `context`).
    pub history: &'a [Message],
    pub has_context: bool,
    /// Base64 images of the request.
    pub images: &'a [String],
    pub think: Option<&'a Think>,
    /// `raw`: the prompt is used as is.
    pub raw: bool,
}

/// Renders a `/api/generate` prompt: raw → the prompt; with a suffix → suffix mode;
/// otherwise system (request's, else model's) + history + the user prompt with its
/// images, through [`execute`]. (A deprecated `context` is detokenised and prepended by
/// the caller.)
pub fn render_generate(tmpl: &Template, req: &GenerateInput) -> Result<String, TemplateError> {
    if req.raw {
        return Ok(req.prompt.to_string());
    }
    if !req.suffix.is_empty() {
        return execute(
            tmpl,
            &Values {
                prompt: req.prompt,
                suffix: req.suffix,
                think: req.think,
                ..Values::default()
            },
        );
    }
    let mut msgs = Vec::new();
    if !req.system.is_empty() {
        msgs.push(Message::new("system", req.system));
    } else if !req.model_system.is_empty() {
        msgs.push(Message::new("system", req.model_system));
    }
    if !req.has_context {
        msgs.extend_from_slice(req.history);
    }
    let mut user = Message::new("user", req.prompt);
    user.images = req.images.to_vec();
    msgs.push(user);
    tag_images(&mut msgs, 0);
    execute(
        tmpl,
        &Values {
            messages: &msgs,
            think: req.think,
            ..Values::default()
        },
    )
}

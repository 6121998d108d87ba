//! Hugging Face style Jinja chat templates (a GGUF's `tokenizer.chat_template`, or a
//! built-in one for families whose files have none), rendered with MiniJinja the way
//! `transformers` renders them: `trim_blocks` + `lstrip_blocks`, loop controls, Python
//! string/dict methods, `raise_exception`, `strftime_now`, a `tojson` that matches
//! Python's `json.dumps`. Rendering is bounded (fuel, recursion, output size).

use std::io;
use std::path::Path;

use engine::gguf::GgufFile;
use minijinja::value::{Kwargs, Value as MjValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use super::go::funcs_civil_from_days;
use super::types::{Message, Tool, ToolProperties, ToolProperty};
use super::TemplateError;

/// The GGUF key holding the chat template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

const GEMMA3: &str = include_str!("builtin/gemma3.jinja");

/// Limits for one Jinja render.
#[derive(Clone, Debug)]
pub struct JinjaLimits {
    /// MiniJinja fuel (roughly instructions; also bounds memory, ~64 bytes per unit).
    pub fuel: u64,
    pub max_output: usize,
    pub recursion: usize,
}

impl Default for JinjaLimits {
    fn default() -> JinjaLimits {
        JinjaLimits {
            fuel: 5_000_000,
            max_output: 16 << 20,
            recursion: 100,
        }
    }
}

/// A Jinja chat template with the special tokens it may reference.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
    builtin: bool,
    limits: JinjaLimits,
}

/// Variables beyond the messages that a render may set.
#[derive(Clone, Debug, Default)]
pub struct JinjaOptions<'a> {
    pub tools: &'a [Tool],
    pub add_generation_prompt: bool,
    /// Extra template variables (e.g. `enable_thinking`), as JSON.
    pub extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl ChatTemplate {
    /// Compiles `source` (to report syntax errors now rather than at render time).
    pub fn new(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, TemplateError> {
        let t = ChatTemplate {
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            builtin: false,
            limits: JinjaLimits::default(),
        };
        let env = t.environment();
        env.template_from_str(&t.source)
            .map_err(|e| TemplateError::Jinja(describe(&e)))?;
        Ok(t)
    }

    /// The built-in template for a GGUF architecture whose files carry none.
    pub fn builtin(architecture: &str, bos_token: &str, eos_token: &str) -> Option<ChatTemplate> {
        let source = match architecture {
            "gemma3" | "gemma3_text" => GEMMA3,
            _ => return None,
        };
        Some(ChatTemplate {
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            builtin: true,
            limits: JinjaLimits::default(),
        })
    }

    /// The GGUF's own `tokenizer.chat_template`, else the built-in one for its
    /// architecture, else `None`. BOS/EOS texts come from the GGUF's vocabulary.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Option<ChatTemplate>, TemplateError> {
        let token = |key: &str| -> Result<String, TemplateError> {
            let id = gguf
                .get_usize_opt(key)
                .map_err(|e| TemplateError::Gguf(e.to_string()))?;
            let tokens = gguf
                .get_str_array_opt("tokenizer.ggml.tokens")
                .map_err(|e| TemplateError::Gguf(e.to_string()))?;
            Ok(match (id, tokens) {
                (Some(id), Some(t)) => t.get(id).cloned().unwrap_or_default(),
                _ => String::new(),
            })
        };
        let bos = token("tokenizer.ggml.bos_token_id")?;
        let eos = token("tokenizer.ggml.eos_token_id")?;
        let own = gguf
            .get_str_opt(CHAT_TEMPLATE_KEY)
            .map_err(|e| TemplateError::Gguf(e.to_string()))?;
        if let Some(src) = own {
            return ChatTemplate::new(src, &bos, &eos).map(Some);
        }
        let arch = gguf
            .architecture()
            .map_err(|e| TemplateError::Gguf(e.to_string()))?;
        Ok(ChatTemplate::builtin(arch, &bos, &eos))
    }

    /// [`ChatTemplate::from_gguf`] on a file path.
    pub fn from_gguf_path(path: &Path) -> Result<Option<ChatTemplate>, TemplateError> {
        let gguf = GgufFile::open(path).map_err(|e| TemplateError::Gguf(e.to_string()))?;
        ChatTemplate::from_gguf(&gguf)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Whether this is ferrite's built-in template rather than the file's own.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    /// The `tools` capability: the template mentions tools.
    pub fn uses_tools(&self) -> bool {
        self.source.contains("tools") || self.source.contains("tool_call")
    }

    pub fn with_limits(mut self, limits: JinjaLimits) -> ChatTemplate {
        self.limits = limits;
        self
    }

    fn environment(&self) -> Environment<'_> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .unwrap_or_default(),
        );
        env.set_fuel(Some(self.limits.fuel));
        env.set_recursion_limit(self.limits.recursion);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_global("bos_token", self.bos_token.clone());
        env.add_global("eos_token", self.eos_token.clone());
        env
    }

    /// Renders `messages` (HF format: role, content, tool_calls, tool_call_id, name).
    pub fn render(
        &self,
        messages: &[Message],
        opts: &JinjaOptions,
    ) -> Result<String, TemplateError> {
        let env = self.environment();
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| TemplateError::Jinja(describe(&e)))?;
        let mut ctx: Vec<(String, MjValue)> = Vec::new();
        if let Some(extra) = opts.extra {
            for (k, v) in extra {
                ctx.push((k.clone(), json_to_value(v)));
            }
        }
        ctx.push((
            "messages".into(),
            MjValue::from(messages.iter().map(message_value).collect::<Vec<_>>()),
        ));
        let tools = if opts.tools.is_empty() {
            MjValue::from(())
        } else {
            MjValue::from(opts.tools.iter().map(tool_value).collect::<Vec<_>>())
        };
        ctx.push(("tools".into(), tools));
        ctx.push((
            "add_generation_prompt".into(),
            MjValue::from(opts.add_generation_prompt),
        ));
        let mut w = LimitedWriter {
            buf: Vec::new(),
            limit: self.limits.max_output,
        };
        tmpl.render_captured_to(MjValue::from_pairs(ctx), &mut w)
            .map_err(|e| TemplateError::Jinja(describe(&e)))?;
        String::from_utf8(w.buf)
            .map_err(|_| TemplateError::Jinja("template produced invalid UTF-8".into()))
    }
}

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

struct LimitedWriter {
    buf: Vec<u8>,
    limit: usize,
}

impl io::Write for LimitedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(io::Error::other(format!(
                "template output exceeded the limit of {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A message as HF templates expect it: keys present only when set.
fn message_value(m: &Message) -> MjValue {
    let mut pairs: Vec<(&str, MjValue)> = vec![
        ("role", MjValue::from(m.role.as_str())),
        ("content", MjValue::from(m.content.as_str())),
    ];
    if !m.thinking.is_empty() {
        pairs.push(("reasoning_content", MjValue::from(m.thinking.as_str())));
    }
    if !m.tool_calls.is_empty() {
        let calls: Vec<MjValue> = m
            .tool_calls
            .iter()
            .map(|tc| {
                let mut c: Vec<(&str, MjValue)> = Vec::new();
                if !tc.id.is_empty() {
                    c.push(("id", MjValue::from(tc.id.as_str())));
                }
                c.push(("type", MjValue::from("function")));
                let args = MjValue::from_pairs(
                    tc.function
                        .arguments
                        .0
                        .iter()
                        .map(|(k, v)| (k.as_str(), json_to_value(v)))
                        .collect::<Vec<_>>(),
                );
                c.push((
                    "function",
                    MjValue::from_pairs(vec![
                        ("name", MjValue::from(tc.function.name.as_str())),
                        ("arguments", args),
                    ]),
                ));
                MjValue::from_pairs(c)
            })
            .collect();
        pairs.push(("tool_calls", MjValue::from(calls)));
    }
    if !m.tool_name.is_empty() {
        pairs.push(("name", MjValue::from(m.tool_name.as_str())));
    }
    if !m.tool_call_id.is_empty() {
        pairs.push(("tool_call_id", MjValue::from(m.tool_call_id.as_str())));
    }
    MjValue::from_pairs(pairs)
}

/// A tool as the client sent it (the key order of ferrite's serialization), built
/// directly: a detour through `serde_json::Value` would sort the keys.
fn tool_value(t: &Tool) -> MjValue {
    let p = &t.function.parameters;
    let mut params: Vec<(&str, MjValue)> = vec![("type", MjValue::from(p.kind.as_str()))];
    if let Some(d) = &p.defs {
        params.push(("$defs", json_to_value(d)));
    }
    if let Some(i) = &p.items {
        params.push(("items", json_to_value(i)));
    }
    if let Some(props) = &p.properties {
        params.push(("properties", properties_value(props)));
    }
    if !p.required.is_empty() {
        params.push(("required", strings_value(&p.required)));
    }
    let mut function: Vec<(&str, MjValue)> =
        vec![("name", MjValue::from(t.function.name.as_str()))];
    if !t.function.description.is_empty() {
        function.push((
            "description",
            MjValue::from(t.function.description.as_str()),
        ));
    }
    function.push(("parameters", MjValue::from_pairs(params)));
    let mut tool: Vec<(&str, MjValue)> = vec![("type", MjValue::from(t.kind.as_str()))];
    if let Some(i) = &t.items {
        tool.push(("items", json_to_value(i)));
    }
    tool.push(("function", MjValue::from_pairs(function)));
    MjValue::from_pairs(tool)
}

fn strings_value(v: &[String]) -> MjValue {
    MjValue::from(
        v.iter()
            .map(|s| MjValue::from(s.as_str()))
            .collect::<Vec<_>>(),
    )
}

fn properties_value(props: &ToolProperties) -> MjValue {
    MjValue::from_pairs(
        props
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), property_value(v)))
            .collect::<Vec<_>>(),
    )
}

fn property_value(p: &ToolProperty) -> MjValue {
    let mut out: Vec<(&str, MjValue)> = Vec::new();
    if !p.any_of.is_empty() {
        out.push((
            "anyOf",
            MjValue::from(p.any_of.iter().map(property_value).collect::<Vec<_>>()),
        ));
    }
    match p.kind.0.as_slice() {
        [] => {}
        [one] => out.push(("type", MjValue::from(one.as_str()))),
        many => out.push(("type", strings_value(many))),
    }
    if let Some(i) = &p.items {
        out.push(("items", json_to_value(i)));
    }
    if !p.description.is_empty() {
        out.push(("description", MjValue::from(p.description.as_str())));
    }
    if !p.enum_values.is_empty() {
        out.push((
            "enum",
            MjValue::from(p.enum_values.iter().map(json_to_value).collect::<Vec<_>>()),
        ));
    }
    if let Some(ps) = &p.properties {
        out.push(("properties", properties_value(ps)));
    }
    if !p.required.is_empty() {
        out.push(("required", strings_value(&p.required)));
    }
    MjValue::from_pairs(out)
}

fn json_to_value(v: &serde_json::Value) -> MjValue {
    match v {
        serde_json::Value::Null => MjValue::from(()),
        serde_json::Value::Bool(b) => MjValue::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                MjValue::from(i)
            } else if let Some(u) = n.as_u64() {
                MjValue::from(u)
            } else {
                MjValue::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => MjValue::from(s.as_str()),
        serde_json::Value::Array(a) => {
            MjValue::from(a.iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(o) => MjValue::from_pairs(
            o.iter()
                .map(|(k, v)| (k.as_str(), json_to_value(v)))
                .collect::<Vec<_>>(),
        ),
    }
}

fn raise_exception(msg: String) -> Result<MjValue, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Python's `datetime.now().strftime(fmt)` for the common directives, in UTC.
fn strftime_now(fmt: String) -> Result<MjValue, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(MjValue::from(strftime(&fmt, secs)))
}

pub(crate) fn strftime(fmt: &str, secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = funcs_civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let wd = (days + 3).rem_euclid(7) as usize;
    let yday = days - {
        let (mut lo, mut hi) = (days - 366, days);
        // The first day of the year: the largest day <= days whose date is (y, 1, 1).
        while lo < hi {
            let mid = (lo + hi) / 2;
            if funcs_civil_from_days(mid).0 < y {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    } + 1;
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut no_pad = false;
        if it.peek() == Some(&'-') {
            no_pad = true;
            it.next();
        }
        let Some(dch) = it.next() else {
            out.push('%');
            break;
        };
        let num = |v: i64, w: usize| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:0w$}")
            }
        };
        match dch {
            'Y' => out.push_str(&y.to_string()),
            'y' => out.push_str(&num(y.rem_euclid(100), 2)),
            'm' => out.push_str(&num(i64::from(m), 2)),
            'd' => out.push_str(&num(i64::from(d), 2)),
            'e' => out.push_str(&format!("{d:2}")),
            'H' => out.push_str(&num(hh, 2)),
            'I' => out.push_str(&num(if hh % 12 == 0 { 12 } else { hh % 12 }, 2)),
            'M' => out.push_str(&num(mm, 2)),
            'S' => out.push_str(&num(ss, 2)),
            'p' => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            'j' => out.push_str(&num(yday, 3)),
            'B' => out.push_str(MONTHS[(m - 1) as usize]),
            'b' | 'h' => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            'A' => out.push_str(DAYS[wd]),
            'a' => out.push_str(&DAYS[wd][..3]),
            'u' => out.push_str(&(wd + 1).to_string()),
            'w' => out.push_str(&((wd + 1) % 7).to_string()),
            'F' => out.push_str(&format!("{y:04}-{m:02}-{d:02}")),
            'T' => out.push_str(&format!("{hh:02}:{mm:02}:{ss:02}")),
            'Z' => {}
            'z' => {}
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

/// `transformers`' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(v: MjValue, kwargs: Kwargs) -> Result<MjValue, Error> {
    let indent: Option<MjValue> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<MjValue> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(i) if i.is_none() => None,
        Some(i) => match i.as_str() {
            Some(s) => Some(s.to_string()),
            None => Some(
                " ".repeat(
                    i.as_usize()
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::InvalidOperation,
                                "indent must be an integer or string",
                            )
                        })?
                        .min(64),
                ),
            ),
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(s) if !s.is_none() => {
            let a = s.get_item_by_index(0)?;
            let b = s.get_item_by_index(1)?;
            (
                a.as_str().unwrap_or(",").to_string(),
                b.as_str().unwrap_or(":").to_string(),
            )
        }
        _ => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
    };
    let opts = Dumps {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    dumps(&v, &opts, 0, &mut out)?;
    Ok(MjValue::from_safe_string(out))
}

struct Dumps {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn py_string(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent form: 1e+16, 1e-05.
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn dumps(v: &MjValue, o: &Dumps, level: usize, out: &mut String) -> Result<(), Error> {
    if level > 100 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = &o.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(0.0);
                out.push_str(&py_float(f));
            }
        }
        ValueKind::String => py_string(v.as_str().unwrap_or(""), o.ensure_ascii, out),
        ValueKind::Map => {
            let mut keys: Vec<MjValue> = v.try_iter()?.collect();
            if o.sort_keys {
                keys.sort_by_key(|a| a.to_string());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, level + 1);
                let ks = match k.as_str() {
                    Some(s) => s.to_string(),
                    None => k.to_string(),
                };
                py_string(&ks, o.ensure_ascii, out);
                out.push_str(&o.key_sep);
                dumps(&v.get_item(k)?, o, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<MjValue> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, level + 1);
                dumps(item, o, level + 1, out)?;
            }
            newline(out, level);
            out.push(']');
        }
        _ => py_string(&v.to_string(), o.ensure_ascii, out),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_directives() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2024-02-29 13:05:09");
        assert_eq!(strftime("%d %b %Y", t), "29 Feb 2024");
        assert_eq!(
            strftime("%A %B %-d %j %I%p %%", t),
            "Thursday February 29 060 01PM %"
        );
    }

    #[test]
    fn python_floats() {
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.5), "0.5");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(123.25), "123.25");
    }
}

//! Tool calls in streamed chat output, for requests that supplied `tools`.
//!
//! Two shapes are recognised, as Ollama's parser does for the common templates:
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks anywhere in the output
//! (Qwen, Hermes), and output that is nothing but a JSON call object or array (llama 3.x).
//! Only calls to functions the request offered are accepted; anything else stays text.

use crate::api::{JsonObject, ToolCall, ToolCallFunction};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Start,
    Text,
    InTag,
    Json,
}

#[derive(Debug, Clone)]
pub struct ToolParser {
    names: Vec<String>,
    mode: Mode,
    buf: String,
    index: i64,
}

/// What a piece of output turned into.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub content: String,
    pub calls: Vec<ToolCall>,
}

impl ToolParser {
    /// `tools`: the request's tool definitions (`{"type":"function","function":{"name":…}}`).
    pub fn new(tools: &[Box<RawValue>]) -> ToolParser {
        let names = tools
            .iter()
            .filter_map(|t| serde_json::from_str::<Value>(t.get()).ok())
            .filter_map(|t| {
                t.get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        ToolParser {
            names,
            mode: Mode::Start,
            buf: String::new(),
            index: 0,
        }
    }

    pub fn push(&mut self, text: &str) -> Parsed {
        self.buf.push_str(text);
        let mut out = Parsed::default();
        loop {
            match self.mode {
                Mode::Start => {
                    let t = self.buf.trim_start();
                    if t.is_empty() {
                        return out;
                    }
                    self.mode = if t.starts_with('{') || t.starts_with('[') {
                        Mode::Json
                    } else {
                        Mode::Text
                    };
                }
                Mode::Text => {
                    if let Some(pos) = self.buf.find(OPEN) {
                        out.content.push_str(&self.buf[..pos]);
                        self.buf.drain(..pos + OPEN.len());
                        self.mode = Mode::InTag;
                        continue;
                    }
                    let keep = partial_suffix(&self.buf, OPEN);
                    let cut = self.buf.len() - keep;
                    out.content.push_str(&self.buf[..cut]);
                    self.buf.drain(..cut);
                    return out;
                }
                Mode::InTag => {
                    let Some(pos) = self.buf.find(CLOSE) else {
                        return out;
                    };
                    let inner: String = self.buf[..pos].to_string();
                    self.buf.drain(..pos + CLOSE.len());
                    match self.calls_from(inner.trim()) {
                        Some(calls) => out.calls.extend(calls),
                        None => {
                            out.content.push_str(OPEN);
                            out.content.push_str(&inner);
                            out.content.push_str(CLOSE);
                        }
                    }
                    self.mode = Mode::Text;
                }
                Mode::Json => return out,
            }
        }
    }

    pub fn finish(&mut self) -> Parsed {
        let rest = std::mem::take(&mut self.buf);
        let mut out = Parsed::default();
        match self.mode {
            Mode::Start | Mode::Text => out.content = rest,
            Mode::InTag => match self.calls_from(rest.trim()) {
                Some(calls) => out.calls = calls,
                None => out.content = format!("{OPEN}{rest}"),
            },
            Mode::Json => match self.calls_from(rest.trim()) {
                Some(calls) => out.calls = calls,
                None => out.content = rest,
            },
        }
        self.mode = Mode::Text;
        out
    }

    /// One call object or an array of them, all naming offered functions. Arguments keep
    /// the order the model wrote them in.
    fn calls_from(&mut self, text: &str) -> Option<Vec<ToolCall>> {
        #[derive(Deserialize)]
        struct Call {
            name: Option<String>,
            function: Option<Box<Call>>,
            arguments: Option<Args>,
            parameters: Option<Args>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Args {
            Object(JsonObject),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<Call>),
            One(Call),
        }
        let items = match serde_json::from_str::<OneOrMany>(text).ok()? {
            OneOrMany::Many(v) => v,
            OneOrMany::One(c) => vec![c],
        };
        if items.is_empty() {
            return None;
        }
        let mut calls = Vec::new();
        for item in items {
            let f = match item.function {
                Some(inner) if item.name.is_none() => *inner,
                _ => item,
            };
            let name = f.name?;
            if !self.names.contains(&name) {
                return None;
            }
            let args = match f.arguments.or(f.parameters) {
                None => JsonObject::default(),
                Some(Args::Object(o)) => o,
                Some(Args::Text(s)) => serde_json::from_str::<JsonObject>(&s).ok()?,
            };
            calls.push(ToolCall {
                id: call_id(),
                function: ToolCallFunction {
                    index: self.index,
                    name,
                    arguments: args,
                },
            });
            self.index += 1;
        }
        Some(calls)
    }
}

/// `call_` + 8 lowercase alphanumerics (Ollama's shape); unique enough within a server.
fn call_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::from("call_");
    for _ in 0..8 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        id.push(ALPHABET[(x % 36) as usize] as char);
    }
    id
}

fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parser() -> ToolParser {
        let tool = json!({"type": "function", "function": {"name": "get_weather"}}).to_string();
        ToolParser::new(&[RawValue::from_string(tool).unwrap()])
    }

    fn run(pieces: &[&str]) -> (String, Vec<ToolCall>) {
        let mut p = parser();
        let (mut content, mut calls) = (String::new(), Vec::new());
        for piece in pieces {
            let o = p.push(piece);
            content += &o.content;
            calls.extend(o.calls);
        }
        let o = p.finish();
        (content + &o.content, [calls, o.calls].concat())
    }

    #[test]
    fn tagged_calls_across_pieces() {
        let (content, calls) = run(&[
            "Let me check.\n<tool_",
            "call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            "\n<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}</tool_call>",
        ]);
        assert_eq!(content, "Let me check.\n\n");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(calls[0].function.arguments["city"], "Paris");
        assert_eq!((calls[0].function.index, calls[1].function.index), (0, 1));
        assert!(calls[0].id.starts_with("call_") && calls[0].id.len() == 13);
        assert_ne!(calls[0].id, calls[1].id);
    }

    #[test]
    fn bare_json_and_unknown_functions() {
        let (content, calls) = run(&[
            "{\"name\": \"get_weather\", ",
            "\"parameters\": {\"unit\": \"C\", \"city\": \"Oslo\"}}",
        ]);
        assert_eq!(content, "");
        assert_eq!(calls[0].function.arguments["city"], "Oslo");
        assert_eq!(
            calls[0].function.arguments.to_json_string(),
            r#"{"unit":"C","city":"Oslo"}"#,
            "the model's key order is kept"
        );
        let (content, calls) = run(&["{\"name\": \"launch\", \"arguments\": {}}"]);
        assert!(calls.is_empty());
        assert_eq!(content, "{\"name\": \"launch\", \"arguments\": {}}");
        let (content, calls) = run(&["Sunny, 20°C."]);
        assert_eq!((content.as_str(), calls.len()), ("Sunny, 20°C.", 0));
        let (content, calls) =
            run(&["<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"X\"}}"]);
        assert_eq!(
            (content.as_str(), calls.len()),
            ("", 1),
            "an unclosed final call still counts"
        );
    }
}

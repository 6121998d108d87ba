//! Request and response bodies of the native API (api.md), field for field.
//!
//! Requests decode leniently as Go's `encoding/json` does (unknown fields ignored, `null`
//! means "not given"); responses follow Ollama's `omitempty` rules (zero metrics are
//! omitted, `response` / `message.content` are always present).

use super::duration::KeepAlive;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// `null` decodes to the default, as Go leaves the zero value.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn keep_alive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KeepAlive>, D::Error> {
    let v = Value::deserialize(d)?;
    KeepAlive::from_json(&v).map_err(serde::de::Error::custom)
}

fn think<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Think>, D::Error> {
    let v = Value::deserialize(d)?;
    Think::from_json(&v).map_err(serde::de::Error::custom)
}

fn lowercase<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(nullable::<D, String>(d)?.to_lowercase())
}

/// `think`: a bool or a level (`"low"`, `"medium"`, `"high"`, `"max"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Think {
    Bool(bool),
    Level(String),
}

impl Think {
    pub fn from_json(v: &Value) -> Result<Option<Think>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(Think::Bool(*b))),
            Value::String(s) => match s.as_str() {
                "high" | "medium" | "low" | "max" => Ok(Some(Think::Level(s.clone()))),
                _ => Err(format!(
                    "invalid think value: {} (must be \"high\", \"medium\", \"low\", \"max\", true, or false)",
                    serde_json::to_string(s).unwrap_or_default()
                )),
            },
            _ => Err("think must be a boolean or string".into()),
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            Think::Bool(b) => *b,
            Think::Level(_) => true,
        }
    }

    /// The level a template sees: `true` means `"medium"`.
    pub fn level(&self) -> Option<&str> {
        match self {
            Think::Bool(true) => Some("medium"),
            Think::Bool(false) => None,
            Think::Level(l) => Some(l),
        }
    }
}

/// A JSON object that keeps its keys in the order written (tool-call arguments: Ollama
/// preserves the model's and the client's order). A repeated key keeps its first
/// position and takes the last value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonObject(pub Vec<(String, Value)>);

impl JsonObject {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Compact JSON text in key order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

impl std::ops::Index<&str> for JsonObject {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&Value::Null)
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_unit<E>(self) -> Result<JsonObject, E> {
                Ok(JsonObject::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<JsonObject, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    match out.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(JsonObject(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    #[serde(default, deserialize_with = "nullable")]
    pub index: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub arguments: JsonObject,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub function: ToolCallFunction,
}

/// A chat message (request history and response).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default, deserialize_with = "lowercase")]
    pub role: String,
    #[serde(default, deserialize_with = "nullable")]
    pub content: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub thinking: String,
    /// Base64 image data.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub images: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub tool_calls: Vec<ToolCall>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub tool_name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub tool_call_id: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerateRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub prompt: String,
    #[serde(default, deserialize_with = "nullable")]
    pub suffix: String,
    #[serde(default, deserialize_with = "nullable")]
    pub system: String,
    #[serde(default, deserialize_with = "nullable")]
    pub template: String,
    #[serde(default)]
    pub context: Option<Vec<u32>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub raw: bool,
    /// `""`/`null`, `"json"` or a JSON Schema, as the client wrote it (a schema's key order
    /// decides the order of the generated properties).
    #[serde(default)]
    pub format: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<String>,
    #[serde(default, deserialize_with = "keep_alive")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "think")]
    pub think: Option<Think>,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub shift: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub logprobs: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub top_logprobs: i64,
    #[serde(default, rename = "_debug_render_only", deserialize_with = "nullable")]
    pub debug_render_only: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub messages: Vec<Message>,
    /// Tool definitions as the client wrote them (key order matters to templates); the
    /// renderer decodes them.
    #[serde(default, deserialize_with = "nullable")]
    pub tools: Vec<Box<RawValue>>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// `""`/`null`, `"json"` or a JSON Schema, as the client wrote it (a schema's key order
    /// decides the order of the generated properties).
    #[serde(default)]
    pub format: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "keep_alive")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "think")]
    pub think: Option<Think>,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub shift: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub logprobs: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub top_logprobs: i64,
    #[serde(default, rename = "_debug_render_only", deserialize_with = "nullable")]
    pub debug_render_only: bool,
}

/// Timing and count fields of final chunks; zero values are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_duration: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load_duration: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_eval_duration: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_count: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_duration: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<u8>,
}

/// `logprobs` entries (api.md §9).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DebugInfo {
    pub rendered_template: String,
    pub image_count: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    pub model: String,
    pub created_at: String,
    pub response: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    pub done: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub done_reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<u32>,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
    #[serde(
        default,
        rename = "_debug_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_info: Option<DebugInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub model: String,
    pub created_at: String,
    pub message: Message,
    pub done: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub done_reason: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
    #[serde(
        default,
        rename = "_debug_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_info: Option<DebugInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelDetails {
    #[serde(default, deserialize_with = "nullable")]
    pub parent_model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub format: String,
    #[serde(default, deserialize_with = "nullable")]
    pub family: String,
    /// `null` when the config has none (Go nil slice).
    #[serde(default)]
    pub families: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub parameter_size: String,
    #[serde(default, deserialize_with = "nullable")]
    pub quantization_level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
}

/// One entry of `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListModel {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    pub models: Vec<ListModel>,
}

/// One entry of `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessModel {
    pub name: String,
    pub model: String,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    pub expires_at: String,
    pub size_vram: u64,
    pub context_length: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessResponse {
    pub models: Vec<ProcessModel>,
}

/// A progress line of create / pull / push.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressResponse {
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub completed: u64,
}

impl ProgressResponse {
    pub fn status(s: impl Into<String>) -> ProgressResponse {
        ProgressResponse {
            status: s.into(),
            ..ProgressResponse::default()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ShowRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    /// Deprecated alias of `model`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub verbose: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub system: String,
    #[serde(default, deserialize_with = "nullable")]
    pub template: String,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CopyRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub source: String,
    #[serde(default, deserialize_with = "nullable")]
    pub destination: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeleteRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(serde::de::Error::custom(
                    "license must be a string or a list of strings",
                )),
            })
            .collect(),
        _ => Err(serde::de::Error::custom(
            "license must be a string or a list of strings",
        )),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    /// Deprecated alias of `model`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub from: String,
    /// File name → `sha256:<hex>` of a blob uploaded through `/api/blobs`.
    #[serde(default, deserialize_with = "nullable")]
    pub files: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub adapters: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub template: String,
    #[serde(default, deserialize_with = "nullable")]
    pub system: String,
    #[serde(default, deserialize_with = "string_or_list")]
    pub license: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub parameters: Map<String, Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub messages: Vec<Message>,
    #[serde(default, deserialize_with = "nullable")]
    pub quantize: String,
    /// Deprecated alias of `quantize`.
    #[serde(default, deserialize_with = "nullable")]
    pub quantization: String,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub renderer: String,
    #[serde(default, deserialize_with = "nullable")]
    pub parser: String,
    #[serde(default, deserialize_with = "nullable")]
    pub requires: String,
}

/// `/api/pull` and `/api/push`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PullRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    /// Deprecated alias of `model`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub insecure: bool,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Set by the route when the client went away: the transfer stops (partial
    /// downloads stay and resume later).
    #[serde(skip)]
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmbedRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub dimensions: Option<i64>,
    #[serde(default, deserialize_with = "keep_alive")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmbeddingsRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub prompt: String,
    #[serde(default, deserialize_with = "keep_alive")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_metrics_and_empty_fields_are_omitted() {
        let r = GenerateResponse {
            model: "m".into(),
            created_at: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"model":"m","created_at":"t","response":"","done":false})
        );
        let c = ChatResponse {
            model: "m".into(),
            created_at: "t".into(),
            message: Message::new("assistant", ""),
            done: true,
            done_reason: "stop".into(),
            metrics: Metrics {
                eval_count: 3,
                ..Default::default()
            },
            logprobs: Vec::new(),
            debug_info: None,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"model":"m","created_at":"t","message":{"role":"assistant","content":""},
                   "done":true,"done_reason":"stop","eval_count":3})
        );
    }

    #[test]
    fn requests_decode_leniently() {
        let r: ChatRequest = serde_json::from_value(json!({
            "model": "x", "messages": [{"role": "USER", "content": null, "extra": 1}],
            "keep_alive": "0", "think": null, "unknown": true, "tools": null
        }))
        .unwrap();
        assert_eq!(r.messages[0].role, "user");
        assert_eq!(r.messages[0].content, "");
        assert!(r.keep_alive.unwrap().is_zero());
        assert!(r.think.is_none());
        let err = serde_json::from_value::<GenerateRequest>(json!({"model": "x", "think": "huge"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid think value: \"huge\" (must be \"high\", \"medium\", \"low\", \"max\", true, or false)"
        );
        let err =
            serde_json::from_value::<GenerateRequest>(json!({"keep_alive": [1]})).unwrap_err();
        assert_eq!(err.to_string(), "Unsupported type: '[]interface {}'");
    }

    #[test]
    fn tool_arguments_keep_their_order() {
        let f: ToolCallFunction =
            serde_json::from_str(r#"{"name":"f","arguments":{"zeta":1,"alpha":{"b":2},"zeta":3}}"#)
                .unwrap();
        assert_eq!(
            f.arguments.to_json_string(),
            r#"{"zeta":3,"alpha":{"b":2}}"#
        );
        assert_eq!(f.arguments["alpha"]["b"], 2);
        let r: ChatRequest = serde_json::from_str(
            r#"{"tools":[{"function":{"parameters":{"properties":{"z":{},"a":{}}}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            r.tools[0].get(),
            r#"{"function":{"parameters":{"properties":{"z":{},"a":{}}}}}"#
        );
    }

    #[test]
    fn tool_call_index_is_always_written() {
        let t = ToolCall {
            id: String::new(),
            function: ToolCallFunction {
                index: 0,
                name: "f".into(),
                arguments: JsonObject::default(),
            },
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"function":{"index":0,"name":"f","arguments":{}}})
        );
    }
}

//! Chat messages, tools and tool calls as the Ollama API carries them (api.md §3), with
//! serde matching the wire format.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Accepts `null` as the empty string, like Go decoding into a `string` field.
fn null_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// The role, lowercased (the server lowercases roles).
fn role<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(null_string(d)?.to_lowercase())
}

fn null_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// One chat message (request history, model MESSAGE history, or response).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool` (lowercased on input).
    #[serde(default, deserialize_with = "role")]
    pub role: String,
    #[serde(default, deserialize_with = "null_string")]
    pub content: String,
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub thinking: String,
    /// Base64-encoded images, as sent.
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub images: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// On `tool` messages: the function that produced this result.
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub tool_name: String,
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub tool_call_id: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: content.to_string(),
            ..Message::default()
        }
    }
}

/// A tool call made by the assistant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// `call_` + 8 random characters; omitted when empty.
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    pub function: ToolCallFunction,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Always serialized (0 for the first call).
    #[serde(default)]
    pub index: i64,
    #[serde(default, deserialize_with = "null_string")]
    pub name: String,
    /// A JSON object, in the order given.
    #[serde(default)]
    pub arguments: ToolArguments,
}

/// Tool-call arguments: a JSON object that keeps its keys in the order they were given
/// (the API preserves it; Go templates see them sorted). Nested objects are plain
/// `serde_json` values. `null` reads as empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolArguments(pub Vec<(String, serde_json::Value)>);

impl ToolArguments {
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a key, keeping the position of an existing one.
    pub fn insert(&mut self, key: impl Into<String>, value: serde_json::Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for ToolArguments {
    fn from(m: serde_json::Map<String, serde_json::Value>) -> ToolArguments {
        ToolArguments(m.into_iter().collect())
    }
}

impl Serialize for ToolArguments {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ToolArguments {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolArguments;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of arguments")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ToolArguments, E> {
                Ok(ToolArguments::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<ToolArguments, E> {
                Ok(ToolArguments::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<ToolArguments, A::Error> {
                let mut out = ToolArguments::default();
                while let Some((k, v)) = a.next_entry::<String, serde_json::Value>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// A tool the model may call (request `tools`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type", default, deserialize_with = "null_string")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<serde_json::Value>,
    #[serde(default)]
    pub function: ToolFunction,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolFunction {
    #[serde(default, deserialize_with = "null_string")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    #[serde(default)]
    pub parameters: ToolFunctionParameters,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolFunctionParameters {
    #[serde(rename = "type", default, deserialize_with = "null_string")]
    pub kind: String,
    #[serde(rename = "$defs", default, skip_serializing_if = "Option::is_none")]
    pub defs: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<serde_json::Value>,
    /// (Serialized before `required`, the usual order of JSON-schema objects, which is
    /// what Jinja templates print with `tojson`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<ToolProperties>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub required: Vec<String>,
}

/// A JSON-schema property of a tool parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolProperty {
    #[serde(
        rename = "anyOf",
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub any_of: Vec<ToolProperty>,
    /// A string or an array of strings.
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "PropertyType::is_empty"
    )]
    pub kind: PropertyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<serde_json::Value>,
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    #[serde(
        rename = "enum",
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enum_values: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<ToolProperties>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub required: Vec<String>,
}

/// JSON-schema `type`: one type name or several; one marshals back to a plain string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyType(pub Vec<String>);

impl PropertyType {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for PropertyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() == 1 {
            s.serialize_str(&self.0[0])
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PropertyType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
            Null(()),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => PropertyType(vec![s]),
            OneOrMany::Many(v) => PropertyType(v),
            OneOrMany::Null(()) => PropertyType(Vec::new()),
        })
    }
}

/// Tool properties in the order the client sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolProperties(pub Vec<(String, ToolProperty)>);

impl ToolProperties {
    pub fn get(&self, name: &str) -> Option<&ToolProperty> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl Serialize for ToolProperties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ToolProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolProperties;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of tool properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<ToolProperties, A::Error> {
                let mut out: Vec<(String, ToolProperty)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, ToolProperty>()? {
                    // A repeated key keeps its first position and takes the last value.
                    match out.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(ToolProperties(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The request's `think`: a bool or a level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Think {
    Bool(bool),
    /// `low`, `medium`, `high` or `max`.
    Level(String),
}

pub const THINK_LEVELS: [&str; 4] = ["high", "medium", "low", "max"];

impl Think {
    /// Whether thinking is requested (`.Think`).
    pub fn enabled(&self) -> bool {
        match self {
            Think::Bool(b) => *b,
            Think::Level(_) => true,
        }
    }

    /// The level (`.ThinkLevel`): the string as given, `medium` for `true`, `""` for
    /// `false`.
    pub fn level(&self) -> &str {
        match self {
            Think::Bool(true) => "medium",
            Think::Bool(false) => "",
            Think::Level(l) => l,
        }
    }

    /// Parses a JSON `think` value with Ollama's error text.
    pub fn from_json(v: &serde_json::Value) -> Result<Option<Think>, String> {
        match v {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Bool(b) => Ok(Some(Think::Bool(*b))),
            serde_json::Value::String(s) if THINK_LEVELS.contains(&s.as_str()) => {
                Ok(Some(Think::Level(s.clone())))
            }
            serde_json::Value::String(s) => Err(format!(
                "invalid think value: {} (must be \"high\", \"medium\", \"low\", \"max\", true, or false)",
                serde_json::Value::String(s.clone())
            )),
            _ => Err("think must be a boolean or string (\"high\", \"medium\", \"low\", \"max\", true, or false)".into()),
        }
    }
}

impl Serialize for Think {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Think::Bool(b) => s.serialize_bool(*b),
            Think::Level(l) => s.serialize_str(l),
        }
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match Think::from_json(&v).map_err(de::Error::custom)? {
            Some(t) => Ok(t),
            None => Err(de::Error::custom("think must be a boolean or string")),
        }
    }
}

//! Runtime `options` (api.md §8): every key with its type and default, applied in layers
//! (defaults < Modelfile PARAMETER < request) with Ollama's type rules.

use super::error::ApiError;
use serde_json::{Map, Value};

/// The JSON type an option key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    Int,
    Float,
    Bool,
    StringList,
}

/// Every option Ollama knows, with its type. Other keys (including the removed ones clients
/// still send, e.g. `mirostat`, `tfs_z`, `numa`) are ignored.
pub const OPTION_KINDS: &[(&str, OptionKind)] = &[
    ("num_ctx", OptionKind::Int),
    ("num_batch", OptionKind::Int),
    ("num_gpu", OptionKind::Int),
    ("main_gpu", OptionKind::Int),
    ("use_mmap", OptionKind::Bool),
    ("num_thread", OptionKind::Int),
    ("draft_num_predict", OptionKind::Int),
    ("num_keep", OptionKind::Int),
    ("seed", OptionKind::Int),
    ("num_predict", OptionKind::Int),
    ("top_k", OptionKind::Int),
    ("top_p", OptionKind::Float),
    ("min_p", OptionKind::Float),
    ("typical_p", OptionKind::Float),
    ("repeat_last_n", OptionKind::Int),
    ("temperature", OptionKind::Float),
    ("repeat_penalty", OptionKind::Float),
    ("presence_penalty", OptionKind::Float),
    ("frequency_penalty", OptionKind::Float),
    ("stop", OptionKind::StringList),
];

pub fn option_kind(key: &str) -> Option<OptionKind> {
    OPTION_KINDS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|&(_, t)| t)
}

/// The merged runtime options of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// `None`: the server default (`OLLAMA_CONTEXT_LENGTH`, else 4096).
    pub num_ctx: Option<i64>,
    pub num_batch: i64,
    pub num_gpu: i64,
    pub main_gpu: i64,
    pub use_mmap: Option<bool>,
    pub num_thread: i64,
    pub draft_num_predict: i64,
    pub num_keep: i64,
    pub seed: i64,
    pub num_predict: i64,
    pub top_k: i64,
    pub top_p: f32,
    pub min_p: f32,
    pub typical_p: f32,
    pub repeat_last_n: i64,
    pub temperature: f32,
    pub repeat_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub stop: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            num_ctx: None,
            num_batch: 512,
            num_gpu: -1,
            main_gpu: 0,
            use_mmap: None,
            num_thread: 0,
            draft_num_predict: 0,
            num_keep: 4,
            seed: -1,
            num_predict: -1,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            typical_p: 1.0,
            repeat_last_n: 64,
            temperature: 0.8,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            stop: Vec::new(),
        }
    }
}

impl RunOptions {
    /// Applies one layer (a Modelfile `parameters` object or a request's `options`).
    /// Unknown keys and `null` values are skipped; a known key of the wrong JSON type is
    /// an error with Ollama's text (status 500, as Ollama reports it).
    pub fn apply(&mut self, layer: &Map<String, Value>) -> Result<(), ApiError> {
        for (key, val) in layer {
            let Some(kind) = option_kind(key) else {
                continue;
            };
            if val.is_null() {
                continue;
            }
            match kind {
                OptionKind::Int => {
                    let v = int_value(val).ok_or_else(|| {
                        type_error(format!("option {key:?} must be of type integer"))
                    })?;
                    self.set_int(key, v);
                }
                OptionKind::Float => {
                    let v = val.as_f64().ok_or_else(|| {
                        type_error(format!("option {key:?} must be of type float32"))
                    })?;
                    self.set_float(key, v as f32);
                }
                OptionKind::Bool => {
                    let v = val.as_bool().ok_or_else(|| {
                        type_error(format!("option {key:?} must be of type boolean"))
                    })?;
                    if key == "use_mmap" {
                        self.use_mmap = Some(v);
                    }
                }
                OptionKind::StringList => {
                    let arr = val.as_array().ok_or_else(|| {
                        type_error(format!("option {key:?} must be of type array"))
                    })?;
                    let mut out = Vec::with_capacity(arr.len());
                    for item in arr {
                        let s = item.as_str().ok_or_else(|| {
                            type_error(format!("option {key:?} must be of an array of strings"))
                        })?;
                        out.push(s.to_string());
                    }
                    self.stop = out;
                }
            }
        }
        Ok(())
    }

    fn set_int(&mut self, key: &str, v: i64) {
        match key {
            "num_ctx" => self.num_ctx = Some(v),
            "num_batch" => self.num_batch = v,
            "num_gpu" => self.num_gpu = v,
            "main_gpu" => self.main_gpu = v,
            "num_thread" => self.num_thread = v,
            "draft_num_predict" => self.draft_num_predict = v,
            "num_keep" => self.num_keep = v,
            "seed" => self.seed = v,
            "num_predict" => self.num_predict = v,
            "top_k" => self.top_k = v,
            "repeat_last_n" => self.repeat_last_n = v,
            _ => {}
        }
    }

    fn set_float(&mut self, key: &str, v: f32) {
        match key {
            "top_p" => self.top_p = v,
            "min_p" => self.min_p = v,
            "typical_p" => self.typical_p = v,
            "temperature" => self.temperature = v,
            "repeat_penalty" => self.repeat_penalty = v,
            "presence_penalty" => self.presence_penalty = v,
            "frequency_penalty" => self.frequency_penalty = v,
            _ => {}
        }
    }

    /// The sampler part, with negative temperatures clamped to greedy as Ollama does.
    pub fn sampler(&self) -> engine::sampler::SamplerOptions {
        engine::sampler::SamplerOptions {
            temperature: self.temperature.max(0.0),
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
        }
    }
}

fn type_error(msg: String) -> ApiError {
    ApiError::internal(msg)
}

/// JSON numbers for int options are truncated toward zero (Go `int64(float64)`).
fn int_value(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    if let Some(u) = v.as_u64() {
        return Some(i64::try_from(u).unwrap_or(i64::MAX));
    }
    v.as_f64().map(|f| f.trunc() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn layers_override_in_order() {
        let mut o = RunOptions::default();
        o.apply(&map(
            json!({"temperature": 0.2, "stop": ["<|im_end|>"], "num_ctx": 2048}),
        ))
        .unwrap();
        o.apply(&map(
            json!({"temperature": 0.7, "top_k": 12.9, "seed": null}),
        ))
        .unwrap();
        assert_eq!(o.temperature, 0.7);
        assert_eq!(o.top_k, 12);
        assert_eq!(o.seed, -1);
        assert_eq!(o.num_ctx, Some(2048));
        assert_eq!(o.stop, vec!["<|im_end|>".to_string()]);
    }

    #[test]
    fn unknown_and_removed_keys_are_ignored() {
        let mut o = RunOptions::default();
        o.apply(&map(
            json!({"mirostat": 2, "tfs_z": "x", "numa": true, "bogus": [1]}),
        ))
        .unwrap();
        assert_eq!(o, RunOptions::default());
    }

    #[test]
    fn wrong_types_are_errors() {
        let cases = [
            (
                json!({"top_k": "40"}),
                "option \"top_k\" must be of type integer",
            ),
            (
                json!({"temperature": "hot"}),
                "option \"temperature\" must be of type float32",
            ),
            (
                json!({"use_mmap": 1}),
                "option \"use_mmap\" must be of type boolean",
            ),
            (
                json!({"stop": "x"}),
                "option \"stop\" must be of type array",
            ),
            (
                json!({"stop": ["a", 1]}),
                "option \"stop\" must be of an array of strings",
            ),
        ];
        for (v, want) in cases {
            let err = RunOptions::default().apply(&map(v)).unwrap_err();
            assert_eq!(err.message, want);
            assert_eq!(err.status, 500);
        }
    }
}

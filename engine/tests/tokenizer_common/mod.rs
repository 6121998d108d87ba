//! Shared helpers for the tokenizer tests: model and reference lookup.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::collections::HashMap;

use ferrite_engine::tokenizer::{SpecialIds, Tokenizer, TokenizerData, TokenizerOptions};

pub fn models_dir() -> PathBuf {
    match std::env::var_os("FERRITE_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ferrite-models"),
    }
}

pub fn shared_dir() -> PathBuf {
    match std::env::var_os("FERRITE_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            // The repository sits next to shared/ (../../shared from engine/); a worktree may
            // sit one level deeper, so look further up before giving up.
            let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            here.ancestors()
                .skip(2)
                .map(|a| a.join("shared"))
                .find(|d| d.join("reference").is_dir())
                .unwrap_or_else(|| here.join("../../shared"))
        }
    }
}

pub fn reference(file: &str) -> serde_json::Value {
    let path = shared_dir().join("reference").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Path of a model, fetching the models with tests/fetch-models.sh when missing (never skip).
pub fn model_path(file: &str) -> PathBuf {
    let path = models_dir().join(file);
    if !path.exists() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fetch-models.sh");
        let status = std::process::Command::new("bash")
            .arg(script)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run tests/fetch-models.sh");
        assert!(status.success(), "tests/fetch-models.sh failed");
    }
    assert!(path.exists(), "{} missing after fetch", path.display());
    path
}

/// Loads (once per test binary) the tokenizer of a model file.
pub fn load(file: &str) -> Arc<Tokenizer> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Tokenizer>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(t) = cache.lock().unwrap().get(file) {
        return t.clone();
    }
    let tok = Arc::new(load_uncached(file));
    cache.lock().unwrap().insert(file.to_string(), tok.clone());
    tok
}

fn load_uncached(file: &str) -> Tokenizer {
    // TEMPORARY until the GGUF parser lands: metadata dumped by python gguf.
    let _ = model_path(file);
    let dump = match file {
        f if f.starts_with("SmolLM2") => "/tmp/tokwork/smollm.json",
        f if f.starts_with("gemma") => "/tmp/tokwork/gemma.json",
        _ => "/tmp/tokwork/qwen.json",
    };
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dump).unwrap()).unwrap();
    let strs = |k: &str| v.get(k).map(|a| a.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect::<Vec<_>>());
    let id = |k: &str| v.get(k).map(|x| x.as_u64().unwrap() as u32);
    let flag = |k: &str| v.get(k).map(|x| x.as_bool().unwrap());
    let data = TokenizerData {
        model: v["tokenizer.ggml.model"].as_str().unwrap().to_string(),
        pre: v.get("tokenizer.ggml.pre").map(|x| x.as_str().unwrap().to_string()),
        tokens: strs("tokenizer.ggml.tokens").unwrap(),
        scores: v.get("tokenizer.ggml.scores").map(|a| a.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()),
        token_types: v.get("tokenizer.ggml.token_type").map(|a| a.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect()),
        merges: strs("tokenizer.ggml.merges"),
        special: SpecialIds {
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            unk: id("tokenizer.ggml.unknown_token_id"),
            pad: id("tokenizer.ggml.padding_token_id"),
            ..Default::default()
        },
        add_bos: flag("tokenizer.ggml.add_bos_token"),
        add_eos: flag("tokenizer.ggml.add_eos_token"),
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
    };
    Tokenizer::new(data, TokenizerOptions::default()).unwrap()
}

/// A piece as the reference files show it: UTF-8 with invalid bytes as `\xNN`
/// (Python's `errors="backslashreplace"`).
pub fn render_piece(tok: &Tokenizer, id: u32) -> String {
    let mut bytes = tok.token_to_piece(id, true);
    let mut out = String::new();
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(std::str::from_utf8(&bytes[..valid]).unwrap());
                let bad = e.error_len().unwrap_or(bytes.len() - valid);
                for b in &bytes[valid..valid + bad] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                bytes = &bytes[valid + bad..];
            }
        }
    }
    out
}

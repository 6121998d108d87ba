//! Shared helpers for the tokenizer tests: model and reference lookup.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use ferrite_engine::gguf::GgufFile;
use ferrite_engine::tokenizer::{Tokenizer, TokenizerOptions};

pub fn models_dir() -> PathBuf {
    match std::env::var_os("FERRITE_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ferrite-models")
        }
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
    let gguf = GgufFile::open(model_path(file)).expect("open model");
    Tokenizer::from_gguf(&gguf, TokenizerOptions::default()).expect("build tokenizer")
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

//! Helpers shared by the workspace tests: locating (and fetching) the real models,
//! the llama.cpp reference outputs and the committed fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the directory holding `tests/`, `kernels/`, ...).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The models of `shared/models.md`, by the ids `tests/fetch-models.sh` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    SmolLm2,
    Gemma3,
    Qwen2,
    MiniLm,
}

impl Model {
    pub const GGUF: [Model; 3] = [Model::SmolLm2, Model::Gemma3, Model::Qwen2];

    /// The id `tests/fetch-models.sh` takes (also the fixture file stem).
    pub fn id(self) -> &'static str {
        match self {
            Model::SmolLm2 => "smollm2",
            Model::Gemma3 => "gemma3",
            Model::Qwen2 => "qwen2",
            Model::MiniLm => "minilm",
        }
    }

    pub fn from_id(id: &str) -> Option<Model> {
        [Model::SmolLm2, Model::Gemma3, Model::Qwen2, Model::MiniLm]
            .into_iter()
            .find(|m| m.id() == id)
    }

    /// The file (a directory for MiniLM) inside the model cache.
    pub fn file_name(self) -> &'static str {
        match self {
            Model::SmolLm2 => "SmolLM2-135M-Instruct.Q4_1.gguf",
            Model::Gemma3 => "gemma-3-270m-q4_k_m.gguf",
            Model::Qwen2 => "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            Model::MiniLm => "all-minilm-l6-v2",
        }
    }

    /// The llama.cpp reference file in the shared reference directory.
    pub fn reference_file(self) -> &'static str {
        match self {
            Model::SmolLm2 => "smollm2-135m-q4_1.json",
            Model::Gemma3 => "gemma3-270m-q4_k_m.json",
            Model::Qwen2 => "qwen2.5-coder-0.5b-q4_k_m.json",
            Model::MiniLm => "minilm-l6-v2.json",
        }
    }
}

/// The model cache: `$FERRITE_MODELS_DIR`, default `~/.cache/ferrite-models`
/// (the same rule as `tests/fetch-models.sh`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("FERRITE_MODELS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = std::env::var_os("HOME")
                .expect("HOME is not set (needed for the model cache; or set FERRITE_MODELS_DIR)");
            PathBuf::from(home).join(".cache/ferrite-models")
        }
    }
}

/// The path of a real model (for MiniLM, its directory), fetched with
/// `tests/fetch-models.sh` when missing. Never skips: panics with the fetch
/// script's exit status when the model cannot be had.
pub fn model_path(model: Model) -> PathBuf {
    let path = models_dir().join(model.file_name());
    let present = match model {
        Model::MiniLm => path.join("model.safetensors").is_file(),
        _ => path.is_file(),
    };
    if present {
        return path;
    }
    let script = workspace_root().join("tests/fetch-models.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(model.id())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        status.success(),
        "{} {} failed ({status}); the model {} is needed by this test (cache: {})",
        script.display(),
        model.id(),
        model.file_name(),
        models_dir().display()
    );
    assert!(
        path.exists(),
        "{} {} succeeded but {} does not exist",
        script.display(),
        model.id(),
        path.display()
    );
    path
}

/// The shared reference directory: `$FERRITE_SHARED_DIR/reference`, default
/// `../shared/reference` beside the workspace's parent.
pub fn reference_dir() -> PathBuf {
    match std::env::var_os("FERRITE_SHARED_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("reference"),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference"
        )),
    }
}

/// Parse a JSON file, panicking with the path on any error.
pub fn load_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// The llama.cpp reference outputs for `model` (see `shared/reference/README.md`).
pub fn reference(model: Model) -> serde_json::Value {
    load_json(&reference_dir().join(model.reference_file()))
}

/// The committed fixtures directory (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The best token of `logits` with its logit and the runner-up's logit (ties keep the
/// lower id, as llama.cpp's argmax).
pub fn top2(logits: &[f32]) -> (u32, f32, f32) {
    let mut best = (0usize, f32::NEG_INFINITY);
    let mut second = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best.1 {
            second = best.1;
            best = (i, v);
        } else if v > second {
            second = v;
        }
    }
    (best.0 as u32, best.1, second)
}

/// Whether this machine's CPU path runs llama.cpp's x86 orders (AVX2, FMA, F16C), which
/// the GPU's exact path emulates everywhere: only then are its bits the CPU's.
pub fn cpu_has_llama_orders() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

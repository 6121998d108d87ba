//! Model creation (`/api/create`, `ollama create`): the layers and config Ollama
//! produces, from GGUF blobs, an existing model, or a parsed Modelfile.

use std::collections::BTreeMap;
use std::path::Path;

use engine::gguf::GgufFile;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::modelfile::Modelfile;
use crate::show::TemplateSupport;
use crate::store::*;

/// `license` in a create request: one text or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum License {
    One(String),
    Many(Vec<String>),
}

/// The `/api/create` request body (unknown fields are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// Deprecated alias of `model`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub quantize: String,
    /// Deprecated alias of `quantize`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub quantization: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// File name (relative path) → `sha256:<hex>` of a blob uploaded before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapters: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub renderer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parser: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub requires: String,
}

/// Called when `from` names a model missing from the store (Ollama pulls it,
/// streaming pull progress, before creating). Without one, a missing `from` is
/// `NotFound`.
pub type PullHook<'a> = &'a (dyn Fn(&ModelName) -> Result<(), StoreError> + Sync);

/// How to create: template support (validation and autodetection) and an
/// optional pull for a missing `from`.
pub struct CreateOptions<'a> {
    pub templates: &'a dyn TemplateSupport,
    pub pull: Option<PullHook<'a>>,
}

const ERR_NEITHER: &str = "neither 'from' or 'files' was specified";

/// A layer being assembled, with the status line Ollama reports for it.
struct NewLayer {
    layer: Layer,
    status: String,
    /// Parsed GGUF metadata for weight layers.
    gguf: Option<GgufInfo>,
}

/// What the config needs from a GGUF file.
#[derive(Debug, Clone)]
struct GgufInfo {
    architecture: String,
    parameter_count: u64,
    file_type: String,
    chat_template: Option<String>,
}

/// Creates (or replaces) a model, reporting progress lines through `progress`
/// with Ollama's texts (`parsing GGUF`, `using existing layer sha256:…`,
/// `creating new layer sha256:…`, `using autodetected template <name>`,
/// `writing manifest`, `success`). Errors carry Ollama's texts; those Ollama
/// answers with 400 are `BadRequest`/`InvalidName`/`InvalidDigest`.
pub fn create(
    store: &Store,
    req: &CreateRequest,
    opts: &CreateOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<(), StoreError> {
    let raw_name = if req.model.is_empty() {
        &req.name
    } else {
        &req.model
    };
    let name = store.existing_name(&ModelName::parse(raw_name)?)?;
    for (path, digest) in req.files.iter().chain(req.adapters.iter()).flatten() {
        if !valid_rel_path(path) {
            return Err(StoreError::BadRequest("file path must be relative".into()));
        }
        if digest.is_empty() {
            return Err(StoreError::InvalidDigest(String::new()));
        }
    }
    if !req.quantize.is_empty() || !req.quantization.is_empty() {
        return Err(StoreError::BadRequest(
            "quantization is not supported yet; import an already quantized GGUF".into(),
        ));
    }
    let from_name = if req.from.is_empty() {
        None
    } else {
        Some(ModelName::parse(&req.from)?)
    };
    if let (Some(from), Some(pull)) = (&from_name, opts.pull) {
        if matches!(store.read_manifest(from), Err(StoreError::NotFound(_))) {
            pull(from)?;
        }
    }

    // From here on no delete may collect blobs we are about to reference.
    let _gc = store.lock_gc();
    let old = store.read_manifest(&name).ok();
    let mut config = ModelConfig::new();
    config.renderer = req.renderer.clone();
    config.parser = req.parser.clone();
    config.requires = req.requires.clone();

    let mut layers = if let Some(from) = &from_name {
        from_model(store, from, &req.from, &mut config)?
    } else if let Some(files) = &req.files {
        let mut layers = gguf_layers(store, files, false, progress)?;
        detect_template(store, &mut layers, opts.templates)?;
        layers
    } else {
        return Err(StoreError::BadRequest(ERR_NEITHER.into()));
    };
    if let Some(adapters) = &req.adapters {
        layers.extend(gguf_layers(store, adapters, true, progress)?);
    }

    for l in &layers {
        let Some(g) = &l.gguf else { continue };
        if l.layer.media_type == MEDIA_TYPE_MODEL {
            or_set(&mut config.model_format, "gguf");
            or_set(&mut config.model_family, &g.architecture);
            or_set(&mut config.model_type, &human_number(g.parameter_count));
            or_set(&mut config.file_type, &g.file_type);
        }
        config
            .model_families
            .get_or_insert_with(Vec::new)
            .push(g.architecture.clone());
    }

    if !req.template.is_empty() {
        opts.templates
            .validate(&req.template)
            .map_err(|e| StoreError::BadRequest(format!("template error: {e}")))?;
        remove_layers(
            store,
            &mut layers,
            &[MEDIA_TYPE_TEMPLATE, MEDIA_TYPE_PROMPT],
        )?;
        layers.push(text_layer(
            store,
            MEDIA_TYPE_TEMPLATE,
            req.template.as_bytes(),
        )?);
    }
    if !req.system.is_empty() {
        remove_layers(store, &mut layers, &[MEDIA_TYPE_SYSTEM])?;
        layers.push(text_layer(store, MEDIA_TYPE_SYSTEM, req.system.as_bytes())?);
    }
    match &req.license {
        Some(License::One(l)) if !l.is_empty() => {
            layers.push(text_layer(store, MEDIA_TYPE_LICENSE, l.as_bytes())?)
        }
        Some(License::Many(ls)) => {
            for l in ls {
                layers.push(text_layer(store, MEDIA_TYPE_LICENSE, l.as_bytes())?);
            }
        }
        _ => {}
    }
    set_parameters(
        store,
        &mut layers,
        req.parameters.clone().unwrap_or_default(),
    )?;
    if !req.messages.is_empty() {
        remove_layers(store, &mut layers, &[MEDIA_TYPE_MESSAGES])?;
        let bytes = gojson::to_vec(&req.messages);
        layers.push(text_layer(store, MEDIA_TYPE_MESSAGES, &bytes)?);
    }

    config.rootfs.diff_ids = Some(layers.iter().map(|l| l.layer.digest.clone()).collect());
    let written = store.write_blob(&config.to_bytes()[..])?;
    let config_layer = Layer::new(MEDIA_TYPE_CONFIG, &written.digest, written.size);

    for l in &layers {
        progress(&l.status);
    }
    progress("writing manifest");
    let manifest = Manifest::new(config_layer, layers.into_iter().map(|l| l.layer).collect());
    store.write_manifest(&name, &manifest)?;

    if let (Some(old), false) = (old, store.noprune()) {
        store.remove_unreferenced_locked(&old.manifest.blob_digests()?)?;
    }
    progress("success");
    Ok(())
}

/// Creates a model from a parsed Modelfile in-process: local files named by
/// FROM/ADAPTER (relative to `base_dir`) are copied into blobs (hash-verified),
/// then [`create`] runs. Returns the Modelfile's warnings (deprecated parameters).
pub fn create_from_modelfile(
    store: &Store,
    model: &str,
    modelfile: &Modelfile,
    base_dir: &Path,
    opts: &CreateOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>, StoreError> {
    ModelName::parse(model)?;
    let prepared = modelfile
        .to_create_request(base_dir)
        .map_err(|e| StoreError::BadRequest(e.to_string()))?;
    for (path, digest) in &prepared.uploads {
        progress(&format!("copying file {digest}"));
        let f = std::fs::File::open(path)
            .map_err(|e| StoreError::io(format!("open {}", path.display()), e))?;
        store.put_blob(digest, std::io::BufReader::new(f))?;
    }
    let mut req = prepared.request;
    req.model = model.to_string();
    create(store, &req, opts, progress)?;
    Ok(prepared.warnings)
}

/// Layers of an existing model, each re-referenced with `from` = its shortest
/// name; GGUF layers are read for the config. The base config's renderer,
/// parser, requires, format and capabilities carry over unless the request sets them.
fn from_model(
    store: &Store,
    from: &ModelName,
    raw: &str,
    config: &mut ModelConfig,
) -> Result<Vec<NewLayer>, StoreError> {
    let stored = store.read_manifest(from).map_err(|e| match e {
        StoreError::NotFound(_) => StoreError::NotFound(raw.to_string()),
        e => e,
    })?;
    let short = stored.name.display_shortest();
    if stored.manifest.config.digest.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "model {short} is missing its config"
        )));
    }
    let base = store.read_config(&stored.manifest)?;
    or_set(&mut config.renderer, &base.renderer);
    or_set(&mut config.parser, &base.parser);
    or_set(&mut config.requires, &base.requires);
    or_set(&mut config.model_format, &base.model_format);
    if config.capabilities.is_empty() {
        config.capabilities = base.capabilities.clone();
    }
    let mut out = Vec::new();
    for src in &stored.manifest.layers {
        let digest = src.digest()?;
        let mut layer = existing_layer(store, &digest, &src.media_type, &short)?;
        layer.layer.name = src.name.clone();
        if matches!(
            src.media_type.as_str(),
            MEDIA_TYPE_MODEL | MEDIA_TYPE_PROJECTOR | MEDIA_TYPE_ADAPTER
        ) {
            layer.gguf = Some(read_gguf(&store.blob_path(&digest), &short)?.1);
        }
        out.push(layer);
    }
    Ok(out)
}

/// Ollama's `NewLayerFromLayer`: refers to an existing blob (touched, so the
/// startup prune spares it).
fn existing_layer(
    store: &Store,
    digest: &Digest,
    media_type: &str,
    from: &str,
) -> Result<NewLayer, StoreError> {
    let size = store.blob_size(digest)?;
    store.touch_blob(digest)?;
    let mut layer = Layer::new(media_type, digest, size);
    layer.from = from.to_string();
    Ok(NewLayer {
        layer,
        status: format!("using existing layer {digest}"),
        gguf: None,
    })
}

/// Ollama's `NewLayer`: writes content as a blob (kept if it exists).
fn text_layer(store: &Store, media_type: &str, bytes: &[u8]) -> Result<NewLayer, StoreError> {
    let w = store.write_blob(bytes)?;
    let verb = if w.created {
        "creating new layer"
    } else {
        "using existing layer"
    };
    Ok(NewLayer {
        layer: Layer::new(media_type, &w.digest, w.size),
        status: format!("{verb} {}", w.digest),
        gguf: None,
    })
}

/// GGUF blobs named in `files`/`adapters` (sorted by file name) as layers.
fn gguf_layers(
    store: &Store,
    files: &BTreeMap<String, String>,
    adapter: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<NewLayer>, StoreError> {
    if files.is_empty() {
        return Err(StoreError::BadRequest(if adapter {
            "no files provided to convert".into()
        } else {
            "unknown type".into()
        }));
    }
    if adapter && files.len() > 1 {
        return Err(StoreError::BadRequest(
            "only one adapter is currently supported".into(),
        ));
    }
    let mut out = Vec::new();
    for (file, digest) in files {
        let digest = Digest::parse(digest)?;
        if file.ends_with(".safetensors") {
            return Err(StoreError::BadRequest(
                "converting safetensors models is not supported yet; import a GGUF file".into(),
            ));
        }
        let path = store.blob_path(&digest);
        let magic_ok = {
            use std::io::Read;
            let mut magic = [0u8; 4];
            let mut f = store.open_blob(&digest)?;
            f.read_exact(&mut magic).is_ok() && &magic == b"GGUF"
        };
        if !magic_ok {
            return Err(StoreError::BadRequest(if file.ends_with(".gguf") {
                "supplied file was not in GGUF format".into()
            } else {
                "unknown type".into()
            }));
        }
        progress("parsing GGUF");
        let (kind, info) = read_gguf(&path, file)?;
        let media_type = if adapter || kind == GgufKind::Adapter {
            MEDIA_TYPE_ADAPTER
        } else if kind == GgufKind::Projector {
            MEDIA_TYPE_PROJECTOR
        } else {
            MEDIA_TYPE_MODEL
        };
        let mut layer = existing_layer(store, &digest, media_type, file)?;
        layer.gguf = Some(info);
        out.push(layer);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GgufKind {
    Model,
    Adapter,
    Projector,
}

/// Opens and validates a GGUF (all offsets and sizes are bounds-checked by the
/// engine's parser) and reads what the config needs.
fn read_gguf(path: &Path, label: &str) -> Result<(GgufKind, GgufInfo), StoreError> {
    let g = GgufFile::open(path).map_err(|e| {
        StoreError::BadRequest(format!("invalid GGUF file {label}: {}", e.message()))
    })?;
    let arch = g
        .get_str_opt("general.architecture")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let general_type = g.get_str_opt("general.type").ok().flatten().unwrap_or("");
    let uint = |k: &str| g.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let kind = if general_type == "adapter" {
        GgufKind::Adapter
    } else if matches!(general_type, "projector" | "mmproj")
        || (uint(&key("block_count")) == 0 && uint(&key("vision.block_count")) > 0)
        || (arch == "clip"
            && uint(&key("block_count")) == 0
            && (g.get_bool_opt(&key("has_vision_encoder")).ok().flatten() == Some(true)
                || g.get_bool_opt(&key("has_audio_encoder")).ok().flatten() == Some(true)))
    {
        GgufKind::Projector
    } else {
        GgufKind::Model
    };
    let parameter_count = g
        .tensors()
        .iter()
        .fold(0u64, |a, t| a.saturating_add(t.n_elements()));
    let file_type = g
        .get("general.file_type")
        .and_then(|v| v.as_u64())
        .map(file_type_name)
        .unwrap_or("unknown")
        .to_string();
    let chat_template = g
        .get_str_opt("tokenizer.chat_template")
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok((
        kind,
        GgufInfo {
            architecture: arch,
            parameter_count,
            file_type,
            chat_template,
        },
    ))
}

/// Adds the built-in template (and its default parameters) closest to a GGUF's
/// Jinja chat template, as Ollama's `detectChatTemplate`.
fn detect_template(
    store: &Store,
    layers: &mut Vec<NewLayer>,
    templates: &dyn TemplateSupport,
) -> Result<(), StoreError> {
    let sources: Vec<String> = layers
        .iter()
        .filter_map(|l| l.gguf.as_ref()?.chat_template.clone())
        .collect();
    for chat in sources {
        let Some(t) = templates.detect(&chat) else {
            continue;
        };
        let mut layer = text_layer(store, MEDIA_TYPE_TEMPLATE, t.template.as_bytes())?;
        layer.status = format!("using autodetected template {}", t.name);
        layers.push(layer);
        if let Some(params) = t.parameters {
            let bytes = gojson::to_vec(&params);
            layers.push(text_layer(store, MEDIA_TYPE_PARAMS, &bytes)?);
        }
    }
    Ok(())
}

/// Drops layers of these media types; their blobs go if nothing references them.
fn remove_layers(
    store: &Store,
    layers: &mut Vec<NewLayer>,
    media_types: &[&str],
) -> Result<(), StoreError> {
    let mut gone = Vec::new();
    layers.retain(|l| {
        let drop = media_types.contains(&l.layer.media_type.as_str());
        if drop {
            gone.push(l.layer.clone());
        }
        !drop
    });
    let digests: Vec<Digest> = gone
        .iter()
        .filter_map(|l| l.digest().ok())
        .filter(|d| !layers.iter().any(|l| l.layer.digest == d.to_string()))
        .collect();
    store.remove_unreferenced_locked(&digests)?;
    Ok(())
}

/// Request parameters over those of existing params layers (request wins per
/// key); a single new params layer when any remain.
fn set_parameters(
    store: &Store,
    layers: &mut Vec<NewLayer>,
    mut params: Map<String, Value>,
) -> Result<(), StoreError> {
    for l in layers
        .iter()
        .filter(|l| l.layer.media_type == MEDIA_TYPE_PARAMS)
    {
        let existing: Option<Map<String, Value>> = store.read_json_blob(&l.layer.digest()?)?;
        for (k, v) in existing.unwrap_or_default() {
            params.entry(k).or_insert(v);
        }
    }
    if params.is_empty() {
        return Ok(());
    }
    remove_layers(store, layers, &[MEDIA_TYPE_PARAMS])?;
    let bytes = gojson::to_vec(&params);
    layers.push(text_layer(store, MEDIA_TYPE_PARAMS, &bytes)?);
    Ok(())
}

fn or_set(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

/// Go's `fs.ValidPath`: unrooted, slash-separated, no empty, `.` or `..` elements.
pub fn valid_rel_path(p: &str) -> bool {
    if p == "." {
        return true;
    }
    !p.is_empty()
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|e| !e.is_empty() && e != "." && e != "..")
}

/// Ollama's `format.HumanNumber` (`model_type`): `8.0B`→`8B` when whole,
/// `3.2B`, `134.52M`, `22K`, plain below a thousand.
pub fn human_number(n: u64) -> String {
    const K: f64 = 1e3;
    const M: f64 = 1e6;
    const B: f64 = 1e9;
    let f = n as f64;
    let scaled = |v: f64, decimals: usize, unit: &str| {
        if v == v.floor() {
            format!("{v:.0}{unit}")
        } else {
            format!("{v:.decimals$}{unit}")
        }
    };
    if f >= B {
        scaled(f / B, 1, "B")
    } else if f >= M {
        scaled(f / M, 2, "M")
    } else if f >= K {
        format!("{:.0}K", f / K)
    } else {
        n.to_string()
    }
}

/// The quantization name of a GGUF `general.file_type` (llama_ftype).
pub fn file_type_name(t: u64) -> &'static str {
    match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "MXFP4",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human_number(134_515_008), "134.52M");
        assert_eq!(human_number(3_212_749_888), "3.2B");
        assert_eq!(human_number(8_000_000_000), "8B");
        assert_eq!(human_number(7_000_000), "7M");
        assert_eq!(human_number(22_500), "22K");
        assert_eq!(human_number(999), "999");
    }

    #[test]
    fn relative_paths() {
        for ok in ["model.gguf", "a/b.gguf", "."] {
            assert!(valid_rel_path(ok), "{ok}");
        }
        for bad in [
            "", "/abs", "../x", "a/../b", "a//b", "a/", "./a", "a\\b", "a/./b",
        ] {
            assert!(!valid_rel_path(bad), "{bad}");
        }
    }
}

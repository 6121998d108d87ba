//! A model's manifest resolved into what the runtime and `/api/show` need.

use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::*;

/// Everything a model's layers say, read from the store.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The name with the casing of the manifest path.
    pub name: ModelName,
    /// Hex SHA-256 of the manifest file.
    pub digest: String,
    /// The manifest file's mtime.
    pub modified_at: SystemTime,
    pub manifest: Manifest,
    pub config: ModelConfig,
    /// The GGUF weights (`application/vnd.ollama.image.model`); `None` for a
    /// manifest without a model layer (e.g. a remote model stub).
    pub model_path: Option<PathBuf>,
    pub model_digest: Option<Digest>,
    /// `from` of the model layer (`details.parent_model`).
    pub parent_model: String,
    pub adapter_paths: Vec<PathBuf>,
    pub projector_paths: Vec<PathBuf>,
    /// TEMPLATE (Go template text); `None` when the model has no template layer.
    pub template: Option<String>,
    pub system: Option<String>,
    /// The params layer (`{"stop":[...],"temperature":0.7}`); empty when absent.
    pub parameters: Map<String, Value>,
    /// MESSAGE history.
    pub messages: Vec<Message>,
    /// One entry per license layer.
    pub license: Vec<String>,
    pub details: ModelDetails,
}

impl ResolvedModel {
    /// Shortest display name (`llama3.2:latest`).
    pub fn short_name(&self) -> String {
        self.name.display_shortest()
    }

    /// Total bytes of layers and config (`size` in `/api/tags`).
    pub fn size(&self) -> u64 {
        self.manifest.total_size()
    }
}

impl Store {
    /// Resolves a model name as a client wrote it. Errors: `InvalidName` (400),
    /// `NotFound` carrying `name` as given (404), `Corrupt`/`Io` (500).
    pub fn resolve(&self, name: &str) -> Result<ResolvedModel, StoreError> {
        let parsed = ModelName::parse(name)?;
        self.resolve_name(&parsed).map_err(|e| match e {
            StoreError::NotFound(_) => StoreError::NotFound(name.to_string()),
            e => e,
        })
    }

    /// Resolves a parsed name (matched case-insensitively against the store).
    pub fn resolve_name(&self, name: &ModelName) -> Result<ResolvedModel, StoreError> {
        let stored = self.read_manifest(name)?;
        let config = self.read_config(&stored.manifest)?;
        let mut r = ResolvedModel {
            name: stored.name,
            digest: stored.digest,
            modified_at: stored.modified_at,
            manifest: stored.manifest.clone(),
            details: ModelDetails::default(),
            config,
            model_path: None,
            model_digest: None,
            parent_model: String::new(),
            adapter_paths: Vec::new(),
            projector_paths: Vec::new(),
            template: None,
            system: None,
            parameters: Map::new(),
            messages: Vec::new(),
            license: Vec::new(),
        };
        for layer in &stored.manifest.layers {
            let digest = layer.digest()?;
            match layer.media_type.as_str() {
                MEDIA_TYPE_MODEL => {
                    r.model_path = Some(self.blob_path(&digest));
                    r.model_digest = Some(digest);
                    r.parent_model = layer.from.clone();
                }
                MEDIA_TYPE_ADAPTER => r.adapter_paths.push(self.blob_path(&digest)),
                MEDIA_TYPE_PROJECTOR => r.projector_paths.push(self.blob_path(&digest)),
                MEDIA_TYPE_TEMPLATE | MEDIA_TYPE_PROMPT => {
                    r.template = Some(self.read_text_blob(&digest)?)
                }
                MEDIA_TYPE_SYSTEM => r.system = Some(self.read_text_blob(&digest)?),
                MEDIA_TYPE_PARAMS => {
                    // `null` decodes to no parameters, as in Go.
                    let v: Value = self.read_json_blob(&digest)?;
                    r.parameters = match v {
                        Value::Object(m) => m,
                        Value::Null => Map::new(),
                        _ => {
                            return Err(StoreError::Corrupt(format!(
                                "params layer {digest} is not a JSON object"
                            )))
                        }
                    };
                }
                MEDIA_TYPE_MESSAGES => {
                    let v: Option<Vec<Message>> = self.read_json_blob(&digest)?;
                    r.messages = v.unwrap_or_default();
                }
                MEDIA_TYPE_LICENSE => r.license.push(self.read_text_blob(&digest)?),
                // Embed layers are deprecated; tensors/json/draft are not used here.
                _ => {}
            }
        }
        r.details = ModelDetails::from_config(&r.config, &r.parent_model);
        Ok(r)
    }
}

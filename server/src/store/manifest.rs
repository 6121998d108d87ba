//! Manifest and config JSON (Docker registry v2 manifest with Ollama media types).

use serde::{Deserialize, Serialize};

use super::{Digest, StoreError};

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_MODEL: &str = "application/vnd.ollama.image.model";
pub const MEDIA_TYPE_PROJECTOR: &str = "application/vnd.ollama.image.projector";
pub const MEDIA_TYPE_ADAPTER: &str = "application/vnd.ollama.image.adapter";
pub const MEDIA_TYPE_TEMPLATE: &str = "application/vnd.ollama.image.template";
/// Legacy name of the template layer.
pub const MEDIA_TYPE_PROMPT: &str = "application/vnd.ollama.image.prompt";
pub const MEDIA_TYPE_SYSTEM: &str = "application/vnd.ollama.image.system";
pub const MEDIA_TYPE_PARAMS: &str = "application/vnd.ollama.image.params";
pub const MEDIA_TYPE_MESSAGES: &str = "application/vnd.ollama.image.messages";
pub const MEDIA_TYPE_LICENSE: &str = "application/vnd.ollama.image.license";
/// Deprecated (≤ 0.1.2 embeddings); ignored.
pub const MEDIA_TYPE_EMBED: &str = "application/vnd.ollama.image.embed";
pub const MEDIA_TYPE_DRAFT: &str = "application/vnd.ollama.image.draft";

/// A manifest as stored in `manifests/<host>/<namespace>/<model>/<tag>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    #[serde(default)]
    pub config: Layer,
    #[serde(default)]
    pub layers: Vec<Layer>,
}

/// One layer (or the config) of a manifest. `digest` stays a string here because
/// manifests are untrusted input: use [`Layer::digest`] to get a validated one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    /// Shortest name of the model this layer was inherited from (`FROM`), or the
    /// source file name for layers created from files.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Tensor or config file name (safetensors layers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl Layer {
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Layer {
        Layer {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            from: String::new(),
            name: String::new(),
        }
    }

    /// The validated digest (`invalid digest format` for anything but sha256 hex).
    pub fn digest(&self) -> Result<Digest, StoreError> {
        Digest::parse(&self.digest)
    }
}

impl Manifest {
    /// A schema-2 manifest of Ollama's media type.
    pub fn new(config: Layer, layers: Vec<Layer>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST.to_string(),
            config,
            layers,
        }
    }

    /// Parses manifest bytes and validates every digest in it (layers and config)
    /// before anything can use them as paths.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, StoreError> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest is not valid JSON: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// Every digest must be a valid sha256 digest (an empty config digest is allowed,
    /// as Ollama tolerates manifests without config).
    pub fn validate(&self) -> Result<(), StoreError> {
        if !self.config.digest.is_empty() {
            self.config.digest()?;
        }
        for layer in &self.layers {
            layer.digest()?;
        }
        Ok(())
    }

    /// Layers then config, skipping an empty config digest; validated, deduplicated.
    pub fn blob_digests(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out: Vec<Digest> = Vec::with_capacity(self.layers.len() + 1);
        let config = (!self.config.digest.is_empty()).then_some(&self.config);
        for layer in self.layers.iter().chain(config) {
            let d = layer.digest()?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Sum of layer sizes plus the config size (`size` in `/api/tags`).
    pub fn total_size(&self) -> u64 {
        self.layers
            .iter()
            .fold(self.config.size, |a, l| a.saturating_add(l.size))
    }

    /// The serialised form Ollama writes for manifests it creates (Go encoder:
    /// compact, HTML-escaped, trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        super::gojson::to_vec(self)
    }
}

/// The config blob (`application/vnd.docker.container.image.v1+json`). Field order
/// and omission rules follow Ollama's `ConfigV2`, so created configs hash the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub model_format: String,
    #[serde(default)]
    pub model_family: String,
    #[serde(default)]
    pub model_families: Option<Vec<String>>,
    /// Parameter size, e.g. `134.52M` (`details.parameter_size`).
    #[serde(default)]
    pub model_type: String,
    /// Quantization, e.g. `Q4_K_M` (`details.quantization_level`).
    #[serde(default)]
    pub file_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub renderer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parser: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requires: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_model: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub context_length: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub embedding_length: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_name: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub rootfs: RootFs,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Option<Vec<String>>,
}

impl ModelConfig {
    /// The OCI filler Ollama always writes (`amd64`, `linux`, rootfs of type `layers`).
    pub fn new() -> ModelConfig {
        ModelConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: None,
            },
            ..ModelConfig::default()
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        super::gojson::to_vec(self)
    }
}

/// `details` of `/api/tags`, `/api/show` and `/api/ps` (no field is omitted;
/// `families` is `null` when the config has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDetails {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    pub families: Option<Vec<String>>,
    pub parameter_size: String,
    pub quantization_level: String,
}

impl ModelDetails {
    pub fn from_config(config: &ModelConfig, parent_model: &str) -> ModelDetails {
        ModelDetails {
            parent_model: parent_model.to_string(),
            format: config.model_format.clone(),
            family: config.model_family.clone(),
            families: config.model_families.clone(),
            parameter_size: config.model_type.clone(),
            quantization_level: config.file_type.clone(),
        }
    }
}

/// A MESSAGE history entry (the `messages` layer holds a JSON array of these).
/// Field order and omission follow Ollama's `api.Message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
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

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff";
    const D2: &str = "sha256:34bb5ab01051a11372a91f95f3fbbc51173eed8e7f13ec395b9ae9b8bd0e242b";

    #[test]
    fn manifest_round_trip_matches_go_encoding() {
        let mut model = Layer::new(MEDIA_TYPE_MODEL, &Digest::parse(D1).unwrap(), 2019377376);
        model.from = "llama3.2:latest".into();
        let m = Manifest::new(
            Layer::new(MEDIA_TYPE_CONFIG, &Digest::parse(D2).unwrap(), 561),
            vec![model],
        );
        let bytes = m.to_bytes();
        let expect = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{MEDIA_TYPE_MANIFEST}\",\"config\":{{\"mediaType\":\"{MEDIA_TYPE_CONFIG}\",\"digest\":\"{D2}\",\"size\":561}},\"layers\":[{{\"mediaType\":\"{MEDIA_TYPE_MODEL}\",\"digest\":\"{D1}\",\"size\":2019377376,\"from\":\"llama3.2:latest\"}}]}}\n"
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expect);
        assert_eq!(Manifest::from_slice(&bytes).unwrap(), m);
        assert_eq!(m.total_size(), 2019377376 + 561);
    }

    #[test]
    fn hostile_manifest_digests_are_rejected() {
        for digest in ["../../../../etc/passwd", "sha256:../../x", "", "sha256-zz"] {
            let json = format!(
                "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"{D2}\"}},\"layers\":[{{\"digest\":\"{digest}\"}}]}}"
            );
            assert!(matches!(
                Manifest::from_slice(json.as_bytes()),
                Err(StoreError::InvalidDigest(_))
            ));
        }
        let json = "{\"config\":{\"digest\":\"sha256:/etc/passwd\"},\"layers\":[]}";
        assert!(matches!(
            Manifest::from_slice(json.as_bytes()),
            Err(StoreError::InvalidDigest(_))
        ));
        assert!(matches!(
            Manifest::from_slice(b"{not json"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn config_encoding() {
        let mut c = ModelConfig::new();
        c.model_format = "gguf".into();
        c.model_family = "llama".into();
        c.model_families = Some(vec!["llama".into()]);
        c.model_type = "134.52M".into();
        c.file_type = "Q4_1".into();
        c.rootfs.diff_ids = Some(vec![D1.into()]);
        assert_eq!(
            String::from_utf8(c.to_bytes()).unwrap(),
            format!("{{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":[\"llama\"],\"model_type\":\"134.52M\",\"file_type\":\"Q4_1\",\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{D1}\"]}}}}\n")
        );
        // Configs written by other versions (no rootfs, extra fields) still read.
        let c: ModelConfig = serde_json::from_str(
            "{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":null,\"model_type\":\"3.2B\",\"file_type\":\"Q4_K_M\",\"architecture\":\"amd64\",\"os\":\"linux\",\"generation_defaults\":{}}",
        )
        .unwrap();
        assert_eq!(c.model_type, "3.2B");
        assert_eq!(c.model_families, None);
    }
}

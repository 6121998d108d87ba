//! Hyper-parameters of a decoder model, read from GGUF metadata (`<arch>.*` keys)
//! and validated before anything is allocated from them.

use crate::gguf::GgufFile;

/// Architectures the decoder graph covers, and the flags that make them differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Gemma3,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma3 => "gemma3",
        }
    }
}

pub use kernels::ops::RopeStyle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_style: RopeStyle,
    /// Dimensions of each head that RoPE rotates.
    pub n_rot: usize,
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (gemma3 local layers), when it differs.
    pub rope_base_swa: f32,
    /// Sliding window of local layers; 0 = every layer attends to the whole context.
    pub sliding_window: usize,
    /// Every `swa_period`-th layer (1-based) is global; the others use the window.
    pub swa_period: usize,
    pub activation: Activation,
    /// Multiplier applied to token embeddings (gemma: sqrt(n_embd)).
    pub embd_scale: f32,
    /// Attention logit scale (1/sqrt(head_dim) unless the model says otherwise).
    pub attn_scale: f32,
    /// Whether llama.cpp applies `attn_scale` to the queries before attention
    /// (gemma) rather than to the scores: the f16 rounding of the queries differs
    /// where the scaled values are f16-subnormal.
    pub scale_queries: bool,
    /// tanh soft-capping of the final logits, when the metadata asks for it.
    pub final_logit_softcap: Option<f32>,
}

/// Limits that keep a hostile file from making us allocate absurd buffers.
const MAX_LAYERS: usize = 1024;
const MAX_EMBD: usize = 1 << 16;
const MAX_HEADS: usize = 1024;
const MAX_HEAD_DIM: usize = 1024;
const MAX_VOCAB: usize = 1 << 22;

impl HParams {
    pub fn from_gguf(f: &GgufFile) -> Result<HParams, String> {
        let arch_name = f
            .get_str("general.architecture")
            .map_err(|e| e.to_string())?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| {
            format!(
                "unsupported model architecture '{arch_name}' (ferrite runs llama, qwen2, gemma3)"
            )
        })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let req =
            |k: &str| -> Result<usize, String> { f.get_usize(&key(k)).map_err(|e| e.to_string()) };
        let opt = |k: &str| f.get_usize_opt(&key(k)).map_err(|e| e.to_string());
        let optf = |k: &str| f.get_f32_opt(&key(k)).map_err(|e| e.to_string());

        let n_layer = req("block_count")?;
        let n_embd = req("embedding_length")?;
        let n_ff = req("feed_forward_length")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = opt("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ctx_train = req("context_length")?;
        if n_head == 0 || n_head > MAX_HEADS {
            return Err(format!(
                "{}: {n_head} is not a usable head count",
                key("attention.head_count")
            ));
        }
        let head_dim_k = opt("attention.key_length")?.unwrap_or(n_embd / n_head);
        let head_dim_v = opt("attention.value_length")?.unwrap_or(n_embd / n_head);
        let n_vocab = match opt("vocab_size")? {
            Some(v) => v,
            None => f
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .map(|a| a.len())
                .ok_or(
                    "neither <arch>.vocab_size nor tokenizer.ggml.tokens gives the vocabulary size",
                )?,
        };

        let check = |name: &str, v: usize, lo: usize, hi: usize| -> Result<(), String> {
            if v < lo || v > hi {
                Err(format!("{}: {v} is outside {lo}..={hi}", key(name)))
            } else {
                Ok(())
            }
        };
        check("block_count", n_layer, 1, MAX_LAYERS)?;
        check("embedding_length", n_embd, 1, MAX_EMBD)?;
        check("feed_forward_length", n_ff, 1, MAX_EMBD * 16)?;
        check("attention.head_count_kv", n_head_kv, 1, n_head)?;
        check("attention.key_length", head_dim_k, 1, MAX_HEAD_DIM)?;
        check("attention.value_length", head_dim_v, 1, MAX_HEAD_DIM)?;
        check("vocab_size", n_vocab, 1, MAX_VOCAB)?;
        check("context_length", n_ctx_train, 1, 1 << 24)?;
        if n_head % n_head_kv != 0 {
            return Err(format!(
                "{} ({n_head}) is not a multiple of {} ({n_head_kv})",
                key("attention.head_count"),
                key("attention.head_count_kv")
            ));
        }
        if head_dim_k % 2 != 0 {
            return Err(format!(
                "{}: head size {head_dim_k} is odd; RoPE needs pairs",
                key("attention.key_length")
            ));
        }

        let rms_eps = optf("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5);
        let rope_base = optf("rope.freq_base")?.unwrap_or(10_000.0);
        let n_rot = opt("rope.dimension_count")?.unwrap_or(head_dim_k);
        if n_rot == 0 || n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(format!(
                "{}: {n_rot} does not fit head size {head_dim_k}",
                key("rope.dimension_count")
            ));
        }
        if !(rms_eps > 0.0 && rms_eps < 1.0 && rope_base > 1.0 && rope_base.is_finite()) {
            return Err(format!(
                "{arch_name}: implausible rms epsilon {rms_eps} or rope base {rope_base}"
            ));
        }
        let final_logit_softcap = optf("final_logit_softcapping")?.filter(|&c| c > 0.0);

        let mut hp = HParams {
            arch,
            n_vocab,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ctx_train,
            rms_eps,
            rope_style: RopeStyle::Normal,
            n_rot,
            rope_base,
            rope_base_swa: rope_base,
            sliding_window: 0,
            swa_period: 0,
            activation: Activation::Silu,
            embd_scale: 1.0,
            attn_scale: 1.0 / (head_dim_k as f32).sqrt(),
            scale_queries: false,
            final_logit_softcap,
        };
        match arch {
            Arch::Llama => {}
            Arch::Qwen2 => hp.rope_style = RopeStyle::Neox,
            Arch::Gemma3 => {
                hp.rope_style = RopeStyle::Neox;
                hp.activation = Activation::GeluTanh;
                hp.embd_scale = (n_embd as f32).sqrt();
                // As llama.cpp: local layers use base 10000, every 6th layer is global.
                hp.rope_base_swa = 10_000.0;
                hp.sliding_window = opt("attention.sliding_window")?.unwrap_or(0);
                hp.swa_period = 6;
                hp.scale_queries = true;
                if let Some(s) = optf("attention.query_pre_attn_scalar")? {
                    hp.attn_scale = 1.0 / s.sqrt();
                }
            }
        }
        Ok(hp)
    }

    /// True when layer `il` attends only within the sliding window.
    pub fn is_swa_layer(&self, il: usize) -> bool {
        self.sliding_window > 0 && self.swa_period > 0 && !(il + 1).is_multiple_of(self.swa_period)
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim_k
    }
    pub fn kv_dim_k(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }
    pub fn kv_dim_v(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }
}

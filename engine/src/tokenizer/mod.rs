//! Tokenizers built from GGUF metadata, matching llama.cpp's `llama-vocab.cpp` token for token.
//!
//! Two vocabulary kinds are supported:
//! - byte-level BPE (`tokenizer.ggml.model = "gpt2"`): a pre-tokenizer chosen by
//!   `tokenizer.ggml.pre` splits text into words, each word is mapped through GPT-2's
//!   byte → unicode table and merged by merge rank;
//! - SentencePiece (`"llama"`): spaces become `▁`, then characters are merged pairwise by the
//!   highest token score, with `<0xNN>` byte tokens for anything left unknown.
//!
//! Special tokens (control, user-defined, unknown) are cut out of the text first, as llama.cpp's
//! `tokenizer_st_partition` does: user-defined tokens always, control/unknown ones only when the
//! caller asks for it (`parse_special`, meant for chat templates).

mod pretok;
mod unicode;
mod unicode_data;

use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;

pub use pretok::{pre_config, PreConfig, DEFAULT_PRE};

use crate::gguf::{Array, GgufFile};
use pretok::PreTokenizer;

/// llama.cpp's token attributes (`llama_token_attr`), derived from `tokenizer.ggml.token_type`.
pub mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;

    /// GGUF `token_type` value → attribute (`LLAMA_TOKEN_TYPE_*`).
    pub fn from_token_type(t: i32) -> u32 {
        match t {
            1 => NORMAL,
            2 => UNKNOWN,
            3 => CONTROL,
            4 => USER_DEFINED,
            5 => UNUSED,
            6 => BYTE,
            _ => UNDEFINED,
        }
    }
}

/// Largest vocabulary / merge list we accept (token ids are `i32` in llama.cpp; real
/// vocabularies are below 2^20).
pub const MAX_VOCAB: usize = 1 << 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerError(String);

impl TokenizerError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tokenizer: {}", self.0)
    }
}

impl std::error::Error for TokenizerError {}

type Result<T> = std::result::Result<T, TokenizerError>;

/// Special token ids as stored in the metadata (`tokenizer.ggml.*_token_id`); `None` = absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Everything the tokenizer is built from: the `tokenizer.ggml.*` metadata as plain data.
#[derive(Clone, Debug, Default)]
pub struct TokenizerData {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`; `None` means llama.cpp's `default` pre-tokenizer.
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub scores: Option<Vec<f32>>,
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` ("left right", by rank); required for BPE.
    pub merges: Option<Vec<String>>,
    pub special: SpecialIds,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
}

/// Construction options.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenizerOptions {
    /// Use llama.cpp's `default` pre-tokenizer for an unrecognised `tokenizer.ggml.pre` instead
    /// of failing (tokenization will then likely differ from the model's training).
    pub allow_unknown_pre: bool,
}

/// Vocabulary kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// Byte-level BPE (`gpt2`).
    Bpe,
    /// SentencePiece (`llama`).
    Spm,
}

/// Resolved special tokens (after llama.cpp's defaults, metadata and text-based detection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

struct Bpe {
    pre: PreTokenizer,
    cfg: PreConfig,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    byte_chars: [char; 256],
    /// Mapped character → byte (every mapped character is below U+0200).
    byte_inverse: Box<[Option<u8>; 512]>,
    /// Per-word results, shared across calls.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

struct Spm {
    /// `<0xNN>` token per byte (or the one-byte token), llama.cpp `byte_to_token`.
    byte_tokens: [Option<u32>; 256],
}

enum Model {
    Bpe(Box<Bpe>),
    Spm(Box<Spm>),
}

type TrieNode = (Vec<(u8, u32)>, Option<u32>);

/// BPE work queue entry: (rank, left, right, left id, right id, merged id), smallest first.
type BpeBigram = std::cmp::Reverse<(u32, usize, usize, u32, u32, u32)>;

/// Byte trie over special-token texts, to find which of them occur in a text at all.
#[derive(Default)]
struct Trie {
    /// Per node: sorted (byte, child) edges and the token ending here.
    nodes: Vec<TrieNode>,
}

impl Trie {
    fn insert(&mut self, key: &[u8], id: u32) {
        if self.nodes.is_empty() {
            self.nodes.push((Vec::new(), None));
        }
        let mut n = 0usize;
        for &b in key {
            let edges = &self.nodes[n].0;
            n = match edges.binary_search_by_key(&b, |e| e.0) {
                Ok(i) => edges[i].1 as usize,
                Err(i) => {
                    let child = self.nodes.len() as u32;
                    self.nodes[n].0.insert(i, (b, child));
                    self.nodes.push((Vec::new(), None));
                    child as usize
                }
            };
        }
        self.nodes[n].1 = Some(id);
    }

    /// Calls `f` for every token occurring anywhere in `text`.
    fn for_each_occurring(&self, text: &[u8], mut f: impl FnMut(u32)) {
        if self.nodes.is_empty() {
            return;
        }
        for start in 0..text.len() {
            let mut n = 0usize;
            for &b in &text[start..] {
                let edges = &self.nodes[n].0;
                match edges.binary_search_by_key(&b, |e| e.0) {
                    Ok(i) => n = edges[i].1 as usize,
                    Err(_) => break,
                }
                if let Some(id) = self.nodes[n].1 {
                    f(id);
                }
            }
        }
    }
}

/// A tokenizer equivalent to llama.cpp's `llama_vocab` for the supported vocabulary kinds.
pub struct Tokenizer {
    model: Model,
    tokens: Vec<String>,
    scores: Vec<f32>,
    attrs: Vec<u32>,
    token_to_id: HashMap<String, u32>,
    /// Rank of control / user-defined / unknown tokens in llama.cpp's partition order, longest
    /// text first (u32::MAX for other tokens).
    special_rank: Vec<u32>,
    special_trie: Trie,
    /// Rendered pieces with `special = true` (llama.cpp's `cache_token_to_piece`).
    pieces: Vec<Vec<u8>>,
    special: SpecialTokens,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("n_vocab", &self.tokens.len())
            .field("special", &self.special)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish_non_exhaustive()
    }
}

const BPE_CACHE_LIMIT: usize = 1 << 16;

/// Token texts llama.cpp treats as end-of-generation (and forces to control type).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// `strtol(text.substr(3, 2), 16)` of llama.cpp's `token_to_byte`, without its exceptions.
fn byte_of_byte_token(text: &str) -> u8 {
    let digits = text.as_bytes().get(3..).unwrap_or(&[]);
    let mut v = 0u8;
    for &d in digits.iter().take(2) {
        match (d as char).to_digit(16) {
            Some(x) => v = v.wrapping_mul(16).wrapping_add(x as u8),
            None => break,
        }
    }
    v
}

impl TokenizerData {
    /// Reads the `tokenizer.ggml.*` metadata of a GGUF file. Keys of the wrong type are errors;
    /// absent optional keys are `None`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let get = |key: &str| file.get(key);
        let wrong = |key: &str, want: &str| {
            TokenizerError::new(format!("{key} has the wrong type (expected {want})"))
        };
        let string = |key: &str| -> Result<Option<String>> {
            get(key)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong(key, "string"))
                })
                .transpose()
        };
        let flag = |key: &str| -> Result<Option<bool>> {
            get(key)
                .map(|v| v.as_bool().ok_or_else(|| wrong(key, "bool")))
                .transpose()
        };
        let id = |key: &str| -> Result<Option<u32>> {
            get(key)
                .map(|v| {
                    v.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| wrong(key, "u32"))
                })
                .transpose()
        };
        let strings = |key: &str| -> Result<Option<Vec<String>>> {
            get(key)
                .map(|v| {
                    v.as_array()
                        .and_then(Array::as_strings)
                        .map(<[String]>::to_vec)
                        .ok_or_else(|| wrong(key, "array of strings"))
                })
                .transpose()
        };
        let model = string("tokenizer.ggml.model")?
            .ok_or_else(|| TokenizerError::new("tokenizer.ggml.model is missing"))?;
        let tokens = strings("tokenizer.ggml.tokens")?
            .ok_or_else(|| TokenizerError::new("tokenizer.ggml.tokens is missing"))?;
        // Scores may be stored as f32 or i32 (llama.cpp accepts both).
        let scores = match get("tokenizer.ggml.scores").map(|v| v.as_array()) {
            None => None,
            Some(Some(Array::F32(v))) => Some(v.clone()),
            Some(Some(Array::I32(v))) => Some(v.iter().map(|&x| x as f32).collect()),
            Some(_) => return Err(wrong("tokenizer.ggml.scores", "array of f32 or i32")),
        };
        let token_types = match get("tokenizer.ggml.token_type").map(|v| v.as_array()) {
            None => None,
            Some(Some(Array::I32(v))) => Some(v.clone()),
            Some(_) => return Err(wrong("tokenizer.ggml.token_type", "array of i32")),
        };
        Ok(TokenizerData {
            model,
            pre: string("tokenizer.ggml.pre")?,
            tokens,
            scores,
            token_types,
            merges: strings("tokenizer.ggml.merges")?,
            special: SpecialIds {
                bos: id("tokenizer.ggml.bos_token_id")?,
                eos: id("tokenizer.ggml.eos_token_id")?,
                eot: id("tokenizer.ggml.eot_token_id")?,
                eom: id("tokenizer.ggml.eom_token_id")?,
                unk: id("tokenizer.ggml.unknown_token_id")?,
                sep: id("tokenizer.ggml.seperator_token_id")?,
                pad: id("tokenizer.ggml.padding_token_id")?,
                mask: id("tokenizer.ggml.mask_token_id")?,
                fim_pre: id("tokenizer.ggml.fim_pre_token_id")?
                    .or(id("tokenizer.ggml.prefix_token_id")?),
                fim_suf: id("tokenizer.ggml.fim_suf_token_id")?
                    .or(id("tokenizer.ggml.suffix_token_id")?),
                fim_mid: id("tokenizer.ggml.fim_mid_token_id")?
                    .or(id("tokenizer.ggml.middle_token_id")?),
                fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
                fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
                fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
            },
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
        })
    }
}

impl Tokenizer {
    /// Builds the tokenizer of a GGUF model (`tokenizer.ggml.*` metadata).
    pub fn from_gguf(file: &GgufFile, opts: TokenizerOptions) -> Result<Self> {
        Self::new(TokenizerData::from_gguf(file)?, opts)
    }

    /// Builds the tokenizer from metadata, applying llama.cpp's defaults and checks.
    pub fn new(data: TokenizerData, opts: TokenizerOptions) -> Result<Self> {
        let TokenizerData {
            model,
            pre,
            tokens,
            scores,
            token_types,
            merges,
            special: meta_ids,
            add_bos: meta_add_bos,
            add_eos: meta_add_eos,
            add_space_prefix: meta_space_prefix,
        } = data;
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::new(
                "empty vocabulary (tokenizer.ggml.tokens)",
            ));
        }
        if n > MAX_VOCAB {
            return Err(TokenizerError::new(format!(
                "vocabulary too large: {n} tokens"
            )));
        }
        if let Some(s) = &scores {
            if s.len() != n {
                return Err(TokenizerError::new(format!(
                    "tokenizer.ggml.scores has {} entries for {n} tokens",
                    s.len()
                )));
            }
        }
        if let Some(t) = &token_types {
            if t.len() != n {
                return Err(TokenizerError::new(format!(
                    "tokenizer.ggml.token_type has {} entries for {n} tokens",
                    t.len()
                )));
            }
        }

        let mut tokens = tokens;
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
            if let Some(prev) = token_to_id.insert(t.clone(), i as u32) {
                return Err(TokenizerError::new(format!(
                    "duplicate token {t:?} (ids {prev} and {i})"
                )));
            }
        }
        let scores = scores.unwrap_or_else(|| vec![0.0; n]);
        let mut attrs: Vec<u32> = match &token_types {
            Some(t) => t.iter().map(|&x| attr::from_token_type(x)).collect(),
            None => vec![attr::NORMAL; n],
        };

        // Model kind, its default special ids and flags (llama.cpp `load`).
        let (
            kind,
            mut special,
            mut add_bos,
            mut add_eos,
            mut add_space_prefix,
            clean_spaces,
            pre_cfg,
        );
        match model.as_str() {
            "llama" => {
                kind = VocabKind::Spm;
                special = SpecialTokens {
                    bos: Some(1),
                    eos: Some(2),
                    unk: Some(0),
                    ..Default::default()
                };
                add_bos = true;
                add_eos = false;
                add_space_prefix = true;
                clean_spaces = false;
                pre_cfg = None;
            }
            "gpt2" => {
                kind = VocabKind::Bpe;
                special = SpecialTokens {
                    bos: Some(11),
                    eos: Some(11),
                    ..Default::default()
                };
                let cfg = match pre.as_deref() {
                    None | Some("") => DEFAULT_PRE,
                    Some(name) => match pre_config(name) {
                        Some(c) => c,
                        None if opts.allow_unknown_pre => DEFAULT_PRE,
                        None => {
                            return Err(TokenizerError::new(format!(
                                "unknown pre-tokenizer type {name:?} (tokenizer.ggml.pre)"
                            )))
                        }
                    },
                };
                add_bos = cfg.add_bos;
                add_eos = false;
                add_space_prefix = false;
                clean_spaces = cfg.clean_spaces;
                pre_cfg = Some(cfg);
            }
            other => {
                return Err(TokenizerError::new(format!(
                    "unsupported tokenizer model {other:?} (tokenizer.ggml.model)"
                )))
            }
        }
        if let Some(v) = meta_space_prefix {
            add_space_prefix = v;
        }

        // Defaults outside the vocabulary are disabled; metadata ids must be inside it.
        let in_vocab = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        for slot in [&mut special.bos, &mut special.eos, &mut special.unk] {
            *slot = in_vocab(*slot);
        }
        let meta = [
            ("bos", meta_ids.bos, &mut special.bos),
            ("eos", meta_ids.eos, &mut special.eos),
            ("eot", meta_ids.eot, &mut special.eot),
            ("eom", meta_ids.eom, &mut special.eom),
            ("unknown", meta_ids.unk, &mut special.unk),
            ("seperator", meta_ids.sep, &mut special.sep),
            ("padding", meta_ids.pad, &mut special.pad),
            ("mask", meta_ids.mask, &mut special.mask),
            ("fim_pre", meta_ids.fim_pre, &mut special.fim_pre),
            ("fim_suf", meta_ids.fim_suf, &mut special.fim_suf),
            ("fim_mid", meta_ids.fim_mid, &mut special.fim_mid),
            ("fim_pad", meta_ids.fim_pad, &mut special.fim_pad),
            ("fim_rep", meta_ids.fim_rep, &mut special.fim_rep),
            ("fim_sep", meta_ids.fim_sep, &mut special.fim_sep),
        ];
        for (name, id, slot) in meta {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(TokenizerError::new(format!(
                        "tokenizer.ggml.{name}_token_id = {id} is outside the vocabulary ({n} tokens)"
                    )));
                }
                *slot = Some(id);
            }
        }
        if let Some(v) = meta_add_bos {
            add_bos = v;
        }
        if let Some(v) = meta_add_eos {
            add_eos = v;
        }
        if add_bos && special.bos.is_none() {
            return Err(TokenizerError::new(
                "add_bos_token is true, but bos_token_id is not set",
            ));
        }
        if add_eos && special.eos.is_none() {
            return Err(TokenizerError::new(
                "add_eos_token is true, but eos_token_id is not set",
            ));
        }

        // Text-based detection of EOT/FIM tokens and the end-of-generation set; llama.cpp also
        // forces these tokens to control type, which changes how they are parsed and rendered.
        let mut by_text: Vec<(&str, u32)> =
            token_to_id.iter().map(|(k, &v)| (k.as_str(), v)).collect();
        by_text.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let find = |list: &[&str]| -> Option<u32> {
            // llama.cpp iterates an unordered map and keeps the first hit; with several
            // candidates present that order is unspecified, we take the earliest in `list`.
            list.iter().find_map(|t| token_to_id.get(*t).copied())
        };
        let mut force_control = Vec::new();
        for (slot, list) in [
            (&mut special.eot, EOT_TEXTS),
            (&mut special.eom, &["<|eom_id|>"][..]),
            (&mut special.fim_pre, FIM_PRE_TEXTS),
            (&mut special.fim_suf, FIM_SUF_TEXTS),
            (&mut special.fim_mid, FIM_MID_TEXTS),
            (&mut special.fim_pad, FIM_PAD_TEXTS),
            (&mut special.fim_rep, FIM_REP_TEXTS),
            (&mut special.fim_sep, FIM_SEP_TEXTS),
        ] {
            if slot.is_none() {
                *slot = find(list);
                force_control.extend(*slot);
            }
        }
        let mut eog: Vec<u32> = [special.fim_pad, special.fim_rep, special.fim_sep]
            .into_iter()
            .flatten()
            .collect();
        for t in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(*t) {
                eog.push(id);
                force_control.push(id);
            }
        }
        for id in force_control {
            attrs[id as usize] |= attr::CONTROL;
        }
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(&id) = token_to_id.get(t) {
                attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend(
            [special.eos, special.eot, special.eom]
                .into_iter()
                .flatten(),
        );
        eog.sort_unstable();
        eog.dedup();
        // o200k_harmony / solar-open: "<|end|>" is not end-of-generation there.
        let has = |eog: &[u32], t: &str| {
            token_to_id
                .get(t)
                .is_some_and(|id| eog.binary_search(id).is_ok())
        };
        if has(&eog, "<|end|>")
            && ((has(&eog, "<|return|>") && has(&eog, "<|call|>"))
                || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>")))
        {
            let end = token_to_id["<|end|>"];
            eog.retain(|&x| x != end);
            attrs[end as usize] = attr::USER_DEFINED;
        }
        if has(&eog, "<|tool_response>") && has(&eog, "</s>") {
            let s = token_to_id["</s>"];
            eog.retain(|&x| x != s);
            attrs[s as usize] = attr::NORMAL;
        }
        drop(by_text);

        // Special-token partition order: longest text first (ties by id for determinism;
        // llama.cpp's std::sort leaves them unspecified).
        let mut special_cache: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        special_cache.sort_by(|&a, &b| {
            tokens[b as usize]
                .len()
                .cmp(&tokens[a as usize].len())
                .then(a.cmp(&b))
        });
        let mut special_rank = vec![u32::MAX; n];
        let mut special_trie = Trie::default();
        for (rank, &id) in special_cache.iter().enumerate() {
            special_rank[id as usize] = rank as u32;
            special_trie.insert(tokens[id as usize].as_bytes(), id);
        }

        let model = match kind {
            VocabKind::Spm => {
                let mut byte_tokens = [None; 256];
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = token_to_id
                        .get(&format!("<0x{b:02X}>"))
                        .copied()
                        .or_else(|| {
                            char::from_u32(b as u32)
                                .filter(|c| c.is_ascii())
                                .and_then(|c| {
                                    token_to_id.get(c.encode_utf8(&mut [0; 4]) as &str).copied()
                                })
                        });
                }
                Model::Spm(Box::new(Spm { byte_tokens }))
            }
            VocabKind::Bpe => {
                let cfg = pre_cfg.expect("BPE has a pre-tokenizer config");
                let merges_list = merges.ok_or_else(|| {
                    TokenizerError::new("byte-level BPE vocabulary without tokenizer.ggml.merges")
                })?;
                if merges_list.len() > MAX_VOCAB {
                    return Err(TokenizerError::new(format!(
                        "too many merges: {}",
                        merges_list.len()
                    )));
                }
                let mut merge_map = HashMap::with_capacity(merges_list.len());
                for (rank, m) in merges_list.iter().enumerate() {
                    // llama.cpp splits at the first space after the first byte.
                    let pos = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1);
                    let Some(pos) = pos else {
                        return Err(TokenizerError::new(format!(
                            "merge {rank} ({m:?}) has no separator"
                        )));
                    };
                    let (left, right) = (&m[..pos], &m[pos + 1..]);
                    let id = |s: &str| {
                        token_to_id.get(s).copied().ok_or_else(|| {
                            TokenizerError::new(format!(
                                "merge {rank} ({m:?}) names unknown token {s:?}"
                            ))
                        })
                    };
                    let (l, r) = (id(left)?, id(right)?);
                    let merged = id(&format!("{left}{right}"))?;
                    // First occurrence wins, as with llama.cpp's `emplace`.
                    merge_map.entry((l, r)).or_insert((rank as u32, merged));
                }
                let pre = PreTokenizer::new(cfg.regexes).map_err(TokenizerError::new)?;
                let byte_chars = unicode::byte_to_char_table();
                let mut byte_inverse = Box::new([None; 512]);
                for (b, &c) in byte_chars.iter().enumerate() {
                    byte_inverse[c as usize] = Some(b as u8);
                }
                Model::Bpe(Box::new(Bpe {
                    pre,
                    cfg,
                    merges: merge_map,
                    byte_chars,
                    byte_inverse,
                    cache: Mutex::new(HashMap::new()),
                }))
            }
        };

        let mut tok = Tokenizer {
            model,
            tokens,
            scores,
            attrs,
            token_to_id,
            special_rank,
            special_trie,
            pieces: Vec::new(),
            special,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
        };
        tok.pieces = (0..n as u32).map(|id| tok.render_piece(id)).collect();
        Ok(tok)
    }

    pub fn kind(&self) -> VocabKind {
        match self.model {
            Model::Bpe(_) => VocabKind::Bpe,
            Model::Spm(_) => VocabKind::Spm,
        }
    }

    /// The pre-tokenizer configuration (BPE only).
    pub fn pre_config(&self) -> Option<PreConfig> {
        match &self.model {
            Model::Bpe(b) => Some(b.cfg),
            Model::Spm(_) => None,
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }
    pub fn bos(&self) -> Option<u32> {
        self.special.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.special.eos
    }
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// End-of-generation tokens (eos, eot, eom, `<|im_end|>`-like texts, FIM pad/rep/sep), sorted.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog
    }
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    /// Raw vocabulary text of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }
    /// llama.cpp token attributes (see [`attr`]).
    pub fn token_attr(&self, id: u32) -> Option<u32> {
        self.attrs.get(id as usize).copied()
    }
    /// Exact vocabulary lookup.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// `llama_tokenize(text, add_special, parse_special)`.
    ///
    /// `add_special` adds BOS/EOS as the model's metadata asks; `parse_special` lets control
    /// tokens written in the text (e.g. `<|im_start|>`) become those tokens — use it for chat
    /// templates, never for user text. User-defined tokens are recognised either way, as in
    /// llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let frags = self.partition(text, parse_special, &[]);
        self.encode_frags(text, add_special, &frags)
    }

    /// [`Tokenizer::encode`] of a rendered chat prompt with `parse_special`, except that
    /// control tokens written inside the `literal` byte ranges of `text` (the users' text
    /// that a template placed there) stay plain text. The fragments around them are the
    /// same as for `encode`, so text without such tokens tokenizes identically.
    pub fn encode_with_literals(
        &self,
        text: &str,
        add_special: bool,
        literal: &[Range<usize>],
    ) -> Vec<u32> {
        let frags = self.partition(text, true, literal);
        self.encode_frags(text, add_special, &frags)
    }

    /// Whether `text` holds the text of a control token: what `parse_special` would turn
    /// into that token.
    pub fn contains_control_text(&self, text: &str) -> bool {
        let mut found = false;
        self.special_trie.for_each_occurring(text.as_bytes(), |id| {
            found |= self.attrs[id as usize] & (attr::CONTROL | attr::UNKNOWN) != 0;
        });
        found
    }

    fn encode_frags(&self, text: &str, add_special: bool, frags: &[Frag]) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        match &self.model {
            Model::Spm(spm) => {
                if add_special && self.add_bos {
                    out.extend(self.special.bos);
                }
                let mut prev_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Frag::Text(r) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push(' ');
                            }
                            buf.push_str(&text[r.clone()]);
                            let escaped = buf.replace(' ', "\u{2581}");
                            self.spm_tokenize(spm, &escaped, &mut out);
                            prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(*id);
                            prev_special = true;
                        }
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.special.eos);
                }
            }
            Model::Bpe(bpe) => {
                if add_special && self.add_bos {
                    out.extend(self.special.bos);
                }
                let mut local: HashMap<&str, Vec<u32>> = HashMap::new();
                for f in frags {
                    match f {
                        Frag::Text(r) => {
                            let frag = &text[r.clone()];
                            for w in bpe.pre.split(frag) {
                                let word = &frag[w];
                                if let Some(ids) = local.get(word) {
                                    out.extend_from_slice(ids);
                                    continue;
                                }
                                let ids = self.bpe_word(bpe, word);
                                out.extend_from_slice(&ids);
                                local.insert(word, ids);
                            }
                        }
                        Frag::Token(id) => out.push(*id),
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.special.eos);
                }
            }
        }
        out
    }

    /// llama.cpp `tokenizer_st_partition`: cut special tokens out of the text, token by token in
    /// cache order, each at all its non-overlapping occurrences left to right.
    ///
    /// Control tokens overlapping a `literal` range are not cut out there.
    fn partition(&self, text: &str, parse_special: bool, literal: &[Range<usize>]) -> Vec<Frag> {
        if text.is_empty() {
            return Vec::new();
        }
        // Only tokens occurring in the whole text can occur in its fragments.
        let mut present = Vec::new();
        self.special_trie.for_each_occurring(text.as_bytes(), |id| {
            if parse_special || self.attrs[id as usize] & (attr::CONTROL | attr::UNKNOWN) == 0 {
                present.push(id);
            }
        });
        let mut frags = vec![Frag::Text(0..text.len())];
        if present.is_empty() {
            return frags;
        }
        present.sort_unstable_by_key(|&id| self.special_rank[id as usize]);
        present.dedup();
        for id in present {
            let needle = self.tokens[id as usize].as_str();
            let guarded = self.attrs[id as usize] & (attr::CONTROL | attr::UNKNOWN) != 0;
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(r) = f else {
                    next.push(f);
                    continue;
                };
                let mut start = r.start;
                let mut search = r.start;
                while let Some(p) = text[search..r.end].find(needle) {
                    let m = search + p;
                    let end = m + needle.len();
                    if guarded && literal.iter().any(|l| l.start < end && m < l.end) {
                        // Plain text here: look again after this occurrence's first char.
                        search = m + text[m..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    if m > start {
                        next.push(Frag::Text(start..m));
                    }
                    next.push(Frag::Token(id));
                    start = end;
                    search = end;
                }
                if start < r.end {
                    next.push(Frag::Text(start..r.end));
                }
            }
            frags = next;
        }
        frags
    }

    /// llama.cpp `llm_tokenizer_spm_session::tokenize` on whitespace-escaped text.
    fn spm_tokenize(&self, spm: &Spm, text: &str, out: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Sym {
            start: usize,
            len: usize,
            prev: i64,
            next: i64,
        }
        struct Bigram {
            score: f32,
            left: usize,
            right: usize,
            size: usize,
        }
        impl PartialEq for Bigram {
            fn eq(&self, o: &Self) -> bool {
                self.cmp(o).is_eq()
            }
        }
        impl Eq for Bigram {}
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Bigram {
            // Highest score first, then leftmost.
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
            }
        }

        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        for (i, (off, ch)) in text.char_indices().enumerate() {
            let len = ch.len_utf8();
            syms.push(Sym {
                start: off,
                len,
                prev: i as i64 - 1,
                next: if off + len == text.len() {
                    -1
                } else {
                    i as i64 + 1
                },
            });
        }
        if syms.is_empty() {
            return;
        }
        let mut heap = BinaryHeap::with_capacity(syms.len());
        let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: i64, r: i64| {
            if l < 0 || r < 0 {
                return;
            }
            let (a, b) = (syms[l as usize], syms[r as usize]);
            let piece = &text[a.start..b.start + b.len];
            if let Some(&id) = self.token_to_id.get(piece) {
                heap.push(Bigram {
                    score: self.scores[id as usize],
                    left: l as usize,
                    right: r as usize,
                    size: piece.len(),
                });
            }
        };
        for i in 1..syms.len() as i64 {
            try_add(&mut heap, &syms, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (syms[bg.left], syms[bg.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
                continue;
            }
            syms[bg.left].len += r.len;
            syms[bg.right].len = 0;
            syms[bg.left].next = r.next;
            if r.next >= 0 {
                syms[r.next as usize].prev = bg.left as i64;
            }
            let left = syms[bg.left];
            try_add(&mut heap, &syms, left.prev, bg.left as i64);
            try_add(&mut heap, &syms, bg.left as i64, left.next);
        }
        let mut i = 0i64;
        while i != -1 {
            let s = syms[i as usize];
            let piece = &text[s.start..s.start + s.len];
            match self.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                // A symbol that is not a token is a single character (merges only form
                // tokens): byte fallback. A byte without token is dropped (llama.cpp throws).
                None => out.extend(piece.bytes().filter_map(|b| spm.byte_tokens[b as usize])),
            }
            i = s.next;
        }
    }

    /// BPE of one pre-tokenized word (raw text), with a shared cache.
    fn bpe_word(&self, bpe: &Bpe, word: &str) -> Vec<u32> {
        if let Ok(cache) = bpe.cache.lock() {
            if let Some(ids) = cache.get(word) {
                return ids.clone();
            }
        }
        let mut mapped = String::with_capacity(word.len() * 2);
        for b in word.bytes() {
            mapped.push(bpe.byte_chars[b as usize]);
        }
        let ids = self.bpe_merge(bpe, &mapped);
        if let Ok(mut cache) = bpe.cache.lock() {
            if cache.len() >= BPE_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(word.to_string(), ids.clone());
        }
        ids
    }

    /// llama.cpp `llm_tokenizer_bpe_session::tokenize` for one byte-encoded word. Symbols carry
    /// token ids: every merge result is a token (checked at load), so comparing ids is the same
    /// as llama.cpp's comparison of symbol texts.
    fn bpe_merge(&self, bpe: &Bpe, word: &str) -> Vec<u32> {
        if bpe.cfg.ignore_merges {
            if let Some(&id) = self.token_to_id.get(word) {
                return vec![id];
            }
        }
        #[derive(Clone, Copy)]
        struct Sym {
            id: Option<u32>,
            alive: bool,
            prev: i64,
            next: i64,
        }
        let mut syms: Vec<Sym> = Vec::with_capacity(word.len() / 2);
        let mut buf = [0u8; 4];
        let n_chars = word.chars().count() as i64;
        for (i, ch) in word.chars().enumerate() {
            let i = i as i64;
            syms.push(Sym {
                id: self
                    .token_to_id
                    .get(ch.encode_utf8(&mut buf) as &str)
                    .copied(),
                alive: true,
                prev: i - 1,
                next: if i + 1 == n_chars { -1 } else { i + 1 },
            });
        }
        // Min-heap on (rank, left); entries remember the ids they were made from.
        let mut heap: BinaryHeap<BpeBigram> = BinaryHeap::new();
        let add = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: i64, r: i64| {
            if l < 0 || r < 0 {
                return;
            }
            let (a, b) = (syms[l as usize], syms[r as usize]);
            if let (Some(x), Some(y)) = (a.id, b.id) {
                if let Some(&(rank, merged)) = bpe.merges.get(&(x, y)) {
                    heap.push(std::cmp::Reverse((
                        rank, l as usize, r as usize, x, y, merged,
                    )));
                }
            }
        };
        for i in 1..syms.len() as i64 {
            add(&mut heap, &syms, i - 1, i);
        }
        while let Some(std::cmp::Reverse((_, l, r, x, y, merged))) = heap.pop() {
            let (a, b) = (syms[l], syms[r]);
            if !a.alive || !b.alive || a.id != Some(x) || b.id != Some(y) {
                continue;
            }
            syms[l].id = Some(merged);
            syms[r].alive = false;
            syms[l].next = b.next;
            if b.next >= 0 {
                syms[b.next as usize].prev = l as i64;
            }
            add(&mut heap, &syms, a.prev, l as i64);
            add(&mut heap, &syms, l as i64, b.next);
        }
        // Symbols that are not tokens are single mapped characters; llama.cpp then looks up
        // each of their UTF-8 bytes as a token, which can only succeed for ASCII, and an ASCII
        // character that is not a token is not one as a byte either: nothing is emitted.
        syms.iter()
            .filter(|s| s.alive)
            .filter_map(|s| s.id)
            .collect()
    }

    /// llama.cpp's `token_to_piece` rendering with `special = true` (the cached form).
    fn render_piece(&self, id: u32) -> Vec<u8> {
        let a = self.attrs[id as usize];
        let text = &self.tokens[id as usize];
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            return text.as_bytes().to_vec();
        }
        if a & attr::NORMAL != 0 {
            return match &self.model {
                Model::Spm(_) => text.replace('\u{2581}', " ").into_bytes(),
                Model::Bpe(bpe) => decode_byte_level(&bpe.byte_inverse, text),
            };
        }
        if a & attr::BYTE != 0 {
            return vec![byte_of_byte_token(text)];
        }
        Vec::new()
    }

    /// The bytes a token renders to (llama.cpp `token_to_piece` without lstrip). Control and
    /// unknown tokens render as nothing unless `special`. Pieces may be partial UTF-8
    /// characters. Out-of-range ids render as nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> &[u8] {
        let Some(a) = self.attrs.get(id as usize) else {
            return &[];
        };
        if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return &[];
        }
        &self.pieces[id as usize]
    }

    /// Text of a token sequence as a server streams it: the pieces (control tokens hidden)
    /// concatenated, invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            bytes.extend_from_slice(self.token_to_piece(id, false));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// llama.cpp `llama_detokenize(ids, remove_special, unparse_special)` as raw bytes: drops a
    /// leading BOS / trailing EOS when asked, strips the SentencePiece prefix space, and applies
    /// the vocabulary's `clean_spaces` rules.
    pub fn detokenize_bytes(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.special.bos {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special
            && self.add_eos
            && ids.last().copied() == self.special.eos
            && !ids.is_empty()
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut text = Vec::new();
        for &id in ids {
            let mut piece = self.token_to_piece(id, unparse_special);
            if remove_space && piece.first() == Some(&b' ') {
                piece = &piece[1..];
            }
            remove_space = false;
            text.extend_from_slice(piece);
        }
        if self.clean_spaces {
            text = clean_spaces(&text);
        }
        text
    }

    /// [`Self::detokenize_bytes`] as a string (invalid UTF-8 → U+FFFD).
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> String {
        String::from_utf8_lossy(&self.detokenize_bytes(ids, remove_special, unparse_special))
            .into_owned()
    }
}

enum Frag {
    Text(Range<usize>),
    Token(u32),
}

/// llama.cpp `llama_decode_text`: mapped characters back to bytes.
fn decode_byte_level(inverse: &[Option<u8>; 512], text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for ch in text.chars() {
        match inverse.get(ch as usize).copied().flatten() {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in ch.encode_utf8(&mut [0; 4]).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// The three `clean_spaces` passes of llama.cpp's `detokenize`.
fn clean_spaces(t: &[u8]) -> Vec<u8> {
    if t.is_empty() {
        return Vec::new();
    }
    // " ?", " !", " .", " ," lose their space.
    let mut a = vec![t[0]];
    for i in 1..t.len() {
        if t[i - 1] == b' ' && matches!(t[i], b'?' | b'!' | b'.' | b',') {
            a.pop();
        }
        a.push(t[i]);
    }
    // " ' " → "'".
    let mut b = vec![a[0]];
    let mut i = 1;
    while i < a.len() {
        let x = a[i];
        if x == b'\'' && i + 1 < a.len() && a[i - 1] == b' ' && a[i + 1] == b' ' {
            b.pop();
            b.push(x);
            i += 2;
            continue;
        }
        b.push(x);
        i += 1;
    }
    // " 's", " 'm", " 're", " 've" lose their space.
    let mut c = vec![b[0]];
    for i in 1..b.len() {
        let x = b[i];
        if b[i - 1] == b' ' && x == b'\'' && i + 1 < b.len() {
            let x1 = b[i + 1];
            let drop = matches!(x1, b's' | b'm')
                || (i + 2 < b.len() && matches!((x1, b[i + 2]), (b'r', b'e') | (b'v', b'e')));
            if drop {
                c.pop();
            }
        }
        c.push(x);
    }
    c
}

/// Incremental detokenizer for streaming: emits text only in whole UTF-8 characters, holding
/// back the bytes of a character split across tokens until it completes. Bytes that can no
/// longer form a valid character become U+FFFD.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    special: bool,
}

impl StreamDecoder {
    /// Control tokens are not rendered (like [`Tokenizer::decode`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// `special = true` renders control tokens as their text.
    pub fn with_special(special: bool) -> Self {
        Self {
            pending: Vec::new(),
            special,
        }
    }

    /// Adds one token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        let piece = tok.token_to_piece(id, self.special);
        self.push_bytes(piece)
    }

    /// Adds raw bytes; returns the newly completed text.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut i = 0;
        loop {
            match std::str::from_utf8(&self.pending[i..]) {
                Ok(s) => {
                    out.push_str(s);
                    i = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[i..i + valid]).expect("validated prefix"),
                    );
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            i += valid + bad;
                        }
                        None => {
                            i += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..i);
        out
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: an incomplete trailing character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests;

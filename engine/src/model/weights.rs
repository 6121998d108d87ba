//! The model's tensors as zero-copy views over the GGUF mapping, checked
//! against the hyper-parameters once at load time.

use super::hparams::{Arch, HParams};
use crate::gguf::{GgufFile, Tensor};
use kernels::dispatch::{self, TypeKernels};
use kernels::GgmlType;

/// A weight matrix of `rows` outputs × `cols` inputs, still in its file type.
#[derive(Clone)]
pub struct Matrix {
    pub name: String,
    pub tensor: Tensor,
    pub rows: usize,
    pub cols: usize,
    pub kernels: TypeKernels,
    /// For a batch's tokens in whole groups of four, where llama.cpp multiplies
    /// them with other roundings than single tokens (its repacked Q4_K gemm);
    /// `kernels` then reproduces its gemv.
    pub batch4: Option<TypeKernels>,
    /// For batches of 8+ tokens, where llama.cpp multiplies with its tiled
    /// K-quant kernels (other roundings than single tokens).
    pub batch8: Option<TypeKernels>,
}

impl Matrix {
    pub fn bytes(&self) -> &[u8] {
        self.tensor.bytes()
    }
    pub fn dtype(&self) -> GgmlType {
        self.tensor.dtype()
    }
    /// Dequantize row `r` into `out` (embedding lookup).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let rb = self.dtype().row_bytes(self.cols).expect("checked at load");
        let bytes = &self.bytes()[r * rb..(r + 1) * rb];
        dispatch::dequantizer(self.dtype())(bytes, out);
    }
}

pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub wo: Matrix,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Matrix,
    pub w_up: Matrix,
    pub w_down: Matrix,
    pub post_ffn_norm: Option<Vec<f32>>,
}

pub struct Weights {
    pub token_embd: Matrix,
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>,
    /// The output projection; the token embedding when the model ties them.
    pub output: Matrix,
}

fn missing(name: &str) -> String {
    format!("tensor '{name}' is missing from the model file")
}

fn matrix(f: &GgufFile, name: &str, rows: usize, cols: usize) -> Result<Matrix, String> {
    let tensor = f.tensor_view(name).ok_or_else(|| missing(name))?;
    let dims = tensor.dims();
    if dims.len() != 2 || dims[0] != cols as u64 || dims[1] != rows as u64 {
        return Err(format!(
            "tensor '{name}' has shape {dims:?}, expected [{cols}, {rows}]"
        ));
    }
    let kernels = dispatch::kernels_for_models(tensor.dtype()).ok_or_else(|| {
        format!(
            "tensor '{name}': ferrite cannot multiply {} weights",
            tensor.dtype()
        )
    })?;
    if tensor.dtype().row_bytes(cols).is_none() {
        return Err(format!(
            "tensor '{name}': {cols} columns is not whole {} blocks",
            tensor.dtype()
        ));
    }
    // llama.cpp repacks the matrices of its matrix products, but not the token
    // embedding (a row lookup), even when the output layer shares it.
    let (kernels, batch4) = match dispatch::llama_repacked(tensor.dtype(), rows) {
        Some((single, batch4)) if name != "token_embd.weight" => (single, Some(batch4)),
        _ => (kernels, None),
    };
    let batch8 = dispatch::llama_tiled(tensor.dtype());
    Ok(Matrix {
        name: name.to_string(),
        tensor,
        rows,
        cols,
        kernels,
        batch4,
        batch8,
    })
}

fn vector(f: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, String> {
    let tensor = f.tensor_view(name).ok_or_else(|| missing(name))?;
    let n: u64 = tensor.dims().iter().product();
    if n != len as u64 {
        return Err(format!("tensor '{name}' has {n} elements, expected {len}"));
    }
    let mut out = vec![0f32; len];
    dispatch::dequantizer(tensor.dtype())(tensor.bytes(), &mut out);
    Ok(out)
}

fn opt_vector(f: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>, String> {
    if f.tensor(name).is_none() {
        return Ok(None);
    }
    vector(f, name, len).map(Some)
}

impl Weights {
    pub fn from_gguf(f: &GgufFile, hp: &HParams) -> Result<Weights, String> {
        let d = hp.n_embd;
        let token_embd = matrix(f, "token_embd.weight", hp.n_vocab, d)?;
        let output = if f.tensor("output.weight").is_some() {
            matrix(f, "output.weight", hp.n_vocab, d)?
        } else {
            token_embd.clone()
        };
        let gemma = hp.arch == Arch::Gemma3;
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let req_if = |cond: bool, name: &str, len: usize| -> Result<Option<Vec<f32>>, String> {
                if cond {
                    vector(f, name, len).map(Some)
                } else {
                    opt_vector(f, name, len)
                }
            };
            layers.push(Layer {
                attn_norm: vector(f, &n("attn_norm.weight"), d)?,
                wq: matrix(f, &n("attn_q.weight"), hp.q_dim(), d)?,
                wk: matrix(f, &n("attn_k.weight"), hp.kv_dim_k(), d)?,
                wv: matrix(f, &n("attn_v.weight"), hp.kv_dim_v(), d)?,
                wo: matrix(f, &n("attn_output.weight"), d, hp.n_head * hp.head_dim_v)?,
                bq: req_if(hp.arch == Arch::Qwen2, &n("attn_q.bias"), hp.q_dim())?,
                bk: req_if(hp.arch == Arch::Qwen2, &n("attn_k.bias"), hp.kv_dim_k())?,
                bv: req_if(hp.arch == Arch::Qwen2, &n("attn_v.bias"), hp.kv_dim_v())?,
                q_norm: req_if(gemma, &n("attn_q_norm.weight"), hp.head_dim_k)?,
                k_norm: req_if(gemma, &n("attn_k_norm.weight"), hp.head_dim_k)?,
                post_attn_norm: req_if(gemma, &n("post_attention_norm.weight"), d)?,
                ffn_norm: vector(f, &n("ffn_norm.weight"), d)?,
                w_gate: matrix(f, &n("ffn_gate.weight"), hp.n_ff, d)?,
                w_up: matrix(f, &n("ffn_up.weight"), hp.n_ff, d)?,
                w_down: matrix(f, &n("ffn_down.weight"), d, hp.n_ff)?,
                post_ffn_norm: req_if(gemma, &n("post_ffw_norm.weight"), d)?,
            });
        }
        Ok(Weights {
            token_embd,
            layers,
            output_norm: vector(f, "output_norm.weight", d)?,
            output,
        })
    }
}

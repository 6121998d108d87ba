//! Where a model's layers go: Ollama's `num_gpu` over ferrite's wgpu backend.
//!
//! - `0`: CPU only.
//! - `N > 0`: the last `N` layers and the output on the GPU, the rest on the CPU; `N` at or
//!   above the layer count puts everything (embeddings included) on the GPU.
//! - negative (`-1`, Ollama's default): as many layers as fit when a real GPU adapter
//!   exists (wgpu device type other than `Cpu`); CPU only otherwise, so a software driver
//!   such as lavapipe is used only when asked for explicitly.
//!
//! An explicit `num_gpu` that cannot be honoured (no adapter, the model does not fit)
//! falls back to the CPU with a log line, as Ollama does.

use engine::model::{HParams, Model};
use ferrite_shaders::{adapters, GpuContext, GpuError, GpuModel};
use std::sync::{Arc, OnceLock};

/// The one GPU device of this process, opened on first need and shared by every model.
/// The outcome (also a failure) is kept: adapters do not come and go while serving.
pub fn shared_context() -> Result<Arc<GpuContext>, GpuError> {
    static CTX: OnceLock<Result<Arc<GpuContext>, GpuError>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::from_env().map(Arc::new))
        .clone()
}

/// Whether the default placement may use the GPU: an adapter that is a real GPU. Checked
/// without opening a device, so CPU-only machines pay for one adapter enumeration only.
pub fn real_gpu_present() -> bool {
    static REAL: OnceLock<bool> = OnceLock::new();
    *REAL.get_or_init(|| {
        if std::env::var("FERRITE_GPU_DEVICE").is_ok_and(|s| !s.trim().is_empty()) {
            // An explicit device choice: the device itself decides.
            return shared_context().is_ok_and(|c| !c.adapter().is_cpu);
        }
        adapters().iter().any(|a| {
            matches!(
                a.device_type.as_str(),
                "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu"
            )
        })
    })
}

/// What the KV caches of a loaded model will hold.
#[derive(Debug, Clone, Copy)]
pub struct KvShape {
    pub num_parallel: usize,
    pub num_ctx: usize,
}

/// f16 keys and values of one layer for every slot, as `GpuModel::new_cache` allocates.
pub fn kv_bytes_per_layer(hp: &HParams, kv: KvShape) -> u64 {
    (kv.num_parallel as u64)
        .saturating_mul(kv.num_ctx.max(1) as u64)
        .saturating_mul((hp.kv_dim_k() + hp.kv_dim_v()) as u64)
        .saturating_mul(2)
}

fn vec_bytes(v: &Option<Vec<f32>>) -> u64 {
    v.as_ref().map_or(0, |v| v.len() as u64 * 4)
}

/// Bytes of layer `il`'s weights (as stored: the GPU's repacked layouts are the same size
/// give or take the alignment padding).
pub fn layer_weight_bytes(model: &Model, il: usize) -> u64 {
    let l = &model.weights.layers[il];
    let mats = [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
        .iter()
        .map(|m| m.bytes().len() as u64)
        .sum::<u64>();
    let vecs = (l.attn_norm.len() + l.ffn_norm.len()) as u64 * 4
        + [
            &l.bq,
            &l.bk,
            &l.bv,
            &l.q_norm,
            &l.k_norm,
            &l.post_attn_norm,
            &l.post_ffn_norm,
        ]
        .iter()
        .map(|v| vec_bytes(v))
        .sum::<u64>();
    mats + vecs
}

/// Bytes the CPU holds for a model whose last `gpu_layers` layers are on the GPU: the
/// embeddings and the CPU layers' weights (nothing with every layer on the GPU).
pub fn cpu_weight_bytes(model: &Model, gpu_layers: usize) -> u64 {
    let n = model.hp.n_layer;
    let first = n - gpu_layers.min(n);
    if first == 0 {
        return 0;
    }
    model.weights.token_embd.bytes().len() as u64
        + (0..first)
            .map(|il| layer_weight_bytes(model, il))
            .sum::<u64>()
}

/// GPU memory this process may plan with. wgpu exposes no memory size or budget, so this
/// is a conservative guess by device type — 4 GiB for a discrete GPU (the smallest common
/// size today), 2 GiB for integrated and virtual ones, which share system memory — less
/// `OLLAMA_GPU_OVERHEAD`. `FERRITE_GPU_MEMORY` (bytes) replaces the guess.
fn memory_budget(ctx: &GpuContext, overhead: u64) -> u64 {
    let guess = std::env::var("FERRITE_GPU_MEMORY")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(match ctx.adapter().device_type.as_str() {
            "DiscreteGpu" => 4 << 30,
            _ => 2 << 30,
        });
    guess.saturating_sub(overhead)
}

/// Layers (from the last) that fit in `budget` bytes: each takes its weights and KV
/// caches; the output projection, output norm, activations and (for all layers) the
/// token embeddings come first.
pub fn layers_that_fit(model: &Model, kv: KvShape, budget: u64) -> usize {
    let hp = &model.hp;
    let w = &model.weights;
    // Activations of one 512-token chunk (the GPU arena): a rough upper bound.
    let arena = 512u64
        * (6 * hp.n_embd + 3 * hp.n_ff + hp.q_dim() + hp.kv_dim_k() + hp.kv_dim_v()) as u64
        * 4
        + (kv.num_parallel as u64) * hp.n_vocab as u64 * 8;
    let mut used = w.output.bytes().len() as u64 + w.output_norm.len() as u64 * 4 + arena;
    let kv_layer = kv_bytes_per_layer(hp, kv);
    let mut n = 0;
    for il in (0..hp.n_layer).rev() {
        let need = used + layer_weight_bytes(model, il) + kv_layer;
        if need > budget {
            break;
        }
        used = need;
        n += 1;
    }
    if n == hp.n_layer && w.token_embd.name != w.output.name {
        // All layers fit; the embeddings too, or keep the first layer on the CPU (where
        // the lookup then runs).
        if used + w.token_embd.bytes().len() as u64 > budget {
            n -= 1;
        }
    }
    n
}

/// Places `model` as `num_gpu` asks. `Ok(None)` = CPU only (asked for, the default on a
/// machine without a real GPU, or a fallback already logged).
pub fn place(model: &Model, num_gpu: i64, kv: KvShape, overhead: u64) -> Option<GpuModel> {
    if num_gpu == 0 {
        return None;
    }
    let n_layer = model.hp.n_layer;
    let auto = num_gpu < 0;
    if auto && !real_gpu_present() {
        return None;
    }
    let ctx = match shared_context() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("num_gpu={num_gpu}: {e}; running on the CPU");
            return None;
        }
    };
    let layers = if auto {
        let n = layers_that_fit(model, kv, memory_budget(&ctx, overhead));
        eprintln!(
            "offloading {n} of {n_layer} layers to {} (estimated to fit in {} MiB; set num_gpu to choose)",
            ctx.adapter(),
            memory_budget(&ctx, overhead) >> 20
        );
        if n == 0 {
            return None;
        }
        n
    } else {
        usize::try_from(num_gpu).unwrap_or(usize::MAX).min(n_layer)
    };
    match GpuModel::new(ctx.clone(), model, layers) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!(
                "cannot put {layers} of {n_layer} layers on {}: {e}; running on the CPU",
                ctx.adapter()
            );
            None
        }
    }
}

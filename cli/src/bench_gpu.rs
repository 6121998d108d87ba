//! `ferrite bench gpu`: the wgpu backend's matvec throughput per weight type and the real
//! models' prompt-processing and generation speed with every layer on the GPU.
//!
//! Matvec: the decode shader (activations first rounded as the model path rounds them),
//! `batch` products per submit so one submit's fixed cost is spread; GB/s counts the GGUF
//! weight bytes read per second. Types with an exact shader are measured twice: the fast
//! shader and the exact one (the models' default path, which also quantizes the
//! activations inside each product, as the CPU does). End to end: `pp` = one forward pass over N random
//! tokens from an empty cache, `tg` = N single-token passes (logits read back each
//! time), each after an untimed warm-up that also compiles the pipelines.
//!
//! On a CPU-type adapter (lavapipe) the defaults shrink so that a run takes minutes:
//! those numbers check that the path works, they are not performance claims.

use crate::bench_e2e::{mean_sd, Speed};
use clap::Args;
use engine::model::{LoadOptions, Model};
use ferrite_shaders::{Arena, GpuContext, GpuModel, GpuOptions, GpuTensor, Recorder, GPU_TYPES};
use kernels::blocks::GgmlType;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const MODELS: [(&str, &str); 3] = [
    ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
];

/// The kernel benchmark's large shapes (rows x cols): a 7-8B model's attention and FFN.
const SHAPES: [(usize, usize); 2] = [(4096, 4096), (4096, 14336)];

#[derive(Args, Debug)]
pub struct GpuArgs {
    /// Comma-separated models (smollm2, gemma3, qwen2); default: all three.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Comma-separated weight types (q4_0, q4_1, q5_0, q8_0, q4_K, q6_K, f16, f32); default: all.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Comma-separated matvec shapes ROWSxCOLS; default: 4096x4096,4096x14336.
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Prompt-processing tokens; default 512 (32 on a CPU-type adapter).
    #[arg(long)]
    pp: Option<usize>,
    /// Generated tokens; default 128 (16 on a CPU-type adapter).
    #[arg(long)]
    tg: Option<usize>,
    /// Timed repetitions of each measurement; default 3 (1 on a CPU-type adapter).
    #[arg(long)]
    reps: Option<usize>,
    /// Skip the end-to-end runs (matvec only).
    #[arg(long)]
    no_e2e: bool,
    /// Skip the matvec runs (end to end only).
    #[arg(long)]
    no_matvec: bool,
    /// CPU threads for the model loader.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Output directory for gpu.json and gpu.md.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Where the real models are (default: $FERRITE_MODELS_DIR or ~/.cache/ferrite-models).
    #[arg(long)]
    models_dir: Option<PathBuf>,
}

#[derive(Serialize)]
struct Adapter {
    name: String,
    backend: String,
    device_type: String,
    driver: String,
    /// A software driver on the CPU (lavapipe, SwiftShader, WARP).
    software: bool,
    shader_f16: bool,
    subgroups: bool,
}

#[derive(Serialize)]
struct Matvec {
    dtype: String,
    shape: String,
    rows: usize,
    cols: usize,
    /// GGUF bytes of the matrix (what GB/s counts).
    weight_bytes: u64,
    /// Bytes it takes on the GPU after repacking.
    gpu_bytes: u64,
    /// Activation rounding before the product (`f32` = none).
    activations: String,
    /// `exact` (the CPU's bits, `ferrite_shaders::exact`) or `fast`.
    path: String,
    /// Products per submit.
    batch: usize,
    seconds_per_matvec: f64,
    gbps: f64,
}

#[derive(Serialize)]
struct E2e {
    model: String,
    file: String,
    gpu_weight_mb: f64,
    layers: usize,
    /// The exact path (the CPU's bits, see `ferrite_shaders::exact`) or the faster
    /// shaders with their own summation order (`FERRITE_GPU_EXACT=0`).
    exact_path: bool,
    pp: Speed,
    tg: Speed,
}

#[derive(Serialize)]
struct Report {
    adapter: Adapter,
    note: Option<String>,
    ferrite_version: &'static str,
    cpu: String,
    pp_tokens: usize,
    tg_tokens: usize,
    reps: usize,
    unix_time: u64,
    command: String,
    matvec: Vec<Matvec>,
    e2e: Vec<E2e>,
}

const LAVAPIPE_NOTE: &str =
    "These are lavapipe numbers (Mesa's software Vulkan driver, running on the CPU): \
     they show the GPU path works, they are not performance claims.";

pub fn run_gpu(args: &GpuArgs) -> Result<(), String> {
    let ctx = Arc::new(GpuContext::new(&GpuOptions::from_env()).map_err(|e| e.to_string())?);
    let a = ctx.adapter();
    let software = a.is_cpu;
    let pp = args.pp.unwrap_or(if software { 32 } else { 512 });
    let tg = args.tg.unwrap_or(if software { 16 } else { 128 });
    let reps = args.reps.unwrap_or(if software { 1 } else { 3 });
    if pp == 0 || tg == 0 || reps == 0 || args.threads == 0 {
        return Err("--pp, --tg, --reps and --threads must be positive".into());
    }
    eprintln!("adapter: {a}");
    let types = parse_types(&args.types)?;
    let shapes = parse_shapes(&args.shapes)?;
    let models = parse_models(&args.models)?;
    let dir = args
        .models_dir
        .clone()
        .unwrap_or_else(crate::bench::models_dir);

    let mut matvec = Vec::new();
    if !args.no_matvec {
        for &(rows, cols) in &shapes {
            for &t in &types {
                let paths: &[bool] = if ferrite_shaders::exact::mm::supported(t) {
                    &[false, true]
                } else {
                    &[false]
                };
                for &exact in paths {
                    let m = bench_matvec(&ctx, t, rows, cols, reps, software, exact)?;
                    eprintln!(
                        "matvec {rows}x{cols} {t} ({}): {:.2} ms, {:.1} GB/s",
                        m.path,
                        m.seconds_per_matvec * 1e3,
                        m.gbps
                    );
                    matvec.push(m);
                }
            }
        }
    }
    let mut e2e = Vec::new();
    if !args.no_e2e {
        for (name, file) in models {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(format!(
                    "{} is missing: run tests/fetch-models.sh first",
                    path.display()
                ));
            }
            let r = bench_model(&ctx, name, file, &path, pp, tg, reps, args.threads)?;
            eprintln!(
                "{name}: pp{pp} {:.1} t/s, tg{tg} {:.1} t/s",
                r.pp.tokens_per_second, r.tg.tokens_per_second
            );
            e2e.push(r);
        }
    }
    let mut command = format!("ferrite bench gpu --pp {pp} --tg {tg} --reps {reps}");
    if let Ok(b) = std::env::var("WGPU_BACKEND") {
        command = format!("WGPU_BACKEND={b} {command}");
    }
    let report = Report {
        adapter: Adapter {
            name: a.name.clone(),
            backend: a.backend.clone(),
            device_type: a.device_type.clone(),
            driver: a.driver.clone(),
            software,
            shader_f16: ctx.uses_f16(),
            subgroups: ctx.uses_subgroups(),
        },
        note: software.then(|| LAVAPIPE_NOTE.to_string()),
        ferrite_version: env!("CARGO_PKG_VERSION"),
        cpu: kernels::cpu::describe(),
        pp_tokens: pp,
        tg_tokens: tg,
        reps,
        unix_time: crate::bench::unix_time(),
        command,
        matvec,
        e2e,
    };
    crate::bench::write_report(&args.out, "gpu", &report, &markdown(&report))?;
    Ok(())
}

fn parse_types(names: &[String]) -> Result<Vec<GgmlType>, String> {
    if names.is_empty() {
        return Ok(GPU_TYPES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            let n = n.trim();
            GPU_TYPES
                .iter()
                .copied()
                .find(|t| t.name().eq_ignore_ascii_case(n))
                .ok_or_else(|| {
                    format!(
                        "no GPU shader for weight type '{n}' (have: {})",
                        GPU_TYPES
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
        .collect()
}

fn parse_shapes(shapes: &[String]) -> Result<Vec<(usize, usize)>, String> {
    if shapes.is_empty() {
        return Ok(SHAPES.to_vec());
    }
    shapes
        .iter()
        .map(|s| {
            let bad = || format!("bad shape '{s}': want ROWSxCOLS, both multiples of 256");
            let (r, c) = s.trim().split_once('x').ok_or_else(bad)?;
            let r: usize = r.parse().map_err(|_| bad())?;
            let c: usize = c.parse().map_err(|_| bad())?;
            if r == 0 || c == 0 || !r.is_multiple_of(256) || !c.is_multiple_of(256) {
                return Err(bad());
            }
            Ok((r, c))
        })
        .collect()
}

fn parse_models(names: &[String]) -> Result<Vec<(&'static str, &'static str)>, String> {
    if names.is_empty() {
        return Ok(MODELS.to_vec());
    }
    names
        .iter()
        .map(|m| {
            MODELS
                .iter()
                .find(|(name, _)| *name == m.trim())
                .copied()
                .ok_or_else(|| format!("unknown model '{m}' (smollm2, gemma3, qwen2)"))
        })
        .collect()
}

/// The activation rounding the model path applies before a product with `t` weights
/// (as `ferrite_shaders::model` does): Q8_1 for the Q8_0/Q8_1 kernels, Q8_K for K-quants.
fn act_quant(t: GgmlType) -> Option<GgmlType> {
    match kernels::dispatch::kernels(t)?.act {
        GgmlType::Q8_0 | GgmlType::Q8_1 => Some(GgmlType::Q8_1),
        GgmlType::Q8K => Some(GgmlType::Q8K),
        _ => None,
    }
}

fn bench_matvec(
    ctx: &GpuContext,
    t: GgmlType,
    rows: usize,
    cols: usize,
    reps: usize,
    software: bool,
    exact: bool,
) -> Result<Matvec, String> {
    // 64 rows quantized once, repeated: random weights, cheap to make at any size.
    let master = crate::bench::master_blocks(t, 64 * cols);
    let mut bytes = Vec::with_capacity(master.len() * rows.div_ceil(64));
    for _ in 0..rows / 64 {
        bytes.extend_from_slice(&master);
    }
    let w = GpuTensor::upload(ctx, "w", t, rows, cols, &bytes).map_err(|e| e.to_string())?;
    drop(bytes);
    let act = act_quant(t);
    let xq = cols.next_multiple_of(4);
    let scratch = if exact {
        ferrite_shaders::exact::mm::scratch_len(cols, 1)
    } else {
        cols * 33 / 32 + 64
    };
    let y = (xq + scratch).next_multiple_of(4);
    let arena = Arena::new(ctx, y + rows).map_err(|e| e.to_string())?;
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let run = |batch: usize| -> Result<f64, String> {
        let mut r = Recorder::new(ctx, &arena);
        r.write(0, &x).map_err(|e| e.to_string())?;
        if let (Some(a), false) = (act, exact) {
            r.quantize_act(a, 0, xq, cols).map_err(|e| e.to_string())?;
        }
        for _ in 0..batch {
            match act {
                _ if exact => r.exact_matmul(&w, true, 0, y, 1, xq),
                Some(a) => r.matmul_quantized(&w, a, xq, y, 1),
                None => r.matmul(&w, 0, y, 1),
            }
            .map_err(|e| e.to_string())?;
        }
        r.read(y, 1).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        r.submit().map_err(|e| e.to_string())?;
        Ok(t0.elapsed().as_secs_f64())
    };
    // Warm-up (compiles the pipelines), then a batch sized to about a quarter second
    // (a tenth on software drivers, where one product can take a second).
    let one = run(1)?.max(1e-6);
    let target = if software { 0.1 } else { 0.25 };
    let batch = ((target / one) as usize).clamp(1, 256);
    let best = (0..reps)
        .map(|_| run(batch))
        .collect::<Result<Vec<f64>, _>>()?
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let per = best / batch as f64;
    let weight_bytes = (rows * t.row_bytes(cols).unwrap_or(0)) as u64;
    Ok(Matvec {
        dtype: t.name().to_string(),
        shape: format!("{rows}x{cols}"),
        rows,
        cols,
        weight_bytes,
        gpu_bytes: w.size_bytes(),
        // The exact shaders quantize as the CPU kernel does (Q8_0 for Q4_0, Q8_1 for Q4_1).
        activations: if exact {
            kernels::dispatch::kernels(t).map_or("f32".into(), |k| k.act.name().to_string())
        } else {
            act.map_or("f32".into(), |a| a.name().to_string())
        },
        path: if exact { "exact" } else { "fast" }.into(),
        batch,
        seconds_per_matvec: per,
        gbps: weight_bytes as f64 / per / 1e9,
    })
}

#[allow(clippy::too_many_arguments)]
fn bench_model(
    ctx: &Arc<GpuContext>,
    name: &str,
    file: &str,
    path: &std::path::Path,
    pp: usize,
    tg: usize,
    reps: usize,
    threads: usize,
) -> Result<E2e, String> {
    let model = Model::load(path, &LoadOptions { threads })?;
    let gpu = GpuModel::new(ctx.clone(), &model, usize::MAX).map_err(|e| e.to_string())?;
    let n_vocab = model.hp.n_vocab as u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut random_tokens = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % n_vocab) as u32
            })
            .collect()
    };
    let mut cache = gpu.new_cache(pp.max(tg)).map_err(|e| e.to_string())?;
    let prompt = random_tokens(pp);
    let mut run_pp = || -> Result<f64, String> {
        cache.clear();
        let t = Instant::now();
        gpu.forward(&mut cache, &prompt)
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    };
    run_pp()?;
    let mut pps = Vec::new();
    for _ in 0..reps {
        pps.push(pp as f64 / run_pp()?);
    }
    let gen = random_tokens(tg);
    let mut run_tg = |n: usize| -> Result<f64, String> {
        cache.clear();
        let t = Instant::now();
        for tok in &gen[..n] {
            gpu.forward(&mut cache, std::slice::from_ref(tok))
                .map_err(|e| e.to_string())?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    run_tg(tg.min(4))?;
    let mut tgs = Vec::new();
    for _ in 0..reps {
        tgs.push(tg as f64 / run_tg(tg)?);
    }
    Ok(E2e {
        model: name.into(),
        file: file.into(),
        gpu_weight_mb: gpu.weight_bytes() as f64 / 1e6,
        layers: gpu.gpu_layers(),
        exact_path: gpu.is_exact(),
        pp: mean_sd(&pps),
        tg: mean_sd(&tgs),
    })
}

fn markdown(r: &Report) -> String {
    use std::fmt::Write;
    let a = &r.adapter;
    let mut s = String::new();
    let _ = writeln!(s, "# ferrite GPU benchmark (wgpu)\n");
    if let Some(n) = &r.note {
        let _ = writeln!(s, "**{n}**\n");
    }
    let _ = writeln!(
        s,
        "- adapter: {} ({}, {}, driver: {})",
        a.name,
        a.backend,
        a.device_type,
        if a.driver.is_empty() { "-" } else { &a.driver }
    );
    let _ = writeln!(
        s,
        "- shader-f16: {}, subgroups: {}",
        a.shader_f16, a.subgroups
    );
    let _ = writeln!(s, "- host CPU: {}", r.cpu);
    let _ = writeln!(
        s,
        "- ferrite {}; command: `{}`",
        r.ferrite_version, r.command
    );
    if !r.matvec.is_empty() {
        let _ = writeln!(
            s,
            "\n## matvec (decode shader; GB/s of GGUF weight bytes)\n\n\
             `exact`: the shader with the CPU's bits (the models' default), activations \
             quantized inside each product; `fast`: its own summation order, activations \
             quantized once.\n"
        );
        let _ = writeln!(
            s,
            "| shape | type | path | activations | GPU MiB | batch | time/matvec | GB/s |"
        );
        let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---:|");
        for m in &r.matvec {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.1} | {} | {:.3} ms | {:.2} |",
                m.shape,
                m.dtype,
                m.path,
                m.activations,
                m.gpu_bytes as f64 / (1 << 20) as f64,
                m.batch,
                m.seconds_per_matvec * 1e3,
                m.gbps
            );
        }
    }
    if !r.e2e.is_empty() {
        let _ = writeln!(
            s,
            "\n## End to end, every layer on the GPU (pp{} / tg{}, {} reps, mean ± sd)\n",
            r.pp_tokens, r.tg_tokens, r.reps
        );
        let _ = writeln!(
            s,
            "| model | GPU weights MB | layers | path | pp t/s | tg t/s |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---:|---:|");
        for m in &r.e2e {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {} | {} | {:.1} ± {:.1} | {:.1} ± {:.1} |",
                m.model,
                m.gpu_weight_mb,
                m.layers,
                if m.exact_path { "exact" } else { "fast" },
                m.pp.tokens_per_second,
                m.pp.stddev,
                m.tg.tokens_per_second,
                m.tg.stddev
            );
        }
    }
    s
}

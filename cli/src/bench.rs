//! `ferrite bench kernels`: matvec/matmul throughput of every weight type at every ISA
//! level, next to the machine's memory read bandwidth measured in the same run.
//!
//! Decode (matvec) streams each weight once per token, so its ceiling is the memory
//! bandwidth: `ratio_to_bandwidth` says how close a kernel gets. Matrices smaller than
//! ~2x the last-level cache would otherwise be served from cache after the first call,
//! so each measurement cycles through enough copies of the weights to exceed
//! [`ROTATE_BYTES`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use engine::gguf::GgufFile;
use kernels::blocks::{self, GgmlType};
use kernels::cpu::{self, Isa};
use kernels::dispatch::{kernels_at, quantizer, TypeKernels};
use kernels::matmul;
use kernels::testutil::Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Weight types that have matvec kernels, in report order.
const TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// The real models whose 2-D weight shapes are benchmarked: (label, file in the model cache).
const MODELS: [(&str, &str); 3] = [
    ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
];

/// Large shapes (rows x cols) that exceed the last-level cache for most types.
const LARGE: [(usize, usize); 2] = [(4096, 4096), (4096, 14336)];
const MATMUL_SHAPE: (usize, usize) = (4096, 4096);
const MATMUL_TOKENS: usize = 512;
/// Weights are rotated over copies until they span this many bytes (2x a 32 MiB LLC).
const ROTATE_BYTES: usize = 64 << 20;
/// Quantized once per type and tiled into every weight buffer.
const MASTER_ELEMENTS: usize = 1 << 22;
/// A matmul measurement expected to take longer than this is run with fewer tokens.
const MATMUL_BUDGET: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct KernelsArgs {
    /// Threads of the rayon pool the kernels (and the bandwidth probe) run on.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Smoke test: small synthetic shapes, few repetitions, small bandwidth buffer.
    #[arg(long)]
    quick: bool,
    /// Comma-separated weight types (ggml names, e.g. q4_0,q8_0,q4_K); default: all.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Comma-separated ISA levels (scalar, avx2, avx512, neon); default: every supported one.
    #[arg(long, value_delimiter = ',')]
    isa: Vec<String>,
    /// Output directory for kernels.json and kernels.md.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Where the real models are (default: $FERRITE_MODELS_DIR or ~/.cache/ferrite-models).
    #[arg(long)]
    models: Option<PathBuf>,
}

/// Run-size knobs: the full run and `--quick`.
struct Plan {
    min_time: Duration,
    min_reps: usize,
    bandwidth_bytes: usize,
    bandwidth_passes: usize,
    rotate_bytes: usize,
    matmul_tokens: usize,
    master_elements: usize,
}

#[derive(Serialize)]
struct Machine {
    cpu: String,
    threads: usize,
    isa_levels: Vec<&'static str>,
    bandwidth_gbps: f64,
    bandwidth_method: String,
    ferrite_version: &'static str,
    quick: bool,
    unix_time: u64,
    /// `/proc/loadavg` before and after the run: other processes skew the timings.
    load_before: String,
    load_after: String,
}

#[derive(Serialize, Clone)]
struct Measurement {
    op: &'static str,
    dtype: &'static str,
    isa: &'static str,
    shape: String,
    rows: usize,
    cols: usize,
    tokens: usize,
    threads: usize,
    seconds: f64,
    gbps: f64,
    gflops: f64,
    bandwidth_gbps: f64,
    ratio_to_bandwidth: f64,
    reps: usize,
    weight_copies: usize,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    notes: Vec<String>,
    results: Vec<Measurement>,
}

#[derive(Clone)]
struct Shape {
    label: String,
    rows: usize,
    cols: usize,
}

pub fn run_kernels(args: &KernelsArgs) -> Result<(), String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let types = parse_types(&args.types)?;
    let levels = parse_levels(&args.isa)?;
    let plan = if args.quick {
        Plan {
            min_time: Duration::from_millis(20),
            min_reps: 3,
            bandwidth_bytes: 64 << 20,
            bandwidth_passes: 3,
            rotate_bytes: 4 << 20,
            matmul_tokens: 16,
            master_elements: 1 << 16,
        }
    } else {
        Plan {
            min_time: Duration::from_millis(300),
            min_reps: 5,
            bandwidth_bytes: 1 << 30,
            bandwidth_passes: 9,
            rotate_bytes: ROTATE_BYTES,
            matmul_tokens: MATMUL_TOKENS,
            master_elements: MASTER_ELEMENTS,
        }
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| format!("cannot start {} threads: {e}", args.threads))?;
    let mut notes = Vec::new();
    let load_before = loadavg();

    let probe = pool.install(|| ReadProbe::new(plan.bandwidth_bytes));
    let (bandwidth, method) = pool.install(|| measure_bandwidth(&plan, &probe));
    eprintln!("memory read bandwidth: {bandwidth:.1} GB/s ({method})");

    let mut shapes = Vec::new();
    if args.quick {
        shapes.push(Shape {
            label: "1024x1024".into(),
            rows: 1024,
            cols: 1024,
        });
    } else {
        let dir = args.models.clone().unwrap_or_else(models_dir);
        shapes.extend(model_shapes(&dir, &mut notes));
        for (rows, cols) in LARGE {
            shapes.push(Shape {
                label: format!("{rows}x{cols}"),
                rows,
                cols,
            });
        }
    }
    let (mm_rows, mm_cols) = if args.quick {
        (1024, 1024)
    } else {
        MATMUL_SHAPE
    };

    let mut results = Vec::new();
    for &dtype in &types {
        if kernels_at(dtype, Isa::Scalar).is_none() {
            notes.push(format!("{dtype}: no kernels at all; type skipped"));
            continue;
        }
        let mut kernel_levels = Vec::new();
        for &isa in &levels {
            match kernels_at(dtype, isa) {
                Some(k) if k.isa == isa => kernel_levels.push(k),
                Some(k) => notes.push(format!(
                    "{dtype}: no {isa} kernel (falls back to {}); level skipped",
                    k.isa
                )),
                None => notes.push(format!("{dtype}: no {isa} kernel; level skipped")),
            }
        }
        if kernel_levels.is_empty() {
            continue;
        }
        let usable: Vec<&Shape> = shapes
            .iter()
            .filter(|s| s.cols % dtype.block_len() == 0)
            .collect();
        let skipped = shapes.len() - usable.len();
        if skipped > 0 {
            notes.push(format!(
                "{dtype}: {skipped} shape(s) skipped: row length not a multiple of {} elements",
                dtype.block_len()
            ));
        }
        let need = usable
            .iter()
            .map(|s| weight_span(dtype, s.rows, s.cols, plan.rotate_bytes).1)
            .chain([dtype.row_bytes(mm_cols).unwrap_or(0) * mm_rows])
            .max()
            .unwrap_or(0);
        let master = master_blocks(dtype, plan.master_elements);
        let weights = tile(&master, need);
        let weights: &[u8] = &bytemuck::cast_slice(&weights)[..need];
        for k in &kernel_levels {
            pool.install(|| {
                for s in &usable {
                    let m = bench_matvec(k, weights, s, &plan, args.threads, &probe);
                    eprintln!(
                        "matvec {:5} {:7} {:22} {:>9.1} us {:7.1} GB/s  {:.2} of bandwidth",
                        m.dtype,
                        m.isa,
                        m.shape,
                        m.seconds * 1e6,
                        m.gbps,
                        m.ratio_to_bandwidth
                    );
                    results.push(m);
                }
                let (m, note) = bench_matmul(
                    k,
                    weights,
                    (mm_rows, mm_cols),
                    plan.matmul_tokens,
                    &plan,
                    args.threads,
                    bandwidth,
                );
                eprintln!(
                    "matmul {:5} {:7} {:22} {:>9.1} ms {:7.1} GFLOP/s",
                    m.dtype,
                    m.isa,
                    m.shape,
                    m.seconds * 1e3,
                    m.gflops
                );
                notes.extend(note);
                results.push(m);
            });
        }
    }

    let machine = Machine {
        cpu: cpu::describe(),
        threads: args.threads,
        isa_levels: cpu::supported_levels().iter().map(|i| i.name()).collect(),
        bandwidth_gbps: bandwidth,
        bandwidth_method: method,
        ferrite_version: env!("CARGO_PKG_VERSION"),
        quick: args.quick,
        unix_time: unix_time(),
        load_before,
        load_after: loadavg(),
    };
    let report = Report {
        machine,
        notes,
        results,
    };
    write_report(&args.out, "kernels", &report, &markdown(&report))?;
    Ok(())
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes a benchmark's `out/{stem}.json` and `out/{stem}.md`, creating `out`.
pub(crate) fn write_report(
    out: &Path,
    stem: &str,
    report: &impl Serialize,
    markdown: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    write(&out.join(format!("{stem}.json")), &(json + "\n"))?;
    write(&out.join(format!("{stem}.md")), markdown)?;
    eprintln!(
        "wrote {}",
        out.join(format!("{stem}.{{json,md}}")).display()
    );
    Ok(())
}

/// Seconds since the Unix epoch, for reports (0 if the clock is before it).
pub(crate) fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_types(names: &[String]) -> Result<Vec<GgmlType>, String> {
    if names.is_empty() {
        return Ok(TYPES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            GgmlType::from_name(n.trim())
                .filter(|t| TYPES.contains(t))
                .ok_or_else(|| {
                    format!(
                        "unknown weight type '{n}' (one of {})",
                        TYPES.map(|t| t.name()).join(", ")
                    )
                })
        })
        .collect()
}

fn parse_levels(names: &[String]) -> Result<Vec<Isa>, String> {
    let supported = cpu::supported_levels();
    if names.is_empty() {
        return Ok(supported);
    }
    names
        .iter()
        .map(|n| {
            let isa = Isa::from_name(n)
                .ok_or_else(|| format!("unknown ISA level '{n}' (scalar, avx2, avx512, neon)"))?;
            if !supported.contains(&isa) {
                return Err(format!("this CPU does not support {isa}"));
            }
            Ok(isa)
        })
        .collect()
}

pub(crate) fn models_dir() -> PathBuf {
    match std::env::var_os("FERRITE_MODELS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/ferrite-models"),
    }
}

/// Distinct (rows, cols) of each model's 2-D tensors, labelled by the first tensor
/// with that shape (`blk.N.` and `.weight` dropped).
fn model_shapes(dir: &Path, notes: &mut Vec<String>) -> Vec<Shape> {
    let mut shapes = Vec::new();
    for (model, file) in MODELS {
        let path = dir.join(file);
        let gguf = match GgufFile::open(&path) {
            Ok(g) => g,
            Err(e) => {
                notes.push(format!(
                    "{model}: shapes not benchmarked, cannot open {} ({e}); run tests/fetch-models.sh",
                    path.display()
                ));
                continue;
            }
        };
        let mut seen = Vec::new();
        for t in gguf.tensors() {
            if t.dims.len() != 2 {
                continue;
            }
            let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
            if seen.contains(&(rows, cols)) {
                continue;
            }
            seen.push((rows, cols));
            let name = t.name.strip_suffix(".weight").unwrap_or(&t.name);
            let name = match name.strip_prefix("blk.") {
                Some(rest) => rest.split_once('.').map_or(rest, |(_, n)| n),
                None => name,
            };
            shapes.push(Shape {
                label: format!("{model} {name}"),
                rows,
                cols,
            });
        }
    }
    shapes.sort_by_key(|s| s.rows * s.cols);
    shapes
}

/// Bytes of one weight matrix and of all the copies a measurement cycles through.
fn weight_span(dtype: GgmlType, rows: usize, cols: usize, rotate: usize) -> (usize, usize) {
    let one = dtype.row_bytes(cols).expect("whole blocks") * rows;
    let copies = rotate.div_ceil(one).max(1);
    (one, one * copies)
}

/// `n` weights of `dtype` (a whole number of blocks), from random data shaped like
/// real weights: quantized with ferrite's quantizer when there is one, else random
/// blocks with sane scales.
pub(crate) fn master_blocks(dtype: GgmlType, n: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5EED ^ dtype.id() as u64);
    let values = rng.weights(n);
    match dtype {
        GgmlType::F32 => return bytemuck::cast_slice(&values).to_vec(),
        GgmlType::F16 => {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            return bytemuck::cast_slice(&h).to_vec();
        }
        GgmlType::Bf16 => {
            let h: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
            return bytemuck::cast_slice(&h).to_vec();
        }
        _ => {}
    }
    let bytes = dtype.row_bytes(n).expect("master is whole blocks");
    if let Some(q) = quantizer(dtype) {
        let mut out = vec![0u8; bytes];
        q(&values, &mut out);
        return out;
    }
    let mut out = rng.bytes(bytes);
    let mut scale = || half::f16::from_f32(rng.range(1e-3, 2e-2));
    macro_rules! fix {
        ($b:ty, $($field:ident),+) => {{
            for blk in bytemuck::cast_slice_mut::<u8, $b>(&mut out) {
                $(blk.$field = scale();)+
            }
        }};
    }
    match dtype {
        GgmlType::Q4_0 => fix!(blocks::BlockQ4_0, d),
        GgmlType::Q4_1 => fix!(blocks::BlockQ4_1, d, m),
        GgmlType::Q5_0 => fix!(blocks::BlockQ5_0, d),
        GgmlType::Q5_1 => fix!(blocks::BlockQ5_1, d, m),
        GgmlType::Q8_0 => fix!(blocks::BlockQ8_0, d),
        GgmlType::Q2K => fix!(blocks::BlockQ2K, d, dmin),
        GgmlType::Q3K => fix!(blocks::BlockQ3K, d),
        GgmlType::Q4K => fix!(blocks::BlockQ4K, d, dmin),
        GgmlType::Q5K => fix!(blocks::BlockQ5K, d, dmin),
        GgmlType::Q6K => fix!(blocks::BlockQ6K, d),
        other => unreachable!("{other} is not a benchmarked weight type"),
    }
    out
}

/// `len` bytes (rounded up to u64s, so every block type is aligned) repeating `master`.
/// `master` is whole blocks, so any whole-block slice of the result is valid weights.
fn tile(master: &[u8], len: usize) -> Vec<u64> {
    let mut buf = vec![0u64; len.div_ceil(8)];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    bytes
        .par_chunks_mut(master.len())
        .for_each(|c| c.copy_from_slice(&master[..c.len()]));
    buf
}

/// Time `f(rep)` until `min_time` and `min_reps` are both reached, after `warmup`
/// calls; returns the median seconds per call and the number of timed calls.
fn time_calls(plan: &Plan, warmup: usize, mut f: impl FnMut(usize)) -> (f64, usize) {
    for i in 0..warmup {
        f(i);
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < plan.min_reps || start.elapsed() < plan.min_time {
        let t = Instant::now();
        f(warmup + times.len());
        times.push(t.elapsed().as_secs_f64());
        if times.len() >= 1_000_000 {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times.len())
}

fn activations(n: usize) -> Vec<f32> {
    Rng::new(n as u64).weights(n)
}

fn bench_matvec(
    k: &TypeKernels,
    weights: &[u8],
    s: &Shape,
    plan: &Plan,
    threads: usize,
    probe: &ReadProbe,
) -> Measurement {
    let (one, span) = weight_span(k.dtype, s.rows, s.cols, plan.rotate_bytes);
    let copies = span / one;
    let x = activations(s.cols);
    let mut y = vec![0f32; s.rows];
    let mut call = |i: usize| {
        let c = i % copies;
        let t = Instant::now();
        matmul::matvec(
            k,
            &weights[c * one..(c + 1) * one],
            s.rows,
            s.cols,
            &x,
            &mut y,
        );
        std::hint::black_box(&y);
        t.elapsed().as_secs_f64()
    };
    for i in 0..copies.min(8) {
        call(i);
    }
    // The host's memory bandwidth drifts by 20% and more within a minute on a
    // shared VM, so each round of calls is paired with a bandwidth pass taken
    // just before it: the ratio compares like with like.
    let adjacent = plan.bandwidth_bytes.min(ADJACENT_PASS_BYTES);
    let (mut times, mut passes) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while times.len() < plan.min_reps || start.elapsed() < plan.min_time || passes.len() < 3 {
        passes.push(probe.pass(adjacent));
        let round = Instant::now();
        loop {
            times.push(call(times.len()));
            if round.elapsed() >= ROUND || times.len() >= 1_000_000 {
                break;
            }
        }
    }
    let reps = times.len();
    measurement(
        "matvec",
        k,
        &s.label,
        s.rows,
        s.cols,
        1,
        threads,
        median(times),
        median(passes),
        reps,
        copies,
    )
}

/// Bytes of the bandwidth pass before each round of matvec calls (well past the
/// last-level cache) and the length of a round.
const ADJACENT_PASS_BYTES: usize = 1 << 30;
const ROUND: Duration = Duration::from_millis(50);

/// Matmul over `tokens` activation rows; when that is expected to take longer than
/// [`MATMUL_BUDGET`] in all, fewer tokens are used and a note says so.
fn bench_matmul(
    k: &TypeKernels,
    weights: &[u8],
    (rows, cols): (usize, usize),
    tokens: usize,
    plan: &Plan,
    threads: usize,
    bandwidth: f64,
) -> (Measurement, Option<String>) {
    let w = &weights[..k.dtype.row_bytes(cols).expect("whole blocks") * rows];
    let run = |t: usize| {
        let x = activations(t * cols);
        let mut y = vec![0f32; t * rows];
        let (secs, reps) = time_calls(plan, 1, |_| {
            matmul::matmul(k, w, rows, cols, &x, t, &mut y);
            std::hint::black_box(&y);
        });
        (secs, reps)
    };
    // Probe with a few tokens to estimate the full call.
    let probe = tokens.min(16);
    let x = activations(probe * cols);
    let mut y = vec![0f32; probe * rows];
    let t0 = Instant::now();
    matmul::matmul(k, w, rows, cols, &x, probe, &mut y);
    let per_token = t0.elapsed().as_secs_f64() / probe as f64;
    let estimate = per_token * tokens as f64 * (plan.min_reps + 1) as f64;
    let mut used = tokens;
    let mut note = None;
    if estimate > MATMUL_BUDGET.as_secs_f64() {
        let fit = (MATMUL_BUDGET.as_secs_f64() / (per_token * (plan.min_reps + 1) as f64)) as usize;
        used = (fit.max(1).next_power_of_two() / 2).clamp(probe.min(tokens), tokens);
        note = Some(format!(
            "matmul {} {}: {tokens} tokens would take ~{:.1} s per call; measured with {used} tokens",
            k.dtype,
            k.isa,
            per_token * tokens as f64
        ));
    }
    let (seconds, reps) = run(used);
    let m = measurement(
        "matmul",
        k,
        &format!("{rows}x{cols}"),
        rows,
        cols,
        used,
        threads,
        seconds,
        bandwidth,
        reps,
        1,
    );
    (m, note)
}

#[allow(clippy::too_many_arguments)]
fn measurement(
    op: &'static str,
    k: &TypeKernels,
    shape: &str,
    rows: usize,
    cols: usize,
    tokens: usize,
    threads: usize,
    seconds: f64,
    bandwidth: f64,
    reps: usize,
    copies: usize,
) -> Measurement {
    let bytes = (k.dtype.row_bytes(cols).expect("whole blocks") * rows) as f64;
    let gbps = bytes / seconds / 1e9;
    Measurement {
        op,
        dtype: k.dtype.name(),
        isa: k.isa.name(),
        shape: shape.to_string(),
        rows,
        cols,
        tokens,
        threads,
        seconds,
        gbps,
        gflops: 2.0 * (rows * cols * tokens) as f64 / seconds / 1e9,
        bandwidth_gbps: bandwidth,
        ratio_to_bandwidth: gbps / bandwidth,
        reps,
        weight_copies: copies,
    }
}

/// A buffer for read-bandwidth passes, every pool thread summing its share with
/// the widest vector loads the CPU has. Kept for the whole run: matvec timings
/// interleave passes with their calls (see [`bench_matvec`]).
struct ReadProbe {
    buf: Vec<u64>,
}

impl ReadProbe {
    fn new(bytes: usize) -> ReadProbe {
        // Written in parallel so every page is mapped before timing.
        let mut buf = vec![0u64; bytes / 8];
        buf.par_chunks_mut(1 << 16).enumerate().for_each(|(i, c)| {
            c.iter_mut()
                .enumerate()
                .for_each(|(j, w)| *w = (i + j) as u64)
        });
        ReadProbe { buf }
    }

    /// GB/s of one pass over the first `bytes` of the buffer.
    fn pass(&self, bytes: usize) -> f64 {
        let words = &self.buf[..(bytes / 8).min(self.buf.len())];
        let share = words.len().div_ceil(rayon::current_num_threads()).max(1);
        let t = Instant::now();
        let s: u64 = words
            .par_chunks(share)
            .map(sum_words)
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(s);
        (words.len() * 8) as f64 / t.elapsed().as_secs_f64() / 1e9
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The run's read bandwidth for the report header: the median of the passes, the
/// same statistic as the kernels' median call (on a shared VM the best pass runs
/// 5-15% above the typical one). Returns GB/s and a description.
fn measure_bandwidth(plan: &Plan, probe: &ReadProbe) -> (f64, String) {
    let threads = rayon::current_num_threads();
    let passes: Vec<f64> = (0..plan.bandwidth_passes)
        .map(|_| probe.pass(plan.bandwidth_bytes))
        .collect();
    let best = passes.iter().copied().fold(0.0, f64::max);
    let gbps = median(passes);
    let method = format!(
        "{} MiB buffer, {threads} threads summing with {} loads, median of {} passes (best {best:.1} GB/s)",
        plan.bandwidth_bytes >> 20,
        load_width(),
        plan.bandwidth_passes,
    );
    (gbps, method)
}

fn load_width() -> &'static str {
    if cpu::has_avx512() {
        "AVX-512"
    } else if cpu::has_avx2() {
        "AVX2"
    } else {
        "scalar"
    }
}

/// Wrapping sum of `d` (portable fallback).
fn sum_scalar(d: &[u64]) -> u64 {
    d.iter().fold(0u64, |s, &v| s.wrapping_add(v))
}

/// Wrapping sum with four independent 512-bit accumulators (four loads per 256 bytes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_avx512(d: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut chunks = d.chunks_exact(32);
    for c in &mut chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` holds 32 u64s, so words 8k..8k+8 are in bounds; unaligned load.
            let v = unsafe { _mm512_loadu_si512(c[k * 8..].as_ptr().cast()) };
            *a = _mm512_add_epi64(*a, v);
        }
    }
    let s = _mm512_add_epi64(
        _mm512_add_epi64(acc[0], acc[1]),
        _mm512_add_epi64(acc[2], acc[3]),
    );
    sum_scalar(chunks.remainder()).wrapping_add(_mm512_reduce_add_epi64(s) as u64)
}

/// Wrapping sum with four independent 256-bit accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_avx2(d: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut chunks = d.chunks_exact(16);
    for c in &mut chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` holds 16 u64s, so words 4k..4k+4 are in bounds; unaligned load.
            let v = unsafe { _mm256_loadu_si256(c[k * 4..].as_ptr().cast()) };
            *a = _mm256_add_epi64(*a, v);
        }
    }
    let s = _mm256_add_epi64(
        _mm256_add_epi64(acc[0], acc[1]),
        _mm256_add_epi64(acc[2], acc[3]),
    );
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 bytes; unaligned store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), s) };
    sum_scalar(chunks.remainder()).wrapping_add(sum_scalar(&lanes))
}

fn sum_words(d: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if cpu::has_avx512() {
            // SAFETY: the CPU supports AVX-512F (checked at run time just above).
            return unsafe { sum_avx512(d) };
        }
        if cpu::has_avx2() {
            // SAFETY: the CPU supports AVX2 (checked at run time just above).
            return unsafe { sum_avx2(d) };
        }
    }
    sum_scalar(d)
}

fn markdown(r: &Report) -> String {
    use std::fmt::Write;
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(s, "# ferrite kernel benchmark\n");
    let _ = writeln!(s, "- CPU: {}", m.cpu);
    let _ = writeln!(s, "- threads: {}", m.threads);
    let _ = writeln!(
        s,
        "- load average (1/5/15 min) before: {}, after: {}",
        m.load_before, m.load_after
    );
    let _ = writeln!(
        s,
        "- memory read bandwidth: **{:.1} GB/s** ({})",
        m.bandwidth_gbps, m.bandwidth_method
    );
    let _ = writeln!(
        s,
        "- ferrite {}{}; `ratio` = weight bytes per second / read bandwidth; for matvec that \
         bandwidth is the median of passes over {} MiB taken between its rounds of calls \
         (`bandwidth_gbps` of each JSON row), as the host's bandwidth drifts; \
         matvec weights rotate over copies spanning >= {} MiB so they come from memory, not cache",
        m.ferrite_version,
        if m.quick { " (--quick run)" } else { "" },
        ADJACENT_PASS_BYTES.min(if m.quick { 64 << 20 } else { 1 << 30 }) >> 20,
        if m.quick { 4 } else { ROTATE_BYTES >> 20 }
    );
    let _ = writeln!(
        s,
        "- command: `ferrite bench kernels --threads {}`\n",
        m.threads
    );

    let _ = writeln!(
        s,
        "## Summary: matvec ratio to bandwidth on the large shapes (best ISA)\n"
    );
    let _ = writeln!(s, "| type | 4096x4096 | 4096x14336 |");
    let _ = writeln!(s, "|---|---|---|");
    let mut dtypes: Vec<&str> = Vec::new();
    for x in &r.results {
        if !dtypes.contains(&x.dtype) {
            dtypes.push(x.dtype);
        }
    }
    for d in &dtypes {
        let cell = |shape: &str| {
            r.results
                .iter()
                .filter(|x| x.op == "matvec" && x.dtype == *d && x.shape == shape)
                .max_by(|a, b| a.ratio_to_bandwidth.total_cmp(&b.ratio_to_bandwidth))
                .map_or("-".to_string(), |x| {
                    format!(
                        "{:.2} ({}, {:.1} GB/s)",
                        x.ratio_to_bandwidth, x.isa, x.gbps
                    )
                })
        };
        let _ = writeln!(
            s,
            "| {d} | {} | {} |",
            cell("4096x4096"),
            cell("4096x14336")
        );
    }
    for (op, title) in [
        ("matvec", "matvec (decode)"),
        ("matmul", "matmul (prefill)"),
    ] {
        let _ = writeln!(s, "\n## {title}\n");
        let _ = writeln!(
            s,
            "| shape | type | isa | rows | cols | tokens | time/call | GB/s | GFLOP/s | ratio |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for x in r.results.iter().filter(|x| x.op == op) {
            let time = if x.seconds >= 1e-2 {
                format!("{:.1} ms", x.seconds * 1e3)
            } else {
                format!("{:.1} µs", x.seconds * 1e6)
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.2} |",
                x.shape,
                x.dtype,
                x.isa,
                x.rows,
                x.cols,
                x.tokens,
                time,
                x.gbps,
                x.gflops,
                x.ratio_to_bandwidth
            );
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

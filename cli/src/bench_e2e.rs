//! `ferrite bench e2e`: prompt processing and generation speed of whole models, side by
//! side with llama.cpp's `llama-bench` on the same file in the same run.
//!
//! The workload mirrors llama-bench: `pp` = one forward pass over N random tokens from an
//! empty cache; `tg` = N single-token forward passes from an empty cache (no sampling
//! cost, as llama-bench), each after one untimed warm-up run.

use clap::Args;
use engine::model::{LoadOptions, Model, SeqInput};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MODELS: [(&str, &str); 3] = [
    ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
];

#[derive(Args, Debug)]
pub struct E2eArgs {
    /// Comma-separated models (smollm2, gemma3, qwen2); default: all three.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Threads for ferrite and llama-bench.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Prompt-processing tokens (llama-bench -p).
    #[arg(long, default_value_t = 512)]
    pp: usize,
    /// Generated tokens (llama-bench -n).
    #[arg(long, default_value_t = 128)]
    tg: usize,
    /// Timed repetitions of each test (llama-bench -r).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Path of llama.cpp's llama-bench; without it only ferrite is measured.
    #[arg(long)]
    llama_bench: Option<PathBuf>,
    /// Output directory for e2e.json and e2e.md.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Where the real models are (default: $FERRITE_MODELS_DIR or ~/.cache/ferrite-models).
    #[arg(long)]
    models_dir: Option<PathBuf>,
}

/// Tokens per second over repetitions (also used by `bench gpu`).
#[derive(Serialize, Clone, Copy, Default)]
pub(crate) struct Speed {
    pub(crate) tokens_per_second: f64,
    pub(crate) stddev: f64,
}

#[derive(Serialize, Default)]
struct MemoryReport {
    /// Resident set after loading the model: file-backed pages are the mmap'd weights.
    rss_after_load_mb: f64,
    anon_after_load_mb: f64,
    rss_after_generation_mb: f64,
    anon_after_generation_mb: f64,
}

#[derive(Serialize)]
struct ModelResult {
    model: String,
    file: String,
    file_mb: f64,
    threads: usize,
    ferrite_pp: Speed,
    ferrite_tg: Speed,
    llama_cpp_pp: Option<Speed>,
    llama_cpp_tg: Option<Speed>,
    ratio_pp: Option<f64>,
    ratio_tg: Option<f64>,
    memory: MemoryReport,
}

#[derive(Serialize)]
struct Report {
    cpu: String,
    ferrite_version: &'static str,
    llama_bench: Option<String>,
    pp_tokens: usize,
    tg_tokens: usize,
    reps: usize,
    unix_time: u64,
    load_before: String,
    load_after: String,
    results: Vec<ModelResult>,
}

pub fn run_e2e(args: &E2eArgs) -> Result<(), String> {
    if args.threads == 0 || args.reps == 0 || args.pp == 0 || args.tg == 0 {
        return Err("--threads, --reps, --pp and --tg must be positive".into());
    }
    let dir = args
        .models_dir
        .clone()
        .unwrap_or_else(crate::bench::models_dir);
    let chosen: Vec<(&str, &str)> = if args.models.is_empty() {
        MODELS.to_vec()
    } else {
        args.models
            .iter()
            .map(|m| {
                MODELS
                    .iter()
                    .find(|(name, _)| *name == m.trim())
                    .copied()
                    .ok_or_else(|| format!("unknown model '{m}' (smollm2, gemma3, qwen2)"))
            })
            .collect::<Result<_, _>>()?
    };
    if let Some(lb) = &args.llama_bench {
        if !lb.is_file() {
            return Err(format!("llama-bench not found at {}", lb.display()));
        }
    }
    let load_before = crate::bench::loadavg();
    let mut results = Vec::new();
    for (name, file) in chosen {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: run tests/fetch-models.sh first",
                path.display()
            ));
        }
        eprintln!("{name}: ferrite");
        let (ferrite_pp, ferrite_tg, memory) = bench_ferrite(&path, args)?;
        eprintln!(
            "  pp{} {:.1} t/s, tg{} {:.1} t/s",
            args.pp, ferrite_pp.tokens_per_second, args.tg, ferrite_tg.tokens_per_second
        );
        let (llama_cpp_pp, llama_cpp_tg) = match &args.llama_bench {
            Some(lb) => {
                eprintln!("{name}: llama-bench");
                let (pp, tg) = bench_llama_cpp(lb, &path, args)?;
                eprintln!(
                    "  pp{} {:.1} t/s, tg{} {:.1} t/s",
                    args.pp, pp.tokens_per_second, args.tg, tg.tokens_per_second
                );
                (Some(pp), Some(tg))
            }
            None => (None, None),
        };
        let ratio =
            |f: Speed, l: Option<Speed>| l.map(|l| f.tokens_per_second / l.tokens_per_second);
        results.push(ModelResult {
            model: name.into(),
            file: file.into(),
            file_mb: std::fs::metadata(&path)
                .map(|m| m.len() as f64 / 1e6)
                .unwrap_or(0.0),
            threads: args.threads,
            ratio_pp: ratio(ferrite_pp, llama_cpp_pp),
            ratio_tg: ratio(ferrite_tg, llama_cpp_tg),
            ferrite_pp,
            ferrite_tg,
            llama_cpp_pp,
            llama_cpp_tg,
            memory,
        });
    }
    let report = Report {
        cpu: kernels::cpu::describe(),
        ferrite_version: env!("CARGO_PKG_VERSION"),
        llama_bench: args.llama_bench.as_ref().map(|p| p.display().to_string()),
        pp_tokens: args.pp,
        tg_tokens: args.tg,
        reps: args.reps,
        unix_time: crate::bench::unix_time(),
        load_before,
        load_after: crate::bench::loadavg(),
        results,
    };
    crate::bench::write_report(&args.out, "e2e", &report, &markdown(&report))?;
    Ok(())
}

fn bench_ferrite(path: &Path, args: &E2eArgs) -> Result<(Speed, Speed, MemoryReport), String> {
    let model = Model::load(
        path,
        &LoadOptions {
            threads: args.threads,
        },
    )?;
    let (rss_after_load_mb, anon_after_load_mb) = rss_mb();
    let n_vocab = model.hp.n_vocab;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut random_tokens = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % n_vocab as u64) as u32
            })
            .collect()
    };
    let run_pp = |tokens: &[u32]| -> Result<f64, String> {
        let mut cache = model.new_cache(tokens.len());
        let t = Instant::now();
        model.forward(&mut [SeqInput {
            cache: &mut cache,
            tokens,
            all_logits: false,
        }])?;
        Ok(t.elapsed().as_secs_f64())
    };
    let prompt = random_tokens(args.pp);
    run_pp(&prompt)?;
    let mut pp = Vec::new();
    for _ in 0..args.reps {
        pp.push(args.pp as f64 / run_pp(&prompt)?);
    }
    let gen_tokens = random_tokens(args.tg);
    let run_tg = |n: usize| -> Result<f64, String> {
        let mut cache = model.new_cache(args.tg.max(1));
        let t = Instant::now();
        for tok in &gen_tokens[..n] {
            model.forward(&mut [SeqInput {
                cache: &mut cache,
                tokens: std::slice::from_ref(tok),
                all_logits: false,
            }])?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    run_tg(args.tg.min(16))?;
    let mut tg = Vec::new();
    for _ in 0..args.reps {
        tg.push(args.tg as f64 / run_tg(args.tg)?);
    }
    let (rss_after_generation_mb, anon_after_generation_mb) = rss_mb();
    Ok((
        mean_sd(&pp),
        mean_sd(&tg),
        MemoryReport {
            rss_after_load_mb,
            anon_after_load_mb,
            rss_after_generation_mb,
            anon_after_generation_mb,
        },
    ))
}

fn bench_llama_cpp(lb: &Path, model: &Path, args: &E2eArgs) -> Result<(Speed, Speed), String> {
    let mut cmd = Command::new(lb);
    cmd.arg("-m")
        .arg(model)
        .args(["-t", &args.threads.to_string()])
        .args(["-p", &args.pp.to_string()])
        .args(["-n", &args.tg.to_string()])
        .args(["-r", &args.reps.to_string()])
        .args(["-o", "json"]);
    // The binaries link llama.cpp's shared libraries from their own directory.
    if let Some(dir) = lb.parent() {
        let mut paths = vec![dir.to_path_buf(), dir.join("../lib")];
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            paths.extend(std::env::split_paths(&old));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("LD_LIBRARY_PATH", joined);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", lb.display()))?;
    if !out.status.success() {
        return Err(format!(
            "llama-bench failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tests: Vec<Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("llama-bench printed no JSON list: {e}"))?;
    let find = |n_prompt: usize, n_gen: usize| -> Result<Speed, String> {
        tests
            .iter()
            .find(|t| t["n_prompt"] == n_prompt && t["n_gen"] == n_gen)
            .map(|t| Speed {
                tokens_per_second: t["avg_ts"].as_f64().unwrap_or(0.0),
                stddev: t["stddev_ts"].as_f64().unwrap_or(0.0),
            })
            .ok_or_else(|| format!("llama-bench output lacks the pp{n_prompt}/tg{n_gen} test"))
    };
    Ok((find(args.pp, 0)?, find(0, args.tg)?))
}

pub(crate) fn mean_sd(xs: &[f64]) -> Speed {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Speed {
        tokens_per_second: mean,
        stddev: var.sqrt(),
    }
}

/// (VmRSS, RssAnon) of this process in MB, from /proc/self/status (0 where unavailable).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s += "# End-to-end speed: ferrite vs llama.cpp (side by side, same run)\n\n";
    s += &format!(
        "CPU: {} · ferrite {} · {} threads · pp{} / tg{} · {} reps (mean ± sd) · load before/after: {} / {}\n\n",
        r.cpu,
        r.ferrite_version,
        r.results.first().map(|m| m.threads).unwrap_or(0),
        r.pp_tokens,
        r.tg_tokens,
        r.reps,
        r.load_before,
        r.load_after
    );
    if let Some(lb) = &r.llama_bench {
        s += &format!("llama.cpp: `{lb}`\n\n");
    }
    s += "| model | ferrite pp t/s | llama.cpp pp t/s | ratio pp | ferrite tg t/s | llama.cpp tg t/s | ratio tg | RSS after load (anon) MB | RSS after gen (anon) MB |\n";
    s += "|---|---|---|---|---|---|---|---|---|\n";
    let speed = |v: Option<Speed>| {
        v.map(|v| format!("{:.1} ± {:.1}", v.tokens_per_second, v.stddev))
            .unwrap_or_else(|| "—".into())
    };
    let ratio = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into());
    for m in &r.results {
        s += &format!(
            "| {} ({:.0} MB) | {} | {} | {} | {} | {} | {} | {:.0} ({:.0}) | {:.0} ({:.0}) |\n",
            m.model,
            m.file_mb,
            speed(Some(m.ferrite_pp)),
            speed(m.llama_cpp_pp),
            ratio(m.ratio_pp),
            speed(Some(m.ferrite_tg)),
            speed(m.llama_cpp_tg),
            ratio(m.ratio_tg),
            m.memory.rss_after_load_mb,
            m.memory.anon_after_load_mb,
            m.memory.rss_after_generation_mb,
            m.memory.anon_after_generation_mb
        );
    }
    s += "\nRSS includes the memory-mapped weights once touched (file-backed, shared with the page cache); \
          anon is heap: KV cache, scratch buffers, tokenizer. Rerun: \
          `ferrite bench e2e --llama-bench PATH/llama-bench` (see README).\n";
    s
}

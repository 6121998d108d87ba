//! Greedy continuations on the real models on the GPU, token for token against
//! llama.cpp (`shared/reference/*.json`). The CPU path reproduces llama.cpp's
//! roundings and matches the reference exactly (`tests/tests/generation_reference.rs`);
//! the GPU's exact path (`ferrite_shaders::exact`) reproduces the CPU's bits op for
//! op, so the bounds are the issue's: first-position logits within 1e-2 of the
//! reference, and a divergence accepted only where the GPU's own top-2 logits are
//! within 0.02 (each accepted case is printed with the CPU's gap at the same
//! position). On x86 the first-position logits must equal the CPU's bit for bit.
//! Each prompt is evaluated in its own pass, as llama.cpp did for the reference
//! (which kernels a batch meets depends on its size); the decode steps of the
//! prompts then run together, one token per sequence.

use engine::model::{LoadOptions, Model, SeqInput};
use ferrite_shaders::{GpuContext, GpuModel, GpuOptions, GpuSeq, SplitCache};
use ferrite_tests::{cpu_has_llama_orders, model_path, reference, top2, Model as TestModel};
use std::sync::Arc;

/// The bound on first-position logits against llama.cpp's.
const LOGIT_TOLERANCE: f64 = 1e-2;
/// The bound: a divergence only where the GPU's top-2 logits are this close.
const GPU_NEAR_TIE: f32 = 0.02;

/// ferrite's CPU logits after `tokens` (one pass, as the GPU runs a prompt).
fn cpu_logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(tokens.len());
    model
        .forward(&mut [SeqInput {
            cache: &mut cache,
            tokens,
            all_logits: false,
        }])
        .unwrap()
        .remove(0)
}

/// ferrite's CPU choice after `prompt` + `got` (llama.cpp's, as the CPU test shows).
fn cpu_top2(model: &Model, prompt: &[u32], got: &[u32]) -> (u32, f32, f32) {
    let tokens: Vec<u32> = prompt.iter().chain(got).copied().collect();
    top2(&cpu_logits(model, &tokens))
}

/// One reference prompt being continued.
struct Run {
    label: String,
    prompt: Vec<u32>,
    want: Vec<u32>,
    top5: Vec<(usize, f64)>,
    got: Vec<u32>,
    done: bool,
    /// The CPU's logits after the prompt, where the GPU must equal them bit for bit.
    cpu_first: Option<Vec<f32>>,
}

impl Run {
    /// Check the logits after `prompt + got`; the next token to feed, or `None` when done.
    fn advance(&mut self, model: &Model, logits: &[f32]) -> Option<u32> {
        let id = &self.label;
        if self.got.is_empty() {
            assert_eq!(logits.len(), model.hp.n_vocab);
            if let Some(cpu) = &self.cpu_first {
                let same = cpu
                    .iter()
                    .zip(logits)
                    .filter(|(c, g)| c.to_bits() == g.to_bits());
                assert_eq!(
                    same.count(),
                    cpu.len(),
                    "{id}: the exact GPU path's first-position logits are not the CPU's bits"
                );
            }
            for &(tok, want_logit) in &self.top5 {
                let got = logits[tok] as f64;
                assert!(
                    (got - want_logit).abs() <= LOGIT_TOLERANCE,
                    "{id}: GPU first-position logit of token {tok} is {got}, llama.cpp {want_logit}"
                );
            }
        }
        let step = self.got.len();
        if step == self.want.len() {
            self.done = true;
            return None;
        }
        let expected = self.want[step];
        let (tok, top1, top2) = top2(logits);
        if tok != expected {
            let (cpu_tok, cpu1, cpu2) = cpu_top2(model, &self.prompt, &self.got);
            assert!(
                top1 - top2 < GPU_NEAR_TIE,
                "{id}: diverges on the GPU at step {step}: {tok} (logit {top1}, runner-up {top2}), llama.cpp {expected}, ferrite's CPU {cpu_tok} (top-2 gap {}); got so far {:?}",
                cpu1 - cpu2,
                self.got
            );
            eprintln!(
                "{id}: GPU divergence accepted at step {step}: {tok} vs llama.cpp {expected} (GPU top-2 gap {}, CPU chose {cpu_tok} with gap {})",
                top1 - top2,
                cpu1 - cpu2
            );
            self.done = true;
            return None;
        }
        self.got.push(tok);
        Some(tok)
    }
}

/// `split`: only the last half of the layers on the GPU (Ollama's `num_gpu` = half),
/// the first half on the CPU; checked on the first generation prompt only, since the
/// full-offload runs already cover every prompt and lavapipe is slow.
fn check_model(which: TestModel, split: bool) {
    let id = which.id();
    let model = Model::load(model_path(which), &LoadOptions { threads: 2 }).expect("model loads");
    let ctx = Arc::new(
        GpuContext::new(&GpuOptions::from_env())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}")),
    );
    let gpu_layers = if split {
        model.hp.n_layer / 2
    } else {
        usize::MAX
    };
    let gpu = GpuModel::new(ctx.clone(), &model, gpu_layers).expect("model fits on the GPU");
    assert_eq!(gpu.is_full(), !split);
    assert_eq!(gpu.gpu_layers(), gpu_layers.min(model.hp.n_layer));
    eprintln!(
        "{id}: {} of {} layers on {} ({} MiB of weights)",
        gpu.gpu_layers(),
        model.hp.n_layer,
        ctx.adapter(),
        gpu.weight_bytes() >> 20
    );
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    let mut runs: Vec<Run> = reference(which)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("greedy_ids").is_some())
        .map(|e| Run {
            label: format!("{id} {}", e["prompt"]),
            prompt: ids(&e["prompt_token_ids_add_special"]),
            want: ids(&e["greedy_ids"]),
            top5: e["first_position_top5_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
                .collect(),
            got: Vec::new(),
            done: false,
            cpu_first: None,
        })
        .collect();
    if gpu.is_exact() && cpu_has_llama_orders() {
        for run in runs.iter_mut() {
            run.cpu_first = Some(cpu_logits(&model, &run.prompt));
        }
    }
    assert!(
        runs.len() >= 3,
        "{id}: reference has {} generation prompts",
        runs.len()
    );

    if split {
        let run = &mut runs[0];
        let mut cache: SplitCache = gpu.new_split_cache(&model, 512).unwrap();
        let mut logits = gpu.forward_split(&model, &mut cache, &run.prompt).unwrap();
        while let Some(tok) = run.advance(&model, &logits) {
            logits = gpu.forward_split(&model, &mut cache, &[tok]).unwrap();
        }
        eprintln!(
            "{}: {}/{} tokens as llama.cpp (split)",
            run.label,
            run.got.len(),
            run.want.len()
        );
        assert_eq!(cache.len(), run.prompt.len() + run.got.len());
        assert_eq!(
            cache.cpu.len(),
            cache.len(),
            "the CPU layers saw every token"
        );
        return;
    }

    let mut caches: Vec<_> = runs.iter().map(|_| gpu.new_cache(512).unwrap()).collect();
    let mut feed: Vec<Vec<u32>> = Vec::new();
    for (run, cache) in runs.iter_mut().zip(caches.iter_mut()) {
        let logits = gpu.forward(cache, &run.prompt).unwrap();
        feed.push(run.advance(&model, &logits).into_iter().collect());
    }
    loop {
        let mut seqs: Vec<GpuSeq> = caches
            .iter_mut()
            .zip(&feed)
            .map(|(cache, tokens)| GpuSeq { cache, tokens })
            .collect();
        let outs = gpu.forward_batch(&mut seqs).unwrap();
        for ((run, out), f) in runs.iter_mut().zip(&outs).zip(feed.iter_mut()) {
            f.clear();
            if !run.done && !out.is_empty() {
                f.extend(run.advance(&model, out));
            }
        }
        if feed.iter().all(|f| f.is_empty()) {
            break;
        }
    }
    for (run, cache) in runs.iter().zip(&caches) {
        eprintln!(
            "{}: {}/{} tokens as llama.cpp",
            run.label,
            run.got.len(),
            run.want.len()
        );
        assert!(run.done);
        assert_eq!(
            cache.len(),
            run.prompt.len() + run.got.len(),
            "{}",
            run.label
        );
    }
}

#[test]
fn smollm2_greedy_on_gpu_matches_llama_cpp() {
    check_model(TestModel::SmolLm2, false);
}

#[test]
fn qwen2_greedy_on_gpu_matches_llama_cpp() {
    check_model(TestModel::Qwen2, false);
}

#[test]
fn gemma3_greedy_on_gpu_matches_llama_cpp() {
    check_model(TestModel::Gemma3, false);
}

#[test]
fn smollm2_greedy_split_cpu_gpu_matches_llama_cpp() {
    check_model(TestModel::SmolLm2, true);
}

#[test]
fn qwen2_greedy_split_cpu_gpu_matches_llama_cpp() {
    check_model(TestModel::Qwen2, true);
}

#[test]
fn gemma3_greedy_split_cpu_gpu_matches_llama_cpp() {
    check_model(TestModel::Gemma3, true);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let model = Model::load(model_path(TestModel::SmolLm2), &LoadOptions { threads: 2 }).unwrap();
    let ctx = Arc::new(GpuContext::new(&GpuOptions::from_env()).expect("GPU adapter"));
    let gpu = GpuModel::new(ctx.clone(), &model, usize::MAX).unwrap();
    let n_vocab = model.hp.n_vocab as u32;
    let mut cache = gpu.new_cache(4).unwrap();
    assert!(matches!(
        gpu.forward(&mut cache, &[1, n_vocab]),
        Err(ferrite_shaders::GpuError::Input(_))
    ));
    assert!(
        gpu.forward(&mut cache, &[1, 2, 3, 4, 5]).is_err(),
        "context overflow"
    );
    assert_eq!(
        cache.len(),
        0,
        "a rejected forward leaves the cache as it was"
    );
    assert_eq!(
        gpu.forward(&mut cache, &[1, 2]).unwrap().len(),
        model.hp.n_vocab
    );
    assert_eq!(cache.len(), 2);
    let half = GpuModel::new(ctx, &model, 3).unwrap();
    assert_eq!(half.first_gpu_layer(), model.hp.n_layer - 3);
    let mut hc = half.new_cache(4).unwrap();
    assert!(
        half.forward(&mut hc, &[1]).is_err(),
        "embeddings are on the CPU"
    );
    assert!(
        half.forward_hidden(&mut hc, &[0.0; 3], 1).is_err(),
        "wrong hidden size"
    );
    assert!(gpu.forward(&mut hc, &[1]).is_err(), "another model's cache");
    assert!(GpuModel::new(gpu.context().clone(), &model, 0).is_err());
}

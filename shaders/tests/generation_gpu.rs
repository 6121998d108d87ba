//! Greedy continuations on the real models with every layer on the GPU, token for
//! token against llama.cpp (`shared/reference/*.json`), with the rules of the CPU
//! test (`tests/tests/generation_reference.rs`): first-position logits within
//! llama.cpp's own cross-machine noise, and a divergence accepted only where the
//! GPU run's own top-2 logits are a near-tie (each such case is printed).

use engine::model::{LoadOptions, Model};
use ferrite_shaders::{GpuContext, GpuModel, GpuOptions};
use ferrite_tests::{model_path, reference, top2, Model as TestModel};
use std::sync::Arc;

/// The CPU test's bounds (see its comments for how they were measured: llama.cpp
/// itself misses its reference by up to 0.41 across machines; a wrong graph moves
/// these logits by 1–10), widened for the first-position logits because the GPU sums
/// in a third order: on SmolLM2's "def fibonacci(n):" the GPU's logit of token 472 is
/// 31.04 against ferrite's AVX2 30.83 and scalar 30.62 (AVX2 vs scalar: 0.20, GPU vs
/// AVX2: 0.21) and llama.cpp's 30.49. The per-op tests hold every GPU op to the CPU
/// kernels at rounding level; what remains is these small models' chaos.
const LOGIT_TOLERANCE: f64 = 0.75;
const NEAR_TIE: f32 = 0.1;

fn check_model(which: TestModel) {
    let id = which.id();
    let model = Model::load(model_path(which), &LoadOptions { threads: 2 }).expect("model loads");
    let ctx = Arc::new(
        GpuContext::new(&GpuOptions::from_env())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}")),
    );
    let gpu = GpuModel::new(ctx.clone(), &model, usize::MAX).expect("model fits on the GPU");
    assert!(gpu.is_full());
    eprintln!(
        "{id}: {} layers on {} ({} MiB of weights)",
        gpu.gpu_layers(),
        ctx.adapter(),
        gpu.weight_bytes() >> 20
    );
    let reference = reference(which);
    let mut generation_prompts = 0;
    for entry in reference["entries"].as_array().unwrap() {
        let Some(greedy) = entry.get("greedy_ids") else {
            continue;
        };
        generation_prompts += 1;
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        };
        let prompt = ids(&entry["prompt_token_ids_add_special"]);
        let want = ids(greedy);
        let mut cache = gpu.new_cache(512).unwrap();
        let mut logits = gpu.forward(&mut cache, &prompt).unwrap();
        assert_eq!(logits.len(), model.hp.n_vocab);

        for pair in entry["first_position_top5_logits"].as_array().unwrap() {
            let tok = pair[0].as_u64().unwrap() as usize;
            let want_logit = pair[1].as_f64().unwrap();
            let got = logits[tok] as f64;
            assert!(
                (got - want_logit).abs() <= LOGIT_TOLERANCE,
                "{id}: GPU first-position logit of token {tok} is {got}, llama.cpp {want_logit} (prompt {:?})",
                entry["prompt"]
            );
        }

        let mut got = Vec::new();
        for (step, &expected) in want.iter().enumerate() {
            let (tok, top1, top2) = top2(&logits);
            if tok != expected {
                assert!(
                    top1 - top2 < NEAR_TIE,
                    "{id}: prompt {:?} diverges on the GPU at step {step}: {tok} (logit {top1}, runner-up {top2}), llama.cpp {expected}; got so far {got:?}",
                    entry["prompt"]
                );
                eprintln!(
                    "{id}: GPU near-tie divergence accepted at step {step}: {tok} vs {expected} (top-2 gap {})",
                    top1 - top2
                );
                break;
            }
            got.push(tok);
            logits = gpu.forward(&mut cache, &[tok]).unwrap();
        }
        assert_eq!(cache.len(), prompt.len() + got.len());
    }
    assert!(
        generation_prompts >= 3,
        "{id}: reference has {generation_prompts} generation prompts"
    );
}

#[test]
fn smollm2_greedy_on_gpu_matches_llama_cpp() {
    check_model(TestModel::SmolLm2);
}

#[test]
fn qwen2_greedy_on_gpu_matches_llama_cpp() {
    check_model(TestModel::Qwen2);
}

#[test]
fn gemma3_greedy_on_gpu_matches_llama_cpp() {
    check_model(TestModel::Gemma3);
}

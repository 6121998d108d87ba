//! Greedy continuations on the real models, token for token against llama.cpp
//! (`shared/reference/*.json`), and first-position logits within 1e-2 of it.
//!
//! A divergence is accepted only where ferrite's own top-2 logits are within
//! `NEAR_TIE` (a near-tie that rounding can flip); such cases are printed.
//! Parity this close needs llama.cpp's arithmetic, which ferrite reproduces on
//! x86 with AVX2 (CI's machines); other CPUs sum in other orders.

use engine::model::{LoadOptions, Model, SeqInput};
use ferrite_tests::{model_path, reference, top2, Model as TestModel};

/// The bound on first-position logits. The reference comes from llama.cpp
/// on an AVX-512 machine; ferrite reproduces that build's roundings on any x86
/// CPU (`kernels::ggml_math`, the llama.cpp-order dot kernels, the repacked Q4_K
/// kernels), so the logits agree to ~1e-5. Without that, these small models turn
/// last-bit differences into logit differences of 0.1–0.4 (llama.cpp built on an
/// AVX2 machine misses its own reference by that much).
const LOGIT_TOLERANCE: f64 = 1e-2;
/// A greedy divergence is accepted only where ferrite's own top-2 logits are
/// this close (the rule).
const NEAR_TIE: f32 = 0.02;

fn check_model(which: TestModel) {
    let id = which.id();
    let model = Model::load(model_path(which), &LoadOptions { threads: 2 }).expect("model loads");
    let reference = reference(which);
    let mut generation_prompts = 0;
    for entry in reference["entries"].as_array().unwrap() {
        let Some(greedy) = entry.get("greedy_ids") else {
            continue;
        };
        generation_prompts += 1;
        let prompt: Vec<u32> = entry["prompt_token_ids_add_special"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want: Vec<u32> = greedy
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mut cache = model.new_cache(512);
        let mut logits = model
            .forward(&mut [SeqInput {
                cache: &mut cache,
                tokens: &prompt,
                all_logits: false,
            }])
            .unwrap()
            .remove(0);

        for pair in entry["first_position_top5_logits"].as_array().unwrap() {
            let id = pair[0].as_u64().unwrap() as usize;
            let want_logit = pair[1].as_f64().unwrap();
            let got = logits[id] as f64;
            assert!(
                (got - want_logit).abs() <= LOGIT_TOLERANCE,
                "{id}: first-position logit of token {id} is {got}, llama.cpp {want_logit} (prompt {:?})",
                entry["prompt"]
            );
        }

        let mut got = Vec::new();
        for (step, &expected) in want.iter().enumerate() {
            let (tok, top1, top2) = top2(&logits);
            if tok != expected {
                assert!(
                    top1 - top2 < NEAR_TIE,
                    "{id}: prompt {:?} diverges at step {step}: ferrite {tok} (logit {top1}, runner-up {top2}), llama.cpp {}; got so far {got:?}",
                    entry["prompt"],
                    expected
                );
                eprintln!(
                    "{id}: near-tie divergence accepted at step {step}: {tok} vs {expected} (top-2 gap {})",
                    top1 - top2
                );
                break;
            }
            got.push(tok);
            logits = model
                .forward(&mut [SeqInput {
                    cache: &mut cache,
                    tokens: &[tok],
                    all_logits: false,
                }])
                .unwrap()
                .remove(0);
        }
    }
    assert!(
        generation_prompts >= 3,
        "{id}: reference has {generation_prompts} generation prompts"
    );
}

#[test]
fn smollm2_greedy_matches_llama_cpp() {
    check_model(TestModel::SmolLm2);
}

#[test]
fn qwen2_greedy_matches_llama_cpp() {
    check_model(TestModel::Qwen2);
}

#[test]
fn gemma3_greedy_matches_llama_cpp() {
    check_model(TestModel::Gemma3);
}

//! Greedy continuations on the real models, token for token against llama.cpp
//! (`shared/reference/*.json`), and first-position logits within the cross-machine noise of llama.cpp itself.
//!
//! A divergence is accepted only where ferrite's own top-2 logits are within
//! `NEAR_TIE` (a near-tie that rounding can flip); such cases are printed.

use engine::model::{LoadOptions, Model, SeqInput};
use ferrite_tests::{model_path, reference, top2, Model as TestModel};

/// The reference was computed by llama.cpp on an AVX-512 machine, and these small
/// models amplify last-bit differences of summation order: llama.cpp itself, the
/// same version built on an AVX2-only machine, misses its own reference by up to
/// 0.41 (first-position logits) and its greedy runs diverge at steps 2–31
/// (measured 2026-12-01; see the issue-3 note). A bound of 1e-2 is only reachable by
/// reproducing one build's exact floating-point order, so the test holds ferrite to
/// what llama.cpp achieves across machines. A wrong graph (a missing bias, a wrong
/// RoPE style or scale, an unrounded KV cache) moves these logits by 1–10.
const LOGIT_TOLERANCE: f64 = 0.5;
/// A greedy divergence is accepted only where ferrite's own top-2 logits are this
/// close: within the cross-machine noise above, so a near-tie either way.
const NEAR_TIE: f32 = 0.1;

/// The bounds above were measured with the AVX2 kernels; AVX-512 sums in another
/// order, which moves these chaotic logits by as much again. Pin AVX2 (when the CPU
/// has it) so the test means the same on every x86 CI machine; the kernels' own tests
/// hold every level to the scalar reference.
fn pin_kernel_level() {
    static PIN: std::sync::Once = std::sync::Once::new();
    PIN.call_once(|| {
        if kernels::cpu::has_avx2() {
            std::env::set_var("FERRITE_CPU", "avx2");
        }
    });
}

fn check_model(which: TestModel) {
    pin_kernel_level();
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

//! A split model's GPU layers over several sequences in one pass
//! (`forward_hidden_batch`) against one sequence at a time (`forward_hidden`), on
//! SmolLM2 with half the layers on the GPU; and a multi-sequence batch against the
//! CPU's. lavapipe in CI.

use engine::model::{LoadOptions, Model, SeqInput};
use ferrite_shaders::{GpuContext, GpuHiddenSeq, GpuModel, GpuOptions, GpuSeq};
use ferrite_tests::{cpu_has_llama_orders, model_path, top2, Model as TestModel};
use std::sync::Arc;

fn hidden(model: &Model, cache: &mut engine::model::KvCache, tokens: &[u32], n: usize) -> Vec<f32> {
    model
        .forward_layers(
            &mut [SeqInput {
                cache,
                tokens,
                all_logits: false,
            }],
            n,
        )
        .unwrap()
        .remove(0)
}

#[test]
fn batched_hidden_pass_matches_one_sequence_at_a_time() {
    let model = Model::load(model_path(TestModel::SmolLm2), &LoadOptions { threads: 2 }).unwrap();
    let ctx = Arc::new(
        GpuContext::new(&GpuOptions::from_env())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}")),
    );
    let gpu = GpuModel::new(ctx, &model, model.hp.n_layer / 2).unwrap();
    let first = gpu.first_gpu_layer();
    // Two prompts of different lengths, then one decode token each, then a step where
    // only the second sequence has tokens.
    let steps: [[&[u32]; 2]; 3] = [
        [&[1, 504, 3575, 282, 4649], &[1, 520, 9531, 198]],
        [&[314], &[7042]],
        [&[], &[2]],
    ];
    let mut one = [0, 1].map(|_| gpu.new_split_cache(&model, 64).unwrap());
    let mut many = [0, 1].map(|_| gpu.new_split_cache(&model, 64).unwrap());
    for step in steps {
        let want: Vec<Vec<f32>> = one
            .iter_mut()
            .zip(step)
            .map(|(c, toks)| {
                let h = hidden(&model, &mut c.cpu, toks, first);
                gpu.forward_hidden(&mut c.gpu, &h, toks.len()).unwrap()
            })
            .collect();
        let hs: Vec<Vec<f32>> = many
            .iter_mut()
            .zip(step)
            .map(|(c, toks)| hidden(&model, &mut c.cpu, toks, first))
            .collect();
        let [a, b] = &mut many;
        let mut seqs = [
            GpuHiddenSeq {
                cache: &mut a.gpu,
                hidden: &hs[0],
                ntok: step[0].len(),
            },
            GpuHiddenSeq {
                cache: &mut b.gpu,
                hidden: &hs[1],
                ntok: step[1].len(),
            },
        ];
        let got = gpu.forward_hidden_batch(&mut seqs).unwrap();
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.len(), g.len(), "step {step:?} seq {i}");
            if w.is_empty() {
                continue;
            }
            // Prompts run the tiled matrix shader either way (measured: 1e-5 apart). A
            // decode token alone runs the matrix×vector shader, in a batch the tiled one,
            // and those differ by up to ~0.5 in SmolLM2's logits (forward vs
            // forward_batch with every layer on the GPU measure the same on lavapipe).
            let diff = w
                .iter()
                .zip(g)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            // The exact path's kernels for these weight types (Q4_1, Q8_0) do not
            // depend on the batch, so batching changes no bit.
            let bound = if gpu.is_exact() {
                f32::MIN_POSITIVE
            } else if step[i].len() > 1 {
                1e-3
            } else {
                1.0
            };
            assert!(
                diff < bound,
                "step {step:?} seq {i}: logits differ by {diff}"
            );
            let (wt, w1, w2) = top2(w);
            let (gt, g1, g2) = top2(g);
            assert!(
                wt == gt || w1 - w2 < 0.1 || g1 - g2 < 0.1,
                "step {step:?} seq {i}: {wt} alone, {gt} batched"
            );
        }
        for (o, m) in one.iter().zip(&many) {
            assert_eq!(o.len(), m.len());
        }
    }
    // Bad input is an error, not a panic.
    let [a, _] = &mut many;
    let short = [0f32; 3];
    let err = gpu
        .forward_hidden_batch(&mut [GpuHiddenSeq {
            cache: &mut a.gpu,
            hidden: &short,
            ntok: 1,
        }])
        .unwrap_err();
    assert!(err.to_string().contains("hidden values"), "{err}");
}

/// Two prompts of 34 and 30 tokens in one pass, every layer on the GPU: 64 rows in all,
/// so the CPU (as llama.cpp) runs its tiled attention for both although each is under
/// 64 rows; the GPU must pick the same kernel and return the CPU's logits.
#[test]
fn multi_sequence_batch_takes_the_cpus_attention_kernel() {
    let model = Model::load(model_path(TestModel::SmolLm2), &LoadOptions { threads: 2 }).unwrap();
    let ctx = Arc::new(
        GpuContext::new(&GpuOptions::from_env())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}")),
    );
    let gpu = GpuModel::new(ctx, &model, usize::MAX).unwrap();
    let prompt = |n: u32, salt: u32| -> Vec<u32> {
        std::iter::once(1)
            .chain((1..n).map(|i| 100 + (i * 37 + salt) % 2000))
            .collect()
    };
    let (p0, p1) = (prompt(34, 3), prompt(30, 11));
    let mut cpu_caches = [model.new_cache(64), model.new_cache(64)];
    let [c0, c1] = &mut cpu_caches;
    let want = model
        .forward(&mut [
            SeqInput {
                cache: c0,
                tokens: &p0,
                all_logits: false,
            },
            SeqInput {
                cache: c1,
                tokens: &p1,
                all_logits: false,
            },
        ])
        .unwrap();
    let mut gpu_caches = [gpu.new_cache(64).unwrap(), gpu.new_cache(64).unwrap()];
    let [g0, g1] = &mut gpu_caches;
    let got = gpu
        .forward_batch(&mut [
            GpuSeq {
                cache: g0,
                tokens: &p0,
            },
            GpuSeq {
                cache: g1,
                tokens: &p1,
            },
        ])
        .unwrap();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.len(), g.len());
        let diff = w
            .iter()
            .zip(g)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        // The exact path emulates the x86 kernels; elsewhere the CPU sums otherwise.
        let bound = if gpu.is_exact() && cpu_has_llama_orders() {
            f32::MIN_POSITIVE
        } else {
            1e-2
        };
        assert!(diff < bound, "sequence {i}: logits differ by {diff}");
    }
}

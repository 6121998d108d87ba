//! `num_gpu` through the HTTP API on the real SmolLM2 model: everything on the GPU, half
//! the layers, and none; greedy tokens against the CPU run; `/api/ps` `size_vram`.
//!
//! Runs on whatever adapter wgpu finds (lavapipe in CI, never skipped): an explicit
//! `num_gpu` uses even a software driver, which the default placement does not.

mod common;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// A divergence from the CPU run is accepted only where one of the two runs' own top-2
/// logits are this close (shaders/tests/generation_gpu.rs's rule): a rounding-order coin flip.
const NEAR_TIE: f64 = 0.1;
const PROMPTS: [&str; 2] = ["def fibonacci(n):", "The capital of France is"];

struct Run {
    tokens: Vec<u64>,
    /// Per generated token: (chosen token's logprob, runner-up's logprob).
    top2: Vec<(f64, f64)>,
    prompt_eval_count: u64,
}

fn generate(addr: SocketAddr, prompt: &str, options: Value) -> Run {
    let mut opts = json!({"temperature": 0, "num_predict": 16, "seed": 1});
    for (k, v) in options.as_object().unwrap() {
        opts[k] = v.clone();
    }
    let body = json!({
        "model": "smol", "prompt": prompt, "stream": false,
        "options": opts, "logprobs": true, "top_logprobs": 2,
    });
    let r = post(addr, "/api/generate", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let context: Vec<u64> = j["context"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let eval = j["eval_count"].as_u64().unwrap() as usize;
    assert!(eval > 0, "{j}");
    let top2 = j["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lp| {
            let top = lp["top_logprobs"].as_array().unwrap();
            (
                top[0]["logprob"].as_f64().unwrap(),
                top[1]["logprob"].as_f64().unwrap(),
            )
        })
        .collect();
    Run {
        // The generated tokens (the context holds the prompt first; a final end token is not in it).
        tokens: context[context.len() - eval.min(context.len())..].to_vec(),
        top2,
        prompt_eval_count: j["prompt_eval_count"].as_u64().unwrap(),
    }
}

/// Equal to the CPU run, or diverging first at a near-tie of either run.
fn check_same(what: &str, cpu: &Run, gpu: &Run) {
    let Some(at) = (0..cpu.tokens.len().min(gpu.tokens.len()))
        .find(|&i| cpu.tokens[i] != gpu.tokens[i])
    else {
        assert_eq!(
            cpu.tokens.len(),
            gpu.tokens.len(),
            "{what}: one run stopped early: CPU {:?} GPU {:?}",
            cpu.tokens,
            gpu.tokens
        );
        return;
    };
    let gap = |r: &Run| r.top2.get(at).map_or(f64::INFINITY, |(a, b)| a - b);
    let (g, c) = (gap(gpu), gap(cpu));
    assert!(
        g < NEAR_TIE || c < NEAR_TIE,
        "{what}: GPU diverges from the CPU at token {at} (GPU top-2 gap {g}, CPU {c}): CPU {:?} GPU {:?}",
        cpu.tokens,
        gpu.tokens
    );
    eprintln!("{what}: divergence accepted at token {at} (GPU top-2 gap {g}, CPU {c})");
}

fn ps(addr: SocketAddr) -> (u64, u64) {
    let j = get(addr, "/api/ps").json();
    let models = j["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{j}");
    let m = &models[0];
    (m["size"].as_u64().unwrap(), m["size_vram"].as_u64().unwrap())
}

/// Both prompts at once (two slots): on the GPU they share each batched forward pass.
fn generate_both(addr: SocketAddr, options: Value) -> Vec<Run> {
    std::thread::scope(|s| {
        let hs: Vec<_> = PROMPTS
            .iter()
            .map(|p| {
                let o = options.clone();
                s.spawn(move || generate(addr, p, o))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn num_gpu_places_layers_and_generates_the_cpu_tokens() {
    let s = start(
        config(&[("OLLAMA_NUM_PARALLEL", "2"), ("OLLAMA_CONTEXT_LENGTH", "512")]),
        MemCatalog::with_smollm2(),
    );
    let n_layer = engine::gguf::GgufFile::open(smollm2())
        .unwrap()
        .get_u32("llama.block_count")
        .unwrap() as i64;

    let cpu = generate_both(s.addr, json!({"num_gpu": 0}));
    let (size, vram) = ps(s.addr);
    assert!(size > 0);
    assert_eq!(vram, 0, "num_gpu 0 is all CPU");

    // Everything on the GPU: a reload (another num_gpu), sequences batched together.
    let full = generate_both(s.addr, json!({"num_gpu": 999}));
    for ((p, c), g) in PROMPTS.iter().zip(&cpu).zip(&full) {
        check_same(&format!("{p:?} num_gpu=999"), c, g);
    }
    let (size, vram) = ps(s.addr);
    assert!(vram > 0 && vram == size, "full offload: size {size}, vram {vram}");
    // The same prompt again reuses the cached prefix on the GPU, with the same answer.
    let again = generate(s.addr, PROMPTS[0], json!({"num_gpu": 999}));
    assert_eq!(again.prompt_eval_count, 1, "only the last prompt token again");
    assert_eq!(again.tokens, full[0].tokens);
    // No num_gpu (auto) takes the loaded model as it is.
    let auto = generate(s.addr, PROMPTS[1], json!({}));
    assert_eq!(auto.tokens, full[1].tokens);
    assert_eq!(ps(s.addr), (size, vram), "auto does not reload");

    // Half the layers: the first half on the CPU, the rest on the GPU.
    let half = generate_both(s.addr, json!({"num_gpu": n_layer / 2}));
    for ((p, c), g) in PROMPTS.iter().zip(&cpu).zip(&half) {
        check_same(&format!("{p:?} num_gpu={}", n_layer / 2), c, g);
    }
    let (size, vram) = ps(s.addr);
    assert!(
        0 < vram && vram < size,
        "split: size {size}, vram {vram}"
    );
    let again = generate(s.addr, PROMPTS[0], json!({"num_gpu": n_layer / 2}));
    assert_eq!(again.prompt_eval_count, 1);
    assert_eq!(again.tokens, half[0].tokens);

    // Back to the CPU.
    let back = generate(s.addr, PROMPTS[0], json!({"num_gpu": 0}));
    assert_eq!(back.tokens, cpu[0].tokens);
    assert_eq!(ps(s.addr).1, 0);
}

#[test]
fn num_gpu_of_the_wrong_type_is_refused_and_negative_means_auto() {
    let s = start(
        config(&[("OLLAMA_CONTEXT_LENGTH", "256")]),
        MemCatalog::with_smollm2(),
    );
    let body = json!({"model": "smol", "prompt": "Hi", "stream": false,
                      "options": {"num_gpu": "all", "num_predict": 1}});
    let r = post(s.addr, "/api/generate", &body);
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json()["error"],
        "option \"num_gpu\" must be of type integer"
    );
    // Any negative value is Ollama's automatic placement, which without a real GPU
    // adapter is the CPU; with one, as many layers as fit.
    let real_gpu = ferrite_shaders::adapters()
        .iter()
        .any(|a| {
            matches!(
                a.device_type.as_str(),
                "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu"
            )
        });
    for n in [-1, -7] {
        let body = json!({"model": "smol", "prompt": "Hi", "stream": false,
                          "options": {"num_gpu": n, "num_predict": 1}});
        let r = post(s.addr, "/api/generate", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let (size, vram) = ps(s.addr);
        if real_gpu {
            assert!(vram > 0 && vram <= size);
        } else {
            assert_eq!(vram, 0, "num_gpu {n} without a real GPU");
        }
    }
}

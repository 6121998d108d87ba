//! Parity report against llama.cpp's reference outputs: for every generation prompt of
//! every model, the first-position top-5 logit differences, how many greedy tokens
//! match, and ferrite's top-2 gap where they diverge.
//! `cargo run --release -p ferrite-tests --example parity [smollm2|gemma3|qwen2]...`

use engine::model::{LoadOptions, Model, SeqInput};
use ferrite_tests::{model_path, reference, top2, Model as TestModel};

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for which in [TestModel::SmolLm2, TestModel::Gemma3, TestModel::Qwen2] {
        if !args.is_empty() && !args.iter().any(|a| a == which.id()) {
            continue;
        }
        let model = Model::load(model_path(which), &LoadOptions { threads: 2 }).unwrap();
        for entry in reference(which)["entries"].as_array().unwrap() {
            let Some(greedy) = entry.get("greedy_ids") else {
                continue;
            };
            let prompt = ids(&entry["prompt_token_ids_add_special"]);
            let want = ids(greedy);
            let mut cache = model.new_cache(512);
            let mut logits = model
                .forward(&mut [SeqInput {
                    cache: &mut cache,
                    tokens: &prompt,
                    all_logits: false,
                }])
                .unwrap()
                .remove(0);
            let diffs: Vec<String> = entry["first_position_top5_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let id = p[0].as_u64().unwrap() as usize;
                    format!("{:+.4}", logits[id] as f64 - p[1].as_f64().unwrap())
                })
                .collect();
            let mut matched = 0;
            let mut note = String::new();
            for &w in &want {
                let (tok, a, b) = top2(&logits);
                if tok != w {
                    note = format!(
                        "diverges: ferrite {tok} vs {w}, ferrite top-2 gap {:.4}",
                        a - b
                    );
                    break;
                }
                matched += 1;
                logits = model
                    .forward(&mut [SeqInput {
                        cache: &mut cache,
                        tokens: &[tok],
                        all_logits: false,
                    }])
                    .unwrap()
                    .remove(0);
            }
            println!(
                "{:8} {:32} top5 diff [{}]  greedy {matched}/{} {note}",
                which.id(),
                format!("{:?}", entry["prompt"].as_str().unwrap()),
                diffs.join(" "),
                want.len()
            );
        }
    }
}

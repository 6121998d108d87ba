//! Tokenizer vs llama.cpp reference outputs (shared/reference/*.json) on the real models.

mod tokenizer_common;

use tokenizer_common::{load, reference, render_piece};

fn check_model(model_file: &str, reference_file: &str) {
    let tok = load(model_file);
    let refdata = reference(reference_file);
    assert_eq!(refdata["n_vocab"].as_u64().unwrap() as usize, tok.n_vocab());
    assert_eq!(refdata["add_bos"].as_bool().unwrap(), tok.add_bos());
    let entries = refdata["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        let prompt = e["prompt"].as_str().unwrap();
        let ids = |k: &str| -> Vec<u32> {
            e[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        };
        let with = ids("prompt_token_ids_add_special");
        assert_eq!(
            tok.encode(prompt, true, false),
            with,
            "add_special, {prompt:?}"
        );
        assert_eq!(
            tok.encode(prompt, false, false),
            ids("prompt_token_ids_no_special"),
            "{prompt:?}"
        );
        let pieces: Vec<String> = with.iter().map(|&id| render_piece(&tok, id)).collect();
        let want: Vec<&str> = e["prompt_token_pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(pieces, want, "pieces of {prompt:?}");
        if let Some(text) = e.get("greedy_text").and_then(|v| v.as_str()) {
            assert_eq!(
                tok.decode(&ids("greedy_ids")),
                text,
                "greedy text after {prompt:?}"
            );
        }
    }
}

#[test]
fn tokenizer_reference_smollm2() {
    check_model("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-q4_1.json");
}

#[test]
fn tokenizer_reference_gemma3() {
    check_model("gemma-3-270m-q4_k_m.gguf", "gemma3-270m-q4_k_m.json");
}

#[test]
fn tokenizer_reference_qwen2() {
    check_model(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "qwen2.5-coder-0.5b-q4_k_m.json",
    );
}

//! The real models of /work/shared/models.md parse, and their metadata and tensors match
//! what is known about them. Missing models are fetched with `tests/fetch-models.sh`;
//! this test never skips.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ferrite_engine::gguf::GgufFile;
use kernels::GgmlType;

fn model(file: &str, fetch_name: &str) -> GgufFile {
    let dir = std::env::var_os("FERRITE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/ferrite-models")
        });
    let path = dir.join(file);
    if !path.exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fetch-models.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(fetch_name)
            .env("FERRITE_MODELS_DIR", &dir)
            .status()
            .expect("run tests/fetch-models.sh");
        assert!(
            status.success(),
            "tests/fetch-models.sh {fetch_name} failed"
        );
    }
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn type_counts(f: &GgufFile) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for t in f.tensors() {
        *counts.entry(t.dtype.name()).or_default() += 1;
    }
    counts
}

/// Checks that hold for every model: layout, views, per-block tensors, vocab size.
fn check_common(f: &GgufFile, arch: &str, blocks: u32, d_model: u64, vocab: usize) {
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.architecture().unwrap(), arch);
    assert_eq!(f.get_u32(&format!("{arch}.block_count")).unwrap(), blocks);
    assert_eq!(
        f.get_u64(&format!("{arch}.embedding_length")).unwrap(),
        d_model
    );
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        vocab
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
        vocab
    );

    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, [d_model, vocab as u64]);
    assert_eq!(embd.row_len(), d_model);
    assert_eq!(embd.rows(), vocab as u64);
    assert_eq!(f.tensor("output_norm.weight").unwrap().dtype, GgmlType::F32);
    for b in 0..blocks {
        let t = |name: &str| {
            f.tensor(&format!("blk.{b}.{name}.weight"))
                .unwrap_or_else(|| panic!("blk.{b}.{name}.weight missing"))
        };
        // Tensors reading the residual stream have rows of d_model; those writing it, d_model rows.
        for name in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "ffn_up",
            "ffn_gate",
            "ffn_norm",
        ] {
            assert_eq!(t(name).dims[0], d_model, "blk.{b}.{name}");
        }
        for name in ["attn_output", "ffn_down"] {
            assert_eq!(t(name).dims[1], d_model, "blk.{b}.{name}");
        }
    }
    assert!(f.tensor(&format!("blk.{blocks}.attn_q.weight")).is_none());

    // Views: exact sizes, inside the file, data section aligned, the file ends with data.
    let mut end = 0;
    for t in f.tensors() {
        let v = f.tensor_view(&t.name).unwrap();
        assert_eq!(v.bytes().len() as u64, t.size);
        assert_eq!(v.dims(), &t.dims[..]);
        assert_eq!(t.offset % 32, 0);
        assert!(t.offset >= f.data_offset());
        end = end.max(t.offset + t.size);
    }
    assert!(end <= f.file_size() && f.file_size() - end < 32);
}

#[test]
fn smollm2_135m() {
    let f = model("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2");
    check_common(&f, "llama", 30, 576, 49152);
    assert_eq!(f.file_size(), 98_362_432);
    assert_eq!(f.data_offset(), 1_785_664);
    assert_eq!(f.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(f.get_u32("llama.rope.dimension_count").unwrap(), 64);
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(f.get_usize("llama.vocab_size").unwrap(), 49152);
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48900
    );
    assert!(!f.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(f
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("<|im_start|>"));
    assert_eq!(f.metadata().len(), 33);
    assert_eq!(f.metadata()[0].0, "general.architecture");

    assert_eq!(f.tensors().len(), 272);
    assert_eq!(
        type_counts(&f),
        BTreeMap::from([("f32", 61), ("q4_1", 210), ("q8_0", 1)])
    );
    assert_eq!(f.tensor("token_embd.weight").unwrap().dtype, GgmlType::Q8_0);
    // Tied embeddings: the output projection reuses token_embd.weight.
    assert!(f.tensor("output.weight").is_none());
    let q = f.tensor("blk.7.attn_q.weight").unwrap();
    assert_eq!(
        (q.dtype, q.dims.as_slice()),
        (GgmlType::Q4_1, &[576u64, 576][..])
    );
    let k = f.tensor("blk.7.attn_k.weight").unwrap();
    assert_eq!(k.dims, [576, 192]); // 3 KV heads x 64
}

#[test]
fn gemma3_270m() {
    let f = model("gemma-3-270m-q4_k_m.gguf", "gemma3");
    check_common(&f, "gemma3", 18, 640, 262_144);
    assert_eq!(f.file_size(), 253_113_024);
    assert_eq!(f.data_offset(), 6_525_120);
    assert_eq!(f.get_u32("gemma3.attention.head_count").unwrap(), 4);
    assert_eq!(f.get_u32("gemma3.attention.head_count_kv").unwrap(), 1);
    assert_eq!(f.get_u32("gemma3.attention.key_length").unwrap(), 256);
    assert_eq!(f.get_u32("gemma3.attention.value_length").unwrap(), 256);
    assert_eq!(f.get_u32("gemma3.feed_forward_length").unwrap(), 2048);
    assert_eq!(f.get_u32("gemma3.attention.sliding_window").unwrap(), 512);
    assert_eq!(f.get_f32("gemma3.rope.freq_base").unwrap(), 1e6);
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(
        f.get_f32_array("tokenizer.ggml.scores").unwrap().len(),
        262_144
    );
    assert!(f.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(f.get_str_opt("tokenizer.chat_template").unwrap(), None);

    assert_eq!(f.tensors().len(), 236); // 18 x 13 + token_embd + output_norm
    assert_eq!(
        type_counts(&f),
        BTreeMap::from([
            ("f32", 109),
            ("q4_K", 27),
            ("q5_0", 81),
            ("q6_K", 9),
            ("q8_0", 10)
        ])
    );
    assert!(f.tensor("output.weight").is_none());
    for name in [
        "attn_q_norm",
        "attn_k_norm",
        "post_attention_norm",
        "post_ffw_norm",
    ] {
        let t = f.tensor(&format!("blk.17.{name}.weight")).unwrap();
        assert_eq!(t.dtype, GgmlType::F32);
    }
    assert_eq!(f.tensor("blk.0.attn_q_norm.weight").unwrap().dims, [256]);
}

#[test]
fn qwen2_5_coder_0_5b() {
    let f = model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2");
    check_common(&f, "qwen2", 24, 896, 151_936);
    assert_eq!(f.file_size(), 491_400_064);
    assert_eq!(f.data_offset(), 5_947_776);
    assert_eq!(f.get_u32("qwen2.attention.head_count").unwrap(), 14);
    assert_eq!(f.get_u32("qwen2.attention.head_count_kv").unwrap(), 2);
    assert_eq!(f.get_u32("qwen2.feed_forward_length").unwrap(), 4864);
    assert_eq!(f.get_f32("qwen2.rope.freq_base").unwrap(), 1e6);
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "qwen2");
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        151_387
    );
    assert_eq!(f.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 151_645);
    assert!(f
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("<tool_call>"));

    assert_eq!(f.tensors().len(), 291); // 24 x 12 + token_embd + output_norm + output
    assert_eq!(
        type_counts(&f),
        BTreeMap::from([
            ("f32", 121),
            ("q4_K", 12),
            ("q5_0", 133),
            ("q6_K", 12),
            ("q8_0", 13)
        ])
    );
    let out = f.tensor("output.weight").unwrap();
    assert_eq!(
        (out.dtype, out.dims.as_slice()),
        (GgmlType::Q8_0, &[896u64, 151_936][..])
    );
    for b in 0..24 {
        for bias in ["attn_q", "attn_k", "attn_v"] {
            let t = f.tensor(&format!("blk.{b}.{bias}.bias")).unwrap();
            assert_eq!(t.dtype, GgmlType::F32);
        }
    }
    assert_eq!(f.tensor("blk.0.attn_k.bias").unwrap().dims, [128]); // 2 KV heads x 64
}

#[test]
fn shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<GgufFile>();
    assert_send_sync::<ferrite_engine::gguf::Tensor>();

    let f = Arc::new(model("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let name = format!("blk.{i}.ffn_down.weight");
                let v = f.tensor_view(&name).unwrap();
                v.bytes().iter().map(|&b| b as u64).sum::<u64>()
            })
        })
        .collect();
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(sums.iter().all(|&s| s > 0));
    // Views keep the mapping alive after the last file handle is gone.
    let view = f.tensor_view("token_embd.weight").unwrap();
    drop(f);
    assert_eq!(view.bytes().len(), 576 / 32 * 34 * 49152);
}

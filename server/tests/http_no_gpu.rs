//! `num_gpu` without a usable GPU adapter: the model runs on the CPU (Ollama falls back
//! silently; ferrite logs it), `/api/ps` shows no VRAM. Its own test binary: the adapter
//! list is read once per process, here with a backend that has no adapter on Linux.

mod common;
use common::*;
use serde_json::json;

#[test]
fn num_gpu_without_an_adapter_falls_back_to_the_cpu() {
    // Before anything asks wgpu for adapters (edition 2021: set_var is safe; this binary
    // has one test, so no other thread reads the environment meanwhile).
    std::env::set_var("WGPU_BACKEND", "metal");
    assert!(
        ferrite_server::gpu::shared_context().is_err(),
        "no Metal adapter on this platform"
    );
    let s = start(
        config(&[("OLLAMA_CONTEXT_LENGTH", "256")]),
        MemCatalog::with_smollm2(),
    );
    for n in [999, 4, -1] {
        let body = json!({"model": "smol", "prompt": "Hi", "stream": false,
                          "options": {"num_gpu": n, "num_predict": 2, "temperature": 0}});
        let r = post(s.addr, "/api/generate", &body);
        assert_eq!(r.status, 200, "num_gpu {n}: {}", r.text());
        assert!(r.json()["eval_count"].as_u64().unwrap() > 0);
        let ps = get(s.addr, "/api/ps").json();
        let m = &ps["models"][0];
        assert_eq!(m["size_vram"], 0, "num_gpu {n}: {m}");
        assert!(m["size"].as_u64().unwrap() > 0);
    }
}

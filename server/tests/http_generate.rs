//! Generate and chat on the real SmolLM2 model: NDJSON framing, stream vs. non-stream,
//! options, load/unload, keep_alive, and the OpenAI layer's SSE framing.

mod common;
use common::*;
use serde_json::{json, Value};

fn server() -> TestServer {
    start(config(&[]), MemCatalog::with_smollm2())
}

fn opts(seed: i64, n: i64) -> Value {
    json!({"seed": seed, "temperature": 0.7, "num_predict": n})
}

#[test]
fn generate_streams_ndjson_and_matches_the_non_streaming_answer() {
    let s = server();
    let body = json!({"model": "smol", "prompt": "What is the capital of France?", "options": opts(7, 12)});
    let r = post(s.addr, "/api/generate", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert!(r.text().ends_with('\n'));
    let lines = r.lines();
    assert!(lines.len() >= 2, "{lines:?}");
    let (last, chunks) = lines.split_last().unwrap();
    for c in chunks {
        assert_eq!(c["model"], "smol");
        assert_eq!(c["done"], false);
        assert!(c["response"].is_string());
        assert!(
            c.get("done_reason").is_none() && c.get("eval_count").is_none(),
            "{c}"
        );
        assert!(c["created_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(last["done"], true);
    assert_eq!(last["response"], "");
    assert!(
        ["stop", "length"].contains(&last["done_reason"].as_str().unwrap()),
        "{last}"
    );
    for k in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(last[k].as_u64().unwrap() > 0, "{k} in {last}");
    }
    assert!(last["eval_count"].as_u64().unwrap() <= 12);
    let context = last["context"].as_array().unwrap();
    assert!(context.len() > last["prompt_eval_count"].as_u64().unwrap() as usize);
    let streamed: String = chunks
        .iter()
        .map(|c| c["response"].as_str().unwrap())
        .collect();
    assert!(!streamed.is_empty());

    let mut body2 = body.clone();
    body2["stream"] = json!(false);
    let r2 = post(s.addr, "/api/generate", &body2);
    assert_eq!(r2.status, 200);
    assert_eq!(
        r2.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let one = r2.json();
    assert_eq!(
        one["response"].as_str().unwrap(),
        streamed,
        "same seed, same text"
    );
    assert_eq!(one["done"], true);
    assert_eq!(one["context"], last["context"]);
}

#[test]
fn num_predict_stops_with_length_and_stop_sequences_cut_the_text() {
    let s = server();
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Count from 1 to 50: 1, 2, 3,", "raw": true, "stream": false,
                "options": {"temperature": 0, "num_predict": 5}}),
    )
    .json();
    assert_eq!(r["done_reason"], "length", "{r}");
    assert_eq!(r["eval_count"], 5);
    assert!(
        r.get("context").is_none(),
        "raw requests return no context: {r}"
    );

    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Count from 1 to 50: 1, 2, 3,", "raw": true, "stream": false,
                "options": {"temperature": 0, "num_predict": 40, "stop": [" 7"]}}),
    )
    .json();
    let text = r["response"].as_str().unwrap();
    assert_eq!(r["done_reason"], "stop", "{r}");
    assert!(!text.contains(" 7") && text.contains('6'), "{text:?}");
}

#[test]
fn chat_streams_messages_and_keeps_the_seed_deterministic() {
    let s = server();
    let body = json!({"model": "smol", "messages": [{"role": "user", "content": "Say hello."}],
                      "options": opts(3, 10)});
    let r = post(s.addr, "/api/chat", &body);
    assert_eq!(r.status, 200);
    let lines = r.lines();
    let (last, chunks) = lines.split_last().unwrap();
    let text: String = chunks
        .iter()
        .map(|c| {
            assert_eq!(c["message"]["role"], "assistant");
            c["message"]["content"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(last["done"], true);
    assert_eq!(last["message"], json!({"role": "assistant", "content": ""}));
    assert!(last.get("context").is_none());
    let mut b = body.clone();
    b["stream"] = json!(false);
    let one = post(s.addr, "/api/chat", &b).json();
    assert_eq!(one["message"]["content"].as_str().unwrap(), text);
    assert!(one["prompt_eval_count"].as_u64().unwrap() > 0);
}

#[test]
fn load_unload_and_keep_alive() {
    let s = server();
    assert!(ps_names(s.addr).is_empty());
    let r = post(s.addr, "/api/generate", &json!({"model": "smol"}));
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["done_reason"], "load");
    assert_eq!(j["response"], "");
    let ps = get(s.addr, "/api/ps").json();
    let m = &ps["models"][0];
    assert_eq!(m["name"], "smol:latest");
    assert_eq!(m["model"], "smol:latest");
    // The default placement offloads only to a real GPU (lavapipe in CI is not one).
    if ferrite_server::gpu::real_gpu_present() {
        assert_eq!(m["size_vram"], m["size"]);
    } else {
        assert_eq!(m["size_vram"], 0);
    }
    assert_eq!(m["context_length"], 4096);
    assert_eq!(m["digest"], "ab".repeat(32));
    assert_eq!(m["details"]["family"], "llama");
    assert!(m["size"].as_u64().unwrap() > 90_000_000);
    assert!(m["expires_at"].as_str().unwrap().ends_with('Z'));

    let r = post(
        s.addr,
        "/api/chat",
        &json!({"model": "smol", "keep_alive": 0}),
    )
    .json();
    assert_eq!(r["done_reason"], "unload");
    assert_eq!(r["message"], json!({"role": "assistant", "content": ""}));
    assert!(ps_names(s.addr).is_empty());
    // Unloading what is not loaded is fine; an unknown model is not.
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "keep_alive": "0s"}),
    );
    assert_eq!(r.json()["done_reason"], "unload");
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "nope", "keep_alive": 0}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"error": "model 'nope' not found"}));

    // keep_alive 0 on a real request: unloaded right after it.
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Hi", "stream": false, "keep_alive": 0, "options": opts(1, 3)}),
    );
    assert_eq!(r.status, 200);
    assert!(
        eventually(5, || ps_names(s.addr).is_empty()),
        "{:?}",
        ps_names(s.addr)
    );

    // keep_alive -1: forever.
    post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "keep_alive": -1}),
    );
    let ps = get(s.addr, "/api/ps").json();
    let year: i64 = ps["models"][0]["expires_at"].as_str().unwrap()[..4]
        .parse()
        .unwrap();
    assert!(year > 2200, "{ps}");
    // A short keep_alive expires on its own.
    post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "keep_alive": "2s"}),
    );
    assert_eq!(ps_names(s.addr), vec!["smol:latest".to_string()]);
    assert!(eventually(10, || ps_names(s.addr).is_empty()));
}

#[test]
fn a_num_ctx_within_the_loaded_context_does_not_reload() {
    let s = server();
    post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "options": {"num_ctx": 2048}}),
    );
    let before = get(s.addr, "/api/ps").json()["models"][0].clone();
    assert_eq!(before["context_length"], 2048);
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Hi", "stream": false, "options": {"num_ctx": 512, "num_predict": 2}}),
    )
    .json();
    assert!(r["load_duration"].as_u64().unwrap_or(0) < 50_000_000, "{r}");
    assert_eq!(
        get(s.addr, "/api/ps").json()["models"][0]["context_length"],
        2048
    );
    // Larger than loaded: reloaded with the larger context.
    post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "options": {"num_ctx": 3000}}),
    );
    assert_eq!(
        get(s.addr, "/api/ps").json()["models"][0]["context_length"],
        3000
    );
}

#[test]
fn long_prompts_are_truncated_or_refused() {
    let s = server();
    let long = "word ".repeat(400);
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": long, "raw": true, "stream": false,
                "options": {"num_ctx": 128, "num_predict": 3, "temperature": 0}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert!(j["prompt_eval_count"].as_u64().unwrap() <= 128, "{j}");
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": long, "raw": true, "stream": false, "truncate": false,
                "options": {"num_ctx": 128, "num_predict": 3}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "the input length exceeds the context length"
    );
}

#[test]
fn template_override_and_system_reach_the_prompt() {
    let s = server();
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "X", "template": "<<{{ .Prompt }}>>", "_debug_render_only": true}),
    )
    .json();
    assert_eq!(r["_debug_info"]["rendered_template"], "<<X>>", "{r}");
    let r = post(
        s.addr,
        "/api/chat",
        &json!({"model": "smol", "messages": [{"role": "user", "content": "Q"}], "_debug_render_only": true}),
    )
    .json();
    assert_eq!(
        r["_debug_info"]["rendered_template"],
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    );
}

fn sse_events(text: &str) -> Vec<String> {
    assert!(text.ends_with("\n\n"), "{text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad event {e:?}"))
                .to_string()
        })
        .collect()
}

#[test]
fn openai_chat_completions_plain_and_streamed() {
    let s = server();
    let body = json!({"model": "smol", "messages": [{"role": "user", "content": "Say hi"}],
                      "max_tokens": 6, "seed": 11});
    let r = post(s.addr, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["model"], "smol");
    assert_eq!(j["system_fingerprint"], "fp_ollama");
    assert!(j["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(j["choices"][0]["message"]["role"], "assistant");
    let content = j["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let u = &j["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    assert!(["stop", "length"].contains(&j["choices"][0]["finish_reason"].as_str().unwrap()));

    let mut sb = body.clone();
    sb["stream"] = json!(true);
    sb["stream_options"] = json!({"include_usage": true});
    let r = post(s.addr, "/v1/chat/completions", &sb);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = sse_events(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let n = chunks.len();
    assert!(n >= 3);
    let usage = &chunks[n - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"]["completion_tokens"],
        j["usage"]["completion_tokens"]
    );
    let fin = &chunks[n - 2];
    assert_eq!(fin["choices"][0]["delta"], json!({}));
    assert_eq!(
        fin["choices"][0]["finish_reason"],
        j["choices"][0]["finish_reason"]
    );
    let mut streamed = String::new();
    for c in &chunks[..n - 2] {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c.get("usage").is_none());
        assert_eq!(c["created"], chunks[0]["created"]);
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        streamed += c["choices"][0]["delta"]["content"].as_str().unwrap();
    }
    assert_eq!(streamed, content);
}

#[test]
fn openai_completions_and_errors() {
    let s = server();
    let r = post(
        s.addr,
        "/v1/completions",
        &json!({"model": "smol", "prompt": "1, 2, 3,", "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["object"], "text_completion");
    assert!(j["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(j["choices"][0]["finish_reason"], "length");
    assert_eq!(j["usage"]["completion_tokens"], 4);

    let r = post(
        s.addr,
        "/v1/completions",
        &json!({"model": "smol", "prompt": "1, 2, 3,", "max_tokens": 3,
        "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}),
    );
    let events = sse_events(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 3);
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["object"], "text_completion");
        assert_eq!(c["usage"]["total_tokens"], 0);
    }
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );

    let r = post(
        s.addr,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "model 'gpt-4o' not found", "type": "not_found_error", "param": null, "code": null}})
    );
    let r = post(
        s.addr,
        "/v1/chat/completions",
        &json!({"model": "smol", "messages": []}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "[] is too short - 'messages'");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = post(
        s.addr,
        "/v1/completions",
        &json!({"model": "smol", "prompt": "x", "stop": [1]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "invalid type for 'stop' field: float64"
    );
}

#[test]
fn logprobs_follow_the_tokens() {
    let s = server();
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "The capital of France is", "raw": true, "stream": false,
                "logprobs": true, "top_logprobs": 3, "options": {"temperature": 0, "num_predict": 6}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let lps = j["logprobs"].as_array().unwrap();
    assert_eq!(lps.len(), 6, "{j}");
    let mut joined = String::new();
    for lp in lps {
        let top = lp["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // Greedy without penalties: the chosen token is the most likely one.
        assert_eq!(top[0]["token"], lp["token"]);
        assert_eq!(top[0]["logprob"], lp["logprob"]);
        let v: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
        assert!(v[0] <= 0.0 && v[0] >= v[1] && v[1] >= v[2], "{v:?}");
        let bytes: Vec<u8> = lp["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            lp["token"].as_str().unwrap()
        );
        joined += lp["token"].as_str().unwrap();
    }
    assert_eq!(joined, j["response"].as_str().unwrap());
    // Streaming: each chunk carries the log-probabilities of its own tokens.
    let mut b = json!({"model": "smol", "prompt": "The capital of France is", "raw": true,
                       "logprobs": true, "options": {"temperature": 0, "num_predict": 6}});
    let lines = post(s.addr, "/api/generate", &b).lines();
    let n: usize = lines
        .iter()
        .map(|l| l["logprobs"].as_array().map_or(0, |a| a.len()))
        .sum();
    assert_eq!(n, 6);
    assert!(lines[0]["logprobs"][0].get("top_logprobs").is_none());
    b["top_logprobs"] = json!(21);
    assert_eq!(post(s.addr, "/api/generate", &b).status, 400);
    // OpenAI chat: choice.logprobs.content.
    let r = post(
        s.addr,
        "/v1/chat/completions",
        &json!({"model": "smol", "messages": [{"role": "user", "content": "Hi"}],
        "logprobs": true, "top_logprobs": 2, "max_tokens": 4, "temperature": 0}),
    )
    .json();
    assert_eq!(
        r["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .len(),
        r["usage"]["completion_tokens"].as_u64().unwrap() as usize
            - usize::from(r["choices"][0]["finish_reason"] == "stop")
    );
}

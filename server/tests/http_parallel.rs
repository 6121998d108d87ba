//! Concurrency on the real model: parallel streams batched together give the same text as
//! alone, a client that hangs up frees its slot, a full queue answers 503.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn gen_body(prompt: &str, seed: i64, n: i64) -> Value {
    json!({"model": "smol", "prompt": prompt, "stream": true,
           "options": {"seed": seed, "temperature": 0.9, "top_k": 50, "num_predict": n}})
}

/// Streams one request; returns (text, time of the first chunk, time of the last line).
fn run_stream(addr: std::net::SocketAddr, body: &Value) -> (String, Instant, Instant) {
    let mut s = stream(addr, "POST", "/api/generate", body);
    assert_eq!(s.status, 200);
    let mut text = String::new();
    let mut first = None;
    let mut done = false;
    while let Some(line) = s.next_line() {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        first.get_or_insert_with(Instant::now);
        text += v["response"].as_str().unwrap();
        if v["done"] == true {
            done = true;
            assert!(v["eval_count"].as_u64().unwrap() <= 24, "{v}");
        }
    }
    assert!(done);
    (text, first.unwrap(), Instant::now())
}

#[test]
fn four_parallel_streams_equal_their_serial_results() {
    let s = start(
        config(&[("OLLAMA_NUM_PARALLEL", "4")]),
        MemCatalog::with_smollm2(),
    );
    let prompts = [
        "Once upon a time",
        "The three primary colors are",
        "def fibonacci(n):",
        "My favourite food is",
    ];
    let bodies: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| gen_body(p, 100 + i as i64, 24))
        .collect();
    let serial: Vec<String> = bodies.iter().map(|b| run_stream(s.addr, b).0).collect();
    for t in &serial {
        assert!(!t.is_empty());
    }
    assert_ne!(serial[0], serial[1]);

    let addr = s.addr;
    let handles: Vec<_> = bodies
        .iter()
        .cloned()
        .map(|b| std::thread::spawn(move || run_stream(addr, &b)))
        .collect();
    let results: Vec<(String, Instant, Instant)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, (text, _, _)) in results.iter().enumerate() {
        assert_eq!(text, &serial[i], "stream {i} differs when batched");
    }
    // They really ran together: every stream started before any finished.
    let last_start = results.iter().map(|r| r.1).max().unwrap();
    let first_end = results.iter().map(|r| r.2).min().unwrap();
    assert!(last_start < first_end, "streams did not overlap");
}

#[test]
fn a_client_that_hangs_up_frees_its_slot() {
    let s = start(
        config(&[("OLLAMA_NUM_PARALLEL", "1")]),
        MemCatalog::with_smollm2(),
    );
    let mut st = stream(
        s.addr,
        "POST",
        "/api/generate",
        &gen_body("Write a very long story:", 1, 100_000),
    );
    assert_eq!(st.status, 200);
    for _ in 0..3 {
        let l = st.next_line().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&l).unwrap()["done"], false);
    }
    drop(st);
    // The only slot is free again: a second request finishes promptly.
    let t0 = Instant::now();
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Hi", "stream": false, "options": {"num_predict": 3}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["eval_count"], 3);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let path = smollm2();
    assert!(eventually(5, || s.state.sched.refs(&path) == Some(0)));
}

#[test]
fn a_full_queue_answers_503() {
    let s = start(
        config(&[("OLLAMA_NUM_PARALLEL", "1"), ("OLLAMA_MAX_QUEUE", "1")]),
        MemCatalog::with_smollm2(),
    );
    // A: running (holds the slot).
    let mut a = stream(
        s.addr,
        "POST",
        "/api/generate",
        &gen_body("Tell me a story:", 1, 100_000),
    );
    assert!(a.next_line().is_some());
    // B: waits for the slot (fills the queue).
    let addr = s.addr;
    let b = std::thread::spawn(move || {
        post(
            addr,
            "/api/generate",
            &json!({"model": "smol", "prompt": "Hi", "stream": false,
                                              "options": {"num_predict": 2}}),
        )
    });
    assert!(eventually(10, || s.state.sched.queued() == 1));
    // C: refused.
    let c = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Hi", "stream": false}),
    );
    assert_eq!(c.status, 503);
    assert_eq!(
        c.json(),
        json!({"error": "server busy, please try again.  maximum pending requests exceeded"})
    );
    let c = post(
        s.addr,
        "/v1/chat/completions",
        &json!({"model": "smol", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(c.status, 503);
    assert_eq!(c.json()["error"]["type"], "api_error");
    // A hangs up; B gets the slot and completes.
    drop(a);
    let b = b.join().unwrap();
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(b.json()["eval_count"], 2);
    assert_eq!(s.state.sched.queued(), 0);
}

#[test]
fn prefix_reuse_evaluates_only_the_new_tokens() {
    let s = start(config(&[]), MemCatalog::with_smollm2());
    let first = json!({"model": "smol", "messages": [{"role": "user", "content": "Name a fruit."}],
                       "stream": false, "options": {"temperature": 0, "num_predict": 8}});
    let r1 = post(s.addr, "/api/chat", &first).json();
    let p1 = r1["prompt_eval_count"].as_u64().unwrap();
    let answer = r1["message"]["content"].as_str().unwrap().to_string();
    let second = json!({"model": "smol", "messages": [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Another one?"}],
        "stream": false, "options": {"temperature": 0, "num_predict": 8}});
    let r2 = post(s.addr, "/api/chat", &second).json();
    let p2 = r2["prompt_eval_count"].as_u64().unwrap();
    // The second prompt is longer than the first, yet only its new part was evaluated.
    assert!(p2 < p1 + 20, "p1={p1} p2={p2}");
    let again = post(s.addr, "/api/chat", &second).json();
    assert_eq!(
        again["prompt_eval_count"], 1,
        "a repeated prompt re-evaluates only its last token"
    );
    assert_eq!(again["message"]["content"], r2["message"]["content"]);
}

#[test]
fn a_non_streaming_client_that_hangs_up_frees_its_slot_too() {
    use std::io::Write;
    let s = start(
        config(&[("OLLAMA_NUM_PARALLEL", "1")]),
        MemCatalog::with_smollm2(),
    );
    let body = json!({"model": "smol", "prompt": "Write a very long story:", "stream": false,
                      "options": {"num_predict": 100_000}})
    .to_string();
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /api/generate HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
        s.addr,
        body.len()
    )
    .unwrap();
    let path = smollm2();
    assert!(eventually(30, || s.state.sched.refs(&path) == Some(1)));
    std::thread::sleep(Duration::from_millis(300));
    drop(c);
    assert!(
        eventually(10, || s.state.sched.refs(&path) == Some(0)),
        "the request was not cancelled"
    );
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "prompt": "Hi", "stream": false, "options": {"num_predict": 2}}),
    );
    assert_eq!(r.json()["eval_count"], 2);
}

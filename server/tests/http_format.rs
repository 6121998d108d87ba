//! Structured outputs (`format`, OpenAI `response_format`) on the real SmolLM2 model: the
//! output parses as JSON and validates against the schema, for generate and chat, greedy
//! and sampled, streamed and not; bad formats are 400 with Ollama's texts.

mod common;
use common::*;
use serde_json::{json, Value};

fn server() -> TestServer {
    start(config(&[]), MemCatalog::with_smollm2())
}

/// A schema whose key order is not alphabetical (the bodies are sent as raw text so that
/// the order reaches the server as written).
const APPLE: &str = r#"Return a JSON object with keys \"color\" and \"size\" for an apple."#;
const PERSON: &str = r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#;

fn post_text(s: &TestServer, path: &str, body: &str) -> Resp {
    raw(
        s.addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
}

fn options(temperature: f64) -> String {
    format!(r#"{{"temperature":{temperature},"seed":42,"num_predict":200}}"#)
}

/// `text` is a JSON object with exactly `name` (string) then `age` (integer).
fn assert_person(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {text}"));
    assert!(o["name"].is_string(), "{text}");
    assert!(o["age"].is_i64() || o["age"].is_u64(), "{text}");
    assert_eq!(o.len(), 2, "{text}");
    let name_at = text.find("\"name\"").unwrap();
    let age_at = text.find("\"age\"").unwrap();
    assert!(name_at < age_at, "schema order: {text}");
}

fn assert_object(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(v.is_object(), "{text}");
}

#[test]
fn generate_with_json_and_with_a_schema() {
    let s = server();
    let body = format!(
        r#"{{"model":"smol","prompt":"{APPLE}","format":"json","stream":false,"options":{}}}"#,
        options(0.0)
    );
    let r = post_text(&s, "/api/generate", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["done_reason"], "stop", "{v}");
    assert_object(v["response"].as_str().unwrap());
    for t in [0.0, 0.8] {
        let body = format!(
            r#"{{"model":"smol","prompt":"Invent a person: their name and age.","format":{PERSON},"stream":false,"options":{}}}"#,
            options(t)
        );
        let r = post_text(&s, "/api/generate", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["done_reason"], "stop", "{v}");
        assert_person(v["response"].as_str().unwrap());
    }
}

#[test]
fn chat_with_json_and_with_a_schema_streamed_and_not() {
    let s = server();
    for stream in [false, true] {
        for (format, prompt) in [
            (r#""json""#, APPLE),
            (
                PERSON,
                "Tell me about a person called Ada who is 36, in JSON.",
            ),
        ] {
            let body = format!(
                r#"{{"model":"smol","messages":[{{"role":"user","content":"{prompt}"}}],"format":{format},"stream":{stream},"options":{}}}"#,
                options(0.0)
            );
            let r = post_text(&s, "/api/chat", &body);
            assert_eq!(r.status, 200, "{}", r.text());
            let content: String = if stream {
                let lines = r.lines();
                assert_eq!(lines.last().unwrap()["done_reason"], "stop");
                lines
                    .iter()
                    .map(|l| l["message"]["content"].as_str().unwrap_or(""))
                    .collect()
            } else {
                let v = r.json();
                assert_eq!(v["done_reason"], "stop", "{v}");
                v["message"]["content"].as_str().unwrap().to_string()
            };
            if format == PERSON {
                assert_person(&content);
            } else {
                assert_object(&content);
            }
        }
    }
}

#[test]
fn openai_response_format() {
    let s = server();
    let body = format!(
        r#"{{"model":"smol","messages":[{{"role":"user","content":"Invent a person."}}],"temperature":0,"max_tokens":200,"response_format":{{"type":"json_schema","json_schema":{{"name":"person","strict":true,"schema":{PERSON}}}}}}}"#
    );
    let r = post_text(&s, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert_person(v["choices"][0]["message"]["content"].as_str().unwrap());

    let body = json!({"model": "smol", "messages": [{"role": "user", "content": APPLE.replace("\\\"", "\"")}],
        "temperature": 0, "max_tokens": 200, "response_format": {"type": "JSON_OBJECT"}});
    let r = post(s.addr, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_object(
        r.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap(),
    );

    // A refused schema: the OpenAI error shape.
    let body = json!({"model": "smol", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "(a)\\1"}}}});
    let r = post(s.addr, "/v1/chat/completions", &body);
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON schema in format: pattern \"(a)\\\\1\": backreferences"),
        "{e}"
    );
}

#[test]
fn bad_formats_are_400_with_ollamas_texts() {
    let s = server();
    for path in ["/api/generate", "/api/chat"] {
        let base = if path == "/api/generate" {
            json!({"model": "smol", "prompt": "hi"})
        } else {
            json!({"model": "smol", "messages": [{"role": "user", "content": "hi"}]})
        };
        for (format, msg) in [
            (
                json!("yaml"),
                r#"invalid format: "\"yaml\""; expected "json" or a valid JSON Schema object"#,
            ),
            (
                json!([1]),
                r#"invalid format: "[1]"; expected "json" or a valid JSON Schema object"#,
            ),
            (
                json!(true),
                r#"invalid format: "true"; expected "json" or a valid JSON Schema object"#,
            ),
            (
                json!({"type": "object", "patternProperties": {}}),
                r#"invalid JSON schema in format: the keyword "patternProperties" is not supported"#,
            ),
            (
                json!({"type": "array", "uniqueItems": true}),
                "invalid JSON schema in format: uniqueItems is not supported",
            ),
            (
                json!({"$ref": "http://example.com/x.json"}),
                r##"invalid JSON schema in format: $ref "http://example.com/x.json" is not supported (only local references such as "#/$defs/name")"##,
            ),
        ] {
            let mut body = base.clone();
            body["format"] = format.clone();
            let r = post(s.addr, path, &body);
            assert_eq!(r.status, 400, "{path} {format}: {}", r.text());
            assert_eq!(r.json(), json!({"error": msg}), "{path} {format}");
        }
        // Empty and null formats are no format at all.
        for format in [json!(""), Value::Null] {
            let mut body = base.clone();
            body["format"] = format;
            body["stream"] = json!(false);
            body["options"] = json!({"num_predict": 3});
            let r = post(s.addr, path, &body);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
        }
    }
}

/// Constrained and unconstrained sequences batched together (continuous batching): each
/// keeps its own grammar state and gives the same text as alone.
#[test]
fn constrained_sequences_batch_with_others() {
    let s = start(
        config(&[("OLLAMA_NUM_PARALLEL", "3")]),
        MemCatalog::with_smollm2(),
    );
    let bodies: Vec<String> = [
        (r#""json""#, APPLE, 0.0),
        (PERSON, "Invent a person: their name and age.", 0.8),
        ("null", "Once upon a time", 0.8),
    ]
    .iter()
    .map(|(f, p, t)| {
        format!(
            r#"{{"model":"smol","prompt":"{p}","format":{f},"stream":false,"options":{{"temperature":{t},"seed":5,"num_predict":100}}}}"#
        )
    })
    .collect();
    let one = |b: &str| {
        let r = post_text(&s, "/api/generate", b);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["response"].as_str().unwrap().to_string()
    };
    let serial: Vec<String> = bodies.iter().map(|b| one(b)).collect();
    let parallel: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = bodies.iter().map(|b| sc.spawn(|| one(b))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(parallel, serial);
    assert_object(&serial[0]);
    assert_person(&serial[1]);
}

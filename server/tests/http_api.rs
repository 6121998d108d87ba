//! Routes, status codes and exact error texts; model management through the catalog;
//! the Host guard and CORS.

mod common;
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

fn server() -> TestServer {
    start(config(&[]), MemCatalog::with_smollm2())
}

#[test]
fn health_version_and_unknown_routes() {
    let s = server();
    let r = get(s.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Ollama is running");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = raw(s.addr, "HEAD", "/", &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        get(s.addr, "/api/version").json(),
        json!({"version": "0.33.0"})
    );
    let r = get(s.addr, "/api/nothing");
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found"));
    let r = get(s.addr, "/api/generate");
    assert_eq!(
        (r.status, r.text().as_str()),
        (405, "405 method not allowed")
    );
    let r = raw(s.addr, "GET", "/api/delete", &[], None);
    assert_eq!(r.status, 405);
}

#[test]
fn request_errors_have_the_spec_status_and_text() {
    let s = server();
    let err = |path: &str, body: &str| {
        let r = raw(
            s.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        );
        let j = r.json();
        assert_eq!(j.as_object().unwrap().len(), 1, "{j}");
        (r.status, j["error"].as_str().unwrap().to_string())
    };
    let e = |m: &str| m.to_string();
    assert_eq!(err("/api/generate", ""), (400, e("missing request body")));
    assert_eq!(err("/api/chat", "  "), (400, e("missing request body")));
    let (code, msg) = err("/api/generate", "{\"model\": ");
    assert_eq!(code, 400);
    assert!(msg.contains("EOF"), "{msg}");
    assert_eq!(
        err("/api/generate", "{\"model\": 3}"),
        (400, e("invalid type: integer `3`, expected a string"))
    );
    assert_eq!(err("/api/generate", "{}"), (400, e("model is required")));
    assert_eq!(
        err("/api/chat", "{\"messages\": []}"),
        (400, e("model is required"))
    );
    assert_eq!(err("/api/show", "{}"), (400, e("model is required")));
    assert_eq!(
        err("/api/generate", r#"{"model":"nope","prompt":"x"}"#),
        (404, e("model 'nope' not found"))
    );
    assert_eq!(
        err("/api/chat", r#"{"model":"nope"}"#),
        (404, e("model 'nope' not found"))
    );
    assert_eq!(
        err("/api/show", r#"{"model":"nope"}"#),
        (404, e("model 'nope' not found"))
    );
    assert_eq!(
        err("/api/show", r#"{"name":"nope"}"#),
        (404, e("model 'nope' not found"))
    );
    assert_eq!(
        err("/api/generate", r#"{"model":"bad name","prompt":"x"}"#),
        (400, e("invalid model name"))
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","raw":true,"system":"s"}"#
        ),
        (
            400,
            e("raw mode does not support template, system, or context")
        )
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","think":"lots"}"#
        ),
        (
            400,
            e(
                r#"invalid think value: "lots" (must be "high", "medium", "low", "max", true, or false)"#
            )
        )
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","think":true}"#
        ),
        (400, e(r#""smol" does not support thinking"#))
    );
    assert_eq!(
        err(
            "/api/chat",
            r#"{"model":"smol","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#
        ),
        (
            400,
            e("registry.ollama.ai/library/smol:latest does not support tools")
        )
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","suffix":"y"}"#
        ),
        (
            400,
            e("registry.ollama.ai/library/smol:latest does not support insert")
        )
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","top_logprobs":21}"#
        ),
        (400, e("top_logprobs must be between 0 and 20"))
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","format":"yaml"}"#
        ),
        (
            400,
            e(r#"invalid format: "\"yaml\""; expected "json" or a valid JSON Schema object"#)
        )
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","format":{"type":"string","pattern":"\\bx"}}"#
        ),
        (
            400,
            e(
                r#"invalid JSON schema in format: pattern "\\bx": word boundaries are not supported (at offset 2)"#
            )
        )
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","keep_alive":true}"#
        ),
        (400, e("Unsupported type: 'bool'"))
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","options":{"top_k":"many"}}"#
        ),
        (500, e(r#"option "top_k" must be of type integer"#))
    );
    assert_eq!(
        err(
            "/api/generate",
            r#"{"model":"smol","prompt":"x","options":{"top_p":1.5}}"#
        )
        .0,
        400
    );
    assert_eq!(
        err("/api/embed", r#"{"model":"smol","input":[1]}"#),
        (400, e("invalid input type"))
    );
    assert_eq!(
        err("/api/embed", r#"{"model":"smol","input":"x"}"#),
        (400, e(r#""smol" does not support embeddings"#))
    );
    assert_eq!(
        err("/api/embeddings", r#"{"model":"nope","prompt":"x"}"#),
        (404, e(r#"model "nope" not found, try pulling it first"#))
    );
    // Unknown and removed options are ignored; nothing was loaded by any of the above.
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "smol", "options": {"mirostat": 1, "tfs_z": 2.0, "whatever": []}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn tools_reach_the_renderer_in_the_clients_key_order() {
    let s = server();
    let tools = r#"[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}}}}]"#;
    let body = format!(
        r#"{{"model":"smoltools","messages":[{{"role":"user","content":"Q"}}],"tools":{tools},"_debug_render_only":true}}"#
    );
    let r = raw(s.addr, "POST", "/api/chat", &[], Some(body.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    let rendered = r.json()["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        rendered.contains(&format!("<tools>{}</tools>", &tools[1..tools.len() - 1])),
        "{rendered}"
    );
    let body = format!(
        r#"{{"model":"smoltools","messages":[{{"role":"user","content":"Q"}}],"tools":{tools},"_debug_render_only":true}}"#
    );
    let r = raw(
        s.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        Some(body.as_bytes()),
    );
    let rendered = r.json()["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        rendered.contains("\"zeta\":{\"type\":\"string\"},\"alpha\""),
        "{rendered}"
    );
}

#[test]
fn tags_show_copy_delete_create() {
    let s = server();
    let tags = get(s.addr, "/api/tags").json();
    let m = &tags["models"][0];
    assert_eq!(m["name"], "smol:latest");
    assert_eq!(m["model"], "smol:latest");
    assert_eq!(m["modified_at"], "2023-11-14T22:13:20Z");
    assert_eq!(m["details"]["quantization_level"], "Q4_1");
    assert_eq!(m["capabilities"], json!(["completion"]));

    let r = post(s.addr, "/api/show", &json!({"model": "smol"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model_info"], json!({}));

    let r = post(
        s.addr,
        "/api/copy",
        &json!({"source": "smol", "destination": "smol2"}),
    );
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = post(
        s.addr,
        "/api/copy",
        &json!({"source": "gone", "destination": "x"}),
    );
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error": "model \"gone\" not found"}))
    );

    let models = get(s.addr, "/v1/models").json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["smol2:latest", "smol:latest", "smoltools:latest"]);
    assert_eq!(models["data"][0]["owned_by"], "library");
    assert_eq!(models["data"][0]["created"], 1_700_000_000);
    let one = get(s.addr, "/v1/models/smol2").json();
    assert_eq!(
        one,
        json!({"id": "smol2", "object": "model", "created": 1_700_000_000, "owned_by": "library"})
    );
    let r = get(s.addr, "/v1/models/nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");

    let r = raw(
        s.addr,
        "DELETE",
        "/api/delete",
        &[],
        Some(br#"{"model":"smol2"}"#),
    );
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = raw(
        s.addr,
        "DELETE",
        "/api/delete",
        &[],
        Some(br#"{"name":"smol2"}"#),
    );
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error": "model 'smol2' not found"}))
    );

    // create streams the catalog's progress, then success.
    let r = post(
        s.addr,
        "/api/create",
        &json!({"model": "mario", "from": "smol", "system": "You are Mario."}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines = r.lines();
    assert_eq!(
        lines,
        vec![
            json!({"status": "using existing layer sha256:1"}),
            json!({"status": "writing manifest"}),
            json!({"status": "success"}),
        ]
    );
    let r = post(
        s.addr,
        "/api/create",
        &json!({"model": "luigi", "from": "smol", "stream": false}),
    );
    assert_eq!((r.status, r.json()), (200, json!({"status": "success"})));
    let r = post(s.addr, "/api/create", &json!({"model": "x"}));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.lines(),
        vec![json!({"error": "neither 'from' or 'files' was specified"})]
    );
    let r = post(
        s.addr,
        "/api/create",
        &json!({"model": "x", "stream": false}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error": "neither 'from' or 'files' was specified"})
        )
    );
    // The created model's SYSTEM reaches the prompt.
    let r = post(
        s.addr,
        "/api/generate",
        &json!({"model": "mario", "prompt": "hi", "_debug_render_only": true}),
    )
    .json();
    assert!(r["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .contains("You are Mario."));
}

#[test]
fn blobs_are_checked_and_stored() {
    let s = server();
    let data = b"some weights".repeat(10_000);
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = format!("/api/blobs/sha256:{hex}");
    assert_eq!(raw(s.addr, "HEAD", &path, &[], None).status, 404);
    let r = raw(s.addr, "POST", &path, &[], Some(b"other bytes"));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("digest mismatch, expected \"sha256:"));
    let r = raw(s.addr, "POST", &path, &[], Some(&data));
    assert_eq!((r.status, r.body.len()), (201, 0));
    assert_eq!(raw(s.addr, "HEAD", &path, &[], None).status, 200);
    assert_eq!(raw(s.addr, "POST", &path, &[], Some(&data)).status, 200);
    let r = raw(s.addr, "HEAD", "/api/blobs/sha256:xyz", &[], None);
    assert_eq!(r.status, 400);
}

#[test]
fn host_guard_rejects_foreign_names_on_loopback() {
    let s = server();
    let status = |host: &str, method: &str| {
        raw(s.addr, method, "/api/version", &[("Host", host)], None).status
    };
    assert_eq!(status("localhost:11434", "GET"), 200);
    assert_eq!(status("127.0.0.1", "GET"), 200);
    assert_eq!(status("ollama.local", "GET"), 200);
    assert_eq!(status("evil.example.com", "GET"), 403);
    assert_eq!(status("evil.example.com:11434", "POST"), 403);
    assert_eq!(status("localhost", "OPTIONS"), 204);
    let r = raw(
        s.addr,
        "GET",
        "/api/version",
        &[("Host", "evil.example.com")],
        None,
    );
    assert!(r.body.is_empty());
}

#[test]
fn cors_follows_ollama_origins() {
    let s = start(
        config(&[("OLLAMA_ORIGINS", "https://*.example.org")]),
        MemCatalog::with_smollm2(),
    );
    let pre = |origin: &str| {
        raw(
            s.addr,
            "OPTIONS",
            "/api/chat",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
    };
    let r = pre("http://localhost:3000");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS")
    );
    let allowed = r.header("access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("Authorization") && allowed.contains("x-stainless-timeout"),
        "{allowed}"
    );
    assert_eq!(pre("https://app.example.org").status, 204);
    assert_eq!(pre("https://evil.com").status, 403);
    let r = raw(
        s.addr,
        "GET",
        "/api/version",
        &[("Origin", "app://obsidian.md")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("app://obsidian.md")
    );
    assert_eq!(
        raw(
            s.addr,
            "GET",
            "/api/version",
            &[("Origin", "https://evil.com")],
            None
        )
        .status,
        403
    );
    let r = get(s.addr, "/api/version");
    assert_eq!(r.header("access-control-allow-origin"), None);
}

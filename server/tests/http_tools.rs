//! Tool calls on the real Qwen2.5-Coder model (a renderer with Qwen's tool prompt): the
//! `<tool_call>` output becomes structured `tool_calls`, natively and through `/v1`.

mod common;
use common::*;
use ferrite_server::api::{ApiError, Message, ModelDetails};
use ferrite_server::catalog::{ChatRender, GenerateRender, PromptRenderer, ResolvedModel};
use ferrite_server::http::bind;
use serde_json::{json, Value};
use std::sync::Arc;

/// Qwen2.5's chat format with its tool instructions (as its GGUF template writes them).
struct QwenTools;

impl PromptRenderer for QwenTools {
    fn chat(
        &self,
        _m: &ResolvedModel,
        messages: &[Message],
        o: &ChatRender<'_>,
    ) -> Result<String, ApiError> {
        let mut s = String::from("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
        if !o.tools.is_empty() {
            s += "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
                  You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
            for t in o.tools {
                s += &format!("\n{t}");
            }
            s += "\n</tools>\n\nFor each function call, return a json object with function name and \
                  arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
                  {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";
        }
        s += "<|im_end|>\n";
        for m in messages {
            s += &format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
        }
        s += "<|im_start|>assistant\n";
        Ok(s)
    }
    fn generate(&self, m: &ResolvedModel, r: &GenerateRender<'_>) -> Result<String, ApiError> {
        self.chat(m, &[Message::new("user", r.prompt)], &ChatRender::default())
    }
}

fn start_qwen() -> (TestServer, tokio::runtime::Runtime) {
    let catalog = MemCatalog::default();
    catalog.add(ResolvedModel {
        name: "qwen:latest".into(),
        full_name: "registry.ollama.ai/library/qwen:latest".into(),
        digest: "cd".repeat(32),
        gguf_path: ferrite_tests::model_path(ferrite_tests::Model::Qwen2),
        parameters: json!({"stop": ["<|im_end|>"], "temperature": 0})
            .as_object()
            .unwrap()
            .clone(),
        details: ModelDetails::default(),
        capabilities: vec!["completion".into(), "tools".into()],
        ..Default::default()
    });
    let catalog: Arc<MemCatalog> = Arc::new(catalog);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let b = rt
        .block_on(bind(
            config(&[]),
            catalog,
            Arc::new(QwenTools),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let addr = b.local_addr();
    let state = b.state().clone();
    rt.spawn(async move { b.run().await.unwrap() });
    (TestServer::external(addr, state), rt)
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "required": ["city"],
                       "properties": {"city": {"type": "string", "description": "The city name"}}}}})
}

#[test]
fn qwen_tool_calls_become_structured() {
    let (s, _rt) = start_qwen();
    let msgs = json!([{"role": "user", "content": "What is the weather like in Paris right now?"}]);
    let r = post(
        s.addr,
        "/api/chat",
        &json!({"model": "qwen", "messages": msgs, "tools": [weather_tool()], "stream": false,
                "options": {"num_predict": 64}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let calls = j["message"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool calls: {j}"));
    assert_eq!(calls.len(), 1, "{j}");
    assert_eq!(calls[0]["function"]["name"], "get_current_weather");
    assert_eq!(calls[0]["function"]["index"], 0);
    assert!(calls[0]["function"]["arguments"]["city"]
        .as_str()
        .unwrap()
        .contains("Paris"));
    assert!(
        !j["message"]["content"]
            .as_str()
            .unwrap()
            .contains("<tool_call>"),
        "{j}"
    );

    // Streaming: the call arrives in a chunk of its own, the text around it stays text.
    let r = post(
        s.addr,
        "/api/chat",
        &json!({"model": "qwen", "messages": msgs, "tools": [weather_tool()], "options": {"num_predict": 64}}),
    );
    let lines = r.lines();
    let with_calls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"].get("tool_calls").is_some())
        .collect();
    assert_eq!(with_calls.len(), 1, "{lines:?}");
    assert_eq!(with_calls[0]["message"]["content"], "");

    // OpenAI: arguments as a JSON string, finish_reason tool_calls.
    let r = post(
        s.addr,
        "/v1/chat/completions",
        &json!({"model": "qwen", "messages": msgs, "tools": [weather_tool()], "temperature": 0, "max_tokens": 64}),
    );
    let j = r.json();
    assert_eq!(j["choices"][0]["finish_reason"], "tool_calls", "{j}");
    let tc = &j["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(tc["type"], "function");
    assert!(tc["id"].as_str().unwrap().starts_with("call_"));
    let args: Value = serde_json::from_str(tc["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().unwrap().contains("Paris"));

    // Without tools the same model just answers in text.
    let r = post(
        s.addr,
        "/api/chat",
        &json!({"model": "qwen", "messages": msgs, "stream": false,
                                              "options": {"num_predict": 16}}),
    );
    let j = r.json();
    assert!(j["message"].get("tool_calls").is_none(), "{j}");
    assert!(!j["message"]["content"].as_str().unwrap().is_empty());
}

//! GGUF Jinja chat templates: the three real models' own templates (Gemma 3's file has
//! none, so ferrite's built-in one) rendered by MiniJinja against Python jinja2 renders of
//! the same template text with the same messages
//! (fixtures/templates/gen_jinja_fixtures.py), plus the HF helpers and the limits.

use ferrite_server::template::{
    ChatTemplate, JinjaLimits, JinjaOptions, Message, TemplateError, Tool,
};
use ferrite_tests::{model_path, Model};
use sha2::{Digest, Sha256};

fn fixtures() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates/jinja_chat.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn model(id: &str) -> Model {
    Model::from_id(id).unwrap_or_else(|| panic!("unknown model {id}"))
}

#[test]
fn real_model_templates_match_python_jinja2() {
    let doc = fixtures();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    let mut templates = std::collections::HashMap::new();
    for case in cases {
        let id = case["model"].as_str().unwrap();
        let tmpl = templates.entry(id.to_string()).or_insert_with(|| {
            ChatTemplate::from_gguf_path(&model_path(model(id)))
                .unwrap()
                .unwrap_or_else(|| panic!("{id}: no chat template"))
        });
        let name = format!("{id}/{}", case["name"].as_str().unwrap());
        let sha = format!("{:x}", Sha256::digest(tmpl.source().as_bytes()));
        assert_eq!(
            sha,
            case["template_sha256"].as_str().unwrap(),
            "{name}: template text differs from the fixture's"
        );
        assert_eq!(
            tmpl.bos_token(),
            case["bos_token"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            tmpl.eos_token(),
            case["eos_token"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(tmpl.is_builtin(), id == "gemma3", "{name}");
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let tools: Vec<Tool> = match &case["tools"] {
            serde_json::Value::Null => Vec::new(),
            t => serde_json::from_value(t.clone()).unwrap(),
        };
        let out = tmpl
            .render(
                &messages,
                &JinjaOptions {
                    tools: &tools,
                    add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
                    extra: None,
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out, case["output"].as_str().unwrap(), "{name}");
    }
}

fn render(src: &str, messages: &[Message]) -> Result<String, TemplateError> {
    ChatTemplate::new(src, "<s>", "</s>")?.render(
        messages,
        &JinjaOptions {
            add_generation_prompt: true,
            ..JinjaOptions::default()
        },
    )
}

#[test]
fn hf_helpers() {
    let m = vec![Message::new("user", "  Hi there  ")];
    assert_eq!(
        render("{{ bos_token }}{{ messages[0].content.strip() }}|{{ messages[0]['content'] | trim }}|{{ messages[0].content.startswith('  H') }}{{ eos_token }}", &m).unwrap(),
        "<s>Hi there|Hi there|True</s>"
    );
    assert_eq!(
        render(
            "{% for x in [1, 2, 3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
            &m
        )
        .unwrap(),
        "1"
    );
    assert_eq!(
        render(
            "{{ {'a': 1, 'b': [1, 2.5, none, true, 'é']} | tojson }}",
            &m
        )
        .unwrap(),
        r#"{"a": 1, "b": [1, 2.5, null, true, "é"]}"#
    );
    assert_eq!(
        render("{{ {'a': [1]} | tojson(indent=2) }}", &m).unwrap(),
        "{\n  \"a\": [\n    1\n  ]\n}"
    );
    assert_eq!(
        render(
            "{{ {'b': 1, 'a': 'é'} | tojson(sort_keys=true, ensure_ascii=true) }}",
            &m
        )
        .unwrap(),
        r#"{"a": "\u00e9", "b": 1}"#
    );
    let date = render("{{ strftime_now('%Y-%m-%d') }}", &m).unwrap();
    assert_eq!(date.len(), 10);
    // Trailing newline dropped and blocks trimmed, as transformers renders.
    assert_eq!(
        render("{% if true %}\n  x\n{% endif %}\n", &m).unwrap(),
        "  x\n"
    );
    // Tools are undefined-falsy when absent.
    assert_eq!(
        render("{% if tools %}T{% else %}none{% endif %}", &m).unwrap(),
        "none"
    );
}

#[test]
fn jinja_errors_and_limits() {
    let m = vec![Message::new("user", "x")];
    let e = render("{{ raise_exception('roles must alternate') }}", &m).unwrap_err();
    assert!(
        matches!(&e, TemplateError::Jinja(s) if s.contains("roles must alternate")),
        "{e}"
    );
    let e = ChatTemplate::new("{% for m in messages %}", "", "").unwrap_err();
    assert!(matches!(e, TemplateError::Jinja(_)), "{e}");
    // A runaway loop runs out of fuel instead of hanging.
    let t0 = std::time::Instant::now();
    let e = render(
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}",
        &m,
    )
    .unwrap_err();
    assert!(t0.elapsed().as_secs() < 60, "took {:?}", t0.elapsed());
    assert!(
        matches!(&e, TemplateError::Jinja(s) if s.contains("fuel")),
        "{e}"
    );
    // Output is capped.
    let small = ChatTemplate::new("{% for a in range(1000) %}xxxxxxxxxx{% endfor %}", "", "")
        .unwrap()
        .with_limits(JinjaLimits {
            max_output: 5000,
            ..JinjaLimits::default()
        });
    let e = small.render(&m, &JinjaOptions::default()).unwrap_err();
    assert!(
        matches!(&e, TemplateError::Jinja(s) if s.contains("output exceeded the limit of 5000 bytes")),
        "{e}"
    );
    // Unbounded recursion is cut off.
    let e = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", &m).unwrap_err();
    assert!(matches!(e, TemplateError::Jinja(_)), "{e}");
}

#[test]
fn builtin_gemma3_template() {
    let t = ChatTemplate::builtin("gemma3", "<bos>", "<eos>").unwrap();
    assert!(t.is_builtin());
    assert!(ChatTemplate::builtin("llama", "", "").is_none());
    let msgs = vec![Message::new("user", "a"), Message::new("user", "b")];
    let e = t.render(&msgs, &JinjaOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("Conversation roles must alternate"),
        "{e}"
    );
    assert_eq!(
        t.render(
            &[],
            &JinjaOptions {
                add_generation_prompt: true,
                ..JinjaOptions::default()
            }
        )
        .unwrap(),
        "<start_of_turn>model\n"
    );
}

#[test]
fn model_template_dispatch() {
    use ferrite_server::template::{GenerateInput, ModelTemplate, Template, Think};
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ModelTemplate>();
    let jinja = ModelTemplate::Jinja(
        ChatTemplate::new(
            "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}{% if enable_thinking %}T{% endif %}",
            "",
            "",
        )
        .unwrap(),
    );
    let msgs = vec![Message::new("user", "q")];
    assert_eq!(jinja.render_chat(&msgs, &[], None).unwrap(), "[user:q]>");
    assert_eq!(
        jinja
            .render_chat(&msgs, &[], Some(&Think::Bool(true)))
            .unwrap(),
        "[user:q]>T"
    );
    let prefill = vec![Message::new("user", "q"), Message::new("assistant", "a")];
    assert_eq!(
        jinja.render_chat(&prefill, &[], None).unwrap(),
        "[user:q][assistant:a]"
    );
    let g = GenerateInput {
        prompt: "p",
        model_system: "s",
        ..GenerateInput::default()
    };
    assert_eq!(jinja.render_generate(&g).unwrap(), "[system:s][user:p]>");
    let fim = GenerateInput {
        prompt: "p",
        suffix: "s",
        ..GenerateInput::default()
    };
    assert!(jinja.render_generate(&fim).is_err());
    assert!(!jinja.uses_suffix());
    let go = ModelTemplate::Go(Template::parse("{{ .Prompt }}<{{ .Suffix }}>").unwrap());
    assert!(go.uses_suffix());
    assert_eq!(go.render_generate(&fim).unwrap(), "p<s>");
}

//! Template auto-detection on create against the three real models' GGUF chat templates,
//! and the prompts the detected built-in template renders next to the model's own Jinja
//! template.

use std::fs;

use ferrite_server::create::{create, CreateOptions, CreateRequest};
use ferrite_server::store::{Digest, ModelName, Store, MEDIA_TYPE_PARAMS, MEDIA_TYPE_TEMPLATE};
use ferrite_server::store_catalog::EngineTemplates;
use ferrite_server::template::{named, render_chat, ChatTemplate, JinjaOptions, Message, Template};
use ferrite_tests::{model_path, Model};

fn jinja(m: Model) -> ChatTemplate {
    ChatTemplate::from_gguf_path(&model_path(m))
        .unwrap()
        .unwrap()
}

fn msgs(list: &[(&str, &str)]) -> Vec<Message> {
    list.iter().map(|(r, c)| Message::new(r, c)).collect()
}

#[test]
fn the_real_models_detect_as_ollama_would() {
    // SmolLM2's template is one of index.json's ChatML variants with another default
    // system prompt: within distance 100.
    let smol = jinja(Model::SmolLm2);
    assert!(!smol.is_builtin());
    assert_eq!(named::detect(smol.source()).unwrap().name, "chatml");
    // Qwen2.5's tool-calling template is far from every known one.
    let qwen = jinja(Model::Qwen2);
    assert!(!qwen.is_builtin());
    assert_eq!(named::detect(qwen.source()), None);
    // Gemma 3's file has no chat template at all (ferrite falls back to a built-in
    // Jinja one), so create has nothing to detect from.
    assert!(jinja(Model::Gemma3).is_builtin());
}

#[test]
fn smollm2_prompts_through_the_detected_template_match_its_jinja_template() {
    let smol = jinja(Model::SmolLm2);
    let chatml = Template::parse(&named::builtin("chatml").unwrap().template).unwrap();
    let conversations = [
        msgs(&[("system", "You are terse."), ("user", "Hi!")]),
        msgs(&[
            ("system", "Be brief."),
            ("user", "What is 2+2?"),
            ("assistant", "4"),
            ("user", "And 3+3?"),
        ]),
        msgs(&[("system", "S"), ("user", "line one\nline two")]),
    ];
    let opts = JinjaOptions {
        add_generation_prompt: true,
        ..JinjaOptions::default()
    };
    for c in &conversations {
        let go = render_chat(&chatml, c, &[], None).unwrap();
        let own = smol.render(c, &opts).unwrap();
        assert_eq!(go, own, "{c:?}");
    }
    // Without a system message SmolLM2's Jinja template adds its own default one; the
    // built-in ChatML template (like Ollama with it) does not.
    let c = msgs(&[("user", "Hi!")]);
    let own = smol.render(&c, &opts).unwrap();
    let go = render_chat(&chatml, &c, &[], None).unwrap();
    assert_eq!(
        go,
        "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
    );
    assert!(own.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    assert!(own.ends_with(&go));
}

#[test]
fn create_attaches_the_detected_template_and_its_stop_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let gguf = model_path(Model::SmolLm2);
    let (digest, _) = Digest::of_reader(fs::File::open(&gguf).unwrap()).unwrap();
    store
        .put_blob(&digest, fs::File::open(&gguf).unwrap())
        .unwrap();
    let req: CreateRequest = serde_json::from_value(serde_json::json!({
        "model": "smol",
        "files": {"smol.gguf": digest.to_string()},
    }))
    .unwrap();
    let opts = CreateOptions {
        templates: &EngineTemplates,
        pull: None,
    };
    let mut statuses = Vec::new();
    create(&store, &req, &opts, &mut |s| statuses.push(s.to_string())).unwrap();
    assert!(
        statuses.contains(&"using autodetected template chatml".to_string()),
        "{statuses:?}"
    );
    let m = store
        .read_manifest(&ModelName::parse("smol").unwrap())
        .unwrap()
        .manifest;
    let text = |media: &str| {
        let l = m.layers.iter().find(|l| l.media_type == media).unwrap();
        fs::read_to_string(store.blob_path(&l.digest().unwrap())).unwrap()
    };
    assert_eq!(
        text(MEDIA_TYPE_TEMPLATE),
        named::builtin("chatml").unwrap().template
    );
    // Go's json.Encoder escapes < and >, so the params blob hashes as Ollama's does.
    assert_eq!(
        text(MEDIA_TYPE_PARAMS),
        "{\"stop\":[\"\\u003c|im_start|\\u003e\",\"\\u003c|im_end|\\u003e\"]}\n"
    );
}

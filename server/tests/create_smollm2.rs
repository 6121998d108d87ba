//! Creating and showing models from the real SmolLM2 GGUF, and create's errors.

use std::fs;
use std::path::Path;

use ferrite_server::create::{
    create, create_from_modelfile, CreateOptions, CreateRequest, License,
};
use ferrite_server::modelfile::Modelfile;
use ferrite_server::show::{show, BasicTemplates, DetectedTemplate, ShowRequest, TemplateSupport};
use ferrite_server::store::*;
use ferrite_tests::{model_path, Model};
use serde_json::{json, Map, Value};

const CHATML: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";

/// BasicTemplates plus a detector that knows one built-in template (chatml).
struct WithChatml;

impl TemplateSupport for WithChatml {
    fn validate(&self, t: &str) -> Result<(), String> {
        BasicTemplates.validate(t)
    }
    fn detect(&self, chat_template: &str) -> Option<DetectedTemplate> {
        chat_template
            .contains("<|im_start|>")
            .then(|| DetectedTemplate {
                name: "chatml".into(),
                template: CHATML.into(),
                parameters: Some(
                    json!({"stop": ["<|im_start|>", "<|im_end|>"]})
                        .as_object()
                        .cloned()
                        .unwrap(),
                ),
            })
    }
    fn vars(&self, t: &str) -> Vec<String> {
        BasicTemplates.vars(t)
    }
    fn thinking_tags(&self, t: &str) -> Option<(String, String)> {
        BasicTemplates.thinking_tags(t)
    }
}

fn run(
    store: &Store,
    req: &CreateRequest,
    t: &dyn TemplateSupport,
) -> Result<Vec<String>, StoreError> {
    let opts = CreateOptions {
        templates: t,
        pull: None,
    };
    let mut statuses = Vec::new();
    create(store, req, &opts, &mut |s| statuses.push(s.to_string()))?;
    Ok(statuses)
}

fn layers_of(store: &Store, name: &str) -> Vec<Layer> {
    store
        .read_manifest(&ModelName::parse(name).unwrap())
        .unwrap()
        .manifest
        .layers
}

fn blob_text(store: &Store, layer: &Layer) -> String {
    fs::read_to_string(store.blob_path(&layer.digest().unwrap())).unwrap()
}

#[test]
fn create_show_and_recreate_from_the_real_gguf() {
    let gguf = model_path(Model::SmolLm2);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("models")).unwrap();

    // The client uploads the file as a blob, then sends files {name: digest}.
    let (digest, _) = Digest::of_reader(fs::File::open(&gguf).unwrap()).unwrap();
    assert_eq!(
        store
            .put_blob(&digest, fs::File::open(&gguf).unwrap())
            .unwrap(),
        BlobPut::Created
    );
    let mut params = Map::new();
    params.insert("temperature".into(), json!(0.7));
    let req = CreateRequest {
        model: "smol".into(),
        files: Some([("model.gguf".to_string(), digest.to_string())].into()),
        system: "You are terse.".into(),
        license: Some(License::One("Apache 2.0".into())),
        parameters: Some(params),
        messages: vec![
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello."),
        ],
        ..CreateRequest::default()
    };
    let statuses = run(&store, &req, &WithChatml).unwrap();
    let layers = layers_of(&store, "smol");
    let media: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(
        media,
        [
            MEDIA_TYPE_MODEL,
            MEDIA_TYPE_TEMPLATE,
            MEDIA_TYPE_SYSTEM,
            MEDIA_TYPE_LICENSE,
            MEDIA_TYPE_PARAMS,
            MEDIA_TYPE_MESSAGES
        ]
    );
    let mut want = vec![
        "parsing GGUF".to_string(),
        format!("using existing layer {digest}"),
        "using autodetected template chatml".to_string(),
    ];
    for l in &layers[2..] {
        want.push(format!("creating new layer {}", l.digest));
    }
    want.extend(["writing manifest".to_string(), "success".to_string()]);
    assert_eq!(statuses, want);
    assert_eq!(layers[0].from, "model.gguf");
    assert_eq!(layers[0].size, fs::metadata(&gguf).unwrap().len());
    assert_eq!(blob_text(&store, &layers[1]), CHATML);
    // Detected stop words merged under the request's parameters; Go's encoding.
    assert_eq!(
        blob_text(&store, &layers[4]),
        "{\"stop\":[\"\\u003c|im_start|\\u003e\",\"\\u003c|im_end|\\u003e\"],\"temperature\":0.7}\n"
    );
    assert_eq!(
        blob_text(&store, &layers[5]),
        "[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello.\"}]\n"
    );
    let stored = store
        .read_manifest(&ModelName::parse("smol").unwrap())
        .unwrap();
    let config: Value = store
        .read_json_blob(&stored.manifest.config.digest().unwrap())
        .unwrap();
    let diff_ids: Vec<Value> = layers.iter().map(|l| json!(l.digest)).collect();
    assert_eq!(
        config,
        json!({"model_format":"gguf","model_family":"llama","model_families":["llama"],
               "model_type":"134.52M","file_type":"Q4_1","architecture":"amd64","os":"linux",
               "rootfs":{"type":"layers","diff_ids":diff_ids}})
    );

    // Same request again: every blob reused, same manifest bytes.
    let again = run(&store, &req, &WithChatml).unwrap();
    assert!(
        again.iter().all(|s| !s.starts_with("creating new layer")),
        "{again:?}"
    );
    let stored2 = store
        .read_manifest(&ModelName::parse("smol").unwrap())
        .unwrap();
    assert_eq!(stored2.digest, stored.digest);

    // Derived model: inherits layers (from = shortest name), overrides SYSTEM,
    // merges parameters, keeps messages.
    let mut params = Map::new();
    params.insert("num_ctx".into(), json!(4096));
    params.insert("temperature".into(), json!(0.2));
    let derived = CreateRequest {
        model: "user/smol-terse:v1".into(),
        from: "SMOL".into(),
        system: "Answer in one word.".into(),
        template: "{{ if .Tools }}{{ .Tools }}{{ end }}{{ .Prompt }}".into(),
        parameters: Some(params),
        ..CreateRequest::default()
    };
    run(&store, &derived, &WithChatml).unwrap();
    let dl = layers_of(&store, "user/smol-terse:v1");
    assert_eq!(dl[0].digest, digest.to_string());
    assert_eq!(dl[0].from, "smol:latest");
    let params_layer = dl
        .iter()
        .find(|l| l.media_type == MEDIA_TYPE_PARAMS)
        .unwrap();
    assert_eq!(
        blob_text(&store, params_layer),
        "{\"num_ctx\":4096,\"stop\":[\"\\u003c|im_start|\\u003e\",\"\\u003c|im_end|\\u003e\"],\"temperature\":0.2}\n"
    );

    // show: details, model_info from the GGUF, capabilities, the Modelfile text.
    let resp = show(
        &store,
        &ShowRequest {
            model: "user/smol-terse:v1".into(),
            ..ShowRequest::default()
        },
        &BasicTemplates,
    )
    .unwrap();
    assert_eq!(resp.details.parent_model, "smol:latest");
    assert_eq!(resp.details.format, "gguf");
    assert_eq!(resp.details.family, "llama");
    assert_eq!(resp.details.parameter_size, "134.52M");
    assert_eq!(resp.details.quantization_level, "Q4_1");
    assert_eq!(resp.capabilities, ["completion", "tools"]);
    assert_eq!(resp.system, "Answer in one word.");
    assert_eq!(resp.license, "Apache 2.0");
    assert_eq!(resp.messages.len(), 2);
    let mi = &resp.model_info;
    assert_eq!(mi["general.architecture"], json!("llama"));
    assert_eq!(mi["general.parameter_count"], json!(134_515_008u64));
    assert!(mi["llama.context_length"].as_u64().unwrap() > 0);
    assert!(mi["llama.embedding_length"].as_u64().unwrap() > 0);
    assert_eq!(mi["tokenizer.ggml.tokens"], json!([]));
    assert!(!mi.contains_key("general.name"));
    assert!(!mi.contains_key("tokenizer.chat_template"));
    assert!(!resp.tensors.is_empty());
    assert_eq!(
        resp.parameters,
        format!(
            "{:<30} 4096\n{:<30} \"<|im_start|>\"\n{:<30} \"<|im_end|>\"\n{:<30} 0.2",
            "num_ctx", "stop", "stop", "temperature"
        )
    );
    let model_blob = store.blob_path(&digest);
    assert_eq!(
        resp.modelfile,
        format!(
            "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM user/smol-terse:v1\n\nFROM {}\nTEMPLATE {{{{ if .Tools }}}}{{{{ .Tools }}}}{{{{ end }}}}{{{{ .Prompt }}}}\nSYSTEM Answer in one word.\nPARAMETER num_ctx 4096\nPARAMETER stop <|im_start|>\nPARAMETER stop <|im_end|>\nPARAMETER temperature 0.2\nLICENSE Apache 2.0\nMESSAGE user Hi\nMESSAGE assistant Hello.\n",
            model_blob.display()
        )
    );
    // The rendered Modelfile parses back to the same model definition.
    let parsed = Modelfile::parse(&resp.modelfile).unwrap();
    assert_eq!(parsed.instructions.len(), 10);
    let json = serde_json::to_value(&resp).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "license",
        "modelfile",
        "parameters",
        "template",
        "system",
        "details",
        "messages",
        "model_info",
        "tensors",
        "capabilities",
        "modified_at",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let verbose = show(
        &store,
        &ShowRequest {
            model: "user/smol-terse:v1".into(),
            verbose: true,
            system: "override".into(),
            options: Some(json!({"seed": 42}).as_object().cloned().unwrap()),
            ..ShowRequest::default()
        },
        &BasicTemplates,
    )
    .unwrap();
    assert!(
        verbose.model_info["tokenizer.ggml.tokens"]
            .as_array()
            .unwrap()
            .len()
            > 1000
    );
    assert!(verbose.modelfile.contains("SYSTEM override\n"));
    assert!(verbose.modelfile.contains("PARAMETER seed 42\n"));
    assert!(
        !verbose.parameters.contains("seed"),
        "options only touch the Modelfile"
    );

    // The runtime view.
    let r = store.resolve("user/smol-terse:v1").unwrap();
    assert_eq!(r.model_path.as_deref(), Some(model_blob.as_path()));
    assert_eq!(r.system.as_deref(), Some("Answer in one word."));
    assert_eq!(r.parameters["num_ctx"], json!(4096));

    // Replacing `smol` with another SYSTEM drops its old, now unreferenced system blob;
    // blobs the derived model shares stay.
    let old_system = layers[2].digest().unwrap();
    let replaced = CreateRequest {
        system: "Changed.".into(),
        ..req.clone()
    };
    run(&store, &replaced, &WithChatml).unwrap();
    assert!(!store.blob_exists(&old_system));
    assert!(store.blob_exists(&digest));
    assert!(store.blob_exists(&layers[1].digest().unwrap()));

    // Deleting both models removes every blob.
    store.delete(&ModelName::parse("smol").unwrap()).unwrap();
    assert!(
        store.blob_exists(&digest),
        "still used by the derived model"
    );
    store
        .delete(&ModelName::parse("user/smol-terse:v1").unwrap())
        .unwrap();
    assert_eq!(fs::read_dir(store.blobs_dir()).unwrap().count(), 0);
}

#[test]
fn create_from_a_modelfile_with_a_relative_path() {
    let gguf = model_path(Model::SmolLm2);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("models")).unwrap();
    let project = dir.path().join("project");
    fs::create_dir(&project).unwrap();
    std::os::unix::fs::symlink(&gguf, project.join("smol.gguf")).unwrap();
    let mf = Modelfile::parse(
        "FROM ./smol.gguf\nPARAMETER temperature 0.1\nPARAMETER mirostat 1\nSYSTEM \"\"\"Be brief.\"\"\"\n",
    )
    .unwrap();
    let opts = CreateOptions {
        templates: &BasicTemplates,
        pull: None,
    };
    let mut statuses = Vec::new();
    let warnings = create_from_modelfile(&store, "brief", &mf, &project, &opts, &mut |s| {
        statuses.push(s.to_string())
    })
    .unwrap();
    assert_eq!(warnings, ["warning: parameter mirostat is deprecated"]);
    assert!(statuses[0].starts_with("copying file sha256:"));
    assert_eq!(statuses.last().unwrap(), "success");
    let r = store.resolve("brief").unwrap();
    assert_eq!(r.system.as_deref(), Some("Be brief."));
    assert_eq!(r.parameters["temperature"], json!(0.1));
    // SmolLM2's Jinja template is close to a ChatML entry of Ollama's index.
    assert!(statuses.contains(&"using autodetected template chatml".to_string()));
    assert_eq!(r.template.as_deref(), Some(CHATML));
    assert_eq!(r.parameters["stop"], json!(["<|im_start|>", "<|im_end|>"]));
    assert_eq!(r.parent_model, "smol.gguf");
    let listed = store.list().unwrap();
    assert_eq!(listed[0].name, "brief:latest");
    assert_eq!(listed[0].details.quantization_level, "Q4_1");
    let caps = ferrite_server::show::capabilities(&r, &BasicTemplates).unwrap();
    assert_eq!(caps, ["completion"]);
}

fn err_of(store: &Store, req: CreateRequest) -> (u16, String) {
    let e = run(store, &req, &BasicTemplates).unwrap_err();
    (e.status_code(), e.to_string())
}

#[test]
fn create_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let not_gguf = store
        .write_blob(&b"just text"[..])
        .unwrap()
        .digest
        .to_string();
    let req = |f: &dyn Fn(&mut CreateRequest)| {
        let mut r = CreateRequest {
            model: "m".into(),
            ..CreateRequest::default()
        };
        f(&mut r);
        r
    };
    let files = |k: &str, v: &str| Some([(k.to_string(), v.to_string())].into());
    assert_eq!(
        err_of(&store, req(&|_| {})),
        (400, "neither 'from' or 'files' was specified".into())
    );
    assert_eq!(
        err_of(&store, req(&|r| r.model = "bad/../name".into())),
        (400, "invalid model name".into())
    );
    assert_eq!(
        err_of(
            &store,
            req(&|r| r.files = files("../model.gguf", &not_gguf))
        ),
        (400, "file path must be relative".into())
    );
    assert_eq!(
        err_of(
            &store,
            req(&|r| r.files = files("/abs/model.gguf", &not_gguf))
        ),
        (400, "file path must be relative".into())
    );
    assert_eq!(
        err_of(&store, req(&|r| r.files = files("model.gguf", ""))),
        (400, "invalid digest format".into())
    );
    assert_eq!(
        err_of(
            &store,
            req(&|r| r.files = files("model.gguf", "sha256:../../etc/passwd"))
        ),
        (400, "invalid digest format".into())
    );
    assert_eq!(
        err_of(&store, req(&|r| r.files = files("model.gguf", &not_gguf))),
        (400, "supplied file was not in GGUF format".into())
    );
    assert_eq!(
        err_of(&store, req(&|r| r.files = files("weights", &not_gguf))),
        (400, "unknown type".into())
    );
    let missing = Digest::of_bytes(b"never uploaded").to_string();
    assert_eq!(
        err_of(&store, req(&|r| r.files = files("model.gguf", &missing))),
        (404, format!("blob \"{missing}\" not found"))
    );
    // A truncated GGUF is rejected by the bounds-checking parser, not trusted.
    let truncated = store
        .write_blob(&b"GGUF\x03\0\0\0\xff\xff\xff\xff"[..])
        .unwrap()
        .digest
        .to_string();
    let (code, msg) = err_of(&store, req(&|r| r.files = files("model.gguf", &truncated)));
    assert_eq!(code, 400);
    assert!(msg.starts_with("invalid GGUF file model.gguf:"), "{msg}");
    assert_eq!(
        err_of(&store, req(&|r| r.from = "nothere".into())),
        (
            404,
            "model \"nothere\" not found, try pulling it first".into()
        )
    );
    assert_eq!(
        err_of(&store, req(&|r| r.from = "no/../pe".into())),
        (400, "invalid model name".into())
    );
    let (code, msg) = err_of(&store, req(&|r| r.quantize = "q4_K_M".into()));
    assert_eq!(code, 400);
    assert!(msg.contains("not supported yet"), "{msg}");
    // Nothing was written for any failed create.
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn template_errors_and_pull_hook() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A minimal base model written by hand (no GGUF needed for layer inheritance
    // checks, so give it a system layer only).
    let sys = store.write_blob(&b"base system"[..]).unwrap().digest;
    let cfg = store
        .write_blob(&ModelConfig::new().to_bytes()[..])
        .unwrap()
        .digest;
    let manifest = Manifest::new(
        Layer::new(MEDIA_TYPE_CONFIG, &cfg, store.blob_size(&cfg).unwrap()),
        vec![Layer::new(MEDIA_TYPE_SYSTEM, &sys, 11)],
    );
    let base = ModelName::parse("base").unwrap();
    let pull = |name: &ModelName| -> Result<(), StoreError> {
        // Stands in for a registry pull: makes the model appear.
        store.write_manifest(name, &manifest)
    };
    let opts = CreateOptions {
        templates: &BasicTemplates,
        pull: Some(&pull),
    };
    let mut statuses = Vec::new();
    let req = CreateRequest {
        model: "child".into(),
        from: "base".into(),
        template: "{{ if .System }}{{ .System }}".into(),
        ..CreateRequest::default()
    };
    let e = create(&store, &req, &opts, &mut |s| statuses.push(s.to_string())).unwrap_err();
    assert_eq!(e.status_code(), 400);
    assert!(e.to_string().starts_with("template error: "), "{e}");
    assert!(store.read_manifest(&base).is_ok(), "the pull hook ran");
    let ok = CreateRequest {
        template: "{{ .System }} {{ .Prompt }}".into(),
        ..req
    };
    create(&store, &ok, &opts, &mut |s| statuses.push(s.to_string())).unwrap();
    let r = store.resolve("child").unwrap();
    assert_eq!(r.system.as_deref(), Some("base system"));
    assert_eq!(r.template.as_deref(), Some("{{ .System }} {{ .Prompt }}"));
    assert_eq!(r.manifest.layers[0].from, "base:latest");
    assert!(Path::new(&store.blob_path(&sys)).exists());
}

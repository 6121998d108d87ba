//! `ferrite run` against a fake server: one-shot prompts (argument and piped
//! stdin), `--verbose`, thinking, embeddings, auto-pull, errors, Ctrl+C, and the
//! chat REPL driven through stdin (`FERRITE_INTERACTIVE=1`).

mod cli_fake;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cli_fake::{chat_chunks, generate_chunks, show_llama, Fake, Reply};
use serde_json::{json, Value};

const VERBOSE_BLOCK: &str = "total duration:       1.2345s
load duration:        12.3ms
prompt eval count:    26 token(s)
prompt eval duration: 130ms
prompt eval rate:     200.00 tokens/s
eval count:           259 token(s)
eval duration:        4.23271s
eval rate:            61.19 tokens/s
";

fn load_reply(r: &cli_fake::Req) -> Reply {
    Reply::Stream(
        200,
        vec![
            json!({"model": r.json()["model"], "created_at": "2025-01-01T00:00:00Z",
        "response": "", "done": true, "done_reason": "load"}),
        ],
    )
}

fn simple_server() -> Fake {
    Fake::start(|r| match r.path.as_str() {
        "/api/show" => Reply::Json(200, show_llama()),
        "/api/generate" if r.json()["prompt"].as_str().unwrap_or("").is_empty() => load_reply(r),
        "/api/generate" => Reply::Stream(200, generate_chunks(&["Hello", " world"])),
        _ => Reply::Empty(404),
    })
}

#[test]
fn one_shot_prompt_streams_and_prints_verbose_stats() {
    let fake = simple_server();
    let out = fake.run(
        &[
            "run",
            "smol",
            "Say",
            "hi",
            "--verbose",
            "--keepalive",
            "5m",
            "--format",
            "json",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Hello world\n\n");
    assert_eq!(out.stderr, VERBOSE_BLOCK);
    assert_eq!(fake.routes(), ["POST /api/show", "POST /api/generate"]);
    let calls = fake.calls();
    assert_eq!(calls[0].json(), json!({"model": "smol"}));
    assert_eq!(
        calls[1].json(),
        json!({"model": "smol", "prompt": "Say hi", "options": {}, "keep_alive": "5m0s", "format": "json"})
    );
    assert_eq!(calls[1].header("accept"), Some("application/x-ndjson"));
}

#[test]
fn piped_stdin_is_prepended_to_the_prompt() {
    let fake = simple_server();
    let out = fake.run(&["run", "smol", "please"], "Summarize this:\nline");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Hello world\n\n");
    assert_eq!(out.stderr, "", "no stats without --verbose");
    assert_eq!(
        fake.calls()[1].json()["prompt"],
        "Summarize this:\nline please"
    );

    // Only stdin: the whole input is the prompt; `--keepalive -1m` is forever (-1).
    let out = fake.run(&["run", "smol", "--keepalive", "-1m"], "just stdin");
    assert_eq!(out.code, 0, "{out:?}");
    let body = fake.calls().pop().unwrap().json();
    assert_eq!(
        (body["prompt"].clone(), body["keep_alive"].clone()),
        (json!("just stdin"), json!(-1))
    );
}

#[test]
fn empty_prompt_only_loads() {
    let fake = simple_server();
    let out = fake.run(&["run", "smol", ""], "");
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert_eq!(fake.calls()[1].json()["prompt"], "");
}

#[test]
fn missing_model_is_pulled_first() {
    let pulled = Arc::new(AtomicBool::new(false));
    let p = pulled.clone();
    let fake = Fake::start(move |r| match r.path.as_str() {
        "/api/show" if !p.load(Ordering::SeqCst) => {
            Reply::Json(404, json!({"error": "model 'smol' not found"}))
        }
        "/api/show" => Reply::Json(200, show_llama()),
        "/api/pull" => {
            p.store(true, Ordering::SeqCst);
            Reply::Stream(
                200,
                vec![
                    json!({"status": "pulling manifest"}),
                    json!({"status": "success"}),
                ],
            )
        }
        "/api/generate" => Reply::Stream(200, generate_chunks(&["ok"])),
        _ => Reply::Empty(404),
    });
    let out = fake.run(&["run", "smol", "hi"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "ok\n\n");
    assert_eq!(out.stderr, "pulling manifest\nsuccess\n");
    assert_eq!(
        fake.routes(),
        [
            "POST /api/show",
            "POST /api/pull",
            "POST /api/show",
            "POST /api/generate"
        ]
    );
}

#[test]
fn generate_errors() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/api/show" => Reply::Json(200, show_llama()),
        "/api/generate" if r.json()["prompt"] == "crash" => {
            Reply::Json(500, json!({"error": "llama runner process has terminated"}))
        }
        "/api/generate" => Reply::Stream(
            200,
            vec![
                json!({"model": "smol", "created_at": "2025-01-01T00:00:00Z", "response": "Hel", "done": false}),
                json!({"error": "out of memory"}),
            ],
        ),
        _ => Reply::Empty(404),
    });
    let out = fake.run(&["run", "smol", "crash"], "");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error: 500 Internal Server Error: llama runner process has terminated\n"
    );
    let out = fake.run(&["run", "smol", "go"], "");
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "Hel");
    assert_eq!(out.stderr, "Error: out of memory\n");

    let before = fake.calls().len();
    let out = fake.run(&["run", "smol", "--think=loud", "hi"], "");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error: invalid value for --think: \"loud\" (must be true, false, high, medium, low, or max)\n"
    );
    let out = fake.run(&["run", "smol", "--keepalive", "5", "hi"], "");
    assert_eq!(out.stderr, "Error: time: missing unit in duration \"5\"\n");
    assert_eq!(
        fake.calls().len(),
        before,
        "flag errors come before any request"
    );
}

#[test]
fn thinking_is_shown_hidden_or_turned_off() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/api/show" => {
            let mut s = show_llama();
            s["capabilities"] = json!(["completion", "thinking"]);
            Reply::Json(200, s)
        }
        "/api/generate" => Reply::Stream(
            200,
            vec![
                json!({"model": "m", "created_at": "t", "response": "", "thinking": "Let me", "done": false}),
                json!({"model": "m", "created_at": "t", "response": "", "thinking": " think", "done": false}),
                json!({"model": "m", "created_at": "t", "response": "Answer", "done": false}),
                json!({"model": "m", "created_at": "t", "response": "", "done": true, "done_reason": "stop"}),
            ],
        ),
        _ => Reply::Empty(404),
    });
    let out = fake.run(&["run", "thinker", "why?"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Thinking...\nLet me think\n...done thinking.\n\nAnswer\n\n"
    );
    assert_eq!(
        fake.calls().pop().unwrap().json()["think"],
        true,
        "thinking models think by default"
    );

    let out = fake.run(&["run", "thinker", "--hidethinking", "why?"], "");
    assert_eq!(out.stdout, "Answer\n\n");
    let out = fake.run(&["run", "thinker", "--think=false", "why?"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fake.calls().pop().unwrap().json()["think"], false);
    let out = fake.run(&["run", "thinker", "--think=high", "why?"], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fake.calls().pop().unwrap().json()["think"], "high");
}

#[test]
fn embedding_models_print_the_vector() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/api/show" => {
            let mut s = show_llama();
            s["capabilities"] = json!(["embedding"]);
            Reply::Json(200, s)
        }
        "/api/embed" => Reply::Json(200, json!({"model": "e", "embeddings": [[0.1, -0.25, 3]]})),
        _ => Reply::Empty(404),
    });
    let out = fake.run(
        &[
            "run",
            "emb",
            "some text",
            "--truncate=false",
            "--dimensions",
            "3",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "[0.1,-0.25,3]\n");
    assert_eq!(
        fake.calls().pop().unwrap().json(),
        json!({"model": "emb", "input": "some text", "truncate": false, "dimensions": 3})
    );
    let out = fake.run(&["run", "emb"], "");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error: embedding models require input text. Usage: ollama run emb \"your text here\"\n"
    );
}

#[test]
fn ctrl_c_stops_the_answer() {
    let words: Vec<Value> = (0..100)
        .map(|i| json!({"model": "m", "created_at": "t", "response": format!("w{i} "), "done": false}))
        .collect();
    let fake = Fake::start(move |r| match r.path.as_str() {
        "/api/show" => Reply::Json(200, show_llama()),
        "/api/generate" => Reply::SlowStream(words.clone(), Duration::from_millis(100)),
        _ => Reply::Empty(404),
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "smol", "count"])
        .env("OLLAMA_HOST", fake.host())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "Ctrl+C did not stop the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code, Some(0), "stdout {stdout:?}");
    assert!(stdout.starts_with("w0 "), "{stdout:?}");
    assert!(!stdout.contains("w99"), "{stdout:?}");
}

// ---- the REPL ---------------------------------------------------------------------

fn repl_server() -> Fake {
    Fake::start(|r| {
        match (
            r.path.as_str(),
            r.json().get("model").and_then(Value::as_str),
        ) {
            ("/api/show", Some("nope")) => {
                Reply::Json(404, json!({"error": "model 'nope' not found"}))
            }
            ("/api/show", _) => {
                let mut s = show_llama();
                s["system"] = json!("Model system.");
                s["messages"] = json!([{"role": "user", "content": "Earlier?"}, {"role": "assistant", "content": "Yes."}]);
                Reply::Json(200, s)
            }
            ("/api/generate", _) => load_reply(r),
            ("/api/chat", _) => Reply::Stream(200, chat_chunks(&["Hi", " there"])),
            ("/api/create", Some(name)) if name.contains('!') => {
                Reply::Json(400, json!({"error": "invalid model name"}))
            }
            ("/api/create", _) => Reply::Stream(200, vec![json!({"status": "success"})]),
            _ => Reply::Empty(404),
        }
    })
}

fn interactive(fake: &Fake, script: &str) -> cli_fake::Out {
    fake.run_env(&["run", "smol"], script, &[("FERRITE_INTERACTIVE", "1")])
}

#[test]
fn repl_session_keeps_history_and_settings() {
    let fake = repl_server();
    let script = "/set parameter temperature 0.5
/set parameter stop a b
/set parameter bogus 1
/set parameter top_k x
/set system You are terse
hello
\"\"\"multi
line\"\"\"
/show parameters
/show system
/set verbose
again
/clear
/save my-model
/save bad!name
/load nope
/unknown
/set format json
/set format xml
/set wordwrap
/bye
never sent
";
    let out = interactive(&fake, script);
    assert_eq!(out.code, 0, "{out:?}");
    let expected = "\
>>> Earlier?
Yes.

>>> Set parameter 'temperature' to '0.5'
>>> Set parameter 'stop' to 'a, b'
>>> Couldn't set parameter: \"unknown parameter 'bogus'\"
>>> Couldn't set parameter: \"invalid int value [x]\"
>>> Set system message.
>>> Hi there

>>> ... Hi there

>>> Model defined parameters:
  temperature                    0.7

User defined parameters:
  stop                           [a b]
  temperature                    0.5

>>> You are terse

>>> Set 'verbose' mode.
>>> Hi there

>>> Cleared session context
>>> Created new model 'my-model'
>>> error: The model name 'bad!name' is invalid
>>> Loading model 'nope'
Couldn't find model 'nope'
>>> Unknown command '/unknown'. Type /? for help
>>> Set format to 'json' mode.
>>> Invalid or missing format. For 'json' mode use '/set format json'
>>> Set 'wordwrap' mode.
>>> ";
    assert_eq!(out.stdout, expected, "{out:?}");
    assert_eq!(out.stderr, "eval count:           3 token(s)\neval duration:        1s\neval rate:            3.00 tokens/s\n");

    let calls = fake.calls();
    // show, load, chat x3, show (/show parameters), show (/show system), create x2, show (/load)
    let chats: Vec<Value> = calls
        .iter()
        .filter(|c| c.path == "/api/chat")
        .map(|c| c.json())
        .collect();
    assert_eq!(chats.len(), 3);
    let system = json!({"role": "system", "content": "You are terse"});
    let options = json!({"temperature": 0.5, "stop": ["a", "b"]});
    assert_eq!(
        chats[0],
        json!({"model": "smol", "options": options,
               "messages": [system, {"role": "user", "content": "hello"}]})
    );
    assert_eq!(
        chats[1]["messages"],
        json!([system, {"role": "user", "content": "hello"},
               {"role": "assistant", "content": "Hi there"},
               {"role": "user", "content": "multi\nline"}])
    );
    assert_eq!(chats[2]["messages"].as_array().unwrap().len(), 6);
    let load = calls
        .iter()
        .find(|c| c.path == "/api/generate")
        .unwrap()
        .json();
    assert_eq!(
        load,
        json!({"model": "smol"}),
        "the model is loaded before the prompt"
    );
    let shows: Vec<Value> = calls
        .iter()
        .filter(|c| c.path == "/api/show")
        .map(|c| c.json())
        .collect();
    assert_eq!(
        shows[1],
        json!({"model": "smol", "system": "You are terse", "options": options}),
        "/show passes the session's system and parameters"
    );
    let creates: Vec<Value> = calls
        .iter()
        .filter(|c| c.path == "/api/create")
        .map(|c| c.json())
        .collect();
    assert_eq!(
        creates[0],
        json!({"model": "my-model", "from": "smol", "system": "You are terse",
               "parameters": options, "messages": [system]})
    );
}

#[test]
fn repl_help_and_end_of_input() {
    let fake = repl_server();
    let out = interactive(
        &fake,
        "/?\n/? shortcuts\n/? set\n/set\n/show\n/show nonsense\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .starts_with("Available Commands:\n  /set            Set session variables\n"),
        "{out:?}"
    );
    assert!(out.stderr.contains("  /? shortcuts    Help for keyboard shortcuts\n\nUse \"\"\" to begin a multi-line message.\n\n"), "{out:?}");
    assert!(out.stderr.contains("Available keyboard shortcuts:\n  Ctrl + a            Move to the beginning of the line (Home)\n"), "{out:?}");
    assert_eq!(
        out.stderr
            .matches("  /set think             Enable thinking\n")
            .count(),
        2,
        "{out:?}"
    );
    assert!(
        out.stderr
            .ends_with("  /show template     Show prompt template\n\n"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .ends_with(">>> Unknown command '/show nonsense'. Type /? for help\n>>> \n"),
        "{out:?}"
    );
    assert!(fake.calls().iter().all(|c| c.path != "/api/chat"));

    // `/show system` falls back to the model's; /show template and license.
    let out = interactive(&fake, "/show system\n/show template\n/show license\n/bye\n");
    assert!(
        out.stdout.contains(">>> Model system.\n\n>>> {{ .Prompt }}\n>>> No license was specified for this model.\n"),
        "{out:?}"
    );
}

#[test]
fn repl_think_and_format_reach_the_request() {
    let fake = repl_server();
    let out = interactive(
        &fake,
        "/set think high\n/set format json\nq1\n/set nothink\n/set noformat\nq2\n/bye\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(">>> Set 'think' mode to 'high'.\n>>> Set format to 'json' mode.\n>>> Hi there\n\n>>> Set 'nothink' mode.\n>>> Disabled format.\n"),
        "{out:?}"
    );
    assert_eq!(
        out.stderr,
        "warning: model \"smol\" does not support thinking output\n".repeat(2)
    );
    let chats: Vec<Value> = fake
        .calls()
        .iter()
        .filter(|c| c.path == "/api/chat")
        .map(|c| c.json())
        .collect();
    assert_eq!(
        (chats[0]["think"].clone(), chats[0]["format"].clone()),
        (json!("high"), json!("json"))
    );
    assert_eq!(chats[1]["think"], false);
    assert!(chats[1].get("format").is_none(), "{}", chats[1]);
}

#[test]
fn format_schema_is_sent_as_json() {
    let fake = simple_server();
    let out = fake.run(
        &["run", "smol", "--format", r#"{"type":"object"}"#, "hi"],
        "",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fake.calls()[1].json()["format"], json!({"type": "object"}));
}

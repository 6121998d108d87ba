//! End to end: the real `ferrite serve` binary on a free port with a temporary
//! `OLLAMA_MODELS`, the three real models created from Modelfiles by `ferrite create`,
//! driven by the official `ollama` and `openai` Python clients (pinned, installed with pip
//! on first use into a cache) and by the `ferrite` CLI verbs; plus the error paths no
//! client reaches (malformed JSON, bad names and digests, checked against the store's
//! files) and a clean shutdown on SIGINT.
//!
//! The tests run one at a time (each has its own server; two at once on a small machine
//! would make the timing checks meaningless).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ferrite_tests::{model_path, Model};
use serde_json::{json, Value};

/// The Python clients, pinned (the newest releases when this suite was written).
const PY_PACKAGES: [&str; 2] = ["ollama==0.6.3", "openai==3.51.0"];

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `ferrite serve` child process with its own store and home directory.
struct Server {
    child: Child,
    addr: String,
    root: PathBuf,
    log: std::sync::Arc<Mutex<String>>,
}

impl Server {
    fn start(name: &str, env: &[(&str, &str)]) -> Server {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrite"));
        cmd.arg("serve");
        for (k, _) in std::env::vars() {
            if k.starts_with("OLLAMA_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("OLLAMA_HOST", "127.0.0.1:0")
            .env("OLLAMA_MODELS", root.join("models"))
            .env("HOME", root.join("home"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start ferrite serve");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("Listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ferrite serve did not start; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            root,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGINT, as Ctrl-C sends it; the exit status once it stopped.
    fn interrupt(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "ferrite serve ignored SIGINT; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the `ferrite` CLI against this server.
    fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrite"));
        for (k, _) in std::env::vars() {
            if k.starts_with("OLLAMA_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .env("OLLAMA_HOST", &self.addr)
            .env("HOME", self.root.join("home"))
            .current_dir(self.root.join("home"))
            .stdin(Stdio::null())
            .output()
            .expect("run ferrite")
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "ferrite {args:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates `name` from a Modelfile with `ferrite create -f`.
    fn create(&self, name: &str, modelfile: &str) {
        let path = self.root.join("home").join(format!("{name}.Modelfile"));
        std::fs::write(&path, modelfile).unwrap();
        let out = self.cli(&["create", name, "-f", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "create {name}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Runs sections of the Python client script against this server.
    fn python(&self, sections: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/clients_e2e.py");
        let out = Command::new("python3")
            .arg(&script)
            .args(sections)
            .env("PYTHONPATH", python_packages())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("OLLAMA_HOST", self.url())
            .env("SMOLLM2_GGUF", model_path(Model::SmolLm2))
            .stdin(Stdio::null())
            .output()
            .expect("run python3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python sections {sections:?} failed ({}):\n{stdout}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        for s in sections {
            assert!(stdout.contains(&format!("ok {s}\n")), "{stdout}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The pinned client packages, installed once per Python version into
/// `~/.cache/ferrite-py/` (`pip install --target`, no virtualenv needed). A failing pip
/// fails the test: these tests never skip.
fn python_packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let v = Command::new("python3")
            .args([
                "-c",
                "import sys; print(f'py{sys.version_info[0]}{sys.version_info[1]}')",
            ])
            .output()
            .expect("python3 is needed by the end-to-end tests");
        assert!(v.status.success(), "python3 does not run");
        let py = String::from_utf8(v.stdout).unwrap().trim().to_string();
        let cache = match std::env::var_os("XDG_CACHE_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"),
        };
        let name = format!("{py}-{}", PY_PACKAGES.join("-").replace("==", "-"));
        let dir = cache.join("ferrite-py").join(name);
        if dir.join(".complete").is_file() {
            return dir;
        }
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--no-warn-conflicts",
                "--target",
            ])
            .arg(&tmp)
            .args(PY_PACKAGES)
            .output()
            .expect("run pip");
        assert!(
            out.status.success(),
            "pip install {PY_PACKAGES:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(tmp.join(".complete"), PY_PACKAGES.join("\n")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process installed it meanwhile.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(dir.join(".complete").is_file());
        dir
    })
}

fn modelfile(model: Model, extra: &str) -> String {
    format!("FROM {}\n{extra}", model_path(model).display())
}

fn smollm2_modelfile() -> String {
    modelfile(
        Model::SmolLm2,
        "PARAMETER num_predict 16\nPARAMETER temperature 0\nSYSTEM You are a concise assistant.\n",
    )
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Every file under `dir` with its size, sorted.
fn tree(dir: &Path) -> Vec<(String, u64)> {
    fn walk(d: &Path, base: &Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                out.push((format!("{}/", p.strip_prefix(base).unwrap().display()), 0));
                walk(&p, base, out);
            } else {
                let len = e.metadata().unwrap().len();
                out.push((p.strip_prefix(base).unwrap().display().to_string(), len));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn clients_and_cli_against_the_real_server() {
    let _serial = serial();
    let mut s = Server::start("main", &[]);
    assert!(
        s.log().contains("total blobs: 0"),
        "startup prune log: {}",
        s.log()
    );
    // `ferrite create` from Modelfiles: FROM a GGUF path, PARAMETERs, a SYSTEM for one.
    s.create("smollm2", &smollm2_modelfile());
    s.create(
        "gemma3",
        &modelfile(Model::Gemma3, "PARAMETER num_predict 16\n"),
    );
    s.create(
        "qwen2",
        &modelfile(
            Model::Qwen2,
            "PARAMETER num_predict 16\nPARAMETER num_ctx 2048\n",
        ),
    );

    s.python(&["models", "generate", "openai", "format"]);

    // The CLI verbs against the same server.
    let list = s.cli_ok(&["list"]);
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("SIZE"),
        "{list}"
    );
    for m in ["smollm2:latest", "gemma3:latest", "qwen2:latest"] {
        assert!(list.contains(m), "{list}");
    }
    let answer = s.cli_ok(&["run", "smollm2", "Say hello."]);
    assert!(answer.trim().len() > 1, "{answer:?}");
    // `run --format` with a schema: the answer is that JSON (within num_predict 16).
    let answer = s.cli_ok(&[
        "run",
        "smollm2",
        "--format",
        r#"{"type":"object","properties":{"blue":{"type":"boolean"}},"required":["blue"]}"#,
        "Is the sky blue?",
    ]);
    let v: serde_json::Value = serde_json::from_str(answer.trim())
        .unwrap_or_else(|e| panic!("run --format: {answer:?}: {e}"));
    assert!(
        v["blue"].is_boolean() && v.as_object().unwrap().len() == 1,
        "{v}"
    );
    let mf = s.cli_ok(&["show", "--modelfile", "smollm2"]);
    let blobs = s.models_dir().join("blobs");
    assert!(
        mf.contains(&format!("FROM {}/sha256-", blobs.display())),
        "{mf}"
    );
    assert!(mf.contains("SYSTEM You are a concise assistant."), "{mf}");
    assert!(mf.contains("PARAMETER num_predict 16"), "{mf}");
    assert!(mf.contains("PARAMETER temperature 0"), "{mf}");
    // SmolLM2's Jinja template autodetects as Ollama's ChatML (TEMPLATE + its stops).
    assert!(
        mf.contains("TEMPLATE \"{{- range .Messages }}<|im_start|>"),
        "{mf}"
    );
    assert!(mf.contains("PARAMETER stop <|im_end|>"), "{mf}");
    let ps = s.cli_ok(&["ps"]);
    assert!(ps.starts_with("NAME"), "{ps}");
    assert!(ps.contains("smollm2:latest"), "{ps}");
    s.cli_ok(&["cp", "smollm2", "smollm2-copy"]);
    assert!(s.cli_ok(&["list"]).contains("smollm2-copy:latest"));
    let rm = s.cli_ok(&["rm", "smollm2-copy"]);
    assert_eq!(rm.trim(), "deleted 'smollm2-copy'");
    assert!(!s.cli_ok(&["list"]).contains("smollm2-copy"));
    let missing = s.cli(&["show", "nope"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("model 'nope' not found"),
        "{missing:?}"
    );

    // Error paths: malformed JSON is a 400 with the decoder's message.
    for path in ["/api/chat", "/api/generate", "/api/show", "/api/create"] {
        let (st, body) = http(&s.addr, "POST", path, b"{\"model\": ");
        assert_eq!(st, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    let (st, body) = http(&s.addr, "POST", "/api/chat", b"");
    assert_eq!(
        (st, body.as_str()),
        (400, r#"{"error":"missing request body"}"#)
    );

    // Invalid names and digests: 400, and not one file of the store changes.
    let before = tree(&s.models_dir());
    let bad_digest = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        (
            "POST",
            "/api/create".into(),
            json!({"model": "bad name!", "from": "smollm2"})
                .to_string()
                .into_bytes(),
            r#"{"error":"invalid model name"}"#,
        ),
        (
            "POST",
            "/api/create".into(),
            json!({"model": "../../escape", "files": {"m.gguf": bad_digest}})
                .to_string()
                .into_bytes(),
            r#"{"error":"invalid model name"}"#,
        ),
        (
            "POST",
            "/api/create".into(),
            json!({"model": "ok", "files": {"m.gguf": "sha256:../../../etc/passwd"}})
                .to_string()
                .into_bytes(),
            r#"{"error":"invalid digest format"}"#,
        ),
        (
            "POST",
            "/api/create".into(),
            json!({"model": "ok", "files": {"../m.gguf": bad_digest}})
                .to_string()
                .into_bytes(),
            r#"{"error":"file path must be relative"}"#,
        ),
        (
            "POST",
            "/api/copy".into(),
            json!({"source": "smollm2", "destination": "a/b/c/d/e"})
                .to_string()
                .into_bytes(),
            r#"{"error":"destination \"a/b/c/d/e\" is invalid"}"#,
        ),
        (
            "DELETE",
            "/api/delete".into(),
            json!({"model": "bad name!"}).to_string().into_bytes(),
            r#"{"error":"name \"bad name!\" is invalid"}"#,
        ),
        (
            "POST",
            "/api/blobs/sha256:xyz".into(),
            b"data".to_vec(),
            r#"{"error":"invalid digest format"}"#,
        ),
        (
            "HEAD",
            "/api/blobs/sha256-..%2F..%2Fmanifests".into(),
            Vec::new(),
            "",
        ),
        (
            "POST",
            format!("/api/blobs/{bad_digest}"),
            b"not those bytes".to_vec(),
            "",
        ),
    ];
    for (method, path, body, want) in &cases {
        let (st, got) = http(&s.addr, method, path, body);
        assert_eq!(st, 400, "{method} {path}: {got}");
        if !want.is_empty() {
            assert_eq!(got, *want, "{method} {path}");
        }
        if path.starts_with("/api/blobs/sha256:0") {
            assert!(got.contains("digest mismatch, expected"), "{got}");
        }
    }
    assert_eq!(
        tree(&s.models_dir()),
        before,
        "a refused request changed the store"
    );

    // Ctrl-C: a clean shutdown, exit status 0.
    let st = s.interrupt();
    assert!(st.success(), "{st}; log:\n{}", s.log());
    assert!(s.log().contains("shutting down"), "{}", s.log());
}

#[test]
fn four_parallel_streams_equal_their_serial_results() {
    let _serial = serial();
    let s = Server::start("parallel", &[("OLLAMA_NUM_PARALLEL", "4")]);
    s.python(&["parallel"]);
}

#[test]
fn full_queue_answers_503_and_a_hang_up_frees_the_slot() {
    let _serial = serial();
    let s = Server::start(
        "queue",
        &[("OLLAMA_NUM_PARALLEL", "1"), ("OLLAMA_MAX_QUEUE", "1")],
    );
    s.python(&["queue"]);
}

#[test]
fn serve_reports_a_bad_environment_and_a_busy_port() {
    let _serial = serial();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("serve")
        .env("OLLAMA_NUM_PARALLEL", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: OLLAMA_NUM_PARALLEL: "), "{err}");

    let s = Server::start("busy", &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("serve")
        .env("OLLAMA_HOST", &s.addr)
        .env("OLLAMA_MODELS", s.models_dir())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("Error: listen tcp {}: ", s.addr)),
        "{err}"
    );
}

//! A tiny HTTP/1.1 server standing in for the ferrite server: it answers with
//! canned, spec-shaped JSON/NDJSON and records every request, and a helper that
//! runs the built `ferrite` binary against it with a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {} body is not JSON ({e}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

pub enum Reply {
    Json(u16, Value),
    Text(u16, &'static str),
    Empty(u16),
    /// NDJSON objects, one chunk each.
    Stream(u16, Vec<Value>),
    /// NDJSON objects with a pause before each.
    SlowStream(Vec<Value>, Duration),
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

pub struct Fake {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                let recorded = recorded.clone();
                std::thread::spawn(move || serve(conn, &*handler, &recorded));
            }
        });
        Fake { port, requests }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests other than the `HEAD /` heartbeat, in arrival order.
    pub fn calls(&self) -> Vec<Req> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.is("HEAD", "/"))
            .cloned()
            .collect()
    }

    pub fn routes(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Runs `ferrite` with `args` against this server.
    pub fn run(&self, args: &[&str], stdin: &str) -> Out {
        ferrite(&self.host(), args, stdin, &[])
    }

    pub fn run_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
        ferrite(&self.host(), args, stdin, env)
    }
}

fn serve(conn: TcpStream, handler: &Handler, recorded: &Mutex<Vec<Req>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let req = Req {
        method,
        path,
        headers,
        body,
    };
    recorded.lock().unwrap().push(req.clone());
    let reply = if req.is("HEAD", "/") || req.is("GET", "/") {
        Reply::Text(200, "Ollama is running")
    } else {
        handler(&req)
    };
    let head_only = req.method == "HEAD";
    let _ = write_reply(&mut conn, reply, head_only);
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

fn write_reply(conn: &mut TcpStream, reply: Reply, head_only: bool) -> std::io::Result<()> {
    let fixed = |conn: &mut TcpStream, code: u16, ctype: &str, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reason(code),
            body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(body);
        }
        conn.write_all(&out)
    };
    match reply {
        Reply::Json(code, v) => fixed(
            conn,
            code,
            "application/json; charset=utf-8",
            v.to_string().as_bytes(),
        ),
        Reply::Text(code, t) => fixed(conn, code, "text/plain; charset=utf-8", t.as_bytes()),
        Reply::Empty(code) => fixed(conn, code, "text/plain", b""),
        Reply::Stream(code, items) => stream(conn, code, items, Duration::ZERO),
        Reply::SlowStream(items, pause) => stream(conn, 200, items, pause),
    }
}

fn stream(
    conn: &mut TcpStream,
    code: u16,
    items: Vec<Value>,
    pause: Duration,
) -> std::io::Result<()> {
    conn.write_all(
        format!(
            "HTTP/1.1 {code} {}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            reason(code)
        )
        .as_bytes(),
    )?;
    for item in items {
        std::thread::sleep(pause);
        let line = format!("{item}\n");
        conn.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())?;
        conn.flush()?;
    }
    conn.write_all(b"0\r\n\r\n")
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `OLLAMA_HOST=host`, a private HOME and `stdin` piped in;
/// fails the test if it runs longer than 30 s.
pub fn ferrite(host: &str, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
    let home = std::env::temp_dir().join(format!(
        "ferrite-cli-home-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrite"));
    cmd.args(args)
        .env("OLLAMA_HOST", host)
        .env("HOME", &home)
        .env_remove("FERRITE_INTERACTIVE")
        .env_remove("OLLAMA_NOHISTORY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ferrite");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.as_bytes().to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("ferrite {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = std::fs::remove_dir_all(&home);
    Out {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A `/api/show` answer for a small llama model.
pub fn show_llama() -> Value {
    serde_json::json!({
        "modelfile": "# Modelfile generated by \"ollama show\"\nFROM /models/blobs/sha256-abc\nPARAMETER temperature 0.7\n",
        "parameters": "temperature                    0.7",
        "template": "{{ .Prompt }}",
        "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                    "parameter_size": "135M", "quantization_level": "Q8_0"},
        "model_info": {"general.architecture": "llama", "general.parameter_count": 134515008,
                       "llama.context_length": 8192, "llama.embedding_length": 576},
        "capabilities": ["completion"],
        "modified_at": "2025-05-04T17:37:44.706015396-07:00"
    })
}

/// Streamed generate chunks spelling `words`, then the final chunk with stats.
pub fn generate_chunks(words: &[&str]) -> Vec<Value> {
    let mut v: Vec<Value> = words
        .iter()
        .map(|w| serde_json::json!({"model": "m", "created_at": "2025-01-01T00:00:00Z", "response": w, "done": false}))
        .collect();
    v.push(serde_json::json!({
        "model": "m", "created_at": "2025-01-01T00:00:00Z", "response": "", "done": true,
        "done_reason": "stop", "total_duration": 1_234_500_000i64, "load_duration": 12_300_000,
        "prompt_eval_count": 26, "prompt_eval_duration": 130_000_000,
        "eval_count": 259, "eval_duration": 4_232_710_000i64
    }));
    v
}

/// Streamed chat chunks spelling `words`, then the final chunk.
pub fn chat_chunks(words: &[&str]) -> Vec<Value> {
    let mut v: Vec<Value> = words
        .iter()
        .map(|w| {
            serde_json::json!({"model": "m", "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": w}, "done": false})
        })
        .collect();
    v.push(
        serde_json::json!({"model": "m", "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
        "eval_count": 3, "eval_duration": 1_000_000_000i64}),
    );
    v
}

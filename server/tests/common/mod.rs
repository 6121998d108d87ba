//! Test harness: an in-memory catalog, a ChatML renderer that concatenates messages, a
//! server on a free port, and a small blocking HTTP/1.1 client that can read streams
//! line by line and hang up mid-stream.
#![allow(dead_code)]

use ferrite_server::api::{
    ApiError, CreateRequest, Message, ModelDetails, ProgressResponse, ShowRequest,
};
use ferrite_server::catalog::{
    Catalog, ChatRender, GenerateRender, ModelSummary, Progress, PromptRenderer, ResolvedModel,
};
use ferrite_server::config::Config;
use ferrite_server::http::{bind, AppState};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub fn smollm2() -> std::path::PathBuf {
    ferrite_tests::model_path(ferrite_tests::Model::SmolLm2)
}

fn full(name: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Models by display name; blobs by digest.
#[derive(Default)]
pub struct MemCatalog {
    pub models: Mutex<HashMap<String, ResolvedModel>>,
    pub blobs: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemCatalog {
    /// `smol:latest` → SmolLM2 (completion only), with a `<|im_end|>` stop parameter.
    pub fn with_smollm2() -> Arc<MemCatalog> {
        let c = MemCatalog::default();
        c.add(ResolvedModel {
            name: "smol:latest".into(),
            full_name: "registry.ollama.ai/library/smol:latest".into(),
            digest: "ab".repeat(32),
            gguf_path: smollm2(),
            parameters: json!({"stop": ["<|im_end|>"]}).as_object().unwrap().clone(),
            details: ModelDetails {
                format: "gguf".into(),
                family: "llama".into(),
                families: Some(vec!["llama".into()]),
                parameter_size: "135M".into(),
                quantization_level: "Q4_1".into(),
                ..Default::default()
            },
            capabilities: vec!["completion".into()],
            modified_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            ..Default::default()
        });
        let mut tools = c.resolve("smol").unwrap();
        tools.name = "smoltools:latest".into();
        tools.capabilities.push("tools".into());
        tools.modified_at = Some(SystemTime::UNIX_EPOCH);
        c.add(tools);
        Arc::new(c)
    }

    pub fn add(&self, m: ResolvedModel) {
        self.models.lock().unwrap().insert(m.name.clone(), m);
    }
}

fn valid_digest(d: &str) -> Option<String> {
    let hex = d
        .strip_prefix("sha256:")
        .or_else(|| d.strip_prefix("sha256-"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_lowercase())
}

impl Catalog for MemCatalog {
    fn resolve(&self, name: &str) -> Result<ResolvedModel, ApiError> {
        if name.contains(' ') {
            return Err(ApiError::bad_request("invalid model name"));
        }
        self.models
            .lock()
            .unwrap()
            .get(&full(name))
            .cloned()
            .ok_or_else(|| ApiError::model_not_found(name))
    }
    fn list(&self) -> Result<Vec<ModelSummary>, ApiError> {
        let mut v: Vec<ModelSummary> = self
            .models
            .lock()
            .unwrap()
            .values()
            .map(|m| ModelSummary {
                name: m.name.clone(),
                size: 1234,
                digest: m.digest.clone(),
                modified_at: m.modified_at.unwrap_or(SystemTime::UNIX_EPOCH),
                details: m.details.clone(),
                capabilities: m.capabilities.clone(),
            })
            .collect();
        v.sort_by(|a, b| b.modified_at.cmp(&a.modified_at).then(a.name.cmp(&b.name)));
        Ok(v)
    }
    fn show(&self, req: &ShowRequest) -> Result<Value, ApiError> {
        let m = self.resolve(&req.model)?;
        Ok(json!({"details": m.details, "model_info": {}, "capabilities": m.capabilities}))
    }
    fn create(&self, req: &CreateRequest, progress: Progress<'_>) -> Result<(), ApiError> {
        if req.from.is_empty() && req.files.is_empty() {
            return Err(ApiError::bad_request(
                "neither 'from' or 'files' was specified",
            ));
        }
        let mut base = self.resolve(&req.from)?;
        progress(ProgressResponse::status("using existing layer sha256:1"));
        base.name = full(&req.model);
        if !req.system.is_empty() {
            base.system = Some(req.system.clone());
        }
        progress(ProgressResponse::status("writing manifest"));
        self.add(base);
        Ok(())
    }
    fn copy(&self, source: &str, destination: &str) -> Result<(), ApiError> {
        let mut m = self
            .resolve(source)
            .map_err(|_| ApiError::not_found(format!("model {source:?} not found")))?;
        m.name = full(destination);
        self.add(m);
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.models
            .lock()
            .unwrap()
            .remove(&full(name))
            .map(|_| ())
            .ok_or_else(|| ApiError::model_not_found(name))
    }
    fn blob_exists(&self, digest: &str) -> Result<bool, ApiError> {
        let hex =
            valid_digest(digest).ok_or_else(|| ApiError::bad_request("invalid digest format"))?;
        Ok(self.blobs.lock().unwrap().contains_key(&hex))
    }
    fn put_blob(&self, digest: &str, body: &mut dyn Read) -> Result<(), ApiError> {
        let hex =
            valid_digest(digest).ok_or_else(|| ApiError::bad_request("invalid digest format"))?;
        let mut data = Vec::new();
        body.read_to_end(&mut data)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let got: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != hex {
            return Err(ApiError::bad_request(format!(
                "digest mismatch, expected \"sha256:{hex}\", got \"sha256:{got}\""
            )));
        }
        self.blobs.lock().unwrap().insert(hex, data);
        Ok(())
    }
}

/// ChatML by concatenation (SmolLM2's own turn format).
pub struct ChatMl;

fn turn(role: &str, content: &str) -> String {
    format!("<|im_start|>{role}\n{content}<|im_end|>\n")
}

impl PromptRenderer for ChatMl {
    fn chat(
        &self,
        _m: &ResolvedModel,
        messages: &[Message],
        o: &ChatRender<'_>,
    ) -> Result<String, ApiError> {
        let mut s = String::new();
        if !o.tools.is_empty() {
            let raw: Vec<&str> = o.tools.iter().map(|t| t.get()).collect();
            s += &turn("system", &format!("<tools>{}</tools>", raw.join(",")));
        }
        s += &messages
            .iter()
            .map(|m| turn(&m.role, &m.content))
            .collect::<String>();
        s.push_str("<|im_start|>assistant\n");
        Ok(s)
    }
    fn generate(&self, m: &ResolvedModel, r: &GenerateRender<'_>) -> Result<String, ApiError> {
        let mut s = String::new();
        if let Some(sys) = r.system.or(m.system.as_deref()) {
            s += &turn("system", sys);
        }
        if let Some(t) = &m.template {
            // A template override: "{{ .Prompt }}" style, enough to see it was used.
            return Ok(t.replace("{{ .Prompt }}", r.prompt));
        }
        s += &turn("user", r.prompt);
        s.push_str("<|im_start|>assistant\n");
        Ok(s)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server the caller started on its own thread, stopped through `stop`.
    pub fn with_thread(
        addr: SocketAddr,
        state: AppState,
        stop: tokio::sync::oneshot::Sender<()>,
        thread: std::thread::JoinHandle<()>,
    ) -> TestServer {
        TestServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A server run by the caller's own runtime.
    pub fn external(addr: SocketAddr, state: AppState) -> TestServer {
        TestServer {
            addr,
            state,
            stop: None,
            thread: None,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn config(vars: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("HOME".to_string(), "/nonexistent".to_string())])
        .collect();
    Config::from_lookup(move |k| vars.get(k).cloned()).unwrap()
}

pub fn start(cfg: Config, catalog: Arc<dyn Catalog>) -> TestServer {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let b = bind(
                cfg,
                catalog,
                Arc::new(ChatMl),
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
            .unwrap();
            tx.send((b.local_addr(), b.state().clone())).unwrap();
            b.run_until(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    let (addr, state) = rx.recv().unwrap();
    TestServer {
        addr,
        state,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    /// NDJSON lines.
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

/// A response being read incrementally.
pub struct Stream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    buf: Vec<u8>,
    eof: bool,
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Stream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req += &format!("Host: {addr}\r\n");
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    let body = body.unwrap_or(b"");
    if method != "GET" && method != "HEAD" || !body.is_empty() {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    Stream {
        status,
        headers,
        reader,
        chunked,
        buf: Vec::new(),
        eof: method == "HEAD",
    }
}

impl Stream {
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if !self.chunked {
            let mut tmp = [0u8; 4096];
            let n = self.reader.read(&mut tmp).unwrap_or(0);
            if n == 0 {
                self.eof = true;
                return false;
            }
            self.buf.extend_from_slice(&tmp[..n]);
            return true;
        }
        let mut size = String::new();
        if self.reader.read_line(&mut size).unwrap_or(0) == 0 {
            self.eof = true;
            return false;
        }
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            self.eof = true;
            return false;
        }
        let mut chunk = vec![0u8; n + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        true
    }

    /// The next `\n`-terminated line (without it), or the rest at the end.
    pub fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if !self.fill() {
                if self.buf.is_empty() {
                    return None;
                }
                return Some(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned());
            }
        }
    }

    pub fn finish(mut self) -> Resp {
        while self.fill() {}
        Resp {
            status: self.status,
            headers: self.headers,
            body: self.buf,
        }
    }
}

pub fn stream(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Stream {
    send(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

pub fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    send(addr, method, path, headers, body).finish()
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    raw(addr, "GET", path, &[], None)
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    stream(addr, "POST", path, body).finish()
}

pub fn ps_names(addr: SocketAddr) -> Vec<String> {
    get(addr, "/api/ps").json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `f` until it holds or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

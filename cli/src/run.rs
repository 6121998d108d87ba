//! `ollama run`: the one-shot generate (prompt argument or piped stdin), the
//! embedding path, and the session state the interactive REPL (`repl.rs`) drives
//! through `/api/chat`.

use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{ApiError, Client, StreamEnd};
use crate::commands;
use crate::format::{self, WordWrap};
use crate::progress::Progress;

const COLOR_GREY: &str = "\x1b[38;5;245m";
const COLOR_BOLD: &str = "\x1b[1m";
const COLOR_DEFAULT: &str = "\x1b[0m";

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Model to run
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Prompt (joined with spaces); without one, and with a terminal, opens a chat
    #[arg(value_name = "PROMPT")]
    pub prompt: Vec<String>,
    /// Response format (e.g. json)
    #[arg(long)]
    pub format: Option<String>,
    /// Duration to keep a model loaded (e.g. 5m)
    #[arg(long, allow_hyphen_values = true)]
    pub keepalive: Option<String>,
    /// Show timings for response
    #[arg(long)]
    pub verbose: bool,
    /// Use an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Don't wrap words to the next line automatically
    #[arg(long)]
    pub nowordwrap: bool,
    /// Enable thinking mode: true/false or high/medium/low for supported models
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub think: Option<String>,
    /// Hide thinking output (if provided)
    #[arg(long)]
    pub hidethinking: bool,
    /// For embedding models: truncate inputs exceeding context length (default: true). Set --truncate=false to error instead
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub truncate: Option<bool>,
    /// Truncate output embeddings to specified dimension (embedding models only)
    #[arg(long, default_value_t = 0)]
    pub dimensions: i64,
}

/// `--think` as the request's `think`.
pub fn parse_think(v: &str) -> Result<Value, String> {
    match v {
        "" | "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        "high" | "medium" | "low" | "max" => Ok(Value::String(v.to_string())),
        _ => Err(format!(
            "invalid value for --think: {} (must be true, false, high, medium, low, or max)",
            server::store::go_quote(v)
        )),
    }
}

/// `--keepalive` as Ollama's client sends it: a Go duration string, `-1` when negative.
pub fn parse_keep_alive(v: &str) -> Result<Value, String> {
    let nanos = format::parse_go_duration(v)?;
    Ok(if nanos < 0 {
        json!(-1)
    } else {
        Value::String(format::go_duration(nanos))
    })
}

/// Everything a run or chat session carries between requests.
pub struct Session {
    pub client: Client,
    pub model: String,
    pub parent_model: String,
    /// The `/set system` message (shown by `/show`, saved by `/save`).
    pub system: String,
    pub messages: Vec<Value>,
    /// `/set parameter` values, sent as `options`.
    pub options: Map<String, Value>,
    /// `""`, `json` or a JSON schema.
    pub format: String,
    pub keep_alive: Option<Value>,
    pub think: Option<Value>,
    pub think_explicit: bool,
    pub hide_thinking: bool,
    pub wordwrap: bool,
    pub verbose: bool,
    pub multimodal: bool,
    /// Raised by SIGINT (Ctrl+C) to stop the response being streamed.
    pub cancel: Arc<AtomicBool>,
}

impl Session {
    fn format_value(&self) -> Option<Value> {
        match self.format.as_str() {
            "" => None,
            "json" => Some(Value::String("json".into())),
            other => {
                Some(serde_json::from_str(other).unwrap_or_else(|_| Value::String(other.into())))
            }
        }
    }

    fn base_body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("model".into(), Value::String(self.model.clone()));
        if let Some(f) = self.format_value() {
            body.insert("format".into(), f);
        }
        body.insert("options".into(), Value::Object(self.options.clone()));
        if let Some(k) = &self.keep_alive {
            body.insert("keep_alive".into(), k.clone());
        }
        if let Some(t) = &self.think {
            body.insert("think".into(), t.clone());
        }
        body
    }

    /// `/api/show` for the session's model, with the session's system and options.
    pub fn show(&self) -> Result<Value, ApiError> {
        let mut req = json!({ "model": self.model });
        if !self.system.is_empty() {
            req["system"] = Value::String(self.system.clone());
        }
        if !self.options.is_empty() {
            req["options"] = Value::Object(self.options.clone());
        }
        self.client.post("/api/show", &req)
    }

    /// A load-only generate (carrying `think` so an unsupported mode fails now).
    pub fn load_model(&self) -> Result<(), ApiError> {
        let mut body = Map::new();
        body.insert("model".into(), Value::String(self.model.clone()));
        if let Some(k) = &self.keep_alive {
            body.insert("keep_alive".into(), k.clone());
        }
        if let Some(t) = &self.think {
            body.insert("think".into(), t.clone());
        }
        let p = Progress::new();
        p.spinner("");
        let r = self
            .client
            .stream("/api/generate", &Value::Object(body), None, &mut |_| Ok(()));
        p.stop_and_clear();
        r.map(|_| ())
    }

    /// Thinking on by default for models that can think, unless set explicitly.
    pub fn infer_think(&mut self, capabilities: Option<&Value>) {
        if self.think_explicit {
            return;
        }
        let thinks = capabilities
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|x| x == "thinking"));
        self.think = thinks.then_some(Value::Bool(true));
    }

    /// Streams one `/api/chat` turn over `messages`, printing the answer. `None`
    /// when cancelled with Ctrl+C.
    pub fn chat(&mut self) -> Result<Option<Value>, ApiError> {
        let mut body = self.base_body();
        body.insert("messages".into(), Value::Array(self.messages.clone()));
        let mut out = ResponseWriter::new(self.wordwrap, self.hide_thinking);
        let mut role = String::from("assistant");
        let mut content = String::new();
        let mut latest = Value::Null;
        self.cancel.store(false, Ordering::SeqCst);
        let end = self.client.stream(
            "/api/chat",
            &Value::Object(body),
            Some(&self.cancel),
            &mut |chunk| {
                let msg = chunk.get("message").cloned().unwrap_or(Value::Null);
                if let Some(r) = msg
                    .get("role")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    role = r.to_string();
                }
                let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
                let thinking = msg.get("thinking").and_then(Value::as_str).unwrap_or("");
                content.push_str(text);
                out.chunk(thinking, text, msg.get("tool_calls"));
                latest = chunk.clone();
                Ok(())
            },
        );
        out.stop_spinner();
        if end? == StreamEnd::Cancelled {
            return Ok(None);
        }
        out.print("\n\n");
        if self.verbose {
            eprint!("{}", format::metrics_summary(&latest));
        }
        let mut msg = json!({ "role": role, "content": content });
        if !out.thinking.is_empty() {
            msg["thinking"] = Value::String(out.thinking.clone());
        }
        Ok(Some(msg))
    }

    /// One `/api/generate` call for a one-shot prompt (empty: load only).
    pub fn generate(&mut self, prompt: &str, images: Vec<String>) -> Result<(), ApiError> {
        let mut body = self.base_body();
        body.insert("prompt".into(), Value::String(prompt.to_string()));
        if !images.is_empty() {
            body.insert("images".into(), json!(images));
        }
        let mut out = ResponseWriter::new(self.wordwrap, self.hide_thinking);
        let mut latest = Value::Null;
        self.cancel.store(false, Ordering::SeqCst);
        let end = self.client.stream(
            "/api/generate",
            &Value::Object(body),
            Some(&self.cancel),
            &mut |chunk| {
                let text = chunk.get("response").and_then(Value::as_str).unwrap_or("");
                let thinking = chunk.get("thinking").and_then(Value::as_str).unwrap_or("");
                out.chunk(thinking, text, chunk.get("tool_calls"));
                latest = chunk.clone();
                Ok(())
            },
        );
        out.stop_spinner();
        if end? == StreamEnd::Cancelled {
            return Ok(());
        }
        if !prompt.is_empty() {
            out.print("\n\n");
        }
        if latest.get("done").and_then(Value::as_bool) != Some(true) {
            return Ok(());
        }
        if self.verbose {
            eprint!("{}", format::metrics_summary(&latest));
        }
        Ok(())
    }
}

/// Prints a streamed answer: a spinner until the first visible text, thinking in
/// grey between `Thinking...` and `...done thinking.`, word wrap on a terminal.
pub struct ResponseWriter {
    spinner: Option<Progress>,
    wrap: WordWrap,
    wordwrap: bool,
    width: usize,
    plain: bool,
    hide_thinking: bool,
    think_open: bool,
    pub thinking: String,
}

impl ResponseWriter {
    pub fn new(wordwrap: bool, hide_thinking: bool) -> ResponseWriter {
        let stdout = std::io::stdout();
        let plain = !stdout.is_terminal();
        let width = terminal_size::terminal_size_of(&stdout).map_or(0, |(w, _)| w.0 as usize);
        let spinner = Progress::new();
        spinner.spinner("");
        ResponseWriter {
            spinner: Some(spinner),
            wrap: WordWrap::new(wordwrap, width),
            wordwrap,
            width,
            plain,
            hide_thinking,
            think_open: false,
            thinking: String::new(),
        }
    }

    pub fn stop_spinner(&mut self) {
        if let Some(p) = self.spinner.take() {
            p.stop_and_clear();
        }
    }

    pub fn print(&mut self, s: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }

    pub fn chunk(&mut self, thinking: &str, content: &str, tool_calls: Option<&Value>) {
        if !content.is_empty() || !self.hide_thinking {
            self.stop_spinner();
        }
        let calls = tool_calls
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty());
        if !thinking.is_empty() && !self.hide_thinking {
            if !self.think_open {
                let open = if self.plain {
                    "Thinking...\n".to_string()
                } else {
                    format!("{COLOR_GREY}{COLOR_BOLD}Thinking...\n{COLOR_DEFAULT}{COLOR_GREY}")
                };
                self.print(&open);
                self.think_open = true;
            }
            self.thinking.push_str(thinking);
            let text = self.wrap.push(thinking);
            self.print(&text);
        } else if !thinking.is_empty() {
            self.thinking.push_str(thinking);
        }
        if self.think_open && (!content.is_empty() || calls.is_some()) {
            if !self.thinking.ends_with('\n') {
                self.print("\n");
            }
            let close = if self.plain {
                "...done thinking.\n\n".to_string()
            } else {
                format!("{COLOR_GREY}{COLOR_BOLD}...done thinking.\n\n{COLOR_DEFAULT}")
            };
            self.print(&close);
            self.think_open = false;
            self.wrap = WordWrap::new(self.wordwrap, self.width);
        }
        let text = self.wrap.push(content);
        self.print(&text);
        if let Some(calls) = calls {
            let text = render_tool_calls(calls, self.plain);
            self.print(&text);
        }
    }
}

/// How the CLI shows tool calls a model made without tools being offered.
fn render_tool_calls(calls: &[Value], plain: bool) -> String {
    let (expl, vals) = if plain {
        ("", "")
    } else {
        ("\x1b[38;5;245m\x1b[1m", "\x1b[0m")
    };
    let mut out = String::new();
    for (i, call) in calls.iter().enumerate() {
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
        let args = f.get("arguments").cloned().unwrap_or(json!({}));
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{expl}  Model called a non-existent function '{vals}{name}(){expl}' with arguments: {vals}{args}{expl}"
        ));
    }
    if !plain {
        out.push_str(COLOR_DEFAULT);
    }
    out
}

/// Installs the SIGINT flag once: Ctrl+C while an answer streams cancels it
/// instead of killing the process (as `ollama run` does).
fn sigint_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone());
    flag
}

/// `FERRITE_INTERACTIVE=1` forces the chat REPL with piped stdin/stdout (plain
/// line reading, no line editor): scripted sessions and tests use it.
fn forced_interactive() -> bool {
    crate::env::bool_var("FERRITE_INTERACTIVE")
}

pub fn run(args: &RunArgs) -> Result<(), String> {
    let client = Client::from_env();
    client.heartbeat()?;

    let think = args.think.as_deref().map(parse_think).transpose()?;
    let keep_alive = args
        .keepalive
        .as_deref()
        .map(parse_keep_alive)
        .transpose()?;
    let forced = forced_interactive();

    let mut interactive = true;
    let mut prompts = args.prompt.clone();
    if !forced && !std::io::stdin().is_terminal() {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .map_err(|e| format!("read stdin: {e}"))?;
        let input = String::from_utf8_lossy(&input).into_owned();
        if !input.is_empty() {
            prompts.insert(0, input);
        }
        interactive = false;
    }
    let prompt = prompts.join(" ");
    if !prompts.is_empty() {
        interactive = false;
    }
    if !forced && !std::io::stdout().is_terminal() {
        interactive = false;
    }

    let name = args.model.clone();
    let show_req = json!({ "model": name });
    let info = match client.post("/api/show", &show_req) {
        Err(e) if e.status() == Some(404) => {
            commands::pull(&client, &name, args.insecure)?;
            client.post("/api/show", &show_req)?
        }
        other => other?,
    };

    let mut session = Session {
        client: client.clone(),
        model: name.clone(),
        parent_model: info
            .pointer("/details/parent_model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        system: String::new(),
        messages: Vec::new(),
        options: Map::new(),
        format: args.format.clone().unwrap_or_default(),
        keep_alive,
        think_explicit: think.is_some(),
        think,
        hide_thinking: args.hidethinking,
        wordwrap: !args.nowordwrap,
        verbose: args.verbose,
        multimodal: is_multimodal(&info),
        cancel: sigint_flag(),
    };
    session.infer_think(info.get("capabilities"));

    let caps = info.get("capabilities").and_then(Value::as_array);
    let has_cap = |c: &str| caps.is_some_and(|caps| caps.iter().any(|x| x == c));
    if has_cap("embedding") {
        if prompt.is_empty() {
            return Err(format!(
                "embedding models require input text. Usage: ollama run {name} \"your text here\""
            ));
        }
        return embed(&session, &prompt, args);
    }
    if has_cap("image") {
        return Err("image generation models are not currently supported".into());
    }

    if interactive {
        session.load_model()?;
        let history = info
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let stdout = std::io::stdout();
        let width = terminal_size::terminal_size_of(&stdout).map_or(0, |(w, _)| w.0 as usize);
        for msg in history {
            let content = msg.get("content").and_then(Value::as_str).unwrap_or("");
            match msg.get("role").and_then(Value::as_str) {
                Some("user") => println!(">>> {content}"),
                Some("assistant") => {
                    let text = WordWrap::new(session.wordwrap, width).push(content);
                    print!("{text}\n\n");
                }
                _ => {}
            }
        }
        return crate::repl::run(&mut session, forced);
    }

    let (prompt, images) = if session.multimodal {
        extract_file_data(&prompt)?
    } else {
        (prompt, Vec::new())
    };
    session.generate(&prompt, images).map_err(String::from)
}

fn embed(session: &Session, input: &str, args: &RunArgs) -> Result<(), String> {
    let mut req = json!({ "model": session.model, "input": input });
    if let Some(k) = &session.keep_alive {
        req["keep_alive"] = k.clone();
    }
    if let Some(t) = args.truncate {
        req["truncate"] = Value::Bool(t);
    }
    if args.dimensions > 0 {
        req["dimensions"] = json!(args.dimensions);
    }
    let resp = session.client.post("/api/embed", &req)?;
    let first = resp
        .get("embeddings")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .ok_or("no embeddings returned")?;
    println!("{first}");
    Ok(())
}

/// Vision or audio input: a capability, a projector, or vision metadata.
pub fn is_multimodal(info: &Value) -> bool {
    let caps = info.get("capabilities").and_then(Value::as_array);
    if caps.is_some_and(|c| c.iter().any(|x| x == "vision" || x == "audio")) {
        return true;
    }
    if info
        .get("projector_info")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty())
    {
        return true;
    }
    info.get("model_info")
        .and_then(Value::as_object)
        .is_some_and(|m| m.keys().any(|k| k.contains(".vision.")))
}

// ---- images in prompts -------------------------------------------------------------

/// Paths in a prompt that may be images or audio (absolute, `./`, or Windows).
pub fn extract_file_names(input: &str) -> Vec<String> {
    let re = fancy_regex::Regex::new(
        r"(?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp|wav)\b",
    )
    .expect("static regex");
    re.find_iter(input)
        .filter_map(Result::ok)
        .map(|m| m.as_str().to_string())
        .collect()
}

fn unescape_path(p: &str) -> String {
    const PAIRS: [(&str, &str); 16] = [
        ("'\\''", "'"),
        ("\\ ", " "),
        ("\\(", "("),
        ("\\)", ")"),
        ("\\[", "["),
        ("\\]", "]"),
        ("\\{", "{"),
        ("\\}", "}"),
        ("\\$", "$"),
        ("\\&", "&"),
        ("\\;", ";"),
        ("\\'", "'"),
        ("\\\\", "\\"),
        ("\\*", "*"),
        ("\\?", "?"),
        ("\\~", "~"),
    ];
    // One left-to-right pass, like Go's strings.Replacer.
    let mut out = String::new();
    let mut rest = p;
    'outer: while !rest.is_empty() {
        for (from, to) in PAIRS {
            if let Some(r) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The media type of an image or audio file by its first bytes.
fn media_kind(head: &[u8]) -> Option<&'static str> {
    match head {
        [0xFF, 0xD8, 0xFF, ..] => Some("image"),
        [0x89, b'P', b'N', b'G', ..] => Some("image"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', ..] => Some("audio"),
        _ => None,
    }
}

/// Replaces the image/audio paths in `input` that exist by attachments: the
/// cleaned text and the base64 files. Missing paths stay in the text.
pub fn extract_file_data(input: &str) -> Result<(String, Vec<String>), String> {
    const MAX: u64 = 100 * 1024 * 1024;
    let mut text = input.to_string();
    let mut files = Vec::new();
    for raw in extract_file_names(input) {
        let path = unescape_path(&raw);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                eprintln!(
                    "Couldn't process image: {}",
                    server::store::go_quote(&e.to_string())
                );
                return Err(e.to_string());
            }
        };
        let Some(kind) = media_kind(&bytes) else {
            let msg = "invalid image type".to_string();
            eprintln!("Couldn't process image: {}", server::store::go_quote(&msg));
            return Err(msg);
        };
        if bytes.len() as u64 > MAX {
            return Err("file size exceeds maximum limit (100MB)".into());
        }
        let label = if kind == "audio" { "audio" } else { "image" };
        eprintln!("Added {label} '{path}'");
        text = text
            .replace(&format!("'{path}'"), "")
            .replace(&format!("'{raw}'"), "")
            .replace(&raw, "");
        files.push(base64(&bytes));
    }
    Ok((text.trim().to_string(), files))
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_values() {
        assert_eq!(parse_think("true"), Ok(json!(true)));
        assert_eq!(parse_think("false"), Ok(json!(false)));
        assert_eq!(parse_think("high"), Ok(json!("high")));
        assert_eq!(
            parse_think("loud"),
            Err("invalid value for --think: \"loud\" (must be true, false, high, medium, low, or max)".into())
        );
    }

    #[test]
    fn keep_alive_values() {
        assert_eq!(parse_keep_alive("5m"), Ok(json!("5m0s")));
        assert_eq!(parse_keep_alive("1h"), Ok(json!("1h0m0s")));
        assert_eq!(parse_keep_alive("0"), Ok(json!("0s")));
        assert_eq!(parse_keep_alive("-1m"), Ok(json!(-1)));
        assert!(parse_keep_alive("5").is_err());
    }

    #[test]
    fn base64_matches_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn image_paths() {
        assert_eq!(
            extract_file_names("what is in /tmp/a b.png and ./c.JPG? not d.png"),
            ["/tmp/a b.png", "./c.JPG"]
        );
        assert_eq!(
            unescape_path("/tmp/my\\ pic\\(1\\).png"),
            "/tmp/my pic(1).png"
        );
        let dir = std::env::temp_dir().join(format!("ferrite-cli-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("x.png");
        std::fs::write(&png, [0x89, b'P', b'N', b'G', 1, 2, 3]).unwrap();
        let prompt = format!("describe {} please /nope/missing.png", png.display());
        let (text, files) = extract_file_data(&prompt).unwrap();
        assert_eq!(text, "describe  please /nope/missing.png");
        assert_eq!(files, [base64(&[0x89, b'P', b'N', b'G', 1, 2, 3])]);
        let bad = dir.join("y.png");
        std::fs::write(&bad, b"not an image").unwrap();
        assert!(extract_file_data(&format!("see {}", bad.display())).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The interactive chat of `ollama run`: `>>> ` prompt, `"""` multi-line input,
//! the slash commands with Ollama's help and messages, history kept per session
//! and sent with every `/api/chat` turn.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use serde_json::{json, Value};

use crate::commands;
use crate::format;
use crate::run::Session;

const PROMPT: &str = ">>> ";
const ALT_PROMPT: &str = "... ";
const PLACEHOLDER: &str = "Send a message (/? for help)";
const ALT_PLACEHOLDER: &str = "Press Enter to send";

const USAGE: &str = "Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
";

const USAGE_MULTIMODAL: &str =
    "Use /path/to/file to include .jpg, .png, .webp images, or .wav audio files.\n";

const USAGE_SET: &str = "Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking

";

const USAGE_SHORTCUTS: &str = "Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit ollama (/bye)

";

const USAGE_SHOW: &str = "Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template

";

const USAGE_PARAMETERS: &str = "Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters

";

// ---- line input ------------------------------------------------------------------

enum Input {
    Line(String),
    /// Ctrl+C; true when the line was empty.
    Interrupted(bool),
    Eof,
}

trait LineSource {
    fn read(&mut self, prompt: &str, placeholder: &'static str) -> Result<Input, String>;
    fn add_history(&mut self, line: &str);
    fn set_history(&mut self, enabled: bool);
}

/// The placeholder shown in grey on an empty line; it never completes into the
/// line. The hinter also records the line being edited so Ctrl+C can tell an
/// empty line from a discarded one.
struct ReplHelper {
    placeholder: RefCell<&'static str>,
    last_line: RefCell<String>,
}

struct Placeholder(String);

impl Hint for Placeholder {
    fn display(&self) -> &str {
        &self.0
    }
    fn completion(&self) -> Option<&str> {
        None
    }
}

impl Hinter for ReplHelper {
    type Hint = Placeholder;
    fn hint(&self, line: &str, _pos: usize, _ctx: &Context<'_>) -> Option<Placeholder> {
        *self.last_line.borrow_mut() = line.to_string();
        line.is_empty()
            .then(|| Placeholder(self.placeholder.borrow().to_string()))
    }
}

impl Highlighter for ReplHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[38;5;245m{hint}\x1b[0m"))
    }
}

impl Completer for ReplHelper {
    type Candidate = String;
}
impl Validator for ReplHelper {}
impl Helper for ReplHelper {}

struct Terminal {
    editor: Editor<ReplHelper, FileHistory>,
    history_file: Option<PathBuf>,
    history: bool,
}

impl Terminal {
    fn new() -> Result<Terminal, String> {
        let mut editor = Editor::<ReplHelper, FileHistory>::new().map_err(|e| e.to_string())?;
        editor.set_helper(Some(ReplHelper {
            placeholder: RefCell::new(PLACEHOLDER),
            last_line: RefCell::new(String::new()),
        }));
        let history = !crate::env::bool_var("OLLAMA_NOHISTORY");
        let history_file = crate::env::ollama_dir().map(|d| d.join("history"));
        if let Some(f) = &history_file {
            let _ = editor.load_history(f);
        }
        Ok(Terminal {
            editor,
            history_file,
            history,
        })
    }
}

impl LineSource for Terminal {
    fn read(&mut self, prompt: &str, placeholder: &'static str) -> Result<Input, String> {
        if let Some(h) = self.editor.helper_mut() {
            *h.placeholder.borrow_mut() = placeholder;
            h.last_line.borrow_mut().clear();
        }
        match self.editor.readline(prompt) {
            Ok(line) => Ok(Input::Line(line)),
            Err(ReadlineError::Interrupted) => {
                let empty = self
                    .editor
                    .helper()
                    .is_none_or(|h| h.last_line.borrow().is_empty());
                Ok(Input::Interrupted(empty))
            }
            Err(ReadlineError::Eof) => Ok(Input::Eof),
            Err(e) => Err(e.to_string()),
        }
    }

    fn add_history(&mut self, line: &str) {
        if !self.history || line.trim().is_empty() {
            return;
        }
        let _ = self.editor.add_history_entry(line);
        if let Some(f) = &self.history_file {
            if let Some(dir) = f.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = self.editor.save_history(f);
        }
    }

    fn set_history(&mut self, enabled: bool) {
        self.history = enabled;
    }
}

/// Piped input: prompts are still printed so a transcript reads like a session.
struct Plain<R: BufRead> {
    input: R,
}

impl<R: BufRead> LineSource for Plain<R> {
    fn read(&mut self, prompt: &str, _placeholder: &'static str) -> Result<Input, String> {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(prompt.as_bytes());
        let _ = out.flush();
        drop(out);
        let mut line = String::new();
        let n = self
            .input
            .read_line(&mut line)
            .map_err(|e| format!("read stdin: {e}"))?;
        if n == 0 {
            return Ok(Input::Eof);
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Input::Line(line))
    }

    fn add_history(&mut self, _line: &str) {}
    fn set_history(&mut self, _enabled: bool) {}
}

// ---- the loop -----------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Multiline {
    None,
    Prompt,
    System,
}

/// Runs the REPL until `/bye` or end of input. `plain` reads lines from stdin
/// without a line editor (also used whenever stdin is not a terminal).
pub fn run(session: &mut Session, plain: bool) -> Result<(), String> {
    let tty = !plain && std::io::stdin().is_terminal();
    let mut source: Box<dyn LineSource> = if tty {
        Box::new(Terminal::new()?)
    } else {
        Box::new(Plain {
            input: std::io::stdin().lock(),
        })
    };
    if tty {
        print!("\x1b[?2004h");
    }
    let result = repl(session, source.as_mut());
    if tty {
        print!("\x1b[?2004l");
        let _ = std::io::stdout().flush();
    }
    result
}

fn repl(s: &mut Session, source: &mut dyn LineSource) -> Result<(), String> {
    let mut sb = String::new();
    let mut multiline = Multiline::None;
    let mut alt = false;
    loop {
        let (prompt, placeholder) = if alt {
            (ALT_PROMPT, ALT_PLACEHOLDER)
        } else {
            (PROMPT, PLACEHOLDER)
        };
        let line = match source.read(prompt, placeholder)? {
            Input::Eof => {
                println!();
                return Ok(());
            }
            Input::Interrupted(empty) => {
                // The line editor has already ended the line.
                if empty {
                    println!("Use Ctrl + d or /bye to exit.");
                }
                alt = false;
                sb.clear();
                multiline = Multiline::None;
                continue;
            }
            Input::Line(l) => l,
        };
        source.add_history(&line);

        if multiline != Multiline::None {
            let (before, closed) = match line.strip_suffix("\"\"\"") {
                Some(b) => (b, true),
                None => (line.as_str(), false),
            };
            sb.push_str(before);
            if !closed {
                sb.push('\n');
                alt = true;
                continue;
            }
            if multiline == Multiline::System {
                s.system = std::mem::take(&mut sb);
                s.messages
                    .push(json!({ "role": "system", "content": s.system }));
                println!("Set system message.");
            }
            multiline = Multiline::None;
            alt = false;
        } else if let Some(rest) = line.strip_prefix("\"\"\"") {
            match rest.strip_suffix("\"\"\"") {
                Some(one) => sb.push_str(one),
                None => {
                    sb.push_str(rest);
                    sb.push('\n');
                    multiline = Multiline::Prompt;
                    alt = true;
                }
            }
        } else if line.starts_with("/list") {
            let args: Vec<&str> = line.split_whitespace().collect();
            print!("{}", commands::list(&s.client, args.get(1).copied())?);
            continue;
        } else if line.starts_with("/load") {
            load(s, &line)?;
            continue;
        } else if line.starts_with("/save") {
            save(s, &line)?;
            continue;
        } else if line.starts_with("/clear") {
            s.messages.clear();
            if !s.system.is_empty() {
                s.messages
                    .push(json!({ "role": "system", "content": s.system }));
            }
            println!("Cleared session context");
            continue;
        } else if line.starts_with("/set") {
            match set(s, source, &line)? {
                SetOutcome::Done => continue,
                SetOutcome::MultilineSystem(first) => {
                    sb.push_str(&first);
                    sb.push('\n');
                    multiline = Multiline::System;
                    alt = true;
                    continue;
                }
            }
        } else if line.starts_with("/show") {
            show(s, &line)?;
            continue;
        } else if line.starts_with("/help") || line.starts_with("/?") {
            let args: Vec<&str> = line.split_whitespace().collect();
            match args.get(1).copied() {
                None => {
                    eprint!("{USAGE}");
                    if s.multimodal {
                        eprint!("{USAGE_MULTIMODAL}");
                    }
                    eprintln!();
                }
                Some("set" | "/set") => eprint!("{USAGE_SET}"),
                Some("show" | "/show") => eprint!("{USAGE_SHOW}"),
                Some("shortcut" | "shortcuts") => eprint!("{USAGE_SHORTCUTS}"),
                Some(_) => {}
            }
            continue;
        } else if line.starts_with("/exit") || line.starts_with("/bye") {
            return Ok(());
        } else if line.starts_with('/') {
            let first = line.split_whitespace().next().unwrap_or("/");
            let is_file = s.multimodal
                && crate::run::extract_file_names(&line)
                    .iter()
                    .any(|f| f.starts_with(first));
            if !is_file {
                println!("Unknown command '{first}'. Type /? for help");
                continue;
            }
            sb.push_str(&line);
        } else {
            sb.push_str(&line);
        }

        if !sb.is_empty() && multiline == Multiline::None {
            let text = std::mem::take(&mut sb);
            let mut message = json!({ "role": "user", "content": text });
            if s.multimodal {
                let (content, images) = crate::run::extract_file_data(&text)?;
                message["content"] = Value::String(content);
                if !images.is_empty() {
                    message["images"] = json!(images);
                }
            }
            s.messages.push(message);
            match s.chat() {
                Ok(Some(reply)) => s.messages.push(reply),
                Ok(None) => {}
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("does not support thinking")
                        || text.contains("invalid think value")
                    {
                        println!("error: {text}");
                        continue;
                    }
                    return Err(text);
                }
            }
        }
    }
}

/// `/load <model>`: switches model and clears the history.
fn load(s: &mut Session, line: &str) -> Result<(), String> {
    let args: Vec<&str> = line.split_whitespace().collect();
    if args.len() != 2 {
        println!("Usage:\n  /load <modelname>");
        return Ok(());
    }
    let (old_model, old_parent, old_messages, old_think) = (
        s.model.clone(),
        s.parent_model.clone(),
        std::mem::take(&mut s.messages),
        s.think.clone(),
    );
    let restore = |s: &mut Session| {
        s.model = old_model.clone();
        s.parent_model = old_parent.clone();
        s.messages = old_messages.clone();
        s.think = old_think.clone();
    };
    s.model = args[1].to_string();
    println!("Loading model '{}'", s.model);
    match s.client.post("/api/show", &json!({ "model": s.model })) {
        Ok(info) => {
            s.infer_think(info.get("capabilities"));
            s.parent_model = info
                .pointer("/details/parent_model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            s.multimodal = crate::run::is_multimodal(&info);
        }
        Err(e) if e.to_string().contains("not found") => {
            println!("Couldn't find model '{}'", s.model);
            restore(s);
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    }
    if let Err(e) = s.load_model() {
        let text = e.to_string();
        if text.contains("not found") {
            println!("Couldn't find model '{}'", s.model);
            restore(s);
            return Ok(());
        }
        if text.contains("does not support thinking") {
            println!("error: {text}");
            return Ok(());
        }
        return Err(text);
    }
    Ok(())
}

/// `/save <model>`: creates a model from the current one with the session's
/// system message, parameters and history.
fn save(s: &mut Session, line: &str) -> Result<(), String> {
    let args: Vec<&str> = line.split_whitespace().collect();
    if args.len() != 2 {
        println!("Usage:\n  /save <modelname>");
        return Ok(());
    }
    let name = args[1];
    let from = if server::store::ModelName::parse(&s.parent_model).is_ok() {
        s.parent_model.clone()
    } else {
        s.model.clone()
    };
    let mut req = json!({ "model": name, "from": from });
    if !s.system.is_empty() {
        req["system"] = Value::String(s.system.clone());
    }
    if !s.options.is_empty() {
        req["parameters"] = Value::Object(s.options.clone());
    }
    if !s.messages.is_empty() {
        req["messages"] = Value::Array(s.messages.clone());
    }
    match s.client.stream("/api/create", &req, None, &mut |_| Ok(())) {
        Ok(_) => {
            println!("Created new model '{name}'");
            Ok(())
        }
        Err(e) if e.to_string().contains("invalid model name") => {
            println!("error: The model name '{name}' is invalid");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

enum SetOutcome {
    Done,
    /// `/set system """...` opened a multi-line system message.
    MultilineSystem(String),
}

fn set(s: &mut Session, source: &mut dyn LineSource, line: &str) -> Result<SetOutcome, String> {
    let args: Vec<&str> = line.split_whitespace().collect();
    let Some(&what) = args.get(1) else {
        eprint!("{USAGE_SET}");
        return Ok(SetOutcome::Done);
    };
    match what {
        "history" => source.set_history(true),
        "nohistory" => source.set_history(false),
        "wordwrap" => {
            s.wordwrap = true;
            println!("Set 'wordwrap' mode.");
        }
        "nowordwrap" => {
            s.wordwrap = false;
            println!("Set 'nowordwrap' mode.");
        }
        "verbose" => {
            s.verbose = true;
            println!("Set 'verbose' mode.");
        }
        "quiet" => {
            s.verbose = false;
            println!("Set 'quiet' mode.");
        }
        "think" => {
            let level = args.get(2).copied();
            s.think = Some(level.map_or(Value::Bool(true), |l| Value::String(l.to_string())));
            s.think_explicit = true;
            warn_if_no_thinking(s);
            match level {
                Some(l) => println!("Set 'think' mode to '{l}'."),
                None => println!("Set 'think' mode."),
            }
        }
        "nothink" => {
            s.think = Some(Value::Bool(false));
            s.think_explicit = true;
            warn_if_no_thinking(s);
            println!("Set 'nothink' mode.");
        }
        "format" => {
            if args.get(2) == Some(&"json") {
                s.format = "json".into();
                println!("Set format to 'json' mode.");
            } else {
                println!("Invalid or missing format. For 'json' mode use '/set format json'");
            }
        }
        "noformat" => {
            s.format.clear();
            println!("Disabled format.");
        }
        "parameter" => {
            if args.len() < 4 {
                eprint!("{USAGE_PARAMETERS}");
                return Ok(SetOutcome::Done);
            }
            let (name, values) = (args[2], &args[3..]);
            match parameter_value(name, values) {
                Ok(v) => {
                    println!("Set parameter '{name}' to '{}'", values.join(", "));
                    s.options.insert(name.to_string(), v);
                }
                Err(e) => println!("Couldn't set parameter: {}", server::store::go_quote(&e)),
            }
        }
        "system" => {
            if args.len() < 3 {
                eprint!("{USAGE_SET}");
                return Ok(SetOutcome::Done);
            }
            let text = args[2..].join(" ");
            let text = match text.strip_prefix("\"\"\"") {
                None => text,
                Some(rest) => match rest.strip_suffix("\"\"\"") {
                    Some(one) => one.to_string(),
                    None => return Ok(SetOutcome::MultilineSystem(rest.to_string())),
                },
            };
            s.system = text.clone();
            let message = json!({ "role": "system", "content": text });
            match s.messages.last_mut() {
                Some(last) if last.get("role") == Some(&json!("system")) => *last = message,
                _ => s.messages.push(message),
            }
            println!("Set system message.");
        }
        other => println!("Unknown command '/set {other}'. Type /? for help"),
    }
    Ok(SetOutcome::Done)
}

/// `/set parameter` values typed like a Modelfile PARAMETER; `stop` takes them all.
fn parameter_value(name: &str, values: &[&str]) -> Result<Value, String> {
    use server::modelfile::parse_parameter;
    if name == "stop" {
        let mut all = Vec::new();
        for v in values {
            if let Value::Array(items) = parse_parameter(name, v).map_err(|e| e.message)? {
                all.extend(items);
            }
        }
        return Ok(Value::Array(all));
    }
    parse_parameter(name, values[0]).map_err(|e| e.message)
}

fn warn_if_no_thinking(s: &Session) {
    if let Ok(info) = s.client.post("/api/show", &json!({ "model": s.model })) {
        let thinks = info
            .get("capabilities")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|x| x == "thinking"));
        if !thinks {
            eprintln!(
                "warning: model {} does not support thinking output",
                server::store::go_quote(&s.model)
            );
        }
    }
}

fn show(s: &mut Session, line: &str) -> Result<(), String> {
    let args: Vec<&str> = line.split_whitespace().collect();
    let Some(&what) = args.get(1) else {
        eprint!("{USAGE_SHOW}");
        return Ok(());
    };
    let resp = match s.show() {
        Ok(r) => r,
        Err(e) => {
            println!("error: couldn't get model");
            return Err(e.to_string());
        }
    };
    let field = |k: &str| {
        resp.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match what {
        "info" => eprint!("{}", commands::show_info(&resp, false)),
        "license" => match field("license") {
            l if l.is_empty() => println!("No license was specified for this model."),
            l => println!("{l}"),
        },
        "modelfile" => println!("{}", field("modelfile")),
        "parameters" => {
            println!("Model defined parameters:");
            match field("parameters") {
                p if p.is_empty() => {
                    println!("  No additional parameters were specified for this model.")
                }
                p => {
                    for l in p.split('\n') {
                        println!("  {l}");
                    }
                }
            }
            println!();
            if !s.options.is_empty() {
                println!("User defined parameters:");
                let mut keys: Vec<&String> = s.options.keys().collect();
                keys.sort();
                for k in keys {
                    println!("  {k:<30} {}", format::go_option(&s.options[k]));
                }
                println!();
            }
        }
        "system" => {
            if !s.system.is_empty() {
                println!("{}\n", s.system);
            } else if !field("system").is_empty() {
                println!("{}\n", field("system"));
            } else {
                println!("No system message was specified for this model.");
            }
        }
        "template" => match field("template") {
            t if t.is_empty() => println!("No prompt template was specified for this model."),
            t => println!("{t}"),
        },
        other => println!("Unknown command '/show {other}'. Type /? for help"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_typed() {
        assert_eq!(parameter_value("temperature", &["0.7"]), Ok(json!(0.7)));
        assert_eq!(parameter_value("num_ctx", &["4096", "x"]), Ok(json!(4096)));
        assert_eq!(parameter_value("stop", &["a", "b"]), Ok(json!(["a", "b"])));
        assert_eq!(
            parameter_value("bogus", &["1"]),
            Err("unknown parameter 'bogus'".into())
        );
        assert_eq!(
            parameter_value("top_k", &["x"]),
            Err("invalid int value [x]".into())
        );
    }
}

//! The Modelfile language: Ollama's lexer (a rune-by-rune state machine, reproduced
//! quirk for quirk so the same file yields the same model), typed PARAMETERs, the
//! conversion to an `/api/create` request, and rendering back to text.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::create::{CreateRequest, License};
use crate::store::{Digest, Message};

/// A parse or conversion error. `Display`: `(line N): message` when the line is
/// known, else the message (Ollama's texts: `no FROM line`, `unknown parameter 'x'`,
/// `invalid float value [x]`, `unexpected EOF`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelfileError {
    pub line: Option<usize>,
    pub message: String,
}

impl ModelfileError {
    fn at(line: usize, message: impl Into<String>) -> ModelfileError {
        ModelfileError {
            line: Some(line),
            message: message.into(),
        }
    }

    fn msg(message: impl Into<String>) -> ModelfileError {
        ModelfileError {
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ModelfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "(line {line}): {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ModelfileError {}

pub const ERR_INVALID_COMMAND: &str = "command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"";
pub const ERR_INVALID_ROLE: &str =
    "message role must be one of \"system\", \"user\", or \"assistant\"";
pub const ERR_NO_FROM: &str = "no FROM line";
pub const ERR_REQUIRES: &str = "requires must be a valid semver (e.g. 0.14.0)";

/// One instruction of a Modelfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// A model name, a GGUF file or a directory.
    From(String),
    /// `PARAMETER name value`; `name` is as written (validated on conversion).
    Parameter {
        name: String,
        value: String,
    },
    Template(String),
    System(String),
    Adapter(String),
    License(String),
    /// `role` is `system`, `user` or `assistant`.
    Message {
        role: String,
        content: String,
    },
    Requires(String),
    Draft(String),
    Renderer(String),
    Parser(String),
}

/// A parsed Modelfile: its instructions in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modelfile {
    pub instructions: Vec<Instruction>,
    /// Line of each instruction (empty for a Modelfile built in code).
    lines: Vec<usize>,
}

impl Modelfile {
    pub fn new(instructions: Vec<Instruction>) -> Modelfile {
        Modelfile {
            instructions,
            lines: Vec::new(),
        }
    }

    /// Parses Modelfile bytes: a UTF-8 or UTF-16 (LE/BE) BOM is honoured and
    /// stripped; without one the bytes are UTF-8 (invalid sequences become U+FFFD).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Modelfile, ModelfileError> {
        Modelfile::parse(&decode(bytes))
    }

    /// Parses Modelfile text with Ollama's rules (see the module docs).
    pub fn parse(input: &str) -> Result<Modelfile, ModelfileError> {
        Parser::default().run(input)
    }

    /// The line an instruction came from, when parsed from text.
    pub fn line_of(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied()
    }

    /// Turns the Modelfile into an `/api/create` request as `ollama create` does.
    /// Relative paths in FROM/ADAPTER are resolved against `base_dir` (the
    /// Modelfile's directory), `~` and `~user` expanded. A FROM that names an
    /// existing file or directory is hashed and listed in `files` (keys are file
    /// names); otherwise it is a model name (`from`). The local files to upload as
    /// blobs are returned alongside.
    pub fn to_create_request(&self, base_dir: &Path) -> Result<PreparedCreate, ModelfileError> {
        let mut out = PreparedCreate::default();
        let req = &mut out.request;
        let mut params = Map::new();
        let mut messages = Vec::new();
        let mut licenses = Vec::new();
        for (i, ins) in self.instructions.iter().enumerate() {
            let line_err = |e: ModelfileError| match (e.line, self.line_of(i)) {
                (None, Some(l)) => ModelfileError::at(l, e.message),
                _ => e,
            };
            match ins {
                Instruction::From(arg) => {
                    let path = expand_path(arg, base_dir).map_err(line_err)?;
                    match local_files(&path).map_err(line_err)? {
                        None => req.from = arg.clone(),
                        Some(files) => {
                            let map = req.files.get_or_insert_with(BTreeMap::new);
                            add_files(map, &mut out.uploads, files).map_err(line_err)?;
                        }
                    }
                }
                Instruction::Adapter(arg) => {
                    let path = expand_path(arg, base_dir).map_err(line_err)?;
                    let files = local_files(&path).map_err(line_err)?.ok_or_else(|| {
                        line_err(ModelfileError::msg(format!(
                            "stat {}: no such file or directory",
                            path.display()
                        )))
                    })?;
                    let mut map = BTreeMap::new();
                    add_files(&mut map, &mut out.uploads, files).map_err(line_err)?;
                    req.adapters = Some(map);
                }
                Instruction::Draft(_) => {
                    return Err(line_err(ModelfileError::msg(
                        "DRAFT (speculative decoding) is not supported yet",
                    )))
                }
                Instruction::Template(t) => req.template = t.clone(),
                Instruction::System(s) => req.system = s.clone(),
                Instruction::License(l) => licenses.push(l.clone()),
                Instruction::Renderer(r) => req.renderer = r.clone(),
                Instruction::Parser(p) => req.parser = p.clone(),
                Instruction::Requires(r) => {
                    req.requires = validate_requires(r).map_err(line_err)?;
                }
                Instruction::Message { role, content } => {
                    messages.push(Message::new(role, content));
                }
                Instruction::Parameter { name, value } => {
                    if DEPRECATED_PARAMETERS.contains(&name.as_str()) {
                        out.warnings
                            .push(format!("warning: parameter {name} is deprecated"));
                        continue;
                    }
                    let v = parse_parameter(name, value).map_err(line_err)?;
                    match (params.get_mut(name.as_str()), v) {
                        (Some(Value::Array(list)), Value::Array(more)) => list.extend(more),
                        (_, v) => {
                            params.insert(name.clone(), v);
                        }
                    }
                }
            }
        }
        if !params.is_empty() {
            req.parameters = Some(params);
        }
        req.messages = messages;
        if !licenses.is_empty() {
            req.license = Some(License::Many(licenses));
        }
        Ok(out)
    }
}

/// An `/api/create` request built from a Modelfile, with the local files its
/// `files`/`adapters` digests refer to (to upload with `POST /api/blobs/:digest`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedCreate {
    /// `model` is left empty: the caller sets the target name.
    pub request: CreateRequest,
    pub uploads: Vec<(PathBuf, Digest)>,
    /// Printed by the CLI (`warning: parameter mirostat is deprecated`).
    pub warnings: Vec<String>,
}

// ---- lexer -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Nil,
    Name,
    Value,
    Parameter,
    Message,
    Comment,
}

enum RuneError {
    InvalidCommand,
    UnexpectedEof,
}

/// Pending instruction fields between state transitions.
#[derive(Default)]
struct Parser {
    /// Lowercased keyword, or `parameter` with `param` set.
    command: String,
    param: String,
    role: String,
    buf: String,
    out: Modelfile,
    /// Line where the current instruction started.
    start_line: usize,
}

impl Parser {
    fn run(mut self, input: &str) -> Result<Modelfile, ModelfileError> {
        let mut curr = State::Nil;
        let mut line = 1usize;
        let mut chars = input.chars().peekable();
        while let Some(r) = chars.next() {
            // Errors triggered by a line break belong to the line it ends. A CR LF
            // pair counts once (Ollama counts both, doubling CRLF line numbers).
            let newline = r == '\n' || (r == '\r' && chars.peek() != Some(&'\n'));
            let err_line = line;
            if newline {
                line += 1;
            }
            let (next, out) = match step(r, curr) {
                Ok(x) => x,
                Err(RuneError::InvalidCommand) => {
                    return Err(ModelfileError::at(err_line, ERR_INVALID_COMMAND))
                }
                Err(RuneError::UnexpectedEof) => {
                    return Err(ModelfileError::at(err_line, eof_message(&self.buf)))
                }
            };
            if next != curr {
                let mut next = next;
                match curr {
                    State::Name => {
                        let keyword = self.buf.to_ascii_lowercase();
                        if !is_command(&keyword) {
                            return Err(ModelfileError::at(err_line, ERR_INVALID_COMMAND));
                        }
                        match keyword.as_str() {
                            "parameter" => next = State::Parameter,
                            "message" => next = State::Message,
                            _ => {}
                        }
                        self.command = keyword;
                    }
                    State::Parameter => self.param = std::mem::take(&mut self.buf),
                    State::Message => {
                        if !matches!(self.buf.as_str(), "system" | "user" | "assistant") {
                            return Err(ModelfileError::at(err_line, ERR_INVALID_ROLE));
                        }
                        self.role = std::mem::take(&mut self.buf);
                    }
                    State::Nil => self.start_line = err_line,
                    State::Comment => {}
                    State::Value => match unquote(self.buf.trim()) {
                        // An unfinished quote, or a space inside the value: keep going.
                        Some(_) if r == ' ' || r == '\t' => {
                            self.buf.push(r);
                            continue;
                        }
                        None => {
                            self.buf.push(r);
                            continue;
                        }
                        Some(value) => {
                            let value = value.to_string();
                            self.finish(value);
                        }
                    },
                }
                self.buf.clear();
                curr = next;
            }
            if let Some(c) = out.filter(|&c| is_print(c)) {
                self.buf.push(c);
            }
        }
        match curr {
            State::Nil | State::Comment => {}
            State::Value => {
                let Some(value) = unquote(self.buf.trim()).map(str::to_string) else {
                    return Err(ModelfileError::at(self.start_line, "unexpected EOF"));
                };
                self.finish(value);
            }
            _ => return Err(ModelfileError::at(line, eof_message(&self.buf))),
        }
        if !self
            .out
            .instructions
            .iter()
            .any(|i| matches!(i, Instruction::From(_)))
        {
            return Err(ModelfileError::msg(ERR_NO_FROM));
        }
        Ok(self.out)
    }

    fn finish(&mut self, value: String) {
        let ins = match self.command.as_str() {
            "from" => Instruction::From(value),
            "parameter" => Instruction::Parameter {
                name: std::mem::take(&mut self.param),
                value,
            },
            "template" => Instruction::Template(value),
            "system" => Instruction::System(value),
            "adapter" => Instruction::Adapter(value),
            "license" => Instruction::License(value),
            "message" => Instruction::Message {
                role: std::mem::take(&mut self.role),
                content: value,
            },
            "requires" => Instruction::Requires(value),
            "draft" => Instruction::Draft(value),
            "renderer" => Instruction::Renderer(value),
            "parser" => Instruction::Parser(value),
            other => unreachable!("keyword {other:?} was validated"),
        };
        self.out.instructions.push(ins);
        self.out.lines.push(self.start_line);
    }
}

fn eof_message(buf: &str) -> String {
    if buf.is_empty() {
        "unexpected EOF".to_string()
    } else {
        format!("unexpected EOF: {buf}")
    }
}

/// One rune in one state: the next state and the rune to buffer (`None`: nothing).
fn step(r: char, state: State) -> Result<(State, Option<char>), RuneError> {
    let space = r == ' ' || r == '\t';
    let newline = r == '\r' || r == '\n';
    Ok(match state {
        State::Nil if r == '#' => (State::Comment, None),
        State::Nil if space || newline => (State::Nil, None),
        State::Nil => (State::Name, Some(r)),
        State::Name if r.is_ascii_alphabetic() => (State::Name, Some(r)),
        State::Name if space => (State::Value, None),
        State::Name => return Err(RuneError::InvalidCommand),
        State::Value if newline || space => (State::Nil, Some(r)),
        State::Value => (State::Value, Some(r)),
        State::Parameter if r.is_ascii_alphanumeric() || r == '_' => (State::Parameter, Some(r)),
        State::Message if r.is_ascii_alphabetic() => (State::Message, Some(r)),
        State::Parameter | State::Message if space => (State::Value, None),
        State::Parameter | State::Message => return Err(RuneError::UnexpectedEof),
        State::Comment if newline => (State::Nil, None),
        State::Comment => (State::Comment, None),
    })
}

fn is_command(s: &str) -> bool {
    matches!(
        s,
        "from"
            | "license"
            | "template"
            | "system"
            | "adapter"
            | "draft"
            | "renderer"
            | "parser"
            | "parameter"
            | "message"
            | "requires"
    )
}

/// `"""x"""` → `x`, `"x"` → `x`, bare → itself; `None` for an unterminated quote.
fn unquote(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix("\"\"\"") {
        return (s.len() >= 6)
            .then(|| rest.strip_suffix("\"\"\""))
            .flatten();
    }
    if let Some(rest) = s.strip_prefix('"') {
        return (s.len() >= 2).then(|| rest.strip_suffix('"')).flatten();
    }
    Some(s)
}

/// The value as Ollama writes it back: quoted when it holds a newline or has a
/// leading/trailing space (`"""` when it also holds a `"`), else bare.
pub fn quote(s: &str) -> String {
    if s.contains('\n') || s.starts_with(' ') || s.ends_with(' ') {
        if s.contains('"') {
            return format!("\"\"\"{s}\"\"\"");
        }
        return format!("\"{s}\"");
    }
    s.to_string()
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the
/// ASCII space. Ollama's lexer silently drops every other rune outside quotes'
/// line breaks and tabs (e.g. NBSP, zero-width joiners), so we do too.
fn is_print(c: char) -> bool {
    let n = c as u32;
    if c.is_ascii() {
        return (0x20..0x7f).contains(&n);
    }
    if c.is_control() {
        return false;
    }
    // Space separators other than U+0020, line/paragraph separators, the format
    // characters (Cf), private use and noncharacters.
    !matches!(n,
        0xA0 | 0x1680 | 0x2000..=0x200F | 0x2028..=0x202F | 0x205F..=0x2064
        | 0x2066..=0x206F | 0x3000 | 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F
        | 0x890 | 0x891 | 0x8E2 | 0x180E | 0xFEFF | 0xFFF9..=0xFFFB
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF)
        && (n & 0xFFFE) != 0xFFFE
}

fn decode(bytes: &[u8]) -> String {
    let utf16 = |b: &[u8], le: bool| {
        let units: Vec<u16> = b
            .chunks(2)
            .map(|c| match (c, le) {
                ([a, b], true) => u16::from_le_bytes([*a, *b]),
                ([a, b], false) => u16::from_be_bytes([*a, *b]),
                // A dangling odd byte is not a character.
                _ => 0xFFFD,
            })
            .collect();
        char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{FFFD}'))
            .collect::<String>()
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

// ---- rendering -------------------------------------------------------------

impl fmt::Display for Instruction {
    /// One line per instruction as Ollama prints it (`FROM` is never quoted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instruction::From(v) => write!(f, "FROM {v}"),
            Instruction::Parameter { name, value } => {
                write!(f, "PARAMETER {name} {}", quote(value))
            }
            Instruction::Template(v) => write!(f, "TEMPLATE {}", quote(v)),
            Instruction::System(v) => write!(f, "SYSTEM {}", quote(v)),
            Instruction::Adapter(v) => write!(f, "ADAPTER {}", quote(v)),
            Instruction::License(v) => write!(f, "LICENSE {}", quote(v)),
            Instruction::Message { role, content } => {
                write!(f, "MESSAGE {role} {}", quote(content))
            }
            Instruction::Requires(v) => write!(f, "REQUIRES {}", quote(v)),
            Instruction::Draft(v) => write!(f, "DRAFT {}", quote(v)),
            Instruction::Renderer(v) => write!(f, "RENDERER {}", quote(v)),
            Instruction::Parser(v) => write!(f, "PARSER {}", quote(v)),
        }
    }
}

/// Every instruction on its own line, each followed by `\n`.
impl fmt::Display for Modelfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ins in &self.instructions {
            writeln!(f, "{ins}")?;
        }
        Ok(())
    }
}

// ---- parameters ------------------------------------------------------------

/// The JSON type of a PARAMETER / `options` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    Bool,
    /// `stop`: repeatable, stored as an array of strings.
    StringList,
}

/// Every valid PARAMETER name with its type.
pub const PARAMETERS: &[(&str, ParamType)] = &[
    ("num_ctx", ParamType::Int),
    ("num_batch", ParamType::Int),
    ("num_gpu", ParamType::Int),
    ("main_gpu", ParamType::Int),
    ("use_mmap", ParamType::Bool),
    ("num_thread", ParamType::Int),
    ("draft_num_predict", ParamType::Int),
    ("num_keep", ParamType::Int),
    ("seed", ParamType::Int),
    ("num_predict", ParamType::Int),
    ("top_k", ParamType::Int),
    ("top_p", ParamType::Float),
    ("min_p", ParamType::Float),
    ("typical_p", ParamType::Float),
    ("repeat_last_n", ParamType::Int),
    ("temperature", ParamType::Float),
    ("repeat_penalty", ParamType::Float),
    ("presence_penalty", ParamType::Float),
    ("frequency_penalty", ParamType::Float),
    ("stop", ParamType::StringList),
];

/// Accepted in a Modelfile but dropped with `warning: parameter <name> is deprecated`.
pub const DEPRECATED_PARAMETERS: &[&str] = &[
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

pub fn param_type(name: &str) -> Option<ParamType> {
    PARAMETERS.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
}

/// Types a PARAMETER value (also the REPL's `/set parameter`): ints as JSON
/// integers, floats parsed as f32 (as Ollama does) and stored by their shortest
/// decimal form, bools, `stop` as a one-element array.
pub fn parse_parameter(name: &str, value: &str) -> Result<Value, ModelfileError> {
    let ty = param_type(name)
        .ok_or_else(|| ModelfileError::msg(format!("unknown parameter '{name}'")))?;
    let bad = |kind: &str| ModelfileError::msg(format!("invalid {kind} value [{value}]"));
    Ok(match ty {
        ParamType::Int => Value::from(parse_go_int(value).ok_or_else(|| bad("int"))?),
        ParamType::Float => {
            let f = parse_go_float32(value).ok_or_else(|| bad("float"))?;
            // The shortest decimal of the f32 ("0.7", not 0.699999988079071).
            let f: f64 = f.to_string().parse().map_err(|_| bad("float"))?;
            Value::from(f)
        }
        ParamType::Bool => Value::Bool(parse_go_bool(value).ok_or_else(|| bad("bool"))?),
        ParamType::StringList => Value::Array(vec![Value::String(value.to_string())]),
    })
}

/// `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `strconv.ParseFloat(s, 32)` for decimal input; out-of-range, NaN and infinite
/// values are rejected (they cannot be stored as JSON).
fn parse_go_float32(s: &str) -> Option<f32> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let decimal = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body.bytes().any(|b| b.is_ascii_digit());
    if !decimal {
        return None;
    }
    let f: f32 = s.parse().ok()?;
    f.is_finite().then_some(f)
}

/// `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// REQUIRES: a semver (`v` prefix optional, `x/mod/semver` rules: `1`, `1.2`,
/// `1.2.3[-pre][+build]`); stored without the `v`.
fn validate_requires(s: &str) -> Result<String, ModelfileError> {
    let v = s.strip_prefix('v').unwrap_or(s);
    if is_semver(v) {
        Ok(v.to_string())
    } else {
        Err(ModelfileError::msg(ERR_REQUIRES))
    }
}

fn is_semver(v: &str) -> bool {
    let num = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let ident =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let (core, build) = match v.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| num(p)) {
        return false;
    }
    // Pre-release and build metadata need the full MAJOR.MINOR.PATCH.
    if (pre.is_some() || build.is_some()) && parts.len() != 3 {
        return false;
    }
    if let Some(pre) = pre {
        let ok = pre.split('.').all(|p| {
            ident(p) && (!p.bytes().all(|b| b.is_ascii_digit()) || p == "0" || !p.starts_with('0'))
        });
        if !ok {
            return false;
        }
    }
    build.is_none_or(|b| b.split('.').all(ident))
}

// ---- local files -----------------------------------------------------------

/// Absolute path of a FROM/ADAPTER argument: absolute as is; `~`, `~/x` from
/// `$HOME`; `~user/x` from the passwd database; else relative to `base_dir`.
pub fn expand_path(arg: &str, base_dir: &Path) -> Result<PathBuf, ModelfileError> {
    let p = if Path::new(arg).is_absolute() {
        PathBuf::from(arg)
    } else if let Some(rest) = arg.strip_prefix('~') {
        let (user, tail) = match rest.split_once('/') {
            Some((u, t)) => (u, t),
            None => (rest, ""),
        };
        let home = if user.is_empty() {
            std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
                ModelfileError::msg("failed to get current user: $HOME is not set")
            })?
        } else {
            home_of(user).ok_or_else(|| {
                ModelfileError::msg(format!("failed to find user '{user}': unknown user {user}"))
            })?
        };
        home.join(tail)
    } else {
        base_dir.join(arg)
    };
    Ok(if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    })
}

fn home_of(user: &str) -> Option<PathBuf> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == user).then(|| PathBuf::from(f[5]))
    })
}

/// The files a FROM/ADAPTER path stands for, or `None` when nothing exists there
/// (then FROM is a model name). A directory contributes its `*.gguf` files.
fn local_files(path: &Path) -> Result<Option<Vec<PathBuf>>, ModelfileError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ModelfileError::msg(format!("stat {}: {e}", path.display()))),
    };
    if !meta.is_dir() {
        return Ok(Some(vec![path.to_path_buf()]));
    }
    let entries = fs::read_dir(path)
        .map_err(|e| ModelfileError::msg(format!("read {}: {e}", path.display())))?;
    let mut gguf = Vec::new();
    let mut other_weights = false;
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !p.is_file() {
            continue;
        }
        if name.ends_with(".gguf") {
            gguf.push(p);
        } else if name.ends_with(".safetensors") || name.ends_with(".pth") || name.ends_with(".bin")
        {
            other_weights = true;
        }
    }
    if gguf.is_empty() {
        return Err(ModelfileError::msg(if other_weights {
            "converting safetensors/PyTorch weights is not supported yet; convert the model to GGUF first"
        } else {
            "no Modelfile or safetensors files found"
        }));
    }
    gguf.sort();
    Ok(Some(gguf))
}

fn add_files(
    map: &mut BTreeMap<String, String>,
    uploads: &mut Vec<(PathBuf, Digest)>,
    files: Vec<PathBuf>,
) -> Result<(), ModelfileError> {
    for path in files {
        let real = fs::canonicalize(&path)
            .map_err(|e| ModelfileError::msg(format!("{}: {e}", path.display())))?;
        let f = fs::File::open(&real)
            .map_err(|e| ModelfileError::msg(format!("open {}: {e}", real.display())))?;
        let (digest, _) = Digest::of_reader(f)
            .map_err(|e| ModelfileError::msg(format!("read {}: {e}", real.display())))?;
        let key = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(existing) = map.get(&key) {
            if *existing != digest.to_string() {
                return Err(ModelfileError::msg(format!(
                    "two different files are named {key}"
                )));
            }
            continue;
        }
        map.insert(key, digest.to_string());
        uploads.push((real, digest));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_basics() {
        let m = Modelfile::parse("from x\n  # c\n\tSyStEm  hi there  \n").unwrap();
        assert_eq!(
            m.instructions,
            [
                Instruction::From("x".into()),
                Instruction::System("hi there".into())
            ]
        );
        assert_eq!((m.line_of(0), m.line_of(1)), (Some(1), Some(3)));
    }

    #[test]
    fn print_filter_matches_go() {
        assert!(
            is_print('a') && is_print(' ') && is_print('é') && is_print('👋') && is_print('你')
        );
        assert!(!is_print('\u{200D}') && !is_print('\u{A0}') && !is_print('\u{7f}'));
        assert!(!is_print('\u{FEFF}') && !is_print('\u{E000}'));
    }

    #[test]
    fn semver() {
        for ok in ["0.14.0", "1", "1.2", "1.2.3-rc.1+b.5", "10.0.0"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "", "01.2.3", "1.2.3.4", "1.2-rc", "x", "1..2", "1.2.3-01", "1.2.3+",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_go_int("-42"), Some(-42));
        assert_eq!(parse_go_int("4_096"), None);
        assert_eq!(parse_go_int("0x10"), None);
        assert_eq!(parse_go_float32("1e3"), Some(1000.0));
        assert_eq!(parse_go_float32("inf"), None);
        assert_eq!(parse_go_float32("1e39"), None);
        assert_eq!(parse_go_float32("."), None);
    }
}

//! Go `text/template`'s builtin functions and Ollama's template functions (`json`,
//! `currentDate`, `yesterdayDate`, `toTypeScriptType`). `and`/`or` short-circuit and live
//! in the executor.

use std::fmt::Write as _;
use std::rc::Rc;

use super::lex::go_quote;
use super::value::{
    format_float_e, format_float_f, format_float_g, ListKind, MapKind, Stringer, Value,
};

/// Every function a template may call (checked at parse time, like Go).
pub const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "call",
    "json",
    "currentDate",
    "yesterdayDate",
    "toTypeScriptType",
];

pub fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

pub enum CallError {
    /// An argument-count or argument-type error (reported as is).
    Args(String),
    /// The function failed (reported as `error calling NAME: ...`).
    Failed(String),
}

fn arity(name: &str, args: &[Value], want: usize, at_least: bool) -> Result<(), CallError> {
    let ok = if at_least {
        args.len() >= want
    } else {
        args.len() == want
    };
    if ok {
        return Ok(());
    }
    Err(CallError::Args(format!(
        "wrong number of args for {name}: want {}{want} got {}",
        if at_least { "at least " } else { "" },
        args.len()
    )))
}

fn fail<T>(msg: impl Into<String>) -> Result<T, CallError> {
    Err(CallError::Failed(msg.into()))
}

pub fn call(name: &str, args: Vec<Value>) -> Result<Value, CallError> {
    match name {
        "not" => {
            arity(name, &args, 1, false)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            arity(name, &args, 1, false)?;
            length(&args[0])
        }
        "index" => {
            arity(name, &args, 1, true)?;
            index(&args[0], &args[1..])
        }
        "slice" => {
            arity(name, &args, 1, true)?;
            slice(&args[0], &args[1..])
        }
        "eq" => {
            arity(name, &args, 1, true)?;
            eq(&args[0], &args[1..]).map(Value::Bool)
        }
        "ne" => {
            arity(name, &args, 2, false)?;
            eq(&args[0], &args[1..]).map(|b| Value::Bool(!b))
        }
        "lt" => {
            arity(name, &args, 2, false)?;
            lt(&args[0], &args[1]).map(Value::Bool)
        }
        "le" => {
            arity(name, &args, 2, false)?;
            le(&args[0], &args[1]).map(Value::Bool)
        }
        "gt" => {
            arity(name, &args, 2, false)?;
            le(&args[0], &args[1]).map(|b| Value::Bool(!b))
        }
        "ge" => {
            arity(name, &args, 2, false)?;
            lt(&args[0], &args[1]).map(|b| Value::Bool(!b))
        }
        "print" => Ok(Value::str(&sprint(&args))),
        "println" => Ok(Value::str(&sprintln(&args))),
        "printf" => {
            arity(name, &args, 1, true)?;
            let Value::Str(f) = &args[0] else {
                return Err(CallError::Args(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                )));
            };
            Ok(Value::str(&sprintf(f, &args[1..])))
        }
        "html" => Ok(Value::str(&html_escape(&eval_args(&args)))),
        "js" => Ok(Value::str(&js_escape(&eval_args(&args)))),
        "urlquery" => Ok(Value::str(&query_escape(&eval_args(&args)))),
        "call" => {
            arity(name, &args, 1, true)?;
            match &args[0] {
                Value::Nil => fail("call of nil"),
                v => fail(format!("non-function of type {}", v.type_name())),
            }
        }
        "json" => {
            arity(name, &args, 1, false)?;
            Ok(Value::str(&args[0].marshal_json()))
        }
        "currentDate" | "yesterdayDate" => {
            // The format argument is accepted and ignored, as in Ollama.
            for a in &args {
                if !matches!(a, Value::Str(_)) {
                    return Err(CallError::Args(format!(
                        "wrong type for value; expected string; got {}",
                        a.type_name()
                    )));
                }
            }
            let days_back = i64::from(name == "yesterdayDate");
            Ok(Value::str(&date_string(days_back)))
        }
        "toTypeScriptType" => {
            arity(name, &args, 1, false)?;
            Ok(Value::str(&to_typescript_type(&args[0])))
        }
        other => fail(format!("{} is not a defined function", go_quote(other))),
    }
}

fn length(v: &Value) -> Result<Value, CallError> {
    match v {
        Value::Nil => fail("len of nil pointer"),
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.items.len() as i64)),
        Value::Map(m) if m.kind != MapKind::Struct => Ok(Value::Int(m.entries.len() as i64)),
        other => fail(format!("len of type {}", other.type_name())),
    }
}

fn index_arg(v: &Value, cap: usize) -> Result<usize, CallError> {
    let x = match v {
        Value::Int(i) => *i,
        Value::Nil => return fail("cannot index slice/array with nil"),
        other => {
            return fail(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return fail(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(item: &Value, idx: &[Value]) -> Result<Value, CallError> {
    let mut item = item.clone();
    if let Value::Nil = item {
        return fail("index of untyped nil");
    }
    for i in idx {
        item = match &item {
            Value::List(l) => {
                let x = index_arg(i, l.items.len())?;
                match l.items.get(x) {
                    Some(v) => v.clone(),
                    None => return fail("reflect: slice index out of range"),
                }
            }
            Value::Str(s) => {
                let x = index_arg(i, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => return fail("reflect: string index out of range"),
                }
            }
            Value::Map(m) if m.kind != MapKind::Struct => match i {
                Value::Str(k) => m.get(k).cloned().unwrap_or(Value::Nil),
                Value::Nil => return fail("value is nil; should be of type string"),
                other => {
                    return fail(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ))
                }
            },
            Value::Nil => return fail("index of nil pointer"),
            other => return fail(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice_bounds(len: usize, idx: &[Value]) -> Result<(usize, usize), CallError> {
    let mut bounds = [0usize, len, len];
    for (k, i) in idx.iter().enumerate() {
        bounds[k] = index_arg(i, len)?;
    }
    if bounds[0] > bounds[1] {
        return fail(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    if idx.len() == 3 && bounds[1] > bounds[2] {
        return fail(format!(
            "invalid slice index: {} > {}",
            bounds[1], bounds[2]
        ));
    }
    Ok((bounds[0], bounds[1]))
}

fn slice(item: &Value, idx: &[Value]) -> Result<Value, CallError> {
    if let Value::Nil = item {
        return fail("slice of untyped nil");
    }
    if idx.len() > 3 {
        return fail(format!("too many slice indexes: {}", idx.len()));
    }
    match item {
        Value::Str(s) => {
            if idx.len() == 3 {
                return fail("cannot 3-index slice a string");
            }
            let (i, j) = slice_bounds(s.len(), idx)?;
            // Go slices bytes; a cut through a character cannot be valid UTF-8 here.
            let bytes = &s.as_bytes()[i..j];
            Ok(Value::Str(Rc::from(
                String::from_utf8_lossy(bytes).as_ref(),
            )))
        }
        Value::List(l) => {
            let (i, j) = slice_bounds(l.items.len(), idx)?;
            Ok(Value::list_of(l.items[i..j].to_vec(), l.kind, false))
        }
        other => fail(format!("can't slice item of type {}", other.type_name())),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        Value::List(_) | Value::Map(_) => Kind::Other,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

fn eq(a: &Value, rest: &[Value]) -> Result<bool, CallError> {
    if rest.is_empty() {
        return fail("missing argument for comparison");
    }
    let ka = kind(a);
    for b in rest {
        let kb = kind(b);
        let truth = if ka != kb {
            if ka != Kind::Invalid && kb != Kind::Invalid {
                return fail(BAD_COMPARISON);
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Nil, Value::Nil) => true,
                (Value::Map(x), Value::Map(y)) if x.pointer && y.pointer => Rc::ptr_eq(x, y),
                _ => {
                    return fail(format!(
                        "non-comparable types {}: {}",
                        a.type_name(),
                        b.type_name()
                    ))
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a: &Value, b: &Value) -> Result<bool, CallError> {
    let (ka, kb) = (kind(a), kind(b));
    if matches!(ka, Kind::Invalid | Kind::Other) || matches!(kb, Kind::Invalid | Kind::Other) {
        return fail(BAD_COMPARISON_TYPE);
    }
    if ka != kb {
        return fail(BAD_COMPARISON);
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x.as_bytes() < y.as_bytes()),
        _ => fail(BAD_COMPARISON_TYPE),
    }
}

fn le(a: &Value, b: &Value) -> Result<bool, CallError> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}

fn fmt_v(v: &Value) -> String {
    let mut s = String::new();
    v.fmt_v(&mut s);
    s
}

/// `fmt.Sprint`: spaces between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        a.fmt_v(&mut out);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands, newline at the end.
fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        a.fmt_v(&mut out);
    }
    out.push('\n');
    out
}

/// text/template's `evalArgs`: a lone string as is, otherwise `fmt.Sprint`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    sprint(args)
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Today's (or an earlier) date as YYYY-MM-DD, in UTC.
pub fn date_string(days_back: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400) - days_back);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Ollama's `ToolProperty.ToTypeScriptType`; "any" for anything that is not a tool
/// property.
pub fn to_typescript_type(v: &Value) -> String {
    let Value::Map(m) = v else {
        return "any".into();
    };
    if m.type_name != "api.ToolProperty" {
        return "any".into();
    }
    if let Some(Value::List(any_of)) = m.get("AnyOf") {
        if !any_of.items.is_empty() {
            return any_of
                .items
                .iter()
                .map(to_typescript_type)
                .collect::<Vec<_>>()
                .join(" | ");
        }
    }
    let types: Vec<String> = match m.get("Type") {
        Some(Value::List(l)) => l
            .items
            .iter()
            .map(|t| match t {
                Value::Str(s) => s.to_string(),
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return "any".into();
    }
    types
        .iter()
        .map(|t| {
            match t.as_str() {
                "string" => "string",
                "number" | "integer" => "number",
                "boolean" => "boolean",
                "array" => "any[]",
                "object" => "Record<string, any>",
                "null" => "null",
                _ => "any",
            }
            .to_string()
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[derive(Default, Clone, Copy)]
struct Flags {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
}

/// `fmt.Sprintf` for the verbs templates use (`%v %s %q %d %x %X %o %b %c %U %e %f %g %t
/// %%`), with flags, width and precision.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut fl = Flags::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => fl.minus = true,
                '+' => fl.plus = true,
                '#' => fl.sharp = true,
                ' ' => fl.space = true,
                '0' => fl.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut width: Option<usize> = None;
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            match args.get(argi) {
                Some(Value::Int(w)) => {
                    if *w < 0 {
                        fl.minus = true;
                    }
                    width = Some(w.unsigned_abs().min(1 << 16) as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let mut w = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                w.push(d);
                chars.next();
            }
            if !w.is_empty() {
                width = w.parse::<usize>().ok().map(|w| w.min(1 << 16));
            }
        }
        let mut prec: Option<usize> = None;
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                match args.get(argi) {
                    Some(Value::Int(p)) if *p >= 0 => prec = Some((*p as usize).min(1 << 16)),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let mut p = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    p.push(d);
                    chars.next();
                }
                prec = Some(p.parse::<usize>().unwrap_or(0).min(1 << 16));
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let body = format_verb(verb, arg, fl, prec);
        let padded = pad(&body, width, fl, verb, arg);
        out.push_str(&padded);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", a.type_name(), fmt_v(a));
        }
        out.push(')');
    }
    out
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", a.type_name(), fmt_v(a)),
    }
}

fn sign(neg: bool, fl: Flags) -> &'static str {
    if neg {
        "-"
    } else if fl.plus {
        "+"
    } else if fl.space {
        " "
    } else {
        ""
    }
}

fn format_int(verb: char, i: i64, fl: Flags, prec: Option<usize>) -> Option<String> {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'd' | 'v' => (u.to_string(), ""),
        'x' => (format!("{u:x}"), if fl.sharp { "0x" } else { "" }),
        'X' => (format!("{u:X}"), if fl.sharp { "0X" } else { "" }),
        'o' => (format!("{u:o}"), if fl.sharp { "0" } else { "" }),
        'O' => (format!("{u:o}"), "0o"),
        'b' => (format!("{u:b}"), ""),
        'c' => {
            return Some(
                u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
                    .to_string(),
            )
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let q = go_quote(&c.to_string());
            let inner = &q[1..q.len() - 1];
            let inner = if inner == "\\\"" { "\"" } else { inner };
            let inner = if c == '\'' { "\\'" } else { inner };
            return Some(format!("'{inner}'"));
        }
        'U' => {
            let s = format!("U+{u:04X}");
            return Some(if fl.sharp {
                let c = u32::try_from(i).ok().and_then(char::from_u32);
                match c {
                    Some(c) => format!("{s} '{c}'"),
                    None => s,
                }
            } else {
                s
            });
        }
        _ => return None,
    };
    let mut digits = digits;
    if let Some(p) = prec {
        if p == 0 && u == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    Some(format!("{}{prefix}{digits}", sign(neg, fl)))
}

fn format_float(verb: char, f: f64, fl: Flags, prec: Option<usize>) -> Option<String> {
    let s = match verb {
        'v' | 'g' => format_float_g(f, prec, false),
        'G' => format_float_g(f, prec, true),
        'e' => format_float_e(f, Some(prec.unwrap_or(6)), false),
        'E' => format_float_e(f, Some(prec.unwrap_or(6)), true),
        'f' | 'F' => format_float_f(f, Some(prec.unwrap_or(6))),
        _ => return None,
    };
    if !s.starts_with('-') && (fl.plus || fl.space) && !f.is_nan() {
        let sg = if fl.plus { "+" } else { " " };
        if s.starts_with('+') {
            return Some(s);
        }
        return Some(format!("{sg}{s}"));
    }
    Some(s)
}

fn truncate_chars(s: &str, prec: Option<usize>) -> &str {
    match prec {
        Some(p) => match s.char_indices().nth(p) {
            Some((i, _)) => &s[..i],
            None => s,
        },
        None => s,
    }
}

fn format_verb(verb: char, arg: &Value, fl: Flags, prec: Option<usize>) -> String {
    match arg {
        Value::Nil => match verb {
            'v' => "<nil>".into(),
            _ => bad_verb(verb, arg),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => b.to_string(),
            _ => bad_verb(verb, arg),
        },
        Value::Int(i) => format_int(verb, *i, fl, prec).unwrap_or_else(|| bad_verb(verb, arg)),
        Value::Float(f) => format_float(verb, *f, fl, prec).unwrap_or_else(|| bad_verb(verb, arg)),
        Value::Str(s) => match verb {
            'v' | 's' => truncate_chars(s, prec).to_string(),
            'q' => {
                if fl.sharp && !s.contains('`') {
                    format!("`{s}`")
                } else {
                    go_quote(truncate_chars(s, prec))
                }
            }
            'x' | 'X' => {
                let mut out = String::new();
                for b in truncate_chars(s, prec).bytes() {
                    if verb == 'x' {
                        let _ = write!(out, "{b:02x}");
                    } else {
                        let _ = write!(out, "{b:02X}");
                    }
                }
                out
            }
            _ => bad_verb(verb, arg),
        },
        Value::List(l) => {
            if matches!(verb, 'v' | 's') && l.kind != ListKind::Plain {
                return fmt_v(arg);
            }
            let mut out = String::from("[");
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&format_verb(verb, item, fl, prec));
            }
            out.push(']');
            out
        }
        Value::Map(m) => {
            if m.stringer != Stringer::None && matches!(verb, 'v' | 's' | 'q') {
                let s = fmt_v(arg);
                return if verb == 'q' { go_quote(&s) } else { s };
            }
            match m.kind {
                MapKind::Struct => {
                    let mut out = String::new();
                    if m.pointer {
                        out.push('&');
                    }
                    out.push('{');
                    for (i, e) in m.entries.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        if fl.plus && verb == 'v' {
                            out.push_str(&e.key);
                            out.push(':');
                        }
                        out.push_str(&format_verb(verb, &e.value, fl, prec));
                    }
                    out.push('}');
                    out
                }
                _ => {
                    let mut out = String::from("map[");
                    let mut entries: Vec<_> = m.entries.iter().collect();
                    entries.sort_by(|a, b| a.key.cmp(&b.key));
                    for (i, e) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        out.push_str(&format_verb(verb, &Value::Str(e.key.clone()), fl, prec));
                        out.push(':');
                        out.push_str(&format_verb(verb, &e.value, fl, prec));
                    }
                    out.push(']');
                    out
                }
            }
        }
    }
}

fn pad(body: &str, width: Option<usize>, fl: Flags, verb: char, arg: &Value) -> String {
    let Some(w) = width else {
        return body.to_string();
    };
    let n = body.chars().count();
    if n >= w {
        return body.to_string();
    }
    let fill = w - n;
    if fl.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    let numeric =
        matches!(arg, Value::Int(_) | Value::Float(_)) && !matches!(verb, 'c' | 'q' | 'U');
    if fl.zero && numeric {
        let (sgn, rest) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), &body[1..]),
            _ => (String::new(), body),
        };
        return format!("{sgn}{}{rest}", "0".repeat(fill));
    }
    if fl.zero && matches!(arg, Value::Str(_)) {
        return format!("{}{body}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            sprintf("%s-%d-%v", &[s("a"), Value::Int(3), Value::Bool(true)]),
            "a-3-true"
        );
        assert_eq!(sprintf("%q", &[s("a\"b\n")]), r#""a\"b\n""#);
        assert_eq!(
            sprintf(
                "%5d|%-5d|%05d",
                &[Value::Int(42), Value::Int(42), Value::Int(-42)]
            ),
            "   42|42   |-0042"
        );
        assert_eq!(
            sprintf(
                "%.2f %e %g",
                &[
                    Value::Float(1.23456),
                    Value::Float(1234.5),
                    Value::Float(1e-7)
                ]
            ),
            "1.23 1.234500e+03 1e-07"
        );
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            sprintf("%d", &[Value::Int(1), s("x")]),
            "1%!(EXTRA string=x)"
        );
        assert_eq!(
            sprintf(
                "%x %X %c %q %%",
                &[Value::Int(255), s("hi"), Value::Int(65), Value::Int(97)]
            ),
            "ff 6869 A 'a' %"
        );
        assert_eq!(
            sprintf("%.3s|%6.2f", &[s("abcdef"), Value::Float(2.5)]),
            "abc|  2.50"
        );
        assert_eq!(
            sprintf("%v", &[Value::list(vec![s("a"), Value::Int(1)])]),
            "[a 1]"
        );
    }

    #[test]
    fn print_spacing() {
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                s("a"),
                Value::Int(3),
                s("b"),
                s("c")
            ]),
            "1 2a3bc"
        );
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }

    #[test]
    fn escapes() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"<=>\n"),
            "a\\'b\\\"\\u003C\\u003D\\u003E\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(date_string(0).len(), 10);
    }

    #[test]
    fn comparisons() {
        assert!(matches!(eq(&s("a"), &[s("b"), s("a")]), Ok(true)));
        assert!(
            matches!(eq(&Value::Int(1), &[Value::Float(1.0)]), Err(CallError::Failed(m)) if m == BAD_COMPARISON)
        );
        assert!(matches!(eq(&Value::Nil, &[s("a")]), Ok(false)));
        assert!(matches!(lt(&Value::Int(1), &Value::Int(2)), Ok(true)));
        assert!(matches!(lt(&s("b"), &s("a")), Ok(false)));
        assert!(lt(&Value::Bool(true), &Value::Bool(false)).is_err());
    }
}

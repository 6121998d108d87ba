//! Dynamic values for the Go template executor.
//!
//! Go templates run on reflected Go values; Ollama hands them a `map[string]any` holding
//! strings, bools, structs (messages, tools), maps (tool arguments) and slices. This type
//! models just enough of that: the kind (for truthiness, comparisons, `len`, ranging), how
//! `fmt` prints it (`%v`, including types with a `String()` method) and how
//! `encoding/json` marshals it (struct field names and `omitempty`, sorted map keys).

use std::fmt::Write as _;
use std::rc::Rc;

/// A template value. Cheap to clone (containers are reference counted).
#[derive(Clone, Debug)]
pub enum Value {
    /// Go's nil interface / missing value. Prints as `<no value>` from an action.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
}

/// How a list prints with `%v` (Go types with a `String()` method print differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// A plain slice: `[a b c]`.
    Plain,
    /// A slice type whose `String()` is its JSON (Ollama's tool list).
    Json,
    /// Ollama's `PropertyType`: one element prints as itself, more as `[a b]`; one element
    /// marshals to a JSON string.
    PropertyType,
}

#[derive(Debug)]
pub struct List {
    pub items: Vec<Value>,
    pub kind: ListKind,
    /// A nil slice: behaves as empty but marshals to `null`.
    pub nil: bool,
}

/// What kind of Go value a [`Map`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// A Go struct: a missing field is an error; marshals in field order.
    Struct,
    /// A Go map: a missing key is the zero value (nil); ranges and marshals in key order.
    Map,
    /// An insertion-ordered map (Ollama's ordered property maps): marshals in insertion
    /// order, otherwise like [`MapKind::Map`].
    Ordered,
}

/// How a map/struct prints with `%v`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stringer {
    /// Go's default formatting (`map[k:v]`, `{a b}`).
    None,
    /// `String()` returns the JSON encoding.
    Json,
    /// `String()` returns the JSON encoding, `{}` when nil.
    JsonOrEmptyObject,
}

#[derive(Debug)]
pub struct Entry {
    pub key: Rc<str>,
    pub value: Value,
    /// JSON object key for struct fields (`None`: the field name); ignored for maps.
    pub json_name: Option<&'static str>,
    /// `omitempty` for struct fields.
    pub omitempty: bool,
}

#[derive(Debug)]
pub struct Map {
    pub kind: MapKind,
    pub entries: Vec<Entry>,
    pub stringer: Stringer,
    /// The Go type name used in error messages (`*template.templateMessage`).
    pub type_name: &'static str,
    /// A nil map: behaves as empty but marshals to `null`.
    pub nil: bool,
    /// A pointer to a struct: prints as `&{...}`.
    pub pointer: bool,
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|e| &*e.key == key)
            .map(|e| &e.value)
    }

    /// Entries in Go's iteration order: sorted keys for Go maps, declaration order for
    /// structs and ordered maps.
    pub fn sorted_entries(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        if self.kind == MapKind::Map {
            v.sort_by(|a, b| a.key.cmp(&b.key));
        }
        v
    }
}

/// Builds struct values field by field.
pub struct StructBuilder {
    map: Map,
}

impl StructBuilder {
    pub fn new(type_name: &'static str) -> StructBuilder {
        StructBuilder {
            map: Map {
                kind: MapKind::Struct,
                entries: Vec::new(),
                stringer: Stringer::None,
                type_name,
                nil: false,
                pointer: type_name.starts_with('*'),
            },
        }
    }

    /// A field marshalled under its own name.
    pub fn field(mut self, name: &'static str, value: Value) -> Self {
        self.map.entries.push(Entry {
            key: Rc::from(name),
            value,
            json_name: None,
            omitempty: false,
        });
        self
    }

    /// A field with a JSON tag.
    pub fn json_field(
        mut self,
        name: &'static str,
        json: &'static str,
        omitempty: bool,
        value: Value,
    ) -> Self {
        self.map.entries.push(Entry {
            key: Rc::from(name),
            value,
            json_name: Some(json),
            omitempty,
        });
        self
    }

    pub fn stringer(mut self, s: Stringer) -> Self {
        self.map.stringer = s;
        self
    }

    pub fn build(self) -> Value {
        Value::Map(Rc::new(self.map))
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(List {
            items,
            kind: ListKind::Plain,
            nil: false,
        }))
    }

    pub fn list_of(items: Vec<Value>, kind: ListKind, nil: bool) -> Value {
        Value::List(Rc::new(List { items, kind, nil }))
    }

    /// A Go map (`map[string]T`) from key/value pairs.
    pub fn map(kind: MapKind, entries: Vec<(String, Value)>, stringer: Stringer) -> Value {
        Value::Map(Rc::new(Map {
            kind,
            entries: entries
                .into_iter()
                .map(|(k, v)| Entry {
                    key: Rc::from(k.as_str()),
                    value: v,
                    json_name: None,
                    omitempty: false,
                })
                .collect(),
            stringer,
            type_name: "map[string]interface {}",
            nil: false,
            pointer: false,
        }))
    }

    /// Converts JSON the way Go's `json.Unmarshal` into `any` does: numbers become
    /// float64, objects `map[string]any` (key-sorted iteration), arrays `[]any`.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::map(
                MapKind::Map,
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
                Stringer::None,
            ),
        }
    }

    /// Go's truthiness (`if`, `with`, `and`, `or`, `not`).
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => m.kind == MapKind::Struct || !m.entries.is_empty(),
        }
    }

    /// The Go type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(l) => match l.kind {
                ListKind::Plain => "[]interface {}",
                ListKind::Json => "template.templateTools",
                ListKind::PropertyType => "api.PropertyType",
            },
            Value::Map(m) => m.type_name,
        }
    }

    /// How an action prints a value (text/template's `printValue`): nil is `<no value>`,
    /// everything else as `fmt.Fprint` would.
    pub fn print_action(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<no value>"),
            v => v.fmt_v(out),
        }
    }

    /// Go's `%v` formatting.
    pub fn fmt_v(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float_g(*f, None, false)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => match l.kind {
                ListKind::Json => self.marshal_json_into(out),
                ListKind::PropertyType if l.items.len() == 1 => l.items[0].fmt_v(out),
                ListKind::PropertyType if l.items.is_empty() => {}
                _ => {
                    out.push('[');
                    for (i, item) in l.items.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        item.fmt_v(out);
                    }
                    out.push(']');
                }
            },
            Value::Map(m) => match m.stringer {
                Stringer::Json => self.marshal_json_into(out),
                Stringer::JsonOrEmptyObject => {
                    if m.nil {
                        out.push_str("{}")
                    } else {
                        self.marshal_json_into(out)
                    }
                }
                Stringer::None => match m.kind {
                    MapKind::Struct => {
                        // (fmt prints nested pointers as addresses; there are none
                        // here, so they print like top-level ones.)
                        if m.pointer {
                            out.push('&');
                        }
                        out.push('{');
                        for (i, e) in m.entries.iter().enumerate() {
                            if i > 0 {
                                out.push(' ');
                            }
                            e.value.fmt_v(out);
                        }
                        out.push('}');
                    }
                    MapKind::Map | MapKind::Ordered => {
                        out.push_str("map[");
                        let mut entries: Vec<&Entry> = m.entries.iter().collect();
                        entries.sort_by(|a, b| a.key.cmp(&b.key));
                        for (i, e) in entries.iter().enumerate() {
                            if i > 0 {
                                out.push(' ');
                            }
                            out.push_str(&e.key);
                            out.push(':');
                            e.value.fmt_v(out);
                        }
                        out.push(']');
                    }
                },
            },
        }
    }

    /// `encoding/json`'s `Marshal` (HTML-safe escaping, sorted map keys, struct field
    /// order and tags). Values that cannot be marshalled (NaN, infinities) make Go return
    /// an error; Ollama's `json` function then yields an empty string, and so does this.
    pub fn marshal_json(&self) -> String {
        let mut out = String::new();
        if self.marshal(&mut out).is_err() {
            return String::new();
        }
        out
    }

    fn marshal_json_into(&self, out: &mut String) {
        out.push_str(&self.marshal_json());
    }

    fn marshal(&self, out: &mut String) -> Result<(), ()> {
        match self {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&json_float(*f).ok_or(())?),
            Value::Str(s) => json_string(s, out),
            Value::List(l) => {
                if l.nil {
                    out.push_str("null");
                } else if l.kind == ListKind::PropertyType && l.items.len() == 1 {
                    l.items[0].marshal(out)?;
                } else {
                    out.push('[');
                    for (i, item) in l.items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        item.marshal(out)?;
                    }
                    out.push(']');
                }
            }
            Value::Map(m) => {
                if m.nil {
                    out.push_str("null");
                    return Ok(());
                }
                out.push('{');
                let mut first = true;
                match m.kind {
                    MapKind::Struct => {
                        for e in &m.entries {
                            if e.omitempty && is_empty_value(&e.value) {
                                continue;
                            }
                            if !first {
                                out.push(',');
                            }
                            first = false;
                            json_string(e.json_name.unwrap_or(&e.key), out);
                            out.push(':');
                            e.value.marshal(out)?;
                        }
                    }
                    MapKind::Map | MapKind::Ordered => {
                        for e in m.sorted_entries() {
                            if !first {
                                out.push(',');
                            }
                            first = false;
                            json_string(&e.key, out);
                            out.push(':');
                            e.value.marshal(out)?;
                        }
                    }
                }
                out.push('}');
            }
        }
        Ok(())
    }
}

/// `omitempty`: false, 0, "", nil, and empty slices/maps are left out.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => s.is_empty(),
        Value::List(l) => l.items.is_empty(),
        Value::Map(m) => m.kind != MapKind::Struct && (m.nil || m.entries.is_empty()),
    }
}

/// Go `encoding/json` string encoding (HTML-safe: `<`, `>`, `&` as `\u003c`...).
pub fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go `encoding/json` float64 encoding; `None` for NaN and infinities.
pub fn json_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format_float_e(f, None, false);
        // Go trims the exponent's leading zero: e-07 -> e-7.
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            let mut t = s[..n - 2].to_string();
            t.push(b[n - 1] as char);
            return Some(t);
        }
        Some(s)
    } else {
        Some(format_float_f(f, None))
    }
}

/// The shortest decimal digits of `f` (no sign) and the decimal point position: the value
/// is `0.d1d2d3... * 10^dp`.
fn shortest_digits(f: f64) -> (Vec<u8>, i32) {
    if f == 0.0 {
        return (vec![b'0'], 1);
    }
    // Rust's `{:e}` prints the shortest round-tripping digits, like strconv with -1.
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(|b| b.is_ascii_digit()).collect();
    (digits, exp + 1)
}

/// Digits of `f` rounded to `n` significant digits (n >= 1), with the decimal point position.
fn rounded_digits(f: f64, n: usize) -> (Vec<u8>, i32) {
    if f == 0.0 {
        return (vec![b'0'; n], 1);
    }
    let s = format!("{:.*e}", n - 1, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(|b| b.is_ascii_digit()).collect();
    (digits, exp + 1)
}

fn push_exp(out: &mut String, exp: i32, upper: bool) {
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    let _ = write!(out, "{a}");
}

/// strconv 'e' format; `prec` None = shortest.
pub fn format_float_e(f: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = non_finite(f) {
        return s;
    }
    let (digits, dp) = match prec {
        None => shortest_digits(f),
        Some(p) => rounded_digits(f, p + 1),
    };
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    out.push(digits[0] as char);
    if digits.len() > 1 {
        out.push('.');
        for &d in &digits[1..] {
            out.push(d as char);
        }
    }
    let exp = if f == 0.0 { 0 } else { dp - 1 };
    push_exp(&mut out, exp, upper);
    out
}

/// strconv 'f' format; `prec` None = shortest.
pub fn format_float_f(f: f64, prec: Option<usize>) -> String {
    if let Some(s) = non_finite(f) {
        return s;
    }
    match prec {
        Some(p) => {
            let s = format!("{:.*}", p, f.abs());
            if f.is_sign_negative() {
                format!("-{s}")
            } else {
                s
            }
        }
        None => {
            let (digits, dp) = shortest_digits(f);
            let mut out = String::new();
            if f.is_sign_negative() {
                out.push('-');
            }
            fmt_f_digits(&mut out, &digits, dp, None);
            out
        }
    }
}

/// Writes digits with the decimal point at `dp`; `frac` = digits after the point (None:
/// as many as there are).
fn fmt_f_digits(out: &mut String, digits: &[u8], dp: i32, frac: Option<usize>) {
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(*digits.get(i).unwrap_or(&b'0') as char);
        }
    } else {
        out.push('0');
    }
    let nfrac = match frac {
        Some(n) => n,
        None => (digits.len() as i32 - dp).max(0) as usize,
    };
    if nfrac > 0 {
        out.push('.');
        for i in 0..nfrac {
            let idx = dp + i as i32;
            let d = if idx < 0 {
                b'0'
            } else {
                *digits.get(idx as usize).unwrap_or(&b'0')
            };
            out.push(d as char);
        }
    }
}

fn non_finite(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

/// strconv 'g' format (`%v` and `%g` of floats); `prec` None = shortest.
pub fn format_float_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = non_finite(f) {
        return s;
    }
    let (digits, dp, eprec) = match prec {
        None => {
            let (d, dp) = shortest_digits(f);
            (d, dp, 6)
        }
        Some(p) => {
            let p = p.max(1);
            let (mut d, dp) = rounded_digits(f, p);
            // %g drops trailing zeros.
            while d.len() > 1 && d.last() == Some(&b'0') {
                d.pop();
            }
            let mut eprec = p as i32;
            if eprec > d.len() as i32 && d.len() as i32 >= dp {
                eprec = d.len() as i32;
            }
            (d, dp, eprec)
        }
    };
    let exp = if f == 0.0 { 0 } else { dp - 1 };
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push(digits[0] as char);
        if digits.len() > 1 {
            out.push('.');
            for &d in &digits[1..] {
                out.push(d as char);
            }
        }
        push_exp(&mut out, exp, upper);
    } else {
        let dp = if f == 0.0 { 1 } else { dp };
        fmt_f_digits(&mut out, &digits, dp, None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats() {
        assert_eq!(format_float_g(5.0, None, false), "5");
        assert_eq!(format_float_g(123456.0, None, false), "123456");
        assert_eq!(format_float_g(1234567.0, None, false), "1.234567e+06");
        assert_eq!(format_float_g(0.0001, None, false), "0.0001");
        assert_eq!(format_float_g(0.00001, None, false), "1e-05");
        assert_eq!(format_float_g(-2.5, None, false), "-2.5");
        assert_eq!(format_float_g(0.0, None, false), "0");
        assert_eq!(format_float_g(1e100, None, false), "1e+100");
        assert_eq!(json_float(5.0).unwrap(), "5");
        assert_eq!(json_float(1234567.0).unwrap(), "1234567");
        assert_eq!(json_float(1e21).unwrap(), "1e+21");
        assert_eq!(json_float(1e-7).unwrap(), "1e-7");
        assert_eq!(json_float(0.5).unwrap(), "0.5");
        assert_eq!(json_float(-0.000001).unwrap(), "-0.000001");
        assert!(json_float(f64::NAN).is_none());
        assert_eq!(format_float_f(1.23456, Some(2)), "1.23");
        assert_eq!(format_float_e(1234.5, Some(2), false), "1.23e+03");
        assert_eq!(format_float_g(1234.5678, Some(3), false), "1.23e+03");
        assert_eq!(format_float_g(0.5, Some(3), false), "0.5");
        assert_eq!(format_float_g(100.0, Some(3), false), "100");
    }

    #[test]
    fn go_json_escaping() {
        let mut s = String::new();
        json_string("a<b>&\"\\\n\u{1}é\u{2028}", &mut s);
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001é\u2028""#);
    }

    #[test]
    fn maps_sort_and_structs_keep_order() {
        let m = Value::map(
            MapKind::Map,
            vec![("b".into(), Value::Int(1)), ("a".into(), Value::str("x"))],
            Stringer::None,
        );
        assert_eq!(m.marshal_json(), r#"{"a":"x","b":1}"#);
        let mut s = String::new();
        m.fmt_v(&mut s);
        assert_eq!(s, "map[a:x b:1]");
        let st = StructBuilder::new("T")
            .json_field("Z", "z", false, Value::Int(1))
            .json_field("A", "a", true, Value::str(""))
            .build();
        assert_eq!(st.marshal_json(), r#"{"z":1}"#);
    }
}

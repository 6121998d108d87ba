//! JSON Schema → [`Grammar`], following llama.cpp's `json-schema-to-grammar` (which is what
//! Ollama runs): properties in schema order, required ones first, optional ones after in
//! order, no additional properties unless `additionalProperties` allows them; `oneOf` is
//! treated as `anyOf`. The generated language is always a subset of the schema's instances;
//! keywords that would change validity and cannot be enforced are refused with an error
//! instead of being ignored.

use super::json::{self, Prims};
use super::value::Json;
use super::{regex, Builder, ByteSet, Expr, Grammar, GrammarError, Result};
use std::collections::HashMap;

/// Largest schema text accepted.
pub const MAX_SCHEMA_BYTES: usize = 4 << 20;
/// Deepest nesting of subschemas.
pub const MAX_SCHEMA_DEPTH: usize = 64;
/// Most subschemas visited while compiling.
const MAX_VISITS: usize = 100_000;
/// Largest `minLength`/`maxLength`/`minItems`/`maxItems` value honoured exactly.
const MAX_COUNT: u64 = 100_000;

/// Keywords that carry no constraint.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$anchor",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "contentMediaType",
    "nullable",
];

/// Keywords that constrain instances in ways this compiler does not enforce.
const UNSUPPORTED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "$dynamicRef",
    "$recursiveRef",
];

const OBJECT_KEYS: &[&str] = &["properties", "required", "additionalProperties"];
const ARRAY_KEYS: &[&str] = &[
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "uniqueItems",
];
const STRING_KEYS: &[&str] = &["pattern", "minLength", "maxLength"];
const NUMBER_KEYS: &[&str] = &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];

pub(crate) fn compile(root: &Json) -> Result<Grammar> {
    let mut b = Builder::new();
    let prims = Prims::new(&mut b)?;
    let mut c = Compiler {
        b,
        p: prims,
        root,
        refs: HashMap::new(),
        depth: 0,
        visits: 0,
    };
    // An empty schema at the top is "some JSON object", as in llama.cpp (and `"json"`).
    let e = match root {
        Json::Obj(kv) if kv.is_empty() => Expr::Ref(c.p.object),
        _ => c.visit(root)?,
    };
    let r = c.b.rule(e)?;
    c.b.finish(r)
}

/// Compiles a schema's JSON text (the size limit applies here).
pub(crate) fn compile_text(text: &str) -> Result<Grammar> {
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(GrammarError::new(format!(
            "the schema is larger than {MAX_SCHEMA_BYTES} bytes"
        )));
    }
    compile(&super::value::parse(text)?)
}

struct Compiler<'a> {
    b: Builder,
    p: Prims,
    root: &'a Json,
    /// `$ref` pointer → its rule (declared before compiling, so recursion works).
    refs: HashMap<String, u32>,
    depth: usize,
    visits: usize,
}

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(GrammarError::new(msg))
}

fn count(s: &Json, key: &str) -> Result<Option<u64>> {
    match s.get(key) {
        None => Ok(None),
        Some(Json::Num(n)) => {
            let v = n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            });
            match v {
                Some(v) if v <= MAX_COUNT => Ok(Some(v)),
                Some(v) => err(format!(
                    "{key} {v} is larger than the supported {MAX_COUNT}"
                )),
                None => err(format!("{key} must be a non-negative integer")),
            }
        }
        Some(other) => err(format!(
            "{key} must be a non-negative integer, not {}",
            other.type_name()
        )),
    }
}

fn matches_type(v: &Json, t: &str) -> bool {
    match (t, v) {
        ("null", Json::Null) | ("boolean", Json::Bool(_)) | ("number", Json::Num(_)) => true,
        ("string", Json::Str(_)) | ("array", Json::Arr(_)) | ("object", Json::Obj(_)) => true,
        ("integer", Json::Num(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

impl Compiler<'_> {
    fn space(&self) -> Expr {
        Expr::Ref(self.p.space)
    }

    fn literal(&self, v: &Json) -> Expr {
        Expr::Lit(v.to_text().into_bytes())
    }

    fn visit(&mut self, s: &Json) -> Result<Expr> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return err("the schema is too large (too many subschemas)");
        }
        if self.depth >= MAX_SCHEMA_DEPTH {
            return err(format!(
                "the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep"
            ));
        }
        self.depth += 1;
        let r = self.visit_inner(s);
        self.depth -= 1;
        r
    }

    fn visit_inner(&mut self, s: &Json) -> Result<Expr> {
        let kv = match s {
            Json::Bool(true) => return Ok(Expr::Ref(self.p.value)),
            Json::Bool(false) => return err("the schema `false` allows no value"),
            Json::Obj(kv) => kv,
            other => {
                return err(format!(
                    "a schema must be an object or a boolean, not {}",
                    other.type_name()
                ))
            }
        };
        if let Some((k, _)) = kv.iter().find(|(k, _)| UNSUPPORTED.contains(&k.as_str())) {
            return err(format!("the keyword {k:?} is not supported"));
        }
        let e = self.visit_constraints(s, kv)?;
        match s.get("nullable") {
            Some(Json::Bool(true)) => Ok(Expr::Alt(vec![e, Expr::Ref(self.p.null)])),
            _ => Ok(e),
        }
    }

    /// Errors when `s` has validation keywords beside the combinator `what`, which would
    /// have to be intersected with it.
    fn only_annotations(&self, kv: &[(String, Json)], what: &str) -> Result<()> {
        if let Some((k, _)) = kv
            .iter()
            .find(|(k, _)| k != what && !ANNOTATIONS.contains(&k.as_str()))
        {
            return err(format!("{what:?} combined with {k:?} is not supported"));
        }
        Ok(())
    }

    fn visit_constraints(&mut self, s: &Json, kv: &[(String, Json)]) -> Result<Expr> {
        if let Some(r) = s.get("$ref") {
            self.only_annotations(kv, "$ref")?;
            let Json::Str(r) = r else {
                return err("$ref must be a string");
            };
            return self.reference(r);
        }
        for comb in ["anyOf", "oneOf"] {
            if let Some(v) = s.get(comb) {
                self.only_annotations(kv, comb)?;
                let Json::Arr(alts) = v else {
                    return err(format!("{comb} must be an array"));
                };
                if alts.is_empty() {
                    return err(format!("{comb} must not be empty"));
                }
                let mut out = Vec::with_capacity(alts.len());
                for a in alts {
                    out.push(self.visit(a)?);
                }
                return Ok(Expr::Alt(out));
            }
        }
        if let Some(v) = s.get("allOf") {
            self.only_annotations(kv, "allOf")?;
            return match v {
                Json::Arr(a) if a.len() == 1 => self.visit(&a[0]),
                _ => err("\"allOf\" with more than one schema is not supported"),
            };
        }
        let types: Option<Vec<&str>> = match s.get("type") {
            None => None,
            Some(Json::Str(t)) => Some(vec![t.as_str()]),
            Some(Json::Arr(ts)) => {
                let mut out: Vec<&str> = Vec::new();
                for t in ts {
                    let Json::Str(t) = t else {
                        return err("type must be a string or an array of strings");
                    };
                    if !out.contains(&t.as_str()) {
                        out.push(t);
                    }
                }
                if out.is_empty() {
                    return err("type must not be an empty array");
                }
                Some(out)
            }
            Some(_) => return err("type must be a string or an array of strings"),
        };
        if let Some(ts) = &types {
            for t in ts {
                if ![
                    "null", "boolean", "integer", "number", "string", "array", "object",
                ]
                .contains(t)
                {
                    return err(format!("unknown type {t:?}"));
                }
            }
        }
        let type_ok = |v: &Json| {
            types
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| matches_type(v, t)))
        };
        if let Some(c) = s.get("const") {
            if !type_ok(c) {
                return err("const does not match the schema's type");
            }
            return Ok(Expr::Seq(vec![self.literal(c), self.space()]));
        }
        if let Some(e) = s.get("enum") {
            let Json::Arr(vals) = e else {
                return err("enum must be an array");
            };
            let alts: Vec<Expr> = vals
                .iter()
                .filter(|v| type_ok(v))
                .map(|v| self.literal(v))
                .collect();
            if alts.is_empty() {
                return err("enum has no value (of the schema's type)");
            }
            return Ok(Expr::Seq(vec![Expr::Alt(alts), self.space()]));
        }
        let has = |keys: &[&str]| keys.iter().any(|k| s.get(k).is_some());
        let types = match types {
            Some(t) => t,
            None if has(OBJECT_KEYS) => vec!["object"],
            None if has(ARRAY_KEYS) => vec!["array"],
            None if has(STRING_KEYS) || s.get("format").is_some() => vec!["string"],
            None if has(NUMBER_KEYS) => vec!["number"],
            None => return Ok(Expr::Ref(self.p.value)),
        };
        let mut alts = Vec::with_capacity(types.len());
        for t in types {
            alts.push(self.visit_type(s, t)?);
        }
        Ok(Expr::Alt(alts))
    }

    fn visit_type(&mut self, s: &Json, t: &str) -> Result<Expr> {
        match t {
            "null" => Ok(Expr::Ref(self.p.null)),
            "boolean" => Ok(Expr::Ref(self.p.boolean)),
            "integer" => self.integer(s),
            "number" => self.number(s),
            "string" => self.string(s),
            "array" => self.array(s),
            "object" => self.object(s),
            _ => err(format!("unknown type {t:?}")),
        }
    }

    fn reference(&mut self, r: &str) -> Result<Expr> {
        if let Some(&id) = self.refs.get(r) {
            return Ok(Expr::Ref(id));
        }
        let Some(pointer) = r.strip_prefix('#') else {
            return err(format!(
                "$ref {r:?} is not supported (only local references such as \"#/$defs/name\")"
            ));
        };
        let mut target = self.root;
        if !pointer.is_empty() {
            let Some(path) = pointer.strip_prefix('/') else {
                return err(format!("$ref {r:?} is not a JSON pointer"));
            };
            for part in path.split('/') {
                let part = part.replace("~1", "/").replace("~0", "~");
                target = match target {
                    Json::Obj(_) => target.get(&part),
                    Json::Arr(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                }
                .ok_or_else(|| GrammarError::new(format!("$ref {r:?} does not resolve")))?;
            }
        }
        let id = self.b.declare()?;
        self.refs.insert(r.to_string(), id);
        let e = match target {
            // The document root referenced as a whole: same top-level rule as `compile`.
            Json::Obj(kv) if kv.is_empty() => Expr::Ref(self.p.object),
            t => self.visit(t)?,
        };
        self.b.define(id, e)?;
        Ok(Expr::Ref(id))
    }

    fn quoted(&self, inner: Expr) -> Expr {
        Expr::Seq(vec![Expr::lit("\""), inner, Expr::lit("\""), self.space()])
    }

    fn string(&mut self, s: &Json) -> Result<Expr> {
        let pattern = s.get("pattern");
        let (min, max) = (count(s, "minLength")?, count(s, "maxLength")?);
        let format = match s.get("format") {
            Some(Json::Str(f)) => Some(f.as_str()),
            _ => None,
        };
        let format_rule = match format {
            Some("date") => Some(date()),
            Some("time") => Some(time()),
            Some("date-time") => Some(Expr::Seq(vec![date(), Expr::lit("T"), time()])),
            Some("uuid") => Some(uuid()),
            // Other formats are annotations by default in JSON Schema.
            _ => None,
        };
        if let Some(f) = format_rule {
            if pattern.is_some() || min.is_some() || max.is_some() {
                return err(format!(
                    "format {:?} combined with pattern/minLength/maxLength is not supported",
                    format.unwrap_or_default()
                ));
            }
            return Ok(self.quoted(f));
        }
        if let Some(p) = pattern {
            if min.is_some() || max.is_some() {
                return err("pattern combined with minLength/maxLength is not supported");
            }
            let Json::Str(p) = p else {
                return err("pattern must be a string");
            };
            let e = regex::compile(p, Expr::Ref(self.p.char))
                .map_err(|e| GrammarError::new(format!("pattern {p:?}: {e}")))?;
            return Ok(self.quoted(e));
        }
        if min.is_none() && max.is_none() {
            return Ok(Expr::Ref(self.p.string));
        }
        let (min, max) = (min.unwrap_or(0), max);
        if max.is_some_and(|m| m < min) {
            return err("minLength is larger than maxLength");
        }
        Ok(self.quoted(Expr::repeat(
            Expr::Ref(self.p.char),
            min as u32,
            max.map(|m| m as u32),
        )))
    }

    fn integer(&mut self, s: &Json) -> Result<Expr> {
        let Some(b) = Bounds::of(s)? else {
            return Ok(Expr::Ref(self.p.integer));
        };
        if b.empty_ints() {
            return err("no integer satisfies minimum/maximum");
        }
        Ok(Expr::Seq(vec![int_range(b.lo_int, b.hi_int), self.space()]))
    }

    /// Bounded numbers: integers in range, or an integer part and a fraction whose every
    /// value is in range (no exponent). A subset of the valid numbers, never a wrong one.
    fn number(&mut self, s: &Json) -> Result<Expr> {
        let Some(b) = Bounds::of(s)? else {
            return Ok(Expr::Ref(self.p.number));
        };
        let frac = || {
            Expr::Seq(vec![
                Expr::lit("."),
                Expr::repeat(json::digit(), 1, Some(16)),
            ])
        };
        let mut alts = Vec::new();
        if !b.empty_ints() {
            alts.push(int_range(b.lo_int, b.hi_int));
        }
        // v = ip + f, f in [0, 1): ip satisfies the lower bound, ip + 1 <= the upper one.
        let lo_p = b.lo_int.unwrap_or(0).max(0);
        let hi_p = b.hi.map(|h| h.floor() as i64 - 1);
        if hi_p.is_none_or(|h| h >= lo_p) {
            alts.push(Expr::Seq(vec![
                nonneg_range(lo_p as u64, hi_p.map(|h| h as u64)),
                frac(),
            ]));
        }
        // v = -(ip + f): -ip satisfies the upper bound, -(ip + 1) >= the lower one.
        let lo_n = b.hi_int.map_or(0, |h| -h).max(0);
        let hi_n = b.lo.map(|l| -(l.ceil() as i64) - 1);
        if hi_n.is_none_or(|h| h >= lo_n) {
            alts.push(Expr::Seq(vec![
                Expr::lit("-"),
                nonneg_range(lo_n as u64, hi_n.map(|h| h as u64)),
                frac(),
            ]));
        }
        // At an exclusive integer bound, that integer with a non-zero fraction.
        let nonzero = || {
            Expr::Seq(vec![
                Expr::lit("."),
                Expr::repeat(json::digit(), 0, Some(15)),
                Expr::Set(ByteSet::range(b'1', b'9')),
            ])
        };
        if let Some(x) = b
            .lo_excl_int
            .filter(|&x| x >= 0 && hi_p.is_none_or(|h| x <= h))
        {
            alts.push(Expr::Seq(vec![
                Expr::Lit(x.to_string().into_bytes()),
                nonzero(),
            ]));
        }
        if let Some(x) = b
            .hi_excl_int
            .filter(|&x| x <= 0 && hi_n.is_none_or(|h| -x <= h))
        {
            alts.push(Expr::Seq(vec![
                Expr::lit("-"),
                Expr::Lit((-x).to_string().into_bytes()),
                nonzero(),
            ]));
        }
        if alts.is_empty() {
            return err("no number satisfies minimum/maximum");
        }
        Ok(Expr::Seq(vec![Expr::Alt(alts), self.space()]))
    }

    fn array(&mut self, s: &Json) -> Result<Expr> {
        let sp = self.space();
        let (min, max) = (count(s, "minItems")?, count(s, "maxItems")?);
        let unique = matches!(s.get("uniqueItems"), Some(Json::Bool(true)));
        if unique && max.is_none_or(|m| m > 1) {
            return err("uniqueItems is not supported");
        }
        let tuple = match (s.get("prefixItems"), s.get("items")) {
            (Some(Json::Arr(p)), _) | (None, Some(Json::Arr(p))) => Some(p),
            (Some(_), _) => return err("prefixItems must be an array"),
            _ => None,
        };
        if let Some(items) = tuple {
            if min.is_some() || max.is_some() {
                return err("minItems/maxItems combined with prefixItems are not supported");
            }
            // Exactly the listed items (a subset of what the schema allows, as llama.cpp).
            let mut seq = vec![Expr::lit("["), sp.clone()];
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    seq.push(Expr::lit(","));
                    seq.push(sp.clone());
                }
                seq.push(self.visit(it)?);
            }
            seq.push(Expr::lit("]"));
            seq.push(sp);
            return Ok(Expr::Seq(seq));
        }
        let (min, max) = (min.unwrap_or(0), max);
        if max.is_some_and(|m| m < min) {
            return err("minItems is larger than maxItems");
        }
        let item = match s.get("items") {
            None | Some(Json::Bool(true)) => Expr::Ref(self.p.value),
            Some(Json::Bool(false)) => {
                if min > 0 {
                    return err("items: false with minItems > 0 allows no value");
                }
                return Ok(Expr::Seq(vec![
                    Expr::lit("["),
                    sp.clone(),
                    Expr::lit("]"),
                    sp,
                ]));
            }
            Some(it) => self.visit(it)?,
        };
        if max == Some(0) {
            return Ok(Expr::Seq(vec![
                Expr::lit("["),
                sp.clone(),
                Expr::lit("]"),
                sp,
            ]));
        }
        let item = Expr::Ref(self.b.rule(item)?);
        let more = Expr::repeat(
            Expr::Seq(vec![Expr::lit(","), sp.clone(), item.clone()]),
            min.saturating_sub(1) as u32,
            max.map(|m| (m - 1) as u32),
        );
        let list = Expr::Seq(vec![item, more]);
        let list = if min == 0 { Expr::opt(list) } else { list };
        Ok(Expr::Seq(vec![
            Expr::lit("["),
            sp.clone(),
            list,
            Expr::lit("]"),
            sp,
        ]))
    }

    fn object(&mut self, s: &Json) -> Result<Expr> {
        let sp = self.space();
        let props: &[(String, Json)] = match s.get("properties") {
            None => &[],
            Some(Json::Obj(p)) => p,
            Some(_) => return err("properties must be an object"),
        };
        let mut required: Vec<&str> = Vec::new();
        match s.get("required") {
            None => {}
            Some(Json::Arr(r)) => {
                for n in r {
                    let Json::Str(n) = n else {
                        return err("required must be an array of strings");
                    };
                    if !props.iter().any(|(k, _)| k == n) {
                        return err(format!(
                            "required property {n:?} is not listed in properties"
                        ));
                    }
                    required.push(n);
                }
            }
            Some(_) => return err("required must be an array of strings"),
        }
        // llama.cpp: with properties, no others unless additionalProperties says so.
        let additional: Option<Expr> = match s.get("additionalProperties") {
            None if props.is_empty() => Some(Expr::Ref(self.p.value)),
            None | Some(Json::Bool(false)) => None,
            Some(Json::Bool(true)) => Some(Expr::Ref(self.p.value)),
            Some(sch) => Some(self.visit(sch)?),
        };
        if props.is_empty() && matches!(additional, Some(Expr::Ref(v)) if v == self.p.value) {
            return Ok(Expr::Ref(self.p.object));
        }
        let mut req_kvs = Vec::new();
        let mut opt_kvs = Vec::new();
        for (name, sch) in props {
            let value = self.visit(sch)?;
            let key = serde_json::to_string(name).unwrap_or_default();
            let kv = Expr::Ref(self.b.rule(Expr::Seq(vec![
                Expr::Lit(key.into_bytes()),
                sp.clone(),
                Expr::lit(":"),
                sp.clone(),
                value,
            ]))?);
            if required.contains(&name.as_str()) {
                req_kvs.push(kv);
            } else {
                opt_kvs.push((kv, false));
            }
        }
        if let Some(value) = additional {
            let names: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
            let key = if names.is_empty() {
                Expr::Ref(self.p.string)
            } else {
                self.not_strings(&names)
            };
            let kv =
                Expr::Ref(
                    self.b
                        .rule(Expr::Seq(vec![key, Expr::lit(":"), sp.clone(), value]))?,
                );
            opt_kvs.push((kv, true));
        }
        let comma = |kv: &Expr| Expr::Seq(vec![Expr::lit(","), sp.clone(), kv.clone()]);
        let mut seq = vec![Expr::lit("{"), sp.clone()];
        for (i, kv) in req_kvs.iter().enumerate() {
            seq.push(if i == 0 { kv.clone() } else { comma(kv) });
        }
        if !opt_kvs.is_empty() {
            // rest[j]: any in-order subset of the optional properties from j on.
            let mut rest: Vec<Expr> = vec![Expr::Empty; opt_kvs.len() + 1];
            for j in (1..opt_kvs.len()).rev() {
                let (kv, many) = &opt_kvs[j];
                let head = if *many {
                    Expr::star(comma(kv))
                } else {
                    Expr::opt(comma(kv))
                };
                rest[j] = Expr::Ref(self.b.rule(Expr::Seq(vec![head, rest[j + 1].clone()]))?);
            }
            let mut alts = Vec::new();
            for (i, (kv, many)) in opt_kvs.iter().enumerate() {
                let mut first = vec![kv.clone()];
                if *many {
                    first.push(Expr::star(comma(kv)));
                }
                first.push(rest[i + 1].clone());
                alts.push(Expr::Seq(first));
            }
            let opt = Expr::Alt(alts);
            seq.push(if req_kvs.is_empty() {
                Expr::opt(opt)
            } else {
                Expr::opt(Expr::Seq(vec![Expr::lit(","), sp.clone(), opt]))
            });
        }
        seq.push(Expr::lit("}"));
        seq.push(sp);
        Ok(Expr::Seq(seq))
    }

    /// A JSON string key other than the `names` (written forms compared byte by byte).
    fn not_strings(&mut self, names: &[&str]) -> Expr {
        #[derive(Default)]
        struct Node {
            children: Vec<(u8, Node)>,
            end: bool,
        }
        let mut root = Node::default();
        for n in names {
            let written = serde_json::to_string(n).unwrap_or_default();
            let inner = &written.as_bytes()[1..written.len() - 1];
            let mut node = &mut root;
            for &b in inner {
                let i = match node.children.iter().position(|(c, _)| *c == b) {
                    Some(i) => i,
                    None => {
                        node.children.push((b, Node::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[i].1;
            }
            node.end = true;
        }
        let ch = Expr::Ref(self.p.char);
        fn visit(n: &Node, ch: &Expr) -> Expr {
            let mut alts = Vec::new();
            let mut others = json::plain_ascii();
            for (b, sub) in &n.children {
                others.remove(*b);
                let tail = if sub.children.is_empty() {
                    // A whole name: only something longer differs from it.
                    Expr::repeat(ch.clone(), 1, None)
                } else if sub.end {
                    visit(sub, ch)
                } else {
                    Expr::opt(visit(sub, ch))
                };
                alts.push(Expr::Seq(vec![Expr::Set(ByteSet::single(*b)), tail]));
            }
            if !others.is_empty() {
                alts.push(Expr::Seq(vec![Expr::Set(others), Expr::star(ch.clone())]));
            }
            Expr::Alt(alts)
        }
        let body = visit(&root, &ch);
        let body = if root.end { body } else { Expr::opt(body) };
        self.quoted(body)
    }
}

/// `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` of a schema.
struct Bounds {
    /// The tightest lower and upper values.
    lo: Option<f64>,
    hi: Option<f64>,
    /// The smallest and largest integers within the bounds.
    lo_int: Option<i64>,
    hi_int: Option<i64>,
    /// The tightest bound is exclusive and an integer (`x > 0`: 0.5 is in, 0.0 is not).
    lo_excl_int: Option<i64>,
    hi_excl_int: Option<i64>,
}

impl Bounds {
    fn of(s: &Json) -> Result<Option<Bounds>> {
        // Beyond 18 digits a bound does not restrict what the grammar can write anyway.
        const LIM: f64 = 999_999_999_999_999_999.0;
        let num = |k: &str| -> Result<Option<f64>> {
            match s.get(k) {
                None => Ok(None),
                Some(Json::Num(n)) => Ok(n.as_f64().map(|x| x.clamp(-LIM, LIM))),
                Some(_) => err(format!("{k} must be a number")),
            }
        };
        let (min, xmin) = (num("minimum")?, num("exclusiveMinimum")?);
        let (max, xmax) = (num("maximum")?, num("exclusiveMaximum")?);
        if min.is_none() && xmin.is_none() && max.is_none() && xmax.is_none() {
            return Ok(None);
        }
        let pick = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        let lo_int = pick(min.map(f64::ceil), xmin.map(|x| x.floor() + 1.0), f64::max);
        let hi_int = pick(max.map(f64::floor), xmax.map(|x| x.ceil() - 1.0), f64::min);
        let lo = pick(min, xmin, f64::max);
        let hi = pick(max, xmax, f64::min);
        let excl_int = |x: Option<f64>, tight: Option<f64>, other: Option<f64>| {
            x.filter(|x| x.fract() == 0.0 && Some(*x) == tight && other != tight)
                .map(|x| x as i64)
        };
        Ok(Some(Bounds {
            lo_excl_int: excl_int(xmin, lo, min),
            hi_excl_int: excl_int(xmax, hi, max),
            lo,
            hi,
            lo_int: lo_int.map(|x| x as i64),
            hi_int: hi_int.map(|x| x as i64),
        }))
    }

    fn empty_ints(&self) -> bool {
        matches!((self.lo_int, self.hi_int), (Some(l), Some(h)) if l > h)
    }
}

fn digits(n: usize) -> Expr {
    Expr::repeat(json::digit(), n as u32, Some(n as u32))
}

fn dr(lo: u8, hi: u8) -> Expr {
    Expr::Set(ByteSet::range(lo, hi))
}

/// Decimal strings of equal length `a.len()` between `a` and `b` (digit strings, `a <= b`).
fn same_len(a: &[u8], b: &[u8]) -> Expr {
    if a.is_empty() {
        return Expr::Empty;
    }
    if a[0] == b[0] {
        return Expr::Seq(vec![
            Expr::Set(ByteSet::single(a[0])),
            same_len(&a[1..], &b[1..]),
        ]);
    }
    let n = a.len() - 1;
    let all = |s: &[u8], d: u8| s.iter().all(|&c| c == d);
    let mut alts = Vec::new();
    let (mut lo, mut hi) = (a[0], b[0]);
    if !all(&a[1..], b'0') {
        let nines = vec![b'9'; n];
        alts.push(Expr::Seq(vec![
            Expr::Set(ByteSet::single(a[0])),
            same_len(&a[1..], &nines),
        ]));
        lo += 1;
    }
    if !all(&b[1..], b'9') {
        let zeros = vec![b'0'; n];
        alts.push(Expr::Seq(vec![
            Expr::Set(ByteSet::single(b[0])),
            same_len(&zeros, &b[1..]),
        ]));
        hi -= 1;
    }
    if lo <= hi {
        alts.push(Expr::Seq(vec![dr(lo, hi), digits(n)]));
    }
    Expr::Alt(alts)
}

/// Canonical decimals (no leading zeros) of the integers in `[lo, hi]`, `lo >= 0`; `hi`
/// `None` = up to 18 digits.
fn nonneg_range(lo: u64, hi: Option<u64>) -> Expr {
    let hi = hi.unwrap_or(999_999_999_999_999_999);
    let mut alts = Vec::new();
    let (ls, hs) = (lo.to_string(), hi.to_string());
    for len in ls.len()..=hs.len() {
        let from = if len == ls.len() {
            ls.clone()
        } else {
            format!("1{}", "0".repeat(len - 1))
        };
        let to = if len == hs.len() {
            hs.clone()
        } else {
            "9".repeat(len)
        };
        alts.push(same_len(from.as_bytes(), to.as_bytes()));
    }
    Expr::Alt(alts)
}

/// JSON integers in `[lo, hi]` (either bound may be open).
pub(crate) fn int_range(lo: Option<i64>, hi: Option<i64>) -> Expr {
    let mut alts = Vec::new();
    // Non-negative part.
    if hi.is_none_or(|h| h >= 0) {
        let l = lo.map_or(0, |l| l.max(0) as u64);
        alts.push(nonneg_range(l, hi.map(|h| h as u64)));
    }
    // Negative part: "-" and a magnitude in [max(1, -hi), -lo].
    if lo.is_none_or(|l| l < 0) {
        let mag_lo = hi.map_or(1, |h| if h < 0 { h.unsigned_abs() } else { 1 });
        let mag_hi = lo.map(|l| l.unsigned_abs());
        alts.push(Expr::Seq(vec![
            Expr::lit("-"),
            nonneg_range(mag_lo, mag_hi),
        ]));
    }
    Expr::Alt(alts)
}

fn date() -> Expr {
    Expr::Seq(vec![
        digits(4),
        Expr::lit("-"),
        Expr::Alt(vec![
            Expr::Seq(vec![Expr::lit("0"), dr(b'1', b'9')]),
            Expr::Seq(vec![Expr::lit("1"), dr(b'0', b'2')]),
        ]),
        Expr::lit("-"),
        Expr::Alt(vec![
            Expr::Seq(vec![Expr::lit("0"), dr(b'1', b'9')]),
            Expr::Seq(vec![dr(b'1', b'2'), json::digit()]),
            Expr::Seq(vec![Expr::lit("3"), dr(b'0', b'1')]),
        ]),
    ])
}

fn time() -> Expr {
    let hour = || {
        Expr::Alt(vec![
            Expr::Seq(vec![dr(b'0', b'1'), json::digit()]),
            Expr::Seq(vec![Expr::lit("2"), dr(b'0', b'3')]),
        ])
    };
    let min = || Expr::Seq(vec![dr(b'0', b'5'), json::digit()]);
    Expr::Seq(vec![
        hour(),
        Expr::lit(":"),
        min(),
        Expr::lit(":"),
        min(),
        Expr::opt(Expr::Seq(vec![Expr::lit("."), digits(3)])),
        Expr::Alt(vec![
            Expr::lit("Z"),
            Expr::Seq(vec![
                Expr::Set(ByteSet::of(b"+-")),
                hour(),
                Expr::lit(":"),
                min(),
            ]),
        ]),
    ])
}

fn uuid() -> Expr {
    let h = |n: u32| Expr::repeat(json::hex(), n, Some(n));
    Expr::Seq(vec![
        h(8),
        Expr::lit("-"),
        h(4),
        Expr::lit("-"),
        h(4),
        Expr::lit("-"),
        h(4),
        Expr::lit("-"),
        h(12),
    ])
}

use super::*;
use crate::sampler::{Rng, Sampler, SamplerOptions};
use std::sync::Arc;

fn json_g() -> Arc<Grammar> {
    Arc::new(Grammar::json())
}

fn schema(s: &str) -> Arc<Grammar> {
    Arc::new(Grammar::from_schema_str(s).unwrap_or_else(|e| panic!("{s}: {e}")))
}

fn schema_err(s: &str) -> String {
    match Grammar::from_schema_str(s) {
        Ok(_) => panic!("{s} should be refused"),
        Err(e) => e.0,
    }
}

/// The whole text is a sentence of the grammar.
fn full(g: &Arc<Grammar>, s: &str) -> bool {
    let mut m = Matcher::new(g.clone()).unwrap();
    m.accept_bytes(s.as_bytes()).unwrap() && m.is_complete()
}

/// The text can be extended into a sentence.
fn prefix(g: &Arc<Grammar>, s: &str) -> bool {
    let mut m = Matcher::new(g.clone()).unwrap();
    m.accept_bytes(s.as_bytes()).unwrap()
}

/// Random sentences: bytes drawn among those the matcher allows, ending as soon as it can
/// after `len` bytes. Returns None when no sentence finished within the budget.
fn sample_sentence(g: &Arc<Grammar>, rng: &mut Rng, len: usize) -> Option<String> {
    let mut m = Matcher::new(g.clone()).unwrap();
    let mut out = Vec::new();
    for step in 0..len * 20 {
        if m.is_complete() && (step >= len || m.is_finished()) {
            return Some(String::from_utf8(out).expect("grammar output is UTF-8"));
        }
        let allowed: Vec<u8> = (0..=255u8)
            .filter(|&b| m.can_accept(&[b]).unwrap())
            .collect();
        assert!(
            !allowed.is_empty(),
            "stuck after {:?}",
            String::from_utf8_lossy(&out)
        );
        // After the target length, prefer bytes that close structures.
        let closing: Vec<u8> = allowed
            .iter()
            .copied()
            .filter(|b| b"}]\"0".contains(b))
            .collect();
        let pool = if step >= len && !closing.is_empty() {
            &closing
        } else {
            &allowed
        };
        let b = pool[(rng.next_u64() % pool.len() as u64) as usize];
        assert!(m.accept_bytes(&[b]).unwrap());
        out.push(b);
    }
    None
}

#[test]
fn json_mode_accepts_objects_only() {
    let g = json_g();
    for ok in [
        "{}",
        "{ }",
        r#"{"a":1}"#,
        r#"{"a": [1, 2.5, -3e10, true, false, null, "x"], "b": {"c": {}}}"#,
        "{\n  \"k\": \"\\n\\t\\\"\\\\\\/\\u00e9\"\n}",
        r#"{"ü": "日本語 🎉"}"#,
        "{\"a\":0.5E-3}",
    ] {
        assert!(full(&g, ok), "{ok}");
        serde_json::from_str::<serde_json::Value>(ok).unwrap();
    }
    for bad in [
        "[]",
        "1",
        "\"s\"",
        "{a:1}",
        "{\"a\":01}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":tru}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\u{1}\"}",
        "{\"a\":1}}",
        "{\"a\":.5}",
        " {}",
    ] {
        assert!(!full(&g, bad), "{bad:?}");
    }
    // Prefixes.
    for p in [
        "{",
        "{\"",
        "{\"a",
        "{\"a\":",
        "{\"a\": [1, {\"b\": tr",
        "{\"a\":-",
    ] {
        assert!(prefix(&g, p) && !full(&g, p), "{p}");
    }
    assert!(!prefix(&g, "{\"a\"::"));
    // Invalid UTF-8 inside strings is refused.
    let mut m = Matcher::new(g.clone()).unwrap();
    assert!(m.accept_bytes(b"{\"").unwrap());
    assert!(!m.can_accept(&[0xC0]).unwrap());
    assert!(!m.can_accept(&[0xED, 0xA0]).unwrap(), "surrogates");
    assert!(m.can_accept("é".as_bytes()).unwrap());
    assert!(
        m.can_accept(&[0xE6]).unwrap(),
        "a partial character is a prefix"
    );
}

#[test]
fn whitespace_and_digits_are_bounded() {
    let g = json_g();
    assert!(full(&g, &format!("{{\n{}\"a\":1}}", " ".repeat(20))));
    assert!(!prefix(&g, &format!("{{\n{}", " ".repeat(21))));
    assert!(!prefix(&g, "{   "), "at most one plain space");
    assert!(!prefix(&g, "{\n\n\n"));
    assert!(full(&g, &format!("{{\"a\":{}}}", "9".repeat(16))));
    assert!(!prefix(&g, &format!("{{\"a\":{}", "9".repeat(17))));
    // After the closing brace only bounded whitespace may follow, then it is finished.
    let mut m = Matcher::new(g.clone()).unwrap();
    assert!(m.accept_bytes(b"{}").unwrap());
    assert!(m.is_complete() && !m.is_finished());
    assert!(m.accept_bytes(b" ").unwrap());
    assert!(m.is_finished());
}

#[test]
fn random_walks_of_json_mode_parse() {
    let g = json_g();
    let mut rng = Rng::new(7);
    let mut done = 0;
    for _ in 0..200 {
        if let Some(s) = sample_sentence(&g, &mut rng, 40) {
            let v: serde_json::Value =
                serde_json::from_str(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert!(v.is_object());
            done += 1;
        }
    }
    assert!(done > 100, "{done}");
}

#[test]
fn schema_objects_required_optional_and_order() {
    let g = schema(
        r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#,
    );
    assert!(full(&g, r#"{"name":"Ann","age":31}"#));
    assert!(full(&g, "{ \"name\" : \"Ann\" , \"age\" : -4 }"));
    assert!(!full(&g, r#"{"age":31,"name":"Ann"}"#), "schema order");
    assert!(!full(&g, r#"{"name":"Ann"}"#), "required");
    assert!(!full(&g, r#"{"name":"Ann","age":3.5}"#), "integer");
    assert!(
        !full(&g, r#"{"name":"Ann","age":3,"x":1}"#),
        "no extra keys by default"
    );
    assert!(!full(&g, r#"{"name":1,"age":3}"#));

    // Optional properties: any in-order subset, after the required ones.
    let g = schema(
        r#"{"properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"null"}},"required":["b"]}"#,
    );
    for ok in [
        r#"{"b":true}"#,
        r#"{"b":true,"a":1}"#,
        r#"{"b":true,"c":null}"#,
        r#"{"b":false,"a":1,"c":null}"#,
    ] {
        assert!(full(&g, ok), "{ok}");
    }
    for bad in [
        r#"{}"#,
        r#"{"a":1,"b":true}"#,
        r#"{"b":true,"c":null,"a":1}"#,
        r#"{"b":true,}"#,
    ] {
        assert!(!full(&g, bad), "{bad}");
    }
    let g = schema(r#"{"properties":{"a":{"type":"integer"}}}"#);
    assert!(full(&g, "{}") && full(&g, r#"{"a":1}"#));
}

#[test]
fn schema_additional_properties() {
    let g = schema(
        r#"{"properties":{"a":{"type":"integer"}},"required":["a"],"additionalProperties":{"type":"string"}}"#,
    );
    assert!(full(&g, r#"{"a":1}"#));
    assert!(full(&g, r#"{"a":1,"b":"x","cc":"y"}"#));
    assert!(
        !full(&g, r#"{"a":1,"b":2}"#),
        "extra values follow their schema"
    );
    assert!(
        !full(&g, r#"{"a":1,"a":"x"}"#),
        "a declared name is not an extra key"
    );
    assert!(full(&g, r#"{"a":1,"ab":"x"}"#));
    let g = schema(r#"{"type":"object","additionalProperties":{"type":"integer"}}"#);
    assert!(full(&g, r#"{"x":1,"y":2}"#) && !full(&g, r#"{"x":"1"}"#));
    let g = schema(r#"{"type":"object","additionalProperties":false}"#);
    assert!(full(&g, "{}") && !full(&g, r#"{"x":1}"#));
    let g = schema(r#"{"type":"object"}"#);
    assert!(full(&g, r#"{"x":[1,{"y":null}]}"#));
}

#[test]
fn schema_types_enum_const_combinators() {
    let g = schema(r#"{"type":["string","null"]}"#);
    assert!(full(&g, "\"x\"") && full(&g, "null") && !full(&g, "1"));
    let g = schema(r#"{"enum":["red","green",3,null,{"k":[1]}]}"#);
    for ok in ["\"red\"", "\"green\"", "3", "null", r#"{"k":[1]}"#] {
        assert!(full(&g, ok), "{ok}");
    }
    assert!(!full(&g, "\"blue\"") && !full(&g, "4"));
    let g = schema(r#"{"type":"string","enum":["a",1,"b"]}"#);
    assert!(full(&g, "\"a\"") && !full(&g, "1"), "enum filtered by type");
    let g = schema(r#"{"const":"fixed"}"#);
    assert!(full(&g, "\"fixed\"") && !full(&g, "\"other\""));
    let g = schema(r#"{"anyOf":[{"type":"integer"},{"type":"array","items":{"type":"boolean"}}]}"#);
    assert!(full(&g, "12") && full(&g, "[true,false]") && !full(&g, "\"s\""));
    let g = schema(r#"{"oneOf":[{"type":"boolean"},{"type":"null"}]}"#);
    assert!(full(&g, "true") && full(&g, "null") && !full(&g, "0"));
    let g = schema(r#"{"allOf":[{"type":"boolean"}]}"#);
    assert!(full(&g, "false"));
    let g = schema(r#"{"type":"string","nullable":true}"#);
    assert!(full(&g, "null") && full(&g, "\"s\""));
    let g = schema(r#"{"type":"number"}"#);
    assert!(full(&g, "-1.5e3") && full(&g, "0") && !full(&g, "1."));
    let g = schema(r#"{"type":"boolean"}"#);
    assert!(full(&g, "true") && !full(&g, "\"true\""));
    let g = schema("true");
    assert!(full(&g, "[1]") && full(&g, "\"x\""));
    let g = schema("{}");
    assert!(
        full(&g, "{}") && !full(&g, "1"),
        "empty schema at the top: an object"
    );
}

#[test]
fn schema_refs_and_recursion() {
    let g = schema(
        r##"{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},"$ref":"#/$defs/node"}"##,
    );
    assert!(full(&g, r#"{"v":1}"#));
    assert!(full(&g, r#"{"v":1,"kids":[{"v":2},{"v":3,"kids":[]}]}"#));
    assert!(!full(&g, r#"{"v":1,"kids":[{"w":2}]}"#));
    let g = schema(
        r##"{"definitions":{"n":{"type":"integer"}},"type":"object","properties":{"x":{"$ref":"#/definitions/n"}},"required":["x"]}"##,
    );
    assert!(full(&g, r#"{"x":5}"#) && !full(&g, r#"{"x":"5"}"#));
    let g = schema(r##"{"type":"object","properties":{"child":{"$ref":"#"}}}"##);
    assert!(full(&g, r#"{"child":{"child":{}}}"#));
}

#[test]
fn schema_arrays() {
    let g = schema(r#"{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3}"#);
    assert!(!full(&g, "[1]"));
    assert!(full(&g, "[1,2]") && full(&g, "[1, 2, 3]"));
    assert!(!full(&g, "[1,2,3,4]") && !full(&g, "[1,\"a\"]"));
    let g = schema(r#"{"type":"array","items":{"type":"string"}}"#);
    assert!(full(&g, "[]") && full(&g, "[\"a\",\"b\"]"));
    let g = schema(r#"{"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}]}"#);
    assert!(full(&g, "[1,\"a\"]") && !full(&g, "[1]") && !full(&g, "[\"a\",1]"));
    let g = schema(r#"{"type":"array","maxItems":0}"#);
    assert!(full(&g, "[]") && !full(&g, "[1]"));
    let g =
        schema(r#"{"type":"array","items":{"type":"integer"},"uniqueItems":true,"maxItems":1}"#);
    assert!(full(&g, "[1]"));
}

#[test]
fn schema_strings() {
    let g = schema(r#"{"type":"string","minLength":2,"maxLength":4}"#);
    assert!(!full(&g, "\"a\"") && full(&g, "\"ab\"") && full(&g, "\"abcd\""));
    assert!(!full(&g, "\"abcde\""));
    assert!(full(&g, "\"é\\n\""), "characters, not bytes");
    let g = schema(r#"{"type":"string","format":"date"}"#);
    assert!(full(&g, "\"2024-02-29\"") && !full(&g, "\"2024-13-01\"") && !full(&g, "\"x\""));
    let g = schema(r#"{"type":"string","format":"time"}"#);
    assert!(
        full(&g, "\"12:30:00Z\"")
            && full(&g, "\"23:59:59.123+01:00\"")
            && !full(&g, "\"24:00:00Z\"")
    );
    let g = schema(r#"{"type":"string","format":"date-time"}"#);
    assert!(full(&g, "\"2024-01-02T03:04:05Z\""));
    let g = schema(r#"{"type":"string","format":"uuid"}"#);
    assert!(full(&g, "\"123e4567-e89b-12d3-a456-426614174000\"") && !full(&g, "\"123\""));
    let g = schema(r#"{"type":"string","format":"email"}"#);
    assert!(full(&g, "\"anything\""), "unknown formats are annotations");
}

#[test]
fn schema_patterns() {
    let g = schema(r#"{"type":"string","pattern":"^[A-Z]{2}-\\d{3,4}$"}"#);
    assert!(full(&g, "\"AB-123\"") && full(&g, "\"XY-1234\""));
    assert!(!full(&g, "\"ab-123\"") && !full(&g, "\"AB-12\"") && !full(&g, "\"AB-12345\""));
    let g = schema(r#"{"pattern":"^(cat|dog)s?$"}"#);
    assert!(full(&g, "\"cats\"") && full(&g, "\"dog\"") && !full(&g, "\"cow\""));
    // Unanchored: the pattern may occur anywhere.
    let g = schema(r#"{"type":"string","pattern":"ab"}"#);
    assert!(full(&g, "\"xxabyy\"") && !full(&g, "\"xxa\""));
    // Characters JSON escapes are written escaped.
    let g = schema(r#"{"type":"string","pattern":"^a\"b\\\\c\\n$"}"#);
    assert!(full(&g, r#""a\"b\\c\n""#), "escaped forms");
    let g = schema(r#"{"type":"string","pattern":"^[^a-z]+$"}"#);
    assert!(full(&g, "\"AB1é\"") && !full(&g, "\"Ab\""));
    let g = schema(r#"{"type":"string","pattern":"^.{1,3}$"}"#);
    assert!(full(&g, "\"x\"") && full(&g, "\"日本\"") && !full(&g, "\"abcd\""));
    let g = schema(r#"{"type":"string","pattern":"^(?:[a-f0-9]{2})+$"}"#);
    assert!(full(&g, "\"0aff\"") && !full(&g, "\"0af\""));
    for bad in [
        r"^(a)\1$",
        "^(?=a)a$",
        r"\bword",
        r"^\p{L}+$",
        "^a(b$",
        "^[z-a]$",
        "^a{3,2}$",
        "^a$b",
    ] {
        let e = schema_err(&format!(
            r#"{{"type":"string","pattern":{}}}"#,
            serde_json::to_string(bad).unwrap()
        ));
        assert!(e.starts_with("pattern"), "{bad}: {e}");
    }
}

#[test]
fn schema_integer_ranges() {
    let g = schema(r#"{"type":"integer","minimum":0,"maximum":120}"#);
    for n in 0..=120 {
        assert!(full(&g, &n.to_string()), "{n}");
    }
    for bad in ["-1", "121", "007", "1000", "-0"] {
        assert!(!full(&g, bad), "{bad}");
    }
    let g = schema(r#"{"type":"integer","exclusiveMinimum":-15,"exclusiveMaximum":-3}"#);
    for n in -30..30 {
        assert_eq!(full(&g, &n.to_string()), (-14..=-4).contains(&n), "{n}");
    }
    let g = schema(r#"{"type":"integer","minimum":95}"#);
    for n in [95, 96, 99, 100, 1000, 123_456_789] {
        assert!(full(&g, &n.to_string()), "{n}");
    }
    for n in [94, 9, 0, -5] {
        assert!(!full(&g, &n.to_string()), "{n}");
    }
    let g = schema(r#"{"type":"integer","maximum":-7}"#);
    assert!(full(&g, "-7") && full(&g, "-100") && !full(&g, "-6") && !full(&g, "0"));
    assert!(schema_err(r#"{"type":"integer","minimum":5,"maximum":4}"#).contains("no integer"));
}

#[test]
fn schema_number_ranges() {
    let cases: &[(&str, &[f64], &[&str])] = &[
        (
            r#"{"type":"number","minimum":0}"#,
            &[0.0, f64::INFINITY],
            &["-1", "-0.5"],
        ),
        (
            r#"{"type":"number","minimum":-2.5,"maximum":3}"#,
            &[-2.5, 3.0],
            &["-3", "3.5", "4"],
        ),
        (
            r#"{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}"#,
            &[0.0, 1.0],
            &["0", "1", "1.5"],
        ),
        (
            r#"{"type":"number","maximum":-10}"#,
            &[f64::NEG_INFINITY, -10.0],
            &["-9.5", "0", "5"],
        ),
    ];
    for (sch, [lo, hi], bad) in cases.iter().map(|(s, r, b)| (s, [r[0], r[1]], b)) {
        let g = schema(sch);
        let excl = sch.contains("exclusive");
        let mut accepted = 0;
        // Every accepted number is in range; typical in-range values are accepted.
        for ip in -30..30 {
            for frac in ["", ".0", ".25", ".5", ".75", ".999"] {
                let text = format!("{ip}{frac}");
                let v: f64 = text.parse().unwrap();
                let in_range = if excl {
                    v > lo && v < hi
                } else {
                    v >= lo && v <= hi
                };
                if full(&g, &text) {
                    assert!(in_range, "{sch}: {text}");
                    accepted += 1;
                }
            }
        }
        assert!(accepted > 3, "{sch}");
        for b in bad.iter() {
            assert!(!full(&g, b), "{sch}: {b}");
        }
    }
    let g = schema(r#"{"type":"number","minimum":0,"maximum":100}"#);
    for ok in ["0", "100", "99.5", "42", "0.001"] {
        assert!(full(&g, ok), "{ok}");
    }
    assert!(!full(&g, "100.5") && !full(&g, "-0.1") && !full(&g, "1e3"));
    let g = schema(r#"{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}"#);
    assert!(full(&g, "0.5") && full(&g, "0.05") && !full(&g, "0.0") && !full(&g, "0"));
    let g = schema(r#"{"type":"number","exclusiveMaximum":0}"#);
    assert!(full(&g, "-0.5") && full(&g, "-3") && !full(&g, "-0.0") && !full(&g, "0"));
}

#[test]
fn unsupported_and_hostile_schemas_are_refused() {
    for (s, want) in [
        (
            r#"{"type":"number","minimum":1,"maximum":0.5}"#,
            "no number satisfies",
        ),
        (
            r#"{"type":"number","exclusiveMinimum":true}"#,
            "must be a number",
        ),
        (r#"{"not":{"type":"string"}}"#, "\"not\" is not supported"),
        (
            r#"{"type":"object","patternProperties":{"a":{}}}"#,
            "patternProperties",
        ),
        (r#"{"type":"array","uniqueItems":true}"#, "uniqueItems"),
        (r#"{"allOf":[{"type":"string"},{"minLength":1}]}"#, "allOf"),
        (
            r#"{"$ref":"https://example.com/s.json"}"#,
            "only local references",
        ),
        (r##"{"$ref":"#/$defs/missing"}"##, "does not resolve"),
        (
            r##"{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/a"},{"type":"null"}]}},"$ref":"#/$defs/a"}"##,
            "left recursion",
        ),
        (
            r##"{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}"##,
            "without a way to stop",
        ),
        (
            r##"{"$defs":{"a":{"type":"array","items":{"$ref":"#/$defs/a"},"minItems":1}},"$ref":"#/$defs/a"}"##,
            "no finite instance",
        ),
        (r#"{"type":"strin"}"#, "unknown type"),
        (r#"{"type":"string","maxLength":100000000}"#, "larger than"),
        (r#"{"enum":[]}"#, "enum has no value"),
        (r#"{"anyOf":[]}"#, "must not be empty"),
        (
            r#"{"type":"object","properties":{"a":{}},"required":["b"]}"#,
            "not listed",
        ),
        (
            r#"{"type":"string","minLength":5,"maxLength":2}"#,
            "larger than maxLength",
        ),
        (r#"{"type":"integer","const":"x"}"#, "const does not match"),
        ("false", "allows no value"),
        ("[1]", "must be an object"),
        ("{\"type\":\"string\"", "invalid JSON"),
        (r##"{"$ref":"#","type":"string"}"##, "combined with"),
    ] {
        let e = schema_err(s);
        assert!(e.contains(want), "{s}: {e}");
    }
    // Too deep.
    let mut deep = String::from("{\"type\":\"string\"}");
    for _ in 0..100 {
        deep = format!("{{\"type\":\"array\",\"items\":{deep}}}");
    }
    assert!(schema_err(&deep).contains("nested more than"));
    // Too big a grammar: many large bounded repetitions.
    let props: Vec<String> = (0..40)
        .map(|i| format!("\"p{i}\":{{\"type\":\"string\",\"maxLength\":20000}}"))
        .collect();
    let big = format!(
        "{{\"type\":\"object\",\"properties\":{{{}}}}}",
        props.join(",")
    );
    assert!(schema_err(&big).contains("too large"));
    // Very many subschemas.
    let many = format!(
        "{{\"anyOf\":[{}]}}",
        vec!["{\"type\":\"null\"}"; 100_001].join(",")
    );
    let t = std::time::Instant::now();
    assert!(schema_err(&many).contains("too many subschemas"));
    assert!(t.elapsed().as_secs() < 5);
    // Larger than the text limit.
    let huge = format!(
        "{{\"enum\":[{}]}}",
        vec!["1"; MAX_SCHEMA_BYTES / 2 + 1].join(",")
    );
    assert!(schema_err(&huge).contains("larger than"));
}

#[test]
fn schema_random_walks_are_valid_instances() {
    let g = schema(
        r#"{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0,"maximum":150},"tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3},"ok":{"type":"boolean"}},"required":["name","age"]}"#,
    );
    let mut rng = Rng::new(11);
    let mut n = 0;
    for _ in 0..200 {
        let Some(s) = sample_sentence(&g, &mut rng, 30) else {
            continue;
        };
        n += 1;
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let o = v.as_object().unwrap();
        assert!(o["name"].as_str().unwrap().chars().count() <= 8, "{s}");
        let age = o["age"].as_i64().unwrap();
        assert!((0..=150).contains(&age), "{s}");
        if let Some(t) = o.get("tags") {
            let t = t.as_array().unwrap();
            assert!(
                t.len() <= 3 && t.iter().all(|x| x == "a" || x == "b"),
                "{s}"
            );
        }
        if let Some(b) = o.get("ok") {
            assert!(b.is_boolean());
        }
        assert!(o
            .keys()
            .all(|k| ["name", "age", "tags", "ok"].contains(&k.as_str())));
    }
    assert!(n > 100, "{n}");
}

#[test]
fn key_order_of_the_schema_text_is_kept() {
    let g = schema(
        r#"{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"integer"}},"required":["zeta","alpha"]}"#,
    );
    assert!(full(&g, r#"{"zeta":1,"alpha":2}"#));
    assert!(!full(&g, r#"{"alpha":2,"zeta":1}"#));
}

/// A tiny vocabulary: single characters plus some multi-byte pieces.
fn toy_vocab() -> (Arc<TokenVocab>, Vec<&'static str>) {
    let words = vec![
        "{", "}", "\"", "a", "b", ":", ",", " ", "1", "2", "{\"", "\":", "\"a\"", "true", "tr",
        "ue", "null", "}\n", "xyz", "[", "]", "\"}", "é",
    ];
    let pieces: Vec<(u32, &[u8])> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (i as u32, w.as_bytes()))
        .collect();
    // id 23: a control token (no bytes), id 24: end of generation.
    let n = words.len() + 2;
    let v = TokenVocab::from_pieces(pieces.into_iter(), vec![24], n);
    (Arc::new(v), words)
}

fn allowed(c: &mut Constraint) -> Vec<u32> {
    let mask = c.mask().unwrap().to_vec();
    (0..mask.len() as u32 * 64)
        .filter(|&i| mask[i as usize / 64] >> (i % 64) & 1 == 1)
        .collect()
}

#[test]
fn masks_match_a_brute_force_check() {
    let (vocab, words) = toy_vocab();
    let g = schema(r#"{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}"#);
    let mut c = Constraint::new(g.clone(), vocab.clone()).unwrap();
    let text = ["{\"", "a", "\":", " ", "tr", "ue", "}"];
    let mut so_far = String::new();
    for piece in text {
        let got = allowed(&mut c);
        let want: Vec<u32> = (0..words.len() as u32)
            .filter(|&i| prefix(&g, &format!("{so_far}{}", words[i as usize])))
            .collect();
        assert_eq!(got, want, "after {so_far:?}");
        let id = words.iter().position(|w| *w == piece).unwrap() as u32;
        assert!(c.allows(id).unwrap());
        c.accept(id).unwrap();
        so_far.push_str(piece);
    }
    assert!(c.is_complete());
    let got = allowed(&mut c);
    assert!(
        got.contains(&24),
        "end of generation once complete: {got:?}"
    );
    assert!(!got.contains(&23), "never a control token");
    assert!(!got.contains(&7), "no trailing whitespace once complete");
    assert!(!c.allows(7).unwrap());
    assert!(c.accept(8).is_err(), "a digit after the object is refused");
}

#[test]
fn constrained_sampling_follows_the_grammar() {
    let (vocab, words) = toy_vocab();
    let g = json_g();
    let n = vocab.n_vocab();
    for temperature in [0.0f32, 1.0] {
        let mut sampler = Sampler::new(
            SamplerOptions {
                temperature,
                seed: 3,
                ..SamplerOptions::default()
            },
            n,
            4096,
        )
        .unwrap();
        let mut c = Constraint::new(g.clone(), vocab.clone()).unwrap();
        // First step: logits that push hard for "xyz" (not a JSON start) and the control
        // token; afterwards a preference for closing, so the walk ends.
        let mut logits = vec![0.0f32; n];
        logits[18] = 50.0;
        logits[23] = 40.0;
        let mut out = String::new();
        let mut ended = false;
        for _ in 0..200 {
            match c.sample(&mut sampler, &logits, &[]).unwrap() {
                Some(24) | None => {
                    ended = true;
                    break;
                }
                Some(t) => out.push_str(words[t as usize]),
            }
            assert!(!out.starts_with("xyz"));
            logits[18] = -5.0;
            for (id, l) in [(2, 10.0), (1, 9.0), (11, 9.5), (8, 8.0), (24, 30.0)] {
                logits[id] = l;
            }
        }
        assert!(ended, "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        assert!(v.is_object());
    }
}

#[test]
fn a_finished_sentence_forces_the_end() {
    let (vocab, _) = toy_vocab();
    let g = schema(r#"{"const":1}"#);
    let mut c = Constraint::new(g, vocab.clone()).unwrap();
    c.accept(8).unwrap();
    c.accept(7).unwrap(); // the one trailing space
    assert!(c.is_finished());
    let mut sampler = Sampler::new(SamplerOptions::default(), vocab.n_vocab(), 64).unwrap();
    let logits = vec![0.0; vocab.n_vocab()];
    assert_eq!(c.sample(&mut sampler, &logits, &[]).unwrap(), Some(24));
    // Without any end token, the sequence just ends.
    let words: Vec<(u32, &[u8])> = vec![(0, b"1")];
    let v = Arc::new(TokenVocab::from_pieces(words.into_iter(), vec![], 1));
    let mut c = Constraint::new(schema(r#"{"const":1}"#), v).unwrap();
    let mut sampler = Sampler::new(SamplerOptions::default(), 1, 64).unwrap();
    assert_eq!(c.sample(&mut sampler, &[0.0], &[]).unwrap(), Some(0));
    assert_eq!(c.sample(&mut sampler, &[0.0], &[]).unwrap(), None);
}

#[test]
fn a_vocabulary_that_cannot_continue_is_an_error() {
    let words: Vec<(u32, &[u8])> = vec![(0, b"x")];
    let v = Arc::new(TokenVocab::from_pieces(words.into_iter(), vec![1], 2));
    let mut c = Constraint::new(json_g(), v).unwrap();
    let mut sampler = Sampler::new(SamplerOptions::default(), 2, 64).unwrap();
    let e = c.sample(&mut sampler, &[0.0, 0.0], &[]).unwrap_err();
    assert!(e.contains("no token"), "{e}");
}

#[test]
fn caches_are_compacted_without_changing_the_state() {
    let g = json_g();
    let mut m = Matcher::new(g.clone()).unwrap();
    assert!(m.accept_bytes(b"{\"a\": [1, {\"b\": \"x").unwrap());
    let mut twin = m.clone();
    for i in 0..2000u32 {
        let _ = twin.can_accept(format!("{i}\", \"k{i}\": [").as_bytes());
    }
    let before = twin.cached_states();
    twin.rebuild();
    assert!(twin.cached_states() < before);
    for tail in ["\"}]}", "y\"}, 2]}", "\\n\"}]}"] {
        let (mut a, mut b) = (m.clone(), twin.clone());
        assert!(
            a.accept_bytes(tail.as_bytes()).unwrap() && a.is_complete(),
            "{tail}"
        );
        assert!(
            b.accept_bytes(tail.as_bytes()).unwrap() && b.is_complete(),
            "{tail}"
        );
    }
}

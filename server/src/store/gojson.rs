//! JSON written the way Go's `encoding/json` writes it, so the blobs and manifests we
//! create are byte-identical to Ollama's (same digests for the same content): `<`, `>`,
//! `&`, U+2028 and U+2029 escaped as `\u003c`…, floats in Go's shortest form
//! (`4096`, `0.7`, `1e-7`, `1e+21`), and a trailing newline as `json.Encoder` adds.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// Serialises like Go's `json.NewEncoder(w).Encode(v)`: compact, trailing `\n`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising plain data (strings, numbers, maps with string keys) into a Vec
    // cannot fail; NaN/inf floats are written as null by serde_json.
    value
        .serialize(&mut ser)
        .expect("serialising JSON into memory");
    out.push(b'\n');
    out
}

struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        // Same short forms as Go ≥ 1.22 (\b and \f included); other control
        // characters as \u00XX with lowercase hex, as Go writes them.
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let buf = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ];
                return writer.write_all(&buf);
            }
        };
        writer.write_all(s)
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(format_go_float(value, false).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(format_go_float(f64::from(value), true).as_bytes())
    }
}

/// Go's JSON float format: shortest round-trip digits, plain notation for
/// `1e-6 <= |v| < 1e21`, else exponent notation with a signed, at least
/// one-digit exponent (`1e-7`, `1e+21`).
pub(crate) fn format_go_float(v: f64, is_f32: bool) -> String {
    let abs = v.abs();
    let plain = abs == 0.0 || (1e-6..1e21).contains(&abs);
    let s = match (plain, is_f32) {
        (true, true) => format!("{}", v as f32),
        (true, false) => format!("{v}"),
        (false, true) => format!("{:e}", v as f32),
        (false, false) => format!("{v:e}"),
    };
    if plain {
        return s;
    }
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s,
    }
}

/// Go's `%v` for a float64 (`strconv` `'g'` with shortest digits): exponent notation
/// when the decimal exponent is < -4 or >= 6 (`1e-05`, `1e+06`), with at least two
/// exponent digits; plain otherwise (`0.7`, `4096`).
pub(crate) fn format_go_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v.is_infinite() {
            if v > 0.0 { "+Inf" } else { "-Inf" }.into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_go_encoder() {
        let v =
            json!({"stop": ["<|eot_id|>", "a&b"], "temperature": 0.7, "num_ctx": 4096, "b": true});
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            "{\"b\":true,\"num_ctx\":4096,\"stop\":[\"\\u003c|eot_id|\\u003e\",\"a\\u0026b\"],\"temperature\":0.7}\n"
        );
        assert_eq!(
            to_vec(&json!("\u{2028}\u{1}\n\t\"\\é")),
            b"\"\\u2028\\u0001\\n\\t\\\"\\\\\xc3\xa9\"\n"
        );
    }

    #[test]
    fn floats() {
        assert_eq!(format_go_float(4096.0, false), "4096");
        assert_eq!(format_go_float(0.7, false), "0.7");
        assert_eq!(format_go_float(1e-7, false), "1e-7");
        assert_eq!(format_go_float(1e-6, false), "0.000001");
        assert_eq!(format_go_float(1e21, false), "1e+21");
        assert_eq!(format_go_float(-2.5e22, false), "-2.5e+22");
        assert_eq!(format_go_float(f64::from(0.1f32), true), "0.1");
        assert_eq!(format_go_float(0.0, false), "0");
        assert_eq!(to_vec(&1e-5f32), b"0.00001\n");
    }

    #[test]
    fn go_g_format() {
        assert_eq!(format_go_g(0.7), "0.7");
        assert_eq!(format_go_g(4096.0), "4096");
        assert_eq!(format_go_g(1e-5), "1e-05");
        assert_eq!(format_go_g(0.0001), "0.0001");
        assert_eq!(format_go_g(-3.0), "-3");
        assert_eq!(format_go_g(1e21), "1e+21");
        assert_eq!(format_go_g(1e6), "1e+06");
        assert_eq!(format_go_g(123456.0), "123456");
        assert_eq!(format_go_g(123456789.5), "1.234567895e+08");
    }
}

//! Go `time.ParseDuration` and Ollama's `keep_alive` values.

use serde_json::Value;
use std::time::Duration;

/// Parses a Go duration string (`"5m"`, `"1h30m"`, `"-1.5s"`, `"300ms"`, `"0"`) into signed
/// nanoseconds, with Go's error texts.
pub fn parse_go_duration(input: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(input));
    let mut s = input;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if s.starts_with('.') {
            s = &s[1..];
            let n = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            frac_part = &s[..n];
            s = &s[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                go_quote(input)
            ));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(input)
                ))
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Go keeps at most the digits that can matter; 30 digits of u128 are plenty.
            let digits = &frac_part[..frac_part.len().min(30)];
            let f: u128 = digits.parse().map_err(|_| invalid())?;
            let div = 10u128.pow(digits.len() as u32);
            v = v
                .checked_add(f.checked_mul(scale).ok_or_else(invalid)? / div)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > 1u128 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        Ok((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u128 {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

/// Go's `%q` for the strings that appear in duration errors.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// How long a model stays loaded after its last request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Negative values: never unloaded by the timer.
    Forever,
    /// Zero unloads as soon as the last request ends.
    For(Duration),
}

impl KeepAlive {
    pub const DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(300));

    pub fn from_nanos(ns: i64) -> KeepAlive {
        if ns < 0 {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::from_nanos(ns as u64))
        }
    }

    pub fn is_zero(&self) -> bool {
        matches!(self, KeepAlive::For(d) if d.is_zero())
    }

    /// The request form (api.md §7): a JSON number of seconds (float allowed) or a Go
    /// duration string; negative = forever; `null` = not given.
    pub fn from_json(v: &Value) -> Result<Option<KeepAlive>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => {
                let secs = n.as_f64().unwrap_or(0.0);
                if secs < 0.0 {
                    return Ok(Some(KeepAlive::Forever));
                }
                let ns = secs * 1e9;
                if !ns.is_finite() || ns >= i64::MAX as f64 {
                    return Ok(Some(KeepAlive::Forever));
                }
                Ok(Some(KeepAlive::For(Duration::from_nanos(ns as u64))))
            }
            Value::String(s) => parse_go_duration(s).map(|ns| Some(KeepAlive::from_nanos(ns))),
            other => Err(format!("Unsupported type: '{}'", go_type_name(other))),
        }
    }

    /// The `OLLAMA_KEEP_ALIVE` form: a Go duration or integer seconds.
    pub fn from_env(s: &str) -> Result<KeepAlive, String> {
        if let Ok(ns) = parse_go_duration(s) {
            return Ok(KeepAlive::from_nanos(ns));
        }
        match s.parse::<i64>() {
            Ok(n) => Ok(KeepAlive::from_nanos(n.saturating_mul(1_000_000_000))),
            Err(_) => Err(format!(
                "{s:?} is neither a duration (e.g. \"5m\", \"1h30m\", \"-1m\") nor whole seconds"
            )),
        }
    }
}

/// The Go type name `encoding/json` gives a JSON value decoded into `interface{}`.
pub fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("-1m"), Ok(-60_000_000_000));
        assert_eq!(parse_go_duration("+2us"), Ok(2_000));
        assert_eq!(parse_go_duration("3µs"), Ok(3_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("0s"), Ok(0));
        assert_eq!(
            parse_go_duration("-1"),
            Err("time: missing unit in duration \"-1\"".into())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert!(parse_go_duration("m").is_err());
        assert!(parse_go_duration("1..5s").is_err());
        assert!(parse_go_duration("9999999999h").is_err());
    }

    #[test]
    fn keep_alive_json_forms() {
        let s = |d: u64| Ok(Some(KeepAlive::For(Duration::from_secs(d))));
        assert_eq!(KeepAlive::from_json(&json!(60)), s(60));
        assert_eq!(
            KeepAlive::from_json(&json!(0.5)),
            Ok(Some(KeepAlive::For(Duration::from_millis(500))))
        );
        assert_eq!(KeepAlive::from_json(&json!("10m")), s(600));
        assert_eq!(KeepAlive::from_json(&json!("0")), s(0));
        assert_eq!(KeepAlive::from_json(&json!(0)), s(0));
        assert_eq!(
            KeepAlive::from_json(&json!(-1)),
            Ok(Some(KeepAlive::Forever))
        );
        assert_eq!(
            KeepAlive::from_json(&json!("-1m")),
            Ok(Some(KeepAlive::Forever))
        );
        assert_eq!(KeepAlive::from_json(&json!(null)), Ok(None));
        assert_eq!(
            KeepAlive::from_json(&json!(true)),
            Err("Unsupported type: 'bool'".into())
        );
        assert!(KeepAlive::from_json(&json!("-1")).is_err());
    }

    #[test]
    fn keep_alive_env_forms() {
        assert_eq!(
            KeepAlive::from_env("10"),
            Ok(KeepAlive::For(Duration::from_secs(10)))
        );
        assert_eq!(KeepAlive::from_env("-1"), Ok(KeepAlive::Forever));
        assert_eq!(
            KeepAlive::from_env("1h"),
            Ok(KeepAlive::For(Duration::from_secs(3600)))
        );
        assert!(KeepAlive::from_env("soon").is_err());
    }
}

//! Output formats the `ollama` CLI uses, reproduced exactly: human sizes and
//! counts, relative times, Go `time.Duration` strings, Go `%g`/`%v`, the
//! tablewriter layout of `list`/`ps`/`show`, the `--verbose` timing block and the
//! streaming word wrapper.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

// ---- sizes and counts ----------------------------------------------------------

/// 1000-based sizes: `<n> B`, and `KB`/`MB`/`GB`/`TB` with no decimals from 10 up,
/// one decimal below 10 unless the value is integral (`2.0 GB`, `2 GB`, `13 GB`).
pub fn human_bytes(b: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let Some(&(scale, unit)) = UNITS.iter().find(|(s, _)| b >= *s) else {
        return format!("{b} B");
    };
    let value = b as f64 / scale as f64;
    if value >= 10.0 || value == value.trunc() {
        format!("{} {unit}", value as i64)
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Parameter counts: `3.2B`, `8B`, `135.00M`/`135M`, `12K`, `999`.
pub fn human_number(n: u64) -> String {
    const B: f64 = 1e9;
    const M: f64 = 1e6;
    let f = n as f64;
    if n >= 1_000_000_000 {
        let v = f / B;
        if v == v.floor() {
            format!("{v:.0}B")
        } else {
            format!("{v:.1}B")
        }
    } else if n >= 1_000_000 {
        let v = f / M;
        if v == v.floor() {
            format!("{v:.0}M")
        } else {
            format!("{v:.2}M")
        }
    } else if n >= 1000 {
        format!("{:.0}K", f / 1000.0)
    } else {
        n.to_string()
    }
}

// ---- times ---------------------------------------------------------------------

/// Nanoseconds since the Unix epoch of an RFC 3339 timestamp (`Z` or `±hh:mm`,
/// any number of fraction digits). `None` when malformed.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset_secs: i64 = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            if &tz[3..4] != ":" {
                return None;
            }
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(secs as i128 * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`) in Unix nanoseconds.
const GO_ZERO_TIME: i128 = -62_135_596_800 * 1_000_000_000;

pub fn now_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `N minutes` etc. for a non-negative duration in nanoseconds.
fn human_duration(nanos: i128) -> String {
    let seconds = nanos / 1_000_000_000;
    match seconds {
        s if s < 1 => return "Less than a second".into(),
        1 => return "1 second".into(),
        s if s < 60 => return format!("{s} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".into(),
        m if m < 60 => return format!("{m} minutes"),
        _ => {}
    }
    let hours = (nanos as f64 / 3.6e12).round() as i128;
    match hours {
        1 => "About an hour".into(),
        h if h < 48 => format!("{h} hours"),
        h if h < 24 * 7 * 2 => format!("{} days", h / 24),
        h if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        h if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        h => format!("{} years", h / 24 / 365),
    }
}

/// Ollama's `format.HumanTime`: `2 weeks ago`, `4 minutes from now`, `Forever`
/// (more than 20 years ahead), `zero` for Go's zero time or an unparsable stamp.
pub fn human_time_at(timestamp: &str, zero: &str, now: i128) -> String {
    let Some(t) = parse_rfc3339(timestamp).filter(|&t| t != GO_ZERO_TIME) else {
        return zero.to_string();
    };
    let delta = now - t;
    let hours = delta / 3_600_000_000_000;
    if hours / 24 / 365 < -20 {
        "Forever".into()
    } else if delta < 0 {
        format!("{} from now", human_duration(-delta))
    } else {
        format!("{} ago", human_duration(delta))
    }
}

pub fn human_time(timestamp: &str, zero: &str) -> String {
    human_time_at(timestamp, zero, now_nanos())
}

// ---- Go durations --------------------------------------------------------------

/// Go's `time.Duration.String()`: `1.2345s`, `12.3ms`, `500µs`, `5m0s`, `1h2m3s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (int, frac) = split_frac(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (secs, frac) = split_frac(u, 9);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{frac}s"));
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v` split at `prec` decimal digits: the integer part and `.digits` without
/// trailing zeros (empty when the fraction is zero).
fn split_frac(v: u64, prec: u32) -> (u64, String) {
    let scale = 10u64.pow(prec);
    let (int, frac) = (v / scale, v % scale);
    if frac == 0 {
        return (int, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (int, format!(".{}", digits.trim_end_matches('0')))
}

/// Go's `time.ParseDuration`, shared with the server (one parser, Go's error texts).
pub use server::api::parse_go_duration;

// ---- Go value printing -------------------------------------------------------------

/// Go's `%v`/`%g` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): shortest
/// digits, exponent form (`3.212749888e+09`, `1e+06`) when the decimal exponent is
/// below -4 or at least 6.
pub fn go_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// A JSON number as Go prints a decoded `float64` with `%v`.
pub fn go_number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) if (i as f64).abs() < 1e21 => go_g(i as f64),
        (_, Some(u), _) => go_g(u as f64),
        (_, _, Some(f)) => go_g(f),
        _ => n.to_string(),
    }
}

/// Go's `%v` of a typed option value (`/show parameters`): integers stay
/// integers, floats as `%v` of a float, lists as `[a b]`.
pub fn go_option(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_option).collect();
            format!("[{}]", parts.join(" "))
        }
        other => go_value(other),
    }
}

/// Go's `%v` of a value decoded from JSON into `any` (numbers are float64).
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

// ---- tables --------------------------------------------------------------------------

/// tablewriter as the `ollama` CLI configures it: left aligned, no borders, cells
/// padded to their column's width and followed by `padding` (the header's last
/// cell by one space); cells wider than `max_width` are wrapped at spaces.
pub struct Table {
    pub header: Option<Vec<String>>,
    pub rows: Vec<Vec<String>>,
    pub max_width: usize,
    pub padding: &'static str,
}

impl Table {
    pub fn new(header: Option<&[&str]>) -> Table {
        Table {
            header: header.map(|h| h.iter().map(|s| s.to_string()).collect()),
            rows: Vec::new(),
            max_width: 30,
            padding: "    ",
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let ncols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain(self.header.as_ref().map(Vec::len))
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; ncols];
        let mut split = |cells: &[String]| -> Vec<Vec<String>> {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (lines, w) = cell_lines(c, self.max_width);
                    widths[i] = widths[i].max(w);
                    lines
                })
                .collect()
        };
        let header = self.header.as_ref().map(|h| split(h));
        let rows: Vec<Vec<Vec<String>>> = self.rows.iter().map(|r| split(r)).collect();

        let mut out = String::new();
        if let Some(h) = header {
            for (i, cell) in h.iter().enumerate() {
                out.push_str(&pad_right(
                    cell.first().map_or("", String::as_str),
                    widths[i],
                ));
                out.push_str(if i + 1 == ncols { " " } else { self.padding });
            }
            out.push('\n');
        }
        for row in rows {
            let height = row.iter().map(Vec::len).max().unwrap_or(0);
            for line in 0..height {
                for (i, cell) in row.iter().enumerate() {
                    let text = cell.get(line).map_or("  ", String::as_str);
                    out.push_str(&pad_right(text, widths[i]));
                    out.push_str(self.padding);
                }
                out.push('\n');
            }
        }
        out
    }
}

fn pad_right(s: &str, width: usize) -> String {
    let w = s.width();
    if w >= width {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(width - w))
    }
}

/// A cell's lines and width: split at newlines; paragraphs wider than `max` are
/// wrapped (minimum raggedness, as tablewriter's `WrapString`) and separated by a
/// `" "` line.
fn cell_lines(cell: &str, max: usize) -> (Vec<String>, usize) {
    let raw: Vec<&str> = cell.split('\n').collect();
    let mut width = raw.iter().map(|l| l.width()).max().unwrap_or(0);
    if width <= max {
        return (raw.into_iter().map(str::to_string).collect(), width);
    }
    width = max;
    let mut new_width = width;
    let mut lines = Vec::new();
    for (i, para) in raw.iter().enumerate() {
        let (wrapped, _) = wrap_string(para, width);
        for l in &wrapped {
            new_width = new_width.max(l.width());
        }
        if i > 0 {
            lines.push(" ".to_string());
        }
        lines.extend(wrapped);
    }
    (lines, new_width)
}

/// tablewriter's `WrapString`: words split at single spaces, broken into lines of at
/// most `lim` columns minimising raggedness.
fn wrap_string(s: &str, lim: usize) -> (Vec<String>, usize) {
    let words: Vec<&str> = s.split(' ').collect();
    let lim = words.iter().map(|w| w.width()).fold(lim, usize::max);
    let n = words.len();
    // The dynamic programme is quadratic; very long paragraphs wrap greedily.
    if n > 2000 {
        let mut lines = Vec::new();
        let mut cur = String::new();
        for w in words {
            if !cur.is_empty() && cur.width() + 1 + w.width() > lim {
                lines.push(std::mem::take(&mut cur));
            } else if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
        lines.push(cur);
        return (lines, lim);
    }
    const PENALTY: i64 = 100_000;
    let widths: Vec<i64> = words.iter().map(|w| w.width() as i64).collect();
    // length(i, j): words i..=j joined with single spaces.
    let prefix: Vec<i64> = std::iter::once(0)
        .chain(widths.iter().scan(0, |acc, w| {
            *acc += w;
            Some(*acc)
        }))
        .collect();
    let length = |i: usize, j: usize| prefix[j + 1] - prefix[i] + (j - i) as i64;
    let lim_i = lim as i64;
    let mut nbrk = vec![n; n];
    let mut cost = vec![i64::from(i32::MAX); n];
    for i in (0..n).rev() {
        if length(i, n - 1) <= lim_i {
            cost[i] = 0;
            nbrk[i] = n;
        } else {
            for j in i + 1..n {
                let d = lim_i - length(i, j - 1);
                let mut c = d * d + cost[j];
                if length(i, j - 1) > lim_i {
                    c += PENALTY;
                }
                if c < cost[i] {
                    cost[i] = c;
                    nbrk[i] = j;
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..nbrk[i]].join(" "));
        i = nbrk[i];
    }
    (lines, lim)
}

// ---- timings -------------------------------------------------------------------------

/// The `--verbose` block (stderr) from a final generate/chat chunk; only non-zero
/// metrics are printed.
pub fn metrics_summary(chunk: &Value) -> String {
    let int = |k: &str| chunk.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut out = String::new();
    let (total, load) = (int("total_duration"), int("load_duration"));
    let (pcount, pdur) = (int("prompt_eval_count"), int("prompt_eval_duration"));
    let (count, dur) = (int("eval_count"), int("eval_duration"));
    if total > 0 {
        out.push_str(&format!("total duration:       {}\n", go_duration(total)));
    }
    if load > 0 {
        out.push_str(&format!("load duration:        {}\n", go_duration(load)));
    }
    if pcount > 0 {
        out.push_str(&format!("prompt eval count:    {pcount} token(s)\n"));
    }
    if pdur > 0 {
        out.push_str(&format!("prompt eval duration: {}\n", go_duration(pdur)));
        out.push_str(&format!(
            "prompt eval rate:     {:.2} tokens/s\n",
            pcount as f64 / (pdur as f64 / 1e9)
        ));
    }
    if count > 0 {
        out.push_str(&format!("eval count:           {count} token(s)\n"));
    }
    if dur > 0 {
        out.push_str(&format!("eval duration:        {}\n", go_duration(dur)));
        out.push_str(&format!(
            "eval rate:            {:.2} tokens/s\n",
            count as f64 / (dur as f64 / 1e9)
        ));
    }
    out
}

// ---- word wrap -------------------------------------------------------------------------

/// Ollama's streaming word wrap: text is echoed as it arrives; when a line would
/// reach `width - 5` columns the partial word is erased (cursor back + clear to
/// end of line) and reprinted on the next line. Words longer than `width - 10`
/// are broken at the margin instead. `width < 10` disables wrapping.
#[derive(Debug, Default)]
pub struct WordWrap {
    width: usize,
    enabled: bool,
    line_len: usize,
    word: String,
}

impl WordWrap {
    pub fn new(enabled: bool, width: usize) -> WordWrap {
        WordWrap {
            width,
            enabled: enabled && width >= 10,
            ..WordWrap::default()
        }
    }

    /// The bytes to write for `content`.
    pub fn push(&mut self, content: &str) -> String {
        let mut out = String::new();
        if !self.enabled {
            out.push_str(&self.word);
            self.word.clear();
            out.push_str(content);
            return out;
        }
        for ch in content.chars() {
            let ch_width = ch.width().unwrap_or(0);
            if self.line_len + 1 > self.width - 5 {
                if self.word.width() > self.width - 10 {
                    // Ollama reprints the whole word here, duplicating it on screen;
                    // breaking it at the margin is what that code means to do.
                    out.push('\n');
                    out.push(ch);
                    self.word.clear();
                    self.word.push(ch);
                    self.line_len = ch_width;
                    continue;
                }
                let back = self.word.width();
                if back > 0 {
                    out.push_str(&format!("\x1b[{back}D"));
                }
                out.push_str("\x1b[K\n");
                out.push_str(&self.word);
                out.push(ch);
                self.line_len = self.word.width() + ch_width;
            } else {
                out.push(ch);
                self.line_len += ch_width;
                if ch_width >= 2 {
                    self.word.clear();
                    continue;
                }
                match ch {
                    ' ' | '\t' => self.word.clear(),
                    '\n' | '\r' => {
                        self.line_len = 0;
                        self.word.clear();
                    }
                    _ => self.word.push(ch),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1 KB");
        assert_eq!(human_bytes(1500), "1.5 KB");
        assert_eq!(human_bytes(2_019_393_189), "2.0 GB");
        assert_eq!(human_bytes(2_000_000_000), "2 GB");
        assert_eq!(human_bytes(4_700_000_000), "4.7 GB");
        assert_eq!(human_bytes(13_000_000_000), "13 GB");
        assert_eq!(human_bytes(13_900_000_000), "13 GB");
        assert_eq!(human_bytes(5_137_025_024), "5.1 GB");
        assert_eq!(human_bytes(270_000_000), "270 MB");
        assert_eq!(human_bytes(1_200_000_000_000), "1.2 TB");
    }

    #[test]
    fn numbers() {
        assert_eq!(human_number(3_212_749_888), "3.2B");
        assert_eq!(human_number(8_000_000_000), "8B");
        assert_eq!(human_number(134_515_008), "134.52M");
        assert_eq!(human_number(7_000_000), "7M");
        assert_eq!(human_number(12_345), "12K");
        assert_eq!(human_number(999), "999");
    }

    #[test]
    fn relative_times() {
        let now = parse_rfc3339("2025-05-20T12:00:00Z").unwrap();
        let at = |s: &str| human_time_at(s, "Never", now);
        assert_eq!(at("2025-05-20T12:00:00Z"), "Less than a second ago");
        assert_eq!(at("2025-05-20T11:59:59Z"), "1 second ago");
        assert_eq!(at("2025-05-20T11:59:30Z"), "30 seconds ago");
        assert_eq!(at("2025-05-20T11:59:00Z"), "About a minute ago");
        assert_eq!(at("2025-05-20T11:55:00Z"), "5 minutes ago");
        assert_eq!(at("2025-05-20T11:00:00Z"), "About an hour ago");
        assert_eq!(at("2025-05-20T09:00:00Z"), "3 hours ago");
        assert_eq!(at("2025-05-18T12:00:00Z"), "2 days ago");
        assert_eq!(at("2025-05-06T12:00:00Z"), "2 weeks ago");
        assert_eq!(at("2025-02-20T12:00:00Z"), "2 months ago");
        assert_eq!(at("2022-05-20T12:00:00Z"), "3 years ago");
        // Offsets are honoured: 05:00-07:00 is 12:00Z.
        assert_eq!(
            at("2025-05-20T04:59:59.123456789-07:00"),
            "Less than a second ago"
        );
        assert_eq!(at("2025-05-20T12:04:00.5Z"), "4 minutes from now");
        assert_eq!(at("2318-01-01T00:00:00Z"), "Forever");
        assert_eq!(at("0001-01-01T00:00:00Z"), "Never");
        assert_eq!(at("garbage"), "Never");
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(12_300_000), "12.3ms");
        assert_eq!(go_duration(130_079_000), "130.079ms");
        assert_eq!(go_duration(1_234_500_000), "1.2345s");
        assert_eq!(go_duration(10_706_818_083), "10.706818083s");
        assert_eq!(go_duration(300_000_000_000), "5m0s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(-60_000_000_000), "-1m0s");
    }

    #[test]
    fn duration_parsing() {
        assert_eq!(parse_go_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("-1m"), Ok(-60_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(
            parse_go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_go_duration("1x"),
            Err("time: unknown unit \"x\" in duration \"1x\"".into())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert!(parse_go_duration("9999999999h").is_err());
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_g(131072.0), "131072");
        assert_eq!(go_g(1e6), "1e+06");
        assert_eq!(go_g(3_212_749_888.0), "3.212749888e+09");
        assert_eq!(go_g(1e21), "1e+21");
        assert_eq!(go_g(0.7), "0.7");
        assert_eq!(go_g(1e-5), "1e-05");
        assert_eq!(go_g(0.0001), "0.0001");
        assert_eq!(go_value(&serde_json::json!([1, "a", 2.5])), "[1 a 2.5]");
        assert_eq!(go_value(&serde_json::json!(1234567)), "1.234567e+06");
        assert_eq!(go_option(&serde_json::json!(1234567)), "1234567");
        assert_eq!(go_option(&serde_json::json!(["a", "b"])), "[a b]");
    }

    #[test]
    fn table_layout() {
        let mut t = Table::new(Some(&["NAME", "ID", "SIZE", "MODIFIED"]));
        t.row(vec![
            "llama3.2:latest".into(),
            "a80c4f17acd5".into(),
            "2.0 GB".into(),
            "2 weeks ago".into(),
        ]);
        assert_eq!(
            t.render(),
            "NAME               ID              SIZE      MODIFIED    \n\
             llama3.2:latest    a80c4f17acd5    2.0 GB    2 weeks ago    \n"
        );
        let empty = Table::new(Some(&["NAME", "ID"]));
        assert_eq!(empty.render(), "NAME    ID \n");
    }

    #[test]
    fn table_wraps_wide_cells() {
        let mut t = Table::new(None);
        t.row(vec![
            "".into(),
            "aaa bbb ccc ddd eee fff ggg hhh iii jjj".into(),
        ]);
        // 39 columns > 30: wrapped at minimum raggedness (the last line is free),
        // the column 30 wide; the empty first cell's missing line is two spaces.
        assert_eq!(
            t.render(),
            format!(
                "    aaa bbb ccc ddd eee fff ggg       \n      hhh iii jjj{}    \n",
                " ".repeat(19)
            )
        );
    }

    #[test]
    fn verbose_block() {
        let chunk = serde_json::json!({
            "done": true, "total_duration": 1_234_500_000i64, "load_duration": 12_300_000,
            "prompt_eval_count": 26, "prompt_eval_duration": 130_000_000,
            "eval_count": 259, "eval_duration": 4_232_710_000i64
        });
        assert_eq!(
            metrics_summary(&chunk),
            "total duration:       1.2345s\n\
             load duration:        12.3ms\n\
             prompt eval count:    26 token(s)\n\
             prompt eval duration: 130ms\n\
             prompt eval rate:     200.00 tokens/s\n\
             eval count:           259 token(s)\n\
             eval duration:        4.23271s\n\
             eval rate:            61.19 tokens/s\n"
        );
        assert_eq!(metrics_summary(&serde_json::json!({"done": true})), "");
    }

    #[test]
    fn word_wrap() {
        // Width 20: lines break before reaching 15 columns.
        let mut w = WordWrap::new(true, 20);
        let out = w.push("hello world this is wrapped");
        assert_eq!(out, "hello world thi\x1b[3D\x1b[K\nthis is wrapped");
        // Chunked input wraps the same way as whole input.
        let mut a = WordWrap::new(true, 20);
        let mut chunked = String::new();
        for piece in ["hel", "lo wor", "ld this ", "is wrapped"] {
            chunked.push_str(&a.push(piece));
        }
        assert_eq!(chunked, out);
        // Newlines reset the line.
        let mut n = WordWrap::new(true, 20);
        assert_eq!(n.push("0123456789\n0123456789"), "0123456789\n0123456789");
        // Disabled (or too narrow) passes text through.
        assert_eq!(WordWrap::new(false, 80).push("a b"), "a b");
        assert_eq!(WordWrap::new(true, 9).push("a b"), "a b");
        // A word longer than width-10 is broken, not moved.
        let mut l = WordWrap::new(true, 20);
        assert_eq!(l.push("abcdefghijklmnopq"), "abcdefghijklmno\npq");
    }
}

//! Byte-level BPE pre-tokenizers: splitting text into words as llama.cpp's
//! `unicode_regex_split` does.
//!
//! llama.cpp runs a list of regexes, each refining the chunks of the previous one. The GPT-2 and
//! Llama-3 regexes have hand-written matchers in llama.cpp (reproduced here step by step,
//! including where they differ from a real regex engine, e.g. on unassigned codepoints). Every
//! other regex goes through `std::regex` (ECMAScript, backtracking) on a "collapsed" copy of the
//! text in which each non-ASCII codepoint becomes one placeholder per Unicode category and
//! `\p{..}` becomes a class of that placeholder plus its ASCII members. We reproduce that with
//! `fancy-regex` over the same collapsed text (private-use characters as placeholders), so
//! `\s`, `\p{L}` etc. mean exactly what they mean to llama.cpp.

use super::unicode::{self, Flags};

pub(crate) const GPT2: &str =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
pub(crate) const LLAMA3: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_ORIGINAL: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
pub(crate) const QWEN2: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// How llama.cpp configures a byte-level BPE vocabulary for one `tokenizer.ggml.pre` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreConfig {
    /// Canonical name of the pre-tokenizer family.
    pub family: &'static str,
    pub regexes: &'static [&'static str],
    /// Look a whole word up in the vocabulary before merging (llama.cpp `ignore_merges`).
    pub ignore_merges: bool,
    /// Post-process detokenized text (`clean_spaces`).
    pub clean_spaces: bool,
    /// Default for `add_bos` before the metadata override.
    pub add_bos: bool,
}

const DEFAULT_REGEXES: &[&str] = &[
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    GPT2,
    "\\p{N}+",
    "[0-9][0-9][0-9]",
];

/// llama.cpp's `default` pre-tokenizer (also used when `tokenizer.ggml.pre` is missing).
pub const DEFAULT_PRE: PreConfig = PreConfig {
    family: "default",
    regexes: DEFAULT_REGEXES,
    ignore_merges: false,
    clean_spaces: true,
    add_bos: false,
};

/// The `tokenizer.ggml.pre` values we support, with llama.cpp's settings for each
/// (`llama_vocab::impl::load` and `llm_tokenizer_bpe`). Names needing behaviour we do not
/// implement (extra attributes, SEP tokens, non-byte-level encodings) are absent on purpose.
pub fn pre_config(name: &str) -> Option<PreConfig> {
    const fn cfg(
        family: &'static str,
        regexes: &'static [&'static str],
        ignore_merges: bool,
        clean_spaces: bool,
        add_bos: bool,
    ) -> PreConfig {
        PreConfig {
            family,
            regexes,
            ignore_merges,
            clean_spaces,
            add_bos,
        }
    }
    Some(match name {
        "default" => DEFAULT_PRE,
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => cfg("llama3", &[LLAMA3], true, true, true),
        "dbrx" | "smaug-bpe" => cfg("llama3", &[LLAMA3], false, true, false),
        "gpt-2" | "phi-2" | "gigachat" | "a.x-4.0" | "mellum" | "exaone4" | "mpt" | "olmo"
        | "jais" => cfg("gpt2", &[GPT2], false, true, false),
        "trillion" | "granite-docling" => cfg("gpt2", &[GPT2], false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            cfg("starcoder", &["\\p{N}", GPT2], false, true, false)
        }
        "smollm" | "command-r" => cfg("starcoder", &["\\p{N}", GPT2], false, false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            cfg("qwen2", &[QWEN2], false, false, false)
        }
        "megrez" | "stablelm2" => cfg("qwen2", &[QWEN2], false, true, false),
        "falcon" => cfg(
            "falcon",
            &["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"],
            false,
            true,
            false,
        ),
        _ => return None,
    })
}

enum Splitter {
    Gpt2,
    Llama3,
    /// A regex over the collapsed (`collapsed == true`) or whitespace-normalised text.
    Regex {
        re: fancy_regex::Regex,
        collapsed: bool,
    },
}

pub(crate) struct PreTokenizer {
    splitters: Vec<Splitter>,
}

const UCATS: [(&str, u8); 10] = [
    ("\\p{N}", unicode::NUMBER),
    ("\\p{L}", unicode::LETTER),
    ("\\p{P}", unicode::PUNCTUATION),
    ("\\p{M}", unicode::MARK),
    ("\\p{S}", unicode::SYMBOL),
    ("\\p{Lu}", unicode::LETTER),
    ("\\p{Ll}", unicode::LETTER),
    ("\\p{Lt}", unicode::LETTER),
    ("\\p{Lm}", unicode::LETTER),
    ("\\p{Lo}", unicode::LETTER),
];

/// Placeholder codepoint of a category in the collapsed text (llama.cpp uses bytes 0xD0..0xD5;
/// any codepoints that cannot occur otherwise in the collapsed text do).
fn placeholder(category: u8) -> char {
    let off = match category {
        unicode::NUMBER => 1,
        unicode::LETTER => 2,
        unicode::PUNCTUATION => 3,
        unicode::MARK => 4,
        unicode::SYMBOL => 5,
        _ => 0,
    };
    char::from_u32(0xE0D0 + off).expect("private-use codepoint")
}

/// ASCII members of a category, as class items (llama.cpp `k_ucat_map`).
fn ascii_members(category: u8) -> &'static str {
    match category {
        unicode::NUMBER => "0-9",
        unicode::LETTER => "A-Za-z",
        unicode::PUNCTUATION => "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}",
        unicode::SYMBOL => "\\$\\+<->\\^`\\|",
        _ => "",
    }
}

fn uses_categories(expr: &str) -> bool {
    UCATS.iter().any(|(pat, _)| expr.contains(pat))
}

/// llama.cpp's rewrite of `\p{..}` into collapsed classes.
fn collapse_regex(expr: &str) -> Result<String, String> {
    if !expr.is_ascii() {
        return Err(format!(
            "regex mixes unicode categories and non-ASCII characters: {expr}"
        ));
    }
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'[' && (i == 0 || b[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && b[i] == b']' && b[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'p' && b[i + 2] == b'{' {
            if let Some(close) = expr[i + 3..].find('}').map(|p| p + i + 3) {
                if close <= i + 10 {
                    if let Some(&(_, cat)) = UCATS.iter().find(|(p, _)| *p == &expr[i..=close]) {
                        if !inside {
                            out.push('[');
                        }
                        out.push(placeholder(cat));
                        out.push_str(ascii_members(cat));
                        if !inside {
                            out.push(']');
                        }
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    Ok(out)
}

impl PreTokenizer {
    pub fn new(exprs: &[&str]) -> Result<Self, String> {
        let mut splitters = Vec::with_capacity(exprs.len());
        for &expr in exprs {
            let s = if expr == GPT2 {
                Splitter::Gpt2
            } else if expr == LLAMA3 || expr == LLAMA3_ORIGINAL {
                Splitter::Llama3
            } else {
                let collapsed = uses_categories(expr);
                let pattern = if collapsed {
                    collapse_regex(expr)?
                } else {
                    expr.to_string()
                };
                let re = fancy_regex::Regex::new(&pattern)
                    .map_err(|e| format!("pre-tokenizer regex {expr:?}: {e}"))?;
                Splitter::Regex { re, collapsed }
            };
            splitters.push(s);
        }
        Ok(Self { splitters })
    }

    /// Splits `text` into words; returns their byte ranges, in order, covering all of `text`.
    pub fn split(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let cpts: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let mut offsets = vec![cpts.len()];
        let mut collapsed: Option<(String, Vec<usize>)> = None;
        let mut plain: Option<(String, Vec<usize>)> = None;
        for s in &self.splitters {
            offsets = match s {
                Splitter::Gpt2 => split_gpt2(&cpts, &offsets),
                Splitter::Llama3 => split_llama3(&cpts, &offsets),
                Splitter::Regex {
                    re,
                    collapsed: true,
                } => {
                    let (t, pos) = collapsed.get_or_insert_with(|| mapped_text(&cpts, true));
                    split_regex(re, t, pos, &offsets)
                }
                Splitter::Regex {
                    re,
                    collapsed: false,
                } => {
                    let (t, pos) = plain.get_or_insert_with(|| mapped_text(&cpts, false));
                    split_regex(re, t, pos, &offsets)
                }
            };
        }
        // Codepoint lengths → byte ranges of the original text.
        let mut ranges = Vec::with_capacity(offsets.len());
        let mut chars = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()));
        let mut start_byte = chars.next().unwrap_or(0);
        for len in offsets {
            let mut end_byte = start_byte;
            for _ in 0..len {
                end_byte = chars.next().unwrap_or(text.len());
            }
            ranges.push(start_byte..end_byte);
            start_byte = end_byte;
        }
        ranges
    }
}

/// The text a `std::regex` fallback sees: collapsed categories, or raw codepoints; non-ASCII
/// whitespace becomes U+000B either way. Also returns the byte offset of every codepoint
/// (plus the end) in that string.
fn mapped_text(cpts: &[u32], collapse: bool) -> (String, Vec<usize>) {
    let mut s = String::with_capacity(cpts.len() * 2);
    let mut pos = Vec::with_capacity(cpts.len() + 1);
    for &c in cpts {
        pos.push(s.len());
        let ch = if c < 128 {
            char::from_u32(c).expect("ascii")
        } else if unicode::is_whitespace(c) {
            '\u{0B}'
        } else if collapse {
            placeholder(unicode::category(c))
        } else {
            char::from_u32(c).expect("decoded from a str")
        };
        s.push(ch);
    }
    pos.push(s.len());
    (s, pos)
}

/// `unicode_regex_split_stl`: matches and the gaps between them both become chunks.
fn split_regex(
    re: &fancy_regex::Regex,
    text: &str,
    pos: &[usize],
    offsets: &[usize],
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &len in offsets {
        let (b0, b1) = (pos[start], pos[start + len]);
        let chunk = &text[b0..b1];
        // Byte offset within the chunk → codepoint index within the chunk.
        let to_cpt = |byte: usize| pos[start..=start + len].partition_point(|&p| p < b0 + byte);
        let mut prev = 0usize;
        for m in re.find_iter(chunk) {
            // A backtracking limit error cannot happen for these patterns on chunked text; if it
            // did, the rest of the chunk is kept as one piece (like an unmatched tail).
            let Ok(m) = m else { break };
            let (ms, me) = (to_cpt(m.start()), to_cpt(m.end()));
            if ms > prev {
                out.push(ms - prev);
            }
            if me > ms {
                out.push(me - ms);
            }
            prev = me;
        }
        if prev < len {
            out.push(len - prev);
        }
        start += len;
    }
    out
}

/// Cursor over one chunk `[ini, end)` with llama.cpp's out-of-range conventions.
struct Chunk<'a> {
    cpts: &'a [u32],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

const OUT_OF_RANGE: u32 = u32::MAX;

impl Chunk<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        if self.ini <= pos && pos < self.end {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    fn flags(&self, pos: usize) -> Flags {
        if self.ini <= pos && pos < self.end {
            unicode::flags(self.cpts[pos])
        } else {
            Flags::default()
        }
    }
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

fn for_each_chunk(
    cpts: &[u32],
    offsets: &[usize],
    mut f: impl FnMut(&mut Chunk<'_>),
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let mut c = Chunk {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        f(&mut c);
        start += len;
    }
    out
}

/// Shared tail of both custom matchers: contractions (case-sensitive or not) at `pos`.
fn contraction(c: &Chunk<'_>, pos: usize, fold: bool) -> Option<usize> {
    let low = |x: u32| {
        if fold && (b'A' as u32..=b'Z' as u32).contains(&x) {
            x + 32
        } else {
            x
        }
    };
    if c.cpt(pos) != '\'' as u32 || pos + 1 >= c.end {
        return None;
    }
    let n1 = low(c.cpt(pos + 1));
    if [b's', b't', b'm', b'd'].iter().any(|&x| n1 == x as u32) {
        return Some(pos + 2);
    }
    if pos + 2 < c.end {
        let n2 = low(c.cpt(pos + 2));
        let pair = |a: u8, b: u8| n1 == a as u32 && n2 == b as u32;
        if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
            return Some(pos + 3);
        }
    }
    None
}

fn is_punct_like(f: Flags) -> bool {
    !(f.whitespace || f.is_letter() || f.is_number()) && f.any()
}

/// llama.cpp `unicode_regex_split_custom_gpt2`.
fn split_gpt2(cpts: &[u32], offsets: &[usize]) -> Vec<usize> {
    for_each_chunk(cpts, offsets, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            let cpt = c.cpt(pos);
            let flags = c.flags(pos);
            if let Some(end) = contraction(c, pos, false) {
                pos += c.add(end);
                continue;
            }
            let space = cpt == ' ' as u32;
            let mut f2 = if space { c.flags(pos + 1) } else { flags };
            if f2.is_letter() {
                pos += space as usize;
                while f2.is_letter() {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                c.add(pos);
                continue;
            }
            if f2.is_number() {
                pos += space as usize;
                while f2.is_number() {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                c.add(pos);
                continue;
            }
            if is_punct_like(f2) {
                pos += space as usize;
                while is_punct_like(f2) {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                c.add(pos);
                continue;
            }
            let mut n_ws = 0;
            while c.flags(pos + n_ws).whitespace {
                n_ws += 1;
            }
            if n_ws > 1 && c.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                c.add(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                c.add(pos);
                continue;
            }
            pos += 1;
            c.add(pos);
        }
    })
}

/// llama.cpp `unicode_regex_split_custom_llama3`.
fn split_llama3(cpts: &[u32], offsets: &[usize]) -> Vec<usize> {
    let is_crlf = |x: u32| x == '\r' as u32 || x == '\n' as u32;
    for_each_chunk(cpts, offsets, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            let cpt = c.cpt(pos);
            let flags = c.flags(pos);
            if let Some(end) = contraction(c, pos, true) {
                pos += c.add(end);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(is_crlf(cpt) || flags.is_number())
                && (flags.is_letter() || c.flags(pos + 1).is_letter())
            {
                pos += 1;
                while c.flags(pos).is_letter() {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            // \p{N}{1,3}
            if flags.is_number() {
                let mut ini = pos;
                while c.flags(pos).is_number() {
                    pos += 1;
                    if pos - ini >= 3 {
                        c.add(pos);
                        ini = pos;
                    }
                }
                c.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the first codepoint's own flags)
            let space = cpt == ' ' as u32;
            let mut f2 = if space { c.flags(pos + 1) } else { flags };
            if !(f2.whitespace || f2.is_letter() || f2.is_number()) && flags.any() {
                pos += space as usize;
                while is_punct_like(f2) {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                while is_crlf(c.cpt(pos)) {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            let mut n_ws = 0;
            let mut last_crlf_end = 0;
            while c.flags(pos + n_ws).whitespace {
                if is_crlf(c.cpt(pos + n_ws)) {
                    last_crlf_end = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            // \s*[\r\n]+
            if last_crlf_end > 0 {
                pos = last_crlf_end;
                c.add(pos);
                continue;
            }
            // \s+(?!\S)
            if n_ws > 1 && c.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                c.add(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                c.add(pos);
                continue;
            }
            pos += 1;
            c.add(pos);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &PreTokenizer, text: &str) -> Vec<String> {
        pre.split(text)
            .into_iter()
            .map(|r| text[r].to_string())
            .collect()
    }

    #[test]
    fn gpt2_words() {
        let p = PreTokenizer::new(&[GPT2]).unwrap();
        assert_eq!(
            words(&p, "Hello world's  end 123\n\n x"),
            ["Hello", " world", "'s", " ", " end", " 123", "\n\n", " x"]
        );
        assert_eq!(words(&p, "a   "), ["a", "   "]);
    }

    #[test]
    fn llama3_words() {
        let p = PreTokenizer::new(&[LLAMA3]).unwrap();
        assert_eq!(
            words(&p, "I'M 12345 ok!!\n\n  x\ty"),
            ["I", "'M", " ", "123", "45", " ok", "!!\n\n", " ", " x", "\ty"]
        );
    }

    #[test]
    fn qwen2_regex_matches_llama3_shape_with_single_digits() {
        let q = PreTokenizer::new(&[QWEN2]).unwrap();
        let l = PreTokenizer::new(&[LLAMA3]).unwrap();
        let text = "Hello world! 你好，世界 🚀 don't  double  space\n\ttab  \n end ";
        assert_eq!(words(&q, text), words(&l, text));
        assert_eq!(words(&q, "x 1234"), ["x", " ", "1", "2", "3", "4"]);
    }

    #[test]
    fn starcoder_splits_digits_first() {
        let p = PreTokenizer::new(&["\\p{N}", GPT2]).unwrap();
        assert_eq!(words(&p, "a 12b"), ["a", " ", "1", "2", "b"]);
    }

    #[test]
    fn collapse_rewrites_categories() {
        let c = collapse_regex("[^\\s\\p{L}]?\\p{N}").unwrap();
        assert_eq!(c, "[^\\s\u{E0D2}A-Za-z]?[\u{E0D1}0-9]");
        assert!(collapse_regex("\\p{L}é").is_err());
    }

    #[test]
    fn default_pre_compiles_and_covers_text() {
        let p = PreTokenizer::new(DEFAULT_PRE.regexes).unwrap();
        let text = "x = a+b; // 12345 «ok»";
        assert_eq!(words(&p, text).concat(), text);
    }
}

//! JSON Schema `pattern` (ECMA-262 syntax, the common subset) → grammar expression for the
//! *written* string content: characters that JSON must escape (`"`, `\`, controls) are
//! produced in escaped form, so the decoded string is what the pattern matches. A pattern
//! is unanchored unless it starts with `^` / ends with `$`, as JSON Schema says.
//!
//! Supported: literals, `.`, classes `[...]` (negated, ranges, `\d\w\s\D\W\S`; ranges over
//! ASCII only), groups `(...)`, `(?:...)`, `(?<name>...)`, `|`, `* + ? {n} {n,} {n,m}`
//! (lazy forms too), escapes `\n \t \r \f \v \xHH \uHHHH`. Refused with an error:
//! backreferences, lookaround, word boundaries, Unicode property classes, inner anchors.

use super::json::{plain_ascii, utf8_multibyte};
use super::{ByteSet, Expr, GrammarError, Result};

const MAX_DEPTH: usize = 64;
const MAX_REPEAT: u32 = 10_000;

pub(crate) fn compile(pattern: &str, json_char: Expr) -> Result<Expr> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut p = Parser {
        s: &chars,
        i: 0,
        depth: 0,
    };
    let start = p.eat('^');
    let body = p.alt()?;
    let end = p.eat('$');
    if p.i < chars.len() {
        return Err(p.error(format!("unexpected {:?}", chars[p.i])));
    }
    let mut seq = Vec::new();
    if !start {
        seq.push(Expr::star(json_char.clone()));
    }
    seq.push(body);
    if !end {
        seq.push(Expr::star(json_char));
    }
    Ok(Expr::Seq(seq))
}

/// A character class: a set of ASCII characters, optionally every non-ASCII character, and
/// some single non-ASCII characters.
#[derive(Clone)]
struct Class {
    ascii: [bool; 128],
    non_ascii: bool,
    extra: Vec<char>,
}

impl Class {
    fn empty() -> Self {
        Class {
            ascii: [false; 128],
            non_ascii: false,
            extra: Vec::new(),
        }
    }
    fn of(f: impl Fn(u8) -> bool) -> Self {
        let mut c = Class::empty();
        for b in 0..128u8 {
            c.ascii[b as usize] = f(b);
        }
        c
    }
    fn negate(mut self) -> Result<Self> {
        if !self.extra.is_empty() {
            return Err(GrammarError::new(
                "negated classes with non-ASCII characters are not supported",
            ));
        }
        for a in self.ascii.iter_mut() {
            *a = !*a;
        }
        self.non_ascii = !self.non_ascii;
        Ok(self)
    }
    fn add(&mut self, o: &Class) {
        for (a, b) in self.ascii.iter_mut().zip(o.ascii.iter()) {
            *a |= *b;
        }
        self.non_ascii |= o.non_ascii;
        self.extra.extend_from_slice(&o.extra);
    }
    fn add_char(&mut self, c: char) {
        if c.is_ascii() {
            self.ascii[c as usize] = true;
        } else {
            self.extra.push(c);
        }
    }
    fn to_expr(&self) -> Result<Expr> {
        let mut alts = Vec::new();
        let plain = plain_ascii();
        let mut set = ByteSet::default();
        for b in 0..128u8 {
            if !self.ascii[b as usize] {
                continue;
            }
            if plain.contains(b) {
                set.insert(b);
            } else {
                alts.push(Expr::Lit(escaped(b as char)));
            }
        }
        if !set.is_empty() {
            alts.insert(0, Expr::Set(set));
        }
        if self.non_ascii {
            alts.push(utf8_multibyte());
        }
        for c in &self.extra {
            alts.push(Expr::Lit(escaped(*c)));
        }
        if alts.is_empty() {
            return Err(GrammarError::new("a character class that matches nothing"));
        }
        Ok(Expr::Alt(alts))
    }
}

/// The JSON-string form of one character.
fn escaped(c: char) -> Vec<u8> {
    match c {
        '"' => b"\\\"".to_vec(),
        '\\' => b"\\\\".to_vec(),
        '\n' => b"\\n".to_vec(),
        '\r' => b"\\r".to_vec(),
        '\t' => b"\\t".to_vec(),
        '\u{8}' => b"\\b".to_vec(),
        '\u{c}' => b"\\f".to_vec(),
        c if (c as u32) < 0x20 || c as u32 == 0x7F => format!("\\u{:04x}", c as u32).into_bytes(),
        c => c.to_string().into_bytes(),
    }
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, msg: impl Into<String>) -> GrammarError {
        GrammarError::new(format!("{} (at offset {})", msg.into(), self.i))
    }
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn alt(&mut self) -> Result<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("the pattern is nested too deeply"));
        }
        let mut alts = vec![self.seq()?];
        while self.eat('|') {
            alts.push(self.seq()?);
        }
        self.depth -= 1;
        Ok(if alts.len() == 1 {
            alts.pop().expect("one")
        } else {
            Expr::Alt(alts)
        })
    }

    fn seq(&mut self) -> Result<Expr> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some('|') | Some(')') => break,
                // The final `$` of the whole pattern (an anchor for all its alternatives:
                // stricter than JavaScript's precedence, so still sound).
                Some('$') if self.depth == 1 && self.i + 1 == self.s.len() => break,
                _ => {}
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Expr::Seq(items))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        let s: String = self.s[start..self.i].iter().collect();
        Some(s.parse::<u32>().unwrap_or(u32::MAX))
    }

    fn quantified(&mut self, atom: Expr) -> Result<Expr> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let save = self.i;
                self.i += 1;
                let Some(min) = self.number() else {
                    self.i = save;
                    return Err(self.error("a '{' that is not a repetition"));
                };
                let max = if self.eat(',') {
                    self.number()
                } else {
                    Some(min)
                };
                if !self.eat('}') {
                    return Err(self.error("an unterminated repetition"));
                }
                self.i -= 1;
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        // Lazy quantifiers match the same strings.
        self.eat('?');
        if self.peek() == Some('+') {
            return Err(self.error("possessive quantifiers are not supported"));
        }
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
            return Err(self.error(format!("repetitions above {MAX_REPEAT} are not supported")));
        }
        if max.is_some_and(|m| m < min) {
            return Err(self.error("a repetition whose maximum is below its minimum"));
        }
        Ok(Expr::repeat(atom, min, max))
    }

    fn atom(&mut self) -> Result<Expr> {
        let c = self.peek().ok_or_else(|| self.error("unexpected end"))?;
        self.i += 1;
        match c {
            '(' => {
                if self.eat('?') {
                    if self.eat(':') {
                    } else if self.peek() == Some('<')
                        && !matches!(self.s.get(self.i + 1), Some('=') | Some('!'))
                        || self.peek() == Some('P')
                    {
                        self.eat('P');
                        self.eat('<');
                        while self.peek().is_some_and(|c| c != '>') {
                            self.i += 1;
                        }
                        if !self.eat('>') {
                            return Err(self.error("an unterminated group name"));
                        }
                    } else {
                        return Err(self.error("lookaround and inline flags are not supported"));
                    }
                }
                let e = self.alt()?;
                if !self.eat(')') {
                    return Err(self.error("an unclosed group"));
                }
                Ok(e)
            }
            '[' => self.class()?.to_expr(),
            '.' => {
                let mut any = Class::of(|b| b != b'\n');
                any.non_ascii = true;
                any.to_expr()
            }
            '^' | '$' => Err(self.error("anchors inside the pattern are not supported")),
            '*' | '+' | '?' | '{' => Err(self.error(format!("nothing to repeat before {c:?}"))),
            ')' | '|' => Err(self.error(format!("unexpected {c:?}"))),
            '\\' => match self.escape(false)? {
                Esc::Char(c) => Ok(Expr::Lit(escaped(c))),
                Esc::Class(cl) => cl.to_expr(),
            },
            c => Ok(Expr::Lit(escaped(c))),
        }
    }

    fn escape(&mut self, in_class: bool) -> Result<Esc> {
        let c = self
            .peek()
            .ok_or_else(|| self.error("a trailing backslash"))?;
        self.i += 1;
        let class = |f: fn(u8) -> bool, neg: bool| -> Result<Esc> {
            let c = Class::of(f);
            Ok(Esc::Class(if neg { c.negate()? } else { c }))
        };
        let hex = |p: &mut Self, n: usize| -> Result<char> {
            let digits: String = p.s.get(p.i..p.i + n).unwrap_or(&[]).iter().collect();
            p.i += n;
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
                .and_then(char::from_u32)
                .ok_or_else(|| p.error("a bad hexadecimal escape"))
        };
        match c {
            'd' => class(|b| b.is_ascii_digit(), false),
            'D' => class(|b| b.is_ascii_digit(), true),
            'w' => class(|b| b.is_ascii_alphanumeric() || b == b'_', false),
            'W' => class(|b| b.is_ascii_alphanumeric() || b == b'_', true),
            's' => class(|b| b" \t\n\r\x0b\x0c".contains(&b), false),
            'S' => class(|b| b" \t\n\r\x0b\x0c".contains(&b), true),
            'n' => Ok(Esc::Char('\n')),
            't' => Ok(Esc::Char('\t')),
            'r' => Ok(Esc::Char('\r')),
            'f' => Ok(Esc::Char('\u{c}')),
            'v' => Ok(Esc::Char('\u{b}')),
            '0' => Ok(Esc::Char('\0')),
            'b' if in_class => Ok(Esc::Char('\u{8}')),
            'x' => Ok(Esc::Char(hex(self, 2)?)),
            'u' => Ok(Esc::Char(hex(self, 4)?)),
            'b' | 'B' => Err(self.error("word boundaries are not supported")),
            '1'..='9' => Err(self.error("backreferences are not supported")),
            'p' | 'P' => Err(self.error("Unicode property classes are not supported")),
            c if c.is_ascii_alphanumeric() => {
                Err(self.error(format!("the escape \\{c} is not supported")))
            }
            c => Ok(Esc::Char(c)),
        }
    }

    fn class(&mut self) -> Result<Class> {
        let negated = self.eat('^');
        let mut cl = Class::empty();
        let mut first = true;
        loop {
            let c = self
                .peek()
                .ok_or_else(|| self.error("an unterminated character class"))?;
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Esc::Class(x) => {
                        cl.add(&x);
                        continue;
                    }
                    Esc::Char(c) => c,
                }
            } else {
                c
            };
            // A range `lo-hi` (a '-' before ']' is literal).
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']') {
                self.i += 1;
                let h = self
                    .peek()
                    .ok_or_else(|| self.error("an unterminated range"))?;
                self.i += 1;
                let hi = if h == '\\' {
                    match self.escape(true)? {
                        Esc::Char(c) => c,
                        Esc::Class(_) => return Err(self.error("a class cannot end a range")),
                    }
                } else {
                    h
                };
                if hi < lo {
                    return Err(self.error("a range out of order"));
                }
                if !hi.is_ascii() {
                    return Err(self.error("ranges over non-ASCII characters are not supported"));
                }
                for b in lo as u8..=hi as u8 {
                    cl.ascii[b as usize] = true;
                }
            } else {
                cl.add_char(lo);
            }
        }
        if negated {
            cl.negate()
        } else {
            Ok(cl)
        }
    }
}

enum Esc {
    Char(char),
    Class(Class),
}

//! Lexer for Go `text/template` (the rules of Go's `text/template/parse/lex.go`, default
//! `{{ }}` delimiters): text, trim markers, comments and the tokens inside actions.

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// Literal text between actions, already trimmed by `{{-` / `-}}`.
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    /// `.Name` (the name, without the dot).
    Field(String),
    /// `$name`, or `$` alone (with the `$`).
    Variable(String),
    Dot,
    Identifier(String),
    Bool(bool),
    /// A number or character constant, as written.
    Number(String),
    /// A quoted or raw string, as written (quotes included).
    Str(String),
    Pipe,
    Declare,
    Assign,
    LeftParen,
    RightParen,
    /// Any other printable ASCII character (`,` in range declarations).
    Char(char),
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
    Eof,
    /// A lexical error; always the last token.
    Error(String),
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset of the token in the template text.
    pub pos: usize,
}

impl Token {
    /// How Go's parser names a token in "unexpected X" errors.
    pub fn describe(&self) -> String {
        let quoted = |s: &str| {
            if s.chars().count() > 10 {
                let short: String = s.chars().take(10).collect();
                format!("{}...", go_quote(&short))
            } else {
                go_quote(s)
            }
        };
        match &self.tok {
            Tok::Eof => "EOF".into(),
            Tok::Error(e) => e.clone(),
            Tok::Text(s) => quoted(s),
            Tok::LeftDelim => quoted("{{"),
            Tok::RightDelim => quoted("}}"),
            Tok::Space => quoted(" "),
            Tok::Field(f) => quoted(&format!(".{f}")),
            Tok::Variable(v) | Tok::Identifier(v) | Tok::Number(v) | Tok::Str(v) => quoted(v),
            Tok::Dot => "<.>".into(),
            Tok::Bool(b) => quoted(if *b { "true" } else { "false" }),
            Tok::Pipe => quoted("|"),
            Tok::Declare => quoted(":="),
            Tok::Assign => quoted("="),
            Tok::LeftParen => quoted("("),
            Tok::RightParen => quoted(")"),
            Tok::Char(c) => quoted(&c.to_string()),
            Tok::Block => "<block>".into(),
            Tok::Break => "<break>".into(),
            Tok::Continue => "<continue>".into(),
            Tok::Define => "<define>".into(),
            Tok::Else => "<else>".into(),
            Tok::End => "<end>".into(),
            Tok::If => "<if>".into(),
            Tok::Nil => "<nil>".into(),
            Tok::Range => "<range>".into(),
            Tok::Template => "<template>".into(),
            Tok::With => "<with>".into(),
        }
    }
}

/// Go's `%q` of a string (strconv.Quote).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` for quoting: control, format, separator
/// (other than ASCII space) and private-use characters are escaped.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    !(u < 0x20
        || (0x7f..0xa0).contains(&u)
        || u == 0xad
        || (0x2000..=0x200f).contains(&u)
        || (0x2028..=0x202f).contains(&u)
        || (0x205f..=0x206f).contains(&u)
        || u == 0x3000
        || u == 0xfeff
        || (0xe000..=0xf8ff).contains(&u)
        || (0xfff0..=0xfffb).contains(&u)
        || u >= 0xf0000)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    start: usize,
    paren_depth: i32,
    out: Vec<Token>,
}

/// Tokenises the whole template. Ends with `Eof` or with the first `Error`.
pub fn lex(src: &str) -> Vec<Token> {
    let mut l = Lexer {
        src,
        pos: 0,
        start: 0,
        paren_depth: 0,
        out: Vec::new(),
    };
    l.run();
    l.out
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn emit(&mut self, tok: Tok) {
        self.out.push(Token {
            tok,
            pos: self.start,
        });
        self.start = self.pos;
    }

    fn error(&mut self, msg: String) -> bool {
        self.out.push(Token {
            tok: Tok::Error(msg),
            pos: self.start,
        });
        false
    }

    fn run(&mut self) {
        loop {
            match self.lex_text() {
                Step::Stop => return,
                Step::Text => {}
                Step::Action => {
                    if !self.lex_inside_action() {
                        return;
                    }
                }
            }
        }
    }

    /// `{{-` followed by a space: trim the whitespace before the action.
    fn has_left_trim(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
    }

    /// ` -}}`: trim the whitespace after the action.
    fn has_right_trim(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
    }

    /// `(at delimiter, with trim marker)`.
    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if Self::has_right_trim(r) && r[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (r.starts_with(RIGHT), false)
    }

    /// Lexes text up to the next action or comment.
    fn lex_text(&mut self) -> Step {
        match self.rest().find(LEFT) {
            Some(x) => {
                let delim_at = self.pos + x;
                let after = delim_at + LEFT.len();
                let mut text_end = delim_at;
                if Self::has_left_trim(&self.src[after..]) {
                    text_end = self.src[self.start..delim_at]
                        .trim_end_matches(is_space)
                        .len()
                        + self.start;
                }
                if text_end > self.start {
                    let text = self.src[self.start..text_end].to_string();
                    self.out.push(Token {
                        tok: Tok::Text(text),
                        pos: self.start,
                    });
                }
                self.pos = delim_at;
                self.start = delim_at;
                self.lex_left_delim()
            }
            None => {
                self.pos = self.src.len();
                if self.pos > self.start {
                    let text = self.src[self.start..].to_string();
                    self.emit(Tok::Text(text));
                }
                self.emit(Tok::Eof);
                Step::Stop
            }
        }
    }

    fn lex_left_delim(&mut self) -> Step {
        self.pos += LEFT.len();
        let trim = Self::has_left_trim(self.rest());
        let after_marker = if trim { 2 } else { 0 };
        if self.src[self.pos + after_marker..].starts_with("/*") {
            self.pos += after_marker;
            self.start = self.pos;
            return self.lex_comment();
        }
        self.emit(Tok::LeftDelim);
        self.pos += after_marker;
        self.start = self.pos;
        self.paren_depth = 0;
        Step::Action
    }

    /// Comments produce no token (the parser would ignore them).
    fn lex_comment(&mut self) -> Step {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            self.error("unclosed comment".into());
            return Step::Stop;
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            self.error("comment ends before closing delimiter".into());
            return Step::Stop;
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.skip_leading_space();
        }
        self.start = self.pos;
        Step::Text
    }

    fn skip_leading_space(&mut self) {
        let trimmed = self.rest().trim_start_matches(is_space);
        self.pos = self.src.len() - trimmed.len();
    }

    /// Lexes tokens until the closing `}}`. Returns false on error.
    fn lex_inside_action(&mut self) -> bool {
        loop {
            let (delim, _) = self.at_right_delim();
            if delim {
                if self.paren_depth == 0 {
                    self.lex_right_delim();
                    return true;
                }
                return self.error("unclosed left paren".into());
            }
            let Some(c) = self.next() else {
                return self.error("unclosed action".into());
            };
            let ok = match c {
                c if is_space(c) => {
                    self.pos -= c.len_utf8();
                    match self.lex_space() {
                        SpaceResult::Delim => {
                            self.lex_right_delim();
                            return true;
                        }
                        SpaceResult::Space => true,
                    }
                }
                '=' => {
                    self.emit(Tok::Assign);
                    true
                }
                ':' => {
                    if self.next() != Some('=') {
                        return self.error("expected :=".into());
                    }
                    self.emit(Tok::Declare);
                    true
                }
                '|' => {
                    self.emit(Tok::Pipe);
                    true
                }
                '"' => self.lex_quote(),
                '`' => self.lex_raw_quote(),
                '$' => self.lex_field_or_variable(true),
                '\'' => self.lex_char(),
                '.' => match self.peek() {
                    Some(d) if d.is_ascii_digit() => {
                        self.pos -= 1;
                        self.lex_number()
                    }
                    _ => self.lex_field_or_variable(false),
                },
                '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    self.lex_number()
                }
                c if is_alnum(c) => {
                    self.pos -= c.len_utf8();
                    self.lex_identifier()
                }
                '(' => {
                    self.emit(Tok::LeftParen);
                    self.paren_depth += 1;
                    true
                }
                ')' => {
                    self.emit(Tok::RightParen);
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        return self.error("unexpected right paren".into());
                    }
                    true
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    self.emit(Tok::Char(c));
                    true
                }
                c => {
                    return self.error(format!(
                        "unrecognized character in action: U+{:04X} {}",
                        c as u32,
                        go_char_quote(c)
                    ))
                }
            };
            if !ok {
                return false;
            }
        }
    }

    fn lex_space(&mut self) -> SpaceResult {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.pos += 1;
            n += 1;
        }
        // A trim-marked closing delimiter starts with a space: leave it for the delimiter.
        let before = self.pos - 1;
        if Self::has_right_trim(&self.src[before..]) && self.src[before + 2..].starts_with(RIGHT) {
            self.pos = before;
            if n == 1 {
                return SpaceResult::Delim;
            }
        }
        self.emit(Tok::Space);
        SpaceResult::Space
    }

    fn lex_right_delim(&mut self) {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.start = self.pos;
        }
        self.pos += RIGHT.len();
        self.emit(Tok::RightDelim);
        if trim {
            self.skip_leading_space();
            self.start = self.pos;
        }
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn lex_field_or_variable(&mut self, variable: bool) -> bool {
        if self.at_terminator() {
            if variable {
                self.emit(Tok::Variable("$".into()));
            } else {
                self.emit(Tok::Dot);
            }
            return true;
        }
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.error(format!(
                "bad character U+{:04X} {}",
                c as u32,
                go_char_quote(c)
            ));
        }
        let word = &self.src[self.start..self.pos];
        if variable {
            self.emit(Tok::Variable(word.to_string()));
        } else {
            self.emit(Tok::Field(word[1..].to_string()));
        }
        true
    }

    fn lex_identifier(&mut self) -> bool {
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.error(format!(
                "bad character U+{:04X} {}",
                c as u32,
                go_char_quote(c)
            ));
        }
        let word = &self.src[self.start..self.pos];
        let tok = match word {
            "block" => Tok::Block,
            "break" => Tok::Break,
            "continue" => Tok::Continue,
            "define" => Tok::Define,
            "else" => Tok::Else,
            "end" => Tok::End,
            "if" => Tok::If,
            "nil" => Tok::Nil,
            "range" => Tok::Range,
            "template" => Tok::Template,
            "with" => Tok::With,
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            w => Tok::Identifier(w.to_string()),
        };
        self.emit(tok);
        true
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if let Some(c) = self.peek() {
            if is_alnum(c) {
                self.pos += c.len_utf8();
                return false;
            }
        }
        true
    }

    fn lex_number(&mut self) -> bool {
        if !self.scan_number() {
            let s = go_quote(&self.src[self.start..self.pos]);
            return self.error(format!("bad number syntax: {s}"));
        }
        if let Some('+' | '-') = self.peek() {
            // A complex constant (1+2i).
            if !self.scan_number() || !self.src[..self.pos].ends_with('i') {
                let s = go_quote(&self.src[self.start..self.pos]);
                return self.error(format!("bad number syntax: {s}"));
            }
        }
        let text = self.src[self.start..self.pos].to_string();
        self.emit(Tok::Number(text));
        true
    }

    fn lex_quote(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return self.error("unterminated quoted string".into()),
                    _ => {}
                },
                Some('\n') | None => return self.error("unterminated quoted string".into()),
                Some('"') => break,
                _ => {}
            }
        }
        let text = self.src[self.start..self.pos].to_string();
        self.emit(Tok::Str(text));
        true
    }

    fn lex_raw_quote(&mut self) -> bool {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        let text = self.src[self.start..self.pos].to_string();
        self.emit(Tok::Str(text));
        true
    }

    fn lex_char(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => {
                        return self.error("unterminated character constant".into())
                    }
                    _ => {}
                },
                Some('\n') | None => return self.error("unterminated character constant".into()),
                Some('\'') => break,
                _ => {}
            }
        }
        let text = self.src[self.start..self.pos].to_string();
        self.emit(Tok::Number(text));
        true
    }
}

enum Step {
    /// Inside an action: lex its tokens next.
    Action,
    /// Back in text (after a comment).
    Text,
    /// EOF or an error.
    Stop,
}

enum SpaceResult {
    Space,
    Delim,
}

/// Go's `%#U`-style quoting of a character: `'x'`.
fn go_char_quote(c: char) -> String {
    format!("'{c}'")
}

/// Go's `strconv.Unquote` for `"..."`, `` `...` `` and `'...'` literals.
pub fn unquote(s: &str) -> Result<String, String> {
    let bad = || "invalid syntax".to_string();
    let b = s.as_bytes();
    if b.len() < 2 {
        return Err(bad());
    }
    let (q, last) = (b[0], b[b.len() - 1]);
    if q != last {
        return Err(bad());
    }
    let body = &s[1..s.len() - 1];
    match q {
        b'`' => {
            if body.contains('`') {
                return Err(bad());
            }
            // Go drops carriage returns from raw strings.
            Ok(body.replace('\r', ""))
        }
        b'"' | b'\'' => {
            let mut out = String::new();
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                if c == q as char {
                    return Err(bad());
                }
                if c == '\n' {
                    return Err(bad());
                }
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                let e = chars.next().ok_or_else(bad)?;
                match e {
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '\'' if q == b'\'' => out.push('\''),
                    '"' if q == b'"' => out.push('"'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            let d = chars.next().and_then(|c| c.to_digit(16)).ok_or_else(bad)?;
                            v = v * 16 + d;
                        }
                        if e == 'x' {
                            // A byte; only meaningful as ASCII in valid UTF-8 output.
                            if v >= 0x80 {
                                return Err(bad());
                            }
                            out.push(v as u8 as char);
                        } else {
                            out.push(char::from_u32(v).ok_or_else(bad)?);
                        }
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let d = chars.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                            v = v * 8 + d;
                        }
                        if v >= 0x80 {
                            return Err(bad());
                        }
                        out.push(v as u8 as char);
                    }
                    _ => return Err(bad()),
                }
            }
            if q == b'\'' && out.chars().count() != 1 {
                return Err(bad());
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn trims_and_comments() {
        assert_eq!(
            toks("a  {{- .X -}}  b"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Field("X".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("a \n{{- /* c */ -}}\n b"),
            vec![Tok::Text("a".into()), Tok::Text("b".into()), Tok::Eof]
        );
        // No space after the dash: a negative number, no trimming.
        assert_eq!(
            toks("a {{-3}}"),
            vec![
                Tok::Text("a ".into()),
                Tok::LeftDelim,
                Tok::Number("-3".into()),
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            toks("{{ .X").last(),
            Some(&Tok::Error("unclosed action".into()))
        );
        assert_eq!(
            toks("{{/* x }}").last(),
            Some(&Tok::Error("unclosed comment".into()))
        );
        assert_eq!(
            toks("{{/* x */ .X }}").last(),
            Some(&Tok::Error("comment ends before closing delimiter".into()))
        );
        assert_eq!(
            toks("{{ \"abc }}").last(),
            Some(&Tok::Error("unterminated quoted string".into()))
        );
    }

    #[test]
    fn unquoting() {
        assert_eq!(unquote(r#""a\n\"b\u00e9""#).unwrap(), "a\n\"bé");
        assert_eq!(unquote("`a\\n`").unwrap(), "a\\n");
        assert_eq!(unquote("'x'").unwrap(), "x");
        assert!(unquote(r#""\q""#).is_err());
    }
}

//! Parser for Go `text/template` (the grammar and error messages of Go's
//! `text/template/parse/parse.go`).

use std::collections::HashMap;

use super::lex::{go_quote, lex, unquote, Tok, Token};

#[derive(Clone, Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template {
        name: String,
        pipe: Option<Pipe>,
        pos: usize,
        end: usize,
    },
    Break,
    Continue,
}

#[derive(Clone, Debug)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Clone, Debug)]
pub struct Pipe {
    pub pos: usize,
    pub end: usize,
    pub is_assign: bool,
    /// Declared or assigned variables (with their `$`).
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Clone, Debug)]
pub struct Command {
    pub pos: usize,
    pub end: usize,
    pub args: Vec<Arg>,
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub pos: usize,
    pub end: usize,
    pub kind: ArgKind,
}

#[derive(Clone, Debug)]
pub enum ArgKind {
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B`: the variable (with `$`) then fields.
    Variable(Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A function name.
    Identifier(String),
    Pipe(Box<Pipe>),
    /// `(pipeline).A.B`
    Chain(Box<Arg>, Vec<String>),
}

/// A parse error: Go's message (`template: :LINE: MSG`) plus the position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

/// A parsed template: the main body and the `define`d/`block` templates.
#[derive(Clone, Debug)]
pub struct Tree {
    pub root: Vec<Node>,
    pub defs: HashMap<String, Vec<Node>>,
}

/// Nesting depth (control structures plus parentheses) beyond which parsing fails
/// instead of risking the stack.
pub const MAX_NESTING: usize = 200;

type Result<T> = std::result::Result<T, ParseError>;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    defs: HashMap<String, Vec<Node>>,
    has_func: &'a dyn Fn(&str) -> bool,
}

pub fn parse(src: &str, has_func: &dyn Fn(&str) -> bool) -> Result<Tree> {
    let mut p = Parser {
        src,
        toks: lex(src),
        i: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
        defs: HashMap::new(),
        has_func,
    };
    let root = p.parse_top()?;
    Ok(Tree { root, defs: p.defs })
}

/// 1-based line and column of a byte offset.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |i| &before[i + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

fn is_empty_tree(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

impl<'a> Parser<'a> {
    fn err_at(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        let (line, column) = line_col(self.src, pos);
        ParseError {
            message: format!("template: :{line}: {}", msg.into()),
            line,
            column,
        }
    }

    fn cur_pos(&self) -> usize {
        let i = self.i.saturating_sub(1).min(self.toks.len() - 1);
        self.toks[i].pos
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        self.err_at(self.cur_pos(), msg)
    }

    fn next(&mut self) -> Result<Token> {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        if let Tok::Error(e) = &t.tok {
            return Err(self.err_at(t.pos, e.clone()));
        }
        Ok(t)
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> Result<Token> {
        let t = self.next()?;
        self.backup();
        Ok(t)
    }

    fn next_non_space(&mut self) -> Result<Token> {
        loop {
            let t = self.next()?;
            if t.tok != Tok::Space {
                return Ok(t);
            }
        }
    }

    fn peek_non_space(&mut self) -> Result<Token> {
        let t = self.next_non_space()?;
        self.backup();
        Ok(t)
    }

    fn unexpected(&self, t: &Token, context: &str) -> ParseError {
        self.err_at(t.pos, format!("unexpected {} in {context}", t.describe()))
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<Token> {
        let t = self.next_non_space()?;
        if t.tok != want {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(format!("max nesting depth exceeded (limit {MAX_NESTING})")));
        }
        Ok(())
    }

    fn parse_top(&mut self) -> Result<Vec<Node>> {
        let mut root = Vec::new();
        loop {
            let t = self.peek()?;
            if t.tok == Tok::Eof {
                break;
            }
            if t.tok == Tok::LeftDelim {
                let save = self.i;
                self.next()?;
                if self.next_non_space()?.tok == Tok::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.i = save;
            }
            match self.text_or_action()? {
                Item::Node(n) => root.push(n),
                Item::Stop(Stop::End(pos)) => return Err(self.err_at(pos, "unexpected {{end}}")),
                Item::Stop(Stop::Else(pos, _)) => {
                    return Err(self.err_at(pos, "unexpected {{else}}"))
                }
            }
        }
        Ok(root)
    }

    fn add_definition(&mut self, name: String, body: Vec<Node>, pos: usize) -> Result<()> {
        match self.defs.get(&name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&body) {
                    return Err(self.err_at(
                        pos,
                        format!(
                            "template: multiple definition of template {}",
                            go_quote(&name)
                        ),
                    ));
                }
            }
            _ => {
                self.defs.insert(name, body);
            }
        }
        Ok(())
    }

    fn parse_definition(&mut self) -> Result<()> {
        let context = "define clause";
        let t = self.next_non_space()?;
        let Tok::Str(raw) = &t.tok else {
            return Err(self.unexpected(&t, context));
        };
        let name = unquote(raw).map_err(|e| self.err_at(t.pos, e))?;
        self.expect(Tok::RightDelim, context)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (body, end) = self.item_list()?;
        self.vars = saved;
        if let Stop::Else(pos, _) = end {
            return Err(self.err_at(pos, format!("unexpected {{{{else}}}} in {context}")));
        }
        self.add_definition(name, body, t.pos)
    }

    /// Parses nodes until `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> Result<(Vec<Node>, Stop)> {
        let mut list = Vec::new();
        loop {
            let t = self.peek_non_space()?;
            if t.tok == Tok::Eof {
                return Err(self.err_at(t.pos, "unexpected EOF"));
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::Stop(end) => return Ok((list, end)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Item> {
        let t = self.next_non_space()?;
        match t.tok {
            Tok::Text(s) => Ok(Item::Node(Node::Text(s))),
            Tok::LeftDelim => self.action(),
            _ => Err(self.unexpected(&t, "input")),
        }
    }

    fn action(&mut self) -> Result<Item> {
        let t = self.next_non_space()?;
        match t.tok {
            Tok::Block => return self.block_control(t.pos).map(Item::Node),
            Tok::Break | Tok::Continue => {
                let word = if t.tok == Tok::Break {
                    "break"
                } else {
                    "continue"
                };
                let n = self.next_non_space()?;
                if n.tok != Tok::RightDelim {
                    return Err(self.unexpected(&n, &format!("{{{{{word}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.err_at(t.pos, format!("{{{{{word}}}}} outside {{{{range}}}}")));
                }
                return Ok(Item::Node(if word == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }));
            }
            Tok::Else => {
                let p = self.peek_non_space()?;
                if p.tok == Tok::If || p.tok == Tok::With {
                    // `{{else if ...}}`: leave the keyword for the enclosing control.
                    return Ok(Item::Stop(Stop::Else(p.pos, true)));
                }
                let r = self.expect(Tok::RightDelim, "else")?;
                return Ok(Item::Stop(Stop::Else(r.pos, false)));
            }
            Tok::End => {
                let r = self.expect(Tok::RightDelim, "end")?;
                return Ok(Item::Stop(Stop::End(r.pos)));
            }
            Tok::If => return self.control(Ctl::If).map(Item::Node),
            Tok::Range => return self.control(Ctl::Range).map(Item::Node),
            Tok::With => return self.control(Ctl::With).map(Item::Node),
            Tok::Template => return self.template_control(t.pos).map(Item::Node),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", Tok::RightDelim)?;
        Ok(Item::Node(Node::Action(pipe)))
    }

    fn control(&mut self, ctl: Ctl) -> Result<Node> {
        self.enter()?;
        let n_vars = self.vars.len();
        let context = match ctl {
            Ctl::If => "if",
            Ctl::Range => "range",
            Ctl::With => "with",
        };
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if ctl == Ctl::Range {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if ctl == Ctl::Range {
            self.range_depth -= 1;
        }
        let else_list = match next {
            Stop::End(_) => None,
            Stop::Else(_, chained) => {
                let p = self.peek()?;
                if chained && ctl == Ctl::If && p.tok == Tok::If {
                    self.next()?;
                    Some(vec![self.control(Ctl::If)?])
                } else if chained && ctl == Ctl::With && p.tok == Tok::With {
                    self.next()?;
                    Some(vec![self.control(Ctl::With)?])
                } else {
                    // (An unmatched `{{else if}}` fails on the pending keyword here, as in Go.)
                    let (l, next) = self.item_list()?;
                    match next {
                        Stop::End(_) => Some(l),
                        Stop::Else(p2, _) => {
                            return Err(self.err_at(p2, "expected end; found {{else}}"));
                        }
                    }
                }
            }
        };
        self.vars.truncate(n_vars);
        self.depth -= 1;
        let b = Box::new(Branch {
            pipe,
            list,
            else_list,
        });
        Ok(match ctl {
            Ctl::If => Node::If(b),
            Ctl::Range => Node::Range(b),
            Ctl::With => Node::With(b),
        })
    }

    fn template_name(&mut self, t: &Token, context: &str) -> Result<String> {
        match &t.tok {
            Tok::Str(raw) => unquote(raw).map_err(|e| self.err_at(t.pos, e)),
            _ => Err(self.unexpected(t, context)),
        }
    }

    fn template_control(&mut self, pos: usize) -> Result<Node> {
        let context = "template clause";
        let t = self.next_non_space()?;
        let name = self.template_name(&t, context)?;
        let n = self.next_non_space()?;
        let pipe = if n.tok != Tok::RightDelim {
            self.backup();
            Some(self.pipeline(context, Tok::RightDelim)?)
        } else {
            None
        };
        let end = self.toks[self.i - 1].pos;
        Ok(Node::Template {
            name,
            pipe,
            pos,
            end,
        })
    }

    fn block_control(&mut self, pos: usize) -> Result<Node> {
        let context = "block clause";
        let t = self.next_non_space()?;
        let name = self.template_name(&t, context)?;
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        let end = self.toks[self.i - 1].pos;
        self.enter()?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let (body, next) = self.item_list()?;
        self.vars = saved;
        self.range_depth = saved_range;
        self.depth -= 1;
        if let Stop::Else(p, _) = next {
            return Err(self.err_at(p, format!("unexpected {{{{else}}}} in {context}")));
        }
        self.add_definition(name.clone(), body, t.pos)?;
        Ok(Node::Template {
            name,
            pipe: Some(pipe),
            pos,
            end,
        })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> Result<Pipe> {
        let start = self.peek_non_space()?.pos;
        let mut pipe = Pipe {
            pos: start,
            end: start,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$i, $v :=` (range only).
        loop {
            let v = self.peek_non_space()?;
            let Tok::Variable(name) = &v.tok else { break };
            let save = self.i;
            self.next()?;
            let next = self.peek_non_space()?;
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next.tok == Tok::Assign;
                    self.next_non_space()?;
                    pipe.decl.push(name.clone());
                    self.vars.push(name.clone());
                    break;
                }
                Tok::Char(',') => {
                    self.next_non_space()?;
                    pipe.decl.push(name.clone());
                    self.vars.push(name.clone());
                    if context == "range" && pipe.decl.len() < 2 {
                        let p = self.peek_non_space()?;
                        match p.tok {
                            Tok::Variable(_) | Tok::RightDelim | Tok::RightParen => continue,
                            _ => {
                                return Err(
                                    self.err_at(p.pos, "range can only initialize variables")
                                )
                            }
                        }
                    }
                    return Err(
                        self.err_at(next.pos, format!("too many declarations in {context}"))
                    );
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let t = self.next_non_space()?;
            if t.tok == end {
                pipe.end = t.pos;
                self.check_pipeline(&pipe, context, t.pos)?;
                return Ok(pipe);
            }
            match t.tok {
                Tok::Bool(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Identifier(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str, pos: usize) -> Result<()> {
        if pipe.cmds.is_empty() {
            return Err(self.err_at(pos, format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0].kind,
                ArgKind::Bool(_)
                    | ArgKind::Dot
                    | ArgKind::Nil
                    | ArgKind::Int(_)
                    | ArgKind::Float(_)
                    | ArgKind::Str(_)
            ) {
                return Err(self.err_at(
                    c.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Command> {
        let pos = self.peek_non_space()?.pos;
        let mut cmd = Command {
            pos,
            end: pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space()?;
            if let Some(a) = self.operand()? {
                cmd.end = a.end;
                cmd.args.push(a);
            }
            let t = self.next()?;
            match t.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.err("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> Result<Option<Arg>> {
        let Some(mut node) = self.term()? else {
            return Ok(None);
        };
        if let Tok::Field(_) = self.peek()?.tok {
            let mut fields = Vec::new();
            let mut end = node.end;
            while let Tok::Field(f) = self.peek()?.tok {
                let t = self.next()?;
                end = t.pos + 1 + f.len();
                fields.push(f);
            }
            node = match node.kind {
                ArgKind::Field(mut f) => {
                    f.extend(fields);
                    Arg {
                        pos: node.pos,
                        end,
                        kind: ArgKind::Field(f),
                    }
                }
                ArgKind::Variable(mut v) => {
                    v.extend(fields);
                    Arg {
                        pos: node.pos,
                        end,
                        kind: ArgKind::Variable(v),
                    }
                }
                ArgKind::Bool(_)
                | ArgKind::Str(_)
                | ArgKind::Int(_)
                | ArgKind::Float(_)
                | ArgKind::Nil
                | ArgKind::Dot => {
                    let text = &self.src[node.pos..node.end];
                    return Err(self.err(format!("unexpected . after term {}", go_quote(text))));
                }
                _ => {
                    let pos = node.pos;
                    Arg {
                        pos,
                        end,
                        kind: ArgKind::Chain(Box::new(node), fields),
                    }
                }
            };
        }
        Ok(Some(node))
    }

    fn term(&mut self) -> Result<Option<Arg>> {
        let t = self.next_non_space()?;
        let pos = t.pos;
        let arg = |kind: ArgKind, len: usize| Arg {
            pos,
            end: pos + len,
            kind,
        };
        Ok(Some(match t.tok {
            Tok::Identifier(name) => {
                if !(self.has_func)(&name) {
                    return Err(
                        self.err_at(pos, format!("function {} not defined", go_quote(&name)))
                    );
                }
                let len = name.len();
                arg(ArgKind::Identifier(name), len)
            }
            Tok::Dot => arg(ArgKind::Dot, 1),
            Tok::Nil => arg(ArgKind::Nil, 3),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err_at(pos, format!("undefined variable {}", go_quote(&name))));
                }
                let len = name.len();
                arg(ArgKind::Variable(vec![name]), len)
            }
            Tok::Field(name) => {
                let len = name.len() + 1;
                arg(ArgKind::Field(vec![name]), len)
            }
            Tok::Bool(b) => arg(ArgKind::Bool(b), if b { 4 } else { 5 }),
            Tok::Number(text) => {
                let kind = parse_number(&text).map_err(|e| self.err_at(pos, e))?;
                arg(kind, text.len())
            }
            Tok::LeftParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", Tok::RightParen)?;
                self.depth -= 1;
                let end = p.end + 1;
                Arg {
                    pos,
                    end,
                    kind: ArgKind::Pipe(Box::new(p)),
                }
            }
            Tok::Str(raw) => {
                let s = unquote(&raw).map_err(|e| self.err_at(pos, e))?;
                arg(ArgKind::Str(s), raw.len())
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctl {
    If,
    Range,
    With,
}

enum Item {
    Node(Node),
    Stop(Stop),
}

/// What ends a list of nodes.
enum Stop {
    End(usize),
    /// `{{else}}`; true when followed by `if`/`with` (an else-if chain).
    Else(usize, bool),
}

/// Go's number literal rules (`parse.newNumber` + `idealConstant`): integers (decimal,
/// 0x, 0o, 0b, leading-0 octal, `_` separators) are ints; literals with `.`, `e` or `p`
/// are floats; character constants are ints.
fn parse_number(text: &str) -> std::result::Result<ArgKind, String> {
    let bad = || format!("illegal number syntax: {}", go_quote(text));
    if text.starts_with('\'') {
        let s = unquote(text).map_err(|_| bad())?;
        let c = s.chars().next().ok_or_else(bad)?;
        return Ok(ArgKind::Int(c as i64));
    }
    if text.ends_with('i') {
        return Err(format!(
            "complex constant {} is not supported",
            go_quote(text)
        ));
    }
    let (neg, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.contains("__") || body.ends_with('_') || body.starts_with('_') {
        return Err(bad());
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let is_hex = lower.starts_with("0x");
    let int = if is_hex {
        u64::from_str_radix(&lower[2..], 16).ok()
    } else if let Some(r) = lower.strip_prefix("0o") {
        u64::from_str_radix(r, 8).ok()
    } else if let Some(r) = lower.strip_prefix("0b") {
        u64::from_str_radix(r, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        u64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|b| b.is_ascii_digit()) && !lower.is_empty() {
        lower.parse::<u64>().ok()
    } else {
        None
    };
    if let Some(u) = int {
        let v = if neg {
            if u > i64::MAX as u64 + 1 {
                return Err(format!("{text} overflows int"));
            }
            (u as i128).wrapping_neg() as i64
        } else {
            i64::try_from(u).map_err(|_| format!("{text} overflows int"))?
        };
        return Ok(ArgKind::Int(v));
    }
    let int_syntax = lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with("0b")
        || (!lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()));
    if int_syntax && !is_hex {
        return Err(format!("{text} overflows int"));
    }
    if is_hex {
        // Hex floats (0x1p-2) are rare enough in prompt templates to reject.
        return Err(bad());
    }
    let f: f64 = clean.parse().map_err(|_| bad())?;
    let f = if neg { -f } else { f };
    // An integral float literal without '.', 'e' is handled above; everything here
    // stays a float, as Go's idealConstant does for literals containing ".eE".
    Ok(ArgKind::Float(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Tree> {
        parse(s, &|f| f == "len" || f == "eq" || f == "json")
    }

    #[test]
    fn parses_controls() {
        let t = p("{{ if .A }}a{{ else if .B }}b{{ else }}c{{ end }}").unwrap();
        assert_eq!(t.root.len(), 1);
        let Node::If(b) = &t.root[0] else { panic!() };
        let el = b.else_list.as_ref().unwrap();
        assert!(matches!(el[0], Node::If(_)));
        p("{{ range $i, $m := .Messages }}{{ $i }}{{ break }}{{ end }}").unwrap();
        p("{{ define \"x\" }}X{{ end }}{{ template \"x\" . }}").unwrap();
        p("{{ (len .A).B }}").unwrap();
    }

    #[test]
    fn errors_like_go() {
        let e = |s: &str| p(s).unwrap_err().message;
        assert_eq!(e("{{ if .A }}"), "template: :1: unexpected EOF");
        assert_eq!(e("{{ end }}"), "template: :1: unexpected {{end}}");
        assert_eq!(
            e("a\n{{ foo }}"),
            "template: :2: function \"foo\" not defined"
        );
        assert_eq!(e("{{ $x }}"), "template: :1: undefined variable \"$x\"");
        assert_eq!(
            e("{{ break }}"),
            "template: :1: {{break}} outside {{range}}"
        );
        assert_eq!(e("{{ }}"), "template: :1: missing value for command");
        assert_eq!(e("{{ .A"), "template: :1: unclosed action");
        assert_eq!(
            e("{{ .A | 3 }}"),
            "template: :1: non executable command in pipeline stage 2"
        );
        let err = p("x\n  {{ if }}").unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (2, "template: :2: missing value for if")
        );
    }

    #[test]
    fn numbers() {
        assert!(matches!(parse_number("42"), Ok(ArgKind::Int(42))));
        assert!(matches!(parse_number("-0x10"), Ok(ArgKind::Int(-16))));
        assert!(matches!(parse_number("010"), Ok(ArgKind::Int(8))));
        assert!(matches!(parse_number("1_000"), Ok(ArgKind::Int(1000))));
        assert!(matches!(parse_number("'a'"), Ok(ArgKind::Int(97))));
        assert!(matches!(parse_number("1.5"), Ok(ArgKind::Float(f)) if f == 1.5));
        assert!(matches!(parse_number("1e3"), Ok(ArgKind::Float(f)) if f == 1000.0));
        assert!(parse_number("99999999999999999999").is_err());
    }
}

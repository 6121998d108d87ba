//! Structured outputs: grammars over bytes, a JSON-Schema compiler, an incremental matcher
//! and token masking.
//!
//! - [`Grammar`] is a context-free grammar whose terminals are byte classes. It is built
//!   from Ollama's `format`: [`Grammar::json`] (`"json"`: any JSON object) or
//!   [`Grammar::from_schema_str`] (a JSON Schema, compiled as llama.cpp's
//!   `json-schema-to-grammar` does).
//! - [`Matcher`] runs a grammar incrementally, a byte at a time (a pushdown automaton whose
//!   sets of stacks are interned and whose transitions are cached: a lazy DFA).
//! - [`TokenVocab`] + [`Constraint`] turn the matcher into a token mask by walking a byte
//!   trie of the vocabulary, and drive a [`crate::sampler::Sampler`] with it.

mod json;
mod matcher;
mod regex;
mod schema;
mod value;
mod vocab;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

pub use matcher::{Matcher, MAX_STACKS};
pub use schema::{MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH};
pub use vocab::{Constraint, TokenVocab};

/// Most grammar elements a compiled grammar may hold (a hostile schema — huge `maxLength`,
/// deep `minItems` nesting, giant enums — is refused instead of eating memory).
pub const MAX_GRAMMAR_ELEMENTS: usize = 250_000;

/// Why a grammar could not be built or run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrammarError(pub String);

impl GrammarError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        GrammarError(msg.into())
    }
}

impl fmt::Display for GrammarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GrammarError {}

pub(crate) type Result<T> = std::result::Result<T, GrammarError>;

/// A set of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(crate) fn single(b: u8) -> Self {
        let mut s = ByteSet::default();
        s.insert(b);
        s
    }
    pub(crate) fn range(lo: u8, hi: u8) -> Self {
        let mut s = ByteSet::default();
        for b in lo..=hi {
            s.insert(b);
        }
        s
    }
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut s = ByteSet::default();
        for &b in bytes {
            s.insert(b);
        }
        s
    }
    pub(crate) fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }
    pub(crate) fn remove(&mut self, b: u8) {
        self.0[(b >> 6) as usize] &= !(1 << (b & 63));
    }
    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }
    pub(crate) fn union(mut self, o: ByteSet) -> Self {
        for i in 0..4 {
            self.0[i] |= o.0[i];
        }
        self
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

/// One element of a rule alternative.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Elem {
    /// End of an alternative.
    End,
    /// A nonterminal.
    Rule(u32),
    /// One byte out of a class (index into `Grammar::classes`).
    Class(u32),
}

/// A compiled context-free grammar over bytes. Alternatives are laid out flat in `elems`,
/// each ending with [`Elem::End`]; a position in the grammar is an index into `elems`.
#[derive(Clone, Debug)]
pub struct Grammar {
    pub(crate) elems: Vec<Elem>,
    /// Per rule: the start positions of its alternatives.
    pub(crate) rules: Vec<Vec<u32>>,
    pub(crate) classes: Vec<ByteSet>,
    pub(crate) root: u32,
    /// Bytes no class tells apart share an equivalence class (transition-table column).
    pub(crate) byte_class: [u8; 256],
    pub(crate) n_byte_classes: usize,
}

impl Grammar {
    /// Ollama's `format: "json"`: one JSON object, with bounded whitespace.
    pub fn json() -> Grammar {
        let mut b = Builder::new();
        let prims = json::Prims::new(&mut b).expect("the JSON grammar is small");
        let root = prims.object;
        b.finish(root).expect("the JSON grammar is well formed")
    }

    /// Compiles a JSON Schema given as JSON text (object key order is kept: properties are
    /// generated in the schema's order, as llama.cpp does).
    pub fn from_schema_str(text: &str) -> Result<Grammar> {
        schema::compile_text(text)
    }

    /// Number of grammar elements (a size measure).
    pub fn size(&self) -> usize {
        self.elems.len()
    }
}

/// A grammar expression, lowered into rules by [`Builder`].
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Set(ByteSet),
    Lit(Vec<u8>),
    Seq(Vec<Expr>),
    Alt(Vec<Expr>),
    Ref(u32),
    Empty,
    Opt(Box<Expr>),
    Star(Box<Expr>),
    /// `min` to `max` (unbounded when `None`) repetitions.
    Repeat(Box<Expr>, u32, Option<u32>),
}

impl Expr {
    pub(crate) fn lit(s: &str) -> Expr {
        Expr::Lit(s.as_bytes().to_vec())
    }
    pub(crate) fn opt(e: Expr) -> Expr {
        Expr::Opt(Box::new(e))
    }
    pub(crate) fn star(e: Expr) -> Expr {
        Expr::Star(Box::new(e))
    }
    pub(crate) fn repeat(e: Expr, min: u32, max: Option<u32>) -> Expr {
        Expr::Repeat(Box::new(e), min, max)
    }
}

/// Builds a [`Grammar`] from expressions, with a size budget.
pub(crate) struct Builder {
    rules: Vec<Option<Vec<Vec<Elem>>>>,
    classes: Vec<ByteSet>,
    class_ids: HashMap<ByteSet, u32>,
    size: usize,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            rules: Vec::new(),
            classes: Vec::new(),
            class_ids: HashMap::new(),
            size: 0,
        }
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.size += n;
        if self.size > MAX_GRAMMAR_ELEMENTS {
            return Err(GrammarError::new(format!(
                "the schema is too large: its grammar exceeds {MAX_GRAMMAR_ELEMENTS} elements"
            )));
        }
        Ok(())
    }

    /// A rule to be defined later (for recursion).
    pub(crate) fn declare(&mut self) -> Result<u32> {
        self.charge(1)?;
        self.rules.push(None);
        Ok((self.rules.len() - 1) as u32)
    }

    pub(crate) fn define(&mut self, id: u32, e: Expr) -> Result<()> {
        let alts = match e {
            Expr::Alt(xs) => {
                let mut alts = Vec::with_capacity(xs.len());
                for x in xs {
                    let mut seq = Vec::new();
                    self.lower(x, &mut seq)?;
                    alts.push(seq);
                }
                alts
            }
            other => {
                let mut seq = Vec::new();
                self.lower(other, &mut seq)?;
                vec![seq]
            }
        };
        self.charge(alts.len())?;
        self.rules[id as usize] = Some(alts);
        Ok(())
    }

    /// A new rule for `e`.
    pub(crate) fn rule(&mut self, e: Expr) -> Result<u32> {
        // A bare reference needs no rule of its own.
        if let Expr::Ref(r) = e {
            return Ok(r);
        }
        let id = self.declare()?;
        self.define(id, e)?;
        Ok(id)
    }

    fn class(&mut self, s: ByteSet) -> u32 {
        let next = self.classes.len() as u32;
        *self.class_ids.entry(s).or_insert_with(|| {
            self.classes.push(s);
            next
        })
    }

    fn lower(&mut self, e: Expr, out: &mut Vec<Elem>) -> Result<()> {
        match e {
            Expr::Set(s) => {
                if s.is_empty() {
                    return Err(GrammarError::new("empty character class"));
                }
                self.charge(1)?;
                let c = self.class(s);
                out.push(Elem::Class(c));
            }
            Expr::Lit(bytes) => {
                self.charge(bytes.len())?;
                for b in bytes {
                    let c = self.class(ByteSet::single(b));
                    out.push(Elem::Class(c));
                }
            }
            Expr::Seq(xs) => {
                for x in xs {
                    self.lower(x, out)?;
                }
            }
            Expr::Alt(mut xs) => {
                if xs.is_empty() {
                    return Err(GrammarError::new("an alternative with no choices"));
                }
                if xs.len() == 1 {
                    return self.lower(xs.pop().expect("one"), out);
                }
                let r = self.rule(Expr::Alt(xs))?;
                self.charge(1)?;
                out.push(Elem::Rule(r));
            }
            Expr::Ref(r) => {
                self.charge(1)?;
                out.push(Elem::Rule(r));
            }
            Expr::Empty => {}
            Expr::Opt(x) => {
                let r = self.rule(Expr::Alt(vec![*x, Expr::Empty]))?;
                self.charge(1)?;
                out.push(Elem::Rule(r));
            }
            Expr::Star(x) => {
                // r ::= x r | ε  (right recursion: the matcher's stacks stay flat)
                let x = self.shared(*x)?;
                let r = self.declare()?;
                self.define(
                    r,
                    Expr::Alt(vec![Expr::Seq(vec![x, Expr::Ref(r)]), Expr::Empty]),
                )?;
                self.charge(1)?;
                out.push(Elem::Rule(r));
            }
            Expr::Repeat(x, min, max) => {
                if let Some(max) = max {
                    if max < min {
                        return Err(GrammarError::new(format!(
                            "a repetition of at least {min} and at most {max}"
                        )));
                    }
                }
                let x = self.shared(*x)?;
                for _ in 0..min {
                    self.lower(x.clone(), out)?;
                }
                match max {
                    None => self.lower(Expr::star(x), out)?,
                    Some(max) if max > min => {
                        // r_k ::= x r_{k+1} | ε, built innermost first.
                        let mut tail: Option<u32> = None;
                        for _ in 0..(max - min) {
                            let body = match tail {
                                Some(t) => Expr::Seq(vec![x.clone(), Expr::Ref(t)]),
                                None => x.clone(),
                            };
                            tail = Some(self.rule(Expr::Alt(vec![body, Expr::Empty]))?);
                        }
                        self.charge(1)?;
                        out.push(Elem::Rule(tail.expect("max > min")));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// `x` as something cheap to copy: itself when it is a single element, else a rule.
    fn shared(&mut self, x: Expr) -> Result<Expr> {
        Ok(match x {
            Expr::Set(_) | Expr::Ref(_) | Expr::Empty => x,
            Expr::Lit(ref b) if b.len() <= 1 => x,
            other => Expr::Ref(self.rule(other)?),
        })
    }

    /// Lays the rules out flat and checks that the grammar can be run: every rule defined,
    /// no left recursion (the matcher would loop), every rule able to finish.
    pub(crate) fn finish(self, root: u32) -> Result<Grammar> {
        let mut elems = Vec::with_capacity(self.size + 16);
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut defs = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.into_iter().enumerate() {
            let Some(alts) = r else {
                return Err(GrammarError::new(format!("rule {i} is never defined")));
            };
            if alts.is_empty() {
                return Err(GrammarError::new("a rule with no alternatives"));
            }
            let mut starts = Vec::with_capacity(alts.len());
            for alt in &alts {
                starts.push(elems.len() as u32);
                elems.extend_from_slice(alt);
                elems.push(Elem::End);
            }
            rules.push(starts);
            defs.push(alts);
        }
        check_rules(&defs)?;
        let (byte_class, n_byte_classes) = byte_classes(&self.classes);
        Ok(Grammar {
            elems,
            rules,
            classes: self.classes,
            root,
            byte_class,
            n_byte_classes,
        })
    }
}

/// Left recursion and rules that can never finish are refused.
fn check_rules(defs: &[Vec<Vec<Elem>>]) -> Result<()> {
    let n = defs.len();
    // Fixpoints: nullable (derives ε) and productive (derives some finite string).
    let mut nullable = vec![false; n];
    let mut productive = vec![false; n];
    loop {
        let mut changed = false;
        for (r, alts) in defs.iter().enumerate() {
            if !nullable[r]
                && alts.iter().any(|a| {
                    a.iter()
                        .all(|e| matches!(e, Elem::Rule(x) if nullable[*x as usize]))
                })
            {
                nullable[r] = true;
                changed = true;
            }
            if !productive[r]
                && alts.iter().any(|a| {
                    a.iter().all(|e| match e {
                        Elem::Rule(x) => productive[*x as usize],
                        _ => true,
                    })
                })
            {
                productive[r] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    if productive.iter().any(|p| !p) {
        return Err(GrammarError::new(
            "the schema has no finite instance (it recurses without a way to stop)",
        ));
    }
    // Left edges: r → x when x can start r without consuming input.
    let mut edges: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (r, alts) in defs.iter().enumerate() {
        for a in alts {
            for e in a {
                match e {
                    Elem::Rule(x) => {
                        edges[r].push(*x);
                        if !nullable[*x as usize] {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
    }
    // Iterative DFS for a cycle (0 = new, 1 = on the path, 2 = done).
    let mut color = vec![0u8; n];
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (r, ref mut i)) = stack.last_mut() {
            if *i < edges[r].len() {
                let x = edges[r][*i] as usize;
                *i += 1;
                match color[x] {
                    0 => {
                        color[x] = 1;
                        stack.push((x, 0));
                    }
                    1 => return Err(GrammarError::new(
                        "the schema refers to itself without consuming any input (left recursion)",
                    )),
                    _ => {}
                }
            } else {
                color[r] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// Partitions the 256 byte values into classes no terminal distinguishes.
fn byte_classes(classes: &[ByteSet]) -> ([u8; 256], usize) {
    let mut sig_ids: HashMap<Vec<u64>, u8> = HashMap::new();
    let mut map = [0u8; 256];
    let words = classes.len().div_ceil(64);
    for b in 0..=255u8 {
        let mut sig = vec![0u64; words];
        for (i, c) in classes.iter().enumerate() {
            if c.contains(b) {
                sig[i / 64] |= 1 << (i % 64);
            }
        }
        let next = sig_ids.len();
        // At most 256 distinct signatures, so the id fits a byte.
        map[b as usize] = *sig_ids.entry(sig).or_insert(next as u8);
    }
    (map, sig_ids.len())
}

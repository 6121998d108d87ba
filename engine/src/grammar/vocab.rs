//! Token masks: the vocabulary as a byte trie, walked together with the [`Matcher`].
//!
//! The trie is laid out in preorder (a node's first child follows it; `skip` jumps past its
//! subtree), so computing a mask is one forward scan that skips every subtree whose prefix
//! the grammar rejects, with one cached DFA transition per visited node.

use super::matcher::DEAD;
use super::{Grammar, GrammarError, Matcher, Result};
use crate::sampler::Sampler;
use crate::tokenizer::{attr, Tokenizer};
use std::collections::HashMap;
use std::sync::Arc;

/// Tokens longer than this (bytes) are never offered under a grammar.
const MAX_TOKEN_BYTES: usize = 1024;

/// Coarse byte categories (bit per category) for the subtree summaries: the specials of
/// JSON get their own, the rest are grouped. Coarse is safe: a subtree is taken whole only
/// when every byte of each of its categories keeps the state unchanged.
fn category(b: u8) -> u32 {
    let c = match b {
        b'\t' | b'\r' => 1,
        b'\n' => 2,
        0..=0x1F => 0,
        b' ' => 3,
        b'"' => 4,
        b'\\' => 5,
        b'0'..=b'9' => 6,
        b'e' | b'E' => 9,
        b'a'..=b'z' => 7,
        b'A'..=b'Z' => 8,
        b'{' => 10,
        b'}' => 11,
        b'[' => 12,
        b']' => 13,
        b',' => 14,
        b':' => 15,
        b'-' => 16,
        b'+' => 17,
        b'.' => 18,
        0x7F => 20,
        0x80..=0xBF => 21,
        0xC0..=0xFF => 22,
        _ => 19,
    };
    1 << c
}

#[derive(Clone, Copy, Debug)]
struct Node {
    /// Index of the node after this subtree.
    skip: u32,
    /// First entry of `toks` of tokens ending here (up to the next node's).
    tok_start: u32,
    depth: u16,
    byte: u8,
}

/// A vocabulary prepared for masking: built once per model, shared by its sequences.
#[derive(Debug)]
pub struct TokenVocab {
    /// Length of the logits (the model's vocabulary, which may exceed the tokenizer's).
    n_vocab: usize,
    nodes: Vec<Node>,
    /// Per node: the categories of the bytes in its subtree (its own byte included).
    cats: Vec<u32>,
    toks: Vec<u32>,
    max_depth: usize,
    /// Bytes of each token (empty: never allowed), as offsets into `bytes`.
    offsets: Vec<u32>,
    bytes: Vec<u8>,
    eog: Vec<u32>,
    /// Tokens made of whitespace only (bitset).
    blank: Vec<u64>,
}

impl TokenVocab {
    /// From a tokenizer: every token renders as its text bytes; control, unknown, unused
    /// and user-defined tokens are never allowed, the end-of-generation tokens only when
    /// the output is complete. `n_vocab` is the length of the model's logits.
    pub fn new(tok: &Tokenizer, n_vocab: usize) -> TokenVocab {
        let n = tok.n_vocab().min(n_vocab);
        let banned = attr::CONTROL | attr::UNKNOWN | attr::UNUSED | attr::USER_DEFINED;
        let pieces = (0..n as u32).map(|id| {
            let ok = tok.token_attr(id).is_some_and(|a| a & banned == 0) && !tok.is_eog(id);
            (
                id,
                if ok {
                    tok.token_to_piece(id, false)
                } else {
                    &[][..]
                },
            )
        });
        let eog: Vec<u32> = tok
            .eog_tokens()
            .iter()
            .copied()
            .filter(|&t| (t as usize) < n_vocab)
            .collect();
        TokenVocab::from_pieces(pieces, eog, n_vocab)
    }

    /// From `(token id, bytes)` pairs (empty bytes: never allowed) and the end tokens.
    pub fn from_pieces<'a>(
        pieces: impl Iterator<Item = (u32, &'a [u8])>,
        eog: Vec<u32>,
        n_vocab: usize,
    ) -> TokenVocab {
        // Bytes of every token, indexed by id (gaps are empty tokens).
        let mut spans: Vec<&[u8]> = vec![&[]; n_vocab];
        for (id, p) in pieces {
            if (id as usize) < n_vocab && p.len() <= MAX_TOKEN_BYTES {
                spans[id as usize] = p;
            }
        }
        let mut offsets = Vec::with_capacity(n_vocab + 1);
        let mut bytes = Vec::new();
        for p in &spans {
            offsets.push(bytes.len() as u32);
            bytes.extend_from_slice(p);
        }
        offsets.push(bytes.len() as u32);
        let mut entries: Vec<(&[u8], u32)> = spans
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(id, p)| (*p, id as u32))
            .collect();
        entries.sort_unstable();

        let mut nodes = vec![Node {
            skip: 0,
            tok_start: 0,
            depth: 0,
            byte: 0,
        }];
        let mut toks = Vec::with_capacity(entries.len());
        let mut path: Vec<usize> = vec![0];
        let mut prev: &[u8] = &[];
        let mut max_depth = 0;
        for &(p, id) in &entries {
            let lcp = prev.iter().zip(p).take_while(|(a, b)| a == b).count();
            while path.len() > lcp + 1 {
                let n = path.pop().expect("deeper than lcp");
                nodes[n].skip = nodes.len() as u32;
            }
            for (d, &b) in p.iter().enumerate().skip(lcp) {
                path.push(nodes.len());
                nodes.push(Node {
                    skip: 0,
                    tok_start: toks.len() as u32,
                    depth: (d + 1) as u16,
                    byte: b,
                });
            }
            // Sorted order puts a token right after its node is created, or right after a
            // token with the same bytes: either way its node is the last one.
            toks.push(id);
            max_depth = max_depth.max(p.len());
            prev = p;
        }
        while let Some(n) = path.pop() {
            nodes[n].skip = nodes.len() as u32;
        }
        // Sentinel: the end of the last node's token range.
        nodes.push(Node {
            skip: 0,
            tok_start: toks.len() as u32,
            depth: 0,
            byte: 0,
        });
        // Subtree summaries, children before parents (reverse preorder).
        let n = nodes.len() - 1;
        let mut cats = vec![0u32; n];
        for i in (1..n).rev() {
            let mut c = category(nodes[i].byte);
            let mut child = i + 1;
            while child < nodes[i].skip as usize {
                c |= cats[child];
                child = nodes[child].skip as usize;
            }
            cats[i] = c;
        }
        let mut blank = vec![0u64; n_vocab.div_ceil(64)];
        for id in 0..n_vocab {
            let p = &bytes[offsets[id] as usize..offsets[id + 1] as usize];
            if !p.is_empty() && p.iter().all(|b| b" \t\n\r".contains(b)) {
                blank[id >> 6] |= 1 << (id & 63);
            }
        }
        TokenVocab {
            blank,
            n_vocab,
            nodes,
            cats,
            toks,
            max_depth,
            offsets,
            bytes,
            eog,
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    pub fn eog(&self) -> &[u32] {
        &self.eog
    }

    /// Trie nodes (a size measure).
    pub fn trie_nodes(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The bytes token `id` writes under a grammar (empty: never allowed).
    pub fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i >= self.n_vocab {
            return &[];
        }
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    fn is_blank(&self, id: u32) -> bool {
        self.blank
            .get(id as usize >> 6)
            .is_some_and(|w| w >> (id & 63) & 1 == 1)
    }
}

/// One sequence's grammar constraint over a vocabulary. Output follows the grammar, except
/// that no whitespace-only token is offered once the output is complete (it could only be
/// trailing whitespace; the sequence ends instead).
#[derive(Debug)]
pub struct Constraint {
    m: Matcher,
    vocab: Arc<TokenVocab>,
    mask: Vec<u64>,
    states: Vec<u32>,
    /// Masks of recently seen states: inside a string or a run of digits the state repeats
    /// from token to token, and so does the mask. Keyed by (matcher epoch, state).
    cache: HashMap<(u64, u32), Box<[u64]>>,
    /// Per state id: the byte categories all of whose bytes loop back to the state (bit 63:
    /// computed), valid for `loops_epoch`.
    loops: Vec<u64>,
    loops_epoch: u64,
}

/// Masks remembered per constraint (each is `n_vocab / 8` bytes: 32 KiB for 262k tokens).
const MASK_CACHE: usize = 32;

impl Constraint {
    pub fn new(grammar: Arc<Grammar>, vocab: Arc<TokenVocab>) -> Result<Constraint> {
        let words = vocab.n_vocab.div_ceil(64);
        Ok(Constraint {
            m: Matcher::new(grammar)?,
            mask: vec![0; words],
            states: vec![DEAD; vocab.max_depth + 1],
            vocab,
            cache: HashMap::new(),
            loops: Vec::new(),
            loops_epoch: 0,
        })
    }

    /// The output so far is a complete sentence (an end token may follow).
    pub fn is_complete(&self) -> bool {
        self.m.is_complete()
    }

    /// Complete, and nothing but an end token may follow.
    pub fn is_finished(&self) -> bool {
        self.m.is_finished()
    }

    /// Back to the start of the output (the caches are kept).
    pub fn reset(&mut self) -> Result<()> {
        self.m.reset()
    }

    pub fn matcher(&self) -> &Matcher {
        &self.m
    }

    /// Whether `tok` may come next.
    pub fn allows(&mut self, tok: u32) -> Result<bool> {
        if self.vocab.is_eog(tok) {
            return Ok(self.m.is_complete());
        }
        let p = self.vocab.piece(tok);
        if p.is_empty() || (self.m.is_complete() && self.vocab.is_blank(tok)) {
            return Ok(false);
        }
        let s = self.m.run(self.m.state(), p)?;
        Ok(s != DEAD)
    }

    /// Advances over raw output bytes if the grammar allows them all (else unchanged).
    pub fn accept_bytes(&mut self, bytes: &[u8]) -> Result<bool> {
        self.m.accept_bytes(bytes)
    }

    /// Advances over `tok`; an error if the grammar does not allow it.
    pub fn accept(&mut self, tok: u32) -> Result<()> {
        // Greedy decoding may go long stretches without a mask: keep the caches bounded here.
        self.m.compact();
        if self.vocab.is_eog(tok) {
            if self.m.is_complete() {
                return Ok(());
            }
            return Err(GrammarError::new(
                "an end token before the structured output is complete",
            ));
        }
        let p = self.vocab.piece(tok);
        if p.is_empty() || !self.m.accept_bytes(p)? {
            return Err(GrammarError::new(format!(
                "token {tok} does not fit the structured output"
            )));
        }
        Ok(())
    }

    /// The allowed-token bitset for the next position (bit `i % 64` of word `i / 64`).
    pub fn mask(&mut self) -> Result<&[u64]> {
        self.m.compact();
        let key = (self.m.epoch(), self.m.state());
        if let Some(m) = self.cache.get(&key) {
            self.mask.copy_from_slice(m);
            return Ok(&self.mask);
        }
        self.mask_uncached()?;
        if self.cache.len() >= MASK_CACHE {
            self.cache.clear();
        }
        self.cache.insert(key, self.mask.as_slice().into());
        Ok(&self.mask)
    }

    /// [`Constraint::mask`] computed by walking the vocabulary trie, never from the
    /// per-state cache (what a step costs when its state is new).
    pub fn mask_uncached(&mut self) -> Result<&[u64]> {
        self.m.compact();
        self.mask.fill(0);
        if self.loops_epoch != self.m.epoch() {
            self.loops.clear();
            self.loops_epoch = self.m.epoch();
        }
        let vocab = self.vocab.clone();
        let (nodes, cats, toks) = (&vocab.nodes, &vocab.cats, &vocab.toks);
        let n = nodes.len() - 1;
        self.states[0] = self.m.state();
        let mut i = 1;
        while i < n {
            let node = nodes[i];
            let d = node.depth as usize;
            let parent = self.states[d - 1];
            // A subtree whose bytes all keep the state where it is (the inside of a string,
            // mostly): every token in it is allowed, no need to walk it.
            if cats[i] & !self.loop_categories(parent)? == 0 {
                let end = node.skip as usize;
                for &t in &toks[node.tok_start as usize..nodes[end].tok_start as usize] {
                    self.mask[t as usize >> 6] |= 1 << (t & 63);
                }
                i = end;
                continue;
            }
            let s = self.m.step(parent, node.byte)?;
            if s == DEAD {
                i = node.skip as usize;
                continue;
            }
            self.states[d] = s;
            for &t in &toks[node.tok_start as usize..nodes[i + 1].tok_start as usize] {
                self.mask[t as usize >> 6] |= 1 << (t & 63);
            }
            i += 1;
        }
        if self.m.is_complete() {
            // Once the value is complete, whitespace could only trail it: end instead.
            for (w, b) in self.mask.iter_mut().zip(&self.vocab.blank) {
                *w &= !b;
            }
            for &t in &self.vocab.eog {
                self.mask[t as usize >> 6] |= 1 << (t & 63);
            }
        }
        Ok(&self.mask)
    }

    /// The byte categories every byte of which leads from state `s` back to `s`.
    fn loop_categories(&mut self, s: u32) -> Result<u32> {
        const KNOWN: u64 = 1 << 63;
        let i = s as usize;
        if let Some(&v) = self.loops.get(i) {
            if v & KNOWN != 0 {
                return Ok(v as u32);
            }
        }
        let mut ok = u32::MAX;
        for b in 0..=255u8 {
            if self.m.step(s, b)? != s {
                ok &= !category(b);
            }
        }
        if self.loops.len() <= i {
            self.loops.resize(i + 1, 0);
        }
        self.loops[i] = KNOWN | ok as u64;
        Ok(ok)
    }

    /// Picks the next token with `sampler` among those the grammar allows, and advances
    /// over it. `None`: the output is complete and the vocabulary has no end token, so the
    /// sequence should simply end.
    ///
    /// Greedy decoding first tries the unconstrained choice (exactly the masked argmax
    /// when the grammar allows it), so most steps cost one token walk, not a mask.
    pub fn sample(
        &mut self,
        sampler: &mut Sampler,
        logits: &[f32],
        history: &[u32],
    ) -> std::result::Result<Option<u32>, String> {
        if self.m.is_finished() {
            return Ok(self.vocab.eog.first().copied());
        }
        if sampler.options().temperature <= 0.0 {
            let t = sampler.sample(logits, history).map_err(|e| e.to_string())?;
            if self.allows(t).map_err(|e| e.to_string())? {
                self.accept(t).map_err(|e| e.to_string())?;
                return Ok(Some(t));
            }
        }
        let mask = self.mask().map_err(|e| e.to_string())?;
        if mask.iter().all(|&w| w == 0) {
            if self.m.is_complete() {
                return Ok(None);
            }
            return Err("no token of the vocabulary can continue the structured output".into());
        }
        let t = sampler
            .sample_masked(logits, history, &self.mask)
            .map_err(|e| e.to_string())?;
        self.accept(t).map_err(|e| e.to_string())?;
        Ok(Some(t))
    }
}

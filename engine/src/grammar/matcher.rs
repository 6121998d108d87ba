//! Incremental matching of a [`Grammar`], a byte at a time.
//!
//! The parser state is a set of stacks of grammar positions (as in llama.cpp's grammar
//! sampler): the top of each stack is a terminal that the next byte may match, the frames
//! below it are where to continue once the enclosing rules finish. Stacks are hash-consed
//! (a frame is `(position, parent frame)`, interned), so equal stacks are equal ids, sets of
//! stacks are interned too, and the transition of a set on a byte is computed once and
//! cached: a lazily built DFA. Walking the vocabulary trie then costs a table lookup per
//! trie node in the common case. The caches are bounded and rebuilt when they grow too big.

use super::{Elem, Grammar, GrammarError, Result};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// No parent frame (bottom of a stack).
const NIL: u32 = u32::MAX;
/// In a set of stacks: the empty stack, i.e. the input so far is a complete sentence.
const ACCEPT: u32 = u32::MAX;
/// The state no input leads out of.
pub(crate) const DEAD: u32 = 0;
const UNKNOWN: u32 = u32::MAX;

/// Most stacks one state may hold (an ambiguous grammar could otherwise multiply them).
pub const MAX_STACKS: usize = 4096;
/// Cache sizes past which the matcher starts afresh from its current state.
const MAX_FRAMES: usize = 500_000;
const MAX_STATES: usize = 50_000;

/// FxHash (rustc's): the keys are small integers, SipHash would dominate the cost.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An incremental parser for one [`Grammar`].
#[derive(Clone)]
pub struct Matcher {
    g: Arc<Grammar>,
    frames: Vec<(u32, u32)>,
    frame_ids: FxMap<(u32, u32), u32>,
    /// Sorted frame ids (tops of stacks; `ACCEPT` last when present). `sets[DEAD]` is empty.
    sets: Vec<Box<[u32]>>,
    set_ids: FxMap<Box<[u32]>, u32>,
    /// `sets.len() * n_byte_classes` cached transitions.
    trans: Vec<u32>,
    state: u32,
    /// Bumped whenever the tables are rebuilt (state ids change meaning).
    epoch: u64,
    /// Copies of the grammar's byte classes, next to `trans` for the hot loop.
    nc: usize,
    byte_class: [u8; 256],
    // Scratch buffers of `closure`.
    work: Vec<(u32, u32)>,
    seen: FxMap<(u32, u32), ()>,
    out: Vec<u32>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("state", &self.state)
            .field("states", &self.sets.len())
            .field("frames", &self.frames.len())
            .finish()
    }
}

impl Matcher {
    pub fn new(g: Arc<Grammar>) -> Result<Matcher> {
        let mut m = Matcher {
            nc: g.n_byte_classes,
            byte_class: g.byte_class,
            g,
            frames: Vec::new(),
            frame_ids: FxMap::default(),
            sets: Vec::new(),
            set_ids: FxMap::default(),
            trans: Vec::new(),
            state: DEAD,
            epoch: 0,
            work: Vec::new(),
            seen: FxMap::default(),
            out: Vec::new(),
        };
        m.reset_tables();
        m.reset()?;
        if m.state == DEAD {
            return Err(GrammarError::new("the grammar matches nothing"));
        }
        Ok(m)
    }

    /// Back to the start of the input (the caches are kept).
    pub fn reset(&mut self) -> Result<()> {
        let seeds: Vec<(u32, u32)> = self.g.rules[self.g.root as usize]
            .iter()
            .map(|&a| (a, NIL))
            .collect();
        self.state = self.closure(&seeds)?;
        Ok(())
    }

    fn reset_tables(&mut self) {
        self.epoch += 1;
        self.frames.clear();
        self.frame_ids.clear();
        self.sets.clear();
        self.set_ids.clear();
        self.trans.clear();
        let dead: Box<[u32]> = Box::new([]);
        self.sets.push(dead.clone());
        self.set_ids.insert(dead, DEAD);
        self.trans
            .extend(std::iter::repeat_n(DEAD, self.g.n_byte_classes));
    }

    pub fn grammar(&self) -> &Arc<Grammar> {
        &self.g
    }

    /// The current state (an interned set of stacks).
    pub(crate) fn state(&self) -> u32 {
        self.state
    }

    /// The input so far is a complete sentence of the grammar.
    pub fn is_complete(&self) -> bool {
        self.sets[self.state as usize].last() == Some(&ACCEPT)
    }

    /// Complete, and no byte can follow.
    pub fn is_finished(&self) -> bool {
        *self.sets[self.state as usize] == [ACCEPT]
    }

    /// Changes whenever state ids are invalidated (the caches were rebuilt).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of cached states (for tests and diagnostics).
    pub fn cached_states(&self) -> usize {
        self.sets.len()
    }

    /// Advances over `bytes` if the grammar allows all of them; otherwise leaves the state
    /// unchanged and returns `false`.
    pub fn accept_bytes(&mut self, bytes: &[u8]) -> Result<bool> {
        let s = self.run(self.state, bytes)?;
        if s == DEAD {
            return Ok(false);
        }
        self.state = s;
        Ok(true)
    }

    /// Whether `bytes` can extend the input so far (the state is not changed).
    pub fn can_accept(&mut self, bytes: &[u8]) -> Result<bool> {
        Ok(self.run(self.state, bytes)? != DEAD)
    }

    pub(crate) fn run(&mut self, mut s: u32, bytes: &[u8]) -> Result<u32> {
        for &b in bytes {
            s = self.step(s, b)?;
            if s == DEAD {
                break;
            }
        }
        Ok(s)
    }

    /// The state after `b` from state `s` (`DEAD` if `b` cannot follow).
    #[inline]
    pub(crate) fn step(&mut self, s: u32, b: u8) -> Result<u32> {
        let idx = s as usize * self.nc + self.byte_class[b as usize] as usize;
        let t = self.trans[idx];
        if t != UNKNOWN {
            return Ok(t);
        }
        let t = self.compute_step(s, b)?;
        self.trans[idx] = t;
        Ok(t)
    }

    fn compute_step(&mut self, s: u32, b: u8) -> Result<u32> {
        let mut seeds = Vec::new();
        for &f in self.sets[s as usize].iter() {
            if f == ACCEPT {
                continue;
            }
            let (pos, parent) = self.frames[f as usize];
            if let Elem::Class(c) = self.g.elems[pos as usize] {
                if self.g.classes[c as usize].contains(b) {
                    seeds.push((pos + 1, parent));
                }
            }
        }
        if seeds.is_empty() {
            return Ok(DEAD);
        }
        self.closure(&seeds)
    }

    fn frame(&mut self, pos: u32, parent: u32) -> u32 {
        let next = self.frames.len() as u32;
        let frames = &mut self.frames;
        *self.frame_ids.entry((pos, parent)).or_insert_with(|| {
            frames.push((pos, parent));
            next
        })
    }

    /// Expands positions until every stack's top is a terminal (or the stack is empty), and
    /// interns the resulting set.
    fn closure(&mut self, seeds: &[(u32, u32)]) -> Result<u32> {
        let g = self.g.clone();
        self.work.clear();
        self.work.extend_from_slice(seeds);
        self.seen.clear();
        self.out.clear();
        while let Some((pos, parent)) = self.work.pop() {
            if self.seen.insert((pos, parent), ()).is_some() {
                continue;
            }
            match g.elems[pos as usize] {
                Elem::End => {
                    if parent == NIL {
                        self.out.push(ACCEPT);
                    } else {
                        let (p, pp) = self.frames[parent as usize];
                        self.work.push((p, pp));
                    }
                }
                Elem::Rule(r) => {
                    // The continuation of a rule in tail position is the parent itself, so
                    // right recursion does not grow the stack.
                    let cont = if g.elems[pos as usize + 1] == Elem::End {
                        parent
                    } else {
                        self.frame(pos + 1, parent)
                    };
                    for &a in &g.rules[r as usize] {
                        self.work.push((a, cont));
                    }
                }
                Elem::Class(_) => {
                    let f = self.frame(pos, parent);
                    self.out.push(f);
                }
            }
            if self.seen.len() > 16 * MAX_STACKS {
                return Err(GrammarError::new(
                    "the grammar is too ambiguous to match (too many parse states)",
                ));
            }
        }
        self.out.sort_unstable();
        self.out.dedup();
        if self.out.len() > MAX_STACKS {
            return Err(GrammarError::new(
                "the grammar is too ambiguous to match (too many parse stacks)",
            ));
        }
        if let Some(&id) = self.set_ids.get(self.out.as_slice()) {
            return Ok(id);
        }
        let id = self.sets.len() as u32;
        let set: Box<[u32]> = self.out.as_slice().into();
        self.sets.push(set.clone());
        self.set_ids.insert(set, id);
        self.trans
            .extend(std::iter::repeat_n(UNKNOWN, self.g.n_byte_classes));
        Ok(id)
    }

    /// Drops the caches when they grew past their bounds, keeping only the current state.
    /// Call between steps, never while holding state ids from before.
    pub fn compact(&mut self) {
        if self.frames.len() > MAX_FRAMES || self.sets.len() > MAX_STATES {
            self.rebuild();
        }
    }

    /// Starts the caches afresh from the current state.
    pub(crate) fn rebuild(&mut self) {
        // Each stack of the current state as its positions, top first.
        let stacks: Vec<Option<Vec<u32>>> = self.sets[self.state as usize]
            .iter()
            .map(|&f| {
                if f == ACCEPT {
                    return None;
                }
                let mut chain = Vec::new();
                let mut f = f;
                while f != NIL {
                    let (pos, parent) = self.frames[f as usize];
                    chain.push(pos);
                    f = parent;
                }
                Some(chain)
            })
            .collect();
        self.reset_tables();
        let mut set: Vec<u32> = stacks
            .into_iter()
            .map(|s| match s {
                None => ACCEPT,
                Some(chain) => chain
                    .into_iter()
                    .rev()
                    .fold(NIL, |parent, pos| self.frame(pos, parent)),
            })
            .collect();
        set.sort_unstable();
        let id = self.sets.len() as u32;
        let set: Box<[u32]> = set.into();
        self.sets.push(set.clone());
        self.set_ids.insert(set, id);
        self.trans
            .extend(std::iter::repeat_n(UNKNOWN, self.g.n_byte_classes));
        self.state = id;
    }
}

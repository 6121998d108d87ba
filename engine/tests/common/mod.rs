//! Shared by the GGUF integration tests: a small GGUF writer that can also produce
//! deliberately broken files, an allocation counter, and the parse-and-walk check that
//! the fuzz target runs too.
#![allow(dead_code)] // each test binary uses a different subset

pub mod walk;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferrite_engine::gguf::{GgufError, GgufFile};
use kernels::GgmlType;

// ---------------------------------------------------------------------------------------
// Allocation counting (per thread, so parallel tests do not disturb each other).

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(n: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(n)));
}

// SAFETY: forwards to the system allocator unchanged; only adds a thread-local counter
// (const-initialised, no destructor, so touching it never allocates or recurses).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the bytes allocated meanwhile on this thread
/// (a sum over all allocations and reallocations: an upper bound on the peak).
pub fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

/// Allocation budget for parsing a file of `len` bytes: a small multiple of its size.
pub fn alloc_budget(len: usize) -> usize {
    64 * 1024 + 16 * len
}

/// Parses `bytes`, expecting an error; also checks the parser stayed within the
/// allocation budget and that the message is not empty.
#[track_caller]
pub fn parse_err(bytes: Vec<u8>) -> GgufError {
    let len = bytes.len();
    let (result, allocated) = allocated_by(move || GgufFile::from_bytes(bytes));
    assert!(
        allocated <= alloc_budget(len),
        "parsing a {len}-byte file allocated {allocated} bytes"
    );
    match result {
        Ok(f) => panic!("expected an error, parsed {f:?}"),
        Err(e) => {
            assert!(!e.message().is_empty());
            e
        }
    }
}

/// Asserts the error message contains every one of `needles`.
#[track_caller]
pub fn assert_msg(err: &GgufError, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} does not mention {n:?}");
    }
}

// ---------------------------------------------------------------------------------------
// A GGUF writer.

/// A value to write. `Arr(elem_type_id, elements)` writes the elements untagged, as GGUF
/// does; `Raw(type_id, payload)` writes any type id followed by arbitrary bytes.
#[derive(Clone, Debug)]
pub enum V {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Arr(u32, Vec<V>),
    U64(u64),
    I64(i64),
    F64(f64),
    Raw(u32, Vec<u8>),
}

pub fn s(x: &str) -> V {
    V::Str(x.to_string())
}

impl V {
    pub fn type_id(&self) -> u32 {
        match self {
            V::U8(_) => 0,
            V::I8(_) => 1,
            V::U16(_) => 2,
            V::I16(_) => 3,
            V::U32(_) => 4,
            V::I32(_) => 5,
            V::F32(_) => 6,
            V::Bool(_) => 7,
            V::Str(_) => 8,
            V::Arr(..) => 9,
            V::U64(_) => 10,
            V::I64(_) => 11,
            V::F64(_) => 12,
            V::Raw(t, _) => *t,
        }
    }

    /// The value without its type id.
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            V::U8(v) => out.extend(v.to_le_bytes()),
            V::I8(v) => out.extend(v.to_le_bytes()),
            V::U16(v) => out.extend(v.to_le_bytes()),
            V::I16(v) => out.extend(v.to_le_bytes()),
            V::U32(v) => out.extend(v.to_le_bytes()),
            V::I32(v) => out.extend(v.to_le_bytes()),
            V::F32(v) => out.extend(v.to_le_bytes()),
            V::Bool(v) => out.push(*v as u8),
            V::Str(v) => put_str(out, v),
            V::Arr(elem, items) => {
                out.extend(elem.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    assert_eq!(item.type_id(), *elem, "heterogeneous test array");
                    item.write_payload(out);
                }
            }
            V::U64(v) => out.extend(v.to_le_bytes()),
            V::I64(v) => out.extend(v.to_le_bytes()),
            V::F64(v) => out.extend(v.to_le_bytes()),
            V::Raw(_, bytes) => out.extend(bytes),
        }
    }
}

pub fn put_str(out: &mut Vec<u8>, v: &str) {
    put_bytes_str(out, v.as_bytes());
}

pub fn put_bytes_str(out: &mut Vec<u8>, v: &[u8]) {
    out.extend((v.len() as u64).to_le_bytes());
    out.extend(v);
}

/// One tensor info. `name` is bytes so tests can write invalid UTF-8.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: Vec<u8>,
    pub type_id: u32,
    pub dims: Vec<u64>,
    /// Offset relative to the data section; `None` = next free aligned slot.
    pub offset: Option<u64>,
    pub data: Vec<u8>,
}

/// Builds GGUF files. Defaults give a valid file; every field can be overridden to break it.
#[derive(Clone, Debug)]
pub struct Builder {
    pub magic: [u8; 4],
    pub version: u32,
    /// Written instead of the real counts when set.
    pub n_tensors: Option<u64>,
    pub n_kv: Option<u64>,
    /// Keys are bytes so tests can write invalid UTF-8.
    pub kvs: Vec<(Vec<u8>, V)>,
    pub tensors: Vec<TensorSpec>,
    /// Alignment used to lay out the data (independent of any `general.alignment` kv).
    pub alignment: u64,
}

/// Where `build` put things.
pub struct Placement {
    pub data_offset: u64,
    /// Absolute offset of each tensor's data.
    pub offsets: Vec<u64>,
}

impl Builder {
    pub fn new(version: u32) -> Builder {
        Builder {
            magic: *b"GGUF",
            version,
            n_tensors: None,
            n_kv: None,
            kvs: Vec::new(),
            tensors: Vec::new(),
            alignment: 32,
        }
    }

    pub fn kv(mut self, key: &str, v: V) -> Builder {
        self.kvs.push((key.as_bytes().to_vec(), v));
        self
    }

    /// A well-formed tensor with deterministic pseudo-random data of the right size.
    pub fn tensor(mut self, name: &str, dtype: GgmlType, dims: &[u64]) -> Builder {
        let rows: u64 = dims[1..].iter().product();
        let size = dtype.row_bytes(dims[0] as usize).expect("whole blocks") as u64 * rows;
        let seed = self.tensors.len() as u64 + 1;
        self.tensors.push(TensorSpec {
            name: name.as_bytes().to_vec(),
            type_id: dtype.id(),
            dims: dims.to_vec(),
            offset: None,
            data: pattern(seed, size as usize),
        });
        self
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with_layout().0
    }

    pub fn build_with_layout(&self) -> (Vec<u8>, Placement) {
        let mut out = Vec::new();
        out.extend(self.magic);
        out.extend(self.version.to_le_bytes());
        let n_tensors = self.n_tensors.unwrap_or(self.tensors.len() as u64);
        let n_kv = self.n_kv.unwrap_or(self.kvs.len() as u64);
        out.extend(n_tensors.to_le_bytes());
        out.extend(n_kv.to_le_bytes());
        for (key, v) in &self.kvs {
            put_bytes_str(&mut out, key);
            out.extend(v.type_id().to_le_bytes());
            v.write_payload(&mut out);
        }
        let mut rel = Vec::new();
        let mut next = 0u64;
        for t in &self.tensors {
            let off = t.offset.unwrap_or(next);
            if let Some(end) = off
                .checked_add(t.data.len() as u64)
                .and_then(|e| e.checked_next_multiple_of(self.alignment))
            {
                next = next.max(end);
            }
            rel.push(off);
            put_bytes_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(off.to_le_bytes());
        }
        let data_offset = (out.len() as u64).next_multiple_of(self.alignment);
        if !self.tensors.is_empty() {
            out.resize(data_offset as usize, 0);
        }
        let mut offsets = Vec::new();
        for (t, &off) in self.tensors.iter().zip(&rel) {
            // Absurd offsets (tests of out-of-range data) get no data written.
            let Some(start) = data_offset.checked_add(off).filter(|&s| s < 1 << 32) else {
                offsets.push(u64::MAX);
                continue;
            };
            let start = start as usize;
            let end = start + t.data.len();
            if out.len() < end {
                out.resize(end, 0);
            }
            out[start..end].copy_from_slice(&t.data);
            offsets.push(start as u64);
        }
        (
            out,
            Placement {
                data_offset,
                offsets,
            },
        )
    }
}

/// Deterministic bytes (xorshift), different per seed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid file exercising every value type (arrays of every element type, arrays of
/// strings, nested arrays), several tensors of different types and shapes, and a
/// non-default alignment written as a u32.
pub fn rich_file(version: u32) -> Builder {
    Builder::new(version)
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny ✓ test"))
        .kv("t.u8", V::U8(200))
        .kv("t.i8", V::I8(-100))
        .kv("t.u16", V::U16(60000))
        .kv("t.i16", V::I16(-30000))
        .kv("t.u32", V::U32(4_000_000_000))
        .kv("t.i32", V::I32(-2_000_000_000))
        .kv("t.f32", V::F32(1.5))
        .kv("t.bool", V::Bool(true))
        .kv("t.u64", V::U64(1 << 40))
        .kv("t.i64", V::I64(-(1 << 40)))
        .kv("t.f64", V::F64(-2.25))
        .kv("t.empty_str", s(""))
        .kv("t.arr.u8", V::Arr(0, vec![V::U8(1), V::U8(2), V::U8(255)]))
        .kv("t.arr.i8", V::Arr(1, vec![V::I8(-1), V::I8(7)]))
        .kv("t.arr.u16", V::Arr(2, vec![V::U16(65535)]))
        .kv("t.arr.i16", V::Arr(3, vec![V::I16(-2), V::I16(3)]))
        .kv("t.arr.u32", V::Arr(4, vec![V::U32(7), V::U32(8)]))
        .kv(
            "t.arr.i32",
            V::Arr(5, vec![V::I32(-5), V::I32(0), V::I32(9)]),
        )
        .kv("t.arr.f32", V::Arr(6, vec![V::F32(0.5), V::F32(-0.0)]))
        .kv("t.arr.bool", V::Arr(7, vec![V::Bool(false), V::Bool(true)]))
        .kv(
            "t.arr.str",
            V::Arr(8, vec![s("a"), s(""), s("<|im_start|>"), s("Ġhello")]),
        )
        .kv("t.arr.u64", V::Arr(10, vec![V::U64(u64::MAX)]))
        .kv("t.arr.i64", V::Arr(11, vec![V::I64(i64::MIN)]))
        .kv("t.arr.f64", V::Arr(12, vec![V::F64(1e300)]))
        .kv("t.arr.empty", V::Arr(6, vec![]))
        .kv(
            "t.arr.nested",
            V::Arr(
                9,
                vec![
                    V::Arr(4, vec![V::U32(1), V::U32(2)]),
                    V::Arr(8, vec![s("x")]),
                    V::Arr(9, vec![V::Arr(0, vec![V::U8(3)])]),
                ],
            ),
        )
        .kv("general.alignment", V::U32(64))
        .with_alignment(64)
        .tensor("token_embd.weight", GgmlType::Q8_0, &[64, 3])
        .tensor("blk.0.attn_norm.weight", GgmlType::F32, &[64])
        .tensor("blk.0.attn_q.weight", GgmlType::Q4K, &[256, 2])
        .tensor("blk.0.ffn_up.weight", GgmlType::Q4_1, &[32, 2, 3])
        .tensor("blk.0.ffn_down.weight", GgmlType::F16, &[3, 5, 1, 2])
        .tensor("blk.0.x.weight", GgmlType::Q6K, &[256])
}

impl Builder {
    pub fn with_alignment(mut self, a: u64) -> Builder {
        self.alignment = a;
        self
    }
}

/// A small valid file (three tensors, a few keys) for truncation and mutation runs.
pub fn small_file(version: u32) -> Builder {
    Builder::new(version)
        .kv("general.architecture", s("llama"))
        .kv("llama.block_count", V::U32(1))
        .kv(
            "tokenizer.ggml.tokens",
            V::Arr(8, vec![s("<s>"), s("a"), s("b")]),
        )
        .kv("tokenizer.ggml.scores", V::Arr(6, vec![V::F32(0.0); 3]))
        .kv("t.nested", V::Arr(9, vec![V::Arr(5, vec![V::I32(1)])]))
        .kv("t.bool", V::Bool(false))
        .tensor("a", GgmlType::F32, &[4, 2])
        .tensor("b", GgmlType::Q4_0, &[32])
        .tensor("c", GgmlType::F16, &[2, 2])
}

/// Parse result as a `Result`, for use with `?` in helpers.
pub fn parse(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(bytes)
}

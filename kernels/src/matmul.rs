//! Matrix drivers over quantized weights: matrix×vector (decode) and
//! matrix×matrix (prefill), parallel over blocks of weight rows on the current
//! rayon pool (run them inside `pool.install(..)` to choose the thread count).
//!
//! Weights are `rows` rows of `cols` elements in `k.dtype`, stored as in GGUF
//! (row-major, each row a whole number of blocks). Activations are f32 and are
//! converted once per call to the weight type's activation type (or once for
//! several matrices with [`Activations`] + [`matmul_prepared`]).
//!
//! Every output is exactly `k.vec_dot(weight row, activation row)`, whatever the
//! thread count or tiling, so results do not depend on the pool.
//!
//! Work split: the output is cut into a grid of (row block × token tile) tasks.
//! A row block is sized so its weight bytes stay in L2 while every token of its
//! tile is multiplied with it, one token (in L1) against all rows of the block;
//! outputs are written straight into the token-major result. Small products run
//! on the calling thread: waking the pool costs more than they take.

use crate::blocks::GgmlType;
use crate::dispatch::TypeKernels;
use rayon::prelude::*;
use std::cell::Cell;

/// Products with fewer weight bytes × tokens than this run on the calling thread
/// (a 576×576 Q4_0 matvec is ~187 KB and is still split).
const SERIAL_WORK: usize = 48 * 1024;
/// Weight bytes of one row block in prefill: a share of a 1 MiB L2 that leaves room
/// for the activation row and the neighbours' prefetch.
const BLOCK_BYTES: usize = 96 * 1024;
/// Tasks per thread: enough to even out uneven progress, few enough to keep
/// scheduling cheap.
const TASKS_PER_THREAD: usize = 3;

/// Activation rows converted to one activation type, in a buffer that is reused
/// across calls (4-byte aligned, as Q8_K and f32 need).
#[derive(Default)]
pub struct Activations {
    act: Option<GgmlType>,
    cols: usize,
    tokens: usize,
    row_bytes: usize,
    buf: Vec<u32>,
}

impl Activations {
    pub fn new() -> Activations {
        Activations::default()
    }

    /// Convert `x` (`x.len() / cols` rows of `cols`) to `k.act`, reusing the buffer.
    /// Panics when `cols` is not a whole number of activation blocks or does not
    /// divide `x.len()`.
    pub fn quantize(&mut self, k: &TypeKernels, x: &[f32], cols: usize) {
        assert!(
            cols > 0 && x.len().is_multiple_of(cols),
            "activations: {} values are not rows of {cols}",
            x.len()
        );
        let row_bytes = k
            .act
            .row_bytes(cols)
            .unwrap_or_else(|| panic!("{} activations: {cols} columns is not whole blocks", k.act));
        let tokens = x.len() / cols;
        let total = row_bytes * tokens;
        // Grow only: the buffer's old contents are all overwritten below.
        if self.buf.len() * 4 < total {
            self.buf.resize(total.div_ceil(4), 0);
        }
        self.act = Some(k.act);
        self.cols = cols;
        self.tokens = tokens;
        self.row_bytes = row_bytes;
        let quant = k.quantize_act;
        let bytes = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut self.buf)[..total];
        if tokens == 1 || total < SERIAL_WORK {
            for (dst, src) in bytes.chunks_exact_mut(row_bytes).zip(x.chunks_exact(cols)) {
                quant(src, dst);
            }
        } else {
            bytes
                .par_chunks_mut(row_bytes)
                .zip(x.par_chunks(cols))
                .with_min_len(4)
                .for_each(|(dst, src)| quant(src, dst));
        }
    }

    /// The activation type of the last [`Activations::quantize`], if any.
    pub fn act(&self) -> Option<GgmlType> {
        self.act
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn tokens(&self) -> usize {
        self.tokens
    }
    /// All rows, `tokens × row_bytes`.
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u32, u8>(&self.buf)[..self.row_bytes * self.tokens]
    }
}

thread_local! {
    // Per-thread activation buffer for `matmul`/`matvec`; taken out while in use,
    // so a re-entrant call (a pool thread stealing another matmul) gets a fresh one.
    static SCRATCH: Cell<Activations> = Cell::new(Activations::new());
}

fn check_shapes(k: &TypeKernels, w: &[u8], rows: usize, cols: usize) -> usize {
    let w_row = k
        .dtype
        .row_bytes(cols)
        .unwrap_or_else(|| panic!("{} weights: {cols} columns is not whole blocks", k.dtype));
    assert_eq!(
        w.len(),
        w_row * rows,
        "weight bytes do not match {rows}x{cols} {}",
        k.dtype
    );
    w_row
}

/// `y[r] = Σ_c W[r,c]·x[c]`. Panics when the slices do not match the shape.
pub fn matvec(k: &TypeKernels, w: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
    matmul(k, w, rows, cols, x, 1, y)
}

/// `y[t·rows + r] = Σ_c W[r,c]·x[t·cols + c]` for `tokens` activation rows.
/// Panics when the slices do not match the shape.
pub fn matmul(
    k: &TypeKernels,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
    y: &mut [f32],
) {
    let w_row = check_shapes(k, w, rows, cols);
    assert_eq!(
        x.len(),
        tokens * cols,
        "activations do not match {tokens}x{cols}"
    );
    assert_eq!(
        y.len(),
        tokens * rows,
        "output does not match {tokens}x{rows}"
    );
    if rows == 0 || tokens == 0 {
        return;
    }
    if k.act == GgmlType::F32 && cfg!(target_endian = "little") {
        // Float weights take f32 activations as they are: no conversion pass.
        let act: &[u8] = bytemuck::cast_slice(x);
        return run(k, w, w_row, rows, cols, act, cols * 4, tokens, y);
    }
    let mut acts = SCRATCH.with(|s| s.take());
    acts.quantize(k, x, cols);
    run(
        k,
        w,
        w_row,
        rows,
        cols,
        acts.bytes(),
        acts.row_bytes,
        tokens,
        y,
    );
    SCRATCH.with(|s| s.set(acts));
}

/// As [`matmul`], with activations already converted by [`Activations::quantize`]
/// for a type with the same activation type (e.g. Q, K and V projections of one
/// hidden state). `y` is `acts.tokens() × rows`.
pub fn matmul_prepared(
    k: &TypeKernels,
    w: &[u8],
    rows: usize,
    cols: usize,
    acts: &Activations,
    y: &mut [f32],
) {
    let w_row = check_shapes(k, w, rows, cols);
    assert_eq!(
        acts.act,
        Some(k.act),
        "activations were prepared for another type"
    );
    assert_eq!(acts.cols, cols, "activations have {} columns", acts.cols);
    let tokens = acts.tokens;
    assert_eq!(
        y.len(),
        tokens * rows,
        "output does not match {tokens}x{rows}"
    );
    if rows == 0 || tokens == 0 {
        return;
    }
    run(
        k,
        w,
        w_row,
        rows,
        cols,
        acts.bytes(),
        acts.row_bytes,
        tokens,
        y,
    );
}

/// One matrix of a [`matmul_group`]: `y` (`tokens × rows`) = W · activations.
pub struct GroupPart<'a> {
    pub k: &'a TypeKernels,
    pub w: &'a [u8],
    pub rows: usize,
    pub y: &'a mut [f32],
}

/// Several products of the same activations (Q/K/V, or gate/up) in one parallel
/// pass: one wake-up of the pool instead of one per matrix, which dominates decode
/// on small models. Each output equals what [`matmul_prepared`] gives.
pub fn matmul_group(parts: &mut [GroupPart<'_>], acts: &Activations) {
    let cols = acts.cols;
    let tokens = acts.tokens;
    let mut work = 0usize;
    let mut w_rows = Vec::with_capacity(parts.len());
    for p in parts.iter() {
        w_rows.push(check_shapes(p.k, p.w, p.rows, cols));
        assert_eq!(
            acts.act,
            Some(p.k.act),
            "activations were prepared for another type"
        );
        assert_eq!(
            p.y.len(),
            tokens * p.rows,
            "output does not match {tokens}x{}",
            p.rows
        );
        work = work.saturating_add(p.w.len().saturating_mul(tokens));
    }
    let threads = rayon::current_num_threads();
    let total_rows: usize = parts.iter().map(|p| p.rows).sum();
    if tokens == 0 || total_rows == 0 {
        return;
    }
    if tokens > 1 || threads == 1 || work < SERIAL_WORK {
        // Prefill amortises the pool per matrix; tiny products are not worth a wake-up.
        for (p, &w_row) in parts.iter_mut().zip(&w_rows) {
            run(
                p.k,
                p.w,
                w_row,
                p.rows,
                cols,
                acts.bytes(),
                acts.row_bytes,
                tokens,
                p.y,
            );
        }
        return;
    }
    // Decode: row blocks of every matrix, sized so the whole group gives each
    // thread a few tasks.
    let rb = total_rows
        .div_ceil(threads * TASKS_PER_THREAD)
        .next_multiple_of(4);
    let mut tasks: Vec<(usize, usize)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        tasks.extend((0..p.rows.div_ceil(rb)).map(|b| (i, b * rb)));
    }
    let outs: Vec<(OutPtr, usize)> = parts
        .iter_mut()
        .map(|p| (OutPtr(p.y.as_mut_ptr()), p.rows))
        .collect();
    let (outs, parts) = (&outs, &*parts);
    tasks.into_par_iter().for_each(|(i, r0)| {
        let p = &parts[i];
        let r = r0..(r0 + rb).min(p.rows);
        tile(
            p.k,
            p.w,
            w_rows[i],
            outs[i].1,
            cols,
            acts.bytes(),
            acts.row_bytes,
            r,
            0..1,
            outs[i].0.get(),
        );
    });
}

/// Output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (row block × token tile) cells; the pointer outlives
// the parallel loop, which joins before `run` returns.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    // A method, so closures capture the whole (Sync) wrapper, not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    k: &TypeKernels,
    w: &[u8],
    w_row: usize,
    rows: usize,
    cols: usize,
    act: &[u8],
    a_row: usize,
    tokens: usize,
    y: &mut [f32],
) {
    debug_assert_eq!(act.len(), a_row * tokens);
    let threads = rayon::current_num_threads();
    if threads == 1 || w.len().saturating_mul(tokens) < SERIAL_WORK {
        return tile(
            k,
            w,
            w_row,
            rows,
            cols,
            act,
            a_row,
            0..rows,
            0..tokens,
            y.as_mut_ptr(),
        );
    }
    let target = threads * TASKS_PER_THREAD;
    // Row block: at most L2-sized, and small enough that rows alone give every
    // thread work; multiples of 4 keep each task's outputs on their own cache lines
    // more often.
    // A single token reuses nothing, so decode only splits for the threads.
    let by_cache = if tokens == 1 {
        usize::MAX
    } else {
        (BLOCK_BYTES / w_row.max(1)).clamp(4, 256)
    };
    let by_threads = rows.div_ceil(target);
    let rb = by_cache
        .min(by_threads)
        .max(1)
        .next_multiple_of(4)
        .min(rows);
    let n_rb = rows.div_ceil(rb);
    // Token tiles only when row blocks alone are too few to balance the pool.
    let n_tt = target.div_ceil(n_rb).clamp(1, tokens);
    let tt = tokens.div_ceil(n_tt);
    let n_tt = tokens.div_ceil(tt);
    let out = OutPtr(y.as_mut_ptr());
    (0..n_rb * n_tt).into_par_iter().for_each(|task| {
        // Token tiles vary fastest, so a thread's consecutive tasks reuse one row block.
        let (b, t) = (task / n_tt, task % n_tt);
        let r = b * rb..((b + 1) * rb).min(rows);
        let ts = t * tt..((t + 1) * tt).min(tokens);
        tile(k, w, w_row, rows, cols, act, a_row, r, ts, out.get());
    });
}

/// Activation bytes of one token micro-tile: a few rows that stay in L1 while each
/// weight row of the block is multiplied with all of them.
const MICRO_BYTES: usize = 24 * 1024;

/// Rows `r` × tokens `ts` of the product, written at `y[t·rows + r]`.
///
/// With the level's tile kernel (several tokens): in one call per L1-sized token
/// micro-tile set. Otherwise one `vec_dot` per cell, tokens in micro-tiles of up
/// to 16 that fit in L1 together, so each weight row is read from L2 once per
/// micro-tile and reused from L1 for its tokens.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile(
    k: &TypeKernels,
    w: &[u8],
    w_row: usize,
    rows: usize,
    cols: usize,
    act: &[u8],
    a_row: usize,
    r: std::ops::Range<usize>,
    ts: std::ops::Range<usize>,
    y: *mut f32,
) {
    let wb = &w[r.start * w_row..r.end * w_row];
    if let Some(tile_fn) = k.tile {
        let n_rows = r.len();
        TILE_OUT.with(|buf| {
            let mut out = buf.take();
            out.clear();
            out.resize(n_rows * ts.len(), 0.0);
            tile_fn(cols, wb, &act[ts.start * a_row..ts.end * a_row], &mut out);
            for (j, t) in ts.clone().enumerate() {
                for (i, &v) in out[j * n_rows..(j + 1) * n_rows].iter().enumerate() {
                    // SAFETY: as below.
                    unsafe { *y.add(t * rows + r.start + i) = v };
                }
            }
            buf.set(out);
        });
        return;
    }
    let dot = k.vec_dot;
    let micro = (MICRO_BYTES / a_row.max(1)).clamp(1, 16);
    let mut t0 = ts.start;
    while t0 < ts.end {
        let t1 = (t0 + micro).min(ts.end);
        let a = &act[t0 * a_row..t1 * a_row];
        for (i, wr) in wb.chunks_exact(w_row).enumerate() {
            for (j, at) in a.chunks_exact(a_row).enumerate() {
                let v = dot(cols, wr, at);
                // SAFETY: `y` points at `tokens × rows` f32 (checked by the callers),
                // t0 + j < tokens and r.start + i < r.end ≤ rows; no other task writes
                // this cell (see `run`).
                unsafe { *y.add((t0 + j) * rows + r.start + i) = v };
            }
        }
        t0 = t1;
    }
}

thread_local! {
    // Per-thread output of a tile kernel before it is scattered into the result.
    static TILE_OUT: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::dispatch::{dequantizer, kernels_at, quantizer};
    use crate::testutil::Rng;

    /// Weight rows for any type: the reference quantizer where there is one, else
    /// random bytes whose dequantized values are finite and moderate.
    fn make_weights(t: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>) {
        let rb = t.row_bytes(cols).unwrap();
        let mut w = vec![0u8; rb * rows];
        let mut deq = vec![0f32; rows * cols];
        for (wr, dr) in w.chunks_exact_mut(rb).zip(deq.chunks_exact_mut(cols)) {
            let v = rng.weights(cols);
            if t == GgmlType::F32 {
                wr.copy_from_slice(bytemuck::cast_slice(&v));
            } else if let Some(q) = quantizer(t) {
                q(&v, wr);
            } else {
                loop {
                    wr.copy_from_slice(&rng.bytes(rb));
                    dequantizer(t)(wr, dr);
                    if dr.iter().all(|d| d.is_finite() && d.abs() < 1e4) {
                        break;
                    }
                }
            }
            dequantizer(t)(wr, dr);
        }
        (w, deq)
    }

    fn types_with_kernels() -> Vec<GgmlType> {
        GgmlType::ALL
            .into_iter()
            .filter(|&t| kernels_at(t, Isa::Scalar).is_some())
            .collect()
    }

    use crate::cpu::Isa;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    #[test]
    fn matmul_equals_vec_dot_and_f64_for_every_type_and_level() {
        let mut rng = Rng::new(42);
        let (p1, p3) = (pool(1), pool(3));
        let types = types_with_kernels();
        assert!(types.contains(&GgmlType::F16) && types.contains(&GgmlType::Bf16));
        for t in types {
            let blk = t.block_len();
            let col_choices: Vec<usize> = if blk == 1 {
                vec![1, 7, 100, 259]
            } else {
                vec![blk, 3 * blk, 7 * blk, 19 * blk]
            };
            for &rows in &[1usize, 3, 17, 130] {
                for &tokens in &[1usize, 2, 5, 33] {
                    let cols = col_choices[rng.below(col_choices.len())];
                    let (w, wd) = make_weights(t, rows, cols, &mut rng);
                    let x = rng.weights(tokens * cols);
                    // Per output: f64 product of the dequantized weights, Σ|w·x|, and
                    // Σ|w|·max|x| (which bounds 8-bit activation rounding).
                    let refs: Vec<(f64, f64, f64)> = x
                        .chunks_exact(cols)
                        .flat_map(|xs| {
                            let xmax = xs.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                            wd.chunks_exact(cols).map(move |wr| {
                                let (mut e, mut m, mut s) = (0f64, 0f64, 0f64);
                                for (&p, &q) in wr.iter().zip(xs) {
                                    e += p as f64 * q as f64;
                                    m += (p as f64 * q as f64).abs();
                                    s += p.abs() as f64 * xmax;
                                }
                                (e, m, s)
                            })
                        })
                        .collect();
                    for isa in cpu::supported_levels() {
                        let k = kernels_at(t, isa).unwrap();
                        let mut y1 = vec![f32::NAN; rows * tokens];
                        let mut y3 = vec![f32::NAN; rows * tokens];
                        p1.install(|| matmul(&k, &w, rows, cols, &x, tokens, &mut y1));
                        p3.install(|| matmul(&k, &w, rows, cols, &x, tokens, &mut y3));
                        let ab = k.act.row_bytes(cols).unwrap();
                        let wb = t.row_bytes(cols).unwrap();
                        let mut a = vec![0u32; ab.div_ceil(4)];
                        let a = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut a)[..ab];
                        for tk in 0..tokens {
                            (k.quantize_act)(&x[tk * cols..(tk + 1) * cols], a);
                            for r in 0..rows {
                                let i = tk * rows + r;
                                let got = y1[i];
                                let want = (k.vec_dot)(cols, &w[r * wb..(r + 1) * wb], a);
                                let ctx =
                                    || format!("{t} {isa} {rows}x{cols} t={tokens} [{tk},{r}]");
                                assert_eq!(got.to_bits(), want.to_bits(), "{}: vs vec_dot", ctx());
                                assert_eq!(got.to_bits(), y3[i].to_bits(), "{}: threads", ctx());
                                let (exact, mag, wx) = refs[i];
                                // f32 accumulation error, plus (for 8-bit activations)
                                // rounding each activation by at most half a step of
                                // amax/127 and its f16 scale.
                                let tol = if k.act == GgmlType::F32 {
                                    1e-5 * mag + 1e-30
                                } else {
                                    1e-4 * mag + wx * (0.5 / 127.0 + 1e-3)
                                };
                                assert!(
                                    (got as f64 - exact).abs() <= tol,
                                    "{}: {got} vs f64 {exact} (tol {tol})",
                                    ctx()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_products_split_and_match_serial() {
        // Big enough to take the parallel path with both row blocks and token tiles.
        let mut rng = Rng::new(5);
        let (rows, cols) = (300, 512);
        for t in types_with_kernels() {
            let k = kernels_at(t, cpu::best_supported()).unwrap();
            let (w, _) = make_weights(t, rows, cols, &mut rng);
            for tokens in [1, 7, 64] {
                let x = rng.weights(tokens * cols);
                let mut y1 = vec![0f32; rows * tokens];
                let mut y2 = vec![0f32; rows * tokens];
                pool(1).install(|| matmul(&k, &w, rows, cols, &x, tokens, &mut y1));
                pool(2).install(|| matmul(&k, &w, rows, cols, &x, tokens, &mut y2));
                assert!(
                    y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{t} tokens={tokens}"
                );
                let mut acts = Activations::new();
                acts.quantize(&k, &x, cols);
                let mut y3 = vec![0f32; rows * tokens];
                pool(4).install(|| matmul_prepared(&k, &w, rows, cols, &acts, &mut y3));
                assert!(
                    y1.iter().zip(&y3).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{t} tokens={tokens}: prepared"
                );
            }
        }
    }

    #[test]
    fn group_equals_separate_products() {
        // Q4_K and Q6_K share Q8_K activations, as Q/K/V of a Q4_K_M file do.
        let mut rng = Rng::new(21);
        let cols = 512;
        let k4 = kernels_at(GgmlType::Q4K, cpu::best_supported()).unwrap();
        let k6 = kernels_at(GgmlType::Q6K, cpu::best_supported()).unwrap();
        let shapes = [(&k4, 200usize), (&k6, 64), (&k4, 37)];
        let weights: Vec<Vec<u8>> = shapes
            .iter()
            .map(|(k, rows)| make_weights(k.dtype, *rows, cols, &mut rng).0)
            .collect();
        for tokens in [1, 3] {
            for threads in [1, 2, 3] {
                let x = rng.weights(tokens * cols);
                let mut acts = Activations::new();
                acts.quantize(&k4, &x, cols);
                let mut want: Vec<Vec<f32>> = Vec::new();
                for ((k, rows), w) in shapes.iter().zip(&weights) {
                    let mut y = vec![0f32; rows * tokens];
                    matmul(k, w, *rows, cols, &x, tokens, &mut y);
                    want.push(y);
                }
                let mut got: Vec<Vec<f32>> =
                    shapes.iter().map(|(_, r)| vec![0f32; r * tokens]).collect();
                let mut parts: Vec<GroupPart> = shapes
                    .iter()
                    .zip(&weights)
                    .zip(got.iter_mut())
                    .map(|(((k, rows), w), y)| GroupPart {
                        k,
                        w,
                        rows: *rows,
                        y,
                    })
                    .collect();
                pool(threads).install(|| matmul_group(&mut parts, &acts));
                assert_eq!(want, got, "tokens={tokens} threads={threads}");
            }
        }
    }

    #[test]
    fn matvec_is_one_token_matmul() {
        let mut rng = Rng::new(9);
        let k = kernels_at(GgmlType::F16, cpu::best_supported()).unwrap();
        let (rows, cols) = (130, 96);
        let (w, _) = make_weights(GgmlType::F16, rows, cols, &mut rng);
        let x = rng.weights(cols);
        let (mut a, mut b) = (vec![0f32; rows], vec![0f32; rows]);
        matvec(&k, &w, rows, cols, &x, &mut a);
        matmul(&k, &w, rows, cols, &x, 1, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn empty_shapes_are_fine() {
        let k = kernels_at(GgmlType::F32, Isa::Scalar).unwrap();
        matmul(&k, &[], 0, 4, &[1.0; 8], 2, &mut []);
        matmul(&k, &[0; 32], 2, 4, &[], 0, &mut []);
    }

    #[test]
    #[should_panic(expected = "output does not match")]
    fn wrong_output_length_panics() {
        let k = kernels_at(GgmlType::F32, Isa::Scalar).unwrap();
        matvec(&k, &[0; 32], 2, 4, &[1.0; 4], &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "prepared for another type")]
    fn prepared_activations_must_match_type() {
        let f = kernels_at(GgmlType::F32, Isa::Scalar).unwrap();
        let mut k = f;
        k.act = GgmlType::Q8_0;
        let mut acts = Activations::new();
        acts.quantize(&f, &[1.0; 32], 32);
        matmul_prepared(&k, &[0; 128], 1, 32, &acts, &mut [0.0]);
    }
}

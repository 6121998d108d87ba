//! AVX2 prefill tiles: a block of weight rows times a tile of tokens, each output
//! bit-identical to the `avx2` vec_dot of that row and token.
//!
//! Most of vec_dot's work depends on one operand only: unpacking 4/5-bit quants
//! and gathering f16 scales into vectors. A tile does that once per weight row and
//! once per token, then runs per (row, token) pair only the integer block dot, the
//! scale product and the accumulation — the same operations in the same order as
//! vec_dot (same lanes, same four accumulators, same final sum), so a product does
//! not depend on how many tokens were batched with it.

use std::arch::x86_64::*;
use std::cell::RefCell;

use half::f16;

use super::avx2::{dot_ss, dot_u, finish, high_bits, min_chain, nibbles};
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};

/// Blocks per scale vector, as in vec_dot's `for_groups!`.
const GROUP: usize = 8;
/// Activation bytes of one token micro-tile, kept in L1 while each weight row of
/// the tile meets all of its tokens.
const MICRO_BYTES: usize = 24 * 1024;

/// How a weight block's 32 unpacked bytes meet the activation quants (a const
/// generic, so each type's inner loop is compiled without branches):
/// unsigned quants with an implicit offset of 8 (Q4_0) or 16 (Q5_0): Σ (u − c)·a;
const BIASED_8: u8 = 0;
const BIASED_16: u8 = 1;
/// signed quants (Q8_0);
const SIGNED: u8 = 2;
/// unsigned quants plus a per-block minimum times the activation sum (Q4_1, Q5_1).
const MIN: u8 = 3;

/// Per-thread buffers reused across tiles.
#[derive(Default)]
struct Scratch {
    /// Unpacked weight quants, 32 bytes per block, rows × blocks.
    q: Vec<u8>,
    /// Weight scales and minimums as f32, rows × blocks padded to whole groups with 0.
    wd: Vec<f32>,
    wm: Vec<f32>,
    /// Activation scales and sums as f32, tokens × padded blocks.
    ad: Vec<f32>,
    asum: Vec<f32>,
    /// For offset kinds: `maddubs(c, a)` of every activation block, tokens × blocks,
    /// so a (row, token) block dot needs one `maddubs` instead of vec_dot's two.
    bias: Vec<[i16; 16]>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The parts of an activation block (Q8_0 or Q8_1) a tile reads.
trait ActBlock: Copy {
    fn d(&self) -> f16;
    /// The block's `d · Σ q` (Q8_1); unused for Q8_0.
    fn s(&self) -> f16;
    fn qs(&self) -> &[i8; QK];
}

impl ActBlock for BlockQ8_0 {
    fn d(&self) -> f16 {
        self.d
    }
    fn s(&self) -> f16 {
        f16::ZERO
    }
    fn qs(&self) -> &[i8; QK] {
        &self.qs
    }
}

impl ActBlock for BlockQ8_1 {
    fn d(&self) -> f16 {
        self.d
    }
    fn s(&self) -> f16 {
        self.s
    }
    fn qs(&self) -> &[i8; QK] {
        &self.qs
    }
}

/// Fills `dst` (`blocks.len()` rows of `padded` values) with `f(block)` as f32,
/// each row's tail zero.
fn scales<B>(blocks: &[B], nb: usize, padded: usize, dst: &mut Vec<f32>, f: impl Fn(&B) -> f16) {
    dst.clear();
    dst.resize(blocks.len() / nb * padded, 0.0);
    for (row, out) in blocks.chunks_exact(nb).zip(dst.chunks_exact_mut(padded)) {
        for (b, o) in row.iter().zip(out.iter_mut()) {
            *o = f(b).to_f32();
        }
    }
}

/// The products of one row with `T` tokens: `q`/`wd`/`wm` the row's unpacked
/// blocks and padded scales, `a[t]`/`ad[t]`/`asum[t]` token t's blocks and padded
/// scales. Several tokens at a time share the row's loads and loop overhead.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
// `k` indexes both the group's blocks (o + k) and the tokens' scale rows.
#[allow(clippy::needless_range_loop)]
unsafe fn dot_row<const KIND: u8, A: ActBlock, const T: usize>(
    q: &[[u8; QK]],
    wd: &[f32],
    wm: &[f32],
    a: [&[A]; T],
    ad: [&[f32]; T],
    asum: [&[f32]; T],
    bias: [&[[i16; 16]]; T],
) -> [f32; T] {
    let nb = q.len();
    let padded = nb.next_multiple_of(GROUP);
    assert!(wd.len() == padded && (KIND != MIN || wm.len() == padded));
    for t in 0..T {
        assert!(a[t].len() == nb && ad[t].len() == padded);
        assert!(KIND != MIN || asum[t].len() == padded);
        assert!((KIND != BIASED_8 && KIND != BIASED_16) || bias[t].len() == nb);
    }
    // SAFETY (loads below): b < nb = q.len() = a[t].len() and o + 8 ≤ padded, the
    // length of every scale slice read (asserted above; the loops keep b < nb).
    let load_q = |b: usize| unsafe { _mm256_loadu_si256(q.as_ptr().add(b).cast()) };
    let load_a = |t: usize, b: usize| unsafe {
        _mm256_loadu_si256(a[t].get_unchecked(b).qs().as_ptr().cast())
    };
    let load8 = |p: &[f32], o: usize| unsafe { _mm256_loadu_ps(p.as_ptr().add(o)) };
    let ones = _mm256_set1_epi16(1);
    // The same integers as vec_dot's `dot_biased(u, s, c)`, with `maddubs(c, s)`
    // taken from `bias`.
    let dot = |t: usize, b: usize, u: __m256i| {
        let s = load_a(t, b);
        match KIND {
            BIASED_8 | BIASED_16 => {
                // SAFETY: b < nb = bias[t].len() (asserted above).
                let cs = unsafe { _mm256_loadu_si256(bias[t].as_ptr().add(b).cast()) };
                _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(u, s), cs), ones)
            }
            SIGNED => dot_ss(u, s),
            _ => dot_u(u, s),
        }
    };
    let mut acc = [_mm256_setzero_ps(); T];
    let mut summs = [0f32; T];
    let groups = nb.div_ceil(GROUP);
    for g in 0..groups {
        let o = g * GROUP;
        let (w8, m8) = (
            load8(wd, o),
            if KIND == MIN { load8(wm, o) } else { w8_zero() },
        );
        // The products d_w·d_a of the group, broadcast per block from memory (a
        // load) rather than permuted out of a register (a shuffle-port uop).
        let mut s = [[0f32; GROUP]; T];
        for t in 0..T {
            _mm256_storeu_ps(s[t].as_mut_ptr(), _mm256_mul_ps(w8, load8(ad[t], o)));
        }
        if KIND == MIN {
            // A padded tail adds 0·0, as vec_dot's zero blocks do.
            for t in 0..T {
                min_chain(&mut summs[t], m8, load8(asum[t], o));
            }
        }
        // A constant loop, so the accumulators stay in registers. vec_dot's
        // zero-padded blocks add +0 to accumulators that are never −0, so skipping
        // the tail's missing blocks gives the same bits.
        let whole = o + GROUP <= nb;
        for k in 0..GROUP {
            if whole || o + k < nb {
                let u = load_q(o + k);
                for t in 0..T {
                    let scale = _mm256_broadcast_ss(&s[t][k]);
                    acc[t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot(t, o + k, u)), acc[t]);
                }
            }
        }
    }
    std::array::from_fn(|t| finish(acc[t], summs[t]))
}

#[target_feature(enable = "avx")]
#[inline]
unsafe fn w8_zero() -> __m256 {
    _mm256_setzero_ps()
}

/// What depends on the tokens alone: their scales (and Q8_1 sums) as padded
/// f32 rows, and for offset kinds `maddubs(c, a)` of every block.
#[target_feature(enable = "avx2,fma,f16c")]
fn token_side<const KIND: u8, A: ActBlock>(a: &[A], nb: usize, padded: usize, s: &mut Scratch) {
    scales(a, nb, padded, &mut s.ad, |b| b.d());
    if KIND == MIN {
        scales(a, nb, padded, &mut s.asum, |b| b.s());
    }
    s.bias.clear();
    if KIND == BIASED_8 || KIND == BIASED_16 {
        let c = _mm256_set1_epi8(if KIND == BIASED_8 { 8 } else { 16 });
        s.bias.resize(a.len(), [0; 16]);
        for (blk, dst) in a.iter().zip(s.bias.iter_mut()) {
            // SAFETY: 32-byte quants in, 32 writable bytes out.
            unsafe {
                let q = _mm256_loadu_si256(blk.qs().as_ptr().cast());
                _mm256_storeu_si256(dst.as_mut_ptr().cast(), _mm256_maddubs_epi16(c, q));
            }
        }
    }
}

/// Decode (one token): rows stream from memory once, so unpacking them into
/// scratch would only add traffic. Each row is unpacked on the fly as in vec_dot;
/// what depends on the token alone (its f32 scales, sums and `maddubs(c, a)`
/// bias) is prepared once for all rows. Same operations in the same order as
/// vec_dot, including its zero-padded last group, so the same bits.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn stream_rows<
    const KIND: u8,
    W: Copy + bytemuck::Zeroable,
    A: ActBlock + bytemuck::Zeroable,
>(
    nb: usize,
    w: &[W],
    a: &[A],
    out: &mut [f32],
    unpack: impl Fn(&W) -> __m256i,
    d: impl Fn(&W) -> f16,
    m: impl Fn(&W) -> f16,
    s: &mut Scratch,
) {
    let padded = nb.next_multiple_of(GROUP);
    token_side::<KIND, A>(a, nb, padded, s);
    let biased = KIND == BIASED_8 || KIND == BIASED_16;
    let (ad, asum, bias) = (&s.ad[..nb], &s.asum[..], &s.bias[..]);
    assert!(a.len() == nb && (!biased || bias.len() == nb) && (KIND != MIN || asum.len() >= nb));
    assert!(w.len() == nb * out.len());
    let ones = _mm256_set1_epi16(1);
    let f32_of = crate::blocks::f16_table();
    // Block by block: vec_dot's single chain depends only on block order, so no
    // grouping or padding is needed. R rows side by side keep R independent
    // FMA chains in flight.
    macro_rules! rows {
        ($first:expr, $R:literal) => {{
            let mut acc = [_mm256_setzero_ps(); $R];
            let mut summs = [0f32; $R];
            let base = $first * nb;
            for b in 0..nb {
                let act = _mm256_loadu_si256(a.get_unchecked(b).qs().as_ptr().cast());
                let cs = if biased {
                    _mm256_loadu_si256(bias.as_ptr().add(b).cast())
                } else {
                    _mm256_setzero_si256()
                };
                let ab = *ad.get_unchecked(b);
                for r in 0..$R {
                    let blk = w.get_unchecked(base + r * nb + b);
                    if b % 4 == 0 {
                        crate::prefetch::ahead(
                            std::ptr::from_ref(blk).cast(),
                            4 * std::mem::size_of::<W>(),
                        );
                    }
                    let u = unpack(blk);
                    let sum = match KIND {
                        BIASED_8 | BIASED_16 => _mm256_madd_epi16(
                            _mm256_sub_epi16(_mm256_maddubs_epi16(u, act), cs),
                            ones,
                        ),
                        SIGNED => dot_ss(u, act),
                        _ => dot_u(u, act),
                    };
                    let scale = _mm256_set1_ps(f32_of[d(blk).to_bits() as usize] * ab);
                    acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum), acc[r]);
                    if KIND == MIN {
                        let mw = f32_of[m(blk).to_bits() as usize];
                        summs[r] = mw.mul_add(*asum.get_unchecked(b), summs[r]);
                    }
                }
            }
            for r in 0..$R {
                out[$first + r] = finish(acc[r], summs[r]);
            }
        }};
    }
    // SAFETY (get_unchecked, loads): b < nb = a.len() = ad.len() (and bias.len()
    // for the biased kinds, asum.len() ≥ nb for MIN); base + r·nb + b < w.len()
    // because first + r < out.len() = w.len() / nb.
    let rows = out.len();
    let mut r = 0;
    while r + 2 <= rows {
        rows!(r, 2);
        r += 2;
    }
    if r < rows {
        rows!(r, 1);
    }
}

/// The tile for weight block type `W`: unpack every row once, convert every
/// token's scales once, then all (row, token) dots, tokens in L1-sized micro-tiles.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const KIND: u8, W: Copy + bytemuck::Zeroable, A: ActBlock + bytemuck::Zeroable>(
    nb: usize,
    w: &[W],
    a: &[A],
    out: &mut [f32],
    unpack: impl Fn(&W) -> __m256i,
    d: impl Fn(&W) -> f16,
    m: impl Fn(&W) -> f16,
    s: &mut Scratch,
) {
    let rows = w.len() / nb;
    let tokens = a.len() / nb;
    if tokens == 1 {
        return stream_rows::<KIND, W, A>(nb, w, a, out, unpack, d, m, s);
    }
    let padded = nb.next_multiple_of(GROUP);
    s.q.clear();
    s.q.resize(w.len() * QK, 0);
    for (b, dst) in w.iter().zip(s.q.chunks_exact_mut(QK)) {
        _mm256_storeu_si256(dst.as_mut_ptr().cast(), unpack(b));
    }
    scales(w, nb, padded, &mut s.wd, &d);
    if KIND == MIN {
        scales(w, nb, padded, &mut s.wm, &m);
    }
    token_side::<KIND, A>(a, nb, padded, s);
    let q: &[[u8; QK]] = bytemuck::cast_slice(&s.q);
    let per_token = nb * (std::mem::size_of::<A>() + if s.bias.is_empty() { 0 } else { 32 });
    let micro = (MICRO_BYTES / per_token).clamp(1, 16);
    let no_min: &[f32] = &[];
    let no_bias: &[[i16; 16]] = &[];
    let mut t0 = 0;
    while t0 < tokens {
        let t1 = (t0 + micro).min(tokens);
        for r in 0..rows {
            let (wq, wd) = (&q[r * nb..][..nb], &s.wd[r * padded..][..padded]);
            let wm = if KIND == MIN {
                &s.wm[r * padded..][..padded]
            } else {
                no_min
            };
            let token = |t: usize| {
                let asum: &[f32] = if KIND == MIN {
                    &s.asum[t * padded..][..padded]
                } else {
                    no_min
                };
                let bias = if s.bias.is_empty() {
                    no_bias
                } else {
                    &s.bias[t * nb..][..nb]
                };
                (
                    &a[t * nb..][..nb],
                    &s.ad[t * padded..][..padded],
                    asum,
                    bias,
                )
            };
            let mut t = t0;
            while t + 4 <= t1 {
                let parts = [token(t), token(t + 1), token(t + 2), token(t + 3)];
                let ys = dot_row::<KIND, A, 4>(
                    wq,
                    wd,
                    wm,
                    parts.map(|p| p.0),
                    parts.map(|p| p.1),
                    parts.map(|p| p.2),
                    parts.map(|p| p.3),
                );
                for (j, y) in ys.into_iter().enumerate() {
                    out[(t + j) * rows + r] = y;
                }
                t += 4;
            }
            while t + 2 <= t1 {
                let ((a0, d0, s0, b0), (a1, d1, s1, b1)) = (token(t), token(t + 1));
                let [y0, y1] =
                    dot_row::<KIND, A, 2>(wq, wd, wm, [a0, a1], [d0, d1], [s0, s1], [b0, b1]);
                out[t * rows + r] = y0;
                out[(t + 1) * rows + r] = y1;
                t += 2;
            }
            if t < t1 {
                let (a0, d0, s0, b0) = token(t);
                [out[t * rows + r]] = dot_row::<KIND, A, 1>(wq, wd, wm, [a0], [d0], [s0], [b0]);
            }
        }
        t0 = t1;
    }
}

/// Byte-level [`crate::dispatch::TileFn`]s. Reachable only through the AVX2
/// `LevelKernels`, handed out after run-time detection found AVX2, FMA and F16C.
macro_rules! tile_wrappers {
    ($($name:ident: $W:ty, $A:ty, $kind:expr, |$b:ident| $unpack:expr, $m:expr;)*) => {
        $(pub(super) fn $name(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            let (w, a) = (super::blocks::<$W>(w), super::blocks::<$A>(a));
            let nb = n / QK;
            assert!(
                n > 0 && n % QK == 0 && w.len() % nb == 0 && a.len() % nb == 0,
                "tile {}: {n} columns do not fit {} weight and {} activation blocks",
                stringify!($name), w.len(), a.len()
            );
            assert_eq!(out.len(), (w.len() / nb) * (a.len() / nb), "tile {}: output size", stringify!($name));
            // The closures are created inside a function with the kernels' target
            // features, so the intrinsics they call inline into the loops.
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn run(nb: usize, w: &[$W], a: &[$A], out: &mut [f32], s: &mut Scratch) {
                tile::<{ $kind }, _, _>(nb, w, a, out, |$b: &$W| $unpack, |b: &$W| b.d, $m, s)
            }
            SCRATCH.with(|s| {
                let s = &mut *s.borrow_mut();
                // SAFETY: see `tile_wrappers`; every slice length was checked above.
                unsafe { run(nb, w, a, out, s) }
            })
        })*
    };
}

tile_wrappers! {
    tile_q4_0: BlockQ4_0, BlockQ8_0, BIASED_8, |b| nibbles(&b.qs), |_: &BlockQ4_0| f16::ZERO;
    tile_q5_0: BlockQ5_0, BlockQ8_0, BIASED_16, |b| high_bits(nibbles(&b.qs), b.qh), |_: &BlockQ5_0| f16::ZERO;
    tile_q8_0: BlockQ8_0, BlockQ8_0, SIGNED, |b| _mm256_loadu_si256(b.qs.as_ptr().cast()), |_: &BlockQ8_0| f16::ZERO;
    tile_q4_1: BlockQ4_1, BlockQ8_1, MIN, |b| nibbles(&b.qs), |b: &BlockQ4_1| b.m;
    tile_q5_1: BlockQ5_1, BlockQ8_1, MIN, |b| high_bits(nibbles(&b.qs), b.qh), |b: &BlockQ5_1| b.m;
}

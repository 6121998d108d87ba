//! AVX2 prefill tiles for Q4_K and Q6_K: a block of weight rows times a tile of
//! tokens, each output bit-identical to the type's AVX2 vec_dot.
//!
//! Each weight super-block is unpacked once per tile into eight 32-byte chunks of
//! unsigned quants (chunk `c` meets activation bytes `32c..32c+32`), its scales
//! as the i16 vectors vec_dot builds, and the per-block term that needs the Q8_K
//! sums (Q4_K: the mins; Q6_K: the −32 offset). Per (row, token) only the
//! `maddubs`/`madd` sums and the f32 accumulation remain, two tokens per pass
//! over a row. The integer sums are exact whatever their order, and the f32
//! steps are vec_dot's, so batching never changes a result.

use std::arch::x86_64::*;
use std::cell::RefCell;

use crate::blocks::{BlockQ4K, BlockQ6K, BlockQ8K, QK_K};
use crate::kquants::common::unpack_scales_mins_k4;
use crate::kquants::common::x86::{f16x1, f16x2, hsum_ps};

const Q4K: u8 = 0;
const Q6K: u8 = 1;
/// Q6_K with the roundings of llama.cpp's tiled K-quant matmul (batches of 8+
/// tokens): per super-block `acc = fma(d_w·(f32)Σ, d_a, acc)`, one f32 chain.
const Q6K_TILED: u8 = 2;

/// Activation bytes of one token micro-tile, kept in L1 while each weight row
/// meets all of its tokens.
const MICRO_BYTES: usize = 24 * 1024;

/// One unpacked super-block.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Unpacked {
    q: [[u8; 32]; 8],
    /// Scale sources for the chunk shuffles (Q4_K: the eight scales in both lanes;
    /// Q6_K: each half's eight scales in both lanes).
    scales: [[i16; 16]; 2],
    /// Multiplies the Q8_K `bsums` (Q4_K: mins, each twice; Q6_K: −32 · scale).
    sums: [i16; 16],
    d: f32,
    dmin: f32,
}

const EMPTY: Unpacked = Unpacked {
    q: [[0; 32]; 8],
    scales: [[0; 16]; 2],
    sums: [0; 16],
    d: 0.0,
    dmin: 0.0,
};

thread_local! {
    static SCRATCH: RefCell<Vec<Unpacked>> = const { RefCell::new(Vec::new()) };
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store(dst: &mut [u8; 32], v: __m256i) {
    // SAFETY: 32 writable bytes.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store16(dst: &mut [i16; 16], v: __m256i) {
    // SAFETY: 32 writable bytes.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_q4k(b: &BlockQ4K) -> Unpacked {
    let mut u = EMPTY;
    // SAFETY: `d` and `dmin` are the block's first 4 bytes.
    (u.d, u.dmin) = unsafe { f16x2(b as *const BlockQ4K as *const u8) };
    let w = unpack_scales_mins_k4(&b.scales);
    let sm = _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32);
    store16(&mut u.sums, _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)));
    store16(
        &mut u.scales[0],
        _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm)),
    );
    let m4 = _mm256_set1_epi8(0x0F);
    for j in 0..4 {
        // SAFETY: j < 4 keeps the read inside qs (128 bytes).
        let q = unsafe { _mm256_loadu_si256(b.qs.as_ptr().add(32 * j).cast()) };
        store(&mut u.q[2 * j], _mm256_and_si256(q, m4));
        store(
            &mut u.q[2 * j + 1],
            _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
        );
    }
    u
}

#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_q6k(b: &BlockQ6K) -> Unpacked {
    let mut u = EMPTY;
    // SAFETY: `d` is 2 bytes inside the block.
    u.d = unsafe { f16x1(&b.d as *const _ as *const u8) };
    // SAFETY: scales is 16 bytes.
    let sc8 = unsafe { _mm_loadu_si128(b.scales.as_ptr().cast()) };
    let sc16 = _mm256_cvtepi8_epi16(sc8);
    store16(
        &mut u.sums,
        _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5)),
    );
    store16(
        &mut u.scales[0],
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc8)),
    );
    store16(
        &mut u.scales[1],
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(sc8, 8))),
    );
    let (m4, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    for h in 0..2 {
        // SAFETY: h < 2 keeps the reads inside ql (128 bytes) and qh (64 bytes).
        let (ql0, ql1, qh) = unsafe {
            (
                _mm256_loadu_si256(b.ql.as_ptr().add(64 * h).cast()),
                _mm256_loadu_si256(b.ql.as_ptr().add(64 * h + 32).cast()),
                _mm256_loadu_si256(b.qh.as_ptr().add(32 * h).cast()),
            )
        };
        let lo = |x: __m256i| _mm256_and_si256(x, m4);
        let hi = |x: __m256i| _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        let top = |x: __m256i| _mm256_and_si256(x, m30);
        store(
            &mut u.q[4 * h],
            _mm256_or_si256(lo(ql0), top(_mm256_slli_epi16(qh, 4))),
        );
        store(
            &mut u.q[4 * h + 1],
            _mm256_or_si256(lo(ql1), top(_mm256_slli_epi16(qh, 2))),
        );
        store(&mut u.q[4 * h + 2], _mm256_or_si256(hi(ql0), top(qh)));
        store(
            &mut u.q[4 * h + 3],
            _mm256_or_si256(hi(ql1), top(_mm256_srli_epi16(qh, 2))),
        );
    }
    u
}

/// The i16 scale vector chunk `c` is multiplied by, as vec_dot shuffles it.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn chunk_scale<const KIND: u8>(u: &Unpacked, c: usize) -> __m256i {
    // SAFETY: `scales` holds two 32-byte vectors; c / 4 < 2.
    let src = |h: usize| unsafe { _mm256_loadu_si256(u.scales[h].as_ptr().cast()) };
    if KIND == Q4K {
        // Scale c in every i16 of both lanes.
        let c = c as i16;
        _mm256_shuffle_epi8(src(0), _mm256_set1_epi16(((2 * c + 1) << 8) | (2 * c)))
    } else {
        // Scale 2k of the half in the low lane, 2k + 1 in the high lane.
        let k = (c % 4) as i16;
        let mask = _mm256_set_m128i(
            _mm_set1_epi16(((4 * k + 3) << 8) | (4 * k + 2)),
            _mm_set1_epi16(((4 * k + 1) << 8) | (4 * k)),
        );
        _mm256_shuffle_epi8(src(c / 4), mask)
    }
}

#[target_feature(enable = "avx2")]
#[inline]
fn hsum_i32(v: __m256i) -> i32 {
    let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    _mm_cvtsi128_si32(_mm_add_epi32(x, _mm_shuffle_epi32::<1>(x)))
}

/// The products of one unpacked row with `T` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot_row<const KIND: u8, const T: usize>(w: &[Unpacked], a: [&[BlockQ8K]; T]) -> [f32; T] {
    for at in a {
        assert_eq!(at.len(), w.len());
    }
    let mut acc = [_mm256_setzero_ps(); T];
    let mut acc_m = [_mm256_setzero_ps(); T];
    let mut acc_tiled = [0f32; T];
    for (b, u) in w.iter().enumerate() {
        // SAFETY: `sums` is 32 bytes at a 32-byte aligned offset of an aligned block.
        let sums = unsafe { _mm256_load_si256(u.sums.as_ptr().cast()) };
        let mut sumi = [_mm256_setzero_si256(); T];
        for t in 0..T {
            // SAFETY: bsums is 32 bytes; b < w.len() = a[t].len().
            let bsums = unsafe { _mm256_loadu_si256(a[t].get_unchecked(b).bsums.as_ptr().cast()) };
            let pm = _mm256_madd_epi16(bsums, sums);
            if KIND == Q4K {
                // SAFETY: b < a[t].len().
                let yd = unsafe { a[t].get_unchecked(b).d };
                acc_m[t] = _mm256_fmadd_ps(
                    _mm256_set1_ps(u.dmin * yd),
                    _mm256_cvtepi32_ps(pm),
                    acc_m[t],
                );
            } else {
                sumi[t] = pm;
            }
        }
        for c in 0..8 {
            // SAFETY: as above, for chunk c < 8.
            let q = unsafe { _mm256_load_si256(u.q[c].as_ptr().cast()) };
            let s = chunk_scale::<KIND>(u, c);
            for t in 0..T {
                // SAFETY: b < a[t].len(); c < 8 keeps the read inside qs (256 bytes).
                let x = unsafe {
                    _mm256_loadu_si256(a[t].get_unchecked(b).qs.as_ptr().add(32 * c).cast())
                };
                sumi[t] =
                    _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), s));
            }
        }
        for t in 0..T {
            // SAFETY: b < a[t].len().
            let yd = unsafe { a[t].get_unchecked(b).d };
            if KIND == Q6K_TILED {
                // The exact integer total of the super-block, then llama.cpp's
                // tiled roundings.
                let res = u.d * hsum_i32(sumi[t]) as f32;
                acc_tiled[t] = res.mul_add(yd, acc_tiled[t]);
            } else {
                acc[t] = _mm256_fmadd_ps(
                    _mm256_set1_ps(u.d * yd),
                    _mm256_cvtepi32_ps(sumi[t]),
                    acc[t],
                );
            }
        }
    }
    std::array::from_fn(|t| {
        if KIND == Q6K_TILED {
            acc_tiled[t]
        } else if KIND == Q4K {
            hsum_ps(acc[t]) - hsum_ps(acc_m[t])
        } else {
            hsum_ps(acc[t])
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
fn tile<const KIND: u8, W>(
    nb: usize,
    w: &[W],
    a: &[BlockQ8K],
    out: &mut [f32],
    unpack: impl Fn(&W) -> Unpacked,
    un: &mut Vec<Unpacked>,
) {
    let (rows, tokens) = (w.len() / nb, a.len() / nb);
    un.clear();
    un.extend(w.iter().map(&unpack));
    let micro = (MICRO_BYTES / (nb * std::mem::size_of::<BlockQ8K>())).clamp(1, 16);
    let mut t0 = 0;
    while t0 < tokens {
        let t1 = (t0 + micro).min(tokens);
        for r in 0..rows {
            let wr = &un[r * nb..][..nb];
            let act = |t: usize| &a[t * nb..][..nb];
            let mut t = t0;
            while t + 2 <= t1 {
                let [y0, y1] = dot_row::<KIND, 2>(wr, [act(t), act(t + 1)]);
                out[t * rows + r] = y0;
                out[(t + 1) * rows + r] = y1;
                t += 2;
            }
            if t < t1 {
                [out[t * rows + r]] = dot_row::<KIND, 1>(wr, [act(t)]);
            }
        }
        t0 = t1;
    }
}

fn views<'a, W: crate::blocks::Block>(
    n: usize,
    w: &'a [u8],
    a: &'a [u8],
    out: &[f32],
) -> (usize, &'a [W], &'a [BlockQ8K]) {
    let (w, a) = (
        crate::kquants::common::blocks_of::<W>(w),
        crate::kquants::common::blocks_of::<BlockQ8K>(a),
    );
    let nb = n / QK_K;
    assert!(
        n > 0 && n.is_multiple_of(QK_K) && w.len().is_multiple_of(nb) && a.len().is_multiple_of(nb),
        "tile {}: {n} columns do not fit {} weight and {} activation blocks",
        W::TYPE,
        w.len(),
        a.len()
    );
    assert_eq!(
        out.len(),
        (w.len() / nb) * (a.len() / nb),
        "tile {}: output size",
        W::TYPE
    );
    (nb, w, a)
}

/// Decode (one token): rows stream from memory once, so unpacking them into
/// scratch would only add traffic; each row goes through vec_dot itself, which
/// also makes the result vec_dot's. Returns false when there are several tokens.
fn single_token<W: crate::blocks::Block>(
    n: usize,
    w: &[u8],
    a: &[u8],
    out: &mut [f32],
    vec_dot: fn(usize, &[u8], &[u8]) -> f32,
) -> bool {
    let (nb, wb, ab) = views::<W>(n, w, a, out);
    if ab.len() != nb {
        return false;
    }
    let row_bytes = w.len() / (wb.len() / nb);
    for (row, y) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *y = vec_dot(n, row, a);
    }
    true
}

/// [`crate::dispatch::TileFn`] for Q4_K; installed only after run-time detection
/// found AVX2, FMA and F16C (checked again here: the check is cheap per tile).
pub(crate) fn tile_q4k(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    if single_token::<BlockQ4K>(n, w, a, out, super::q4k::x86::dot_avx2) {
        return;
    }
    let (nb, w, a) = views::<BlockQ4K>(n, w, a, out);
    assert!(crate::cpu::has_avx2());
    SCRATCH.with(|s| {
        // SAFETY: the CPU has AVX2/FMA/F16C (checked above); lengths checked in `views`.
        unsafe { tile::<Q4K, _>(nb, w, a, out, |b| unpack_q4k(b), &mut s.borrow_mut()) }
    })
}

/// [`crate::dispatch::TileFn`] for Q6_K; as [`tile_q4k`].
pub(crate) fn tile_q6k(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    if single_token::<BlockQ6K>(n, w, a, out, super::q6k::x86::dot_avx2) {
        return;
    }
    let (nb, w, a) = views::<BlockQ6K>(n, w, a, out);
    assert!(crate::cpu::has_avx2());
    SCRATCH.with(|s| {
        // SAFETY: as in `tile_q4k`.
        unsafe { tile::<Q6K, _>(nb, w, a, out, |b| unpack_q6k(b), &mut s.borrow_mut()) }
    })
}

/// [`crate::dispatch::TileFn`] for Q6_K in llama.cpp's tiled order (see
/// [`crate::kquants::q6k::vec_dot_tiled_ref`]), for any number of tokens.
pub(crate) fn tile_q6k_tiled(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, w, a) = views::<BlockQ6K>(n, w, a, out);
    assert!(crate::cpu::has_avx2());
    SCRATCH.with(|s| {
        // SAFETY: as in `tile_q4k`.
        unsafe { tile::<Q6K_TILED, _>(nb, w, a, out, |b| unpack_q6k(b), &mut s.borrow_mut()) }
    })
}

/// One product through [`tile_q6k_tiled`] (its vec_dot).
pub(crate) fn dot_q6k_tiled(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut out = [0f32];
    tile_q6k_tiled(n, w, a, &mut out);
    out[0]
}

#[cfg(test)]
mod tests {
    use crate::blocks::GgmlType;
    use crate::cpu;
    use crate::dispatch::{dequantizer, kernels_at, quantizer};
    use crate::testutil::Rng;

    /// Tiles give exactly vec_dot's bits for every (row, token), for quantizer
    /// output and for random bytes (every scale bit pattern, negative Q6_K scales).
    #[test]
    fn tiles_equal_vec_dot_bit_for_bit() {
        let mut rng = Rng::new(11);
        let mut tested = 0;
        for isa in cpu::supported_levels() {
            for t in [GgmlType::Q4K, GgmlType::Q6K] {
                let k = kernels_at(t, isa).unwrap();
                let Some(tile) = k.tile else { continue };
                for &nb in &[1usize, 2, 3, 5] {
                    let n = nb * 256;
                    for &(rows, tokens) in &[(1usize, 2usize), (4, 3), (5, 7), (1, 1), (6, 1)] {
                        let (wb, ab) = (t.row_bytes(n).unwrap(), k.act.row_bytes(n).unwrap());
                        let mut w = vec![0u32; (wb * rows).div_ceil(4)];
                        let w = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut w)[..wb * rows];
                        let mut deq = vec![0f32; n];
                        for r in 0..rows {
                            let row = &mut w[r * wb..][..wb];
                            if r % 2 == 0 {
                                quantizer(t).unwrap()(&rng.weights(n), row);
                            } else {
                                loop {
                                    row.copy_from_slice(&rng.bytes(wb));
                                    dequantizer(t)(row, &mut deq);
                                    if deq.iter().all(|v| v.is_finite() && v.abs() < 1e4) {
                                        break;
                                    }
                                }
                            }
                        }
                        let mut a = vec![0u32; (ab * tokens).div_ceil(4)];
                        let a = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut a)[..ab * tokens];
                        for tk in 0..tokens {
                            (k.quantize_act)(&rng.weights(n), &mut a[tk * ab..][..ab]);
                        }
                        let mut out = vec![f32::NAN; rows * tokens];
                        tile(n, w, a, &mut out);
                        for tk in 0..tokens {
                            for r in 0..rows {
                                let want = (k.vec_dot)(n, &w[r * wb..][..wb], &a[tk * ab..][..ab]);
                                let got = out[tk * rows + r];
                                assert_eq!(
                                    got.to_bits(),
                                    want.to_bits(),
                                    "{t} {isa} nb={nb} row {r} token {tk}: {got} vs {want}"
                                );
                            }
                        }
                        tested += 1;
                    }
                }
            }
        }
        if cpu::has_avx2() {
            assert!(tested > 0, "AVX2 has K-quant tiles but none was tested");
        }
    }
}

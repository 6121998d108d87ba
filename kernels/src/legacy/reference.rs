//! Scalar reference kernels, written to match ggml bit for bit:
//! `quantize_row_*_ref` and `dequantize_row_*` of ggml-quants.c and the generic
//! `ggml_vec_dot_*` of ggml-cpu. Every SIMD kernel is tested against these.

use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use half::f16;

const HALF: usize = QK / 2;

fn check_len(x: usize, blocks: usize, what: &str) {
    assert_eq!(
        x,
        blocks * QK,
        "{what}: {x} elements do not fill {blocks} blocks of {QK}"
    );
}

#[inline]
fn h(x: f16) -> f32 {
    x.to_f32()
}

/// C's `(int8_t)f` / `(uint8_t)f` as compiled for x86-64 (`cvttss2si` to 32 bits,
/// keep the low byte), so that out-of-range values (infinite `id` from a
/// subnormal scale, NaN) give the same bytes as llama.cpp. In-range values simply
/// truncate toward zero.
#[inline]
pub(crate) fn c_trunc_u8(x: f32) -> u8 {
    // cvttss2si answers i32::MIN ("integer indefinite") for NaN and overflow.
    let i = if x > -2_147_483_648.0 && x < 2_147_483_648.0 {
        x as i32
    } else {
        i32::MIN
    };
    i as u8
}

/// ggml's `amax`/`max` search of Q4_0/Q5_0: the first element of largest magnitude.
#[inline]
fn signed_absmax(xb: &[f32]) -> f32 {
    let mut amax = 0f32;
    let mut max = 0f32;
    for &v in xb {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// ggml's `min`/`max` search of Q4_1/Q5_1.
#[inline]
fn min_max(xb: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in xb {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `amax = MAX(amax, fabsf(v))` with C's `MAX(a, b) = a > b ? a : b`.
#[inline]
pub(crate) fn absmax_q8(xb: &[f32]) -> f32 {
    let mut amax = 0f32;
    for &v in xb {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    amax
}

#[inline]
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// `quantize_row_q4_0_ref`: `d = max / -8` from the element of largest magnitude.
pub fn quantize_q4_0(x: &[f32], y: &mut [BlockQ4_0]) {
    check_len(x.len(), y.len(), "q4_0");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let d = signed_absmax(xb) / -8.0;
        let id = inv(d);
        yb.d = f16::from_f32(d);
        for j in 0..HALF {
            let x0 = xb[j] * id;
            let x1 = xb[HALF + j] * id;
            let xi0 = (c_trunc_u8(x0 + 8.5) as i8).min(15) as u8;
            let xi1 = (c_trunc_u8(x1 + 8.5) as i8).min(15) as u8;
            yb.qs[j] = xi0 | (xi1 << 4);
        }
    }
}

/// `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `m = min`.
pub fn quantize_q4_1(x: &[f32], y: &mut [BlockQ4_1]) {
    check_len(x.len(), y.len(), "q4_1");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 15.0;
        let id = inv(d);
        yb.d = f16::from_f32(d);
        yb.m = f16::from_f32(min);
        for j in 0..HALF {
            let x0 = (xb[j] - min) * id;
            let x1 = (xb[HALF + j] - min) * id;
            let xi0 = (c_trunc_u8(x0 + 0.5) as i8).min(15) as u8;
            let xi1 = (c_trunc_u8(x1 + 0.5) as i8).min(15) as u8;
            yb.qs[j] = xi0 | (xi1 << 4);
        }
    }
}

/// `quantize_row_q5_0_ref`: `d = max / -16`; fifth bits go to `qh` (little-endian).
pub fn quantize_q5_0(x: &[f32], y: &mut [BlockQ5_0]) {
    check_len(x.len(), y.len(), "q5_0");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let d = signed_absmax(xb) / -16.0;
        let id = inv(d);
        yb.d = f16::from_f32(d);
        let mut qh = 0u32;
        for j in 0..HALF {
            let x0 = xb[j] * id;
            let x1 = xb[HALF + j] * id;
            let xi0 = (c_trunc_u8(x0 + 16.5) as i8).min(31) as u8;
            let xi1 = (c_trunc_u8(x1 + 16.5) as i8).min(31) as u8;
            yb.qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + HALF);
        }
        yb.qh = qh.to_le_bytes();
    }
}

/// `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `m = min` (no clamp, as in ggml).
pub fn quantize_q5_1(x: &[f32], y: &mut [BlockQ5_1]) {
    check_len(x.len(), y.len(), "q5_1");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 31.0;
        let id = inv(d);
        yb.d = f16::from_f32(d);
        yb.m = f16::from_f32(min);
        let mut qh = 0u32;
        for j in 0..HALF {
            let x0 = (xb[j] - min) * id;
            let x1 = (xb[HALF + j] - min) * id;
            let xi0 = c_trunc_u8(x0 + 0.5);
            let xi1 = c_trunc_u8(x1 + 0.5);
            yb.qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + HALF);
        }
        yb.qh = qh.to_le_bytes();
    }
}

/// One Q8 block as ggml's reference does it: `d = amax / 127`, `q = roundf(x / d)`
/// (ties away from zero). Returns `d` and the sum of the quants.
#[inline]
pub(crate) fn quantize_q8_block(xb: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let d = absmax_q8(xb) / 127.0;
    let id = inv(d);
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(xb) {
        *q = c_trunc_u8((v * id).round()) as i8;
        sum += *q as i32;
    }
    (d, sum)
}

/// One Q8 block of activations the way llama.cpp's x86 runtime quantizes them
/// (`quantize_row_q8_0/1` in `arch/x86/quants.c`, which all its matrix products
/// use): `id = 127 / amax` and round-half-to-even, where the `_ref` quantizer
/// (files) uses `1 / d` and rounds half away from zero. The two differ in rare
/// last-bit cases, and small models amplify those flips into visible logit
/// differences, so activations follow the runtime. Out-of-range values convert as
/// `cvtps2dq` (i32::MIN) and store with the `packs` saturation.
pub(crate) fn quantize_q8_block_act(xb: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let amax = absmax_q8(xb);
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(xb) {
        let t = (v * id).round_ties_even();
        let i = if t > -2_147_483_648.0 && t < 2_147_483_648.0 {
            t as i32
        } else {
            i32::MIN
        };
        sum = sum.wrapping_add(i);
        *q = i.clamp(-128, 127) as i8;
    }
    (d, sum)
}

/// Q8_0 activations, llama.cpp's x86 runtime rounding ([`quantize_q8_block_act`]).
pub fn quantize_q8_0_act(x: &[f32], y: &mut [BlockQ8_0]) {
    check_len(x.len(), y.len(), "q8_0");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, _) = quantize_q8_block_act(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
    }
}

/// Q8_1 activations, llama.cpp's x86 runtime rounding; `s = d · Σq`.
pub fn quantize_q8_1_act(x: &[f32], y: &mut [BlockQ8_1]) {
    check_len(x.len(), y.len(), "q8_1");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, sum) = quantize_q8_block_act(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

/// `quantize_row_q8_0_ref`.
pub fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    check_len(x.len(), y.len(), "q8_0");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, _) = quantize_q8_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
    }
}

/// `quantize_row_q8_1_ref`: as Q8_0 plus `s = d * sum(q)`.
pub fn quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    check_len(x.len(), y.len(), "q8_1");
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, sum) = quantize_q8_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

pub fn dequantize_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    check_len(y.len(), x.len(), "q4_0");
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = h(b.d);
        for j in 0..HALF {
            yb[j] = ((b.qs[j] & 0x0F) as i32 - 8) as f32 * d;
            yb[j + HALF] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub fn dequantize_q4_1(x: &[BlockQ4_1], y: &mut [f32]) {
    check_len(y.len(), x.len(), "q4_1");
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let (d, m) = (h(b.d), h(b.m));
        for j in 0..HALF {
            yb[j] = (b.qs[j] & 0x0F) as f32 * d + m;
            yb[j + HALF] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// The 32 five-bit quants of a Q5 block, in element order.
#[inline]
fn q5_values(qs: &[u8; HALF], qh: [u8; 4]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u8; QK];
    for j in 0..HALF {
        q[j] = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        q[j + HALF] = (qs[j] >> 4) | ((((qh >> (j + HALF)) & 1) as u8) << 4);
    }
    q
}

pub fn dequantize_q5_0(x: &[BlockQ5_0], y: &mut [f32]) {
    check_len(y.len(), x.len(), "q5_0");
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = h(b.d);
        for (o, &q) in yb.iter_mut().zip(q5_values(&b.qs, b.qh).iter()) {
            *o = (q as i32 - 16) as f32 * d;
        }
    }
}

pub fn dequantize_q5_1(x: &[BlockQ5_1], y: &mut [f32]) {
    check_len(y.len(), x.len(), "q5_1");
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let (d, m) = (h(b.d), h(b.m));
        for (o, &q) in yb.iter_mut().zip(q5_values(&b.qs, b.qh).iter()) {
            *o = q as f32 * d + m;
        }
    }
}

pub fn dequantize_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    check_len(y.len(), x.len(), "q8_0");
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = h(b.d);
        for (o, &q) in yb.iter_mut().zip(b.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

/// Q8_1 dequantizes like Q8_0; `s` is redundant.
pub fn dequantize_q8_1(x: &[BlockQ8_1], y: &mut [f32]) {
    check_len(y.len(), x.len(), "q8_1");
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = h(b.d);
        for (o, &q) in yb.iter_mut().zip(b.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

fn check_dot(w: usize, a: usize) {
    assert_eq!(w, a, "vec_dot: {w} weight blocks but {a} activation blocks");
}

/// `ggml_vec_dot_q4_0_q8_0` (generic): `Σ sumi · d_w · d_a`.
pub fn vec_dot_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    check_dot(w.len(), a.len());
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for j in 0..HALF {
            let v0 = (x.qs[j] & 0x0F) as i32 - 8;
            let v1 = (x.qs[j] >> 4) as i32 - 8;
            sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + HALF] as i32;
        }
        sumf += sumi as f32 * h(x.d) * h(y.d);
    }
    sumf
}

/// `ggml_vec_dot_q4_1_q8_1` (generic): `Σ (d_w · d_a) · sumi + m_w · s_a`.
pub fn vec_dot_q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    check_dot(w.len(), a.len());
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for j in 0..HALF {
            sumi += (x.qs[j] & 0x0F) as i32 * y.qs[j] as i32
                + (x.qs[j] >> 4) as i32 * y.qs[j + HALF] as i32;
        }
        sumf += (h(x.d) * h(y.d)) * sumi as f32 + h(x.m) * h(y.s);
    }
    sumf
}

/// `ggml_vec_dot_q5_0_q8_0` (generic).
pub fn vec_dot_q5_0_q8_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    check_dot(w.len(), a.len());
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let q = q5_values(&x.qs, x.qh);
        let sumi: i32 = q
            .iter()
            .zip(y.qs.iter())
            .map(|(&q, &a)| (q as i32 - 16) * a as i32)
            .sum();
        sumf += (h(x.d) * h(y.d)) * sumi as f32;
    }
    sumf
}

/// `ggml_vec_dot_q5_1_q8_1` (generic).
pub fn vec_dot_q5_1_q8_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    check_dot(w.len(), a.len());
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let q = q5_values(&x.qs, x.qh);
        let sumi: i32 = q
            .iter()
            .zip(y.qs.iter())
            .map(|(&q, &a)| q as i32 * a as i32)
            .sum();
        sumf += (h(x.d) * h(y.d)) * sumi as f32 + h(x.m) * h(y.s);
    }
    sumf
}

/// `ggml_vec_dot_q8_0_q8_0` (generic).
pub fn vec_dot_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    check_dot(w.len(), a.len());
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let sumi: i32 =
            x.qs.iter()
                .zip(y.qs.iter())
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        sumf += sumi as f32 * (h(x.d) * h(y.d));
    }
    sumf
}

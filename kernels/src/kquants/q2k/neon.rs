//! aarch64 dots of Q2_K with Q8_K: NEON with `sdot` (dotprod) or widening multiplies.
//!
//! A 2-bit value times its 4-bit group scale is at most 45, so the scale is folded
//! into the weights with one byte multiply and every group then feeds the same
//! i32 accumulators; the widening path can pair products in i16 (2·45·128 fits).
//! The mins go through Q8_K's `bsums`. The helpers here are shared with Q3_K.

use std::arch::aarch64::*;
use std::arch::asm;

use super::cast_row;
use crate::blocks::{BlockQ2K, BlockQ8K};

pub(super) fn vec_dot_neon_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ2K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_neon()`.
    unsafe { vec_dot_neon(x, y) }
}

pub(super) fn vec_dot_dotprod_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ2K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_neon_dotprod()`.
    unsafe { vec_dot_dotprod(x, y) }
}

/// `acc + Σ4(a·b)` per lane with `sdot` (the intrinsic is not stable yet).
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(in crate::kquants) unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: register-only instruction, available under the `dotprod` feature.
    unsafe {
        asm!(
            "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `acc + Σ4(a·b)` per lane with widening multiplies; valid while each sum of two
/// adjacent products fits in i16.
#[inline]
#[target_feature(enable = "neon")]
pub(in crate::kquants) unsafe fn mull_dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let p = vmlal_high_s8(p, a, b);
    vpadalq_s16(acc, p)
}

/// Σ mins·bsums of one block as 4 i32 lanes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn mins_dot(sc: uint8x16_t, yb: &BlockQ8K) -> int32x4_t {
    let m = vshrq_n_u8::<4>(sc);
    let m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m)));
    let m1 = vreinterpretq_s16_u16(vmovl_high_u8(m));
    // SAFETY: both loads stay inside `yb.bsums` (16 i16).
    let (b0, b1) = unsafe {
        (
            vld1q_s16(yb.bsums.as_ptr()),
            vld1q_s16(yb.bsums.as_ptr().add(8)),
        )
    };
    let ms = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    let ms = vmlal_high_s16(ms, m0, b0);
    let ms = vmlal_s16(ms, vget_low_s16(m1), vget_low_s16(b1));
    vmlal_high_s16(ms, m1, b1)
}

macro_rules! neon_dot {
    ($name:ident, $features:literal, $dot:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
            let m3 = vdupq_n_u8(3);
            let m4 = vdupq_n_u8(0xF);
            let mut acc = vdupq_n_f32(0.0);
            let mut accm = vdupq_n_f32(0.0);
            for (xb, yb) in x.iter().zip(y) {
                let d = yb.d * xb.d.to_f32();
                let dmin = -yb.d * xb.dmin.to_f32();
                // SAFETY (loads): every pointer below stays inside `xb` / `yb`.
                let sc = vld1q_u8(xb.scales.as_ptr());
                accm = vfmaq_n_f32(accm, vcvtq_f32_s32(mins_dot(sc, yb)), dmin);
                let dsc = vandq_u8(sc, m4);
                let q8 = yb.qs.as_ptr();
                let mut s0 = vdupq_n_s32(0);
                let mut s1 = vdupq_n_s32(0);
                for half in 0..2 {
                    let mut qa = vld1q_u8(xb.qs.as_ptr().add(32 * half));
                    let mut qb = vld1q_u8(xb.qs.as_ptr().add(32 * half + 16));
                    for s in 0..4 {
                        let g = (8 * half + 2 * s) as u8;
                        let sa = vqtbl1q_u8(dsc, vdupq_n_u8(g));
                        let sb = vqtbl1q_u8(dsc, vdupq_n_u8(g + 1));
                        let wa = vreinterpretq_s8_u8(vmulq_u8(vandq_u8(qa, m3), sa));
                        let wb = vreinterpretq_s8_u8(vmulq_u8(vandq_u8(qb, m3), sb));
                        let o = 128 * half + 32 * s;
                        s0 = $dot(s0, wa, vld1q_s8(q8.add(o)));
                        s1 = $dot(s1, wb, vld1q_s8(q8.add(o + 16)));
                        qa = vshrq_n_u8::<2>(qa);
                        qb = vshrq_n_u8::<2>(qb);
                    }
                }
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(vaddq_s32(s0, s1)), d);
            }
            vaddvq_f32(vaddq_f32(acc, accm))
        }
    };
}

neon_dot!(vec_dot_neon, "neon", mull_dot);
neon_dot!(vec_dot_dotprod, "neon,dotprod", sdot);

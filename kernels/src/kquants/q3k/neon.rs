//! aarch64 dots of Q3_K with Q8_K: NEON with `sdot` (dotprod) or widening multiplies.
//!
//! Each 16-element group is one vector: `u = q + 4h` (0..=7) times the activations,
//! summed per lane, then multiplied by the group's signed scale into one i32
//! accumulator; `-4·Σ sc·bsums` is taken off per block.

use std::arch::aarch64::*;

use super::{cast_row, unpack_scales};
use crate::blocks::{BlockQ3K, BlockQ8K};
use crate::kquants::q2k::neon::sdot;

pub(super) fn vec_dot_neon_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ3K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_neon()`.
    unsafe { vec_dot_neon(x, y) }
}

pub(super) fn vec_dot_dotprod_bytes(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (x, y) = cast_row::<BlockQ3K>(n, w, a);
    // SAFETY: `best_dot` hands this function out only when `cpu::has_neon_dotprod()`.
    unsafe { vec_dot_dotprod(x, y) }
}

/// `acc + sc·Σ4(u·a)` per lane with `sdot`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group_sdot(acc: int32x4_t, u: int8x16_t, a: int8x16_t, sc: i32) -> int32x4_t {
    vmlaq_n_s32(acc, sdot(vdupq_n_s32(0), u, a), sc)
}

/// `acc + sc·Σ4(u·a)` per lane with widening multiplies (pairs at most 2·7·128).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn group_mull(acc: int32x4_t, u: int8x16_t, a: int8x16_t, sc: i32) -> int32x4_t {
    let p = vmull_s8(vget_low_s8(u), vget_low_s8(a));
    let p = vmlal_high_s8(p, u, a);
    let acc = vmlal_n_s16(acc, vget_low_s16(p), sc as i16);
    vmlal_high_n_s16(acc, p, sc as i16)
}

macro_rules! neon_dot {
    ($name:ident, $features:literal, $group:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
            let m3 = vdupq_n_u8(3);
            let four = vdupq_n_u8(4);
            let mut acc = vdupq_n_f32(0.0);
            for (xb, yb) in x.iter().zip(y) {
                let d = yb.d * xb.d.to_f32();
                let sc = unpack_scales(&xb.scales);
                // SAFETY (loads): every pointer below stays inside `xb` / `yb` / `sc`.
                let sc8 = vld1q_s8(sc.as_ptr());
                let s0 = vmovl_s8(vget_low_s8(sc8));
                let s1 = vmovl_high_s8(sc8);
                let b0 = vld1q_s16(yb.bsums.as_ptr());
                let b1 = vld1q_s16(yb.bsums.as_ptr().add(8));
                let corr = vmull_s16(vget_low_s16(s0), vget_low_s16(b0));
                let corr = vmlal_high_s16(corr, s0, b0);
                let corr = vmlal_s16(corr, vget_low_s16(s1), vget_low_s16(b1));
                let corr = vmlal_high_s16(corr, s1, b1);
                let mut sa = vnegq_s32(vshlq_n_s32::<2>(corr));
                let mut sb = vdupq_n_s32(0);
                let hm0 = vld1q_u8(xb.hmask.as_ptr());
                let hm1 = vld1q_u8(xb.hmask.as_ptr().add(16));
                let q8 = yb.qs.as_ptr();
                for half in 0..2 {
                    let mut qa = vld1q_u8(xb.qs.as_ptr().add(32 * half));
                    let mut qb = vld1q_u8(xb.qs.as_ptr().add(32 * half + 16));
                    for s in 0..4 {
                        let bit = vdupq_n_u8(1 << (4 * half + s));
                        let ha = vandq_u8(vtstq_u8(hm0, bit), four);
                        let hb = vandq_u8(vtstq_u8(hm1, bit), four);
                        let ua = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(qa, m3), ha));
                        let ub = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(qb, m3), hb));
                        let g = 8 * half + 2 * s;
                        sa = $group(sa, ua, vld1q_s8(q8.add(16 * g)), sc[g] as i32);
                        sb = $group(sb, ub, vld1q_s8(q8.add(16 * g + 16)), sc[g + 1] as i32);
                        qa = vshrq_n_u8::<2>(qa);
                        qb = vshrq_n_u8::<2>(qb);
                    }
                }
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(vaddq_s32(sa, sb)), d);
            }
            vaddvq_f32(acc)
        }
    };
}

neon_dot!(vec_dot_neon, "neon", group_mull);
neon_dot!(vec_dot_dotprod, "neon,dotprod", group_sdot);

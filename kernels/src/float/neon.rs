//! NEON dot products of F32/F16/BF16 rows with f32 activations.
//!
//! Stable Rust has no f16 vector types, so F16 is widened with `fcvtl`/`fcvtl2`
//! through inline assembly (base ARMv8 FP, no FP16 extension needed); BF16 is
//! widened by shifting into the top half of each f32 lane.

use super::check_lengths;
use crate::blocks::GgmlType;
use crate::dispatch::VecDotFn;
use std::arch::aarch64::*;
use std::arch::asm;

const F32: u8 = 0;
const F16: u8 = 1;
const BF16: u8 = 2;

const fn elem_bytes(kind: u8) -> usize {
    if kind == F32 {
        4
    } else {
        2
    }
}

pub(super) fn vec_dot(dtype: GgmlType) -> Option<VecDotFn> {
    Some(match dtype {
        GgmlType::F32 => neon::<F32>,
        GgmlType::F16 => neon::<F16>,
        GgmlType::Bf16 => neon::<BF16>,
        _ => return None,
    })
}

/// Only reachable through the table built after `Isa::Neon.supported()`.
fn neon<const KIND: u8>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_lengths(n, w, a, elem_bytes(KIND));
    // SAFETY: NEON was detected before this fn was handed out; lengths checked above.
    unsafe { dot_neon::<KIND>(n, w.as_ptr(), a.as_ptr()) }
}

/// Eight weights at `p` as two f32x4 (elements 0..4, 4..8).
#[inline(always)]
unsafe fn load8<const KIND: u8>(p: *const u8) -> (float32x4_t, float32x4_t) {
    match KIND {
        F32 => {
            let q = p as *const f32;
            (vld1q_f32(q), vld1q_f32(q.add(4)))
        }
        F16 => {
            let h = vld1q_u16(p as *const u16);
            let lo: float32x4_t;
            let hi: float32x4_t;
            asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags)
            );
            (lo, hi)
        }
        _ => {
            let h = vld1q_u16(p as *const u16);
            (
                vreinterpretq_f32_u32(vshlq_n_u32::<16>(vmovl_u16(vget_low_u16(h)))),
                vreinterpretq_f32_u32(vshlq_n_u32::<16>(vmovl_high_u16(h))),
            )
        }
    }
}

#[target_feature(enable = "neon")]
unsafe fn dot_neon<const KIND: u8>(n: usize, w: *const u8, a: *const u8) -> f32 {
    let eb = elem_bytes(KIND);
    let a = a as *const f32;
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        let (w0, w1) = load8::<KIND>(w.add(i * eb));
        let (w2, w3) = load8::<KIND>(w.add((i + 8) * eb));
        acc[0] = vfmaq_f32(acc[0], w0, vld1q_f32(a.add(i)));
        acc[1] = vfmaq_f32(acc[1], w1, vld1q_f32(a.add(i + 4)));
        acc[2] = vfmaq_f32(acc[2], w2, vld1q_f32(a.add(i + 8)));
        acc[3] = vfmaq_f32(acc[3], w3, vld1q_f32(a.add(i + 12)));
        i += 16;
    }
    while i < n {
        let rest = (n - i).min(8);
        let mut wt = [0u8; 32];
        let mut at = [0f32; 8];
        std::ptr::copy_nonoverlapping(w.add(i * eb), wt.as_mut_ptr(), rest * eb);
        std::ptr::copy_nonoverlapping(a.add(i), at.as_mut_ptr(), rest);
        let (w0, w1) = load8::<KIND>(wt.as_ptr());
        acc[0] = vfmaq_f32(acc[0], w0, vld1q_f32(at.as_ptr()));
        acc[1] = vfmaq_f32(acc[1], w1, vld1q_f32(at.as_ptr().add(4)));
        i += rest;
    }
    vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ))
}

//! NEON kernels: `sdot` when the CPU has the dot-product extension, widening
//! multiplies (`smull` + `sadalp`, exact for every input byte) otherwise.
//!
//! Two blocks per loop step into two f32 accumulators; each block's integer dot
//! is converted to f32 and multiplied in by its scale. Activation quantizers are
//! the scalar reference (they run once per matvec, not once per row).

use std::arch::aarch64::*;

use super::LevelKernels;
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use crate::cpu::Isa;
use half::f16;

pub(super) fn kernels(dotprod: bool) -> LevelKernels {
    let scalar = super::SCALAR;
    if dotprod {
        LevelKernels {
            isa: Isa::Neon,
            q4_0: q4_0_dot,
            q4_1: q4_1_dot,
            q5_0: q5_0_dot,
            q5_1: q5_1_dot,
            q8_0: q8_0_dot,
            ..scalar
        }
    } else {
        LevelKernels {
            isa: Isa::Neon,
            q4_0: q4_0_mul,
            q4_1: q4_1_mul,
            q5_0: q5_0_mul,
            q5_1: q5_1_mul,
            q8_0: q8_0_mul,
            ..scalar
        }
    }
}

simd_wrappers! {
    dot q4_0_dot: BlockQ4_0, BlockQ8_0 => dot_q4_0_q8_0_sdot;
    dot q4_1_dot: BlockQ4_1, BlockQ8_1 => dot_q4_1_q8_1_sdot;
    dot q5_0_dot: BlockQ5_0, BlockQ8_0 => dot_q5_0_q8_0_sdot;
    dot q5_1_dot: BlockQ5_1, BlockQ8_1 => dot_q5_1_q8_1_sdot;
    dot q8_0_dot: BlockQ8_0, BlockQ8_0 => dot_q8_0_q8_0_sdot;
    dot q4_0_mul: BlockQ4_0, BlockQ8_0 => dot_q4_0_q8_0_mul;
    dot q4_1_mul: BlockQ4_1, BlockQ8_1 => dot_q4_1_q8_1_mul;
    dot q5_0_mul: BlockQ5_0, BlockQ8_0 => dot_q5_0_q8_0_mul;
    dot q5_1_mul: BlockQ5_1, BlockQ8_1 => dot_q5_1_q8_1_mul;
    dot q8_0_mul: BlockQ8_0, BlockQ8_0 => dot_q8_0_q8_0_mul;
}

/// f16 → f32 without a library call: shift into an f32 and rescale by 2^112
/// (exact for normals and subnormals); infinities and NaN keep an all-ones exponent.
#[inline(always)]
fn f32_of(h: f16) -> f32 {
    let h = h.to_bits();
    let bits = ((h & 0x7FFF) as u32) << 13;
    let mag = if h & 0x7C00 == 0x7C00 {
        f32::from_bits(bits | 0x7F80_0000)
    } else {
        f32::from_bits(bits) * f32::from_bits(0x7780_0000)
    };
    if h & 0x8000 != 0 {
        -mag
    } else {
        mag
    }
}

/// `sdot`: each i32 lane += the dot of its four i8 pairs. `vdotq_s32` is not yet
/// stable in Rust, hence the one-instruction asm.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: register-only instruction, available per this fn's target features.
    unsafe {
        std::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// acc += the pairwise dot of a and b, accumulated per i32 lane.
#[inline(always)]
unsafe fn idot<const DOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    if DOT {
        sdot(acc, a, b)
    } else {
        // Each i16 product is at most 128·128 = 2^14: exact before the pairwise add.
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }
}

/// Integer dot of one block: weights as two 16-byte halves (elements 0..16, 16..32).
#[inline(always)]
unsafe fn block_dot<const DOT: bool>(lo: int8x16_t, hi: int8x16_t, a: &[i8; QK]) -> int32x4_t {
    let a0 = vld1q_s8(a.as_ptr());
    let a1 = vld1q_s8(a.as_ptr().add(16));
    idot::<DOT>(idot::<DOT>(vdupq_n_s32(0), lo, a0), hi, a1)
}

/// The nibbles of a Q4/Q5 block: (elements 0..16, elements 16..32).
#[inline(always)]
unsafe fn nibbles(qs: &[u8; 16]) -> (uint8x16_t, uint8x16_t) {
    let v = vld1q_u8(qs.as_ptr());
    (vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(v))
}

/// 16 where `qh` has the element's bit, for elements 0..16 and 16..32.
#[inline(always)]
unsafe fn high_bits(qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    const SPREAD_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const SPREAD_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let v = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(qh)));
    let bits = vld1q_u8(BITS.as_ptr());
    let sixteen = vdupq_n_u8(16);
    let lo = vtstq_u8(vqtbl1q_u8(v, vld1q_u8(SPREAD_LO.as_ptr())), bits);
    let hi = vtstq_u8(vqtbl1q_u8(v, vld1q_u8(SPREAD_HI.as_ptr())), bits);
    (vandq_u8(lo, sixteen), vandq_u8(hi, sixteen))
}

#[inline(always)]
unsafe fn s8(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(v)
}

/// Sums `f(block) → (int dot, scale, extra)` as `Σ scale·dot + extra`, two blocks
/// per step into separate accumulators.
#[inline(always)]
unsafe fn drive<W, A>(w: &[W], a: &[A], f: impl Fn(&W, &A) -> (int32x4_t, f32, f32)) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut extra = 0f32;
    for (i, (x, y)) in w.iter().zip(a).enumerate() {
        let (dot, scale, e) = f(x, y);
        acc[i & 1] = vfmaq_n_f32(acc[i & 1], vcvtq_f32_s32(dot), scale);
        extra += e;
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1])) + extra
}

#[inline(always)]
unsafe fn q4_0<const DOT: bool>(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    drive(w, a, |x, y| {
        let (lo, hi) = nibbles(&x.qs);
        let eight = vdupq_n_s8(8);
        let dot = block_dot::<DOT>(vsubq_s8(s8(lo), eight), vsubq_s8(s8(hi), eight), &y.qs);
        (dot, f32_of(x.d) * f32_of(y.d), 0.0)
    })
}

#[inline(always)]
unsafe fn q4_1<const DOT: bool>(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    drive(w, a, |x, y| {
        let (lo, hi) = nibbles(&x.qs);
        let dot = block_dot::<DOT>(s8(lo), s8(hi), &y.qs);
        (dot, f32_of(x.d) * f32_of(y.d), f32_of(x.m) * f32_of(y.s))
    })
}

#[inline(always)]
unsafe fn q5_0<const DOT: bool>(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    drive(w, a, |x, y| {
        let (lo, hi) = nibbles(&x.qs);
        let (hl, hh) = high_bits(x.qh);
        let sixteen = vdupq_n_s8(16);
        let lo = vsubq_s8(s8(vorrq_u8(lo, hl)), sixteen);
        let hi = vsubq_s8(s8(vorrq_u8(hi, hh)), sixteen);
        (
            block_dot::<DOT>(lo, hi, &y.qs),
            f32_of(x.d) * f32_of(y.d),
            0.0,
        )
    })
}

#[inline(always)]
unsafe fn q5_1<const DOT: bool>(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    drive(w, a, |x, y| {
        let (lo, hi) = nibbles(&x.qs);
        let (hl, hh) = high_bits(x.qh);
        let dot = block_dot::<DOT>(s8(vorrq_u8(lo, hl)), s8(vorrq_u8(hi, hh)), &y.qs);
        (dot, f32_of(x.d) * f32_of(y.d), f32_of(x.m) * f32_of(y.s))
    })
}

#[inline(always)]
unsafe fn q8_0<const DOT: bool>(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    drive(w, a, |x, y| {
        let lo = vld1q_s8(x.qs.as_ptr());
        let hi = vld1q_s8(x.qs.as_ptr().add(16));
        (
            block_dot::<DOT>(lo, hi, &y.qs),
            f32_of(x.d) * f32_of(y.d),
            0.0,
        )
    })
}

macro_rules! neon_kernels {
    ($($imp:ident: $W:ty, $A:ty => $dot:ident, $mul:ident;)*) => {$(
        /// # Safety
        /// The CPU must support NEON and the dot-product extension.
        #[target_feature(enable = "neon,dotprod")]
        pub(super) unsafe fn $dot(w: &[$W], a: &[$A]) -> f32 {
            $imp::<true>(w, a)
        }
        /// # Safety
        /// The CPU must support NEON.
        #[target_feature(enable = "neon")]
        pub(super) unsafe fn $mul(w: &[$W], a: &[$A]) -> f32 {
            $imp::<false>(w, a)
        }
    )*};
}

neon_kernels! {
    q4_0: BlockQ4_0, BlockQ8_0 => dot_q4_0_q8_0_sdot, dot_q4_0_q8_0_mul;
    q4_1: BlockQ4_1, BlockQ8_1 => dot_q4_1_q8_1_sdot, dot_q4_1_q8_1_mul;
    q5_0: BlockQ5_0, BlockQ8_0 => dot_q5_0_q8_0_sdot, dot_q5_0_q8_0_mul;
    q5_1: BlockQ5_1, BlockQ8_1 => dot_q5_1_q8_1_sdot, dot_q5_1_q8_1_mul;
    q8_0: BlockQ8_0, BlockQ8_0 => dot_q8_0_q8_0_sdot, dot_q8_0_q8_0_mul;
}

//! The legacy 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1,
//! bit-compatible with ggml.
//!
//! [`reference`] holds the scalar kernels (ggml's reference quantizers, the
//! dequantizers and the generic dot products); `avx2`, `avx512` and `neon` hold
//! the fast dot products and activation quantizers. Weight types pair with
//! ggml's activation types: Q4_0/Q5_0/Q8_0 with Q8_0, Q4_1/Q5_1 with Q8_1.

use crate::blocks::{as_blocks, Block, GgmlType, QK};
use crate::cpu::Isa;
use crate::dispatch::{DequantizeFn, QuantizeFn, TileFn, TypeKernels, VecDotFn};

/// Byte-level `VecDotFn` / `QuantizeFn` wrappers around a SIMD module's typed
/// `unsafe` kernels. Each wrapper is private to its module and reachable only
/// through that module's `LevelKernels`, which [`level_kernels`] hands out only
/// after run-time detection found the kernel's target features.
macro_rules! simd_wrappers {
    ($(dot $name:ident: $W:ty, $A:ty => $f:path;)* $(quantize $qname:ident: $B:ty => $q:path;)*) => {
        $(fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let (w, a) = super::dot_views::<$W, $A>(n, w, a);
            // SAFETY: see `simd_wrappers`: the CPU has the kernel's features; the
            // slices are whole blocks of equal length.
            unsafe { $f(w, a) }
        })*
        $(fn $qname(x: &[f32], y: &mut [u8]) {
            let y = super::blocks_mut::<$B>(y);
            assert_eq!(x.len(), y.len() * crate::blocks::QK, "{}: length mismatch", <$B as crate::blocks::Block>::TYPE);
            // SAFETY: see `simd_wrappers`; lengths checked above.
            unsafe { $q(x, y) }
        })*
    };
}

/// Runs `$body` with `$wg`/`$ag` bound to each run of eight weight/activation
/// blocks, the last run zero-padded (zero scales add exactly nothing). A macro,
/// not a closure, so the body is compiled inside the caller's
/// `#[target_feature]` function and inlined into its loop.
#[cfg(target_arch = "x86_64")]
macro_rules! for_groups {
    ($w:expr, $a:expr, |$wg:ident, $ag:ident| $body:block) => {{
        const GROUP: usize = 8;
        let (w, a) = ($w, $a);
        let mut wc = w.chunks_exact(GROUP);
        let mut ac = a.chunks_exact(GROUP);
        for (wg, ag) in (&mut wc).zip(&mut ac) {
            let $wg: &[_; GROUP] = wg.try_into().unwrap();
            let $ag: &[_; GROUP] = ag.try_into().unwrap();
            $body
        }
        let (wr, ar) = (wc.remainder(), ac.remainder());
        if !wr.is_empty() {
            let (wp, ap) = ($crate::legacy::pad8(wr), $crate::legacy::pad8(ar));
            let ($wg, $ag) = (&wp, &ap);
            $body
        }
    }};
}

/// The first blocks of a group followed by zero blocks. Element-wise rather than
/// `copy_from_slice`, which would call `memcpy` on short rows' hot path.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn pad8<T: bytemuck::Zeroable + Copy>(r: &[T]) -> [T; 8] {
    std::array::from_fn(|i| if i < r.len() { r[i] } else { T::zeroed() })
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_tile;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod reference;
#[cfg(test)]
mod tests;

pub use reference::{
    dequantize_q4_0, dequantize_q4_1, dequantize_q5_0, dequantize_q5_1, dequantize_q8_0,
    dequantize_q8_1, quantize_q4_0, quantize_q4_1, quantize_q5_0, quantize_q5_1, quantize_q8_0,
    quantize_q8_1, vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1, vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1,
    vec_dot_q8_0_q8_0,
};

/// The byte-level kernels of one ISA level.
#[derive(Clone, Copy)]
pub(crate) struct LevelKernels {
    pub isa: Isa,
    pub q4_0: VecDotFn,
    pub q4_1: VecDotFn,
    pub q5_0: VecDotFn,
    pub q5_1: VecDotFn,
    pub q8_0: VecDotFn,
    pub quantize_q8_0: QuantizeFn,
    pub quantize_q8_1: QuantizeFn,
    /// Prefill tiles per weight type, bit-identical to the dots above.
    pub tiles: Option<LevelTiles>,
}

#[derive(Clone, Copy)]
pub(crate) struct LevelTiles {
    pub q4_0: TileFn,
    pub q4_1: TileFn,
    pub q5_0: TileFn,
    pub q5_1: TileFn,
    pub q8_0: TileFn,
}

const SCALAR: LevelKernels = LevelKernels {
    isa: Isa::Scalar,
    q4_0: |n, w, a| {
        let (w, a) = dot_views(n, w, a);
        reference::vec_dot_q4_0_q8_0(w, a)
    },
    q4_1: |n, w, a| {
        let (w, a) = dot_views(n, w, a);
        reference::vec_dot_q4_1_q8_1(w, a)
    },
    q5_0: |n, w, a| {
        let (w, a) = dot_views(n, w, a);
        reference::vec_dot_q5_0_q8_0(w, a)
    },
    q5_1: |n, w, a| {
        let (w, a) = dot_views(n, w, a);
        reference::vec_dot_q5_1_q8_1(w, a)
    },
    q8_0: |n, w, a| {
        let (w, a) = dot_views(n, w, a);
        reference::vec_dot_q8_0_q8_0(w, a)
    },
    quantize_q8_0: |x, y| reference::quantize_q8_0_act(x, blocks_mut(y)),
    quantize_q8_1: |x, y| reference::quantize_q8_1_act(x, blocks_mut(y)),
    tiles: None,
};

/// The kernels of the best level at or below `isa` that this CPU runs.
pub(crate) fn level_kernels(isa: Isa) -> LevelKernels {
    #[cfg(target_arch = "x86_64")]
    {
        if isa >= Isa::Avx512 && crate::cpu::has_avx512() {
            return avx512::kernels(crate::cpu::has_avx512_vnni());
        }
        if isa >= Isa::Avx2 && crate::cpu::has_avx2() {
            return avx2::KERNELS;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if isa >= Isa::Neon && crate::cpu::has_neon() {
            return neon::kernels(crate::cpu::has_neon_dotprod());
        }
    }
    let _ = isa;
    SCALAR
}

pub(crate) fn kernels(dtype: GgmlType, isa: Isa) -> Option<TypeKernels> {
    let k = level_kernels(isa);
    let t = k.tiles;
    let (act, quantize_act, vec_dot, tile) = match dtype {
        GgmlType::Q4_0 => (GgmlType::Q8_0, k.quantize_q8_0, k.q4_0, t.map(|t| t.q4_0)),
        GgmlType::Q4_1 => (GgmlType::Q8_1, k.quantize_q8_1, k.q4_1, t.map(|t| t.q4_1)),
        GgmlType::Q5_0 => (GgmlType::Q8_0, k.quantize_q8_0, k.q5_0, t.map(|t| t.q5_0)),
        GgmlType::Q5_1 => (GgmlType::Q8_1, k.quantize_q8_1, k.q5_1, t.map(|t| t.q5_1)),
        GgmlType::Q8_0 => (GgmlType::Q8_0, k.quantize_q8_0, k.q8_0, t.map(|t| t.q8_0)),
        _ => return None,
    };
    Some(TypeKernels {
        dtype,
        isa: k.isa,
        act,
        dequantize: dequantizer(dtype)?,
        quantize_act,
        vec_dot,
        tile,
    })
}

pub(crate) fn quantizer(dtype: GgmlType) -> Option<QuantizeFn> {
    Some(match dtype {
        GgmlType::Q4_0 => |x, y| reference::quantize_q4_0(x, blocks_mut(y)),
        GgmlType::Q4_1 => |x, y| reference::quantize_q4_1(x, blocks_mut(y)),
        GgmlType::Q5_0 => |x, y| reference::quantize_q5_0(x, blocks_mut(y)),
        GgmlType::Q5_1 => |x, y| reference::quantize_q5_1(x, blocks_mut(y)),
        GgmlType::Q8_0 => SCALAR.quantize_q8_0,
        GgmlType::Q8_1 => SCALAR.quantize_q8_1,
        _ => return None,
    })
}

pub(crate) fn dequantizer(dtype: GgmlType) -> Option<DequantizeFn> {
    Some(match dtype {
        GgmlType::Q4_0 => |x, y| reference::dequantize_q4_0(blocks(x), y),
        GgmlType::Q4_1 => |x, y| reference::dequantize_q4_1(blocks(x), y),
        GgmlType::Q5_0 => |x, y| reference::dequantize_q5_0(blocks(x), y),
        GgmlType::Q5_1 => |x, y| reference::dequantize_q5_1(blocks(x), y),
        GgmlType::Q8_0 => |x, y| reference::dequantize_q8_0(blocks(x), y),
        GgmlType::Q8_1 => |x, y| reference::dequantize_q8_1(blocks(x), y),
        _ => return None,
    })
}

/// View bytes as blocks. Panics (caller bug) on a partial block or an odd address.
fn blocks<B: Block>(bytes: &[u8]) -> &[B] {
    as_blocks(bytes).unwrap_or_else(|| {
        panic!(
            "{}: {} bytes at {:p} are not whole, 2-byte aligned blocks",
            B::TYPE,
            bytes.len(),
            bytes.as_ptr()
        )
    })
}

fn blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    let (len, ptr) = (bytes.len(), bytes.as_ptr());
    bytemuck::try_cast_slice_mut(bytes).unwrap_or_else(|_| {
        panic!(
            "{}: {len} bytes at {ptr:p} are not whole, 2-byte aligned blocks",
            B::TYPE
        )
    })
}

/// Weight and activation rows of `n` elements as blocks; panics when they do not
/// hold exactly `n` elements each.
fn dot_views<'a, W: Block, A: Block>(n: usize, w: &'a [u8], a: &'a [u8]) -> (&'a [W], &'a [A]) {
    let (w, a) = (blocks::<W>(w), blocks::<A>(a));
    assert!(
        w.len() * QK == n && a.len() * QK == n,
        "vec_dot {}x{}: {n} elements but {} weight and {} activation blocks",
        W::TYPE,
        A::TYPE,
        w.len(),
        a.len()
    );
    (w, a)
}

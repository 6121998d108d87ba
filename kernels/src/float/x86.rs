//! AVX2 (F16C + FMA) and AVX-512 dot products of F32/F16/BF16 rows with f32.
//!
//! Four independent accumulators hide the FMA latency; the tail goes through the
//! same vector code (zero-padded copy on AVX2, masked loads on AVX-512).

use super::check_lengths;
use crate::blocks::GgmlType;
use crate::dispatch::VecDotFn;
use std::arch::x86_64::*;

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

pub(super) fn avx2_vec_dot(dtype: GgmlType) -> Option<VecDotFn> {
    Some(match dtype {
        GgmlType::F32 => avx2::<F32>,
        GgmlType::F16 => avx2::<F16>,
        GgmlType::Bf16 => avx2::<BF16>,
        _ => return None,
    })
}

pub(super) fn avx512_vec_dot(dtype: GgmlType) -> Option<VecDotFn> {
    Some(match dtype {
        GgmlType::F32 => avx512::<F32>,
        GgmlType::F16 => avx512::<F16>,
        GgmlType::Bf16 => avx512::<BF16>,
        _ => return None,
    })
}

/// Only reachable through the table built after `Isa::Avx2.supported()`.
fn avx2<const KIND: u8>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_lengths(n, w, a, elem_bytes(KIND));
    // SAFETY: the CPU has AVX2/FMA/F16C (this fn is only handed out after detection),
    // and the lengths were checked above: `w` holds n elements, `a` n f32.
    unsafe { dot_avx2::<KIND>(n, w.as_ptr(), a.as_ptr()) }
}

/// Only reachable through the table built after `Isa::Avx512.supported()`.
fn avx512<const KIND: u8>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_lengths(n, w, a, elem_bytes(KIND));
    // SAFETY: the CPU has AVX-512 F/BW/VL (detected before this fn is handed out),
    // and the lengths were checked above.
    unsafe { dot_avx512::<KIND>(n, w.as_ptr(), a.as_ptr()) }
}

/// Eight weights starting at `p` (element index already applied), as f32.
#[inline(always)]
unsafe fn load8<const KIND: u8>(p: *const u8) -> __m256 {
    match KIND {
        F32 => _mm256_loadu_ps(p as *const f32),
        F16 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
        _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
            _mm_loadu_si128(p as *const __m128i),
        ))),
    }
}

#[inline(always)]
unsafe fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2<const KIND: u8>(n: usize, w: *const u8, a: *const u8) -> f32 {
    let eb = elem_bytes(KIND);
    let a = a as *const f32;
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            let k = i + 8 * j;
            *s = _mm256_fmadd_ps(load8::<KIND>(w.add(k * eb)), _mm256_loadu_ps(a.add(k)), *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            load8::<KIND>(w.add(i * eb)),
            _mm256_loadu_ps(a.add(i)),
            acc[0],
        );
        i += 8;
    }
    if i < n {
        let rest = n - i;
        let mut wt = [0u8; 32];
        let mut at = [0f32; 8];
        std::ptr::copy_nonoverlapping(w.add(i * eb), wt.as_mut_ptr(), rest * eb);
        std::ptr::copy_nonoverlapping(a.add(i), at.as_mut_ptr(), rest);
        acc[1] = _mm256_fmadd_ps(
            load8::<KIND>(wt.as_ptr()),
            _mm256_loadu_ps(at.as_ptr()),
            acc[1],
        );
    }
    hsum256(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

/// Sixteen weights at `p` as f32; lanes outside `m` are zero and not read.
#[inline(always)]
unsafe fn load16<const KIND: u8>(p: *const u8, m: __mmask16) -> __m512 {
    match KIND {
        F32 => _mm512_maskz_loadu_ps(m, p as *const f32),
        F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p as *const i16)),
        _ => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
            _mm256_maskz_loadu_epi16(m, p as *const i16),
        ))),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn dot_avx512<const KIND: u8>(n: usize, w: *const u8, a: *const u8) -> f32 {
    let eb = elem_bytes(KIND);
    let a = a as *const f32;
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            let k = i + 16 * j;
            *s = _mm512_fmadd_ps(
                load16::<KIND>(w.add(k * eb), !0),
                _mm512_loadu_ps(a.add(k)),
                *s,
            );
        }
        i += 64;
    }
    let mut j = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 {
            !0
        } else {
            (1u16 << (n - i)) - 1
        };
        acc[j] = _mm512_fmadd_ps(
            load16::<KIND>(w.add(i * eb), m),
            _mm512_maskz_loadu_ps(m, a.add(i)),
            acc[j],
        );
        i += 16;
        j = (j + 1) & 3;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

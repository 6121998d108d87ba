//! The f16 accumulator of llama.cpp's CPU flash attention, vectorised.
//!
//! llama.cpp keeps the running `Σ softmax·V` of a query in f16 when V is f16, so
//! every update rounds: `acc = f16(acc·ms)` when a new maximum appears and
//! `acc = f16(fma(v, vs, acc))` for each key. Matching its logits means rounding
//! exactly there; each lane is independent, so every ISA level gives bit-identical
//! results to the scalar reference (FMA and round-to-nearest-even conversions).

use crate::cpu::{self, Isa};
use half::f16;

type MadFn = fn(&mut [f16], &[f16], f32);
type ScaleFn = fn(&mut [f16], f32);

#[derive(Clone, Copy)]
struct Kern {
    mad: MadFn,
    scale: ScaleFn,
}

fn kern_at(isa: Isa) -> Kern {
    #[cfg(target_arch = "x86_64")]
    {
        if isa >= Isa::Avx2 && isa != Isa::Neon && Isa::Avx2.supported() {
            return Kern {
                mad: x86::mad,
                scale: x86::scale,
            };
        }
    }
    let _ = isa;
    Kern {
        mad: reference::mad,
        scale: reference::scale,
    }
}

fn kern() -> &'static Kern {
    static K: std::sync::OnceLock<Kern> = std::sync::OnceLock::new();
    K.get_or_init(|| kern_at(cpu::active()))
}

/// `acc[i] = f16(fma(v[i], s, acc[i]))` (ggml `vec_mad_f16`).
pub fn mad_f16(acc: &mut [f16], v: &[f16], s: f32) {
    assert_eq!(acc.len(), v.len(), "mad_f16: lengths differ");
    (kern().mad)(acc, v, s)
}

/// `acc[i] = f16(acc[i] · s)` (ggml `vec_scale_f16`).
pub fn scale_f16(acc: &mut [f16], s: f32) {
    (kern().scale)(acc, s)
}

/// [`mad_f16`] at a given level (for tests and benchmarks).
pub fn mad_f16_at(isa: Isa, acc: &mut [f16], v: &[f16], s: f32) {
    assert_eq!(acc.len(), v.len(), "mad_f16: lengths differ");
    (kern_at(isa).mad)(acc, v, s)
}

/// [`scale_f16`] at a given level (for tests and benchmarks).
pub fn scale_f16_at(isa: Isa, acc: &mut [f16], s: f32) {
    (kern_at(isa).scale)(acc, s)
}

pub mod reference {
    use half::f16;

    pub fn mad(acc: &mut [f16], v: &[f16], s: f32) {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a = f16::from_f32(x.to_f32().mul_add(s, a.to_f32()));
        }
    }

    pub fn scale(acc: &mut [f16], s: f32) {
        for a in acc.iter_mut() {
            *a = f16::from_f32(a.to_f32() * s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    pub(super) fn mad(acc: &mut [f16], v: &[f16], s: f32) {
        // SAFETY: only handed out after AVX2/FMA/F16C detection; lengths are equal
        // (checked by the caller) and the body stays inside both slices.
        unsafe { mad_avx2(acc, v, s) }
    }

    pub(super) fn scale(acc: &mut [f16], s: f32) {
        // SAFETY: as for `mad`.
        unsafe { scale_avx2(acc, s) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mad_avx2(acc: &mut [f16], v: &[f16], s: f32) {
        let n8 = acc.len() / 8 * 8;
        let vs = _mm256_set1_ps(s);
        let a = acc.as_mut_ptr() as *mut __m128i;
        let x = v.as_ptr() as *const __m128i;
        for i in 0..n8 / 8 {
            let av = _mm256_cvtph_ps(_mm_loadu_si128(a.add(i)));
            let xv = _mm256_cvtph_ps(_mm_loadu_si128(x.add(i)));
            let r = _mm256_fmadd_ps(xv, vs, av);
            _mm_storeu_si128(a.add(i), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r));
        }
        super::reference::mad(&mut acc[n8..], &v[n8..], s);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale_avx2(acc: &mut [f16], s: f32) {
        let n8 = acc.len() / 8 * 8;
        let vs = _mm256_set1_ps(s);
        let a = acc.as_mut_ptr() as *mut __m128i;
        for i in 0..n8 / 8 {
            let av = _mm256_cvtph_ps(_mm_loadu_si128(a.add(i)));
            let r = _mm256_mul_ps(av, vs);
            _mm_storeu_si128(a.add(i), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r));
        }
        super::reference::scale(&mut acc[n8..], s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn random_f16(rng: &mut Rng, n: usize, scale: f32) -> Vec<f16> {
        (0..n).map(|_| f16::from_f32(rng.normal(scale))).collect()
    }

    #[test]
    fn every_level_is_bit_identical_to_the_reference() {
        let mut rng = Rng::new(7);
        for n in [1usize, 7, 8, 9, 63, 64, 65, 256, 257] {
            for level in cpu::supported_levels() {
                let v = random_f16(&mut rng, n, 2.0);
                let start = random_f16(&mut rng, n, 8.0);
                let s = rng.normal(1.0);
                let (mut want, mut got) = (start.clone(), start.clone());
                reference::mad(&mut want, &v, s);
                mad_f16_at(level, &mut got, &v, s);
                assert_eq!(want, got, "mad n={n} {level}");
                reference::scale(&mut want, s);
                scale_f16_at(level, &mut got, s);
                assert_eq!(want, got, "scale n={n} {level}");
            }
        }
    }

    #[test]
    fn reference_matches_f64_then_rounds_once() {
        // fma rounds once to f32 and then to f16: for these magnitudes the f32 step
        // is exact enough that the result equals the f64 value rounded to f16.
        let mut rng = Rng::new(11);
        let v = random_f16(&mut rng, 300, 1.0);
        let mut acc = random_f16(&mut rng, 300, 1.0);
        let start = acc.clone();
        reference::mad(&mut acc, &v, 0.5);
        for ((a, s), x) in acc.iter().zip(&start).zip(&v) {
            let exact = s.to_f64() + x.to_f64() * 0.5;
            assert_eq!(*a, f16::from_f64(exact));
        }
    }
}

//! llama.cpp's exact float arithmetic for the ops whose results differ between its
//! AVX2 and AVX-512 builds: the f16 dot product of attention scores
//! (`ggml_vec_dot_f16`) and the vector `expf` inside SiLU (`ggml_v_silu`).
//!
//! The small models amplify a last-bit difference into logit changes of 0.1–0.4
//! (a rounding flips in some later activation quantization), so matching
//! llama.cpp's outputs token for token means reproducing one build's roundings.
//! Both builds are emulated here on any CPU, lane for lane: [`Flavor::Avx512`]
//! (the default: the reference outputs of `shared/reference` come from an AVX-512
//! machine) and [`Flavor::Avx2`] (to diff against a llama.cpp built on an AVX2-only
//! machine). `FERRITE_LLAMA_FLAVOR=avx2|avx512` chooses.
//!
//! Each op has a scalar emulation (the definition, and the path on CPUs without
//! AVX2) and an AVX2 one; tests hold them equal bit for bit.

use half::f16;

/// Which llama.cpp build's roundings to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// x86 with AVX2, FMA and F16C (8-lane vectors).
    Avx2,
    /// x86 with AVX-512F/DQ (16-lane vectors), without AVX512-FP16.
    Avx512,
}

impl Flavor {
    /// `FERRITE_LLAMA_FLAVOR`, read once; AVX-512 unless it says `avx2`.
    pub fn active() -> Flavor {
        static F: std::sync::OnceLock<Flavor> = std::sync::OnceLock::new();
        *F.get_or_init(|| match std::env::var("FERRITE_LLAMA_FLAVOR").as_deref() {
            Ok("avx2") => Flavor::Avx2,
            _ => Flavor::Avx512,
        })
    }

    /// f32 lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Flavor::Avx2 => 8,
            Flavor::Avx512 => 16,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn use_avx2() -> bool {
    crate::cpu::has_avx2()
}

/// `ggml_vec_dot_f16(x, y)` as the given build computes it.
pub fn dot_f16(flavor: Flavor, x: &[f16], y: &[f16]) -> f32 {
    assert_eq!(x.len(), y.len(), "dot_f16: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2, FMA and F16C were detected at run time; lengths are equal.
        return unsafe {
            match flavor {
                Flavor::Avx2 => x86::dot_f16_avx2(x, y),
                Flavor::Avx512 => x86::dot_f16_avx512(x, y),
            }
        };
    }
    reference::dot_f16(flavor, x, y)
}

/// `a = silu(a) · b` as the given build's `ggml_vec_swiglu_f32` computes it.
pub fn swiglu(flavor: Flavor, a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "swiglu: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        let whole = a.len() / flavor.lanes() * flavor.lanes();
        // SAFETY: AVX2 and FMA were detected at run time; `whole` ≤ both lengths.
        unsafe { x86::swiglu(flavor, &mut a[..whole], &b[..whole]) };
        reference::swiglu_tail(&mut a[whole..], &b[whole..]);
        return;
    }
    reference::swiglu(flavor, a, b)
}

/// Keys of one tile of llama.cpp's tiled flash attention (prompts of 64+ rows).
pub const FA_TILE: usize = 64;

/// Scores of one query against a tile of keys laid out `[dim][FA_TILE]` (f32):
/// `out[j] = Σ_e q[e]·k[e][j]` as one FMA chain per key in `e` order from +0
/// (llama.cpp's `simd_gemm`).
pub fn fa_scores(q: &[f32], kt: &[f32], out: &mut [f32; FA_TILE]) {
    assert_eq!(kt.len(), q.len() * FA_TILE, "fa_scores: key tile size");
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2/FMA detected; sizes checked above.
        unsafe { x86::fa_scores(q, kt, out) };
        return;
    }
    out.fill(0.0);
    for (e, &qe) in q.iter().enumerate() {
        for (o, &k) in out.iter_mut().zip(&kt[e * FA_TILE..(e + 1) * FA_TILE]) {
            *o = qe.mul_add(k, *o);
        }
    }
}

/// `acc[d] = fma(p, v[d], acc[d])` (one key's value row, f16).
pub fn fa_accumulate(acc: &mut [f32], p: f32, v: &[f16]) {
    assert_eq!(acc.len(), v.len(), "fa_accumulate: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2/FMA/F16C detected; lengths checked above.
        unsafe { x86::fa_accumulate(acc, p, v) };
        return;
    }
    for (a, &x) in acc.iter_mut().zip(v) {
        *a = p.mul_add(x.to_f32(), *a);
    }
}

/// `p[j] = ggml_v_expf(s[j] − m)` for a tile, and the tile's sum as llama.cpp's
/// tiled softmax adds it: per vector of the build's width, its horizontal sum,
/// accumulated in f64.
pub fn fa_exp_sum(flavor: Flavor, s: &mut [f32; FA_TILE], m: f32) -> f64 {
    let lanes = flavor.lanes();
    #[cfg(target_arch = "x86_64")]
    let done = use_avx2() && {
        // SAFETY: AVX2/FMA detected; the tile is 64 floats.
        unsafe { x86::fa_exp(flavor, s, m) };
        true
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    if !done {
        for v in s.iter_mut() {
            *v = reference::expf(flavor, *v - m);
        }
    }
    let mut sum = 0f64;
    for c in s.chunks_exact(lanes) {
        let h = match flavor {
            Flavor::Avx2 => {
                let t: [f32; 4] = std::array::from_fn(|l| c[l + 4] + c[l]);
                (t[0] + t[2]) + (t[1] + t[3])
            }
            Flavor::Avx512 => {
                let u: [f32; 8] = std::array::from_fn(|l| c[l + 8] + c[l]);
                let w: [f32; 4] = std::array::from_fn(|l| u[l + 4] + u[l]);
                (w[0] + w[2]) + (w[1] + w[3])
            }
        };
        sum += h as f64;
    }
    sum
}

/// Scalar emulations, lane by lane.
pub mod reference {
    use super::Flavor;
    use half::f16;

    const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
    const MAGIC: f32 = 12_582_912.0; // 0x1.8p23
    const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
    const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
    const C5: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
    const C4: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
    const C3: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
    const C2: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
    const C1: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1

    /// One lane of ggml's vector `expf` (`ggml_v_expf`) in the given build.
    pub fn expf(flavor: Flavor, x: f32) -> f32 {
        let z = x.mul_add(LOG2E, MAGIC);
        let n = z - MAGIC;
        let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
        let u = b * b;
        let poly = C5.mul_add(b, C4).mul_add(u, C3.mul_add(b, C2));
        match flavor {
            Flavor::Avx512 => {
                let j = poly.mul_add(u, C1.mul_add(b, 1.0));
                if n.abs() > 192.0 {
                    return if n <= 0.0 { 0.0 } else { f32::INFINITY };
                }
                // scalef(j, n): j · 2^n rounded once (exact in f64, |n| ≤ 192).
                (j as f64 * 2f64.powi(n as i32)) as f32
            }
            Flavor::Avx2 => {
                let j = poly.mul_add(u, C1 * b);
                let e = z.to_bits() << 23;
                if n.abs() <= 126.0 {
                    let k = f32::from_bits(e.wrapping_add(1f32.to_bits()));
                    return k.mul_add(j, k);
                }
                let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
                let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
                let s2 = f32::from_bits(e.wrapping_sub(g));
                if n.abs() > 192.0 {
                    s1 * s1
                } else {
                    s2.mul_add(j, s2) * s1
                }
            }
        }
    }

    /// One lane of `ggml_v_silu`: `x / (1 + expf(0 − x))`.
    pub fn silu(flavor: Flavor, x: f32) -> f32 {
        x / (1.0 + expf(flavor, 0.0 - x))
    }

    pub fn swiglu(flavor: Flavor, a: &mut [f32], b: &[f32]) {
        let whole = a.len() / flavor.lanes() * flavor.lanes();
        for (v, &g) in a[..whole].iter_mut().zip(&b[..whole]) {
            *v = silu(flavor, *v) * g;
        }
        swiglu_tail(&mut a[whole..], &b[whole..]);
    }

    /// The scalar loop after the vectors: `ggml_silu_f32` with libm's `expf`.
    pub fn swiglu_tail(a: &mut [f32], b: &[f32]) {
        for (v, &g) in a.iter_mut().zip(b) {
            *v = *v / (1.0 + (-*v).exp()) * g;
        }
    }

    /// `ggml_vec_dot_f16`: four vector accumulators over steps of four vectors,
    /// reduced pairwise, then the build's horizontal sum; leftovers in f64.
    pub fn dot_f16(flavor: Flavor, x: &[f16], y: &[f16]) -> f32 {
        let lanes = flavor.lanes();
        let step = 4 * lanes;
        let np = x.len() / step * step;
        let mut sum = [[0f32; 16]; 4];
        for i in (0..np).step_by(step) {
            for (j, acc) in sum.iter_mut().enumerate() {
                for (l, a) in acc[..lanes].iter_mut().enumerate() {
                    let k = i + j * lanes + l;
                    *a = x[k].to_f32().mul_add(y[k].to_f32(), *a);
                }
            }
        }
        let mut r = [0f32; 16];
        for l in 0..lanes {
            r[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
        }
        let total = match flavor {
            // _mm256 halves, then two hadds.
            Flavor::Avx2 => {
                let t: [f32; 4] = std::array::from_fn(|i| r[i] + r[i + 4]);
                (t[0] + t[1]) + (t[2] + t[3])
            }
            // _mm512_reduce_add_ps: 512 → 256 → 128 halves, then [0]+[2], [1]+[3].
            Flavor::Avx512 => {
                let t3: [f32; 8] = std::array::from_fn(|i| r[i + 8] + r[i]);
                let t6: [f32; 4] = std::array::from_fn(|i| t3[i + 4] + t3[i]);
                (t6[0] + t6[2]) + (t6[1] + t6[3])
            }
        };
        let mut sumf = total as f64;
        for k in np..x.len() {
            sumf += (x[k].to_f32() * y[k].to_f32()) as f64;
        }
        sumf as f32
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{reference, Flavor};
    use half::f16;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_ph(p: &[f16], at: usize) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.as_ptr().add(at).cast()))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn leftovers(total: f32, x: &[f16], y: &[f16], np: usize) -> f32 {
        let mut sumf = total as f64;
        for k in np..x.len() {
            sumf += (x[k].to_f32() * y[k].to_f32()) as f64;
        }
        sumf as f32
    }

    /// # Safety
    /// AVX2, FMA and F16C; `x.len() == y.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(x: &[f16], y: &[f16]) -> f32 {
        let np = x.len() / 32 * 32;
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < np {
            for (j, acc) in s.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(load_ph(x, i + 8 * j), load_ph(y, i + 8 * j), *acc);
            }
            i += 32;
        }
        let r = _mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[1], s[3]));
        let t0 = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps::<1>(r));
        let t1 = _mm_hadd_ps(t0, t0);
        let total = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
        leftovers(total, x, y, np)
    }

    /// The AVX-512 build's order with 256-bit halves (`lo` lanes 0–7, `hi` 8–15).
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `x.len() == y.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx512(x: &[f16], y: &[f16]) -> f32 {
        let np = x.len() / 64 * 64;
        let mut s = [[_mm256_setzero_ps(); 2]; 4];
        let mut i = 0;
        while i < np {
            for (j, acc) in s.iter_mut().enumerate() {
                for (h, half) in acc.iter_mut().enumerate() {
                    let at = i + 16 * j + 8 * h;
                    *half = _mm256_fmadd_ps(load_ph(x, at), load_ph(y, at), *half);
                }
            }
            i += 64;
        }
        let r: [__m256; 2] = std::array::from_fn(|h| {
            _mm256_add_ps(
                _mm256_add_ps(s[0][h], s[2][h]),
                _mm256_add_ps(s[1][h], s[3][h]),
            )
        });
        let t3 = _mm256_add_ps(r[1], r[0]);
        let t6 = _mm_add_ps(_mm256_extractf128_ps::<1>(t3), _mm256_castps256_ps128(t3));
        let t8 = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));
        let total = _mm_cvtss_f32(_mm_add_ss(t8, _mm_movehdup_ps(t8)));
        leftovers(total, x, y, np)
    }

    /// Eight lanes of `ggml_v_expf` in the given flavor, and whether every lane
    /// was in the plain exponent range (|n| ≤ 125) where this is exact; callers
    /// redo other vectors with the scalar emulation.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn expf8(flavor: Flavor, neg: __m256) -> (__m256, bool) {
        let ps = _mm256_set1_ps;
        let r = ps(12_582_912.0);
        let z = _mm256_fmadd_ps(neg, ps(f32::from_bits(0x3fb8_aa3b)), r);
        let n = _mm256_sub_ps(z, r);
        let b = _mm256_fnmadd_ps(
            n,
            ps(f32::from_bits(0x35bf_be8e)),
            _mm256_fnmadd_ps(n, ps(f32::from_bits(0x3f31_7200)), neg),
        );
        let u = _mm256_mul_ps(b, b);
        let poly = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                ps(f32::from_bits(0x3c07_2010)),
                b,
                ps(f32::from_bits(0x3d2b_9f17)),
            ),
            u,
            _mm256_fmadd_ps(
                ps(f32::from_bits(0x3e2a_af33)),
                b,
                ps(f32::from_bits(0x3eff_fedb)),
            ),
        );
        // 2^n from the integer in z's low bits; exact for |n| ≤ 125, where both
        // builds' results are plain products (no subnormals, no overflow).
        let k = _mm256_castsi256_ps(_mm256_add_epi32(
            _mm256_slli_epi32::<23>(_mm256_castps_si256(z)),
            _mm256_castps_si256(ps(1.0)),
        ));
        // NaN (from ±inf inputs) compares false here, so test "in range" instead.
        let in_range = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_andnot_ps(ps(-0.0), n), ps(125.0));
        let c1 = ps(f32::from_bits(0x3f7f_fff6));
        let e = match flavor {
            Flavor::Avx2 => {
                let j = _mm256_fmadd_ps(poly, u, _mm256_mul_ps(c1, b));
                _mm256_fmadd_ps(k, j, k)
            }
            Flavor::Avx512 => {
                let j = _mm256_fmadd_ps(poly, u, _mm256_fmadd_ps(c1, b, ps(1.0)));
                _mm256_mul_ps(j, k)
            }
        };
        (e, _mm256_movemask_ps(in_range) == 0xff)
    }

    /// Eight lanes of `ggml_v_silu(x) · g` in the given flavor; vectors with a lane
    /// outside the plain exponent range go through the scalar emulation.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn silu_mul(flavor: Flavor, x: __m256, g: __m256) -> __m256 {
        let ps = _mm256_set1_ps;
        let (e, in_range) = expf8(flavor, _mm256_sub_ps(_mm256_setzero_ps(), x));
        let y = _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(ps(1.0), e)), g);
        if in_range {
            return y;
        }
        let (mut xs, mut gs) = ([0f32; 8], [0f32; 8]);
        _mm256_storeu_ps(xs.as_mut_ptr(), x);
        _mm256_storeu_ps(gs.as_mut_ptr(), g);
        for (v, &w) in xs.iter_mut().zip(&gs) {
            *v = reference::silu(flavor, *v) * w;
        }
        _mm256_loadu_ps(xs.as_ptr())
    }

    /// # Safety
    /// AVX2 and FMA; `kt.len() == q.len() · 64`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fa_scores(q: &[f32], kt: &[f32], out: &mut [f32; 64]) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (e, &qe) in q.iter().enumerate() {
            let qv = _mm256_set1_ps(qe);
            let row = kt.as_ptr().add(e * 64);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(row.add(8 * i)), *a);
            }
        }
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * i), *a);
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C; equal lengths.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn fa_accumulate(acc: &mut [f32], p: f32, v: &[f16]) {
        let pv = _mm256_set1_ps(p);
        let n = acc.len() / 8 * 8;
        let mut d = 0;
        while d < n {
            let x = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(d).cast()));
            let a = acc.as_mut_ptr().add(d);
            _mm256_storeu_ps(a, _mm256_fmadd_ps(pv, x, _mm256_loadu_ps(a)));
            d += 8;
        }
        for (a, &x) in acc[n..].iter_mut().zip(&v[n..]) {
            *a = p.mul_add(x.to_f32(), *a);
        }
    }

    /// # Safety
    /// AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fa_exp(flavor: Flavor, s: &mut [f32; 64], m: f32) {
        let mv = _mm256_set1_ps(m);
        for c in s.chunks_exact_mut(8) {
            let x = _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mv);
            let (e, in_range) = expf8(flavor, x);
            if in_range {
                _mm256_storeu_ps(c.as_mut_ptr(), e);
            } else {
                for v in c.iter_mut() {
                    *v = reference::expf(flavor, *v - m);
                }
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA; equal lengths, a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn swiglu(flavor: Flavor, a: &mut [f32], b: &[f32]) {
        assert!(a.len() == b.len() && a.len().is_multiple_of(8));
        for (va, vb) in a.chunks_exact_mut(8).zip(b.chunks_exact(8)) {
            let x = _mm256_loadu_ps(va.as_ptr());
            let g = _mm256_loadu_ps(vb.as_ptr());
            _mm256_storeu_ps(va.as_mut_ptr(), silu_mul(flavor, x, g));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    /// Both flavors' vector paths equal their scalar emulation bit for bit, on
    /// ordinary inputs and on the exponent extremes where `expf` takes its
    /// special branches.
    #[test]
    fn swiglu_vector_equals_scalar_emulation() {
        let mut rng = Rng::new(7);
        let mut a: Vec<f32> = (0..4099).map(|_| rng.normal(6.0)).collect();
        for (i, v) in [
            -200.0, -150.0, -126.5, -88.0, -87.5, 87.0, 88.5, 127.0, 150.0, 200.0,
        ]
        .into_iter()
        .enumerate()
        {
            a[i * 37] = v;
        }
        let b: Vec<f32> = (0..a.len()).map(|_| rng.normal(1.0)).collect();
        for flavor in [Flavor::Avx2, Flavor::Avx512] {
            let mut fast = a.clone();
            swiglu(flavor, &mut fast, &b);
            let mut slow = a.clone();
            reference::swiglu(flavor, &mut slow, &b);
            for i in 0..a.len() {
                assert_eq!(
                    fast[i].to_bits(),
                    slow[i].to_bits(),
                    "{flavor:?} lane {i}: x {}",
                    a[i]
                );
            }
        }
    }

    /// The emulated `expf` stays within llama.cpp's stated error (1.5 ulp) of the
    /// true exponential in both flavors, and saturates as it does.
    #[test]
    fn expf_emulations_are_exponentials() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            for flavor in [Flavor::Avx2, Flavor::Avx512] {
                let got = reference::expf(flavor, x) as f64;
                let ulp = (want as f32).abs() * f32::EPSILON;
                assert!(
                    (got - want).abs() <= 2.0 * ulp as f64,
                    "{flavor:?} expf({x}) = {got}, want {want}"
                );
            }
            x += 0.0137;
        }
        for flavor in [Flavor::Avx2, Flavor::Avx512] {
            assert_eq!(reference::expf(flavor, -200.0), 0.0);
            assert_eq!(reference::expf(flavor, 200.0), f32::INFINITY);
        }
    }

    #[test]
    fn dot_f16_vector_equals_scalar_emulation_and_f64() {
        let mut rng = Rng::new(11);
        for n in [1usize, 31, 64, 100, 128, 256, 257] {
            let x: Vec<f16> = (0..n).map(|_| f16::from_f32(rng.normal(1.0))).collect();
            let y: Vec<f16> = (0..n).map(|_| f16::from_f32(rng.normal(1.0))).collect();
            let exact: f64 = x.iter().zip(&y).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
            let mag: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a.to_f64() * b.to_f64()).abs())
                .sum();
            for flavor in [Flavor::Avx2, Flavor::Avx512] {
                let fast = dot_f16(flavor, &x, &y);
                let slow = reference::dot_f16(flavor, &x, &y);
                assert_eq!(fast.to_bits(), slow.to_bits(), "{flavor:?} n {n}");
                assert!(
                    (fast as f64 - exact).abs() <= 1e-6 * mag,
                    "{flavor:?} n {n}: {fast} vs {exact}"
                );
            }
        }
    }

    /// The tiled attention pieces equal their scalar definitions bit for bit.
    #[test]
    fn fa_pieces_equal_scalar_definitions() {
        let mut rng = Rng::new(17);
        for dim in [64usize, 256] {
            let q: Vec<f32> = (0..dim).map(|_| rng.normal(1.0)).collect();
            let kt: Vec<f32> = (0..dim * FA_TILE)
                .map(|_| f16::from_f32(rng.normal(1.0)).to_f32())
                .collect();
            let mut fast = [0f32; FA_TILE];
            fa_scores(&q, &kt, &mut fast);
            for j in 0..FA_TILE {
                let want = (0..dim).fold(0f32, |a, e| q[e].mul_add(kt[e * FA_TILE + j], a));
                assert_eq!(fast[j].to_bits(), want.to_bits(), "score {j}");
            }
            let v: Vec<f16> = (0..dim).map(|_| f16::from_f32(rng.normal(1.0))).collect();
            let mut acc: Vec<f32> = (0..dim).map(|_| rng.normal(1.0)).collect();
            let want: Vec<f32> = acc
                .iter()
                .zip(&v)
                .map(|(&a, &x)| 0.37f32.mul_add(x.to_f32(), a))
                .collect();
            fa_accumulate(&mut acc, 0.37, &v);
            assert_eq!(acc, want);
        }
        for flavor in [Flavor::Avx2, Flavor::Avx512] {
            let mut s: [f32; FA_TILE] = std::array::from_fn(|_| rng.normal(3.0));
            s[5] = f32::NEG_INFINITY;
            s[40] = -150.0;
            let m = 2.5;
            let mut want = s;
            for v in want.iter_mut() {
                *v = reference::expf(flavor, *v - m);
            }
            fa_exp_sum(flavor, &mut s, m);
            for j in 0..FA_TILE {
                assert_eq!(s[j].to_bits(), want[j].to_bits(), "{flavor:?} exp {j}");
            }
            assert_eq!(s[5], 0.0);
        }
    }

    /// The two builds really differ (else emulating both would be pointless):
    /// on random data some dot products and some SiLUs round differently.
    #[test]
    fn flavors_round_differently() {
        let mut rng = Rng::new(3);
        let mut dots_differ = 0;
        for _ in 0..200 {
            let x: Vec<f16> = (0..64).map(|_| f16::from_f32(rng.normal(1.0))).collect();
            let y: Vec<f16> = (0..64).map(|_| f16::from_f32(rng.normal(1.0))).collect();
            dots_differ += usize::from(
                reference::dot_f16(Flavor::Avx2, &x, &y)
                    != reference::dot_f16(Flavor::Avx512, &x, &y),
            );
        }
        let silus_differ = (0..2000)
            .map(|_| rng.normal(4.0))
            .filter(|&v| reference::silu(Flavor::Avx2, v) != reference::silu(Flavor::Avx512, v))
            .count();
        assert!(
            dots_differ > 0 && silus_differ > 0,
            "{dots_differ} {silus_differ}"
        );
    }
}

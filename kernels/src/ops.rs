//! f32 ops of the transformer graph: RMSNorm, LayerNorm, RoPE, softmax, SiLU/GELU
//! (plain and gated) and elementwise helpers, following ggml's definitions.
//!
//! Every op has a scalar reference in [`reference`]; the hot ones (norms,
//! softmax, activations, elementwise) also have one generic SIMD body
//! instantiated for AVX2, AVX-512 and NEON, chosen by [`crate::cpu::active`].
//!
//! Fast paths and references agree to ≤ 1e-6 relative for sums and products;
//! ops built on `exp` (softmax, SiLU, GELU) agree to a few ulp (tested at
//! 4e-7 relative, plus 2e-7·|x| for GELU, whose ggml tanh formula loses
//! absolute precision near -x·1) — see the tests. The fast `exp` returns 0 below
//! -86.9 (true value < 2e-38) and saturates near f32::MAX above 88.7.

use crate::cpu::{self, Isa};

type ScaleMulFn = fn(&[f32], f32, Option<&[f32]>, &mut [f32]);
type ZipFn = fn(&mut [f32], &[f32]);

/// Per-ISA kernels of the hot ops; built once per level.
#[derive(Clone, Copy)]
struct Kern {
    /// `out = (x · s) · w` (or `x · s` without `w`), ggml's order of rounding.
    scale_mul: ScaleMulFn,
    max: fn(&[f32]) -> f32,
    /// `x = exp(x - m)`, returning the sum.
    exp_sum: fn(&mut [f32], f32) -> f32,
    scale: fn(&mut [f32], f32),
    silu: fn(&mut [f32]),
    swiglu: ZipFn,
    gelu: fn(&mut [f32]),
    geglu: ZipFn,
    add: ZipFn,
    mul: ZipFn,
}

fn kern_at(isa: Isa) -> Kern {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 && Isa::Avx512.supported() {
            return avx512::kern();
        }
        if isa >= Isa::Avx2 && isa != Isa::Neon && Isa::Avx2.supported() {
            return avx2::kern();
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if isa == Isa::Neon && Isa::Neon.supported() {
            return neon::kern();
        }
    }
    let _ = isa;
    reference::kern()
}

fn kern() -> &'static Kern {
    static K: std::sync::OnceLock<Kern> = std::sync::OnceLock::new();
    K.get_or_init(|| kern_at(cpu::active()))
}

fn same_len(a: usize, b: usize, what: &str) {
    assert_eq!(a, b, "{what}: lengths differ ({a} vs {b})");
}

/// `out = x / sqrt(mean(x²) + eps) · weight` (ggml `rms_norm` then `mul`).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    same_len(x.len(), weight.len(), "rms_norm weight");
    same_len(x.len(), out.len(), "rms_norm output");
    let k = kern();
    let s = rms_scale(x, eps);
    (k.scale_mul)(x, s, Some(weight), out);
}

/// `out = x / sqrt(mean(x²) + eps)`.
pub fn rms_norm_plain(x: &[f32], eps: f32, out: &mut [f32]) {
    same_len(x.len(), out.len(), "rms_norm output");
    let k = kern();
    let s = rms_scale(x, eps);
    (k.scale_mul)(x, s, None, out);
}

/// [`rms_norm`] in place (`weight` optional).
pub fn rms_norm_inplace(x: &mut [f32], weight: Option<&[f32]>, eps: f32) {
    if let Some(w) = weight {
        same_len(x.len(), w.len(), "rms_norm weight");
    }
    let k = kern();
    let s = rms_scale(x, eps);
    match weight {
        Some(w) => {
            (k.scale)(x, s);
            (k.mul)(x, w);
        }
        None => (k.scale)(x, s),
    }
}

/// ggml's exact arithmetic: f32 squares summed in f64 in order, the mean rounded to
/// f32, then `1/sqrt(mean + eps)` in f32. Models are sensitive enough that a one-ulp
/// difference here flips activation quantization downstream, so no SIMD reordering.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len().max(1) as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out = (x - mean) / sqrt(var + eps) · weight + bias` (ggml `norm`, then the
/// optional `mul`/`add`). Sums in f64, as ggml.
pub fn layer_norm(
    x: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
) {
    reference::layer_norm(x, weight, bias, eps, out)
}

/// Softmax of `x · scale` in place (max-subtracted, so large inputs are safe;
/// `-inf` entries become exactly 0).
pub fn softmax(x: &mut [f32], scale: f32) {
    softmax_with(kern(), x, scale)
}

fn softmax_with(k: &Kern, x: &mut [f32], scale: f32) {
    if x.is_empty() {
        return;
    }
    if scale != 1.0 {
        (k.scale)(x, scale);
    }
    let m = (k.max)(x);
    if m == f32::NEG_INFINITY {
        // Every entry masked: ggml's result is NaN-free only by accident; be uniform.
        let u = 1.0 / x.len() as f32;
        x.iter_mut().for_each(|v| *v = u);
        return;
    }
    let sum = (k.exp_sum)(x, m);
    (k.scale)(x, 1.0 / sum);
}

/// `x = x / (1 + exp(-x))` in place.
pub fn silu(x: &mut [f32]) {
    (kern().silu)(x)
}

/// `a = silu(a) · b`: the gate of a SwiGLU FFN.
pub fn swiglu(a: &mut [f32], b: &[f32]) {
    same_len(a.len(), b.len(), "swiglu");
    (kern().swiglu)(a, b)
}

/// GELU, tanh approximation (ggml `gelu`): `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu(x: &mut [f32]) {
    (kern().gelu)(x)
}

/// `a = gelu(a) · b` (tanh approximation): the gate of a GeGLU FFN.
pub fn geglu(a: &mut [f32], b: &[f32]) {
    same_len(a.len(), b.len(), "geglu");
    (kern().geglu)(a, b)
}

/// `a = gelu(a) · b` the way llama.cpp's CPU backend computes it: GELU looked up
/// in a table indexed by the f16 of `a` and stored as f16 (ggml's `GGML_GELU_FP16`),
/// exact outside (-10, 10). Coarser than [`geglu`], but models tuned against
/// llama.cpp (and its reference outputs) see these values.
pub fn geglu_f16_table(a: &mut [f32], b: &[f32]) {
    same_len(a.len(), b.len(), "geglu_f16_table");
    let table = gelu_f16_table();
    for (v, &g) in a.iter_mut().zip(b) {
        let x = *v;
        *v = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * g
        } else {
            table[half::f16::from_f32(x).to_bits() as usize].to_f32() * g
        };
    }
}

/// GELU as ggml computes its table entries (its compiler's FMA contraction
/// included): `(0.5x)·(1 + tanh((√(2/π)·x)·fma(x, 0.044715x, 1)))`.
fn gelu_ggml_table_entry(x: f32) -> f32 {
    let sqrt_2_over_pi = f32::from_bits(0x3f4c_422a);
    (0.5 * x) * (1.0 + ((sqrt_2_over_pi * x) * x.mul_add(0.044_715 * x, 1.0)).tanh())
}

/// `f16(gelu(x))` for every f16 bit pattern `x`, built once (128 KiB).
fn gelu_f16_table() -> &'static [half::f16] {
    static TABLE: std::sync::OnceLock<Vec<half::f16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(gelu_ggml_table_entry(x))
            })
            .collect()
    })
}

/// Exact GELU, `0.5x(1 + erf(x/√2))` (ggml `gelu_erf`).
pub fn gelu_erf(x: &mut [f32]) {
    reference::gelu_erf(x)
}

/// `a += b`.
pub fn add(a: &mut [f32], b: &[f32]) {
    same_len(a.len(), b.len(), "add");
    (kern().add)(a, b)
}

/// `a *= b` elementwise.
pub fn mul(a: &mut [f32], b: &[f32]) {
    same_len(a.len(), b.len(), "mul");
    (kern().mul)(a, b)
}

/// `a *= s`.
pub fn scale(a: &mut [f32], s: f32) {
    (kern().scale)(a, s)
}

/// Which elements RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)` (ggml mode 0: llama, mistral).
    Normal,
    /// Halves `(i, i + n_rot/2)` (ggml mode 2: NeoX, qwen2, gemma).
    Neox,
}

/// Rotary position embedding over `[n_heads × head_dim]` rows: the first `n_rot`
/// dimensions of each head are rotated by `θ_i = freq_scale · pos · base^(-2i/n_rot)`,
/// the rest are left as they are. Angles follow ggml exactly (f32 `θ` multiplied by
/// `powf(base, -2/n_rot)` pair after pair, then `cosf`/`sinf`): at long positions that
/// drifts ~1e-4 rad from the exact angle, but it is what llama.cpp-tuned outputs see.
#[derive(Debug, Clone)]
pub struct Rope {
    n_rot: usize,
    style: RopeStyle,
    freq_scale: f32,
    theta_scale: f32,
}

impl Rope {
    /// Panics when `n_rot` is odd or zero.
    pub fn new(n_rot: usize, freq_base: f32, freq_scale: f32, style: RopeStyle) -> Rope {
        assert!(
            n_rot > 0 && n_rot.is_multiple_of(2),
            "rope: n_rot {n_rot} must be even"
        );
        Rope {
            n_rot,
            style,
            freq_scale,
            theta_scale: freq_base.powf(-2.0 / n_rot as f32),
        }
    }

    pub fn n_rot(&self) -> usize {
        self.n_rot
    }

    /// `(cos θ_i, sin θ_i)` for `pos`, to share between Q and K via [`Rope::apply_cached`].
    pub fn cos_sin(&self, pos: usize, out: &mut Vec<(f32, f32)>) {
        out.clear();
        let mut theta = pos as f32;
        for _ in 0..self.n_rot / 2 {
            let t = self.freq_scale * theta;
            out.push((t.cos(), t.sin()));
            theta *= self.theta_scale;
        }
    }

    /// Rotate every head of `x` (`x.len() / head_dim` heads) for `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let mut cs = Vec::with_capacity(self.n_rot / 2);
        self.cos_sin(pos, &mut cs);
        self.apply_cached(x, head_dim, &cs);
    }

    /// As [`Rope::apply`] with angles from [`Rope::cos_sin`]. Panics when `head_dim`
    /// is below `n_rot` or does not divide `x.len()`, or `cs` has the wrong length.
    pub fn apply_cached(&self, x: &mut [f32], head_dim: usize, cs: &[(f32, f32)]) {
        assert!(
            head_dim >= self.n_rot && x.len().is_multiple_of(head_dim),
            "rope: {} values are not heads of {head_dim} ≥ n_rot {}",
            x.len(),
            self.n_rot
        );
        same_len(cs.len(), self.n_rot / 2, "rope angles");
        let half = self.n_rot / 2;
        for head in x.chunks_exact_mut(head_dim) {
            match self.style {
                RopeStyle::Normal => {
                    for (p, &(c, s)) in head[..self.n_rot].chunks_exact_mut(2).zip(cs) {
                        (p[0], p[1]) = rotate(p[0], p[1], c, s);
                    }
                }
                RopeStyle::Neox => {
                    let (lo, hi) = head[..self.n_rot].split_at_mut(half);
                    for ((a, b), &(c, s)) in lo.iter_mut().zip(hi).zip(cs) {
                        (*a, *b) = rotate(*a, *b, c, s);
                    }
                }
            }
        }
    }
}

/// `(x0·c − x1·s, x0·s + x1·c)` with llama.cpp's roundings (measured bit for bit
/// against its CPU backend): its compiler fuses the `x0` products into FMAs and
/// rounds the `x1` ones first.
#[inline]
fn rotate(x0: f32, x1: f32, c: f32, s: f32) -> (f32, f32) {
    (x0.mul_add(c, -(x1 * s)), x0.mul_add(s, x1 * c))
}

/// One-shot [`Rope`] (prefer building a `Rope` once per model).
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &mut [f32],
    head_dim: usize,
    n_rot: usize,
    pos: usize,
    freq_base: f32,
    freq_scale: f32,
    style: RopeStyle,
) {
    Rope::new(n_rot, freq_base, freq_scale, style).apply(x, head_dim, pos)
}

/// Scalar references, written as ggml writes them.
pub mod reference {
    use super::Kern;

    pub(super) fn kern() -> Kern {
        Kern {
            scale_mul,
            max,
            exp_sum,
            scale,
            silu,
            swiglu,
            gelu,
            geglu,
            add,
            mul,
        }
    }

    pub fn scale_mul(x: &[f32], s: f32, w: Option<&[f32]>, out: &mut [f32]) {
        match w {
            Some(w) => {
                for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
                    *o = (v * s) * g;
                }
            }
            None => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v * s;
                }
            }
        }
    }

    pub fn max(x: &[f32]) -> f32 {
        x.iter().fold(f32::NEG_INFINITY, |m, &v| {
            if v.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(v)
            }
        })
    }

    pub fn exp_sum(x: &mut [f32], m: f32) -> f32 {
        let mut s = 0f64;
        for v in x.iter_mut() {
            *v = (*v - m).exp();
            s += *v as f64;
        }
        s as f32
    }

    pub fn scale(x: &mut [f32], s: f32) {
        x.iter_mut().for_each(|v| *v *= s);
    }

    #[inline]
    pub fn silu1(x: f32) -> f32 {
        x / (1.0 + (-x).exp())
    }

    pub fn silu(x: &mut [f32]) {
        x.iter_mut().for_each(|v| *v = silu1(*v));
    }

    pub fn swiglu(a: &mut [f32], b: &[f32]) {
        a.iter_mut().zip(b).for_each(|(v, &g)| *v = silu1(*v) * g);
    }

    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;

    #[inline]
    pub fn gelu1(x: f32) -> f32 {
        0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
    }

    pub fn gelu(x: &mut [f32]) {
        x.iter_mut().for_each(|v| *v = gelu1(*v));
    }

    pub fn geglu(a: &mut [f32], b: &[f32]) {
        a.iter_mut().zip(b).for_each(|(v, &g)| *v = gelu1(*v) * g);
    }

    pub fn add(a: &mut [f32], b: &[f32]) {
        a.iter_mut().zip(b).for_each(|(v, &g)| *v += g);
    }

    pub fn mul(a: &mut [f32], b: &[f32]) {
        a.iter_mut().zip(b).for_each(|(v, &g)| *v *= g);
    }

    /// erfc with relative error < 1.2e-7 everywhere (Numerical Recipes' Chebyshev
    /// fit), so `gelu_erf` keeps its relative precision for negative inputs.
    pub fn erfc(x: f32) -> f32 {
        let z = x.abs();
        let t = 1.0 / (1.0 + 0.5 * z);
        let p = -z * z - 1.265_512_2
            + t * (1.000_023_7
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_204
                                    + t * (1.488_515_9
                                        + t * (-0.822_152_23 + t * 0.170_872_77))))))));
        let r = t * p.exp();
        if x >= 0.0 {
            r
        } else {
            2.0 - r
        }
    }

    pub fn gelu_erf(x: &mut [f32]) {
        for v in x.iter_mut() {
            // 0.5x(1 + erf(x/√2)) = 0.5x·erfc(-x/√2): no cancellation for x < 0.
            *v = 0.5 * *v * erfc(-*v * std::f32::consts::FRAC_1_SQRT_2);
        }
    }

    pub fn layer_norm(
        x: &[f32],
        weight: Option<&[f32]>,
        bias: Option<&[f32]>,
        eps: f32,
        out: &mut [f32],
    ) {
        let n = x.len();
        super::same_len(n, out.len(), "layer_norm output");
        if let Some(w) = weight {
            super::same_len(n, w.len(), "layer_norm weight");
        }
        if let Some(b) = bias {
            super::same_len(n, b.len(), "layer_norm bias");
        }
        if n == 0 {
            return;
        }
        let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
        let mut var = 0f64;
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v - mean;
            var += (*o * *o) as f64;
        }
        let s = 1.0 / ((var / n as f64) as f32 + eps).sqrt();
        for (i, o) in out.iter_mut().enumerate() {
            let mut v = *o * s;
            if let Some(w) = weight {
                v *= w[i];
            }
            if let Some(b) = bias {
                v += b[i];
            }
            *o = v;
        }
    }
}

/// The vector operations the generic bodies need; one impl per ISA.
trait Simd: Copy {
    const LANES: usize;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn div(self, o: Self) -> Self;
    /// `self · b + c`.
    unsafe fn fma(self, b: Self, c: Self) -> Self;
    /// Lane-wise max; NaN in `o` propagates.
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise min; NaN in `o` propagates.
    unsafe fn min(self, o: Self) -> Self;
    unsafe fn hsum(self) -> f32;
    unsafe fn hmax(self) -> f32;
    /// `self · 2^n` where `t = n + 1.5·2^23` holds the integer `n` in its low bits.
    unsafe fn ldexp_magic(self, t: Self) -> Self;
    /// `self` where `x ≥ lim` (or `x` is NaN), else 0.
    unsafe fn zero_below(self, x: Self, lim: Self) -> Self;
}

/// Generic bodies, `#[inline(always)]` so each is compiled inside the
/// `#[target_feature]` wrapper of its ISA.
mod generic {
    use super::Simd;

    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer.

    /// exp(x): Cody–Waite reduction by ln 2 and Cephes' degree-6 polynomial, ≤ 2 ulp
    /// on [-86.9, 88.7]; 0 below, saturated above.
    #[inline(always)]
    pub unsafe fn exp<V: Simd>(x: V) -> V {
        let xc = V::splat(88.7).min(V::splat(-87.0).max(x));
        let t = xc.fma(V::splat(std::f32::consts::LOG2_E), V::splat(MAGIC));
        let n = t.sub(V::splat(MAGIC));
        let r = n.fma(V::splat(-0.693_359_4), xc);
        let r = n.fma(V::splat(2.121_944_4e-4), r);
        let mut p = V::splat(1.987_569_1e-4);
        p = p.fma(r, V::splat(1.398_199_9e-3));
        p = p.fma(r, V::splat(8.333_452e-3));
        p = p.fma(r, V::splat(4.166_579_6e-2));
        p = p.fma(r, V::splat(1.666_666_5e-1));
        p = p.fma(r, V::splat(0.5));
        let p = p.fma(r.mul(r), r).add(V::splat(1.0));
        p.ldexp_magic(t).zero_below(x, V::splat(-86.9))
    }

    #[inline(always)]
    unsafe fn silu1<V: Simd>(x: V) -> V {
        x.div(V::splat(1.0).add(exp(V::splat(0.0).sub(x))))
    }

    /// 0.5x(1 + tanh(y)) = x / (1 + exp(-2y)): the same function without the
    /// cancellation of 1 + tanh for negative x.
    #[inline(always)]
    unsafe fn gelu1<V: Simd>(x: V) -> V {
        let x2 = x.mul(x);
        let inner = x2.fma(V::splat(0.044_715), V::splat(1.0));
        let m2y = x.mul(inner).mul(V::splat(-2.0 * 0.797_884_6));
        x.div(V::splat(1.0).add(exp(m2y)))
    }

    // The loops are macros, not closure-taking fns: a closure is compiled without
    // the caller's target features, so LLVM would not inline the intrinsics in it.

    /// Apply `$f` to every vector of `$x`, the tail through a padded copy.
    macro_rules! map {
        ($x:expr, |$v:ident: $V:ty| $f:expr) => {{
            let x: &mut [f32] = $x;
            let n = x.len();
            let p = x.as_mut_ptr();
            let mut i = 0;
            while i + <$V>::LANES <= n {
                let $v = <$V>::load(p.add(i));
                ($f).store(p.add(i));
                i += <$V>::LANES;
            }
            if i < n {
                let mut buf = [0f32; 16];
                buf[..n - i].copy_from_slice(&x[i..]);
                let $v = <$V>::load(buf.as_ptr());
                ($f).store(buf.as_mut_ptr());
                x[i..].copy_from_slice(&buf[..n - i]);
            }
        }};
    }

    /// `$a = $f($a, $b)` lane-wise; the callers checked the lengths are equal.
    macro_rules! zip {
        ($a:expr, $b:expr, |$v:ident: $V:ty, $g:ident| $f:expr) => {{
            let a: &mut [f32] = $a;
            let b: &[f32] = $b;
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_mut_ptr(), b.as_ptr());
            let mut i = 0;
            while i + <$V>::LANES <= n {
                let ($v, $g) = (<$V>::load(pa.add(i)), <$V>::load(pb.add(i)));
                ($f).store(pa.add(i));
                i += <$V>::LANES;
            }
            if i < n {
                let (mut ba, mut bb) = ([0f32; 16], [0f32; 16]);
                ba[..n - i].copy_from_slice(&a[i..n]);
                bb[..n - i].copy_from_slice(&b[i..n]);
                let ($v, $g) = (<$V>::load(ba.as_ptr()), <$V>::load(bb.as_ptr()));
                ($f).store(ba.as_mut_ptr());
                a[i..n].copy_from_slice(&ba[..n - i]);
            }
        }};
    }

    /// Fold vectors of `$x` (tail padded with `$pad`) into two accumulators.
    macro_rules! fold {
        ($x:expr, $pad:expr, $init:expr, |$acc:ident, $v:ident: $V:ty| $f:expr) => {{
            let x: &[f32] = $x;
            let n = x.len();
            let p = x.as_ptr();
            let (mut a0, mut a1): ($V, $V) = ($init, $init);
            let mut i = 0;
            while i + 2 * <$V>::LANES <= n {
                let ($acc, $v) = (a0, <$V>::load(p.add(i)));
                a0 = $f;
                let ($acc, $v) = (a1, <$V>::load(p.add(i + <$V>::LANES)));
                a1 = $f;
                i += 2 * <$V>::LANES;
            }
            while i < n {
                let mut buf = [$pad; 16];
                let k = (n - i).min(<$V>::LANES);
                buf[..k].copy_from_slice(&x[i..i + k]);
                let ($acc, $v) = (a0, <$V>::load(buf.as_ptr()));
                a0 = $f;
                i += k;
            }
            (a0, a1)
        }};
    }

    #[inline(always)]
    pub unsafe fn max<V: Simd>(x: &[f32]) -> f32 {
        let ninf = V::splat(f32::NEG_INFINITY);
        let (a, b) = fold!(x, f32::NEG_INFINITY, ninf, |m, v: V| m.max(v));
        a.max(b).hmax()
    }

    #[inline(always)]
    pub unsafe fn scale_mul<V: Simd>(x: &[f32], s: f32, w: Option<&[f32]>, out: &mut [f32]) {
        out.copy_from_slice(x);
        let sv = V::splat(s);
        match w {
            Some(w) => zip!(out, w, |v: V, g| v.mul(sv).mul(g)),
            None => map!(out, |v: V| v.mul(sv)),
        }
    }

    #[inline(always)]
    pub unsafe fn exp_sum<V: Simd>(x: &mut [f32], m: f32) -> f32 {
        let mv = V::splat(m);
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i + V::LANES <= n {
            let e = exp(V::load(p.add(i)).sub(mv));
            e.store(p.add(i));
            acc = acc.add(e);
            i += V::LANES;
        }
        let mut s = acc.hsum();
        if i < n {
            // Padding is -inf, whose exp is exactly 0: the sum is unchanged.
            let mut buf = [f32::NEG_INFINITY; 16];
            buf[..n - i].copy_from_slice(&x[i..]);
            let e = exp(V::load(buf.as_ptr()).sub(mv));
            e.store(buf.as_mut_ptr());
            x[i..].copy_from_slice(&buf[..n - i]);
            s += buf[..n - i].iter().sum::<f32>();
        }
        s
    }

    #[inline(always)]
    pub unsafe fn scale<V: Simd>(x: &mut [f32], s: f32) {
        let sv = V::splat(s);
        map!(x, |v: V| v.mul(sv))
    }

    #[inline(always)]
    pub unsafe fn silu<V: Simd>(x: &mut [f32]) {
        map!(x, |v: V| silu1(v))
    }

    #[inline(always)]
    pub unsafe fn swiglu<V: Simd>(a: &mut [f32], b: &[f32]) {
        zip!(a, b, |v: V, g| silu1(v).mul(g))
    }

    #[inline(always)]
    pub unsafe fn gelu<V: Simd>(x: &mut [f32]) {
        map!(x, |v: V| gelu1(v))
    }

    #[inline(always)]
    pub unsafe fn geglu<V: Simd>(a: &mut [f32], b: &[f32]) {
        zip!(a, b, |v: V, g| gelu1(v).mul(g))
    }

    #[inline(always)]
    pub unsafe fn add<V: Simd>(a: &mut [f32], b: &[f32]) {
        zip!(a, b, |v: V, g| v.add(g))
    }

    #[inline(always)]
    pub unsafe fn mul<V: Simd>(a: &mut [f32], b: &[f32]) {
        zip!(a, b, |v: V, g| v.mul(g))
    }
}

/// Instantiate the generic bodies for one vector type inside `#[target_feature]`
/// wrappers, and the table of safe entry points.
macro_rules! instantiate {
    ($v:ty, $feat:literal) => {
        use super::{generic, Kern};

        #[target_feature(enable = $feat)]
        unsafe fn max(x: &[f32]) -> f32 {
            generic::max::<$v>(x)
        }
        #[target_feature(enable = $feat)]
        unsafe fn scale_mul(x: &[f32], s: f32, w: Option<&[f32]>, out: &mut [f32]) {
            generic::scale_mul::<$v>(x, s, w, out)
        }
        #[target_feature(enable = $feat)]
        unsafe fn exp_sum(x: &mut [f32], m: f32) -> f32 {
            generic::exp_sum::<$v>(x, m)
        }
        #[target_feature(enable = $feat)]
        unsafe fn scale(x: &mut [f32], s: f32) {
            generic::scale::<$v>(x, s)
        }
        #[target_feature(enable = $feat)]
        unsafe fn silu(x: &mut [f32]) {
            generic::silu::<$v>(x)
        }
        #[target_feature(enable = $feat)]
        unsafe fn swiglu(a: &mut [f32], b: &[f32]) {
            generic::swiglu::<$v>(a, b)
        }
        #[target_feature(enable = $feat)]
        unsafe fn gelu(x: &mut [f32]) {
            generic::gelu::<$v>(x)
        }
        #[target_feature(enable = $feat)]
        unsafe fn geglu(a: &mut [f32], b: &[f32]) {
            generic::geglu::<$v>(a, b)
        }
        #[target_feature(enable = $feat)]
        unsafe fn add(a: &mut [f32], b: &[f32]) {
            generic::add::<$v>(a, b)
        }
        #[target_feature(enable = $feat)]
        unsafe fn mul(a: &mut [f32], b: &[f32]) {
            generic::mul::<$v>(a, b)
        }

        /// Only called after the CPU was found to support this level.
        pub(super) fn kern() -> Kern {
            // SAFETY (every entry): the table is built only after run-time detection
            // of this level; the bodies index within their slices, and the callers
            // checked that paired slices have equal lengths.
            Kern {
                scale_mul: |x, s, w, o| unsafe { scale_mul(x, s, w, o) },
                max: |x| unsafe { max(x) },
                exp_sum: |x, m| unsafe { exp_sum(x, m) },
                scale: |x, s| unsafe { scale(x, s) },
                silu: |x| unsafe { silu(x) },
                swiglu: |a, b| unsafe { swiglu(a, b) },
                gelu: |x| unsafe { gelu(x) },
                geglu: |a, b| unsafe { geglu(a, b) },
                add: |a, b| unsafe { add(a, b) },
                mul: |a, b| unsafe { mul(a, b) },
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Simd;
    use std::arch::x86_64::*;

    impl Simd for __m256 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            _mm256_add_ps(self, o)
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            _mm256_sub_ps(self, o)
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            _mm256_mul_ps(self, o)
        }
        #[inline(always)]
        unsafe fn div(self, o: Self) -> Self {
            _mm256_div_ps(self, o)
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            _mm256_fmadd_ps(self, b, c)
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            // maxps returns its second operand when either is NaN.
            _mm256_max_ps(self, o)
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            _mm256_min_ps(self, o)
        }
        #[inline(always)]
        unsafe fn hsum(self) -> f32 {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(self),
                _mm256_extractf128_ps::<1>(self),
            );
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
        #[inline(always)]
        unsafe fn hmax(self) -> f32 {
            let mut l = [0f32; 8];
            _mm256_storeu_ps(l.as_mut_ptr(), self);
            super::reference::max(&l)
        }
        #[inline(always)]
        unsafe fn ldexp_magic(self, t: Self) -> Self {
            let n = _mm256_sub_epi32(
                _mm256_castps_si256(t),
                _mm256_castps_si256(_mm256_set1_ps(12_582_912.0)),
            );
            _mm256_castsi256_ps(_mm256_add_epi32(
                _mm256_castps_si256(self),
                _mm256_slli_epi32::<23>(n),
            ))
        }
        #[inline(always)]
        unsafe fn zero_below(self, x: Self, lim: Self) -> Self {
            _mm256_and_ps(self, _mm256_cmp_ps::<_CMP_NLT_UQ>(x, lim))
        }
    }

    instantiate!(__m256, "avx2,fma");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Simd;
    use std::arch::x86_64::*;

    impl Simd for __m512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            _mm512_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            _mm512_add_ps(self, o)
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            _mm512_sub_ps(self, o)
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            _mm512_mul_ps(self, o)
        }
        #[inline(always)]
        unsafe fn div(self, o: Self) -> Self {
            _mm512_div_ps(self, o)
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            _mm512_fmadd_ps(self, b, c)
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            _mm512_max_ps(self, o)
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            _mm512_min_ps(self, o)
        }
        #[inline(always)]
        unsafe fn hsum(self) -> f32 {
            _mm512_reduce_add_ps(self)
        }
        #[inline(always)]
        unsafe fn hmax(self) -> f32 {
            let mut l = [0f32; 16];
            _mm512_storeu_ps(l.as_mut_ptr(), self);
            super::reference::max(&l)
        }
        #[inline(always)]
        unsafe fn ldexp_magic(self, t: Self) -> Self {
            let n = _mm512_sub_epi32(
                _mm512_castps_si512(t),
                _mm512_castps_si512(_mm512_set1_ps(12_582_912.0)),
            );
            _mm512_castsi512_ps(_mm512_add_epi32(
                _mm512_castps_si512(self),
                _mm512_slli_epi32::<23>(n),
            ))
        }
        #[inline(always)]
        unsafe fn zero_below(self, x: Self, lim: Self) -> Self {
            _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, lim), self)
        }
    }

    instantiate!(__m512, "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma");
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::Simd;
    use std::arch::aarch64::*;

    impl Simd for float32x4_t {
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            vdupq_n_f32(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            vld1q_f32(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            vst1q_f32(p, self)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            vaddq_f32(self, o)
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            vsubq_f32(self, o)
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            vmulq_f32(self, o)
        }
        #[inline(always)]
        unsafe fn div(self, o: Self) -> Self {
            vdivq_f32(self, o)
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            vfmaq_f32(c, self, b)
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            // fmax propagates NaN from either operand.
            vmaxq_f32(self, o)
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            vminq_f32(self, o)
        }
        #[inline(always)]
        unsafe fn hsum(self) -> f32 {
            vaddvq_f32(self)
        }
        #[inline(always)]
        unsafe fn hmax(self) -> f32 {
            vmaxvq_f32(self)
        }
        #[inline(always)]
        unsafe fn ldexp_magic(self, t: Self) -> Self {
            let n = vsubq_s32(
                vreinterpretq_s32_f32(t),
                vreinterpretq_s32_f32(vdupq_n_f32(12_582_912.0)),
            );
            vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(self), vshlq_n_s32::<23>(n)))
        }
        #[inline(always)]
        unsafe fn zero_below(self, x: Self, lim: Self) -> Self {
            vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(self), vcltq_f32(x, lim)))
        }
    }

    instantiate!(float32x4_t, "neon");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    const LENS: [usize; 8] = [1, 7, 8, 16, 17, 63, 577, 1000];

    fn data(rng: &mut Rng, n: usize, spread: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n).map(|_| rng.normal(spread)).collect();
        if n > 3 {
            v[1] = 0.0;
            v[2] = 10.0 * spread;
            v[3] = -10.0 * spread;
        }
        v
    }

    #[track_caller]
    fn close(got: f32, want: f64, rel: f64, abs: f64, what: &str) {
        let err = (got as f64 - want).abs();
        assert!(
            err <= rel * want.abs() + abs,
            "{what}: {got:e} vs {want:e} (err {err:e})"
        );
    }

    fn levels() -> Vec<(Isa, Kern)> {
        cpu::supported_levels()
            .into_iter()
            .map(|i| (i, kern_at(i)))
            .collect()
    }

    #[test]
    fn fast_exp_is_within_2_ulp_of_f64() {
        let xs: Vec<f32> = (0..20_000)
            .map(|i| -100.0 + 190.0 * i as f32 / 20_000.0)
            .chain([0.0, -0.0, 1e-30, -1e-30, 88.7, -86.9, f32::NEG_INFINITY])
            .collect();
        for (isa, k) in levels() {
            let mut y = xs.clone();
            (k.exp_sum)(&mut y, 0.0);
            for (&x, &e) in xs.iter().zip(&y) {
                let want = (x as f64).exp();
                let what = format!("{isa} exp({x})");
                if x < -86.9 {
                    close(e, want, 0.0, 2e-38, &what);
                } else if x <= 88.7 {
                    close(e, want, 2.5e-7, 0.0, &what);
                }
            }
            let mut nan = vec![f32::NAN; 3];
            (k.exp_sum)(&mut nan, 0.0);
            assert!(nan.iter().all(|v| v.is_nan()), "{isa}: exp(NaN)");
        }
    }

    #[test]
    fn fast_kernels_match_reference() {
        let r = reference::kern();
        let mut rng = Rng::new(11);
        for (isa, k) in levels() {
            for n in LENS {
                let x = data(&mut rng, n, 3.0);
                let b = data(&mut rng, n, 1.0);
                let what = |op: &str| format!("{isa} {op} n={n}");
                assert_eq!((k.max)(&x), (r.max)(&x), "{}", what("max"));
                // Plain products round the same way at every level: bit-identical.
                type Pick = fn(&Kern) -> ZipFn;
                let exact: [(&str, Pick); 2] = [("add", |k| k.add), ("mul", |k| k.mul)];
                for (name, f) in exact {
                    let (mut a1, mut a2) = (x.clone(), x.clone());
                    f(&k)(&mut a1, &b);
                    f(&r)(&mut a2, &b);
                    assert_eq!(a1, a2, "{}", what(name));
                }
                let (mut o1, mut o2) = (vec![0.0; n], vec![0.0; n]);
                (k.scale_mul)(&x, 0.37, Some(&b), &mut o1);
                (r.scale_mul)(&x, 0.37, Some(&b), &mut o2);
                assert_eq!(o1, o2, "{}", what("scale_mul"));
                (k.scale_mul)(&x, 0.37, None, &mut o1);
                (r.scale_mul)(&x, 0.37, None, &mut o2);
                assert_eq!(o1, o2, "{}", what("scale_mul plain"));

                let (mut e1, mut e2) = (x.clone(), x.clone());
                let m = (r.max)(&x);
                let s1 = (k.exp_sum)(&mut e1, m);
                let s2 = (r.exp_sum)(&mut e2, m);
                close(s1, s2 as f64, 1e-6, 0.0, &what("exp_sum"));
                for (&a, &c) in e1.iter().zip(&e2) {
                    close(a, c as f64, 4e-7, 1e-30, &what("exp"));
                }

                // exp-based activations: a few ulp; GELU also ~ulp(1)·|x| from the
                // reference's 1 + tanh cancellation for negative x.
                type Act = fn(&Kern) -> fn(&mut [f32]);
                type Gated = fn(&Kern) -> ZipFn;
                let acts: [(&str, Act, Gated, f64); 2] = [
                    ("silu", |k| k.silu, |k| k.swiglu, 0.0),
                    ("gelu", |k| k.gelu, |k| k.geglu, 2e-7),
                ];
                for (name, act, gated, absx) in acts {
                    let (mut a1, mut a2) = (x.clone(), x.clone());
                    act(&k)(&mut a1);
                    act(&r)(&mut a2);
                    for i in 0..n {
                        let tol = absx * x[i].abs() as f64 + 1e-30;
                        close(a1[i], a2[i] as f64, 4e-7, tol, &what(name));
                    }
                    let (mut g1, mut g2) = (x.clone(), x.clone());
                    gated(&k)(&mut g1, &b);
                    gated(&r)(&mut g2, &b);
                    for i in 0..n {
                        let tol = (absx * x[i].abs() as f64 + 1e-30) * b[i].abs() as f64;
                        close(g1[i], g2[i] as f64, 4e-7, tol, &what(name));
                    }
                }
            }
        }
    }

    fn rms_f64(x: &[f32], eps: f32) -> f64 {
        let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
        1.0 / (ms + eps as f64).sqrt()
    }

    #[test]
    fn norms_match_f64() {
        let mut rng = Rng::new(5);
        for n in LENS {
            let x = data(&mut rng, n, 2.0);
            let w = data(&mut rng, n, 1.0);
            let bias = data(&mut rng, n, 0.5);
            let eps = 1e-6;
            let s = rms_f64(&x, eps);
            let mut out = vec![0.0; n];
            rms_norm(&x, &w, eps, &mut out);
            for i in 0..n {
                close(
                    out[i],
                    x[i] as f64 * s * w[i] as f64,
                    1e-6,
                    1e-30,
                    "rms_norm",
                );
            }
            rms_norm_plain(&x, eps, &mut out);
            for i in 0..n {
                close(out[i], x[i] as f64 * s, 1e-6, 1e-30, "rms_norm_plain");
            }
            let mut y = x.clone();
            rms_norm_inplace(&mut y, Some(&w), eps);
            rms_norm(&x, &w, eps, &mut out);
            assert_eq!(y, out, "in place equals out of place");

            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let inv = 1.0 / (var + 1e-5).sqrt();
            layer_norm(&x, Some(&w), Some(&bias), 1e-5, &mut out);
            for i in 0..n {
                let want = (x[i] as f64 - mean) * inv * w[i] as f64 + bias[i] as f64;
                // The bias can cancel the product: bound by the product's size.
                let tol = 1e-6 * ((x[i] as f64 - mean) * inv * w[i] as f64).abs();
                close(out[i], want, 1e-6, tol + 1e-30, "layer_norm");
            }
            layer_norm(&x, None, None, 1e-5, &mut out);
            for i in 0..n {
                close(
                    out[i],
                    (x[i] as f64 - mean) * inv,
                    1e-6,
                    1e-7,
                    "layer_norm plain",
                );
            }
        }
    }

    #[test]
    fn activations_match_f64() {
        let mut rng = Rng::new(8);
        for n in LENS {
            let x = data(&mut rng, n, 3.0);
            let b = data(&mut rng, n, 1.0);
            let silu64 = |v: f64| v / (1.0 + (-v).exp());
            let gelu64 = |v: f64| {
                0.5 * v
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
            };
            for (isa, k) in levels() {
                let what = |op: &str| format!("{isa} {op} n={n}");
                let mut y = x.clone();
                (k.silu)(&mut y);
                for i in 0..n {
                    close(y[i], silu64(x[i] as f64), 5e-7, 1e-30, &what("silu"));
                }
                let mut y = x.clone();
                (k.swiglu)(&mut y, &b);
                for i in 0..n {
                    let want = silu64(x[i] as f64) * b[i] as f64;
                    close(y[i], want, 5e-7, 1e-30, &what("swiglu"));
                }
                let mut y = x.clone();
                (k.gelu)(&mut y);
                for i in 0..n {
                    let tol = 2e-7 * x[i].abs() as f64 + 1e-30;
                    close(y[i], gelu64(x[i] as f64), 5e-7, tol, &what("gelu"));
                }
                let mut y = x.clone();
                (k.geglu)(&mut y, &b);
                for i in 0..n {
                    let want = gelu64(x[i] as f64) * b[i] as f64;
                    let tol = 2e-7 * (x[i] * b[i]).abs() as f64 + 1e-30;
                    close(y[i], want, 5e-7, tol, &what("geglu"));
                }
            }
            let mut y = x.clone();
            gelu_erf(&mut y);
            for i in 0..n {
                let v = x[i] as f64;
                let want = 0.5 * v * erfc64(-v / std::f64::consts::SQRT_2);
                close(y[i], want, 2e-6, 1e-7 * v.abs(), "gelu_erf");
            }
        }
    }

    /// erfc in f64: Taylor series of erf for |z| < 3, continued fraction beyond.
    fn erfc64(z: f64) -> f64 {
        if z.abs() < 3.0 {
            let mut term = z;
            let mut sum = z;
            for k in 1..200 {
                term *= -z * z / k as f64;
                sum += term / (2 * k + 1) as f64;
            }
            1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
        } else if z > 0.0 {
            let mut f = 0.0;
            for k in (1..200).rev() {
                f = (k as f64 / 2.0) / (z + f);
            }
            (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f)
        } else {
            2.0 - erfc64(-z)
        }
    }

    #[test]
    fn erfc64_is_right() {
        // Known values: erf(1) = 0.8427007929497149, erfc(4) = 1.541725790028002e-8.
        assert!((1.0 - erfc64(1.0) - 0.842_700_792_949_714_9).abs() < 1e-14);
        assert!((erfc64(4.0) / 1.541_725_790_028_002e-8 - 1.0).abs() < 1e-12);
        assert!((erfc64(-1.0) - 1.842_700_792_949_715).abs() < 1e-14);
    }

    #[test]
    fn softmax_matches_f64_and_handles_masks() {
        let mut rng = Rng::new(3);
        for n in LENS {
            let x = data(&mut rng, n, 4.0);
            for scale in [1.0f32, 0.125] {
                let m = x
                    .iter()
                    .map(|&v| (v * scale) as f64)
                    .fold(f64::MIN, f64::max);
                let e: Vec<f64> = x.iter().map(|&v| ((v * scale) as f64 - m).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (isa, k) in levels() {
                    let mut y = x.clone();
                    softmax_with(&k, &mut y, scale);
                    for i in 0..n {
                        close(
                            y[i],
                            e[i] / sum,
                            2e-6,
                            1e-30,
                            &format!("{isa} softmax n={n}"),
                        );
                    }
                }
            }
        }
        for (isa, k) in levels() {
            let mut y = vec![1000.0, f32::NEG_INFINITY, 999.0, f32::NEG_INFINITY, 1000.0];
            softmax_with(&k, &mut y, 1.0);
            assert_eq!(y[1], 0.0, "{isa}");
            assert_eq!(y[3], 0.0, "{isa}");
            assert!((y[0] - y[4]).abs() == 0.0 && (y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            let mut all = vec![f32::NEG_INFINITY; 4];
            softmax_with(&k, &mut all, 1.0);
            assert_eq!(all, vec![0.25; 4], "{isa}");
        }
    }

    #[test]
    fn rope_matches_f64() {
        let mut rng = Rng::new(4);
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            for &(head_dim, n_rot) in &[(64usize, 64usize), (64, 32), (6, 2), (128, 126)] {
                for pos in [0usize, 1, 17, 5000] {
                    let heads = 3;
                    let x = data(&mut rng, heads * head_dim, 1.0);
                    let mut y = x.clone();
                    rope(&mut y, head_dim, n_rot, pos, 10000.0, 0.5, style);
                    for h in 0..heads {
                        let xs = &x[h * head_dim..(h + 1) * head_dim];
                        let ys = &y[h * head_dim..(h + 1) * head_dim];
                        // ggml's angles: f32 θ multiplied pair after pair (the rotation
                        // itself is then checked in f64).
                        let theta_scale = 10000f32.powf(-2.0 / n_rot as f32);
                        let mut theta32 = pos as f32;
                        for i in 0..n_rot / 2 {
                            let theta = (0.5 * theta32) as f64;
                            theta32 *= theta_scale;
                            let exact =
                                0.5 * pos as f64 * 10000f64.powf(-2.0 * i as f64 / n_rot as f64);
                            assert!(
                                (theta - exact).abs() <= 1e-6 * exact.max(1.0) * (i + 1) as f64,
                                "angle drift {theta} vs {exact}"
                            );
                            let (a, b) = match style {
                                RopeStyle::Normal => (2 * i, 2 * i + 1),
                                RopeStyle::Neox => (i, i + n_rot / 2),
                            };
                            let (x0, x1) = (xs[a] as f64, xs[b] as f64);
                            let tol = 1e-6 * (x0.abs() + x1.abs());
                            let what = format!("{style:?} {head_dim}/{n_rot} pos={pos} i={i}");
                            close(ys[a], x0 * theta.cos() - x1 * theta.sin(), 0.0, tol, &what);
                            close(ys[b], x0 * theta.sin() + x1 * theta.cos(), 0.0, tol, &what);
                        }
                        assert_eq!(&ys[n_rot..], &xs[n_rot..], "dims past n_rot are kept");
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "swiglu: lengths differ")]
    fn gated_length_mismatch_panics() {
        swiglu(&mut [1.0; 3], &[1.0; 4]);
    }

    #[test]
    #[should_panic(expected = "n_rot 3 must be even")]
    fn odd_rope_panics() {
        Rope::new(3, 10000.0, 1.0, RopeStyle::Neox);
    }

    #[test]
    fn geglu_f16_table_is_gelu_of_the_f16_input_rounded_to_f16() {
        let gelu64 = |x: f64| {
            0.5 * x
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * x * (1.0 + 0.044715 * x * x)).tanh())
        };
        let mut rng = crate::testutil::Rng::new(5);
        let x: Vec<f32> = (0..4000).map(|_| rng.range(-12.0, 12.0)).collect();
        let g: Vec<f32> = (0..4000).map(|_| rng.range(-2.0, 2.0)).collect();
        let mut y = x.clone();
        geglu_f16_table(&mut y, &g);
        for i in 0..x.len() {
            let want = if x[i] <= -10.0 {
                0.0
            } else if x[i] >= 10.0 {
                x[i] as f64 * g[i] as f64
            } else {
                let xin = half::f16::from_f32(x[i]).to_f64();
                half::f16::from_f64(gelu64(xin)).to_f64() * g[i] as f64
            };
            // The table holds f16(gelu) computed in f32: at most one f16 ulp from the
            // f64 value rounded to f16 (the f32 product with g adds ~1e-7).
            let ulp = (want.abs() / g[i].abs().max(1e-30) as f64 / 1024.0).max(6e-8);
            assert!(
                (y[i] as f64 - want).abs() <= ulp * g[i].abs() as f64 + 1e-6,
                "x={} g={} got {} want {want}",
                x[i],
                g[i],
                y[i]
            );
        }
    }
}

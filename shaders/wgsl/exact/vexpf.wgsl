// ggml's vector expf (`ggml_v_expf`) lane for lane, as llama.cpp's AVX2 (`avx512`
// false) or AVX-512 build computes it: kernels::ggml_math::reference::expf. Needs
// math.wgsl (fma_rn, FMA_FUSED). Results below 2^-126 are IEEE where the device keeps
// denormals and 0 where it flushes them (SiLU only ever adds them to 1).

// An opaque 0 that the caller's `main` must first load from a uniform: ORing it
// into a float hides the value from the compiler, whose algebraic rewrites (Mesa's
// NIR treats SPIR-V float ops as inexact: (a + b) - a → b) would otherwise break
// error-free transformations.
var<private> vexpf_zero: u32;

fn vexpf_opaque(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | vexpf_zero);
}

// a·b rounded once and never contracted into a following add (drivers that fuse
// may turn `a*b + c` into an fma: SPIR-V from WGSL carries no NoContraction).
fn vexpf_mul(a: f32, b: f32) -> f32 {
    return vexpf_opaque(a * b);
}

// 2^k for an integer -126 <= k <= 127.
fn vexpf_pow2(k: i32) -> f32 {
    return bitcast<f32>(u32(k + 127) << 23u);
}

fn ggml_v_expf(x: f32, avx512: bool) -> f32 {
    let magic = 12582912.0; // 0x1.8p23
    let z = vexpf_opaque(fma_rn(x, bitcast<f32>(0x3fb8aa3bu), magic));
    let n = z - magic;
    let b = fma_rn(-n, bitcast<f32>(0x35bfbe8eu), fma_rn(-n, bitcast<f32>(0x3f317200u), x));
    let u = b * b;
    let poly = fma_rn(fma_rn(bitcast<f32>(0x3c072010u), b, bitcast<f32>(0x3d2b9f17u)), u,
                      fma_rn(bitcast<f32>(0x3e2aaf33u), b, bitcast<f32>(0x3efffedbu)));
    let c1 = bitcast<f32>(0x3f7ffff6u);
    let big = abs(n) > 192.0;
    if (avx512) {
        let j = fma_rn(poly, u, fma_rn(c1, b, 1.0));
        if (big) {
            return select(bitcast<f32>(0x7f800000u), 0.0, n <= 0.0);
        }
        // _mm512_scalef_ps: j·2^n rounded once; split 2^n so each factor is normal
        // and the first product exact.
        let k = i32(n);
        if (k > 127) {
            return vexpf_mul(j * vexpf_pow2(k - 127), vexpf_pow2(127));
        }
        if (k < -126) {
            return vexpf_mul(j * vexpf_pow2(k + 64), vexpf_pow2(-64));
        }
        return vexpf_mul(j, vexpf_pow2(k));
    }
    let j = fma_rn(poly, u, c1 * b);
    let e = bitcast<u32>(z) << 23u;
    if (abs(n) <= 126.0) {
        let k = bitcast<f32>(e + 0x3f800000u);
        return fma_rn(k, j, k);
    }
    let g = select(0u, 0x82000000u, n <= 0.0);
    let s1 = bitcast<f32>(g + 0x7f000000u);
    let s2 = bitcast<f32>(e - g);
    if (big) {
        return vexpf_mul(s1, s1);
    }
    return vexpf_mul(fma_rn(s2, j, s2), s1);
}

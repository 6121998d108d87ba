// Exact SwiGLU (kernels::ggml_math::swiglu): gate = ggml_v_silu(gate) · up for the
// vector part of each row (the first `whole` = n / lanes · lanes values), and
// gate / (1 + expf(-gate)) · up with glibc's expf (expf.wgsl) for the rest.
struct P {
    total: u32,
    n: u32,
    gate: u32,
    up: u32,
    whole: u32,
    avx512: u32,
    gx: u32,
    zero: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;

// x / d for d >= 1 (1 + an exponential): huge d is scaled first so the reciprocal
// inside div_rn stays normal; the quotient is then >= 2^-123, so scaling back is exact.
fn ops_div_big(x: f32, d: f32) -> f32 {
    // ±0 / d is x itself (div_rn would lose the sign of zero).
    if (x == 0.0) {
        return x;
    }
    if (d > 3.40282347e38) {
        return bitcast<f32>(bitcast<u32>(x) & 0x80000000u);
    }
    if (d > 1.8446744e19) {
        return div_rn(x, d * 5.421010862e-20) * 5.421010862e-20;
    }
    return div_rn(x, d);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    vexpf_zero = p.zero;
    exf_z = p.zero;
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.total) {
        return;
    }
    let x = bitcast<f32>(a[p.gate + i]);
    let g = bitcast<f32>(a[p.up + i]);
    var e: f32;
    if (i % p.n < p.whole) {
        e = ggml_v_expf(0.0 - x, p.avx512 != 0u);
    } else {
        e = expf_glibc(-x);
    }
    // Opaque: a product must not fuse into the add below.
    e = vexpf_opaque(e);
    a[p.gate + i] = ops_mul_bits(ops_div_big(x, 1.0 + e), g);
}

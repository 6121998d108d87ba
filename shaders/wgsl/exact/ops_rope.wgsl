// Exact RoPE (kernels::ops::Rope::apply_cached), one invocation per rotated pair:
// (x0·c − x1·s, x0·s + x1·c) with the x0 products fused and the x1 ones rounded.
struct P {
    pairs: u32,
    n_heads: u32,
    head_dim: u32,
    half: u32,
    neox: u32,
    x: u32,
    cs: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.pairs) {
        return;
    }
    let k = i % p.half;
    let hh = i / p.half;
    let t = hh / p.n_heads;
    let base = p.x + hh * p.head_dim;
    var i0 = base + 2u * k;
    var i1 = i0 + 1u;
    if (p.neox != 0u) {
        i0 = base + k;
        i1 = i0 + p.half;
    }
    let c = a[p.cs + t * 2u * p.half + 2u * k];
    let s = a[p.cs + t * 2u * p.half + 2u * k + 1u];
    let x0 = a[i0];
    let x1 = a[i1];
    a[i0] = fma_rn(x0, c, -(x1 * s));
    a[i1] = fma_rn(x0, s, x1 * c);
}

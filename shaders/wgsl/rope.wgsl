// Rotary embedding in place over rows of n_head heads; (cos, sin) per token and pair
// come from a host-computed table (ggml's exact angle stepping). One thread per pair.
struct P {
    ntok: u32,
    n_head: u32,
    head_dim: u32,
    n_rot: u32,
    x_off: u32,
    cs_off: u32,   // table: [token][n_rot / 2] of (cos, sin)
    neox: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let half = p.n_rot / 2u;
    let idx = (wid.x + wid.y * p.gx) * WG + lid;
    if (idx >= p.ntok * p.n_head * half) {
        return;
    }
    let i = idx % half;
    let th = idx / half;
    let t = th / p.n_head;
    let base = p.x_off + th * p.head_dim;
    var i0 = base + 2u * i;
    var i1 = i0 + 1u;
    if (p.neox != 0u) {
        i0 = base + i;
        i1 = base + i + half;
    }
    let c = a[p.cs_off + 2u * (t * half + i)];
    let s = a[p.cs_off + 2u * (t * half + i) + 1u];
    let x0 = a[i0];
    let x1 = a[i1];
    a[i0] = x0 * c - x1 * s;
    a[i1] = x0 * s + x1 * c;
}

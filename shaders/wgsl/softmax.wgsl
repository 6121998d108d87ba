// Softmax of x · scale per row of n, in place. One workgroup per row.
struct P {
    rows: u32,
    n: u32,
    off: u32,
    scale: f32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32 /*SG_PARAMS*/) {
    let row = wid.x + wid.y * p.gx;
    if (row >= p.rows) {
        return;
    }
    let b = p.off + row * p.n;
    var m = -3.402823e38;
    for (var i = lid; i < p.n; i = i + WG) {
        m = max(m, a[b + i] * p.scale);
    }
    let mx = wg_max(m, lid /*SG_ARGS*/);
    var s = 0.0;
    for (var i = lid; i < p.n; i = i + WG) {
        let e = exp(a[b + i] * p.scale - mx);
        a[b + i] = e;
        s = s + e;
    }
    let sum = wg_sum(s, lid /*SG_ARGS*/);
    let inv = 1.0 / sum;
    for (var i = lid; i < p.n; i = i + WG) {
        a[b + i] = a[b + i] * inv;
    }
}

// y = x / sqrt(mean(x²) + eps) · weight, per row of n (in place when x_off == y_off).
// One workgroup per row.
struct P {
    rows: u32,
    n: u32,
    x_off: u32,
    y_off: u32,
    has_w: u32,
    eps: f32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32 /*SG_PARAMS*/) {
    let row = wid.x + wid.y * p.gx;
    if (row >= p.rows) {
        return;
    }
    let xb = p.x_off + row * p.n;
    let yb = p.y_off + row * p.n;
    var s = 0.0;
    for (var i = lid; i < p.n; i = i + WG) {
        let v = a[xb + i];
        s = s + v * v;
    }
    let sum = wg_sum(s, lid /*SG_ARGS*/);
    let scale = 1.0 / sqrt(sum / f32(p.n) + p.eps);
    for (var i = lid; i < p.n; i = i + WG) {
        var v = a[xb + i] * scale;
        if (p.has_w != 0u) {
            v = v * bitcast<f32>(w[i]);
        }
        a[yb + i] = v;
    }
}

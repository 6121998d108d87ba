// x[i] += w[i % m]: a bias (f32 weight) added to every row.
struct P {
    n: u32,
    x_off: u32,
    y_off: u32,
    m: u32,
    f: f32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.gx) * WG + lid;
    if (i < p.n) {
        a[p.x_off + i] = a[p.x_off + i] + bitcast<f32>(w[i % p.m]);
    }
}

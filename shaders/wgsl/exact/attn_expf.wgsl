// Test kernel: a[n + i] = expf(a[i]) on the bits (so subnormals pass untouched).
struct P {
    n: u32,
    gx: u32,
    zero: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    exf_z = p.zero;
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.n) {
        return;
    }
    a[p.n + i] = bitcast<u32>(expf_glibc(bitcast<f32>(a[i])));
}

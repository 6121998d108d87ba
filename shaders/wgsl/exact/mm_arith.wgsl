// Test hook: fma_rn(x, y, z) and div_rn(x, y) (math.wgsl) per input triple.
struct P {
    n: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.n) {
        return;
    }
    let x = a[3u * i];
    let y = a[3u * i + 1u];
    let z = a[3u * i + 2u];
    a[3u * p.n + 2u * i] = fma_rn(x, y, z);
    a[3u * p.n + 2u * i + 1u] = div_rn(x, y);
}

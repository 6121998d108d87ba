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
    let o = 3u * p.n + 8u * i;
    a[o] = fma_rn(x, y, z);
    a[o + 1u] = fma_soft(x, y, z);
    a[o + 2u] = x / y;
    a[o + 3u] = div_rn(x, y);
    a[o + 4u] = sqrt(abs(x));
    a[o + 5u] = sqrt_rn(abs(x));
    a[o + 6u] = bitcast<f32>(pack2x16float(vec2<f32>(x, 0.0)) & 0xffffu);
    a[o + 7u] = bitcast<f32>(f16_bits(x));
}

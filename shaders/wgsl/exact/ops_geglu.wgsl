// Exact GeGLU with ggml's f16 GELU table (kernels::ops::geglu_f16_table):
// gate = table[f16(gate)] · up, 0 at or below -10, gate · up at or above 10.
struct P {
    n: u32,
    gate: u32,
    up: u32,
    gx: u32,
    zero: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    vexpf_zero = p.zero;
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.n) {
        return;
    }
    let x = bitcast<f32>(a[p.gate + i]);
    let g = bitcast<f32>(a[p.up + i]);
    var out = 0u;
    if (x >= 10.0) {
        out = ops_mul_bits(x, g);
    } else if (!(x <= -10.0)) {
        let h = f16_bits(x);
        let v = f16_value((table[h >> 1u] >> ((h & 1u) * 16u)) & 0xffffu);
        out = ops_mul_bits(v, g);
    }
    a[p.gate + i] = out;
}

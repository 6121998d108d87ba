// Append ntok rows of `width` f32 values from the arena to an f16 cache (two per
// word, low half first) at row pos0, rounded to nearest even like F16C / `half`.
struct P {
    ntok: u32,
    width: u32,
    x_off: u32,
    pos0: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hw = p.width / 2u;
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.ntok * hw) {
        return;
    }
    let t = i / hw;
    let x = p.x_off + t * p.width + 2u * (i % hw);
    cache[(p.pos0 + t) * hw + i % hw] = f16_bits(a[x]) | (f16_bits(a[x + 1u]) << 16u);
}

// Append n tokens of width `width` from the arena to an f16 cache (two values per word)
// at position pos0. One thread per word.
struct P {
    ntok: u32,
    width: u32,   // even
    x_off: u32,
    pos0: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hw = p.width / 2u;
    let i = (wid.x + wid.y * p.gx) * WG + lid;
    if (i >= p.ntok * hw) {
        return;
    }
    let t = i / hw;
    let j = i % hw;
    let x = p.x_off + t * p.width + 2u * j;
    cache[(p.pos0 + t) * hw + j] = pack2x16float(vec2<f32>(a[x], a[x + 1u]));
}

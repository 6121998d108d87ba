// Test kernel: copy n words of an f16 cache from word `src` into the arena at `dst`.
struct P {
    n: u32,
    src: u32,
    dst: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;
@group(0) @binding(2) var<storage, read> cache: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i < p.n) {
        a[p.dst + i] = cache[p.src + i];
    }
}

// Embedding lookup: out[t] = scale * W[id[t]] for the tokens whose row lies in this
// weight window (ids are stored in the arena as u32 bits). One workgroup per token.
struct P {
    ntok: u32,
    cols: u32,
    ids_off: u32,
    y_off: u32,
    row0: u32,    // first row of this window
    rows: u32,    // rows in this window
    scale: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.x;
    if (t >= p.ntok) {
        return;
    }
    let id = bitcast<u32>(a[p.ids_off + t]);
    if (id < p.row0 || id >= p.row0 + p.rows) {
        return;
    }
    let nb = p.cols / BLOCK_LEN;
    let rbase = (id - p.row0) * nb * BLOCK_WORDS;
    for (var ci = lid; ci < nb * CHUNKS; ci = ci + WG) {
        let bw = rbase + (ci / CHUNKS) * BLOCK_WORDS;
        let q0 = load8(bw, ci % CHUNKS);
        let m = block_min(bw);
        let q = W8(q0.lo + m, q0.hi + m);
        let o = p.y_off + t * p.cols + ci * 8u;
        a[o] = q.lo.x * p.scale;
        a[o + 1u] = q.lo.y * p.scale;
        a[o + 2u] = q.lo.z * p.scale;
        a[o + 3u] = q.lo.w * p.scale;
        a[o + 4u] = q.hi.x * p.scale;
        a[o + 5u] = q.hi.y * p.scale;
        a[o + 6u] = q.hi.z * p.scale;
        a[o + 7u] = q.hi.w * p.scale;
    }
}

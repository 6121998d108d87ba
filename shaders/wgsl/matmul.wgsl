// y[t][row_off + r] = W[r] · x[t] for TT tokens per workgroup: each weight chunk is
// decoded once and used for every token of the tile. One workgroup per row.
struct P {
    rows: u32,     // rows in this weight window
    cols: u32,
    ntok: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    row_off: u32,  // first row of this window in the output
    gx: u32,       // workgroups along x (rows = x + y * gx)
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
    let tok0 = wid.z * TT;
    let nb = p.cols / BLOCK_LEN;
    let nchunks = nb * CHUNKS;
    let rbase = row * nb * BLOCK_WORDS;
    var acc: array<f32, TT>;
    for (var t = 0u; t < TT; t = t + 1u) {
        acc[t] = 0.0;
    }
    for (var ci = lid; ci < nchunks; ci = ci + WG) {
        let q = load8(rbase + (ci / CHUNKS) * BLOCK_WORDS, ci % CHUNKS);
        for (var t = 0u; t < TT; t = t + 1u) {
            if (tok0 + t < p.ntok) {
                let xb = p.x_off + (tok0 + t) * p.x_stride + ci * 8u;
                let x0 = vec4<f32>(a[xb], a[xb + 1u], a[xb + 2u], a[xb + 3u]);
                let x1 = vec4<f32>(a[xb + 4u], a[xb + 5u], a[xb + 6u], a[xb + 7u]);
                acc[t] = acc[t] + dot(q.lo, x0) + dot(q.hi, x1);
            }
        }
    }
    for (var t = 0u; t < TT; t = t + 1u) {
        let s = wg_sum(acc[t], lid /*SG_ARGS*/);
        if (lid == 0u && tok0 + t < p.ntok) {
            a[p.y_off + (tok0 + t) * p.y_stride + p.row_off + row] = s;
        }
    }
}

// y[row_off + r] = W[r] · x for one token: matmul.wgsl with TT = 1 and its row loop
// unrolled by hand, so no private arrays (which software adapters keep in memory).
struct P {
    rows: u32,
    cols: u32,
    ntok: u32,
    x_off: u32,    // multiple of 4
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    row_off: u32,
    gx: u32,
    s_off: u32,
    has_s: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<u32>;

fn arena(i: u32) -> f32 {
    return a[i / 4u][i % 4u];
}

fn row_dot(row: u32, nb: u32, blk: u32, c: u32, x0: vec4<f32>, x1: vec4<f32>, xs: f32) -> f32 {
    if (row >= p.rows) {
        return 0.0;
    }
    let bw = (row * nb + blk) * BLOCK_WORDS;
    let q = load8(bw, c);
    var s = dot(q.lo, x0) + dot(q.hi, x1);
    if (BLOCK_HAS_MIN) {
        s = s + block_min(bw) * xs;
    }
    return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32 /*SG_PARAMS*/) {
    let row0 = (wid.x + wid.y * p.gx) * 4u;
    if (row0 >= p.rows) {
        return;
    }
    let nb = p.cols / BLOCK_LEN;
    let nchunks = nb * CHUNKS;
    var acc0 = 0.0;
    var acc1 = 0.0;
    var acc2 = 0.0;
    var acc3 = 0.0;
    for (var ci = lid; ci < nchunks; ci = ci + WG) {
        let blk = ci / CHUNKS;
        let c = ci % CHUNKS;
        let xb = (p.x_off + ci * 8u) / 4u;
        let x0 = a[xb];
        let x1 = a[xb + 1u];
        var xs = 0.0;
        if (BLOCK_HAS_MIN) {
            if (p.has_s != 0u) {
                if (c == 0u) {
                    xs = arena(p.s_off + blk);
                }
            } else {
                xs = dot(x0, vec4<f32>(1.0)) + dot(x1, vec4<f32>(1.0));
            }
        }
        acc0 = acc0 + row_dot(row0, nb, blk, c, x0, x1, xs);
        acc1 = acc1 + row_dot(row0 + 1u, nb, blk, c, x0, x1, xs);
        acc2 = acc2 + row_dot(row0 + 2u, nb, blk, c, x0, x1, xs);
        acc3 = acc3 + row_dot(row0 + 3u, nb, blk, c, x0, x1, xs);
    }
    let s0 = wg_sum(acc0, lid /*SG_ARGS*/);
    let s1 = wg_sum(acc1, lid /*SG_ARGS*/);
    let s2 = wg_sum(acc2, lid /*SG_ARGS*/);
    let s3 = wg_sum(acc3, lid /*SG_ARGS*/);
    if (lid == 0u) {
        let yi = p.y_off + p.row_off + row0;
        for (var r = 0u; r < 4u; r = r + 1u) {
            if (row0 + r < p.rows) {
                var v = s0;
                if (r == 1u) { v = s1; }
                if (r == 2u) { v = s2; }
                if (r == 3u) { v = s3; }
                a[(yi + r) / 4u][(yi + r) % 4u] = v;
            }
        }
    }
}

// y[t][row_off + r] = W[r] · x[t]. A workgroup computes R rows for TT tokens: each
// activation chunk is loaded once for the R rows and each decoded weight chunk is used
// for every token of the tile (loads dominate on software adapters).
struct P {
    rows: u32,     // rows in this weight window
    cols: u32,
    ntok: u32,
    x_off: u32,    // multiple of 4
    x_stride: u32, // multiple of 4
    y_off: u32,
    y_stride: u32,
    row_off: u32,  // first row of this window in the output
    gx: u32,       // workgroups along x (row groups = x + y * gx)
    s_off: u32,    // with has_s: per token and block, Σx of the block as the CPU's Q8_1 holds it
    has_s: u32,
}
@group(0) @binding(0) var<uniform> p: P;
// Viewed as vec4: activations are read in 16-byte loads.
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<u32>;

const R: u32 = 4u;

fn arena(i: u32) -> f32 {
    return a[i / 4u][i % 4u];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32 /*SG_PARAMS*/) {
    let row0 = (wid.x + wid.y * p.gx) * R;
    if (row0 >= p.rows) {
        return;
    }
    let tok0 = wid.z * TT;
    let nb = p.cols / BLOCK_LEN;
    let nchunks = nb * CHUNKS;
    var acc: array<f32, TT * R>;
    for (var i = 0u; i < TT * R; i = i + 1u) {
        acc[i] = 0.0;
    }
    for (var ci = lid; ci < nchunks; ci = ci + WG) {
        let blk = ci / CHUNKS;
        var q: array<W8, R>;
        var m: array<f32, R>;
        for (var r = 0u; r < R; r = r + 1u) {
            if (row0 + r < p.rows) {
                let bw = ((row0 + r) * nb + blk) * BLOCK_WORDS;
                q[r] = load8(bw, ci % CHUNKS);
                m[r] = block_min(bw);
            } else {
                q[r] = W8(vec4<f32>(0.0), vec4<f32>(0.0));
                m[r] = 0.0;
            }
        }
        for (var t = 0u; t < TT; t = t + 1u) {
            if (tok0 + t < p.ntok) {
                let xb = (p.x_off + (tok0 + t) * p.x_stride + ci * 8u) / 4u;
                let x0 = a[xb];
                let x1 = a[xb + 1u];
                var xs = 0.0;
                if (BLOCK_HAS_MIN) {
                    if (p.has_s != 0u) {
                        if (ci % CHUNKS == 0u) {
                            xs = arena(p.s_off + (tok0 + t) * nb + blk);
                        }
                    } else {
                        xs = dot(x0, vec4<f32>(1.0)) + dot(x1, vec4<f32>(1.0));
                    }
                }
                for (var r = 0u; r < R; r = r + 1u) {
                    acc[t * R + r] = acc[t * R + r] + dot(q[r].lo, x0) + dot(q[r].hi, x1) + m[r] * xs;
                }
            }
        }
    }
    for (var t = 0u; t < TT; t = t + 1u) {
        for (var r = 0u; r < R; r = r + 1u) {
            let s = wg_sum(acc[t * R + r], lid /*SG_ARGS*/);
            if (lid == 0u && tok0 + t < p.ntok && row0 + r < p.rows) {
                let yi = p.y_off + (tok0 + t) * p.y_stride + p.row_off + row0 + r;
                a[yi / 4u][yi % 4u] = s;
            }
        }
    }
}

// Causal attention of each (token, head) over an f16 KV cache, with the numerics of
// llama.cpp's CPU flash attention: the query rounded to f16, online softmax in key
// order, and Σ softmax·V kept in f16 (rounded after every update). Scores of a tile
// of WG keys are computed in parallel; each thread then walks the tile in order for
// its own output dimensions, so the rounding sequence is the CPU's exactly.
// GQA: query head h reads kv head h / group. window > 0: only the last `window` positions.
struct P {
    ntok: u32,
    n_head: u32,
    group: u32,
    hdk: u32,
    hdv: u32,
    q_off: u32,
    o_off: u32,
    pos0: u32,
    window: u32,
    scale: f32,
    kd: u32,
    vd: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<u32>;
@group(0) @binding(3) var<storage, read> vc: array<u32>;

const MAXD: u32 = MAX_HEAD_DIM / WG;
var<workgroup> qs: array<f32, MAX_HEAD_DIM>;
var<workgroup> sc: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = wid.x + wid.y * p.gx;
    if (idx >= p.ntok * p.n_head) {
        return;
    }
    let t = idx / p.n_head;
    let g = (idx % p.n_head) / p.group;
    let pos = p.pos0 + t;
    for (var i = lid; i < p.hdk; i = i + WG) {
        qs[i] = round16(a[p.q_off + idx * p.hdk + i]);
    }
    workgroupBarrier();
    var start = 0u;
    if (p.window > 0u && pos + 1u > p.window) {
        start = pos + 1u - p.window;
    }
    var acc: array<acc_t, MAXD>;
    for (var k = 0u; k < MAXD; k = k + 1u) {
        acc[k] = acc_t(0.0);
    }
    var have = false;
    var mx = 0.0;
    var sum = 0.0;
    for (var ts = start; ts <= pos; ts = ts + WG) {
        let pk = ts + lid;
        var s = 0.0;
        if (pk <= pos) {
            let kb = (pk * p.kd + g * p.hdk) / 2u;
            for (var i = 0u; i < p.hdk / 2u; i = i + 1u) {
                let kv = unpack2x16float(kc[kb + i]);
                s = s + qs[2u * i] * kv.x + qs[2u * i + 1u] * kv.y;
            }
            s = s * p.scale;
        }
        sc[lid] = s;
        workgroupBarrier();
        let cnt = min(WG, pos + 1u - ts);
        for (var j = 0u; j < cnt; j = j + 1u) {
            let s = sc[j];
            var ms = 1.0;
            var vs = 1.0;
            if (!have || s > mx) {
                ms = select(exp(mx - s), 0.0, !have);
                mx = s;
                have = true;
                for (var k = 0u; k < MAXD; k = k + 1u) {
                    acc[k] = to_acc(f32(acc[k]) * ms);
                }
            } else {
                vs = exp(s - mx);
            }
            let vb = (ts + j) * p.vd + g * p.hdv;
            for (var k = 0u; k < MAXD; k = k + 1u) {
                let d = lid + k * WG;
                if (d < p.hdv) {
                    let pair = unpack2x16float(vc[(vb + d) / 2u]);
                    let v = select(pair.x, pair.y, (d & 1u) == 1u);
                    acc[k] = to_acc(fma(v, vs, f32(acc[k])));
                }
            }
            sum = sum * ms + vs;
        }
        workgroupBarrier();
    }
    var inv = 0.0;
    if (sum != 0.0) {
        inv = 1.0 / sum;
    }
    for (var k = 0u; k < MAXD; k = k + 1u) {
        let d = lid + k * WG;
        if (d < p.hdv) {
            a[p.o_off + idx * p.hdv + d] = f32(acc[k]) * inv;
        }
    }
}

// Shared by attn_attend.wgsl and attn_tiled.wgsl: parameters, bindings, cache readers,
// the window start and the softmax divide.
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
    pre: f32,
    post: f32,
    kd: u32,
    vd: u32,
    lanes: u32,
    gx: u32,
    zero: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<u32>;
@group(0) @binding(3) var<storage, read> vc: array<u32>;

const AWG: u32 = 64u;
const AMAXD: u32 = 256u;
const APER: u32 = AMAXD / AWG;

var<workgroup> qs: array<f32, AMAXD>;
var<workgroup> sc: array<f32, AWG>;
var<workgroup> msv: array<f32, AWG>;
var<workgroup> vsv: array<f32, AWG>;

fn k_at(i: u32) -> f32 {
    let w = kc[i >> 1u];
    return f16_value(select(w & 0xffffu, w >> 16u, (i & 1u) == 1u));
}

fn v_at(i: u32) -> f32 {
    let w = vc[i >> 1u];
    return f16_value(select(w & 0xffffu, w >> 16u, (i & 1u) == 1u));
}

// a / b rounded to nearest even (a, b > 0 and the quotient normal): div_rn's
// candidate, moved while a neighbour has a smaller exact residual (a guard that
// costs three fma_rn once per row).
fn at_div(a: f32, b: f32) -> f32 {
    var q = div_rn(a, b);
    for (var it = 0; it < 3; it = it + 1) {
        let r = fma_rn(-q, b, a);
        if (r == 0.0) {
            break;
        }
        let qb = bitcast<u32>(q);
        let n = bitcast<f32>(select(qb - 1u, qb + 1u, r > 0.0));
        let rn = abs(fma_rn(-n, b, a));
        if (rn < abs(r) || (rn == abs(r) && (bitcast<u32>(n) & 1u) == 0u)) {
            q = n;
        } else {
            break;
        }
    }
    return q;
}

// The first cache position the query at `pos` sees (its sliding window, or 0).
fn first_visible(pos: u32) -> u32 {
    if (p.window > 0u && pos + 1u > p.window) {
        return pos + 1u - p.window;
    }
    return 0u;
}

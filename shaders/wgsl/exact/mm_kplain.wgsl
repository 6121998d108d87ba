// K-quant weights (DT: 0 Q4_K, 1 Q6_K) × Q8_K activations in the lane order of the
// AVX2 `vec_dot`s (kernels/src/kquants/q4k.rs, q6k.rs x86): per super-block, lane l
// (0..8) gets an exact integer (the i32 lane l of the kernel), folded into its f32
// chain by one FMA; the lanes end in `hsum_ps` (Q4_K: minus the mins' `hsum_ps`).
// Workgroup: 8 rows × 8 lanes.

var<workgroup> part: array<f32, 64>;
var<workgroup> partm: array<f32, 64>;

fn bsum(blk: u32, g: u32) -> i32 {
    return bitcast<i32>(a[p.ex + 16u * blk + g]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let l = lid & 7u;
    let r = (wid.x + wid.y * p.gx) * 8u + (lid >> 3u);
    let t = p.t0 + wid.z;
    let valid = r < p.rows;
    let nb = p.cols / 256u;
    var acc = 0.0;
    var accm = 0.0;
    if (valid) {
        for (var s = 0u; s < nb; s++) {
            let blk = t * nb + s;
            let da = bitcast<f32>(a[p.d + blk]);
            let ab = p.qs + t * (p.cols / 4u) + 64u * s + l;
            if (DT == 0u) {
                let wb = (r * nb + s) * 36u;
                let w0 = wt[wb];
                let w1 = wt[wb + 1u];
                let w2 = wt[wb + 2u];
                let w3 = wt[wb + 3u];
                var sumi = 0i;
                for (var j = 0u; j < 4u; j++) {
                    let q = wt[wb + 4u + 8u * j + l];
                    let sa = i32(k4_scale_min(w1, w2, w3, 2u * j).x);
                    let sb = i32(k4_scale_min(w1, w2, w3, 2u * j + 1u).x);
                    sumi += sa * dot4(q & 0x0f0f0f0fu, a[ab + 16u * j]);
                    sumi += sb * dot4((q >> 4u) & 0x0f0f0f0fu, a[ab + 16u * j + 8u]);
                }
                // Lane l of the mins: m_l times the two 16-element sums of sub-block l.
                let m = i32(k4_scale_min(w1, w2, w3, l).y);
                let pm = m * bsum(blk, 2u * l) + m * bsum(blk, 2u * l + 1u);
                acc = fma_rn(f16_value(w0 & 0xffffu) * da, f32(sumi), acc);
                accm = fma_rn(f16_value(w0 >> 16u) * da, f32(pm), accm);
            } else {
                let wb = (r * nb + s) * 53u;
                let sc0 = 48u + (2u * l) / 4u;
                var v = -32 * (bsum(blk, 2u * l) * sbyte(wt[wb + sc0], (2u * l) & 3u)
                    + bsum(blk, 2u * l + 1u) * sbyte(wt[wb + sc0], (2u * l + 1u) & 3u));
                let hi = select(0u, 1u, l >= 4u);
                for (var h = 0u; h < 2u; h++) {
                    let qh = wt[wb + 32u + 8u * h + l];
                    for (var k = 0u; k < 4u; k++) {
                        let ql = wt[wb + 16u * h + 8u * (k & 1u) + l];
                        let q = ((ql >> (4u * (k >> 1u))) & 0x0f0f0f0fu)
                            | (((qh >> (2u * k)) & 0x03030303u) << 4u);
                        let si = 8u * h + 2u * k + hi;
                        let sc = sbyte(wt[wb + 48u + si / 4u], si & 3u);
                        v += sc * dot4(q, a[ab + 32u * h + 8u * k]);
                    }
                }
                acc = fma_rn(f16_value(wt[wb + 52u] & 0xffffu) * da, f32(v), acc);
            }
        }
    }
    part[lid] = acc;
    partm[lid] = accm;
    workgroupBarrier();
    if (valid && l == 0u) {
        let v = lid;
        var res = hsum8(part[v], part[v + 1u], part[v + 2u], part[v + 3u],
                        part[v + 4u], part[v + 5u], part[v + 6u], part[v + 7u]);
        if (DT == 0u) {
            res = res - hsum8(partm[v], partm[v + 1u], partm[v + 2u], partm[v + 3u],
                              partm[v + 4u], partm[v + 5u], partm[v + 6u], partm[v + 7u]);
        }
        a[p.y + t * p.ystride + p.row0 + r] = bitcast<u32>(res);
    }
}

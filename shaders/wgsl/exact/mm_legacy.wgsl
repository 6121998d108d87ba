// Legacy weights (DT: 0 Q4_0, 1 Q4_1, 2 Q5_0, 3 Q8_0) × Q8_0/Q8_1 activations in the
// order of kernels/src/legacy/avx2.rs: lane l (0..8) of a row holds the f32 chain
// acc_l = fma(d_w·d_a, Σ_{e=4l..4l+3} w_e·a_e, acc_l) over the blocks, then `hsum`
// (+ the Q4_1 minimums' scalar FMA chain). Workgroup: 8 rows × 8 lanes.

var<workgroup> part: array<f32, 64>;

fn bw() -> u32 {
    switch DT {
        case 2u: { return 6u; }
        case 3u: { return 9u; }
        default: { return 5u; }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lane = lid & 7u;
    let r = (wid.x + wid.y * p.gx) * 8u + (lid >> 3u);
    let t = p.t0 + wid.z;
    let valid = r < p.rows;
    let nb = p.cols / 32u;
    var acc = 0.0;
    var summs = 0.0;
    if (valid) {
        let wrow = r * nb * bw();
        let arow = p.qs + t * (p.cols / 4u) + lane;
        let drow = t * nb;
        for (var b = 0u; b < nb; b++) {
            let wb = wrow + b * bw();
            let w0 = wt[wb];
            let qa = a[arow + 8u * b];
            let da = bitcast<f32>(a[p.d + drow + b]);
            var isum: i32;
            switch DT {
                case 0u: {
                    let q = (wt[wb + 1u + (lane & 3u)] >> (4u * (lane >> 2u))) & 0x0f0f0f0fu;
                    isum = dot4(bias_bytes(q, 8u), qa);
                }
                case 1u: {
                    let q = (wt[wb + 1u + (lane & 3u)] >> (4u * (lane >> 2u))) & 0x0f0f0f0fu;
                    isum = dot4(q, qa);
                    // min_chain: summs = fma(m_b, s_b, summs) in block order.
                    summs = fma_rn(f16_value(w0 >> 16u), bitcast<f32>(a[p.ex + drow + b]), summs);
                }
                case 2u: {
                    var q = (wt[wb + 2u + (lane & 3u)] >> (4u * (lane >> 2u))) & 0x0f0f0f0fu;
                    let h = (wt[wb + 1u] >> (4u * lane)) & 15u;
                    q |= ((h & 1u) | ((h & 2u) << 7u) | ((h & 4u) << 14u) | ((h & 8u) << 21u)) << 4u;
                    isum = dot4(bias_bytes(q, 16u), qa);
                }
                default: {
                    isum = dot4(wt[wb + 1u + lane], qa);
                }
            }
            // d_w·d_a is exact (two 11-bit significands), as the CPU's product.
            acc = fma_rn(f16_value(w0 & 0xffffu) * da, f32(isum), acc);
        }
    }
    part[lid] = acc;
    workgroupBarrier();
    if (valid && lane == 0u) {
        let v = lid;
        let s = hsum8(part[v], part[v + 1u], part[v + 2u], part[v + 3u],
                      part[v + 4u], part[v + 5u], part[v + 6u], part[v + 7u]);
        a[p.y + t * p.ystride + p.row0 + r] = bitcast<u32>(s + summs);
    }
}

// K-quant products whose f32 work is one scalar FMA chain per row (MODE 0: Q6_K
// in llama.cpp's tiled order `vec_dot_tiled_ref`; 1: repacked Q4_K gemv; 2: its
// gemm, `q4k_repacked::dot_ref`). Integer totals are exact in any order, so the 8
// lanes of a row each take one super-block of a run of 8 into workgroup memory;
// then lane 0 runs the chain over the run. Workgroup: 8 rows × 8 lanes.

// Per invocation 8 integers: Q4_K the 4 pair sums then the 4 pair mins; Q6_K one total.
var<workgroup> tot: array<i32, 512>;

fn bsum(blk: u32, g: u32) -> i32 {
    return bitcast<i32>(a[p.ex + 16u * blk + g]);
}

// Q6_K super-block s of row r times token t: Σ_g sc_g Σ (q - 32)·a.
fn q6_total(r: u32, s: u32, t: u32, nb: u32) -> i32 {
    let wb = (r * nb + s) * 53u;
    let blk = t * nb + s;
    let ab = p.qs + t * (p.cols / 4u) + 64u * s;
    var v = 0i;
    for (var g = 0u; g < 16u; g++) {
        v -= 32 * bsum(blk, g) * sbyte(wt[wb + 48u + g / 4u], g & 3u);
    }
    for (var h = 0u; h < 2u; h++) {
        for (var k = 0u; k < 4u; k++) {
            var s0 = 0i;
            var s1 = 0i;
            for (var l = 0u; l < 8u; l++) {
                let qh = wt[wb + 32u + 8u * h + l];
                let ql = wt[wb + 16u * h + 8u * (k & 1u) + l];
                let q = ((ql >> (4u * (k >> 1u))) & 0x0f0f0f0fu)
                    | (((qh >> (2u * k)) & 0x03030303u) << 4u);
                let d = dot4(q, a[ab + 32u * h + 8u * k + l]);
                if (l < 4u) {
                    s0 += d;
                } else {
                    s1 += d;
                }
            }
            let si = 8u * h + 2u * k;
            v += sbyte(wt[wb + 48u + si / 4u], si & 3u) * s0
                + sbyte(wt[wb + 48u + (si + 1u) / 4u], (si + 1u) & 3u) * s1;
        }
    }
    return v;
}

// Q4_K super-block s: per pair k of sub-blocks, Σ sc_j·dot_j into tot[o + k] and
// Σ m_j·bsum_j into tot[o + 4 + k].
fn q4_totals(r: u32, s: u32, t: u32, nb: u32, o: u32) {
    let wb = (r * nb + s) * 36u;
    let blk = t * nb + s;
    let ab = p.qs + t * (p.cols / 4u) + 64u * s;
    let w1 = wt[wb + 1u];
    let w2 = wt[wb + 2u];
    let w3 = wt[wb + 3u];
    for (var k = 0u; k < 4u; k++) {
        let sma = k4_scale_min(w1, w2, w3, 2u * k);
        let smb = k4_scale_min(w1, w2, w3, 2u * k + 1u);
        var da = 0i;
        var db = 0i;
        for (var l = 0u; l < 8u; l++) {
            let q = wt[wb + 4u + 8u * k + l];
            da += dot4(q & 0x0f0f0f0fu, a[ab + 16u * k + l]);
            db += dot4((q >> 4u) & 0x0f0f0f0fu, a[ab + 16u * k + 8u + l]);
        }
        tot[o + k] = i32(sma.x) * da + i32(smb.x) * db;
        tot[o + 4u + k] = i32(sma.y) * (bsum(blk, 4u * k) + bsum(blk, 4u * k + 1u))
            + i32(smb.y) * (bsum(blk, 4u * k + 2u) + bsum(blk, 4u * k + 3u));
    }
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
    for (var c = 0u; c < nb; c += 8u) {
        let s = c + l;
        if (valid && s < nb) {
            if (MODE == 0u) {
                tot[8u * lid] = q6_total(r, s, t, nb);
            } else {
                q4_totals(r, s, t, nb, 8u * lid);
            }
        }
        workgroupBarrier();
        if (valid && l == 0u) {
            for (var i = 0u; i < min(8u, nb - c); i++) {
                let sb = c + i;
                let o = 8u * (lid + i);
                let da = bitcast<f32>(a[p.d + t * nb + sb]);
                if (MODE == 0u) {
                    let dw = f16_value(wt[(r * nb + sb) * 53u + 52u] & 0xffffu);
                    acc = fma_rn(dw * f32(tot[o]), da, acc);
                } else {
                    let w0 = wt[(r * nb + sb) * 36u];
                    let scale = f16_value(w0 & 0xffffu) * da;
                    let scale_min = f16_value(w0 >> 16u) * da;
                    if (MODE == 1u) {
                        acc = fma_rn(f32(tot[o] + tot[o + 1u] + tot[o + 2u] + tot[o + 3u]), scale, acc);
                        accm = fma_rn(f32(tot[o + 4u] + tot[o + 5u] + tot[o + 6u] + tot[o + 7u]),
                                   scale_min, accm);
                    } else {
                        for (var k = 0u; k < 4u; k++) {
                            acc = fma_rn(f32(tot[o + k]), scale, acc);
                            accm = fma_rn(f32(tot[o + 4u + k]), scale_min, accm);
                        }
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (valid && l == 0u) {
        a[p.y + t * p.ystride + p.row0 + r] = bitcast<u32>(acc - accm);
    }
}

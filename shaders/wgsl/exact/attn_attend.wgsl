// Attention of one (token, head) per workgroup with the bits of engine
// `attention::attend` (llama.cpp's CPU flash attention for batches under 64 rows):
// q rounded to f16; scores by ggml_vec_dot_f16's lane order for the build
// (`lanes` = 8 for AVX2, 16 for AVX-512); online softmax in key order with glibc
// expf; Σ softmax·V kept in f16, rounded after every update; out = acc · (1/sum).
// A tile of AWG keys is scored in parallel (one key per thread); every thread then
// replays the tile in key order for its own output dimensions, so the sequence of
// roundings per dimension is the CPU's.

// ggml_vec_dot_f16(k row at kb, q): four accumulators per lane over steps of four
// vectors, reduced (0+2)+(1+3), then the build's horizontal sum. The host rejects
// head sizes that are not a multiple of the step (ggml's f64 leftovers). The
// f16×f16 products are exact in f32, so each FMA of the chain is one add.
fn score(kb: u32) -> f32 {
    let l = p.lanes;
    let step = 4u * l;
    var r: array<f32, 16>;
    for (var j = 0u; j < l; j = j + 1u) {
        var c0 = 0.0;
        var c1 = 0.0;
        var c2 = 0.0;
        var c3 = 0.0;
        for (var i = j; i < p.hdk; i = i + step) {
            c0 = c0 + k_at(kb + i) * qs[i];
            c1 = c1 + k_at(kb + i + l) * qs[i + l];
            c2 = c2 + k_at(kb + i + 2u * l) * qs[i + 2u * l];
            c3 = c3 + k_at(kb + i + 3u * l) * qs[i + 3u * l];
        }
        r[j] = (c0 + c2) + (c1 + c3);
    }
    var total: f32;
    if (l == 8u) {
        // _mm256 halves, then two hadds.
        total = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
    } else {
        // _mm512_reduce_add_ps: 512 → 256 → 128, then [0]+[2], [1]+[3].
        var t: array<f32, 4>;
        for (var i = 0u; i < 4u; i = i + 1u) {
            t[i] = (r[i + 12u] + r[i + 4u]) + (r[i + 8u] + r[i]);
        }
        total = (t[0] + t[2]) + (t[1] + t[3]);
    }
    return total * p.post;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    exf_z = p.zero;
    let idx = wid.x + wid.y * p.gx;
    if (idx >= p.ntok * p.n_head) {
        return;
    }
    let tok = idx / p.n_head;
    let g = (idx % p.n_head) / p.group;
    let pos = p.pos0 + tok;
    for (var i = lid; i < p.hdk; i = i + AWG) {
        qs[i] = round_f16(a[p.q_off + idx * p.hdk + i] * p.pre);
    }
    let start = first_visible(pos);
    var acc: array<f32, APER>;
    for (var k = 0u; k < APER; k = k + 1u) {
        acc[k] = 0.0;
    }
    // -inf, built at run time.
    var mx = bitcast<f32>(0xff800000u | (p.ntok & 0u));
    var sum = 0.0;
    workgroupBarrier();
    for (var ts = start; ts <= pos; ts = ts + AWG) {
        let cnt = min(AWG, pos + 1u - ts);
        if (lid < cnt) {
            sc[lid] = score((ts + lid) * p.kd + g * p.hdk);
        }
        workgroupBarrier();
        // Every thread runs the max chain; thread j keeps the max before key j.
        var prev = mx;
        for (var j = 0u; j < cnt; j = j + 1u) {
            if (j == lid) {
                prev = mx;
            }
            if (sc[j] > mx) {
                mx = sc[j];
            }
        }
        if (lid < cnt) {
            let s = sc[lid];
            if (s > prev) {
                msv[lid] = expf_glibc(prev - s);
                vsv[lid] = 1.0;
            } else {
                msv[lid] = 1.0;
                vsv[lid] = expf_glibc(s - prev);
            }
        }
        workgroupBarrier();
        for (var j = 0u; j < cnt; j = j + 1u) {
            let ms = msv[j];
            let vs = vsv[j];
            // A new maximum rescales (by exactly 1 it would change nothing).
            if (ms != 1.0) {
                for (var k = 0u; k < APER; k = k + 1u) {
                    acc[k] = round_f16(acc[k] * ms);
                }
            }
            let vb = (ts + j) * p.vd + g * p.hdv;
            for (var k = 0u; k < APER; k = k + 1u) {
                let d = lid + k * AWG;
                if (d < p.hdv) {
                    acc[k] = round_f16(fma_rn(v_at(vb + d), vs, acc[k]));
                }
            }
            sum = fma_rn(sum, ms, vs);
        }
        workgroupBarrier();
    }
    var inv = 0.0;
    if (sum != 0.0) {
        inv = at_div(1.0, sum);
    }
    for (var k = 0u; k < APER; k = k + 1u) {
        let d = lid + k * AWG;
        if (d < p.hdv) {
            a[p.o_off + idx * p.hdv + d] = acc[k] * inv;
        }
    }
}

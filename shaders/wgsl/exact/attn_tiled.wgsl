// Attention of one (token, head) per workgroup with the bits of engine
// `attention::attend_tiled` (llama.cpp's tiled CPU flash attention, batches of 64+
// rows): q·pre kept in f32; per tile of 64 keys, scores as one fused chain per key
// over the head dimension; the tile max; a rescale by glibc expf when the max grows;
// p = ggml_v_expf(s − max) of the build (`lanes` 8: AVX2, 16: AVX-512); the tile's
// sum as its vector code adds it (per-vector horizontal sums, accumulated in f64,
// emulated here with integers); Σ p·V accumulated in f32 with fused steps.

var<workgroup> pv: array<f32, AWG>;

// ---- ggml_v_expf, one lane ----

fn ve_scale(j: f32, n: i32) -> f32 {
    // j · 2^n rounded once (AVX-512's scalef); j is in [0.7, 1.5].
    if (n >= -125) {
        let na = n / 2;
        return j * exf_p2(na) * exf_p2(n - na);
    }
    let m = j * exf_p2(n + 149);
    let fl = floor(m);
    let fr = m - fl;
    let c = u32(fl);
    let up = fr > 0.5 || (fr == 0.5 && (c & 1u) == 1u);
    return bitcast<f32>(c + select(0u, 1u, up));
}

fn v_expf(x: f32) -> f32 {
    let z = fma_rn(x, bitcast<f32>(0x3fb8aa3bu), 12582912.0);
    let n = z - 12582912.0;
    let b = fma_rn(-n, bitcast<f32>(0x35bfbe8eu), fma_rn(-n, bitcast<f32>(0x3f317200u), x));
    let u = b * b;
    let poly = fma_rn(
        fma_rn(bitcast<f32>(0x3c072010u), b, bitcast<f32>(0x3d2b9f17u)),
        u,
        fma_rn(bitcast<f32>(0x3e2aaf33u), b, bitcast<f32>(0x3efffedbu)),
    );
    let c1 = bitcast<f32>(0x3f7ffff6u);
    if (p.lanes == 16u) {
        let j = fma_rn(poly, u, fma_rn(c1, b, 1.0));
        if (abs(n) > 192.0) {
            return select(bitcast<f32>(0x7f800000u | exf_z), 0.0, n <= 0.0);
        }
        return ve_scale(j, i32(n));
    }
    let j = fma_rn(poly, u, c1 * b);
    let e = bitcast<u32>(z) << 23u;
    if (abs(n) <= 126.0) {
        let k = bitcast<f32>(e + 0x3f800000u);
        return fma_rn(k, j, k);
    }
    let g = select(0u, 0x82000000u, n <= 0.0);
    let s1 = bitcast<f32>(g + 0x7f000000u);
    let s2 = bitcast<f32>(e - g);
    if (abs(n) > 192.0) {
        return s1 * s1;
    }
    return fma_rn(s2, j, s2) * s1;
}

// ---- non-negative f64 values from integers: m · 2^e, m = 0 or its top bit at 62 ----

struct D {
    m: vec2<u32>,
    e: i32,
}

fn d_of(x: f32) -> D {
    let b = bitcast<u32>(x) & 0x7fffffffu;
    let ex = b >> 23u;
    let f = select((b & 0x7fffffu) | 0x800000u, b & 0x7fffffu, ex == 0u);
    if (f == 0u) {
        return D(vec2<u32>(0u, 0u), 0);
    }
    let sh = 62u - firstLeadingBit(f);
    return D(u64_shl(vec2<u32>(f, 0u), sh), i32(max(ex, 1u)) - 150 - i32(sh));
}

// a + b rounded to 53 bits, to nearest even.
fn d_add(a: D, b: D) -> D {
    if ((a.m.x | a.m.y) == 0u) {
        return b;
    }
    if ((b.m.x | b.m.y) == 0u) {
        return a;
    }
    var big = a;
    var small = b;
    if (a.e < b.e) {
        big = b;
        small = a;
    }
    var s = u64_add(big.m, u64_shr_sticky(small.m, u32(min(big.e - small.e, 64))));
    var e = big.e;
    if (u64_msb(s) == 63) {
        s = u64_shr_sticky(s, 1u);
        e = e + 1;
    }
    let low = s.x & 0x3ffu;
    s.x = s.x & 0xfffffc00u;
    if (low > 0x200u || (low == 0x200u && (s.x & 0x400u) != 0u)) {
        s = u64_add(s, vec2<u32>(0x400u, 0u));
        if (u64_msb(s) == 63) {
            s = u64_shr(s, 1u);
            e = e + 1;
        }
    }
    return D(s, e);
}

// To f32, to nearest even (normal results).
fn d_f32(a: D) -> f32 {
    if ((a.m.x | a.m.y) == 0u) {
        return 0.0;
    }
    var mant = a.m.y >> 7u;
    let rem = vec2<u32>(a.m.x, a.m.y & 0x7fu);
    let half = (rem.y & 0x40u) != 0u;
    let sticky = rem.x != 0u || (rem.y & 0x3fu) != 0u;
    var e = a.e + 189;
    if (half && (sticky || (mant & 1u) == 1u)) {
        mant = mant + 1u;
        if (mant == 0x1000000u) {
            mant = mant >> 1u;
            e = e + 1;
        }
    }
    return bitcast<f32>((u32(e) << 23u) | (mant & 0x7fffffu));
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
        qs[i] = a[p.q_off + idx * p.hdk + i] * p.pre;
    }
    let first = first_visible(pos);
    var o: array<f32, APER>;
    for (var k = 0u; k < APER; k = k + 1u) {
        o[k] = 0.0;
    }
    let ninf = bitcast<f32>(0xff800000u | exf_z);
    var m = ninf;
    var sum = 0.0;
    workgroupBarrier();
    for (var ic = 0u; ic <= pos; ic = ic + AWG) {
        if (ic + AWG - 1u < first) {
            continue;
        }
        let c = ic + lid;
        var s = ninf;
        if (c >= first && c <= pos) {
            let kb = c * p.kd + g * p.hdk;
            var acc = 0.0;
            for (var e = 0u; e < p.hdk; e = e + 1u) {
                acc = fma_rn(qs[e], k_at(kb + e), acc);
            }
            // s·scale + 0.0: the + 0.0 turns −0 into +0.
            let t = acc * p.post;
            s = select(t, 0.0, t == 0.0);
        }
        sc[lid] = s;
        workgroupBarrier();
        var tmax = ninf;
        for (var j = 0u; j < AWG; j = j + 1u) {
            let v = sc[j];
            tmax = select(v, tmax, tmax > v);
        }
        let m_new = max(m, tmax);
        if (m_new > m) {
            let ms = expf_glibc(m - m_new);
            for (var k = 0u; k < APER; k = k + 1u) {
                o[k] = o[k] * ms;
            }
            sum = sum * ms;
        }
        m = m_new;
        // Masked keys: ggml_v_expf(−inf) = 0 in both builds.
        pv[lid] = select(0.0, v_expf(s - m), c >= first && c <= pos);
        workgroupBarrier();
        var ts = D(vec2<u32>(0u, 0u), 0);
        for (var ch = 0u; ch < AWG; ch = ch + p.lanes) {
            var h: f32;
            if (p.lanes == 8u) {
                let t0 = pv[ch + 4u] + pv[ch];
                let t1 = pv[ch + 5u] + pv[ch + 1u];
                let t2 = pv[ch + 6u] + pv[ch + 2u];
                let t3 = pv[ch + 7u] + pv[ch + 3u];
                h = (t0 + t2) + (t1 + t3);
            } else {
                var w: array<f32, 4>;
                for (var l = 0u; l < 4u; l = l + 1u) {
                    w[l] = (pv[ch + l + 12u] + pv[ch + l + 4u]) + (pv[ch + l + 8u] + pv[ch + l]);
                }
                h = (w[0] + w[2]) + (w[1] + w[3]);
            }
            ts = d_add(ts, d_of(h));
        }
        sum = d_f32(d_add(d_of(sum), ts));
        for (var j = 0u; j < AWG; j = j + 1u) {
            let cj = ic + j;
            let pj = pv[j];
            if (cj >= first && cj <= pos && pj != 0.0) {
                let vb = cj * p.vd + g * p.hdv;
                for (var k = 0u; k < APER; k = k + 1u) {
                    let d = lid + k * AWG;
                    if (d < p.hdv) {
                        o[k] = fma_rn(pj, v_at(vb + d), o[k]);
                    }
                }
            }
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
            a[p.o_off + idx * p.hdv + d] = o[k] * inv;
        }
    }
}

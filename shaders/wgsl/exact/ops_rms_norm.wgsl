// Exact RMSNorm (kernels::ops::rms_norm / rms_norm_inplace): one workgroup per row.
// The CPU sums the f32 squares in f64 in order, divides by n in f64 and rounds to
// f32. Here the squares are summed in double-float (error < 2^-42 relative, a
// deterministic tree) and divided by n; where that mean lies within 2^-38 of an f32
// rounding midpoint (about one row in 10^4), or when asked (`force_f64`, for tests),
// thread 0 redoes the CPU's f64 sum and division step for step in integer arithmetic.
// Then 1/sqrt(mean + eps) and (x·scale)·w, correctly rounded.
struct P {
    rows: u32,
    n: u32,
    x: u32,
    y: u32,
    has_w: u32,
    eps: f32,
    gx: u32,
    zero: u32,
    force_f64: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;

const RWG: u32 = 128u;
var<workgroup> part: array<vec2<f32>, RWG>;
var<workgroup> scale_sh: f32;

// A non-negative f64 as m·2^e, m < 2^54 (two u32 words, math.wgsl's u64 helpers).
struct OpsF64 {
    m: vec2<u32>,
    e: i32,
}

// RN64(acc + t) for t >= 0: both in a 64-bit window with the larger's top bit at
// 61, the smaller shifted with a sticky bit, then rounded to 53 bits, ties to even.
fn ops_f64_add(acc: OpsF64, t: f32) -> OpsF64 {
    let tb = bitcast<u32>(t) & 0x7fffffffu;
    if (tb == 0u) {
        return acc;
    }
    var tm = tb & 0x7fffffu;
    var te = -149;
    if ((tb >> 23u) != 0u) {
        tm = tm | 0x800000u;
        te = i32(tb >> 23u) - 150;
    }
    let tk = i32(firstLeadingBit(tm));
    if ((acc.m.x | acc.m.y) == 0u) {
        return OpsF64(u64_shl(vec2<u32>(tm, 0u), u32(52 - tk)), te - (52 - tk));
    }
    let ak = u64_msb(acc.m);
    var big = u64_shl(acc.m, u32(61 - ak));
    var eb = acc.e - (61 - ak);
    var small = u64_shl(vec2<u32>(tm, 0u), u32(61 - tk));
    var es = te - (61 - tk);
    if (es > eb) {
        let m = big;
        big = small;
        small = m;
        let e = eb;
        eb = es;
        es = e;
    }
    let s = u64_add(big, u64_shr_sticky(small, u32(min(eb - es, 64))));
    let r = u32(u64_msb(s) - 52);
    let m2 = u64_shr(s, r - 1u);
    var m = u64_shr(m2, 1u);
    if ((m2.x & 1u) != 0u && (u64_lost(s, r - 1u) || (m.x & 1u) != 0u)) {
        m = u64_add(m, vec2<u32>(1u, 0u));
    }
    return OpsF64(m, eb + i32(r));
}

// f32(RN64(acc / n)) as the CPU's `(sum / n as f64) as f32`: long division to 55
// quotient bits and a sticky remainder, rounded to 53 bits, then to 24.
fn ops_f64_mean(acc: OpsF64, n: u32, fallback: f32) -> f32 {
    if ((acc.m.x | acc.m.y) == 0u) {
        return 0.0;
    }
    var r = 0u;
    var q = vec2<u32>(0u, 0u);
    var d = 0;
    loop {
        var bit = 0u;
        if (d < 54) {
            let pos = u32(53 - d);
            bit = select((acc.m.x >> pos) & 1u, (acc.m.y >> (pos - 32u)) & 1u, pos >= 32u);
        }
        r = (r << 1u) | bit;
        q = u64_shl(q, 1u);
        if (r >= n) {
            r = r - n;
            q.x = q.x | 1u;
        }
        d = d + 1;
        // q >= 2^54: 55 quotient bits; acc/n = (q + r/n)·2^(e + 54 - d).
        if (q.y >= 0x400000u) {
            break;
        }
    }
    var m = u64_shr(q, 2u);
    if ((q.x & 2u) != 0u && ((q.x & 1u) != 0u || r != 0u || (m.x & 1u) != 0u)) {
        m = u64_add(m, vec2<u32>(1u, 0u));
    }
    let drop = u32(u64_msb(m) - 23);
    let m2 = u64_shr(m, drop - 1u);
    var m24 = m2.x >> 1u;
    if ((m2.x & 1u) != 0u && (u64_lost(m, drop - 1u) || (m24 & 1u) != 0u)) {
        m24 = m24 + 1u;
    }
    // The mean is m24·2^ex with m24 in [2^23, 2^24].
    var ex = acc.e + 56 - d + i32(drop);
    if (m24 == 0x1000000u) {
        m24 = 0x800000u;
        ex = ex + 1;
    }
    let be = ex + 150;
    if (be <= 0 || be >= 255) {
        // Subnormal or infinite means (|x| < 1e-19 or > 1e19 throughout): not
        // rebuilt here.
        return fallback;
    }
    return bitcast<f32>((u32(be) << 23u) | (m24 & 0x7fffffu));
}

@compute @workgroup_size(RWG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    vexpf_zero = p.zero;
    let row = wid.x + wid.y * p.gx;
    if (row >= p.rows) {
        return;
    }
    let xb = p.x + row * p.n;
    let yb = p.y + row * p.n;
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < p.n; i = i + RWG) {
        let v = a[xb + i];
        // The f32 square, kept out of any contraction with the add.
        let t = vexpf_mul(v, v);
        let s = ops_two_sum(acc.x, t);
        let e = acc.y + s.y;
        let h = vexpf_opaque(s.x + e);
        acc = vec2<f32>(h, e - (h - s.x));
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var stride = RWG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            part[lid] = ops_dd_add(part[lid], part[lid + stride]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let sum = part[0];
        let nf = f32(p.n);
        let q1 = div_rn(sum.x, nf);
        // sum.x - q1·n is exact; the rest of the quotient is a small correction.
        let r = fma_rn(-q1, nf, sum.x);
        let q2 = (r + sum.y) / nf;
        var mean = vexpf_opaque(q1 + q2);
        // Distance of q1 + q2 from the f32 rounding midpoint on its side of `mean`.
        let t = ops_two_sum(q1, -mean);
        let off = t.x + (t.y + q2);
        let mb = bitcast<u32>(mean);
        let ulp = select(bitcast<f32>(mb + 1u) - mean, mean - bitcast<f32>(mb - 1u), off < 0.0);
        if (p.force_f64 != 0u || 0.5 * ulp - abs(off) < mean * 3.637978807e-12) {
            var acc = OpsF64(vec2<u32>(0u, 0u), 0);
            for (var i = 0u; i < p.n; i = i + 1u) {
                let v = a[xb + i];
                acc = ops_f64_add(acc, v * v);
            }
            mean = ops_f64_mean(acc, p.n, mean);
        }
        scale_sh = div_rn(1.0, sqrt_rn(mean + p.eps));
    }
    let scale = workgroupUniformLoad(&scale_sh);
    for (var i = lid; i < p.n; i = i + RWG) {
        var v = a[xb + i] * scale;
        if (p.has_w != 0u) {
            v = v * w[i];
        }
        a[yb + i] = v;
    }
}

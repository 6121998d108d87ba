// glibc's `expf` (2.36, x86-64 FMA build; the routine Rust's f32::exp calls), bit for
// bit. glibc evaluates in double: k = round(x·32/ln2), r = x·32/ln2 − k (one fused
// rounding), y = fma(fma(C0, r, C1), r², fma(r, C2, 1)), then y·2^(k/32) rounded to
// float. Its result is not always the correctly rounded exp, so the same formula is
// evaluated here in double-float (pairs of f32 joined by exact Dekker/two-sum steps,
// ~2^-48 relative) and rounded once; it could differ from glibc only where glibc's
// double lies within ~2^-50 of a float rounding midpoint. A CPU mirror of this code
// (same f32 operations) checked every float in [-110, 89] against f32::exp: one
// such input exists, patched below; beyond that range the special cases rule.
// The constants EXF_* (f32 bit patterns) are generated on the host (attn.rs).
// Callers must set exf_z (below) to a run-time 0 first.

// A run-time zero that the including shader copies from its uniform (`zero`) before
// calling expf_glibc. Values passed through exf_o are opaque to the compiler:
// naga emits no `NoContraction`/exact marks, so Mesa's NIR applies inexact algebra
// such as (a + b) − a → b, which turns every error-free transformation into 0.
var<private> exf_z: u32;

fn exf_o(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ exf_z);
}

fn exf_two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = exf_o(a + b);
    let bb = exf_o(s - a);
    return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

// |a| >= |b| (or a == 0).
fn exf_fast(a: f32, b: f32) -> vec2<f32> {
    let s = exf_o(a + b);
    return vec2<f32>(s, b - (s - a));
}

// a = hi + lo with hi rounded to 12 significant bits (integer ops, so no
// contraction can touch it): Dekker's split.
fn exf_split(a: f32) -> vec2<f32> {
    let h = bitcast<f32>((bitcast<u32>(a) + 0x800u) & 0xfffff000u);
    return vec2<f32>(h, exf_o(a - h));
}

// a·b exactly as hi + lo (Dekker): cheaper than fma_rn's emulation where fma is
// not fused (lavapipe), and the partial products are exact, so a driver that
// contracts them changes nothing.
fn exf_two_prod(a: f32, b: f32) -> vec2<f32> {
    let p = exf_o(a * b);
    let x = exf_split(a);
    let y = exf_split(b);
    let hh = exf_o(x.x * y.x);
    let hl = exf_o(x.x * y.y);
    let lh = exf_o(x.y * y.x);
    return vec2<f32>(p, (((hh - p) + hl) + lh) + x.y * y.y);
}

fn exf_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let p = exf_two_prod(a.x, b.x);
    return exf_fast(p.x, p.y + (a.x * b.y + a.y * b.x));
}

fn exf_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = exf_two_sum(a.x, b.x);
    return exf_fast(s.x, s.y + (a.y + b.y));
}

// 2^e for a normal exponent (-126 <= e <= 127).
fn exf_p2(e: i32) -> f32 {
    return bitcast<f32>(u32(e + 127) << 23u);
}

fn exf_pair(i: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(EXF_C[i]), bitcast<f32>(EXF_C[i + 1u]));
}

fn expf_glibc(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    let top = (b >> 20u) & 0x7ffu;
    if (top >= 0x42bu) {
        // |x| >= 88, inf or NaN: glibc's special cases, on the bits.
        if (b == 0xff800000u) {
            return 0.0;
        }
        if (top >= 0x7f8u) {
            return bitcast<f32>(select(b, b | 0x400000u, (b & 0x7fffffu) != 0u));
        }
        if (b < 0x80000000u && b > 0x42b17217u) {
            return bitcast<f32>((b & 0u) | 0x7f800000u);
        }
        if (b > 0xc2cff1b4u) {
            return 0.0;
        }
    }
    if (b == 0x3e73ade2u) {
        // 0.237968: glibc's double is 2^-54 (relative) above the midpoint.
        return bitcast<f32>(0x3fa263bcu);
    }
    // x·InvLn2N exactly, as p1 + e1 + p2 + e2 + p3 (InvLn2N split in three f32).
    let i1 = bitcast<f32>(EXF_C[0]);
    let i2 = bitcast<f32>(EXF_C[1]);
    let i3 = bitcast<f32>(EXF_C[2]);
    let pe1 = exf_two_prod(x, i1);
    let p1 = pe1.x;
    let e1 = pe1.y;
    var k = round(p1);
    let t = p1 - k;
    let pe2 = exf_two_prod(x, i2);
    let p2 = pe2.x;
    let e2 = pe2.y;
    let p3 = x * i3;
    let a1 = exf_two_sum(t, e1);
    let a2 = exf_two_sum(a1.x, p2);
    var r = exf_fast(a2.x, ((a1.y + a2.y) + e2) + p3);
    // k = round-half-even of the exact product; |r| <= 1/2.
    let odd = (i32(k) & 1) != 0;
    if (r.x > 0.5 || (r.x == 0.5 && (r.y > 0.0 || (r.y == 0.0 && odd)))) {
        k = k + 1.0;
        r = exf_fast(r.x - 1.0, r.y);
    } else if (r.x < -0.5 || (r.x == -0.5 && (r.y < 0.0 || (r.y == 0.0 && odd)))) {
        k = k - 1.0;
        r = exf_fast(r.x + 1.0, r.y);
    }
    let z = exf_add(exf_mul(exf_pair(3u), r), exf_pair(5u));
    let r2 = exf_mul(r, r);
    // w = y − 1, kept apart from the 1 so that its low bits survive.
    let w = exf_add(exf_mul(z, r2), exf_mul(exf_pair(7u), r));
    let ki = i32(k);
    let ti = u32(ki & 31) * 3u;
    let e = ki >> 5u;
    // 2^(i/32) as the double glibc tabulates, in three f32 parts.
    let th = bitcast<f32>(EXF_T[ti]);
    let tm = bitcast<f32>(EXF_T[ti + 1u]);
    let tl = bitcast<f32>(EXF_T[ti + 2u]);
    let q = exf_add(exf_mul(vec2<f32>(th, tm), w), vec2<f32>(tm, tl));
    // The value is th + q.x + q.y (·2^e): s rounds the first two, and q.y can only
    // matter where th + q.x is exactly halfway between s and its neighbour.
    let ss = exf_two_sum(th, q.x);
    let s = ss.x;
    let se = ss.y;
    let sb = bitcast<u32>(s);
    var half = bitcast<f32>((sb & 0x7f800000u) - (24u << 23u));
    if (se < 0.0 && (sb & 0x7fffffu) == 0u) {
        half = half * 0.5;
    }
    var v = s;
    if (abs(se) == half && q.y != 0.0 && (q.y > 0.0) == (se > 0.0)) {
        v = s + 2.0 * se;
    }
    let ea = e / 2;
    if (e >= -125) {
        return v * exf_p2(ea) * exf_p2(e - ea);
    }
    // Near or below 2^-126: count units of 2^-149 and round that count once.
    let mh = s * exf_p2(e + 149);
    if (mh >= 8388608.0) {
        return v * exf_p2(ea) * exf_p2(e - ea);
    }
    let fl = floor(mh);
    let fr = mh - fl;
    let below = select(q.y, se, se != 0.0);
    let n = u32(fl);
    let up = fr > 0.5 || (fr == 0.5 && (below > 0.0 || (below == 0.0 && (n & 1u) == 1u)));
    return bitcast<f32>(n + select(0u, 1u, up));
}

// !! fma() IS NOT FUSED on lavapipe (Mesa lowers it to a multiply and an add; measured
// in shaders/tests/exact_math.rs). Use fma_rn(a, b, c) everywhere the CPU fuses: it is the
// hardware fma where the adapter fuses (FMA_FUSED, probed at run time) and an exact
// integer emulation elsewhere.
//
// Correctly rounded f32 primitives for the llama.cpp-exact shaders. WGSL lets `/`,
// `sqrt` and the f16 conversions be approximate (Vulkan allows 2.5 ulp for a
// division), while llama.cpp's CPU results depend on IEEE rounding; these rebuild
// the IEEE result from an approximation with an exact FMA residual.

// a / b rounded to nearest even (finite, nonzero b; no overflow or underflow).
fn div_rn(a: f32, b: f32) -> f32 {
    if (a == 0.0) {
        // The residual below would lose the sign of a zero quotient.
        return a / b;
    }
    let y0 = 1.0 / b;
    let y = fma_rn(fma_rn(-b, y0, 1.0), y0, y0);
    let q = a * y;
    // a - b q is exact when q is within an ulp or two of a / b.
    return fma_rn(fma_rn(-b, q, a), y, q);
}

// sqrt(x) rounded to nearest (x >= 0, finite): the hardware root moved one ulp at a
// time until s² - x changes sign across the midpoints (exact residuals via fma_rn).
fn sqrt_rn(x: f32) -> f32 {
    if (x == 0.0) {
        return x;
    }
    var s = sqrt(x);
    for (var i = 0; i < 3; i = i + 1) {
        let su = bitcast<f32>(bitcast<u32>(s) + 1u);
        if (fma_rn(-s, su, x) > 0.0) {
            s = su;
        }
    }
    for (var i = 0; i < 3; i = i + 1) {
        let sd = bitcast<f32>(bitcast<u32>(s) - 1u);
        if (fma_rn(-sd, s, x) <= 0.0) {
            s = sd;
        }
    }
    return s;
}

// IEEE binary16 bits of x, rounded to nearest even (as F16C and the `half` crate).
fn f16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    if (a >= 0x477ff000u) {
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        let m = a - 0x38000000u;
        let r = m >> 13u;
        let rem = m & 0x1fffu;
        let up = rem > 0x1000u || (rem == 0x1000u && (r & 1u) == 1u);
        return sign | (r + select(0u, 1u, up));
    }
    // Subnormal half: a count of 2^-24 units (the scaling is exact), ties to even.
    return sign | u32(round(bitcast<f32>(a) * 16777216.0));
}

// The f32 value of binary16 bits (exact, subnormals included).
fn f16_value(h: u32) -> f32 {
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    var v: f32;
    if (e == 0u) {
        v = f32(m) * 5.9604644775390625e-8;
    } else if (e == 31u) {
        v = bitcast<f32>(0x7f800000u | (m << 13u));
    } else {
        v = bitcast<f32>(((e + 112u) << 23u) | (m << 13u));
    }
    return select(v, -v, (h & 0x8000u) != 0u);
}

// x rounded to the nearest f16, as f32.
fn round_f16(x: f32) -> f32 {
    return f16_value(f16_bits(x));
}

// ---- fma_rn: a*b + c with one rounding (IEEE fusedMultiplyAdd) ----

// 64-bit unsigned helpers on (lo, hi) pairs.
fn u64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn u64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn u64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn u64_shl(x: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return x;
    }
    if (s >= 64u) {
        return vec2<u32>(0u, 0u);
    }
    if (s >= 32u) {
        return vec2<u32>(0u, x.x << (s - 32u));
    }
    return vec2<u32>(x.x << s, (x.y << s) | (x.x >> (32u - s)));
}

fn u64_shr(x: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return x;
    }
    if (s >= 64u) {
        return vec2<u32>(0u, 0u);
    }
    if (s >= 32u) {
        return vec2<u32>(x.y >> (s - 32u), 0u);
    }
    return vec2<u32>((x.x >> s) | (x.y << (32u - s)), x.y >> s);
}

// Whether x has a nonzero bit below bit s.
fn u64_lost(x: vec2<u32>, s: u32) -> bool {
    if (s == 0u) {
        return false;
    }
    if (s >= 64u) {
        return (x.x | x.y) != 0u;
    }
    if (s >= 32u) {
        return x.x != 0u || (s > 32u && (x.y << (64u - s)) != 0u);
    }
    return (x.x << (32u - s)) != 0u;
}

// Right shift that keeps "something was shifted out" in bit 0 (sticky).
fn u64_shr_sticky(x: vec2<u32>, s: u32) -> vec2<u32> {
    let r = u64_shr(x, s);
    return vec2<u32>(r.x | select(0u, 1u, u64_lost(x, s)), r.y);
}

fn u64_msb(x: vec2<u32>) -> i32 {
    if (x.y != 0u) {
        return 32 + i32(firstLeadingBit(x.y));
    }
    if (x.x != 0u) {
        return i32(firstLeadingBit(x.x));
    }
    return -1;
}

// a * b for a, b < 2^24, exactly.
fn u64_mul24(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let mid = al * bh + ah * bl;
    return u64_add(vec2<u32>(al * bl, ah * bh), vec2<u32>(mid << 16u, mid >> 16u));
}

// IEEE fma from integer arithmetic: the exact product (48 bits) and addend aligned in
// a 64-bit window (the smaller one's shifted-out bits kept as a sticky bit), summed,
// then rounded to nearest even once, subnormal results included.
fn fma_soft(a: f32, b: f32, c: f32) -> f32 {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let uc = bitcast<u32>(c);
    let ea = (ua >> 23u) & 255u;
    let eb = (ub >> 23u) & 255u;
    let ec = (uc >> 23u) & 255u;
    if (ea == 255u || eb == 255u || ec == 255u) {
        return a * b + c;
    }
    let fa = ua & 0x7fffffu;
    let fb = ub & 0x7fffffu;
    let fc = uc & 0x7fffffu;
    if ((ea | fa) == 0u || (eb | fb) == 0u) {
        return a * b + c;
    }
    if ((ec | fc) == 0u) {
        return a * b;
    }
    let ma = select(fa | 0x800000u, fa, ea == 0u);
    let mb = select(fb | 0x800000u, fb, eb == 0u);
    let mc = select(fc | 0x800000u, fc, ec == 0u);
    // value = m * 2^(e - 150), subnormals at e = 1.
    var p = u64_mul24(ma, mb);
    let pm = u64_msb(p);
    p = u64_shl(p, u32(61 - pm));
    let ep = i32(max(ea, 1u)) + i32(max(eb, 1u)) - 300 - (61 - pm);
    let cm = i32(firstLeadingBit(mc));
    var q = u64_shl(vec2<u32>(mc, 0u), u32(61 - cm));
    let eq = i32(max(ec, 1u)) - 150 - (61 - cm);
    let sp = (ua ^ ub) & 0x80000000u;
    let sq = uc & 0x80000000u;
    // x: the operand of larger magnitude.
    let p_big = ep > eq || (ep == eq && !u64_lt(p, q));
    var x = select(q, p, p_big);
    var y = select(p, q, p_big);
    let ex = select(eq, ep, p_big);
    let ey = select(ep, eq, p_big);
    let sx = select(sq, sp, p_big);
    y = u64_shr_sticky(y, u32(min(ex - ey, 64)));
    var s: vec2<u32>;
    if (sp == sq) {
        s = u64_add(x, y);
    } else {
        s = u64_sub(x, y);
    }
    let k = u64_msb(s);
    if (k < 0) {
        return 0.0;
    }
    // Drop r bits: 24 significant bits, or fewer where the result is subnormal.
    let r = max(k - 23, -149 - ex);
    var mant: u32;
    if (r <= 0) {
        mant = u64_shl(s, u32(-r)).x;
    } else {
        let m2 = u64_shr(s, u32(r - 1));
        let half = (m2.x & 1u) != 0u;
        let sticky = u64_lost(s, u32(r - 1));
        mant = (m2.x >> 1u) | (m2.y << 31u);
        if (half && (sticky || (mant & 1u) != 0u)) {
            mant = mant + 1u;
        }
    }
    let eb_res = ex + r + 150;
    if (eb_res >= 255 || (eb_res - 1) * 8388608 + i32(mant) >= 0x7f800000) {
        return bitcast<f32>(sx | 0x7f800000u);
    }
    if (r > 63) {
        return bitcast<f32>(sx);
    }
    return bitcast<f32>(sx | ((u32(eb_res - 1) << 23u) + mant));
}

fn fma_rn(a: f32, b: f32, c: f32) -> f32 {
    if (FMA_FUSED) {
        return fma(a, b, c);
    }
    return fma_soft(a, b, c);
}

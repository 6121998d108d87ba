// Helpers shared by the ops_*.wgsl shaders (after math.wgsl and vexpf.wgsl, whose
// vexpf_opaque keeps the compiler from simplifying the error terms away).

// a + b = s + e exactly (Knuth's TwoSum; plain adds, nothing to contract).
fn ops_two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = vexpf_opaque(a + b);
    let bb = vexpf_opaque(s - a);
    return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

// Double-float sum (hi, lo) + (hi, lo), renormalised; ~2^-47 relative.
fn ops_dd_add(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    let s = ops_two_sum(x.x, y.x);
    let e = s.y + (x.y + y.y);
    let h = vexpf_opaque(s.x + e);
    return vec2<f32>(h, e - (h - s.x));
}

// Bits of the IEEE product a·b, subnormal results included (devices may flush
// them to zero; the CPU does not). Finite normal or zero inputs.
fn ops_mul_bits(a: f32, b: f32) -> u32 {
    let p = a * b;
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let ea = i32((ua >> 23u) & 255u);
    let eb = i32((ub >> 23u) & 255u);
    if (!(abs(p) <= 1.17549435e-38)) {
        return bitcast<u32>(p);
    }
    let sign = (ua ^ ub) & 0x80000000u;
    // Zero (or subnormal) factors: the sign of zero set explicitly.
    if (ea == 0 || eb == 0) {
        return sign | (bitcast<u32>(p) & 0x7fffffffu);
    }
    // |a·b| = ma·mb·2^(k - 149) with ma, mb in [1, 2): round ma·mb·2^k to an integer.
    let k = ea + eb - 105;
    if (k < -2) {
        return sign;
    }
    let ma = bitcast<f32>((ua & 0x7fffffu) | 0x3f800000u);
    let mb = bitcast<f32>((ub & 0x7fffffu) | 0x3f800000u);
    let ph = vexpf_opaque(ma * mb);
    let pl = fma_rn(ma, mb, -ph);
    let sc = bitcast<f32>(u32(k + 127) << 23u);
    let h = ph * sc;
    let l = pl * sc;
    let f = floor(h);
    let fr = h - f;
    let odd = (u32(f) & 1u) == 1u;
    let up = fr > 0.5 || (fr == 0.5 && (l > 0.0 || (l == 0.0 && odd)));
    return sign | (u32(f) + select(0u, 1u, up));
}

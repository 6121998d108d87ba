// Shared helpers. Prepended to every shader after the generated constants.

// Round an f32 to the nearest f16 and back, without shader-f16 (pack2x16float is core WGSL).
fn round16(x: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x;
}

// The low f16 of a word as f32.
fn f16lo(w: u32) -> f32 {
    return unpack2x16float(w).x;
}

fn f16hi(w: u32) -> f32 {
    return unpack2x16float(w).y;
}

// Byte `k` (0..3) of a word, unsigned.
fn byte_of(w: u32, k: u32) -> u32 {
    return (w >> (8u * k)) & 255u;
}

// Four bytes of a word as unsigned values.
fn u8x4(w: u32) -> vec4<u32> {
    return vec4<u32>(w & 255u, (w >> 8u) & 255u, (w >> 16u) & 255u, w >> 24u);
}

// Four bytes of a word as signed values.
fn i8x4(w: u32) -> vec4<f32> {
    let v = bitcast<i32>(w);
    return vec4<f32>(f32(extractBits(v, 0u, 8u)), f32(extractBits(v, 8u, 8u)),
                     f32(extractBits(v, 16u, 8u)), f32(extractBits(v, 24u, 8u)));
}

// tanh that stays finite for large arguments on every backend.
fn tanh_safe(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// Eight consecutive weights of a row.
struct W8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// Shared by the exact matrix-product shaders (`src/exact/mm.rs`).
// The arena is bound as words: activations are f32 bits, quantized activations
// packed int8 / f32 scales / i32 sums (layout in mm.rs).

// Σ of the four signed byte products of two words: exact, like one i32 lane of
// x86 `maddubs` + `madd` (its i16 pairs never saturate for these operands).
fn dot4(w: u32, x: u32) -> i32 {
    let a = bitcast<i32>(w);
    let b = bitcast<i32>(x);
    return extractBits(a, 0u, 8u) * extractBits(b, 0u, 8u)
        + extractBits(a, 8u, 8u) * extractBits(b, 8u, 8u)
        + extractBits(a, 16u, 8u) * extractBits(b, 16u, 8u)
        + extractBits(a, 24u, 8u) * extractBits(b, 24u, 8u);
}

// Bytes 0..15 (unsigned ≤ 127) minus `c` (8 or 16) each, as signed bytes: +128-c
// cannot carry out of a byte, and flipping the top bit subtracts 128.
fn bias_bytes(w: u32, c: u32) -> u32 {
    return (w + (0x80808080u - c * 0x01010101u)) ^ 0x80808080u;
}

// ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7)): the tree of x86 `hsum` / `hsum_ps`.
fn hsum8(v0: f32, v1: f32, v2: f32, v3: f32, v4: f32, v5: f32, v6: f32, v7: f32) -> f32 {
    return ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7));
}

// Byte k (0..11) of a Q4_K block's scales (GPU words 1..3 of the block at `b`).
fn k4_byte(w1: u32, w2: u32, w3: u32, k: u32) -> u32 {
    var w = w1;
    if (k >= 8u) {
        w = w3;
    } else if (k >= 4u) {
        w = w2;
    }
    return (w >> (8u * (k & 3u))) & 255u;
}

// ggml `get_scale_min_k4`: (scale, min) of sub-block j.
fn k4_scale_min(w1: u32, w2: u32, w3: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(k4_byte(w1, w2, w3, j) & 63u, k4_byte(w1, w2, w3, j + 4u) & 63u);
    }
    let b4 = k4_byte(w1, w2, w3, j + 4u);
    return vec2<u32>((b4 & 15u) | ((k4_byte(w1, w2, w3, j - 4u) >> 6u) << 4u),
                     (b4 >> 4u) | ((k4_byte(w1, w2, w3, j) >> 6u) << 4u));
}

// Signed byte k (0..3) of a word (Q6_K scales, Q8 quants).
fn sbyte(w: u32, k: u32) -> i32 {
    return extractBits(bitcast<i32>(w), 8u * k, 8u);
}

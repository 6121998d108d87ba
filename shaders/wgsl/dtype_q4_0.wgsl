// Q4_0 repacked to 5 words: [d f16, pad] [16 bytes of nibbles]. w = d (q - 8).
const BLOCK_LEN: u32 = 32u;
const BLOCK_WORDS: u32 = 5u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 4u;

fn load8(b: u32, c: u32) -> W8 {
    let d = f16lo(w[b]);
    let wi = b + 1u + (c & 1u) * 2u;
    let sh = vec4<u32>((c >> 1u) * 4u);
    let lo = vec4<f32>((u8x4(w[wi]) >> sh) & vec4<u32>(15u)) - 8.0;
    let hi = vec4<f32>((u8x4(w[wi + 1u]) >> sh) & vec4<u32>(15u)) - 8.0;
    return W8(lo * d, hi * d);
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

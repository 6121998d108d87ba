// Q5_0 repacked to 6 words: [d f16, pad] [qh: bit e = fifth bit of element e] [16 bytes of nibbles].
// w = d (q - 16).
const BLOCK_LEN: u32 = 32u;
const BLOCK_WORDS: u32 = 6u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 4u;

fn load8(b: u32, c: u32) -> W8 {
    let d = f16lo(w[b]);
    let qh = w[b + 1u] >> (8u * c);
    let wi = b + 2u + (c & 1u) * 2u;
    let sh = vec4<u32>((c >> 1u) * 4u);
    let hlo = ((vec4<u32>(qh) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
    let hhi = ((vec4<u32>(qh) >> vec4<u32>(4u, 5u, 6u, 7u)) & vec4<u32>(1u)) << vec4<u32>(4u);
    let lo = vec4<f32>(((u8x4(w[wi]) >> sh) & vec4<u32>(15u)) | hlo) - 16.0;
    let hi = vec4<f32>(((u8x4(w[wi + 1u]) >> sh) & vec4<u32>(15u)) | hhi) - 16.0;
    return W8(lo * d, hi * d);
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

// Q4_1: 5 words [d f16, m f16] [16 bytes of nibbles]. w = d q + m; load8 gives d q and
// block_min m, so products can add m · Σx from the activations' block sums (as the CPU).
const BLOCK_LEN: u32 = 32u;
const BLOCK_WORDS: u32 = 5u;
const BLOCK_HAS_MIN: bool = true;
const CHUNKS: u32 = 4u;

fn load8(b: u32, c: u32) -> W8 {
    let dm = unpack2x16float(w[b]);
    let wi = b + 1u + (c & 1u) * 2u;
    let sh = vec4<u32>((c >> 1u) * 4u);
    let lo = vec4<f32>((u8x4(w[wi]) >> sh) & vec4<u32>(15u));
    let hi = vec4<f32>((u8x4(w[wi + 1u]) >> sh) & vec4<u32>(15u));
    return W8(lo * dm.x, hi * dm.x);
}

fn block_min(b: u32) -> f32 {
    return f16hi(w[b]);
}

// Q4_K as stored (144 bytes = 36 words): [d, dmin f16] [12 bytes of 6-bit scales/mins] [128 bytes of nibbles].
// Element e: group j = e / 64 uses qs[32j..32j+32], low nibbles for the first 32, high for the next.
const BLOCK_LEN: u32 = 256u;
const BLOCK_WORDS: u32 = 36u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 32u;

fn scale_byte(b: u32, k: u32) -> u32 {
    return byte_of(w[b + 1u + k / 4u], k % 4u);
}

fn load8(b: u32, c: u32) -> W8 {
    let dm = unpack2x16float(w[b]);
    let e0 = 8u * c;
    let j = e0 / 64u;
    let within = e0 % 64u;
    let sb = e0 / 32u;
    var sc: u32;
    var mn: u32;
    if (sb < 4u) {
        sc = scale_byte(b, sb) & 63u;
        mn = scale_byte(b, sb + 4u) & 63u;
    } else {
        sc = (scale_byte(b, sb + 4u) & 15u) | ((scale_byte(b, sb - 4u) >> 6u) << 4u);
        mn = (scale_byte(b, sb + 4u) >> 4u) | ((scale_byte(b, sb) >> 6u) << 4u);
    }
    let d = dm.x * f32(sc);
    let m = dm.y * f32(mn);
    let wi = b + 4u + (32u * j + (within % 32u)) / 4u;
    let sh = vec4<u32>((within / 32u) * 4u);
    let lo = vec4<f32>((u8x4(w[wi]) >> sh) & vec4<u32>(15u));
    let hi = vec4<f32>((u8x4(w[wi + 1u]) >> sh) & vec4<u32>(15u));
    return W8(lo * d - m, hi * d - m);
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

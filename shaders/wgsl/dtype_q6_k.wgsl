// Q6_K padded to 212 bytes = 53 words: [ql 128 bytes] [qh 64 bytes] [16 signed scales] [d f16, pad].
// Element e: half n = e / 128, quarter k = (e % 128) / 32, l = e % 32:
// low 4 bits from ql[64n + l + 32 (k & 1)] (high nibble when k >= 2), 2 high bits from qh[32n + l] >> 2k,
// scale scales[8n + l / 16 + 2k]; w = d * scale * (q - 32).
const BLOCK_LEN: u32 = 256u;
const BLOCK_WORDS: u32 = 53u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 32u;

fn load8(b: u32, c: u32) -> W8 {
    let e0 = 8u * c;
    let n = e0 / 128u;
    let r = e0 % 128u;
    let k = r / 32u;
    let l = r % 32u;
    let si = 8u * n + l / 16u + 2u * k;
    let sc = f32(extractBits(bitcast<i32>(w[b + 48u + si / 4u]), 8u * (si % 4u), 8u));
    let d = f16lo(w[b + 52u]) * sc;
    let qlw = b + (64u * n + l + 32u * (k & 1u)) / 4u;
    let qhw = b + 32u + (32u * n + l) / 4u;
    let lsh = vec4<u32>((k >> 1u) * 4u);
    let hsh = vec4<u32>(2u * k);
    let lo = ((u8x4(w[qlw]) >> lsh) & vec4<u32>(15u)) | (((u8x4(w[qhw]) >> hsh) & vec4<u32>(3u)) << vec4<u32>(4u));
    let hi = ((u8x4(w[qlw + 1u]) >> lsh) & vec4<u32>(15u)) | (((u8x4(w[qhw + 1u]) >> hsh) & vec4<u32>(3u)) << vec4<u32>(4u));
    return W8((vec4<f32>(lo) - 32.0) * d, (vec4<f32>(hi) - 32.0) * d);
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

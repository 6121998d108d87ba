// F16 rows (two per word), taken 8 elements at a time; no shader-f16 needed.
const BLOCK_LEN: u32 = 8u;
const BLOCK_WORDS: u32 = 4u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 1u;

fn load8(b: u32, c: u32) -> W8 {
    let a = unpack2x16float(w[b]);
    let d = unpack2x16float(w[b + 1u]);
    let e = unpack2x16float(w[b + 2u]);
    let f = unpack2x16float(w[b + 3u]);
    return W8(vec4<f32>(a, d), vec4<f32>(e, f));
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

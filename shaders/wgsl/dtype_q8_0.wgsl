// Q8_0 repacked to 9 words: [d f16, pad] [32 signed bytes]. w = d q.
const BLOCK_LEN: u32 = 32u;
const BLOCK_WORDS: u32 = 9u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 4u;

fn load8(b: u32, c: u32) -> W8 {
    let d = f16lo(w[b]);
    let wi = b + 1u + 2u * c;
    return W8(i8x4(w[wi]) * d, i8x4(w[wi + 1u]) * d);
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

// F32 rows, taken 8 elements at a time.
const BLOCK_LEN: u32 = 8u;
const BLOCK_WORDS: u32 = 8u;
const BLOCK_HAS_MIN: bool = false;
const CHUNKS: u32 = 1u;

fn load8(b: u32, c: u32) -> W8 {
    return W8(vec4<f32>(bitcast<f32>(w[b]), bitcast<f32>(w[b + 1u]), bitcast<f32>(w[b + 2u]), bitcast<f32>(w[b + 3u])),
              vec4<f32>(bitcast<f32>(w[b + 4u]), bitcast<f32>(w[b + 5u]), bitcast<f32>(w[b + 6u]), bitcast<f32>(w[b + 7u])));
}

fn block_min(b: u32) -> f32 {
    return 0.0;
}

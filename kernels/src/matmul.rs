//! Matrix drivers over quantized weights: matrix×vector (decode) and
//! matrix×matrix (prefill), parallel over weight rows on the current rayon pool
//! (run them inside `pool.install(..)` to choose the thread count).
//!
//! Weights are `rows` rows of `cols` elements in `k.dtype`, stored as in GGUF
//! (row-major, each row a whole number of blocks). Activations are f32 and are
//! converted once per call to the weight type's activation type.

use crate::dispatch::TypeKernels;
use rayon::prelude::*;

/// Activation rows converted to `k.act`, in a buffer aligned for every block type.
fn quantize_activations(k: &TypeKernels, x: &[f32], cols: usize) -> (Vec<u32>, usize) {
    let row_bytes = k
        .act
        .row_bytes(cols)
        .unwrap_or_else(|| panic!("{} activations: {cols} columns is not whole blocks", k.act));
    let tokens = x.len() / cols;
    // u32 storage gives the 4-byte alignment Q8_K and f32 need.
    let mut buf = vec![0u32; (row_bytes * tokens).div_ceil(4)];
    let bytes: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut buf)[..row_bytes * tokens];
    bytes
        .par_chunks_mut(row_bytes)
        .zip(x.par_chunks(cols))
        .for_each(|(dst, src)| (k.quantize_act)(src, dst));
    (buf, row_bytes)
}

fn check_shapes(k: &TypeKernels, w: &[u8], rows: usize, cols: usize) -> usize {
    let w_row = k
        .dtype
        .row_bytes(cols)
        .unwrap_or_else(|| panic!("{} weights: {cols} columns is not whole blocks", k.dtype));
    assert_eq!(
        w.len(),
        w_row * rows,
        "weight bytes do not match {rows}x{cols} {}",
        k.dtype
    );
    w_row
}

/// `y[r] = Σ_c W[r,c]·x[c]`. Panics when the slices do not match the shape.
pub fn matvec(k: &TypeKernels, w: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
    matmul(k, w, rows, cols, x, 1, y)
}

/// `y[t·rows + r] = Σ_c W[r,c]·x[t·cols + c]` for `tokens` activation rows.
/// Panics when the slices do not match the shape.
pub fn matmul(
    k: &TypeKernels,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
    y: &mut [f32],
) {
    let w_row = check_shapes(k, w, rows, cols);
    assert_eq!(
        x.len(),
        tokens * cols,
        "activations do not match {tokens}x{cols}"
    );
    assert_eq!(
        y.len(),
        tokens * rows,
        "output does not match {tokens}x{rows}"
    );
    if rows == 0 || tokens == 0 {
        return;
    }
    let (act, a_row) = quantize_activations(k, x, cols);
    let act: &[u8] = &bytemuck::cast_slice(&act)[..a_row * tokens];
    // Chunks of rows per task: enough tasks to balance threads, few enough to amortise scheduling.
    let chunk = rows.div_ceil(rayon::current_num_threads() * 4).max(8);
    let mut out = vec![0f32; rows * tokens];
    out.par_chunks_mut(chunk * tokens)
        .enumerate()
        .for_each(|(ci, o)| {
            let r0 = ci * chunk;
            let n = o.len() / tokens;
            for (i, wr) in w[r0 * w_row..(r0 + n) * w_row]
                .chunks_exact(w_row)
                .enumerate()
            {
                for (t, ar) in act.chunks_exact(a_row).enumerate() {
                    o[i * tokens + t] = (k.vec_dot)(cols, wr, ar);
                }
            }
        });
    // `out` is row-major by weight row; transpose to token-major.
    for r in 0..rows {
        for t in 0..tokens {
            y[t * rows + r] = out[r * tokens + t];
        }
    }
}

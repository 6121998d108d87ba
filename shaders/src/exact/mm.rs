//! Exact-path matrix products and embedding lookup (see `super`): the bits of
//! ferrite's CPU `mm()` (engine/src/model/mod.rs) with the x86 llama.cpp orders it
//! selects, whatever the host CPU:
//! - activations are quantized first, exactly as the CPU quantizers (`mm_quant`);
//! - legacy types: the AVX2 lanes + `hsum` (`mm_q4_0` ...), Q4_K / Q6_K not
//!   repacked: the AVX2 `vec_dot` lanes (`mm_q4k`, `mm_q6k`);
//! - repacked Q4_K (rows % 8 == 0 and `repack`): the gemm chain for whole groups of
//!   four tokens, the gemv chain for the rest; Q6_K with 8+ tokens: the tiled chain.
//!
//! Every f32 FMA of those orders is math.wgsl's `fma_rn` (integer-built where the
//! adapter's `fma` is not fused, as on lavapipe) and every division `div_rn`.
//! Integer dots use no dot4I8Packed (GL backend).
//!
//! Scratch layout (arena words at `scratch`, for `ntok` tokens of `cols`):
//! - `[0, ntok·cols/4)`: the int8 quants, 4 per word in element order, token-major;
//! - then one f32 per block and token (token-major): the scale as the dot reads it
//!   (Q8_0/Q8_1: the f16 `d` widened; Q8_K: the f32 `d`);
//! - then Q8_1: one f32 per block (the f16 `s` widened); Q8_K: 16 i32 `bsums` per block.

use crate::graph::{grid, u};
use crate::tensor::GpuTensor;
use crate::GpuError;
use kernels::GgmlType;

const COMMON: &str = include_str!("../../wgsl/exact/mm_common.wgsl");

pub(crate) fn body(name: &str) -> Option<String> {
    let (consts, src) = match name {
        "mm_quant" => ("", include_str!("../../wgsl/exact/mm_quant.wgsl")),
        "mm_q4_0" | "mm_q4_1" | "mm_q5_0" | "mm_q8_0" => {
            let dt = ["mm_q4_0", "mm_q4_1", "mm_q5_0", "mm_q8_0"]
                .iter()
                .position(|n| *n == name)?;
            return Some(format!(
                "const DT: u32 = {dt}u;\n{COMMON}\n{DOT}\n{}",
                include_str!("../../wgsl/exact/mm_legacy.wgsl")
            ));
        }
        "mm_q4k" => ("const DT: u32 = 0u;", KPLAIN),
        "mm_q6k" => ("const DT: u32 = 1u;", KPLAIN),
        "mm_q6k_tiled" => ("const MODE: u32 = 0u;", CHAIN),
        "mm_q4k_gemv" => ("const MODE: u32 = 1u;", CHAIN),
        "mm_q4k_gemm" => ("const MODE: u32 = 2u;", CHAIN),
        _ => {
            let dt = ROWS.iter().position(|n| *n == name)?;
            return Some(format!(
                "const DT: u32 = {dt}u;\n{COMMON}\n{}",
                include_str!("../../wgsl/exact/mm_get_rows.wgsl")
            ));
        }
    };
    Some(format!("{consts}\n{COMMON}\n{src}"))
}

/// Parameters and bindings of the dot shaders (legacy, K-quant lanes, K-quant chains).
const DOT: &str = include_str!("../../wgsl/exact/mm_dot.wgsl");
const CHAIN: &str = concat!(
    include_str!("../../wgsl/exact/mm_dot.wgsl"),
    include_str!("../../wgsl/exact/mm_kchain.wgsl")
);
const KPLAIN: &str = concat!(
    include_str!("../../wgsl/exact/mm_dot.wgsl"),
    include_str!("../../wgsl/exact/mm_kplain.wgsl")
);

/// get_rows shader names, in the DT order of mm_get_rows.wgsl.
const ROWS: [&str; 6] = [
    "mm_rows_q4_0",
    "mm_rows_q4_1",
    "mm_rows_q5_0",
    "mm_rows_q8_0",
    "mm_rows_q4k",
    "mm_rows_q6k",
];

/// Weight types the exact matmul handles, in the order of the `mm_rows_*` shaders.
pub const TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
];

/// Whether the exact matmul handles `dtype` (one of [`TYPES`]).
pub fn supported(dtype: GgmlType) -> bool {
    TYPES.contains(&dtype)
}

/// Arena elements `exact_matmul` needs at `scratch` for `ntok` rows of `cols`
/// inputs (quantized activations, all orders it may use).
pub fn scratch_len(cols: usize, ntok: usize) -> usize {
    // Q8_0/Q8_1: quants + 2 per 32; Q8_K: quants + 17 per 256 (covered by the sum).
    ntok * (cols.div_ceil(4) + 2 * cols.div_ceil(32) + cols.div_ceil(256))
}

/// Activation quantizer mode of `mm_quant.wgsl`.
fn act_mode(dtype: GgmlType) -> u32 {
    match dtype {
        GgmlType::Q4_1 => 1,
        GgmlType::Q4K | GgmlType::Q6K => 2,
        _ => 0,
    }
}

impl crate::Recorder<'_> {
    /// y[t*w.rows + r] = W[r] · x[t] for t < ntok, with the exact bits of ferrite's CPU
    /// product (engine `mm()`). x: ntok rows of w.cols f32 at arena offset `x`; y: ntok
    /// rows of w.rows; `repack`: whether llama.cpp repacks this matrix (false for
    /// "token_embd.weight"); `scratch`: arena region of [`scratch_len`]`(w.cols, ntok)`.
    /// Offsets need no alignment.
    pub fn exact_matmul(
        &mut self,
        w: &GpuTensor,
        repack: bool,
        x: usize,
        y: usize,
        ntok: usize,
        scratch: usize,
    ) -> Result<(), GpuError> {
        self.exact_matmuls(&[(w, repack, y)], x, ntok, scratch)
    }

    /// [`Self::exact_matmul`] of several matrices `(w, repack, y)` with one input (Q, K
    /// and V; gate and up): the activations are quantized once for each run of
    /// matrices that quantize them alike, as the CPU does. No `y` may overlap `x` or
    /// `scratch`.
    pub fn exact_matmuls(
        &mut self,
        products: &[(&GpuTensor, bool, usize)],
        x: usize,
        ntok: usize,
        scratch: usize,
    ) -> Result<(), GpuError> {
        // (cols, quantizer mode, rows in gemm groups) of what `scratch` holds.
        let mut quantized: Option<(usize, u32, usize)> = None;
        for &(w, repack, y) in products {
            let dt = w.dtype;
            let blen = if matches!(dt, GgmlType::Q4K | GgmlType::Q6K) {
                256
            } else {
                32
            };
            if !supported(dt) || !w.cols.is_multiple_of(blen) {
                return Err(GpuError::Unsupported(format!(
                    "exact matmul: {} is {dt} {}x{}",
                    w.name, w.rows, w.cols
                )));
            }
            if ntok == 0 {
                continue;
            }
            if ntok > 65535 {
                return Err(GpuError::Unsupported(format!(
                    "exact matmul: {ntok} tokens in one call"
                )));
            }
            let cols = w.cols;
            self.check("exact matmul input", x, ntok * cols)?;
            self.check("exact matmul output", y, ntok * w.rows)?;
            self.check("exact matmul scratch", scratch, scratch_len(cols, ntok))?;
            let nb = cols / blen;
            let qs = scratch;
            let d = qs + ntok * cols / 4;
            let ex = d + ntok * nb;
            // engine `mm()`: llama.cpp repacks Q4_K with rows % 8 == 0 (x86 AVX2); its
            // gemm takes whole groups of four tokens; Q6_K takes the tiled order at 8+.
            let repacked = repack && dt == GgmlType::Q4K && w.rows.is_multiple_of(8);
            let grouped = if repacked { ntok / 4 * 4 } else { 0 };
            let setup = (cols, act_mode(dt), grouped);
            if quantized != Some(setup) {
                let (qx, qy) = grid((ntok * nb).div_ceil(64))?;
                self.push(
                    super::op("mm_quant", 0, 0),
                    None,
                    &[
                        u(x),
                        u(cols),
                        u(ntok),
                        u(qs),
                        u(d),
                        u(ex),
                        setup.1,
                        u(grouped),
                        u(nb),
                        qx,
                    ],
                    vec![self.arena_buf()],
                    [qx, qy, 1],
                )?;
                quantized = Some(setup);
            }
            let rest: &'static str = match dt {
                GgmlType::Q4_0 => "mm_q4_0",
                GgmlType::Q4_1 => "mm_q4_1",
                GgmlType::Q5_0 => "mm_q5_0",
                GgmlType::Q8_0 => "mm_q8_0",
                GgmlType::Q4K if repacked => "mm_q4k_gemv",
                GgmlType::Q4K => "mm_q4k",
                _ if ntok >= 8 => "mm_q6k_tiled",
                _ => "mm_q6k",
            };
            let parts = [("mm_q4k_gemm", 0..grouped), (rest, grouped..ntok)];
            for (name, ts) in parts {
                if ts.is_empty() {
                    continue;
                }
                for win in &w.windows {
                    let (gx, gy) = grid(win.rows.div_ceil(8))?;
                    self.push(
                        super::op(name, 0, 1),
                        None,
                        &[
                            u(win.rows),
                            u(cols),
                            u(ts.start),
                            u(qs),
                            u(d),
                            u(ex),
                            u(y),
                            u(w.rows),
                            u(win.row0),
                            gx,
                        ],
                        vec![self.arena_buf(), win.buf.clone()],
                        [gx, gy, ts.len() as u32],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Embedding lookup with the CPU's bits: y[t] = row ids[t] of `table` dequantized
    /// exactly as the CPU dequantizer does, then `*= scale` when scale != 1.0; ids are
    /// u32 in the arena at `ids`. An id outside the table leaves its output row as it was.
    pub fn exact_get_rows(
        &mut self,
        table: &GpuTensor,
        ids: usize,
        y: usize,
        ntok: usize,
        scale: f32,
    ) -> Result<(), GpuError> {
        let Some(dt) = TYPES.iter().position(|&t| t == table.dtype) else {
            return Err(GpuError::Unsupported(format!(
                "exact get_rows: {} is {}",
                table.name, table.dtype
            )));
        };
        if ntok == 0 {
            return Ok(());
        }
        let cols = table.cols;
        self.check("exact get_rows ids", ids, ntok)?;
        self.check("exact get_rows output", y, ntok * cols)?;
        let (gx, gy) = grid((ntok * cols).div_ceil(64))?;
        for win in &table.windows {
            self.push(
                super::op(ROWS[dt], 0, 1),
                None,
                &[
                    u(ids),
                    u(y),
                    u(cols),
                    u(ntok),
                    u(win.row0),
                    u(win.rows),
                    scale.to_bits(),
                    (scale != 1.0) as u32,
                    gx,
                ],
                vec![self.arena_buf(), win.buf.clone()],
                [gx, gy, 1],
            )?;
        }
        Ok(())
    }
}

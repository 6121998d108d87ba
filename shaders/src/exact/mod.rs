//! The llama.cpp-exact GPU path: shaders that reproduce the float operations of
//! llama.cpp's CPU backend (and of ferrite's CPU kernels, which match it bit for
//! bit), so a model gives the same tokens on the GPU as on the CPU and as the
//! reference. These small models turn one last-bit difference into logit
//! differences of tenths (an int8 activation rounding flips and grows through the
//! layers), so "close" is not enough: every rounding has to be the same.
//!
//! - integer block dots are exact in any order; the float accumulations follow
//!   the CPU kernels' lanes and chains;
//! - `/`, `sqrt`, `exp` and f16 conversions are rebuilt to IEEE results
//!   (`wgsl/exact/math.wgsl`), since WGSL allows approximations.

pub mod attn;
pub mod mm;
pub mod ops;

use crate::pipelines::{Named, Op};
use crate::GpuError;

/// The exact-path WGSL library every exact shader is built on.
const MATH: &str = include_str!("../../wgsl/exact/math.wgsl");

/// Shader bodies by name; each module owns its names.
fn body(name: &str) -> Option<String> {
    mm::body(name)
        .or_else(|| attn::body(name))
        .or_else(|| ops::body(name))
        .or_else(|| probe_body(name))
}

/// The full source of exact-path shader `name` (after the generated constants and
/// `common.wgsl`, which `pipelines::source` puts first).
pub(crate) fn source(name: &str, fma_fused: bool) -> Result<String, GpuError> {
    let b = body(name)
        .ok_or_else(|| GpuError::Unsupported(format!("no exact-path shader named {name}")))?;
    Ok(format!("const FMA_FUSED: bool = {fma_fused};\n{MATH}\n{b}"))
}

/// The pipeline op of shader `name` binding `rw` more read-write and `ro`
/// read-only storage buffers after the arena.
pub(crate) fn op(name: &'static str, rw: u8, ro: u8) -> Op {
    Op::Named(Named {
        name,
        rw,
        ro,
        fma_fused: None,
    })
}

fn probe_body(name: &str) -> Option<String> {
    match name {
        "probe" => Some(include_str!("../../wgsl/exact/probe.wgsl").to_string()),
        "fma_probe" => Some(FMA_PROBE.to_string()),
        _ => None,
    }
}

/// `fma(1 + 2^-12, 1 + 2^-12, -(1 + 2^-11))` is 2^-24 when fused, 0 when the
/// product is rounded first; inputs come from the arena so nothing folds them.
const FMA_PROBE: &str = "
@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(1)
fn main() {
    a[3] = fma(a[0], a[1], a[2]);
}
";

/// Runs [`FMA_PROBE`] once: whether `fma` is fused on this adapter.
pub(crate) fn probe_fma(ctx: &crate::GpuContext) -> Result<bool, GpuError> {
    let arena = crate::Arena::new(ctx, 4)?;
    let mut rec = crate::Recorder::new(ctx, &arena);
    let x = 1.0 + 2f32.powi(-12);
    rec.write(0, &[x, x, -(1.0 + 2f32.powi(-11)), 0.0])?;
    // Its shader never calls fma_rn; saying so keeps the recorder from asking the
    // context, which is waiting for this very answer.
    let probe = Op::Named(Named {
        name: "fma_probe",
        rw: 0,
        ro: 0,
        fma_fused: Some(false),
    });
    rec.push(probe, None, &[], vec![rec.arena_buf()], [1, 1, 1])?;
    rec.read(3, 1)?;
    let got = rec.submit()?.remove(0);
    Ok(got[0] == 2f32.powi(-24))
}

/// Runs the arithmetic probe (`wgsl/exact/probe.wgsl`) on `inputs` (triples a, b, c)
/// and returns per triple: fma(a,b,c), a*b+c as written, a/b, div_rn(a,b),
/// sqrt(|a|), sqrt_rn(|a|), f16 bits by pack2x16float, f16_bits(a).
#[doc(hidden)]
pub fn probe(ctx: &crate::GpuContext, inputs: &[[f32; 3]]) -> Result<Vec<[u32; 8]>, GpuError> {
    let n = inputs.len();
    let arena = crate::Arena::new(ctx, n * 3 + n * 8)?;
    let mut rec = crate::Recorder::new(ctx, &arena);
    let flat: Vec<f32> = inputs.iter().flatten().copied().collect();
    rec.write(0, &flat)?;
    let (gx, gy) = crate::graph::grid(n.div_ceil(64))?;
    rec.push(
        op("probe", 0, 0),
        None,
        &[n as u32, gx],
        vec![rec.arena_buf()],
        [gx, gy, 1],
    )?;
    rec.read(n * 3, n * 8)?;
    let out = rec.submit()?.remove(0);
    Ok(out
        .chunks_exact(8)
        .map(|c| std::array::from_fn(|i| c[i].to_bits()))
        .collect())
}

//! Exact-path norms, activations and RoPE (see `super`): RMSNorm, SwiGLU (ggml's
//! vector SiLU in either llama.cpp build's roundings), GeGLU through ggml's f16
//! GELU table, and RoPE with cos/sin computed on the host, each bit for bit equal
//! to the CPU kernel it names.

use super::op;
use crate::graph::{grid, u};
use crate::{GpuContext, GpuError, GpuTensor};
use kernels::ggml_math::Flavor;
use kernels::ops::RopeStyle;
use kernels::GgmlType;
use wgpu::util::DeviceExt;

const VEXPF: &str = include_str!("../../wgsl/exact/vexpf.wgsl");
const COMMON: &str = include_str!("../../wgsl/exact/ops_common.wgsl");

pub(crate) fn body(name: &str) -> Option<String> {
    let op = match name {
        "exact_rms_norm" => include_str!("../../wgsl/exact/ops_rms_norm.wgsl"),
        "exact_swiglu" => {
            // The scalar tail of a row uses glibc's expf (owned by the attention module).
            return Some(format!(
                "{}\n{}\n{VEXPF}\n{COMMON}\n{}",
                super::attn::expf_consts(),
                include_str!("../../wgsl/exact/expf.wgsl"),
                include_str!("../../wgsl/exact/ops_swiglu.wgsl")
            ));
        }
        "exact_geglu" => include_str!("../../wgsl/exact/ops_geglu.wgsl"),
        "exact_rope" => include_str!("../../wgsl/exact/ops_rope.wgsl"),
        _ => return None,
    };
    Some(format!("{VEXPF}\n{COMMON}\n{op}"))
}

/// ggml's GELU table (f16 → f16, 65536 entries as in `kernels::ops::geglu_f16_table`),
/// uploaded once: u32 words of two f16, entry `h` in bits `16·(h & 1)..` of word `h / 2`.
pub struct GeluTable {
    buf: wgpu::Buffer,
}

impl GeluTable {
    pub fn new(ctx: &GpuContext) -> Result<GeluTable, GpuError> {
        // The CPU function itself gives the entries: gate = every f16 value, up = 1
        // (exact), so each result is the table's entry widened. Gates in (-10, 10)
        // only reach entries within [-10, 10]; ±10 itself (reached by ±9.999, which
        // rounds to it) is asked through ±9.999 since the CPU cuts ±10 off first.
        let mut gate: Vec<f32> = (0..=u16::MAX)
            .map(|h| {
                let v = half::f16::from_bits(h).to_f32();
                if v.abs() == 10.0 {
                    v * 0.9999
                } else {
                    v
                }
            })
            .collect();
        let ones = vec![1.0f32; gate.len()];
        kernels::ops::geglu_f16_table(&mut gate, &ones);
        let words: Vec<u32> = gate
            .chunks_exact(2)
            .map(|w| {
                let lo = half::f16::from_f32(w[0]).to_bits() as u32;
                let hi = half::f16::from_f32(w[1]).to_bits() as u32;
                lo | hi << 16
            })
            .collect();
        let buf = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("gelu f16 table"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::STORAGE,
            });
        Ok(GeluTable { buf })
    }
}

fn to_u32(what: &str, v: usize) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::Unsupported(format!("{what} {v} exceeds u32")))
}

impl crate::Recorder<'_> {
    /// `rows` rows of `n` at arena `x` → `y` (`y` equal to `x` or not overlapping it):
    /// `kernels::ops::rms_norm` (with `weight`, an f32 vector of `n`) or
    /// `rms_norm_inplace` bit for bit. One workgroup per row.
    pub fn exact_rms_norm(
        &mut self,
        x: usize,
        y: usize,
        rows: usize,
        n: usize,
        weight: Option<&GpuTensor>,
        eps: f32,
    ) -> Result<(), GpuError> {
        self.rms_norm_inner(x, y, rows, n, weight, eps, false)
    }

    /// [`Self::exact_rms_norm`] with every row's mean taken through the integer f64
    /// emulation (normally only rows whose mean is near an f32 rounding midpoint): for tests.
    #[doc(hidden)]
    pub fn exact_rms_norm_f64(
        &mut self,
        x: usize,
        y: usize,
        rows: usize,
        n: usize,
        weight: Option<&GpuTensor>,
        eps: f32,
    ) -> Result<(), GpuError> {
        self.rms_norm_inner(x, y, rows, n, weight, eps, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn rms_norm_inner(
        &mut self,
        x: usize,
        y: usize,
        rows: usize,
        n: usize,
        weight: Option<&GpuTensor>,
        eps: f32,
        force_f64: bool,
    ) -> Result<(), GpuError> {
        let len = rows
            .checked_mul(n)
            .ok_or_else(|| GpuError::Unsupported("rms_norm size overflows".into()))?;
        self.check("exact_rms_norm input", x, len)?;
        self.check("exact_rms_norm output", y, len)?;
        if len == 0 {
            return Ok(());
        }
        // n must be exact as an f32 for the mean's division.
        if n >= 1 << 24 {
            return Err(GpuError::Unsupported(format!(
                "exact_rms_norm of rows of {n}"
            )));
        }
        let wb = match weight {
            Some(t) => {
                if t.dtype != GgmlType::F32 || t.rows != 1 || t.cols != n {
                    return Err(GpuError::Unsupported(format!(
                        "exact_rms_norm: {} is not an f32 vector of {n}",
                        t.name
                    )));
                }
                t.windows[0].buf.clone()
            }
            None => self.ctx.dummy.clone(),
        };
        let (gx, gy) = grid(rows)?;
        self.push(
            op("exact_rms_norm", 0, 1),
            None,
            &[
                u(rows),
                u(n),
                u(x),
                u(y),
                weight.is_some() as u32,
                eps.to_bits(),
                gx,
                0,
                force_f64 as u32,
            ],
            vec![self.arena_buf(), wb],
            [gx, gy, 1],
        )
    }

    /// `gate[r] = swiglu(gate[r], up[r])` for `rows` rows of `n` (rows contiguous at
    /// both offsets): `kernels::ggml_math::swiglu(flavor, ..)` bit for bit: ggml's
    /// vector SiLU over the first `n / lanes · lanes` values of a row (lanes 8 or 16),
    /// glibc's `expf` for the rest.
    pub fn exact_swiglu(
        &mut self,
        gate: usize,
        up: usize,
        rows: usize,
        n: usize,
        flavor: Flavor,
    ) -> Result<(), GpuError> {
        let total = rows
            .checked_mul(n)
            .ok_or_else(|| GpuError::Unsupported("swiglu size overflows".into()))?;
        self.check("exact_swiglu gate", gate, total)?;
        self.check("exact_swiglu up", up, total)?;
        if total == 0 {
            return Ok(());
        }
        let lanes = flavor.lanes();
        let (gx, gy) = self.elementwise_groups(total, 64)?;
        self.push(
            op("exact_swiglu", 0, 0),
            None,
            &[
                to_u32("swiglu size", total)?,
                u(n),
                u(gate),
                u(up),
                u(n / lanes * lanes),
                (flavor == Flavor::Avx512) as u32,
                gx,
                0,
            ],
            vec![self.arena_buf()],
            [gx, gy, 1],
        )
    }

    /// `gate[i] = gelu_table(gate[i]) · up[i]` for `n` values:
    /// `kernels::ops::geglu_f16_table(gate, up)` bit for bit.
    pub fn exact_geglu(
        &mut self,
        table: &GeluTable,
        gate: usize,
        up: usize,
        n: usize,
    ) -> Result<(), GpuError> {
        self.check("exact_geglu gate", gate, n)?;
        self.check("exact_geglu up", up, n)?;
        if n == 0 {
            return Ok(());
        }
        let (gx, gy) = self.elementwise_groups(n, 64)?;
        self.push(
            op("exact_geglu", 0, 1),
            None,
            &[u(n), u(gate), u(up), gx, 0],
            vec![self.arena_buf(), table.buf.clone()],
            [gx, gy, 1],
        )
    }

    /// RoPE of `ntok` tokens × `n_heads` heads of `head_dim` at arena `x`, in place:
    /// `kernels::ops::Rope::apply_cached` bit for bit. cos/sin at arena `cs`: per token,
    /// `n_rot / 2` interleaved (cos, sin) pairs as `Rope::cos_sin(pos)` returns them.
    #[allow(clippy::too_many_arguments)]
    pub fn exact_rope(
        &mut self,
        x: usize,
        ntok: usize,
        n_heads: usize,
        head_dim: usize,
        n_rot: usize,
        style: RopeStyle,
        cs: usize,
    ) -> Result<(), GpuError> {
        if n_rot == 0 || !n_rot.is_multiple_of(2) || n_rot > head_dim {
            return Err(GpuError::Unsupported(format!(
                "exact_rope: n_rot {n_rot} must be even, nonzero and at most head_dim {head_dim}"
            )));
        }
        let len = ntok
            .checked_mul(n_heads)
            .and_then(|v| v.checked_mul(head_dim))
            .ok_or_else(|| GpuError::Unsupported("rope size overflows".into()))?;
        self.check("exact_rope x", x, len)?;
        self.check("exact_rope cos/sin", cs, ntok.saturating_mul(n_rot))?;
        let pairs = ntok * n_heads * (n_rot / 2);
        if pairs == 0 {
            return Ok(());
        }
        let (gx, gy) = self.elementwise_groups(pairs, 64)?;
        self.push(
            op("exact_rope", 0, 0),
            None,
            &[
                to_u32("rope pairs", pairs)?,
                u(n_heads),
                u(head_dim),
                u(n_rot / 2),
                (style == RopeStyle::Neox) as u32,
                u(x),
                u(cs),
                gx,
            ],
            vec![self.arena_buf()],
            [gx, gy, 1],
        )
    }
}

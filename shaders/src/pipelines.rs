//! Compute pipelines, keyed by (op, weight type, variant) and built from WGSL
//! pieces: generated constants, common helpers, a reduction (subgroup or shared
//! memory), a weight decoder per type, and the op itself.

use crate::{GpuContext, GpuError};
use kernels::GgmlType;

/// Elementwise ops (entry points of `elementwise.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ew {
    Add,
    Mul,
    Scale,
    Silu,
    Gelu,
    Swiglu,
    Geglu,
    GegluF16,
    Softcap,
    Copy,
}

impl Ew {
    fn entry(self) -> &'static str {
        match self {
            Ew::Add => "add",
            Ew::Mul => "mul",
            Ew::Scale => "scale",
            Ew::Silu => "silu",
            Ew::Gelu => "gelu",
            Ew::Swiglu => "swiglu",
            Ew::Geglu => "geglu",
            Ew::GegluF16 => "geglu_f16",
            Ew::Softcap => "softcap",
            Ew::Copy => "copy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Matrix × vector (one token per workgroup).
    MatVec,
    /// Matrix × matrix: [`MM_TILE`] tokens per workgroup share each decoded weight.
    MatMul,
    GetRows,
    RmsNorm,
    Softmax,
    Rope,
    KvStore,
    Attention,
    AddW,
    QuantizeAct,
    Elementwise(Ew),
    /// A shader of the llama.cpp-exact path ([`crate::exact`]), by name.
    Named(Named),
}

/// An exact-path shader: its name (see [`crate::exact::source`]) and how many
/// storage buffers it binds after the arena (binding 1): `rw` read-write ones
/// (bindings 2..), then `ro` read-only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Named {
    pub name: &'static str,
    pub rw: u8,
    pub ro: u8,
    /// Whether the adapter's `fma` is fused: `None` until the recorder fills it in from
    /// the context; the fma probe itself states it (it runs before anything is known).
    pub fma_fused: Option<bool>,
}

/// Which optional adapter features a pipeline's shader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Variant {
    pub subgroups: bool,
    pub f16: bool,
    /// 8-invocation matrix workgroups: fastest on CPU-type adapters (lavapipe), where
    /// a workgroup is one SIMD loop and wider ones only add barrier cost.
    pub narrow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub op: Op,
    pub dtype: Option<GgmlType>,
    pub variant: Variant,
}

/// Tokens per matmul workgroup.
pub const MM_TILE: u32 = 8;
/// Largest head size the attention shader handles.
pub const MAX_HEAD_DIM: u32 = 256;

#[derive(Clone, Copy, PartialEq)]
enum Bind {
    ReadOnly,
    ReadWrite,
}

impl Op {
    /// Storage bindings after the params uniform (binding 0); the arena is always binding 1.
    fn bindings(self) -> Vec<Bind> {
        use Bind::*;
        if let Op::Named(n) = self {
            let mut b = vec![ReadWrite; 1 + n.rw as usize];
            b.extend(std::iter::repeat_n(ReadOnly, n.ro as usize));
            return b;
        }
        let b: &[Bind] = match self {
            Op::MatVec | Op::MatMul | Op::GetRows | Op::RmsNorm | Op::AddW => {
                &[ReadWrite, ReadOnly]
            }
            Op::Softmax | Op::Rope | Op::QuantizeAct | Op::Elementwise(_) => &[ReadWrite],
            Op::KvStore => &[ReadWrite, ReadWrite],
            Op::Attention => &[ReadWrite, ReadOnly, ReadOnly],
            Op::Named(_) => unreachable!("handled above"),
        };
        b.to_vec()
    }
    fn uses_subgroups(self) -> bool {
        matches!(self, Op::MatVec | Op::MatMul | Op::RmsNorm | Op::Softmax)
    }
    fn uses_f16(self) -> bool {
        self == Op::Attention
    }
    fn needs_dtype(self) -> bool {
        matches!(self, Op::MatVec | Op::MatMul | Op::GetRows)
    }
    pub(crate) fn workgroup(self) -> u32 {
        match self {
            Op::MatVec | Op::MatMul => 32,
            _ => 64,
        }
    }
}

/// Weight types the matrix shaders decode.
pub const GPU_TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
];

pub(crate) fn dtype_source(t: GgmlType) -> Option<&'static str> {
    Some(match t {
        GgmlType::F32 => include_str!("../wgsl/dtype_f32.wgsl"),
        GgmlType::F16 => include_str!("../wgsl/dtype_f16.wgsl"),
        GgmlType::Q4_0 => include_str!("../wgsl/dtype_q4_0.wgsl"),
        GgmlType::Q4_1 => include_str!("../wgsl/dtype_q4_1.wgsl"),
        GgmlType::Q5_0 => include_str!("../wgsl/dtype_q5_0.wgsl"),
        GgmlType::Q8_0 => include_str!("../wgsl/dtype_q8_0.wgsl"),
        GgmlType::Q4K => include_str!("../wgsl/dtype_q4_k.wgsl"),
        GgmlType::Q6K => include_str!("../wgsl/dtype_q6_k.wgsl"),
        _ => return None,
    })
}

/// The variant of `op` this context runs: the fast one when the adapter has the feature.
pub(crate) fn key(ctx: &GpuContext, op: Op, dtype: Option<GgmlType>) -> PipelineKey {
    PipelineKey {
        op,
        dtype: if op.needs_dtype() { dtype } else { None },
        variant: Variant {
            subgroups: ctx.subgroups && op.uses_subgroups(),
            f16: ctx.f16 && op.uses_f16(),
            narrow: ctx.narrow && matches!(op, Op::MatVec | Op::MatMul),
        },
    }
}

/// The full WGSL of a pipeline.
pub fn source(key: PipelineKey) -> Result<String, GpuError> {
    let op = key.op;
    let mut s = String::new();
    if key.variant.f16 {
        s.push_str("enable f16;\n");
    }
    let tile = if op == Op::MatMul { MM_TILE } else { 1 };
    s.push_str(&format!(
        "const WG: u32 = {}u;\nconst TT: u32 = {tile}u;\nconst MAX_HEAD_DIM: u32 = {MAX_HEAD_DIM}u;\n",
        if key.variant.narrow { 8 } else { op.workgroup() }
    ));
    s.push_str(include_str!("../wgsl/common.wgsl"));
    if op.uses_subgroups() {
        s.push_str(if key.variant.subgroups {
            include_str!("../wgsl/reduce_sg.wgsl")
        } else {
            include_str!("../wgsl/reduce_wg.wgsl")
        });
    }
    if op.needs_dtype() {
        let t = key
            .dtype
            .ok_or_else(|| GpuError::Unsupported(format!("{op:?} needs a weight type")))?;
        s.push_str(
            dtype_source(t)
                .ok_or_else(|| GpuError::Unsupported(format!("no GPU shader for {t} weights")))?,
        );
    }
    if op == Op::Attention {
        s.push_str(if key.variant.f16 {
            include_str!("../wgsl/acc_f16.wgsl")
        } else {
            include_str!("../wgsl/acc_f32.wgsl")
        });
    }
    let body = match op {
        Op::MatVec => include_str!("../wgsl/matvec.wgsl"),
        Op::MatMul => include_str!("../wgsl/matmul.wgsl"),
        Op::GetRows => include_str!("../wgsl/get_rows.wgsl"),
        Op::RmsNorm => include_str!("../wgsl/rms_norm.wgsl"),
        Op::Softmax => include_str!("../wgsl/softmax.wgsl"),
        Op::Rope => include_str!("../wgsl/rope.wgsl"),
        Op::KvStore => include_str!("../wgsl/kv_store.wgsl"),
        Op::Attention => include_str!("../wgsl/attention.wgsl"),
        Op::AddW => include_str!("../wgsl/add_w.wgsl"),
        Op::QuantizeAct => include_str!("../wgsl/quantize_act.wgsl"),
        Op::Elementwise(_) => include_str!("../wgsl/elementwise.wgsl"),
        Op::Named(n) => {
            s.push_str(&crate::exact::source(n.name, n.fma_fused.unwrap_or(false))?);
            return Ok(s);
        }
    };
    let (params, args) = if key.variant.subgroups {
        (
            ", @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_id) sgid: u32, \
             @builtin(num_subgroups) nsg: u32",
            ", sgi, sgid, nsg",
        )
    } else {
        ("", "")
    };
    s.push_str(
        &body
            .replace("/*SG_PARAMS*/", params)
            .replace("/*SG_ARGS*/", args),
    );
    Ok(s)
}

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

pub(crate) fn build(ctx: &GpuContext, key: PipelineKey) -> Result<Pipeline, GpuError> {
    let src = source(key)?;
    let dev = &ctx.device;
    let label = format!("{:?}/{:?}/{:?}", key.op, key.dtype, key.variant);
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: wgpu::BufferSize::new(crate::graph::PARAM_BYTES),
        },
        count: None,
    }];
    for (i, b) in key.op.bindings().iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: *b == Bind::ReadOnly,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let layout = dev.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&label),
        entries: &entries,
    });
    let pl = dev.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(&label),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let entry = match key.op {
        Op::Elementwise(e) => e.entry(),
        _ => "main",
    };
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: Some(&pl),
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Shader(format!("{label}: {e}")));
    }
    Ok(Pipeline { pipeline, layout })
}

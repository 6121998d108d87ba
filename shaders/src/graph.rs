//! Recording ops into one command encoder: every op is a dispatch over one f32
//! arena (activations, at element offsets) plus read-only weights; their
//! parameters go into one uniform buffer (dynamic offsets), so a whole forward
//! pass is one buffer write, one encoder and one submit, and only what
//! [`Recorder::read`] asks for comes back.

use crate::pipelines::{key, Ew, Op, Pipeline, MAX_HEAD_DIM};
use crate::tensor::GpuTensor;
use crate::{GpuContext, GpuError};
use kernels::ops::RopeStyle;
use kernels::GgmlType;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Rows per matmul workgroup (`R` in matmul.wgsl).
const MM_ROWS: usize = 4;

/// Bytes of one op's parameters (16 words; every shader's `P` fits).
pub const PARAM_BYTES: u64 = 64;

/// Activations: one f32 storage buffer that every op binds read-write.
pub struct Arena {
    pub(crate) buf: wgpu::Buffer,
    len: usize,
}

impl Arena {
    /// An arena of `len` f32 values (at most one storage binding).
    pub fn new(ctx: &GpuContext, len: usize) -> Result<Arena, GpuError> {
        let bytes = (len.max(1) as u64) * 4;
        if bytes > ctx.max_binding() || len > u32::MAX as usize {
            return Err(GpuError::OutOfMemory(format!(
                "activation arena of {len} values exceeds the {}-byte storage binding limit",
                ctx.max_binding()
            )));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arena"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!("activation arena: {e}")));
        }
        Ok(Arena { buf, len })
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An f16 cache of `n_ctx` rows of `width` values (keys or values of one layer).
pub struct KvBuffer {
    pub(crate) buf: wgpu::Buffer,
    pub width: usize,
    pub n_ctx: usize,
}

impl KvBuffer {
    pub fn new(ctx: &GpuContext, n_ctx: usize, width: usize) -> Result<KvBuffer, GpuError> {
        if width == 0 || !width.is_multiple_of(2) {
            return Err(GpuError::Unsupported(format!(
                "KV width {width} must be even"
            )));
        }
        let bytes = (n_ctx.max(1) as u64) * width as u64 * 2;
        if bytes > ctx.max_binding() {
            return Err(GpuError::OutOfMemory(format!(
                "KV cache of {n_ctx} x {width} exceeds the storage binding limit"
            )));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kv"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!("KV cache: {e}")));
        }
        Ok(KvBuffer { buf, width, n_ctx })
    }
    pub fn size_bytes(&self) -> u64 {
        self.buf.size()
    }
}

/// Shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub ntok: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Cache position of the first token (the cache already holds its keys).
    pub pos0: usize,
    /// Attend only to the last `window` positions; 0 = all.
    pub window: usize,
    pub scale: f32,
}

struct Dispatch {
    pipe: Arc<Pipeline>,
    params: [u32; 16],
    bufs: Vec<wgpu::Buffer>,
    groups: [u32; 3],
}

/// Ops recorded for one submit. Offsets and lengths are in f32 elements of the arena.
pub struct Recorder<'a> {
    pub(crate) ctx: &'a GpuContext,
    arena: &'a Arena,
    ops: Vec<Dispatch>,
    writes: Vec<(usize, Vec<u32>)>,
    reads: Vec<(usize, usize)>,
}

fn params(v: &[u32]) -> [u32; 16] {
    let mut p = [0u32; 16];
    p[..v.len()].copy_from_slice(v);
    p
}

pub(crate) fn u(x: usize) -> u32 {
    x as u32
}

/// Workgroups for `n` items along x then y (each at most 65535).
pub(crate) fn grid(n: usize) -> Result<(u32, u32), GpuError> {
    let gx = n.clamp(1, 65535);
    let gy = n.div_ceil(gx).max(1);
    if gy > 65535 {
        return Err(GpuError::Unsupported(format!("{n} workgroups is too many")));
    }
    Ok((gx as u32, gy as u32))
}

impl<'a> Recorder<'a> {
    pub fn new(ctx: &'a GpuContext, arena: &'a Arena) -> Recorder<'a> {
        Recorder {
            ctx,
            arena,
            ops: Vec::new(),
            writes: Vec::new(),
            reads: Vec::new(),
        }
    }

    pub(crate) fn check(
        &self,
        what: impl std::fmt::Display,
        off: usize,
        len: usize,
    ) -> Result<(), GpuError> {
        if off.checked_add(len).is_none_or(|e| e > self.arena.len) {
            return Err(GpuError::Unsupported(format!(
                "{what}: range {off}+{len} is outside the arena ({})",
                self.arena.len
            )));
        }
        Ok(())
    }

    pub(crate) fn push(
        &mut self,
        op: Op,
        dtype: Option<GgmlType>,
        p: &[u32],
        bufs: Vec<wgpu::Buffer>,
        groups: [u32; 3],
    ) -> Result<(), GpuError> {
        let op = match op {
            Op::Named(
                n @ crate::pipelines::Named {
                    fma_fused: None, ..
                },
            ) => Op::Named(crate::pipelines::Named {
                fma_fused: Some(self.ctx.fma_fused()?),
                ..n
            }),
            op => op,
        };
        let pipe = self.ctx.pipeline(key(self.ctx, op, dtype))?;
        self.ops.push(Dispatch {
            pipe,
            params: params(p),
            bufs,
            groups,
        });
        Ok(())
    }

    pub(crate) fn arena_buf(&self) -> wgpu::Buffer {
        self.arena.buf.clone()
    }

    /// Copy `data` into the arena at `off` before the ops run.
    pub fn write(&mut self, off: usize, data: &[f32]) -> Result<(), GpuError> {
        self.check("write", off, data.len())?;
        self.writes
            .push((off, data.iter().map(|v| v.to_bits()).collect()));
        Ok(())
    }

    /// Copy u32 values (token ids) into the arena at `off` before the ops run.
    pub fn write_u32(&mut self, off: usize, data: &[u32]) -> Result<(), GpuError> {
        self.check("write", off, data.len())?;
        self.writes.push((off, data.to_vec()));
        Ok(())
    }

    /// Read `len` values at `off` after all ops; returns its index in [`Recorder::submit`]'s result.
    pub fn read(&mut self, off: usize, len: usize) -> Result<usize, GpuError> {
        self.check("read", off, len)?;
        self.reads.push((off, len));
        Ok(self.reads.len() - 1)
    }

    /// `y[t][r] = W[r] · x[t]` for `ntok` rows of `x` (`w.cols` wide, contiguous, `x` a
    /// multiple of 4) into rows of `y` (`w.rows` wide): the matrix×vector shader for one token, the tiled
    /// matrix×matrix shader for more.
    pub fn matmul(
        &mut self,
        w: &GpuTensor,
        x: usize,
        y: usize,
        ntok: usize,
    ) -> Result<(), GpuError> {
        self.matmul_inner(w, x, y, ntok, None)
    }

    /// [`Recorder::matmul`] over activations that [`Recorder::quantize_act`] rounded to
    /// `act`: with Q8_1 the weights' block minimums (Q4_1) multiply the f16 block sums
    /// it stored after the values, exactly as the CPU kernels do.
    pub fn matmul_quantized(
        &mut self,
        w: &GpuTensor,
        act: GgmlType,
        xq: usize,
        y: usize,
        ntok: usize,
    ) -> Result<(), GpuError> {
        let sums = (act == GgmlType::Q8_1).then_some(xq + ntok * w.cols);
        if let Some(s) = sums {
            self.check("matmul block sums", s, ntok * w.cols / 32)?;
        }
        self.matmul_inner(w, xq, y, ntok, sums)
    }

    fn matmul_inner(
        &mut self,
        w: &GpuTensor,
        x: usize,
        y: usize,
        ntok: usize,
        sums: Option<usize>,
    ) -> Result<(), GpuError> {
        self.check("matmul input", x, ntok * w.cols)?;
        self.check("matmul output", y, ntok * w.rows)?;
        let (op, tile) = if ntok == 1 {
            (Op::MatVec, 1)
        } else {
            (Op::MatMul, crate::pipelines::MM_TILE as usize)
        };
        let tiles = ntok.div_ceil(tile);
        if tiles > 65535 {
            return Err(GpuError::Unsupported(format!(
                "{ntok} tokens in one matmul"
            )));
        }
        if !x.is_multiple_of(4) || !w.cols.is_multiple_of(4) {
            return Err(GpuError::Unsupported(format!(
                "matmul input offset {x} is not a multiple of 4"
            )));
        }
        for win in &w.windows {
            let (gx, gy) = grid(win.rows.div_ceil(MM_ROWS))?;
            self.push(
                op,
                Some(w.dtype),
                &[
                    u(win.rows),
                    u(w.cols),
                    u(ntok),
                    u(x),
                    u(w.cols),
                    u(y),
                    u(w.rows),
                    u(win.row0),
                    gx,
                    u(sums.unwrap_or(0)),
                    u(sums.is_some() as usize),
                ],
                vec![self.arena_buf(), win.buf.clone()],
                [gx, gy, tiles as u32],
            )?;
        }
        Ok(())
    }

    /// Embedding lookup: `y[t] = scale · table[ids[t]]`; ids are u32 values in the arena at `ids`.
    pub fn get_rows(
        &mut self,
        table: &GpuTensor,
        ids: usize,
        y: usize,
        ntok: usize,
        scale: f32,
    ) -> Result<(), GpuError> {
        self.check("get_rows ids", ids, ntok)?;
        self.check("get_rows output", y, ntok * table.cols)?;
        for win in &table.windows {
            self.push(
                Op::GetRows,
                Some(table.dtype),
                &[
                    u(ntok),
                    u(table.cols),
                    u(ids),
                    u(y),
                    u(win.row0),
                    u(win.rows),
                    scale.to_bits(),
                ],
                vec![self.arena_buf(), win.buf.clone()],
                [u(ntok), 1, 1],
            )?;
        }
        Ok(())
    }

    fn vector_buf(
        &self,
        w: Option<&GpuTensor>,
        n: usize,
        what: &str,
    ) -> Result<wgpu::Buffer, GpuError> {
        match w {
            Some(t) => {
                if t.dtype != GgmlType::F32 || t.rows != 1 || t.cols != n {
                    return Err(GpuError::Unsupported(format!(
                        "{what}: {} is not an f32 vector of {n}",
                        t.name
                    )));
                }
                Ok(t.windows[0].buf.clone())
            }
            // Unused by the shader; a placeholder satisfies the layout.
            None => Ok(self.ctx.dummy.clone()),
        }
    }

    /// RMSNorm of `rows` rows of `n`: `y = x / sqrt(mean(x²) + eps) · weight` (x == y: in place).
    pub fn rms_norm(
        &mut self,
        x: usize,
        y: usize,
        rows: usize,
        n: usize,
        weight: Option<&GpuTensor>,
        eps: f32,
    ) -> Result<(), GpuError> {
        self.check("rms_norm input", x, rows * n)?;
        self.check("rms_norm output", y, rows * n)?;
        let wb = self.vector_buf(weight, n, "rms_norm")?;
        let (gx, gy) = grid(rows)?;
        self.push(
            Op::RmsNorm,
            None,
            &[
                u(rows),
                u(n),
                u(x),
                u(y),
                u(weight.is_some() as usize),
                eps.to_bits(),
                gx,
            ],
            vec![self.arena_buf(), wb],
            [gx, gy, 1],
        )
    }

    /// Softmax of `scale · x` over each of `rows` rows of `n`, in place.
    pub fn softmax(
        &mut self,
        off: usize,
        rows: usize,
        n: usize,
        scale: f32,
    ) -> Result<(), GpuError> {
        self.check("softmax", off, rows * n)?;
        let (gx, gy) = grid(rows)?;
        self.push(
            Op::Softmax,
            None,
            &[u(rows), u(n), u(off), scale.to_bits(), gx],
            vec![self.arena_buf()],
            [gx, gy, 1],
        )
    }

    pub(crate) fn elementwise_groups(&self, n: usize, wg: u32) -> Result<(u32, u32), GpuError> {
        grid(n.div_ceil(wg as usize))
    }

    /// An elementwise op on `n` values at `x` (second operand at `y`, scalar `f`); see [`Ew`].
    pub fn ew(&mut self, op: Ew, x: usize, y: usize, n: usize, f: f32) -> Result<(), GpuError> {
        self.check("elementwise", x, n)?;
        if matches!(
            op,
            Ew::Add | Ew::Mul | Ew::Swiglu | Ew::Geglu | Ew::GegluF16 | Ew::Copy
        ) {
            self.check("elementwise operand", y, n)?;
        }
        let op = Op::Elementwise(op);
        let (gx, gy) = self.elementwise_groups(n, op.workgroup())?;
        self.push(
            op,
            None,
            &[u(n), u(x), u(y), 0, f.to_bits(), gx],
            vec![self.arena_buf()],
            [gx, gy, 1],
        )
    }

    /// Round `n` activations at `x` to the values the CPU kernels multiply `act`
    /// (Q8_0, Q8_1 or Q8_K) activations with, writing them at `y` (may equal `x`);
    /// Q8_1 also writes its f16 block sums at `y + n` (`n / 32` values).
    pub fn quantize_act(
        &mut self,
        act: GgmlType,
        x: usize,
        y: usize,
        n: usize,
    ) -> Result<(), GpuError> {
        let (kind, blen) = match act {
            GgmlType::Q8_0 => (0, 32),
            GgmlType::Q8_1 => (2, 32),
            GgmlType::Q8K => (1, 256),
            _ => {
                return Err(GpuError::Unsupported(format!(
                    "activations cannot be quantized to {act}"
                )))
            }
        };
        if !n.is_multiple_of(blen) {
            return Err(GpuError::Unsupported(format!(
                "{n} activations are not whole {act} blocks"
            )));
        }
        self.check("quantize_act input", x, n)?;
        self.check("quantize_act output", y, n)?;
        if kind == 2 {
            self.check("quantize_act block sums", y + n, n / blen)?;
        }
        let op = Op::QuantizeAct;
        let (gx, gy) = self.elementwise_groups(n / blen, op.workgroup())?;
        self.push(
            op,
            None,
            &[u(n / blen), u(x), u(y), kind, gx, u(y + n)],
            vec![self.arena_buf()],
            [gx, gy, 1],
        )
    }

    /// `x[r][i] += bias[i]` over `rows` rows of `bias.cols`.
    pub fn add_bias(&mut self, x: usize, rows: usize, bias: &GpuTensor) -> Result<(), GpuError> {
        let m = bias.cols;
        self.check("add_bias", x, rows * m)?;
        let wb = self.vector_buf(Some(bias), m, "add_bias")?;
        let op = Op::AddW;
        let n = rows * m;
        let (gx, gy) = self.elementwise_groups(n, op.workgroup())?;
        self.push(
            op,
            None,
            &[u(n), u(x), 0, u(m), 0, gx],
            vec![self.arena_buf(), wb],
            [gx, gy, 1],
        )
    }

    /// RoPE in place on `ntok` rows of `n_head` heads of `head_dim`; `cs` holds
    /// `(cos, sin)` per token and rotated pair (see [`rope_table`]).
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &mut self,
        x: usize,
        ntok: usize,
        n_head: usize,
        head_dim: usize,
        n_rot: usize,
        cs: usize,
        style: RopeStyle,
    ) -> Result<(), GpuError> {
        if n_rot == 0 || !n_rot.is_multiple_of(2) || n_rot > head_dim {
            return Err(GpuError::Unsupported(format!(
                "rope: n_rot {n_rot} does not fit head size {head_dim}"
            )));
        }
        self.check("rope", x, ntok * n_head * head_dim)?;
        self.check("rope table", cs, ntok * n_rot)?;
        let op = Op::Rope;
        let (gx, gy) = self.elementwise_groups(ntok * n_head * n_rot / 2, op.workgroup())?;
        self.push(
            op,
            None,
            &[
                u(ntok),
                u(n_head),
                u(head_dim),
                u(n_rot),
                u(x),
                u(cs),
                u((style == RopeStyle::Neox) as usize),
                gx,
            ],
            vec![self.arena_buf()],
            [gx, gy, 1],
        )
    }

    /// Store `ntok` rows of `cache.width` values at `x` into the cache at position `pos0` (as f16).
    pub fn kv_store(
        &mut self,
        cache: &KvBuffer,
        x: usize,
        ntok: usize,
        pos0: usize,
    ) -> Result<(), GpuError> {
        self.check("kv_store", x, ntok * cache.width)?;
        if pos0 + ntok > cache.n_ctx {
            return Err(GpuError::Unsupported(format!(
                "KV cache overflow: {pos0} + {ntok} > {}",
                cache.n_ctx
            )));
        }
        let op = Op::KvStore;
        let (gx, gy) = self.elementwise_groups(ntok * cache.width / 2, op.workgroup())?;
        self.push(
            op,
            None,
            &[u(ntok), u(cache.width), u(x), u(pos0), gx],
            vec![self.arena_buf(), cache.buf.clone()],
            [gx, gy, 1],
        )
    }

    /// What both attention shaders need of the heads, caches and arena regions
    /// (`what` names the caller in the error).
    pub(crate) fn check_attention(
        &self,
        what: &str,
        k: &KvBuffer,
        v: &KvBuffer,
        q: usize,
        out: usize,
        s: &AttnShape,
    ) -> Result<(), GpuError> {
        if s.n_head_kv == 0 || !s.n_head.is_multiple_of(s.n_head_kv) {
            return Err(GpuError::Unsupported(format!(
                "{what}: {} heads over {} kv heads",
                s.n_head, s.n_head_kv
            )));
        }
        if k.width != s.n_head_kv * s.head_dim_k || v.width != s.n_head_kv * s.head_dim_v {
            return Err(GpuError::Unsupported(format!(
                "{what}: cache width does not match the heads"
            )));
        }
        if s.pos0 + s.ntok > k.n_ctx || s.pos0 + s.ntok > v.n_ctx {
            return Err(GpuError::Unsupported(format!(
                "{what}: positions beyond the cache"
            )));
        }
        // format_args!: the names are only written out on an error.
        self.check(
            format_args!("{what} q"),
            q,
            s.ntok * s.n_head * s.head_dim_k,
        )?;
        self.check(
            format_args!("{what} out"),
            out,
            s.ntok * s.n_head * s.head_dim_v,
        )
    }

    /// Causal attention of `s.ntok` query rows at `q` (`n_head × head_dim_k` each)
    /// over the caches, writing `n_head × head_dim_v` per token at `out`.
    pub fn attention(
        &mut self,
        k: &KvBuffer,
        v: &KvBuffer,
        q: usize,
        out: usize,
        s: AttnShape,
    ) -> Result<(), GpuError> {
        let max = MAX_HEAD_DIM as usize;
        if s.head_dim_k > max
            || s.head_dim_v > max
            || !s.head_dim_k.is_multiple_of(2)
            || !s.head_dim_v.is_multiple_of(2)
        {
            return Err(GpuError::Unsupported(format!(
                "attention: head sizes {}/{} (the GPU shader takes even sizes up to {max})",
                s.head_dim_k, s.head_dim_v
            )));
        }
        self.check_attention("attention", k, v, q, out, &s)?;
        let (gx, gy) = grid(s.ntok * s.n_head)?;
        self.push(
            Op::Attention,
            None,
            &[
                u(s.ntok),
                u(s.n_head),
                u(s.n_head / s.n_head_kv),
                u(s.head_dim_k),
                u(s.head_dim_v),
                u(q),
                u(out),
                u(s.pos0),
                u(s.window),
                s.scale.to_bits(),
                u(k.width),
                u(v.width),
                gx,
            ],
            vec![self.arena_buf(), k.buf.clone(), v.buf.clone()],
            [gx, gy, 1],
        )
    }

    /// Ops recorded so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Run everything in one command buffer and return the reads, in order.
    pub fn submit(self) -> Result<Vec<Vec<f32>>, GpuError> {
        let ctx = self.ctx;
        let dev = &ctx.device;
        ctx.take_errors()?;
        // Scopes are per thread, so errors land with the submit that caused them.
        let oom = dev.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let stride = (ctx.limits.min_uniform_buffer_offset_alignment as u64).max(PARAM_BYTES);
        let mut pbytes = vec![0u8; (self.ops.len().max(1) as u64 * stride) as usize];
        for (i, d) in self.ops.iter().enumerate() {
            let o = i * stride as usize;
            pbytes[o..o + PARAM_BYTES as usize].copy_from_slice(bytemuck::cast_slice(&d.params));
        }
        let pbuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &pbytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        for (off, data) in &self.writes {
            ctx.queue
                .write_buffer(&self.arena.buf, *off as u64 * 4, bytemuck::cast_slice(data));
        }
        let groups: Vec<wgpu::BindGroup> = self
            .ops
            .iter()
            .map(|d| {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &pbuf,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAM_BYTES),
                    }),
                }];
                for (i, b) in d.bufs.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: b.as_entire_binding(),
                    });
                }
                dev.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &d.pipe.layout,
                    entries: &entries,
                })
            })
            .collect();
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("ops"),
                timestamp_writes: None,
            });
            for (i, (d, bg)) in self.ops.iter().zip(&groups).enumerate() {
                pass.set_pipeline(&d.pipe.pipeline);
                pass.set_bind_group(0, bg, &[(i as u64 * stride) as u32]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        let staging: Vec<wgpu::Buffer> = self
            .reads
            .iter()
            .map(|&(off, len)| {
                let b = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: (len.max(1) * 4) as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                if len > 0 {
                    enc.copy_buffer_to_buffer(
                        &self.arena.buf,
                        off as u64 * 4,
                        &b,
                        0,
                        len as u64 * 4,
                    );
                }
                b
            })
            .collect();
        ctx.queue.submit([enc.finish()]);
        let val = pollster::block_on(val.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = val.or(oom) {
            return Err(GpuError::Wgpu(e.to_string()));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        for b in &staging {
            let tx = tx.clone();
            b.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        }
        drop(tx);
        dev.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Wgpu(format!("waiting for the GPU: {e}")))?;
        ctx.take_errors()?;
        for r in rx.iter() {
            r.map_err(|e| GpuError::Wgpu(format!("reading back results: {e}")))?;
        }
        let mut out = Vec::with_capacity(staging.len());
        for (b, &(_, len)) in staging.iter().zip(&self.reads) {
            let view = b
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Wgpu(format!("reading back results: {e}")))?;
            let v: Vec<f32> = bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec();
            drop(view);
            b.unmap();
            out.push(v);
        }
        Ok(out)
    }
}

/// `(cos, sin)` of every rotated pair for each position, interleaved, as
/// [`kernels::ops::Rope::cos_sin`] computes them (for [`Recorder::rope`]).
pub fn rope_table(
    rope: &kernels::ops::Rope,
    positions: impl IntoIterator<Item = usize>,
) -> Vec<f32> {
    let mut cs = Vec::new();
    let mut out = Vec::new();
    for p in positions {
        rope.cos_sin(p, &mut cs);
        for &(c, s) in &cs {
            out.push(c);
            out.push(s);
        }
    }
    out
}

//! Weights on the GPU, repacked from GGUF blocks into 4-byte-aligned layouts, and
//! split into windows of whole rows when larger than one storage binding allows.

use crate::{GpuContext, GpuError};
use kernels::GgmlType;
use wgpu::util::DeviceExt;

/// One buffer holding rows `row0 .. row0 + rows` of a tensor.
pub(crate) struct Window {
    pub buf: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// A weight matrix (`rows` × `cols`) or vector (1 × `cols`) in GPU memory.
pub struct GpuTensor {
    pub name: String,
    pub dtype: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub(crate) windows: Vec<Window>,
    bytes: u64,
}

impl std::fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuTensor({} {} {}x{}, {} window(s))",
            self.name,
            self.dtype,
            self.rows,
            self.cols,
            self.windows.len()
        )
    }
}

/// Elements per GPU block and u32 words per GPU block of a matrix type (see the
/// `dtype_*.wgsl` decoders); float rows are taken 8 elements at a time.
pub(crate) fn gpu_block(t: GgmlType) -> Option<(usize, usize)> {
    Some(match t {
        GgmlType::F32 => (8, 8),
        GgmlType::F16 => (8, 4),
        GgmlType::Q4_0 | GgmlType::Q4_1 => (32, 5),
        GgmlType::Q5_0 => (32, 6),
        GgmlType::Q8_0 => (32, 9),
        GgmlType::Q4K => (256, 36),
        GgmlType::Q6K => (256, 53),
        _ => return None,
    })
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn half_word(b: &[u8], i: usize) -> u32 {
    u16::from_le_bytes([b[i], b[i + 1]]) as u32
}

/// Append one GGUF row's blocks in the GPU layout. Blocks whose quants would straddle
/// words (Q4_0, Q5_0, Q8_0 and Q6_K's trailing scale) get the scale padded to a word.
fn repack_row(t: GgmlType, src: &[u8], out: &mut Vec<u32>) {
    let bb = t.block_bytes();
    match t {
        GgmlType::F32 | GgmlType::F16 | GgmlType::Q4_1 | GgmlType::Q4K => {
            out.extend(src.chunks_exact(4).map(|c| word(c, 0)));
        }
        GgmlType::Q4_0 | GgmlType::Q8_0 => {
            for b in src.chunks_exact(bb) {
                out.push(half_word(b, 0));
                out.extend(b[2..].chunks_exact(4).map(|c| word(c, 0)));
            }
        }
        GgmlType::Q5_0 => {
            for b in src.chunks_exact(bb) {
                out.push(half_word(b, 0));
                out.extend(b[2..].chunks_exact(4).map(|c| word(c, 0)));
            }
        }
        GgmlType::Q6K => {
            for b in src.chunks_exact(bb) {
                out.extend(b[..208].chunks_exact(4).map(|c| word(c, 0)));
                out.push(half_word(b, 208));
            }
        }
        _ => unreachable!("checked by gpu_block"),
    }
}

impl GpuTensor {
    /// Upload a matrix of `rows` × `cols` stored as GGUF `dtype` rows.
    pub fn upload(
        ctx: &GpuContext,
        name: &str,
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<GpuTensor, GpuError> {
        GpuTensor::upload_windowed(ctx, name, dtype, rows, cols, bytes, ctx.max_binding())
    }

    /// [`GpuTensor::upload`] with windows of at most `window_bytes` (tests exercise
    /// windowing on small tensors with this).
    pub fn upload_windowed(
        ctx: &GpuContext,
        name: &str,
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
        window_bytes: u64,
    ) -> Result<GpuTensor, GpuError> {
        let (blen, bwords) = gpu_block(dtype).ok_or_else(|| {
            GpuError::Unsupported(format!("{name}: no GPU shader for {dtype} weights"))
        })?;
        if cols == 0 || rows == 0 || !cols.is_multiple_of(blen) {
            return Err(GpuError::Unsupported(format!(
                "{name}: {rows}x{cols} {dtype} is not whole GPU blocks of {blen}"
            )));
        }
        let rb = dtype
            .row_bytes(cols)
            .ok_or_else(|| GpuError::Unsupported(format!("{name}: bad row size")))?;
        if rows.checked_mul(rb) != Some(bytes.len()) {
            return Err(GpuError::Unsupported(format!(
                "{name}: {} bytes for {rows}x{cols} {dtype} (want {})",
                bytes.len(),
                rows.saturating_mul(rb)
            )));
        }
        let row_words = cols / blen * bwords;
        let row_gpu_bytes = row_words as u64 * 4;
        let per_window = (window_bytes.min(ctx.max_binding()) / row_gpu_bytes) as usize;
        if per_window == 0 {
            return Err(GpuError::Unsupported(format!(
                "{name}: one row ({row_gpu_bytes} bytes) exceeds the storage binding limit"
            )));
        }
        let mut windows = Vec::new();
        let mut words = Vec::new();
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        for row0 in (0..rows).step_by(per_window) {
            let n = per_window.min(rows - row0);
            words.clear();
            words.reserve(n * row_words);
            for r in row0..row0 + n {
                repack_row(dtype, &bytes[r * rb..(r + 1) * rb], &mut words);
            }
            debug_assert_eq!(words.len(), n * row_words);
            let buf = ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(name),
                    contents: bytemuck::cast_slice(&words),
                    usage: wgpu::BufferUsages::STORAGE,
                });
            windows.push(Window { buf, row0, rows: n });
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!("{name}: {e}")));
        }
        Ok(GpuTensor {
            name: name.to_string(),
            dtype,
            rows,
            cols,
            windows,
            bytes: rows as u64 * row_gpu_bytes,
        })
    }

    /// Upload an f32 vector (norm weight, bias).
    pub fn upload_f32(ctx: &GpuContext, name: &str, data: &[f32]) -> Result<GpuTensor, GpuError> {
        if data.is_empty() || data.len() as u64 * 4 > ctx.max_binding() {
            return Err(GpuError::Unsupported(format!(
                "{name}: {} values do not fit one binding",
                data.len()
            )));
        }
        let buf = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            });
        Ok(GpuTensor {
            name: name.to_string(),
            dtype: GgmlType::F32,
            rows: 1,
            cols: data.len(),
            windows: vec![Window {
                buf,
                row0: 0,
                rows: 1,
            }],
            bytes: data.len() as u64 * 4,
        })
    }

    /// Bytes of GPU memory held.
    pub fn size_bytes(&self) -> u64 {
        self.bytes
    }

    /// Windows the tensor is bound in (more than one when it exceeds the binding limit).
    pub fn windows(&self) -> usize {
        self.windows.len()
    }
}

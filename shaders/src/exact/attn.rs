//! Exact-path attention (see `super`): the f16 KV store and engine
//! `attention::attend` / `attend_tiled` (llama.cpp's CPU flash attention, under and
//! from [`FA_TILE`] rows) bit for bit, including glibc's `expf`
//! (`wgsl/exact/expf.wgsl`).

use super::op;
use crate::graph::{grid, u};
use crate::{AttnShape, GpuError, KvBuffer};
use kernels::ggml_math::{Flavor, FA_TILE};

const EXPF: &str = include_str!("../../wgsl/exact/expf.wgsl");

/// Largest head size of the attention shader (`AMAXD` in attn_common.wgsl).
const MAX_HEAD: usize = 256;

/// What attn_attend.wgsl and attn_tiled.wgsl share (parameters, bindings, cache reads,
/// the softmax divide).
const ATTN_COMMON: &str = include_str!("../../wgsl/exact/attn_common.wgsl");

pub(crate) fn body(name: &str) -> Option<String> {
    let with_expf = |b: &str| format!("{}\n{EXPF}\n{b}", expf_consts());
    Some(match name {
        "attn_expf" => with_expf(include_str!("../../wgsl/exact/attn_expf.wgsl")),
        "attn_attend" => with_expf(&format!(
            "{ATTN_COMMON}\n{}",
            include_str!("../../wgsl/exact/attn_attend.wgsl")
        )),
        "attn_tiled" => with_expf(&format!(
            "{ATTN_COMMON}\n{}",
            include_str!("../../wgsl/exact/attn_tiled.wgsl")
        )),
        "attn_kv_store" => include_str!("../../wgsl/exact/attn_kv_store.wgsl").to_string(),
        "attn_kv_dump" => include_str!("../../wgsl/exact/attn_kv_dump.wgsl").to_string(),
        _ => return None,
    })
}

/// `v` as `parts` f32 whose exact sum is `v` to the last bit (three cover a double).
fn split(v: f64, parts: usize) -> Vec<u32> {
    let mut rest = v;
    (0..parts)
        .map(|_| {
            let h = rest as f32;
            rest -= h as f64;
            h.to_bits()
        })
        .collect()
}

/// glibc's expf constants (sysdeps/ieee754/flt-32/e_exp2f_data.c, N = 32) as f32
/// bit patterns: `EXF_C` = InvLn2N in three parts, then C0, C1, C2 in two;
/// `EXF_T` = its table 2^(i/32) (the nearest double) in three parts per entry.
pub(crate) fn expf_consts() -> String {
    let inv_ln2_n = f64::from_bits(0x3ff7_1547_652b_82fe) * 32.0;
    let c0 = f64::from_bits(0x3fac_6af8_4b91_2394) / 32768.0;
    let c1 = f64::from_bits(0x3fce_bfce_50fa_c4f3) / 1024.0;
    let c2 = f64::from_bits(0x3fe6_2e42_ff0c_52d6) / 32.0;
    let mut c = split(inv_ln2_n, 3);
    for k in [c0, c1, c2] {
        c.extend(split(k, 2));
    }
    let t: Vec<u32> = (0..32)
        .flat_map(|i| split(2f64.powf(i as f64 / 32.0), 3))
        .collect();
    let list = |v: &[u32]| {
        v.iter()
            .map(|b| format!("{b:#010x}u"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "const EXF_C = array<u32, {}>({});\nconst EXF_T = array<u32, {}>({});\n",
        c.len(),
        list(&c),
        t.len(),
        list(&t)
    )
}

impl crate::Recorder<'_> {
    /// Store `ntok` rows of `kv.width` f32 values from arena offset `src` into rows
    /// `pos0..` of `kv` as f16, rounded to nearest even (as `half::f16::from_f32`).
    pub fn exact_kv_store(
        &mut self,
        src: usize,
        kv: &KvBuffer,
        pos0: usize,
        ntok: usize,
    ) -> Result<(), GpuError> {
        self.check("exact_kv_store", src, ntok * kv.width)?;
        if pos0 + ntok > kv.n_ctx {
            return Err(GpuError::Unsupported(format!(
                "KV cache overflow: {pos0} + {ntok} > {}",
                kv.n_ctx
            )));
        }
        if ntok == 0 {
            return Ok(());
        }
        let (gx, gy) = grid((ntok * kv.width / 2).div_ceil(64))?;
        self.push(
            op("attn_kv_store", 1, 0),
            None,
            &[u(ntok), u(kv.width), u(src), u(pos0), gx],
            vec![self.arena_buf(), kv.buf.clone()],
            [gx, gy, 1],
        )
    }

    /// Copy the raw f16 pairs (u32 words) of cache rows `row0..row0 + rows` into the
    /// arena at `dst` (`rows · width / 2` words), for tests: the cache buffer cannot
    /// be read back directly.
    #[doc(hidden)]
    pub fn exact_kv_dump(
        &mut self,
        kv: &KvBuffer,
        row0: usize,
        rows: usize,
        dst: usize,
    ) -> Result<(), GpuError> {
        let n = rows * kv.width / 2;
        self.check("exact_kv_dump", dst, n)?;
        if row0 + rows > kv.n_ctx {
            return Err(GpuError::Unsupported(
                "exact_kv_dump: rows beyond the cache".into(),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let (gx, gy) = grid(n.div_ceil(64))?;
        self.push(
            op("attn_kv_dump", 0, 1),
            None,
            &[u(n), u(row0 * kv.width / 2), u(dst), gx],
            vec![self.arena_buf(), kv.buf.clone()],
            [gx, gy, 1],
        )
    }

    /// Attention of one sequence with the bits of engine `attention::attend` (ntok <
    /// [`FA_TILE`]) or `attention::attend_tiled` (ntok >= [`FA_TILE`]): q at arena `q`
    /// (ntok × n_head × head_dim_k, RoPE'd), caches holding rows
    /// `0..shape.pos0 + ntok` (token t at position pos0 + t), out (ntok × n_head ×
    /// head_dim_v) at arena `out`. `shape.scale` is applied to the queries when
    /// `scale_queries`, else to the scores. Head sizes above 256 are
    /// `GpuError::Unsupported`, and so, for ntok < [`FA_TILE`], are head_dim_k not a
    /// multiple of the flavor's dot step (32 for AVX2, 64 for AVX-512: ggml's f64
    /// leftovers).
    #[allow(clippy::too_many_arguments)]
    pub fn exact_attention(
        &mut self,
        q: usize,
        k: &KvBuffer,
        v: &KvBuffer,
        out: usize,
        shape: AttnShape,
        scale_queries: bool,
        flavor: Flavor,
    ) -> Result<(), GpuError> {
        self.exact_attention_in_batch(q, k, v, out, shape, scale_queries, flavor, shape.ntok)
    }

    /// [`Self::exact_attention`] of one sequence of a batch of `batch_rows` query rows
    /// in all: the CPU (as llama.cpp) picks the kernel by the whole batch's rows, so a
    /// short sequence batched with others may take the tiled one.
    #[allow(clippy::too_many_arguments)]
    pub fn exact_attention_in_batch(
        &mut self,
        q: usize,
        k: &KvBuffer,
        v: &KvBuffer,
        out: usize,
        shape: AttnShape,
        scale_queries: bool,
        flavor: Flavor,
        batch_rows: usize,
    ) -> Result<(), GpuError> {
        let s = shape;
        let l = flavor.lanes();
        // llama.cpp switches to its tiled kernel (f32 accumulation) from FA_TILE rows.
        let tiled = batch_rows >= FA_TILE;
        if s.head_dim_k == 0
            || s.head_dim_v == 0
            || s.head_dim_k > MAX_HEAD
            || s.head_dim_v > MAX_HEAD
            || (!tiled && !s.head_dim_k.is_multiple_of(4 * l))
        {
            return Err(GpuError::Unsupported(format!(
                "exact attention: head sizes {}/{} (need K a multiple of {} and both <= {MAX_HEAD})",
                s.head_dim_k,
                s.head_dim_v,
                4 * l
            )));
        }
        self.check_attention("exact attention", k, v, q, out, &s)?;
        if s.ntok == 0 || s.n_head == 0 {
            return Ok(());
        }
        let (pre, post) = if scale_queries {
            (s.scale, 1.0f32)
        } else {
            (1.0, s.scale)
        };
        let (gx, gy) = grid(s.ntok * s.n_head)?;
        self.push(
            op(if tiled { "attn_tiled" } else { "attn_attend" }, 0, 2),
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
                pre.to_bits(),
                post.to_bits(),
                u(k.width),
                u(v.width),
                u(l),
                gx,
                0, // zero: see exf_z in expf.wgsl
            ],
            vec![self.arena_buf(), k.buf.clone(), v.buf.clone()],
            [gx, gy, 1],
        )
    }
}

/// glibc `expf` of each input on the GPU (for tests of `wgsl/exact/expf.wgsl`).
#[doc(hidden)]
pub fn expf(ctx: &crate::GpuContext, xs: &[f32]) -> Result<Vec<f32>, GpuError> {
    let n = xs.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let arena = crate::Arena::new(ctx, 2 * n)?;
    let mut rec = crate::Recorder::new(ctx, &arena);
    rec.write(0, xs)?;
    let (gx, gy) = grid(n.div_ceil(64))?;
    rec.push(
        op("attn_expf", 0, 0),
        None,
        &[u(n), gx, 0],
        vec![rec.arena_buf()],
        [gx, gy, 1],
    )?;
    rec.read(n, n)?;
    Ok(rec.submit()?.remove(0))
}

//! One forward chunk on the exact path ([`crate::exact`]): the CPU's forward pass
//! (`engine::model::Model::forward`) op for op, each op reproducing its bits, and the
//! same batch-dependent choices: which kernels a matrix product takes for how many
//! tokens, and the last layer dropping every row but the ones whose logits are read
//! once its attention output is projected.

use super::{GpuModel, Input, Layout, Seg};
use crate::graph::{Arena, AttnShape, Recorder};
use crate::pipelines::Ew;
use crate::{GpuError, GpuTensor};
use engine::model::Activation;

/// Whether llama.cpp repacks `w` (it never repacks the token embeddings, also when
/// they double as the output projection).
fn repack(w: &GpuTensor) -> bool {
    w.name != "token_embd.weight"
}

impl GpuModel {
    pub(super) fn chunk_exact(
        &self,
        arena: &Arena,
        lay: &Layout,
        segs: &[Seg],
        input: Input,
        logits: bool,
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let ex = self
            .exact
            .as_ref()
            .ok_or_else(|| GpuError::Unsupported("not on the exact path".into()))?;
        let hp = &self.hp;
        let d = hp.n_embd;
        let b: usize = segs.iter().map(|s| s.n).sum();
        let (qd, kd, vd, ad) = (
            hp.q_dim(),
            hp.kv_dim_k(),
            hp.kv_dim_v(),
            hp.n_head * hp.head_dim_v,
        );
        let mut r = Recorder::new(&self.ctx, arena);
        self.chunk_inputs(&mut r, lay, segs, input)?;
        let eps = hp.rms_eps;
        let mm = |r: &mut Recorder, w: &GpuTensor, x: usize, y: usize, n: usize| {
            r.exact_matmul(w, repack(w), x, y, n, lay.xq)
        };
        // Several matrices over one input: its activations are quantized once.
        let mms = |r: &mut Recorder, ws: &[(&GpuTensor, usize)], x: usize, n: usize| {
            let products: Vec<_> = ws.iter().map(|&(w, y)| (w, repack(w), y)).collect();
            r.exact_matmuls(&products, x, n, lay.xq)
        };
        // Rows still carried: every token until the last layer prunes to the
        // segments' last tokens (when their logits are wanted).
        let mut live = b;
        let n_gpu = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            let il = self.first_layer + i;
            r.exact_rms_norm(lay.x, lay.h, b, d, Some(&l.attn_norm), eps)?;
            mms(
                &mut r,
                &[(&l.wq, lay.q), (&l.wk, lay.k), (&l.wv, lay.v)],
                lay.h,
                b,
            )?;
            for (off, bias) in [(lay.q, &l.bq), (lay.k, &l.bk), (lay.v, &l.bv)] {
                if let Some(bias) = bias {
                    r.add_bias(off, b, bias)?;
                }
            }
            if let Some(w) = &l.q_norm {
                r.exact_rms_norm(lay.q, lay.q, b * hp.n_head, hp.head_dim_k, Some(w), eps)?;
            }
            if let Some(w) = &l.k_norm {
                r.exact_rms_norm(lay.k, lay.k, b * hp.n_head_kv, hp.head_dim_k, Some(w), eps)?;
            }
            let swa = hp.is_swa_layer(il);
            let cs = if swa { lay.cs_swa } else { lay.cs_global };
            for (x, heads) in [(lay.q, hp.n_head), (lay.k, hp.n_head_kv)] {
                r.exact_rope(x, b, heads, hp.head_dim_k, hp.n_rot, hp.rope_style, cs)?;
            }
            for s in segs {
                r.exact_kv_store(lay.k + s.t0 * kd, &s.cache.k[i], s.pos0, s.n)?;
                r.exact_kv_store(lay.v + s.t0 * vd, &s.cache.v[i], s.pos0, s.n)?;
                r.exact_attention_in_batch(
                    lay.q + s.t0 * qd,
                    &s.cache.k[i],
                    &s.cache.v[i],
                    lay.att + s.t0 * ad,
                    AttnShape {
                        ntok: s.n,
                        n_head: hp.n_head,
                        n_head_kv: hp.n_head_kv,
                        head_dim_k: hp.head_dim_k,
                        head_dim_v: hp.head_dim_v,
                        pos0: s.pos0,
                        window: if swa { hp.sliding_window } else { 0 },
                        scale: hp.attn_scale,
                    },
                    hp.scale_queries,
                    ex.flavor,
                    b,
                )?;
            }
            mm(&mut r, &l.wo, lay.att, lay.o, b)?;
            if logits && i + 1 == n_gpu && self.first_layer + n_gpu == hp.n_layer && segs.len() < b
            {
                // As the CPU (and llama.cpp): only the rows whose logits are read go on,
                // which also decides the kernels the last FFN meets.
                for (j, s) in segs.iter().enumerate() {
                    let row = s.t0 + s.n - 1;
                    if row != j {
                        r.ew(Ew::Copy, lay.x + row * d, lay.x + j * d, d, 0.0)?;
                        r.ew(Ew::Copy, lay.o + row * d, lay.o + j * d, d, 0.0)?;
                    }
                }
                live = segs.len();
            }
            if let Some(w) = &l.post_attn_norm {
                r.exact_rms_norm(lay.o, lay.o, live, d, Some(w), eps)?;
            }
            r.ew(Ew::Add, lay.x, lay.o, live * d, 0.0)?;
            r.exact_rms_norm(lay.x, lay.h, live, d, Some(&l.ffn_norm), eps)?;
            mms(
                &mut r,
                &[(&l.w_gate, lay.gate), (&l.w_up, lay.up)],
                lay.h,
                live,
            )?;
            match hp.activation {
                Activation::Silu => r.exact_swiglu(lay.gate, lay.up, live, hp.n_ff, ex.flavor)?,
                Activation::GeluTanh => {
                    let table = ex.gelu.as_ref().ok_or_else(|| {
                        GpuError::Unsupported("the GELU table is not on the GPU".into())
                    })?;
                    r.exact_geglu(table, lay.gate, lay.up, live * hp.n_ff)?
                }
            }
            mm(&mut r, &l.w_down, lay.gate, lay.o, live)?;
            if let Some(w) = &l.post_ffn_norm {
                r.exact_rms_norm(lay.o, lay.o, live, d, Some(w), eps)?;
            }
            r.ew(Ew::Add, lay.x, lay.o, live * d, 0.0)?;
        }
        if !logits {
            r.submit()?;
            return Ok(Vec::new());
        }
        let m = segs.len();
        for (j, s) in segs.iter().enumerate() {
            // After pruning the last tokens are rows 0..m; without it (one token per
            // segment) they already are.
            let row = if live == b { s.t0 + s.n - 1 } else { j };
            r.exact_rms_norm(
                lay.x + row * d,
                lay.fin + j * d,
                1,
                d,
                Some(&self.output_norm),
                eps,
            )?;
        }
        mm(&mut r, &self.output, lay.fin, lay.logits, m)?;
        let nv = hp.n_vocab;
        if let Some(cap) = hp.final_logit_softcap {
            r.ew(Ew::Softcap, lay.logits, 0, m * nv, cap)?;
        }
        r.read(lay.logits, m * nv)?;
        let all = r.submit()?.pop().unwrap_or_default();
        Ok(all.chunks(nv).map(|c| c.to_vec()).collect())
    }
}

//! Exact-path attention against the CPU, bit for bit: glibc `expf`
//! (`wgsl/exact/expf.wgsl`) against `f32::exp`, the f16 KV store against
//! `half::f16::from_f32`, and `Recorder::exact_attention` against engine
//! `attention::attend` (under 64 rows) and `attend_tiled` (64+) on the three models'
//! head shapes, in both llama.cpp flavors.

use ferrite_shaders::{exact, Arena, AttnShape, GpuContext, KvBuffer, Recorder};
use half::f16;
use kernels::ggml_math::{self, Flavor};

mod common;
use common::{ctx, Rng};

impl Rng {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }
    fn normal(&mut self, sd: f32) -> f32 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32 * sd
    }
}

fn expf_inputs() -> Vec<f32> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut xs = Vec::new();
    // Specials and the branch boundaries of glibc's expf.
    for b in [
        0u32,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_0001,
        0x7f80_0001,
        0x0000_0001,
        0x8000_0001,
        0x007f_ffff,
        0x807f_ffff,
        0x42b1_7217,
        0x42b1_7218,
        0xc2cf_f1b4,
        0xc2cf_f1b5,
        0xc2ce_8ec0,
        0x42b0_0000,
        0xc2b0_0000,
        0x42af_ffff,
        0xc2af_ffff,
        // Near-midpoint cases of the double-float emulation (see expf.wgsl).
        0x3380_0000,
        0x3b0b_4517,
        0xc2ad_4f24,
        0xc0d7_626b,
        0x3e73_ade2,
    ] {
        xs.push(f32::from_bits(b));
    }
    // Contiguous runs of bit patterns: around 0, ±1, the subnormal-result range
    // (x < -87.34) and the overflow edge.
    for (center, n) in [
        (0.0f32, 200_000u32),
        (-0.0, 200_000),
        (1.0, 100_000),
        (-1.0, 100_000),
        (-87.336_55, 100_000),
        (-103.278_93, 100_000),
        (-100.0, 50_000),
        (88.72, 50_000),
    ] {
        let b = center.to_bits();
        for i in 0..n {
            xs.push(f32::from_bits(b.wrapping_add(i).wrapping_sub(n / 2)));
        }
    }
    // Uniform over the whole range, dense over softmax's [-20, 0], and log-uniform
    // magnitudes for the small arguments.
    for _ in 0..1_000_000 {
        xs.push(r.uniform(-110.0, 89.0));
    }
    for _ in 0..2_000_000 {
        xs.push(r.uniform(-20.0, 0.0));
    }
    for _ in 0..1_000_000 {
        let e = 60 + (r.next() % 73) as u32; // 2^-67 .. 2^5
        let m = (r.next() as u32) & 0x7f_ffff;
        let s = ((r.next() & 1) as u32) << 31;
        xs.push(f32::from_bits(s | e << 23 | m));
    }
    xs
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn expf_is_glibc() {
    let ctx = ctx();
    let xs = expf_inputs();
    let mut bad = 0usize;
    let mut first = None;
    for chunk in xs.chunks(1 << 21) {
        let got = exact::attn::expf(&ctx, chunk).expect("expf runs");
        for (&x, &g) in chunk.iter().zip(&got) {
            let want = x.exp();
            if !same(g, want) {
                bad += 1;
                first.get_or_insert((x, want, g));
            }
        }
    }
    eprintln!(
        "{}: expf mismatches {bad} of {} inputs",
        ctx.adapter(),
        xs.len()
    );
    if let Some((x, want, got)) = first {
        panic!(
            "expf({x:e} = {:#010x}): CPU {want:e} ({:#010x}), GPU {got:e} ({:#010x})",
            x.to_bits(),
            want.to_bits(),
            got.to_bits()
        );
    }
}

#[test]
fn kv_store_rounds_like_half() {
    let ctx = ctx();
    let mut r = Rng(99);
    let (width, ntok, pos0, n_ctx) = (38usize, 9usize, 3usize, 16usize);
    let mut vals: Vec<f32> = Vec::new();
    // f16 ties (normal and subnormal), values just off a tie, overflow edges,
    // f32 subnormals, specials.
    for i in 0..64u32 {
        let h = f16::from_bits(((i * 977) % 0x7bff) as u16);
        let half_ulp = if h.to_bits() < 0x0400 {
            f32::from_bits(0x3300_0000) // 2^-25
        } else {
            f32::from_bits((h.to_f32().to_bits() & 0x7f80_0000) - (11 << 23))
        };
        vals.push(h.to_f32() + half_ulp);
        vals.push(-(h.to_f32() + half_ulp));
        vals.push(f32::from_bits((h.to_f32() + half_ulp).to_bits() + 1));
    }
    for v in [
        65504.0f32,
        65519.99,
        65520.0,
        -65520.0,
        1e6,
        -1e9,
        6.0e-8,
        2.98e-8,
        2.9802322e-8,
        5.96e-8,
        1e-30,
        -1e-30,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(1),
        f32::from_bits(0x8040_0000),
        6.1035156e-5,
        6.1e-5,
    ] {
        vals.push(v);
    }
    while vals.len() < width * ntok {
        let sd = [1e-6f32, 1e-3, 1.0, 300.0][vals.len() % 4];
        vals.push(r.normal(sd));
    }
    let arena = Arena::new(&ctx, width * ntok + width * n_ctx / 2).unwrap();
    let kv = KvBuffer::new(&ctx, n_ctx, width).unwrap();
    let mut rec = Recorder::new(&ctx, &arena);
    rec.write(0, &vals).unwrap();
    rec.exact_kv_store(0, &kv, pos0, ntok).unwrap();
    rec.exact_kv_dump(&kv, pos0, ntok, width * ntok).unwrap();
    rec.read(width * ntok, width * ntok / 2).unwrap();
    let words = rec.submit().unwrap().remove(0);
    for (i, &v) in vals.iter().enumerate() {
        let w = words[i / 2].to_bits();
        let got = if i % 2 == 0 { w & 0xffff } else { w >> 16 } as u16;
        let want = f16::from_f32(v).to_bits();
        assert_eq!(
            got,
            want,
            "f16 of {v:e} ({:#010x}) at {i}: GPU {got:#06x}, CPU {want:#06x}",
            v.to_bits()
        );
    }
    // Overflowing the cache is an error, not a panic.
    let mut rec = Recorder::new(&ctx, &arena);
    assert!(rec.exact_kv_store(0, &kv, n_ctx - 2, 3).is_err());
}

/// Head layout of one model.
#[derive(Clone, Copy, Debug)]
struct Heads {
    name: &'static str,
    n_head: usize,
    n_head_kv: usize,
    hd: usize,
    scale: f32,
    scale_queries: bool,
}

const SMOLLM2: Heads = Heads {
    name: "SmolLM2",
    n_head: 9,
    n_head_kv: 3,
    hd: 64,
    scale: 0.125,
    scale_queries: false,
};
const GEMMA3: Heads = Heads {
    name: "Gemma-3",
    n_head: 4,
    n_head_kv: 1,
    hd: 256,
    scale: 0.0625,
    scale_queries: true,
};
const QWEN25: Heads = Heads {
    name: "Qwen2.5",
    n_head: 14,
    n_head_kv: 2,
    hd: 64,
    scale: 0.125,
    scale_queries: false,
};

fn hparams(h: Heads) -> engine::model::HParams {
    use engine::model::{Activation, Arch, HParams, RopeStyle};
    HParams {
        arch: Arch::Llama,
        n_vocab: 1,
        n_layer: 1,
        n_embd: h.n_head * h.hd,
        n_ff: 1,
        n_head: h.n_head,
        n_head_kv: h.n_head_kv,
        head_dim_k: h.hd,
        head_dim_v: h.hd,
        n_ctx_train: 4096,
        rms_eps: 1e-6,
        rope_style: RopeStyle::Normal,
        n_rot: h.hd,
        rope_base: 10000.0,
        rope_base_swa: 10000.0,
        sliding_window: 0,
        swa_period: 0,
        activation: Activation::Silu,
        embd_scale: 1.0,
        attn_scale: h.scale,
        scale_queries: h.scale_queries,
        final_logit_softcap: None,
    }
}

/// engine `attend` for one sequence with the flavor as a parameter (the engine
/// reads it once from the environment): the same steps, in the same order.
#[allow(clippy::too_many_arguments)]
fn cpu_attend(
    flavor: Flavor,
    h: Heads,
    q: &[f32],
    kc: &[f16],
    vc: &[f16],
    pos0: usize,
    ntok: usize,
    window: usize,
) -> Vec<f32> {
    let hd = h.hd;
    let kd = h.n_head_kv * hd;
    let group = h.n_head / h.n_head_kv;
    let (pre, post) = if h.scale_queries {
        (h.scale, 1.0)
    } else {
        (1.0, h.scale)
    };
    let mut out = vec![0f32; ntok * h.n_head * hd];
    for (idx, o) in out.chunks_mut(hd).enumerate() {
        let (tok, head) = (idx / h.n_head, idx % h.n_head);
        let pos = pos0 + tok;
        let g = head / group;
        let q16: Vec<f16> = q[idx * hd..][..hd]
            .iter()
            .map(|&s| f16::from_f32(s * pre))
            .collect();
        let start = if window > 0 {
            (pos + 1).saturating_sub(window)
        } else {
            0
        };
        let mut acc = vec![f16::ZERO; hd];
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
        for p in start..=pos {
            let s = ggml_math::dot_f16(flavor, &kc[p * kd + g * hd..][..hd], &q16) * post;
            let (ms, vs) = if s > max {
                let ms = (max - s).exp();
                max = s;
                kernels::attn::scale_f16(&mut acc, ms);
                (ms, 1.0)
            } else {
                (1.0, (s - max).exp())
            };
            kernels::attn::mad_f16(&mut acc, &vc[p * kd + g * hd..][..hd], vs);
            sum = sum.mul_add(ms, vs);
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for (d, a) in o.iter_mut().zip(&acc) {
            *d = a.to_f32() * inv;
        }
    }
    out
}

/// engine `attend_tiled` for one sequence with the flavor as a parameter.
#[allow(clippy::too_many_arguments)]
fn cpu_attend_tiled(
    flavor: Flavor,
    h: Heads,
    q: &[f32],
    kc: &[f16],
    vc: &[f16],
    pos0: usize,
    ntok: usize,
    window: usize,
) -> Vec<f32> {
    use ggml_math::FA_TILE;
    let hd = h.hd;
    let kd = h.n_head_kv * hd;
    let group = h.n_head / h.n_head_kv;
    let len = kc.len() / kd;
    let (pre, scale) = if h.scale_queries {
        (h.scale, 1.0)
    } else {
        (1.0, h.scale)
    };
    let mut out = vec![0f32; ntok * h.n_head * hd];
    for (idx, o) in out.chunks_mut(hd).enumerate() {
        let (tok, head) = (idx / h.n_head, idx % h.n_head);
        let pos = pos0 + tok;
        let g = head / group;
        let qf: Vec<f32> = q[idx * hd..][..hd].iter().map(|&s| s * pre).collect();
        let first = if window > 0 {
            (pos + 1).saturating_sub(window)
        } else {
            0
        };
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
        let mut s = [0f32; FA_TILE];
        for ic in (0..=pos).step_by(FA_TILE) {
            let live = |c: usize| c >= first && c <= pos;
            if !(ic..ic + FA_TILE).any(live) {
                continue;
            }
            let mut kt = vec![0f32; hd * FA_TILE];
            for j in 0..FA_TILE.min(len - ic) {
                for e in 0..hd {
                    kt[e * FA_TILE + j] = kc[(ic + j) * kd + g * hd + e].to_f32();
                }
            }
            ggml_math::fa_scores(&qf, &kt, &mut s);
            for (j, v) in s.iter_mut().enumerate() {
                *v = if live(ic + j) {
                    *v * scale + 0.0
                } else {
                    f32::NEG_INFINITY
                };
            }
            let tmax = s
                .iter()
                .fold(f32::NEG_INFINITY, |t, &v| if t > v { t } else { v });
            let m_new = m.max(tmax);
            if m_new > m {
                let ms = (m - m_new).exp();
                o.iter_mut().for_each(|a| *a *= ms);
                sum *= ms;
            }
            m = m_new;
            let tile_sum = ggml_math::fa_exp_sum(flavor, &mut s, m);
            sum = (sum as f64 + tile_sum) as f32;
            for (j, &p) in s.iter().enumerate() {
                let c = ic + j;
                if live(c) && p != 0.0 {
                    ggml_math::fa_accumulate(o, p, &vc[c * kd + g * hd..][..hd]);
                }
            }
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        o.iter_mut().for_each(|a| *a *= inv);
    }
    out
}

/// Random q, k, v: scores spanning about ±20 (some keys and queries larger), values
/// of mixed magnitudes.
fn random_qkv(r: &mut Rng, h: Heads, len: usize, ntok: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let kd = h.n_head_kv * h.hd;
    // Score sd = |q|·|k|·scale ≈ σq σk √hd · scale (√hd · scale = 1 for these models).
    let q: Vec<f32> = (0..ntok * h.n_head * h.hd)
        .map(|i| {
            let boost = if (i / h.hd).is_multiple_of(5) {
                2.0
            } else {
                1.0
            };
            r.normal(4.0 * boost)
        })
        .collect();
    let k: Vec<f32> = (0..len * kd)
        .map(|i| {
            let row = i / kd;
            let boost = [1.0, 1.0, 1.0, 2.5, 0.3][row % 5];
            r.normal(2.0 * boost)
        })
        .collect();
    let v: Vec<f32> = (0..len * kd)
        .map(|i| r.normal([1.0, 0.05, 8.0][(i / 7) % 3]))
        .collect();
    (q, k, v)
}

#[allow(clippy::too_many_arguments)]
fn gpu_attend(
    ctx: &GpuContext,
    flavor: Flavor,
    h: Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pos0: usize,
    ntok: usize,
    window: usize,
) -> Vec<f32> {
    let kd = h.n_head_kv * h.hd;
    let len = pos0 + ntok;
    let n_ctx = len + 3;
    let (qo, ko, vo) = (0, q.len(), q.len() + k.len());
    let oo = vo + v.len();
    let arena = Arena::new(ctx, oo + ntok * h.n_head * h.hd).unwrap();
    let kc = KvBuffer::new(ctx, n_ctx, kd).unwrap();
    let vc = KvBuffer::new(ctx, n_ctx, kd).unwrap();
    let mut rec = Recorder::new(ctx, &arena);
    rec.write(qo, q).unwrap();
    rec.write(ko, k).unwrap();
    rec.write(vo, v).unwrap();
    // The earlier positions, then this batch (as the model stores them).
    rec.exact_kv_store(ko, &kc, 0, pos0).unwrap();
    rec.exact_kv_store(vo, &vc, 0, pos0).unwrap();
    rec.exact_kv_store(ko + pos0 * kd, &kc, pos0, ntok).unwrap();
    rec.exact_kv_store(vo + pos0 * kd, &vc, pos0, ntok).unwrap();
    let shape = AttnShape {
        ntok,
        n_head: h.n_head,
        n_head_kv: h.n_head_kv,
        head_dim_k: h.hd,
        head_dim_v: h.hd,
        pos0,
        window,
        scale: h.scale,
    };
    rec.exact_attention(qo, &kc, &vc, oo, shape, h.scale_queries, flavor)
        .unwrap();
    rec.read(oo, ntok * h.n_head * h.hd).unwrap();
    rec.submit().unwrap().remove(0)
}

fn assert_bits(what: &str, h: Heads, want: &[f32], got: &[f32]) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    if let Some(i) = (0..want.len()).find(|&i| want[i].to_bits() != got[i].to_bits()) {
        let n = want
            .iter()
            .zip(got)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        let (tok, head, d) = (i / (h.n_head * h.hd), i / h.hd % h.n_head, i % h.hd);
        panic!(
            "{what}: {n} of {} differ; first at token {tok} head {head} dim {d}: CPU {:e} ({:#010x}) GPU {:e} ({:#010x})",
            want.len(),
            want[i],
            want[i].to_bits(),
            got[i],
            got[i].to_bits()
        );
    }
}

#[test]
fn attention_matches_the_cpu() {
    let ctx = ctx();
    let mut r = Rng(0x5eed);
    let mut cases = 0;
    for h in [SMOLLM2, GEMMA3, QWEN25] {
        for &(pos0, ntok, window) in &[
            (0usize, 1usize, 0usize),
            (0, 5, 0),
            (0, 13, 0),
            (37, 1, 0),
            (120, 5, 0),
            (587, 13, 0),
            (590, 1, 512),
            (560, 13, 512),
            (200, 5, 64),
            (0, 64, 0),
            (70, 70, 0),
            (500, 64, 512),
            (130, 64, 64),
        ] {
            if window > 0 && h.name != "Gemma-3" && window != 64 {
                continue;
            }
            let (q, k, v) = random_qkv(&mut r, h, pos0 + ntok, ntok);
            let (k16, v16): (Vec<f16>, Vec<f16>) = (
                k.iter().map(|&x| f16::from_f32(x)).collect(),
                v.iter().map(|&x| f16::from_f32(x)).collect(),
            );
            // The flavor-parametrised reference is the engine's attend for the active flavor.
            let active = Flavor::active();
            let hp = hparams(h);
            let slots: Vec<(usize, usize)> = (0..ntok).map(|t| (0, pos0 + t)).collect();
            let mut engine_out = vec![0f32; ntok * h.n_head * h.hd];
            let tiled = ntok >= ggml_math::FA_TILE;
            let cpu = if tiled { cpu_attend_tiled } else { cpu_attend };
            if tiled {
                engine::model::attend_tiled(
                    &hp,
                    &q,
                    &[(&k16, &v16)],
                    &slots,
                    window,
                    &mut engine_out,
                );
            } else {
                engine::model::attend(&hp, &q, &[(&k16, &v16)], &slots, window, &mut engine_out);
            }
            let reference = cpu(active, h, &q, &k16, &v16, pos0, ntok, window);
            assert_bits(
                &format!("{} reference vs engine attend", h.name),
                h,
                &engine_out,
                &reference,
            );
            for flavor in [Flavor::Avx2, Flavor::Avx512] {
                let want = cpu(flavor, h, &q, &k16, &v16, pos0, ntok, window);
                let got = gpu_attend(&ctx, flavor, h, &q, &k, &v, pos0, ntok, window);
                assert_bits(
                    &format!(
                        "{} {flavor:?} pos0 {pos0} ntok {ntok} window {window}",
                        h.name
                    ),
                    h,
                    &want,
                    &got,
                );
                cases += 1;
            }
        }
    }
    eprintln!("{}: {cases} attention cases bit-exact", ctx.adapter());
}

#[test]
fn unsupported_shapes_are_errors() {
    let ctx = ctx();
    let arena = Arena::new(&ctx, 1 << 16).unwrap();
    let kc = KvBuffer::new(&ctx, 128, 64).unwrap();
    let vc = KvBuffer::new(&ctx, 128, 64).unwrap();
    let big = KvBuffer::new(&ctx, 128, 512).unwrap();
    let shape = AttnShape {
        ntok: 1,
        n_head: 1,
        n_head_kv: 1,
        head_dim_k: 64,
        head_dim_v: 64,
        pos0: 0,
        window: 0,
        scale: 0.125,
    };
    let mut rec = Recorder::new(&ctx, &arena);
    let huge = AttnShape {
        ntok: 64,
        head_dim_k: 512,
        head_dim_v: 512,
        ..shape
    };
    assert!(rec
        .exact_attention(0, &big, &big, 8192, huge, false, Flavor::Avx2)
        .is_err());
    let kc48 = KvBuffer::new(&ctx, 128, 48).unwrap();
    let odd = AttnShape {
        ntok: 1,
        head_dim_k: 48,
        head_dim_v: 48,
        ..shape
    };
    assert!(rec
        .exact_attention(0, &kc48, &kc48, 8192, odd, false, Flavor::Avx512)
        .is_err());
    let beyond = AttnShape {
        ntok: 2,
        pos0: 127,
        ..shape
    };
    assert!(rec
        .exact_attention(0, &kc, &vc, 8192, beyond, false, Flavor::Avx2)
        .is_err());
}

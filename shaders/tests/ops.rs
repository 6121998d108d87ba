//! Per-op parity of the GPU shaders with ferrite's CPU kernels (and f64 references),
//! on random inputs with awkward sizes. Every op runs on the adapter's fast variant
//! and, where the adapter has shader-f16 or subgroups, on the fallback variant too.
//! Never skips: without an adapter the tests fail with the reason.

use ferrite_shaders::{
    rope_table, Arena, AttnShape, Ew, GpuContext, GpuOptions, GpuTensor, KvBuffer, Recorder,
    GPU_TYPES,
};
use half::f16;
use kernels::dispatch;
use kernels::ops::{self, Rope, RopeStyle};
use kernels::testutil::{dot_f64, Rng};
use kernels::GgmlType;
use std::sync::OnceLock;

/// The default context and, when it uses optional features or narrow matrix
/// workgroups, the other variants: 32-wide with the adapter's features, and 32-wide
/// without shader-f16 and subgroups (the GL path).
fn contexts() -> &'static [GpuContext] {
    static C: OnceLock<Vec<GpuContext>> = OnceLock::new();
    C.get_or_init(|| {
        let main = GpuContext::new(&GpuOptions::from_env())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}"));
        eprintln!("adapter {} ({main:?})", main.adapter());
        let mut v = vec![];
        let features = main.uses_f16() || main.uses_subgroups();
        if main.uses_narrow_matmul() {
            let wide = GpuOptions {
                narrow_matmul: Some(false),
                ..GpuOptions::from_env()
            };
            v.push(GpuContext::new(&wide).expect("32-wide context"));
        }
        if features {
            let opts = GpuOptions {
                disable_f16: true,
                disable_subgroups: true,
                narrow_matmul: Some(false),
                ..GpuOptions::from_env()
            };
            let fallback = GpuContext::new(&opts).expect("fallback context");
            assert!(!fallback.uses_f16() && !fallback.uses_subgroups());
            v.push(fallback);
        }
        v.insert(0, main);
        v
    })
}

fn label(ctx: &GpuContext) -> String {
    format!(
        "{} f16={} subgroups={} narrow={}",
        ctx.adapter().backend,
        ctx.uses_f16(),
        ctx.uses_subgroups(),
        ctx.uses_narrow_matmul()
    )
}

/// Normalised mean squared error Σ(a-b)² / Σb².
fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum();
    num / den.max(1e-30)
}

fn assert_nmse(what: &str, ctx: &GpuContext, got: &[f32], want: &[f32]) {
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what} [{}]: non-finite output",
        label(ctx)
    );
    let e = nmse(got, want);
    eprintln!("NMSE {what} [{}] = {e:e}", label(ctx));
    assert!(e <= 1e-6, "{what} [{}]: NMSE {e:e} > 1e-6", label(ctx));
}

/// Weights of `rows × cols` quantized to `t` (GGUF bytes), and their dequantized values.
fn make_weights(rng: &mut Rng, t: GgmlType, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let x = rng.weights(rows * cols);
    let bytes = match t {
        GgmlType::F32 => bytemuck::cast_slice(&x).to_vec(),
        _ => {
            let mut b = vec![0u8; t.row_bytes(cols).unwrap() * rows];
            let q = dispatch::quantizer(t).unwrap_or_else(|| panic!("no quantizer for {t}"));
            for (src, dst) in x.chunks(cols).zip(b.chunks_mut(t.row_bytes(cols).unwrap())) {
                q(src, dst);
            }
            b
        }
    };
    let mut deq = vec![0f32; rows * cols];
    dispatch::dequantizer(t)(&bytes, &mut deq);
    (bytes, deq)
}

fn cols_for(t: GgmlType) -> &'static [usize] {
    if t.block_len() == 256 {
        &[256, 768]
    } else {
        &[96, 160, 352]
    }
}

#[test]
fn matmul_matches_cpu_kernels_for_every_weight_type() {
    let rows = 7;
    for ctx in contexts() {
        let mut rng = Rng::new(1);
        for t in GPU_TYPES {
            let k = dispatch::kernels(t).unwrap();
            for &cols in cols_for(t) {
                let (bytes, deq) = make_weights(&mut rng, t, rows, cols);
                // One window, and windows of 3 rows (tensors above the binding limit).
                let row_gpu = GpuTensor::upload(ctx, "w", t, rows, cols, &bytes)
                    .unwrap()
                    .size_bytes()
                    / rows as u64;
                for window in [u64::MAX, 3 * row_gpu] {
                    let w = GpuTensor::upload_windowed(ctx, "w", t, rows, cols, &bytes, window)
                        .unwrap();
                    assert_eq!(w.windows() > 1, window != u64::MAX);
                    for ntok in [1usize, 3, 9] {
                        let x = rng.weights(ntok * cols);
                        let n = ntok * cols;
                        // x | y (f32 activations) | xq (+ Q8_1 sums) | yq (rounded activations)
                        // Offsets: y is odd on purpose; matmul inputs must be multiples of 4.
                        let y0 = n + 5;
                        let xq = (y0 + ntok * rows).next_multiple_of(4);
                        let yq = xq + n + n / 32;
                        let arena = Arena::new(ctx, yq + ntok * rows).unwrap();
                        let mut r = Recorder::new(ctx, &arena);
                        r.write(0, &x).unwrap();
                        r.matmul(&w, 0, y0, ntok).unwrap();
                        let quantized = k.act != GgmlType::F32;
                        if quantized {
                            r.quantize_act(k.act, 0, xq, n).unwrap();
                            r.matmul_quantized(&w, k.act, xq, yq, ntok).unwrap();
                        }
                        r.read(y0, ntok * rows).unwrap();
                        r.read(yq, ntok * rows).unwrap();
                        let mut res = r.submit().unwrap();
                        let (got, got_q) = (res.remove(0), res.remove(0));
                        let mut cpu = vec![0f32; ntok * rows];
                        kernels::matmul::matmul(&k, &bytes, rows, cols, &x, ntok, &mut cpu);
                        for tok in 0..ntok {
                            for row in 0..rows {
                                let wr = &deq[row * cols..(row + 1) * cols];
                                let xr = &x[tok * cols..(tok + 1) * cols];
                                let exact = dot_f64(wr, xr);
                                let mag: f64 = wr
                                    .iter()
                                    .zip(xr)
                                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                                    .sum();
                                let g = got[tok * rows + row] as f64;
                                let c = cpu[tok * rows + row] as f64;
                                let what = format!("{t} {rows}x{cols} tokens={ntok} windows={} row {row} token {tok} [{}]", w.windows(), label(ctx));
                                // f32 activations: only f32 summation error against the f64 dot.
                                assert!(
                                    (g - exact).abs() <= 1e-5 * mag + 1e-6,
                                    "{what}: gpu {g} vs f64 {exact}"
                                );
                                // And within the CPU kernels' own tolerance (ggml's: |error| / n < 0.02)
                                // of what the CPU kernel computes with its quantized activations.
                                assert!(
                                    (g - c).abs() / cols as f64 <= 0.02,
                                    "{what}: gpu {g} vs cpu {c}"
                                );
                                // Rounded as the CPU rounds them, the activations give the CPU's
                                // result up to f32 summation order (the kernels' 1e-5 between levels).
                                if quantized {
                                    let gq = got_q[tok * rows + row] as f64;
                                    assert!(
                                        (gq - c).abs() <= 1e-5 * mag + 1e-6,
                                        "{what}: gpu {gq} on {} activations vs cpu {c}",
                                        k.act
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn get_rows_dequantizes_embeddings_across_windows() {
    for ctx in contexts() {
        let mut rng = Rng::new(2);
        for t in GPU_TYPES {
            let (rows, cols) = (11, cols_for(t)[0]);
            let (bytes, deq) = make_weights(&mut rng, t, rows, cols);
            let row_gpu = GpuTensor::upload(ctx, "e", t, rows, cols, &bytes)
                .unwrap()
                .size_bytes()
                / rows as u64;
            for window in [u64::MAX, 4 * row_gpu] {
                let table =
                    GpuTensor::upload_windowed(ctx, "e", t, rows, cols, &bytes, window).unwrap();
                let ids: Vec<u32> = vec![0, 10, 3, 3, 7, 4, 9];
                let n = ids.len();
                let arena = Arena::new(ctx, n + n * cols).unwrap();
                let mut r = Recorder::new(ctx, &arena);
                r.write_u32(0, &ids).unwrap();
                r.get_rows(&table, 0, n, n, 1.5).unwrap();
                r.read(n, n * cols).unwrap();
                let got = r.submit().unwrap().remove(0);
                let want: Vec<f32> = ids
                    .iter()
                    .flat_map(|&i| {
                        deq[i as usize * cols..(i as usize + 1) * cols]
                            .iter()
                            .map(|v| v * 1.5)
                    })
                    .collect();
                assert_eq!(
                    got,
                    want,
                    "{t} get_rows, {} windows [{}]",
                    table.windows(),
                    label(ctx)
                );
            }
        }
    }
}

#[test]
fn activation_rounding_matches_cpu_quantizers() {
    for ctx in contexts() {
        let mut rng = Rng::new(9);
        for act in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8K] {
            let n = 3 * 256;
            let mut x = rng.weights(n);
            x[256..512].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
            let mut init = x.clone();
            init.extend(vec![0f32; n / 32]); // Q8_1 block sums
            let got = run(ctx, &init, |r| r.quantize_act(act, 0, 0, n).unwrap());
            let got = &got[..n];
            // The CPU path: the kernels' activation quantizer, then dequantized.
            let wt = match act {
                GgmlType::Q8K => GgmlType::Q4K,
                GgmlType::Q8_1 => GgmlType::Q4_1,
                _ => GgmlType::Q8_0,
            };
            let k = dispatch::kernels(wt).unwrap();
            assert_eq!(k.act, act);
            let mut q = vec![0u8; act.row_bytes(n).unwrap()];
            (k.quantize_act)(&x, &mut q);
            let mut want = vec![0f32; n];
            dispatch::dequantizer(act)(&q, &mut want);
            let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            eprintln!("{act}: {bad} differ");
            // Division may differ in the last bit on some GPUs; lavapipe/llvmpipe are exact.
            assert!(
                bad <= n / 100,
                "{act}: {bad} of {n} values differ [{}]",
                label(ctx)
            );
            assert_nmse(&format!("quantize_act {act}"), ctx, got, &want);
        }
    }
}

/// Run one recorder over an arena initialised with `init`, reading back everything.
fn run(ctx: &GpuContext, init: &[f32], f: impl FnOnce(&mut Recorder)) -> Vec<f32> {
    let arena = Arena::new(ctx, init.len()).unwrap();
    let mut r = Recorder::new(ctx, &arena);
    r.write(0, init).unwrap();
    f(&mut r);
    r.read(0, init.len()).unwrap();
    r.submit().unwrap().remove(0)
}

#[test]
fn rms_norm_matches_cpu() {
    for ctx in contexts() {
        let mut rng = Rng::new(3);
        for n in [64usize, 896, 1001] {
            let rows = 5;
            let x = rng.weights(rows * n);
            let wv = rng.weights(n);
            let w = GpuTensor::upload_f32(ctx, "norm", &wv).unwrap();
            let mut init = x.clone();
            init.extend(vec![0f32; rows * n]);
            // Out of place with weight, then in place without.
            let got = run(ctx, &init, |r| {
                r.rms_norm(0, rows * n, rows, n, Some(&w), 1e-6).unwrap();
                r.rms_norm(0, 0, rows, n, None, 1e-5).unwrap();
            });
            let mut want_w = vec![0f32; rows * n];
            let mut want_plain = x.clone();
            for i in 0..rows {
                ops::rms_norm(
                    &x[i * n..(i + 1) * n],
                    &wv,
                    1e-6,
                    &mut want_w[i * n..(i + 1) * n],
                );
                ops::rms_norm_inplace(&mut want_plain[i * n..(i + 1) * n], None, 1e-5);
            }
            assert_nmse(&format!("rms_norm n={n}"), ctx, &got[rows * n..], &want_w);
            assert_nmse(
                &format!("rms_norm in place n={n}"),
                ctx,
                &got[..rows * n],
                &want_plain,
            );
        }
    }
}

#[test]
fn softmax_matches_cpu() {
    for ctx in contexts() {
        let mut rng = Rng::new(4);
        for n in [1usize, 7, 1000] {
            let rows = 3;
            let x: Vec<f32> = rng.weights(rows * n).iter().map(|v| v * 4.0).collect();
            let got = run(ctx, &x, |r| r.softmax(0, rows, n, 0.7).unwrap());
            let mut want = x.clone();
            want.chunks_mut(n).for_each(|row| ops::softmax(row, 0.7));
            assert_nmse(&format!("softmax n={n}"), ctx, &got, &want);
        }
    }
}

#[test]
fn elementwise_ops_match_cpu() {
    for ctx in contexts() {
        let mut rng = Rng::new(5);
        let n = 1234;
        let a: Vec<f32> = rng.weights(n).iter().map(|v| v * 3.0).collect();
        let mut b = rng.weights(n);
        b[7] = 12.0; // beyond the GELU table's range
        b[8] = -11.0;
        let mut init = a.clone();
        init.extend(&b);
        type Cpu = fn(&mut [f32], &[f32]);
        let cases: [(Ew, f32, Cpu); 10] = [
            (Ew::Add, 0.0, |x, y| ops::add(x, y)),
            (Ew::Mul, 0.0, |x, y| ops::mul(x, y)),
            (Ew::Scale, 0.37, |x, _| ops::scale(x, 0.37)),
            (Ew::Silu, 0.0, |x, _| ops::silu(x)),
            (Ew::Gelu, 0.0, |x, _| ops::gelu(x)),
            (Ew::Swiglu, 0.0, |x, y| ops::swiglu(x, y)),
            (Ew::Geglu, 0.0, |x, y| ops::geglu(x, y)),
            (Ew::GegluF16, 0.0, |x, y| ops::geglu_f16_table(x, y)),
            (Ew::Softcap, 5.0, |x, _| {
                x.iter_mut().for_each(|v| *v = 5.0 * (*v / 5.0).tanh())
            }),
            (Ew::Copy, 0.0, |_, _| {}),
        ];
        for (op, f, cpu) in cases {
            // The op on b (with a as operand), so GELU sees b's out-of-table values.
            let got = run(ctx, &init, |r| r.ew(op, n, 0, n, f).unwrap());
            let mut want = b.clone();
            cpu(&mut want, &a);
            if op == Ew::Copy {
                assert_eq!(got[..n], b[..], "copy [{}]", label(ctx));
                continue;
            }
            assert_nmse(&format!("{op:?}"), ctx, &got[n..], &want);
        }
        // Bias over rows.
        let bias = rng.weights(n / 2);
        let bt = GpuTensor::upload_f32(ctx, "bias", &bias).unwrap();
        let got = run(ctx, &a, |r| r.add_bias(0, 2, &bt).unwrap());
        let mut want = a.clone();
        want.chunks_mut(n / 2).for_each(|row| ops::add(row, &bias));
        assert_nmse("add_bias", ctx, &got, &want);
    }
}

#[test]
fn rope_matches_cpu_normal_and_neox() {
    for ctx in contexts() {
        let mut rng = Rng::new(6);
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            for (head_dim, n_rot) in [(64usize, 64usize), (80, 32)] {
                let (ntok, n_head, pos0) = (4, 3, 1000);
                let rope = Rope::new(n_rot, 10_000.0, 1.0, style);
                let x = rng.weights(ntok * n_head * head_dim);
                let table = rope_table(&rope, pos0..pos0 + ntok);
                let mut init = x.clone();
                init.extend(&table);
                let got = run(ctx, &init, |r| {
                    r.rope(0, ntok, n_head, head_dim, n_rot, x.len(), style)
                        .unwrap()
                });
                let mut want = x.clone();
                for (t, row) in want.chunks_mut(n_head * head_dim).enumerate() {
                    rope.apply(row, head_dim, pos0 + t);
                }
                assert_nmse(
                    &format!("rope {style:?} {head_dim}/{n_rot}"),
                    ctx,
                    &got[..x.len()],
                    &want,
                );
            }
        }
    }
}

/// The engine's CPU attention (llama.cpp's flash-attention numerics) for one
/// sequence: f16 cache, query rounded to f16, f16 accumulator.
#[allow(clippy::too_many_arguments)]
fn cpu_attention(q: &[f32], kc: &[f16], vc: &[f16], s: AttnShape) -> Vec<f32> {
    let (hdk, hdv) = (s.head_dim_k, s.head_dim_v);
    let (kd, vd) = (s.n_head_kv * hdk, s.n_head_kv * hdv);
    let group = s.n_head / s.n_head_kv;
    let dot = dispatch::kernels(GgmlType::F16).unwrap().vec_dot;
    let mut out = vec![0f32; s.ntok * s.n_head * hdv];
    for (idx, o) in out.chunks_mut(hdv).enumerate() {
        let (tok, head) = (idx / s.n_head, idx % s.n_head);
        let pos = s.pos0 + tok;
        let g = head / group;
        let q16: Vec<f32> = q[idx * hdk..(idx + 1) * hdk]
            .iter()
            .map(|&v| f16::from_f32(v).to_f32())
            .collect();
        let start = if s.window > 0 {
            (pos + 1).saturating_sub(s.window)
        } else {
            0
        };
        let mut acc = vec![f16::ZERO; hdv];
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
        for p in start..=pos {
            let kh = &kc[p * kd + g * hdk..][..hdk];
            let sc = dot(hdk, bytemuck::cast_slice(kh), bytemuck::cast_slice(&q16)) * s.scale;
            let vh = &vc[p * vd + g * hdv..][..hdv];
            let (ms, vs) = if sc > max {
                let ms = (max - sc).exp();
                max = sc;
                kernels::attn::scale_f16(&mut acc, ms);
                (ms, 1.0)
            } else {
                (1.0, (sc - max).exp())
            };
            kernels::attn::mad_f16(&mut acc, vh, vs);
            sum = sum * ms + vs;
        }
        for (d, a) in o.iter_mut().zip(&acc) {
            *d = a.to_f32() / sum;
        }
    }
    out
}

#[test]
fn attention_over_gpu_kv_cache_matches_cpu() {
    for ctx in contexts() {
        let mut rng = Rng::new(7);
        // (n_head, n_head_kv, head_dim, window): GQA, plain MHA with a big head, sliding window.
        for (n_head, n_head_kv, hd, window) in [
            (4usize, 2usize, 64usize, 0usize),
            (2, 2, 256, 0),
            (6, 2, 32, 3),
        ] {
            let n_ctx = 80;
            let (kd, qd) = (n_head_kv * hd, n_head * hd);
            let kbuf = KvBuffer::new(ctx, n_ctx, kd).unwrap();
            let vbuf = KvBuffer::new(ctx, n_ctx, kd).unwrap();
            let mut kc: Vec<f16> = Vec::new();
            let mut vc: Vec<f16> = Vec::new();
            let mut pos0 = 0;
            // A 70-token prefill (several key tiles), then two single-token steps.
            for ntok in [70usize, 1, 1] {
                let q = rng.weights(ntok * qd);
                let k = rng.weights(ntok * kd);
                let v = rng.weights(ntok * kd);
                kc.extend(k.iter().map(|&x| f16::from_f32(x)));
                vc.extend(v.iter().map(|&x| f16::from_f32(x)));
                let shape = AttnShape {
                    ntok,
                    n_head,
                    n_head_kv,
                    head_dim_k: hd,
                    head_dim_v: hd,
                    pos0,
                    window,
                    scale: 1.0 / (hd as f32).sqrt(),
                };
                let mut init = q.clone();
                init.extend(&k);
                init.extend(&v);
                let out0 = init.len();
                init.extend(vec![0f32; ntok * qd]);
                let got = run(ctx, &init, |r| {
                    r.kv_store(&kbuf, q.len(), ntok, pos0).unwrap();
                    r.kv_store(&vbuf, q.len() + k.len(), ntok, pos0).unwrap();
                    r.attention(&kbuf, &vbuf, 0, out0, shape).unwrap();
                });
                let want = cpu_attention(&q, &kc, &vc, shape);
                assert_nmse(
                    &format!("attention heads {n_head}/{n_head_kv} dim {hd} window {window} at {pos0}+{ntok}"),
                    ctx,
                    &got[out0..],
                    &want,
                );
                pos0 += ntok;
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let ctx = &contexts()[0];
    let mut rng = Rng::new(8);
    let (bytes, _) = make_weights(&mut rng, GgmlType::Q8_0, 2, 64);
    assert!(GpuTensor::upload(ctx, "w", GgmlType::Q8_0, 2, 64, &bytes[1..]).is_err());
    assert!(GpuTensor::upload(ctx, "w", GgmlType::Q5K, 1, 256, &[0u8; 176]).is_err());
    let w = GpuTensor::upload(ctx, "w", GgmlType::Q8_0, 2, 64, &bytes).unwrap();
    let arena = Arena::new(ctx, 100).unwrap();
    let mut r = Recorder::new(ctx, &arena);
    assert!(r.matmul(&w, 0, 64, 2).is_err(), "output past the arena");
    let kv = KvBuffer::new(ctx, 4, 8).unwrap();
    assert!(r.kv_store(&kv, 0, 5, 0).is_err(), "cache overflow");
    assert!(KvBuffer::new(ctx, 4, 7).is_err());
    assert!(Arena::new(ctx, usize::MAX / 8).is_err());
}

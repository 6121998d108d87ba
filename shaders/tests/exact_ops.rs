//! Exact-path RMSNorm, SwiGLU, GeGLU and RoPE against the CPU kernels, bit for bit.

use ferrite_shaders::exact::ops::GeluTable;
use ferrite_shaders::{Arena, GpuContext, GpuError, GpuTensor, Recorder};
use kernels::ggml_math::{self, Flavor};
use kernels::ops::{self, Rope, RopeStyle};

mod common;
use common::{ctx, Rng};

impl Rng {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    /// Log-uniform in [lo, hi].
    fn log_uniform(&mut self, lo: f32, hi: f32) -> f32 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }
}

/// Panics with the first differing element (and its inputs) unless equal bit for bit.
fn assert_bits(what: &str, got: &[f32], want: &[f32], inputs: impl Fn(usize) -> String) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect::<Vec<_>>();
    if std::env::var("EXACT_OPS_ALL").is_ok() {
        for &i in &bad {
            eprintln!(
                "{what}: {i}: gpu {:e} cpu {:e}; {}",
                got[i],
                want[i],
                inputs(i)
            );
        }
    }
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} differ; first at {i}: gpu {:e} ({:#010x}) cpu {:e} ({:#010x}); {}",
            bad.len(),
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits(),
            inputs(i)
        );
    }
}

/// Writes `data` at 0, runs `f` on a recorder, reads `[off, off + len)`.
fn run(
    ctx: &GpuContext,
    data: &[f32],
    off: usize,
    len: usize,
    f: impl FnOnce(&mut Recorder) -> Result<(), GpuError>,
) -> Vec<f32> {
    let arena = Arena::new(ctx, data.len()).unwrap();
    let mut rec = Recorder::new(ctx, &arena);
    rec.write(0, data).unwrap();
    f(&mut rec).unwrap();
    rec.read(off, len).unwrap();
    rec.submit().unwrap().remove(0)
}

#[test]
fn rms_norm_matches_cpu() {
    let ctx = ctx();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut checked = 0;
    for (n, rows) in [
        (64, 40),
        (256, 24),
        (576, 32),
        (640, 16),
        (896, 16),
        (1000, 8),
        (2048, 4),
    ] {
        // Rows of realistic, varied scales (1e-3 .. 1e2), a few with outliers.
        let mut x = Vec::with_capacity(rows * n);
        for r in 0..rows {
            let scale = rng.log_uniform(1e-3, 1e2);
            for i in 0..n {
                let mut v = rng.normal() * scale;
                if r % 5 == 1 && i % 97 == 3 {
                    v *= 30.0;
                }
                x.push(v);
            }
        }
        let w: Vec<f32> = (0..n).map(|_| 1.0 + 0.5 * rng.normal()).collect();
        let wt = GpuTensor::upload_f32(&ctx, "w", &w).unwrap();
        for eps in [1e-5f32, 1e-6] {
            let what = |kind: &str| format!("rms_norm {kind} n {n} eps {eps}");
            let inputs = |i: usize| format!("row {} col {}", i / n, i % n);
            // Out of place, with weight: ops::rms_norm.
            let mut want = vec![0f32; rows * n];
            for r in 0..rows {
                let s = r * n..(r + 1) * n;
                ops::rms_norm(&x[s.clone()], &w, eps, &mut want[s]);
            }
            let mut data = x.clone();
            data.resize(2 * rows * n, 0.0);
            let got = run(&ctx, &data, rows * n, rows * n, |rec| {
                rec.exact_rms_norm(0, rows * n, rows, n, Some(&wt), eps)
            });
            assert_bits(&what("weighted"), &got, &want, inputs);
            // The same through the integer f64 path every row would take near a midpoint.
            let got = run(&ctx, &data, rows * n, rows * n, |rec| {
                rec.exact_rms_norm_f64(0, rows * n, rows, n, Some(&wt), eps)
            });
            assert_bits(&what("weighted, f64 path"), &got, &want, inputs);
            // In place, with and without weight: ops::rms_norm_inplace.
            for weighted in [true, false] {
                let mut want = x.clone();
                for row in want.chunks_exact_mut(n) {
                    ops::rms_norm_inplace(row, weighted.then_some(&w[..]), eps);
                }
                let got = run(&ctx, &x, 0, rows * n, |rec| {
                    rec.exact_rms_norm(0, 0, rows, n, weighted.then_some(&wt), eps)
                });
                assert_bits(
                    &what(&format!("in place w={weighted}")),
                    &got,
                    &want,
                    inputs,
                );
            }
            checked += 3 * rows;
        }
    }
    eprintln!(
        "rms_norm on {}: {checked} rows equal bit for bit",
        ctx.adapter()
    );
}

/// Rows built so that the f64 sum drops terms a double-float sum keeps, with the
/// f64 mean at an f32 rounding tie (k²/n + ulp/2): only the step-for-step f64 path
/// gets their scale right (each case was checked to change the scale otherwise).
#[test]
fn rms_norm_near_rounding_midpoints() {
    let ctx = ctx();
    for (k, n, tiny_exp) in [
        (9.0f32, 256usize, -24),
        (11.0, 128, -24),
        (17.0, 128, -23),
        (19.0, 256, -23),
        (19.0, 512, -24),
        (21.0, 512, -23),
    ] {
        let m = k * k / n as f32;
        let half_ulp_sum = n as f32 * (f32::from_bits(m.to_bits() + 1) - m) / 2.0;
        let v1 = half_ulp_sum.sqrt();
        assert_eq!(v1 * v1, half_ulp_sum, "case k {k} n {n}");
        let mut row = vec![k, v1];
        row.extend(std::iter::repeat_n(2f32.powi(tiny_exp), n - 2));
        let mut x = row.clone();
        x.extend(row.iter().map(|v| -v));
        // The tiny squares first: now the f64 sum keeps them.
        row.rotate_left(2);
        x.extend_from_slice(&row);
        let rows = 3;
        for eps in [1e-6f32, 1e-5] {
            let mut want = x.clone();
            for r in want.chunks_exact_mut(n) {
                ops::rms_norm_inplace(r, None, eps);
            }
            let got = run(&ctx, &x, 0, rows * n, |rec| {
                rec.exact_rms_norm(0, 0, rows, n, None, eps)
            });
            assert_bits(
                &format!("rms_norm midpoint k {k} n {n} eps {eps}"),
                &got,
                &want,
                |i| format!("row {} col {}", i / n, i % n),
            );
        }
    }
}

#[test]
fn swiglu_matches_cpu_in_both_flavors() {
    let ctx = ctx();
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for (n, rows) in [(1536, 3), (4864, 2), (2048 + 16 * 5, 2), (16, 5), (2048, 1)] {
        let mut gate = Vec::with_capacity(rows * n);
        let mut up = Vec::with_capacity(rows * n);
        for i in 0..rows * n {
            // Across [-90, 90] (exp underflow and overflow included), typical
            // activations, and the region where silu·up lands among subnormals.
            let x = match i % 4 {
                0 | 1 => rng.uniform(-90.0, 90.0),
                2 => rng.normal() * 3.0,
                _ => rng.uniform(-89.0, -86.0),
            };
            let g = if i % 7 == 0 {
                rng.normal() * 1e-3
            } else {
                rng.normal()
            };
            gate.push(x);
            up.push(g);
        }
        // Exact edges of the exponent ranges.
        for (k, v) in [
            0.0f32, -0.0, 88.0, -88.0, 88.72, -88.72, 88.73, -88.73, 87.33, -87.33, 87.34, -87.34,
            89.0, -89.0, 90.0, -90.0, 16.6, 17.0, -103.0, -104.0,
        ]
        .into_iter()
        .enumerate()
        {
            gate[k * 3 % (rows * n)] = v;
        }
        for flavor in [Flavor::Avx2, Flavor::Avx512] {
            let mut want = gate.clone();
            for (a, b) in want.chunks_exact_mut(n).zip(up.chunks_exact(n)) {
                ggml_math::swiglu(flavor, a, b);
            }
            let mut data = gate.clone();
            data.extend_from_slice(&up);
            let got = run(&ctx, &data, 0, rows * n, |rec| {
                rec.exact_swiglu(0, rows * n, rows, n, flavor)
            });
            assert_bits(&format!("swiglu {flavor:?} n {n}"), &got, &want, |i| {
                format!("x {:e} up {:e}", gate[i], up[i])
            });
            let subnormal = want.iter().filter(|v| v.is_subnormal()).count();
            eprintln!("swiglu {flavor:?} n {n} x{rows}: equal ({subnormal} subnormal results)");
        }
    }
}

/// Rows that are not whole vectors end in a scalar tail with glibc's `expf`.
#[test]
fn swiglu_tails_match_cpu() {
    let ctx = ctx();
    let mut rng = Rng(0x7a11_7a11_0000_0003);
    for (n, rows) in [(1000, 3), (100, 4), (7, 9), (24, 5)] {
        let gate: Vec<f32> = (0..rows * n)
            .map(|i| match i % 3 {
                0 => rng.uniform(-90.0, 90.0),
                1 => rng.normal() * 3.0,
                _ => rng.uniform(-89.0, -86.0),
            })
            .collect();
        let up: Vec<f32> = (0..rows * n).map(|_| rng.normal()).collect();
        for flavor in [Flavor::Avx2, Flavor::Avx512] {
            let mut want = gate.clone();
            for (a, b) in want.chunks_exact_mut(n).zip(up.chunks_exact(n)) {
                ggml_math::swiglu(flavor, a, b);
            }
            let mut data = gate.clone();
            data.extend_from_slice(&up);
            let got = run(&ctx, &data, 0, rows * n, |rec| {
                rec.exact_swiglu(0, rows * n, rows, n, flavor)
            });
            assert_bits(&format!("swiglu tail {flavor:?} n {n}"), &got, &want, |i| {
                format!("col {} x {:e} up {:e}", i % n, gate[i], up[i])
            });
        }
    }
}

#[test]
fn geglu_matches_cpu() {
    let ctx = ctx();
    let table = GeluTable::new(&ctx).unwrap();
    let mut rng = Rng(0x5eed_0000_0000_0042);
    let n = 20000;
    let mut gate: Vec<f32> = (0..n)
        .map(|i| match i % 3 {
            0 => rng.uniform(-12.0, 12.0),
            1 => rng.normal() * 2.0,
            // An exact f16 rounding tie.
            _ => {
                let h = half::f16::from_f32(rng.uniform(-10.0, 10.0));
                f32::from_bits(h.to_f32().to_bits() | 0x1000)
            }
        })
        .collect();
    for (k, v) in [
        -10.0f32, 10.0, -9.999, 9.999, -10.001, 10.001, 0.0, -0.0, 1e-8, -1e-8, 65504.0, -3.0,
    ]
    .into_iter()
    .enumerate()
    {
        gate[k * 11] = v;
    }
    let up: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut want = gate.clone();
    ops::geglu_f16_table(&mut want, &up);
    let mut data = gate.clone();
    data.extend_from_slice(&up);
    let got = run(&ctx, &data, 0, n, |rec| rec.exact_geglu(&table, 0, n, n));
    assert_bits("geglu_f16_table", &got, &want, |i| {
        format!("x {:e} up {:e}", gate[i], up[i])
    });
}

#[test]
fn rope_matches_cpu() {
    let ctx = ctx();
    let mut rng = Rng(0xfeed_beef_1234_0001);
    let n_heads = 3;
    let positions = [0usize, 1, 7, 100, 1023, 4096, 9999, 10000];
    let ntok = positions.len();
    let mut cases = 0;
    for style in [RopeStyle::Normal, RopeStyle::Neox] {
        for head_dim in [64usize, 256] {
            for n_rot in [head_dim, head_dim / 2, 32] {
                for base in [1e4f32, 1e5, 1e6] {
                    let rope = Rope::new(n_rot, base, 1.0, style);
                    let len = ntok * n_heads * head_dim;
                    let x: Vec<f32> = (0..len).map(|_| rng.normal() * 4.0).collect();
                    let mut cs_all = Vec::new();
                    let mut want = x.clone();
                    let mut cs = Vec::new();
                    for (t, &pos) in positions.iter().enumerate() {
                        rope.cos_sin(pos, &mut cs);
                        let row = &mut want[t * n_heads * head_dim..(t + 1) * n_heads * head_dim];
                        rope.apply_cached(row, head_dim, &cs);
                        cs_all.extend(cs.iter().flat_map(|&(c, s)| [c, s]));
                    }
                    let mut data = x.clone();
                    data.extend_from_slice(&cs_all);
                    let got = run(&ctx, &data, 0, len, |rec| {
                        rec.exact_rope(0, ntok, n_heads, head_dim, n_rot, style, len)
                    });
                    let what =
                        format!("rope {style:?} head_dim {head_dim} n_rot {n_rot} base {base}");
                    assert_bits(&what, &got, &want, |i| {
                        let t = i / (n_heads * head_dim);
                        format!(
                            "token {t} (pos {}) dim {} x {:e}",
                            positions[t],
                            i % head_dim,
                            x[i]
                        )
                    });
                    cases += 1;
                }
            }
        }
    }
    eprintln!("rope: {cases} configurations equal bit for bit");
}

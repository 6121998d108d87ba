use super::*;
use crate::blocks::{Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::cpu;
use crate::dispatch::{self, kernels_at};
use crate::testutil::{dot_f64, ggml_synthetic, ggml_total_error, rel_diff, Rng};
use bytemuck::Zeroable;
use half::f16;

const WEIGHT_TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];
const ALL_TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
];
const SHAPES: [usize; 13] = [1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 33, 128, 131];

/// Bytes of `n` elements of `t`, stored in u32s so they are aligned for any block.
struct Row {
    buf: Vec<u32>,
    len: usize,
}

impl Row {
    fn new(t: GgmlType, n: usize) -> Row {
        let len = t.row_bytes(n).unwrap();
        Row {
            buf: vec![0; len.div_ceil(4)],
            len,
        }
    }
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.buf)[..self.len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.buf)[..self.len]
    }
}

fn quantize(t: GgmlType, x: &[f32]) -> Row {
    let mut r = Row::new(t, x.len());
    quantizer(t).unwrap()(x, r.bytes_mut());
    r
}

fn dequantize(t: GgmlType, r: &Row, n: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; n];
    dequantizer(t).unwrap()(r.bytes(), &mut y);
    y
}

fn act_type(t: GgmlType) -> GgmlType {
    kernels_at(t, Isa::Scalar).unwrap().act
}

/// Random data with zero blocks, huge and tiny blocks mixed in.
fn extreme_data(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = rng.weights(n);
    for b in x.chunks_exact_mut(QK) {
        let scale = match rng.below(6) {
            0 => 0.0,
            1 => 1e3,
            2 => 1e-5,
            _ => 1.0,
        };
        b.iter_mut().for_each(|v| *v *= scale);
    }
    x
}

/// Σ |w_i · a_i| over the dequantized rows: the size of the terms a dot adds up
/// (the SIMD kernels round per-lane partial sums), which bounds its rounding error.
fn term_scale(t: GgmlType, w: &[u8], a: &[u8]) -> f64 {
    let n = w.len() / t.block_bytes() * QK;
    let mut wd = vec![0f32; n];
    let mut ad = vec![0f32; n];
    dequantizer(t).unwrap()(w, &mut wd);
    dequantizer(act_type(t)).unwrap()(a, &mut ad);
    wd.iter()
        .zip(&ad)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum()
}

#[allow(non_snake_case)]
fn SCALAR_DOT(t: GgmlType) -> VecDotFn {
    kernels_at(t, Isa::Scalar).unwrap().vec_dot
}

/// Every kernel set to check: each supported level, plus the AVX-512 variant
/// without VNNI and the NEON variant without `sdot` where the CPU has those
/// extensions (the table would not pick them).
fn levels() -> Vec<(String, LevelKernels)> {
    #[allow(unused_mut)]
    let mut levels: Vec<(String, LevelKernels)> = cpu::supported_levels()
        .into_iter()
        .map(|i| (i.name().to_string(), level_kernels(i)))
        .collect();
    #[cfg(target_arch = "x86_64")]
    if cpu::has_avx512_vnni() {
        levels.push(("avx512-no-vnni".into(), avx512::kernels(false)));
    }
    #[cfg(target_arch = "aarch64")]
    if cpu::has_neon_dotprod() {
        levels.push(("neon-no-dotprod".into(), neon::kernels(false)));
    }
    levels
}

/// (level name, weight type, its dot, its activation quantizer) for every level.
fn all_kernels() -> Vec<(String, GgmlType, VecDotFn, QuantizeFn)> {
    let mut out = Vec::new();
    for (name, k) in levels() {
        for t in WEIGHT_TYPES {
            let (dot, q) = match t {
                GgmlType::Q4_0 => (k.q4_0, k.quantize_q8_0),
                GgmlType::Q4_1 => (k.q4_1, k.quantize_q8_1),
                GgmlType::Q5_0 => (k.q5_0, k.quantize_q8_0),
                GgmlType::Q5_1 => (k.q5_1, k.quantize_q8_1),
                GgmlType::Q8_0 => (k.q8_0, k.quantize_q8_0),
                _ => unreachable!(),
            };
            out.push((name.clone(), t, dot, q));
        }
    }
    out
}

#[test]
fn table_covers_weight_types_and_levels() {
    for t in WEIGHT_TYPES {
        for isa in cpu::supported_levels() {
            let k = kernels_at(t, isa).unwrap();
            assert_eq!(k.dtype, t);
            assert_eq!(k.isa, isa, "{t} at {isa}");
            let want = if matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1) {
                GgmlType::Q8_1
            } else {
                GgmlType::Q8_0
            };
            assert_eq!(k.act, want);
        }
    }
    assert!(kernels(GgmlType::Q8_1, Isa::Scalar).is_none());
    assert!(kernels(GgmlType::Q4K, Isa::Scalar).is_none());
    for t in ALL_TYPES {
        assert!(quantizer(t).is_some() && dequantizer(t).is_some(), "{t}");
    }
    assert!(quantizer(GgmlType::F16).is_none() && dequantizer(GgmlType::Q6K).is_none());
    // Asking for a level above the CPU's falls back to what it has.
    let best = cpu::best_supported();
    assert_eq!(kernels_at(GgmlType::Q4_0, Isa::Neon).unwrap().isa, best);
}

#[test]
fn quantize_dequantize_rmse_within_ggml_tolerance() {
    let n = QK * 128;
    let x = ggml_synthetic(n, 0.0);
    for t in ALL_TYPES {
        let y = dequantize(t, &quantize(t, &x), n);
        // ggml's `array_rmse`: sqrt(Σ diff²) / n.
        let e = ggml_total_error(&x, &y);
        assert!(e < 0.002, "{t}: ggml rmse {e}");
    }
}

#[test]
fn dequantize_known_blocks() {
    let q4_0 = [BlockQ4_0 {
        d: f16::from_f32(0.5),
        qs: std::array::from_fn(|j| (j as u8) | ((15 - j as u8) << 4)),
    }];
    let mut y = [0f32; QK];
    dequantize_q4_0(&q4_0, &mut y);
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
    }

    let q4_1 = [BlockQ4_1 {
        d: f16::from_f32(0.25),
        m: f16::from_f32(-1.0),
        qs: std::array::from_fn(|j| (j as u8) | (3 << 4)),
    }];
    dequantize_q4_1(&q4_1, &mut y);
    for j in 0..16 {
        assert_eq!(y[j], j as f32 * 0.25 - 1.0);
        assert_eq!(y[j + 16], -0.25);
    }

    // Fifth bits set for elements 1 and 17 only.
    let q5_0 = [BlockQ5_0 {
        d: f16::from_f32(2.0),
        qh: (1u32 << 1 | 1 << 17).to_le_bytes(),
        qs: [0x21; 16],
    }];
    dequantize_q5_0(&q5_0, &mut y);
    for (j, &v) in y.iter().enumerate() {
        let q = if j < 16 { 1 } else { 2 } + if j == 1 || j == 17 { 16 } else { 0 };
        assert_eq!(v, (q as f32 - 16.0) * 2.0, "element {j}");
    }

    let q5_1 = [BlockQ5_1 {
        d: f16::from_f32(1.0),
        m: f16::from_f32(0.5),
        qh: 0xFFFF_0000u32.to_le_bytes(),
        qs: std::array::from_fn(|j| (j as u8) | ((j as u8) << 4)),
    }];
    dequantize_q5_1(&q5_1, &mut y);
    for (j, &v) in y.iter().enumerate() {
        assert_eq!(v, j as f32 + 0.5);
    }

    let q8_0 = [BlockQ8_0 {
        d: f16::from_f32(-0.125),
        qs: std::array::from_fn(|j| (j as i32 * 8 - 128) as i8),
    }];
    dequantize_q8_0(&q8_0, &mut y);
    for (j, &v) in y.iter().enumerate() {
        assert_eq!(v, (j as f32 * 8.0 - 128.0) * -0.125);
    }
    let q8_1 = [BlockQ8_1 {
        d: q8_0[0].d,
        s: f16::from_f32(123.0),
        qs: q8_0[0].qs,
    }];
    let mut y1 = [0f32; QK];
    dequantize_q8_1(&q8_1, &mut y1);
    assert_eq!(y, y1);
}

#[test]
fn reference_quantizers_on_exact_grids() {
    // Values on each type's grid come back exactly, with ggml's layout.
    let x: Vec<f32> = (0..QK).map(|j| j as f32 - 16.0).collect();
    let mut b5 = [BlockQ5_0::zeroed()];
    quantize_q5_0(&x, &mut b5); // max is -16 (first of largest magnitude): d = 1
    assert_eq!(b5[0].d.to_f32(), 1.0);
    assert_eq!(u32::from_le_bytes(b5[0].qh), 0xFFFF_0000);
    assert!(b5[0]
        .qs
        .iter()
        .enumerate()
        .all(|(j, &q)| q == j as u8 * 0x11));

    let x: Vec<f32> = (0..QK).map(|j| j as f32).collect();
    let mut b = [BlockQ5_1::zeroed()];
    quantize_q5_1(&x, &mut b);
    assert_eq!((b[0].d.to_f32(), b[0].m.to_f32()), (1.0, 0.0));
    assert_eq!(u32::from_le_bytes(b[0].qh), 0xFFFF_0000);
    let mut y = [0f32; QK];
    dequantize_q5_1(&b, &mut y);
    assert_eq!(&y[..], &x[..]);

    let x: Vec<f32> = (0..QK).map(|j| (j % 16) as f32 * 0.5 + 2.0).collect();
    let mut b = [BlockQ4_1::zeroed()];
    quantize_q4_1(&x, &mut b);
    assert_eq!((b[0].d.to_f32(), b[0].m.to_f32()), (0.5, 2.0));
    dequantize_q4_1(&b, &mut y);
    assert_eq!(&y[..], &x[..]);
}

#[test]
fn reference_quantizers_on_edge_inputs() {
    let zeros = [0f32; QK];
    let mut q4 = [BlockQ4_0::zeroed()];
    quantize_q4_0(&zeros, &mut q4);
    // d = 0 / -8 is -0.0, stored as the f16 bits 0x8000, as ggml stores it.
    assert_eq!(q4[0].d.to_bits(), 0x8000);
    assert!(
        q4[0].qs.iter().all(|&q| q == 0x88),
        "zero maps to the middle code 8"
    );
    let mut q5 = [BlockQ5_0::zeroed()];
    quantize_q5_0(&zeros, &mut q5);
    assert_eq!(q5[0].d.to_bits(), 0x8000);
    assert_eq!(
        (q5[0].qs, q5[0].qh),
        ([0; 16], [0xFF; 4]),
        "code 16 everywhere"
    );
    let mut q41 = [BlockQ4_1::zeroed()];
    quantize_q4_1(&zeros, &mut q41);
    assert_eq!(
        (q41[0].d.to_bits(), q41[0].m.to_bits(), q41[0].qs),
        (0, 0, [0; 16])
    );
    let mut q81 = [BlockQ8_1::zeroed()];
    quantize_q8_1(&zeros, &mut q81);
    assert_eq!(
        (q81[0].d.to_bits(), q81[0].s.to_bits(), q81[0].qs),
        (0, 0, [0; QK])
    );

    // A single positive outlier: d = -max/8, the outlier takes code 0, zeros code 8.
    let mut x = [0f32; QK];
    x[5] = 3.0;
    quantize_q4_0(&x, &mut q4);
    assert_eq!(q4[0].d, f16::from_f32(-0.375));
    for (j, &q) in q4[0].qs.iter().enumerate() {
        assert_eq!(q, if j == 5 { 0x80 } else { 0x88 });
    }
    // Equal magnitudes: the first wins (strict `<`), and the opposite extreme
    // is clamped to 15 (q4_0) / 31 (q5_0).
    x[0] = 4.0;
    x[7] = -4.0;
    quantize_q4_0(&x, &mut q4);
    assert_eq!(q4[0].d, f16::from_f32(-0.5));
    assert_eq!(
        (q4[0].qs[0] & 0xF, q4[0].qs[7] & 0xF, q4[0].qs[5] & 0xF),
        (0, 15, 2)
    );
    quantize_q5_0(&x, &mut q5);
    assert_eq!(q5[0].d, f16::from_f32(-0.25));
    assert_eq!((q5[0].qs[7] & 0xF, q5[0].qh[0] >> 7), (15, 1), "code 31");
    // Negative max: d > 0.
    x[0] = 0.0;
    quantize_q4_0(&x, &mut q4);
    assert_eq!(q4[0].d, f16::from_f32(0.5));
    assert_eq!((q4[0].qs[7] & 0xF, q4[0].qs[5] & 0xF), (0, 14));

    // Q8: roundf ties away from zero; s = d·Σq.
    let mut x = [0f32; QK];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.5;
    x[4] = -0.49999997;
    x[5] = -126.5;
    quantize_q8_1(&x, &mut q81);
    assert_eq!(q81[0].d.to_f32(), 1.0);
    assert_eq!(&q81[0].qs[..6], &[127, 3, -3, 1, 0, -127]);
    assert_eq!(q81[0].s.to_f32(), 1.0);

    // A subnormal block: 1/d overflows, and ggml's C conversion of ±inf gives 0.
    let tiny = [1e-40f32; QK];
    let mut q8 = [BlockQ8_0::zeroed()];
    quantize_q8_0(&tiny, &mut q8);
    assert_eq!((q8[0].d.to_bits(), q8[0].qs), (0, [0; QK]));
}

#[test]
fn fast_activation_quantizers_match_reference_bit_for_bit() {
    let mut rng = Rng::new(7);
    let mut inputs: Vec<Vec<f32>> = SHAPES
        .iter()
        .map(|&b| extreme_data(&mut rng, b * QK))
        .collect();
    // Exact ties after scaling (amax 127 → id 1), their neighbours, and oddities.
    let mut ties: Vec<f32> = (0..QK).map(|j| j as f32 * 4.0 - 63.5).collect();
    ties[0] = 127.0;
    ties.extend((0..QK).map(|j| f32::from_bits((j as f32 + 0.5).to_bits() + 1) - 16.0));
    ties.extend([1e-40f32; QK]);
    ties.extend((0..QK).map(|j| if j == 3 { f32::NAN } else { j as f32 }));
    ties.extend((0..QK).map(|j| if j == 9 { f32::NEG_INFINITY } else { 1.0 }));
    ties.extend([-0.0f32; QK]);
    inputs.push(ties);
    for (name, k) in levels() {
        for x in &inputs {
            for (act, q) in [
                (GgmlType::Q8_0, k.quantize_q8_0),
                (GgmlType::Q8_1, k.quantize_q8_1),
            ] {
                let want = quantize(act, x);
                let mut got = Row::new(act, x.len());
                q(x, got.bytes_mut());
                assert_eq!(
                    got.bytes(),
                    want.bytes(),
                    "{name} {act}, {} elements",
                    x.len()
                );
            }
        }
    }
}

#[test]
fn simd_dots_match_scalar_reference() {
    let mut rng = Rng::new(42);
    for (name, t, dot, _) in all_kernels() {
        let act = act_type(t);
        for &nb in &SHAPES {
            let n = nb * QK;
            for extreme in [false, true] {
                let (w, a) = if extreme {
                    (extreme_data(&mut rng, n), extreme_data(&mut rng, n))
                } else {
                    (rng.weights(n), rng.weights(n))
                };
                let (wq, aq) = (quantize(t, &w), quantize(act, &a));
                let want = SCALAR_DOT(t)(n, wq.bytes(), aq.bytes()) as f64;
                let got = dot(n, wq.bytes(), aq.bytes()) as f64;
                let floor = 0.1 * term_scale(t, wq.bytes(), aq.bytes());
                let e = rel_diff(got, want, floor.max(1e-30));
                assert!(
                    e <= 1e-5,
                    "{name} {t}, {nb} blocks (extreme {extreme}): {got} vs {want} ({e:e})"
                );
            }
        }
    }
}

#[test]
fn dots_on_adversarial_bytes_match_reference() {
    // Arbitrary quant bytes (−128 included) with finite scales. The AVX2 and
    // AVX-512BW Q8_0·Q8_0 kernels compute |w|·(±a), which wraps for an activation
    // of −128; no Q8 quantizer produces one (|q| ≤ 127), so those are left out of
    // Q8_0 activations. Every other kernel is exact for all bytes.
    let mut rng = Rng::new(9);
    for (name, t, dot, _) in all_kernels() {
        let act = act_type(t);
        for &nb in &[1usize, 9, 33] {
            let mut w = rng.bytes(t.row_bytes(nb * QK).unwrap());
            let mut a = rng.bytes(act.row_bytes(nb * QK).unwrap());
            sanitize_scales(t, &mut w);
            sanitize_scales(act, &mut a);
            if t == GgmlType::Q8_0 {
                for b in a.chunks_exact_mut(34) {
                    b[2..]
                        .iter_mut()
                        .filter(|q| **q == 0x80)
                        .for_each(|q| *q = 0x81);
                }
            }
            let (mut wr, mut ar) = (Row::new(t, nb * QK), Row::new(act, nb * QK));
            wr.bytes_mut().copy_from_slice(&w);
            ar.bytes_mut().copy_from_slice(&a);
            let n = nb * QK;
            let want = SCALAR_DOT(t)(n, wr.bytes(), ar.bytes()) as f64;
            let got = dot(n, wr.bytes(), ar.bytes()) as f64;
            let floor = 0.1 * term_scale(t, wr.bytes(), ar.bytes());
            let e = rel_diff(got, want, floor.max(1e-30));
            assert!(e <= 1e-5, "{name} {t}, {nb} blocks: {got} vs {want}");
        }
    }
}

/// Replaces every f16 field of every block with a random finite value in ±4.
fn sanitize_scales(t: GgmlType, bytes: &mut [u8]) {
    let fields = match t {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => 1,
        _ => 2,
    };
    for (i, b) in bytes.chunks_exact_mut(t.block_bytes()).enumerate() {
        for f in 0..fields {
            let v = f16::from_f32(((i * 7 + f * 3) % 17) as f32 * 0.47 - 4.0);
            b[2 * f..2 * f + 2].copy_from_slice(&v.to_bits().to_le_bytes());
        }
    }
}

#[test]
fn dots_within_ggml_tolerance_of_f64() {
    // test-quantize-fns: weights ggml_synthetic(n, 0), activations offset 1;
    // |dot − f64(dequantized weights · f32 activations)| / n < 0.02.
    let n = QK * 128;
    let w = ggml_synthetic(n, 0.0);
    let x = ggml_synthetic(n, 1.0);
    // Also against the unquantized f64 dot, as ggml's own test measures it.
    let unquantized = dot_f64(&w, &x);
    for (name, t, dot, q) in all_kernels() {
        let wq = quantize(t, &w);
        let exact = dot_f64(&dequantize(t, &wq, n), &x);
        let mut aq = Row::new(act_type(t), n);
        q(&x, aq.bytes_mut());
        for (which, f) in [("fast", dot), ("scalar", SCALAR_DOT(t))] {
            let got = f(n, wq.bytes(), aq.bytes()) as f64;
            for (against, r) in [("dequantized", exact), ("unquantized", unquantized)] {
                let e = (got - r).abs() / n as f64;
                assert!(
                    e < 0.02,
                    "{name} {t} {which} vs {against}: {got} vs {r} ({e})"
                );
            }
        }
    }
}

#[test]
fn dispatch_routes_to_this_module() {
    let x = ggml_synthetic(QK * 4, 0.5);
    for t in ALL_TYPES {
        let q = dispatch::quantizer(t).unwrap();
        let mut r = Row::new(t, x.len());
        q(&x, r.bytes_mut());
        assert_eq!(r.bytes(), quantize(t, &x).bytes(), "{t}");
        let mut y = vec![0f32; x.len()];
        dispatch::dequantizer(t)(r.bytes(), &mut y);
        assert_eq!(y, dequantize(t, &r, x.len()));
    }
}

#[test]
#[should_panic(expected = "vec_dot")]
fn dot_with_wrong_length_panics() {
    let w = quantize(GgmlType::Q4_0, &[1.0; 64]);
    let a = quantize(GgmlType::Q8_0, &[1.0; 64]);
    (kernels(GgmlType::Q4_0, cpu::best_supported())
        .unwrap()
        .vec_dot)(32, w.bytes(), a.bytes());
}

#[test]
#[should_panic(expected = "not whole")]
fn misaligned_weights_panic() {
    let w = quantize(GgmlType::Q8_0, &[1.0; 64]);
    let a = quantize(GgmlType::Q8_0, &[1.0; 64]);
    let mut shifted = vec![0u16; 40];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut shifted);
    bytes[1..69].copy_from_slice(w.bytes());
    (kernels(GgmlType::Q8_0, Isa::Scalar).unwrap().vec_dot)(64, &bytes[1..69], a.bytes());
}

const _: () = assert!(<BlockQ8_1 as Block>::LEN == QK);

/// Prefill tiles give exactly vec_dot's bits for every (row, token), whatever the
/// block count (whole groups of eight and tails), including all-zero rows and
/// tokens and rows at the quantizers' extremes.
#[test]
fn tiles_equal_vec_dot_bit_for_bit() {
    let mut rng = Rng::new(7);
    let mut tested = 0;
    for isa in cpu::supported_levels() {
        for t in WEIGHT_TYPES {
            let k = kernels_at(t, isa).unwrap();
            let Some(tile) = k.tile else { continue };
            for &nb in &[1usize, 7, 8, 9, 16, 19, 28] {
                let n = nb * QK;
                for &(rows, tokens) in &[(1usize, 2usize), (3, 5), (7, 17), (1, 1), (9, 1)] {
                    let (wb, ab) = (t.row_bytes(n).unwrap(), k.act.row_bytes(n).unwrap());
                    let mut w = Row::new(t, n * rows);
                    let mut a = Row::new(k.act, n * tokens);
                    for r in 0..rows {
                        let mut v = rng.weights(n);
                        match r % 3 {
                            0 => v.iter_mut().for_each(|x| *x = 0.0),
                            1 => v.iter_mut().for_each(|x| *x = x.signum() * 1e3),
                            _ => {}
                        }
                        dispatch::quantizer(t).unwrap()(&v, &mut w.bytes_mut()[r * wb..][..wb]);
                    }
                    for tk in 0..tokens {
                        let mut v = rng.weights(n);
                        if tk == 1 {
                            v.iter_mut().for_each(|x| *x = 0.0);
                        }
                        (k.quantize_act)(&v, &mut a.bytes_mut()[tk * ab..][..ab]);
                    }
                    let mut out = vec![f32::NAN; rows * tokens];
                    tile(n, w.bytes(), a.bytes(), &mut out);
                    for tk in 0..tokens {
                        for r in 0..rows {
                            let want = (k.vec_dot)(
                                n,
                                &w.bytes()[r * wb..][..wb],
                                &a.bytes()[tk * ab..][..ab],
                            );
                            let got = out[tk * rows + r];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{t} {isa} nb={nb} row {r} token {tk}: {got} vs {want}"
                            );
                        }
                    }
                    tested += 1;
                }
            }
        }
    }
    if cpu::has_avx2() {
        assert!(tested > 0, "AVX2 has tiles but none was tested");
    }
}

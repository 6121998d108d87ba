//! The exact path's matrix products and embedding lookup against ferrite's CPU
//! kernels, bit for bit: the kernels chosen as engine `mm()` chooses them
//! (`kernels_for_models`, `llama_repacked`, `llama_tiled`).

use ferrite_shaders::exact::mm;
use ferrite_shaders::{Arena, GpuContext, GpuTensor, Recorder};
use kernels::dispatch;
use kernels::GgmlType;

mod common;
use common::{ctx, Rng};

impl Rng {
    /// Roughly normal in (-4, 4).
    fn normal(&mut self) -> f32 {
        let s: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (s - 2.0) * 1.7
    }
}

/// `rows` × `cols` weights quantized to `dt` by the CPU quantizer.
fn weights(rng: &mut Rng, dt: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.1).collect();
    let rb = dt.row_bytes(cols).unwrap();
    // u32 storage: the K-quant block views need an aligned buffer.
    let mut buf = vec![0u32; (rows * rb).div_ceil(4)];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    (dispatch::quantizer(dt).unwrap())(&x, &mut bytes[..rows * rb]);
    bytes[..rows * rb].to_vec()
}

/// Activations with awkward rows: a ±max tie (negative first), an all-zero row,
/// a row with a zero block and a row of exact halves (quantizer ties).
fn inputs(rng: &mut Rng, cols: usize, ntok: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..ntok * cols).map(|_| rng.normal()).collect();
    for t in 0..ntok {
        let row = &mut x[t * cols..(t + 1) * cols];
        match t % 5 {
            1 => {
                for b in (0..cols).step_by(32) {
                    row[b + 3] = -6.0;
                    row[b + 17] = 6.0;
                }
            }
            2 => row.fill(0.0),
            3 => row[..32.min(cols)].fill(0.0),
            4 => {
                // Block maximum 127: the scales are ±1 and the halves round to even.
                for (i, v) in row.iter_mut().enumerate() {
                    *v = if i % 32 == 0 {
                        127.0
                    } else {
                        ((i % 255) as f32 - 127.0) * 0.5
                    };
                }
            }
            _ => {}
        }
    }
    x
}

/// engine `mm()`: the repacked gemm for whole groups of four tokens, then the
/// tiled kernels (8+ tokens) or the single-token ones.
fn cpu_mm(
    dt: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    ntok: usize,
    repack: bool,
) -> Vec<f32> {
    let mut kernels = dispatch::kernels_for_models(dt).unwrap();
    let mut batch4 = None;
    if let Some((single, b4)) = dispatch::llama_repacked(dt, rows) {
        if repack {
            kernels = single;
            batch4 = Some(b4);
        }
    }
    let batch8 = dispatch::llama_tiled(dt);
    let grouped = if batch4.is_some() { ntok / 4 * 4 } else { 0 };
    let single = match &batch8 {
        Some(k) if ntok >= 8 => *k,
        _ => kernels,
    };
    let mut y = vec![0f32; ntok * rows];
    for (k, ts) in [(batch4, 0..grouped), (Some(single), grouped..ntok)] {
        let (Some(k), false) = (k, ts.is_empty()) else {
            continue;
        };
        kernels::matmul::matmul(
            &k,
            w,
            rows,
            cols,
            &x[ts.start * cols..ts.end * cols],
            ts.len(),
            &mut y[ts.start * rows..ts.end * rows],
        );
    }
    y
}

fn assert_bits(what: &str, got: &[f32], want: &[f32], rows: usize) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        let n = (0..got.len())
            .filter(|&i| got[i].to_bits() != want[i].to_bits())
            .count();
        panic!(
            "{what}: {n} of {} differ; first at token {} row {}: gpu {:e} ({:#x}) cpu {:e} ({:#x})",
            got.len(),
            i / rows,
            i % rows,
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

const NTOKS: [usize; 7] = [1, 3, 4, 5, 8, 9, 13];

/// Every (repack, ntok) product of one weight matrix in one submit.
fn check_matrix(ctx: &GpuContext, w: &GpuTensor, bytes: &[u8], rng: &mut Rng, what: &str) {
    let (rows, cols) = (w.rows, w.cols);
    let mut cases = Vec::new();
    let mut off = 0;
    for repack in [true, false] {
        for ntok in NTOKS {
            let x = inputs(rng, cols, ntok);
            let (xo, yo, so) = (off, off + ntok * cols, off + ntok * (cols + rows));
            off = so + mm::scratch_len(cols, ntok);
            cases.push((repack, ntok, x, xo, yo, so));
        }
    }
    let arena = Arena::new(ctx, off).unwrap();
    let mut rec = Recorder::new(ctx, &arena);
    for (repack, ntok, x, xo, yo, so) in &cases {
        rec.write(*xo, x).unwrap();
        rec.exact_matmul(w, *repack, *xo, *yo, *ntok, *so).unwrap();
        rec.read(*yo, ntok * rows).unwrap();
    }
    let out = rec.submit().unwrap();
    for ((repack, ntok, x, ..), got) in cases.iter().zip(&out) {
        let want = cpu_mm(w.dtype, bytes, rows, cols, x, *ntok, *repack);
        assert_bits(
            &format!(
                "{what} {} {rows}x{cols} ntok {ntok} repack {repack}",
                w.dtype
            ),
            got,
            &want,
            rows,
        );
    }
}

#[test]
fn matmul_every_type_and_shape() {
    let ctx = ctx();
    eprintln!(
        "{}; CPU kernels {:?}",
        ctx.adapter(),
        kernels::cpu::active()
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for dt in mm::TYPES {
        assert!(mm::supported(dt));
        let colss: &[usize] = if dt.block_len() == 256 {
            &[256, 512, 2304]
        } else {
            &[32, 96, 512, 2304]
        };
        for &cols in colss {
            for rows in [1, 7, 8, 24, 40] {
                let bytes = weights(&mut rng, dt, rows, cols);
                let w = GpuTensor::upload(&ctx, "w", dt, rows, cols, &bytes).unwrap();
                check_matrix(&ctx, &w, &bytes, &mut rng, "plain");
            }
        }
        eprintln!("{dt}: exact");
    }
}

/// Several matrices over one input in one call (as Q/K/V and gate/up run): runs that
/// quantize alike share one quantization, the others requantize; every product keeps
/// the CPU's bits. Q4_K with 16 rows is repacked (gemm groups), with 12 it is not.
#[test]
fn matmuls_over_one_input() {
    let ctx = ctx();
    let mut rng = Rng(0xfeed);
    let cols = 512;
    let mats: Vec<(GgmlType, usize)> = vec![
        (GgmlType::Q4K, 16),
        (GgmlType::Q4K, 16),
        (GgmlType::Q4K, 12),
        (GgmlType::Q6K, 8),
        (GgmlType::Q8_0, 8),
        (GgmlType::Q4_0, 24),
        (GgmlType::Q4_1, 8),
        (GgmlType::Q8_0, 8),
    ];
    let ws: Vec<(Vec<u8>, GpuTensor)> = mats
        .iter()
        .map(|&(dt, rows)| {
            let bytes = weights(&mut rng, dt, rows, cols);
            let w = GpuTensor::upload(&ctx, "w", dt, rows, cols, &bytes).unwrap();
            (bytes, w)
        })
        .collect();
    for ntok in [1, 5, 9] {
        let x = inputs(&mut rng, cols, ntok);
        let mut ys = Vec::new();
        let mut off = ntok * cols + mm::scratch_len(cols, ntok);
        for (_, w) in &ws {
            ys.push(off);
            off += ntok * w.rows;
        }
        let arena = Arena::new(&ctx, off).unwrap();
        let mut rec = Recorder::new(&ctx, &arena);
        rec.write(0, &x).unwrap();
        let products: Vec<(&GpuTensor, bool, usize)> = ws
            .iter()
            .zip(&ys)
            .map(|((_, w), &y)| (w, true, y))
            .collect();
        rec.exact_matmuls(&products, 0, ntok, ntok * cols).unwrap();
        for ((_, w), &y) in ws.iter().zip(&ys) {
            rec.read(y, ntok * w.rows).unwrap();
        }
        let out = rec.submit().unwrap();
        for ((bytes, w), got) in ws.iter().zip(&out) {
            let want = cpu_mm(w.dtype, bytes, w.rows, cols, &x, ntok, true);
            let what = format!("{} {}x{cols} ntok {ntok} in one call", w.dtype, w.rows);
            assert_bits(&what, got, &want, w.rows);
        }
    }
}

#[test]
fn matmul_windowed_tensor() {
    let ctx = ctx();
    let mut rng = Rng(77);
    for dt in mm::TYPES {
        let (rows, cols) = (40, 512);
        let bytes = weights(&mut rng, dt, rows, cols);
        let rb = (dt.row_bytes(cols).unwrap() * 2) as u64;
        // Windows of about 7 rows (GPU rows are at least as big as GGUF ones).
        let w = GpuTensor::upload_windowed(&ctx, "w", dt, rows, cols, &bytes, rb * 7 / 2).unwrap();
        assert!(w.windows() > 2, "{dt}: {} windows", w.windows());
        check_matrix(&ctx, &w, &bytes, &mut rng, "windowed");
    }
}

#[test]
fn get_rows_every_type() {
    let ctx = ctx();
    let mut rng = Rng(5);
    for dt in mm::TYPES {
        let (rows, cols) = (23, 512);
        let bytes = weights(&mut rng, dt, rows, cols);
        let rb = dt.row_bytes(cols).unwrap();
        for windowed in [false, true] {
            let w = if windowed {
                GpuTensor::upload_windowed(&ctx, "t", dt, rows, cols, &bytes, rb as u64 * 6)
                    .unwrap()
            } else {
                GpuTensor::upload(&ctx, "t", dt, rows, cols, &bytes).unwrap()
            };
            let ids: Vec<u32> = vec![0, 22, 5, 5, 13, 7, 21];
            for scale in [1.0f32, 25.298221, 0.3] {
                let n = ids.len();
                let arena = Arena::new(&ctx, 8 + n * cols).unwrap();
                let mut rec = Recorder::new(&ctx, &arena);
                rec.write_u32(0, &ids).unwrap();
                rec.exact_get_rows(&w, 0, 8, n, scale).unwrap();
                rec.read(8, n * cols).unwrap();
                let got = rec.submit().unwrap().remove(0);
                let mut want = vec![0f32; n * cols];
                for (t, &id) in ids.iter().enumerate() {
                    let row = &mut want[t * cols..(t + 1) * cols];
                    let id = id as usize;
                    dispatch::dequantizer(dt)(&bytes[id * rb..(id + 1) * rb], row);
                    if scale != 1.0 {
                        row.iter_mut().for_each(|v| *v *= scale);
                    }
                }
                assert_bits(
                    &format!("get_rows {dt} scale {scale} windowed {windowed}"),
                    &got,
                    &want,
                    cols,
                );
            }
        }
    }
}

/// Two real weight matrices (Q4_K with rows % 8 == 0, and Q6_K) of a real model.
#[test]
fn real_model_matrices() {
    let path = ferrite_tests::model_path(ferrite_tests::Model::Qwen2);
    let file = engine::gguf::GgufFile::open(&path).expect("open model");
    let ctx = ctx();
    let mut rng = Rng(99);
    let mut seen = Vec::new();
    for t in file.tensors() {
        let v = file.tensor_view(&t.name).unwrap();
        let dt = v.dtype();
        if v.dims().len() != 2 || seen.contains(&dt) {
            continue;
        }
        let (rows, cols) = (v.rows() as usize, v.row_len() as usize);
        let ok = match dt {
            GgmlType::Q4K => rows.is_multiple_of(8) && rows <= 8192,
            GgmlType::Q6K => rows <= 8192,
            _ => false,
        };
        if !ok {
            continue;
        }
        seen.push(dt);
        let bytes = v.bytes();
        let w = GpuTensor::upload(&ctx, &t.name, dt, rows, cols, bytes).unwrap();
        let mut cases = Vec::new();
        let mut off = 0;
        for ntok in [1usize, 4, 6, 9] {
            let x: Vec<f32> = inputs(&mut rng, cols, ntok);
            let (xo, yo, so) = (off, off + ntok * cols, off + ntok * (cols + rows));
            off = so + mm::scratch_len(cols, ntok);
            cases.push((ntok, x, xo, yo, so));
        }
        let arena = Arena::new(&ctx, off).unwrap();
        let mut rec = Recorder::new(&ctx, &arena);
        for (ntok, x, xo, yo, so) in &cases {
            rec.write(*xo, x).unwrap();
            rec.exact_matmul(&w, true, *xo, *yo, *ntok, *so).unwrap();
            rec.read(*yo, ntok * rows).unwrap();
        }
        let out = rec.submit().unwrap();
        for ((ntok, x, ..), got) in cases.iter().zip(&out) {
            let want = cpu_mm(dt, bytes, rows, cols, x, *ntok, true);
            assert_bits(
                &format!("{} {dt} {rows}x{cols} ntok {ntok}", t.name),
                got,
                &want,
                rows,
            );
        }
        eprintln!("{} ({dt} {rows}x{cols}): exact", t.name);
    }
    assert!(
        seen.contains(&GgmlType::Q4K) && seen.contains(&GgmlType::Q6K),
        "model lacks a Q4_K or Q6_K matrix: {seen:?}"
    );
}

/// The shaders' integer-built `fma_rn` and `div_rn` against the CPU's fused
/// `mul_add` and IEEE division: wide exponents, cancellations, subnormal results.
#[test]
fn soft_fma_and_division_are_ieee() {
    let ctx = ctx();
    let mut rng = Rng(12345);
    let val = |rng: &mut Rng, lo: u32, span: u32| {
        let r = rng.next();
        let e = lo + (r >> 40) as u32 % span;
        f32::from_bits(((r >> 63) as u32) << 31 | e << 23 | (r as u32 & 0x7f_ffff))
    };
    let mut ins = Vec::new();
    for i in 0..20000 {
        let (a, b) = (val(&mut rng, 100, 50), val(&mut rng, 100, 50));
        let c = match i % 5 {
            // Near-total cancellation of the product.
            0 => -(a * b),
            1 => -(a * b) * (1.0 + f32::EPSILON * (i % 7) as f32),
            2 => val(&mut rng, 1, 60),
            3 => 0.0,
            _ => val(&mut rng, 100, 60),
        };
        ins.push([a, b, c]);
    }
    // Small integers times f16-like scales, as the kernels use it.
    for _ in 0..5000 {
        let s = ((rng.next() >> 40) as i32 % 70000) as f32;
        let d = half::f16::from_f32(rng.normal() * 0.01).to_f32()
            * half::f16::from_f32(rng.normal() * 0.01).to_f32();
        ins.push([d, s, rng.normal()]);
    }
    // exact::probe returns fma_rn at [0] and div_rn at [3].
    let out = ferrite_shaders::exact::probe(&ctx, &ins).unwrap();
    for (i, (&[a, b, c], o)) in ins.iter().zip(&out).enumerate() {
        assert_eq!(
            o[0],
            a.mul_add(b, c).to_bits(),
            "fma_rn({a:e}, {b:e}, {c:e}) at {i}"
        );
        assert_eq!(o[3], (a / b).to_bits(), "div_rn({a:e}, {b:e}) at {i}");
    }
}

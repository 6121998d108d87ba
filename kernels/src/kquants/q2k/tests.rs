//! Q2_K tests, and the dot-checking harness shared with Q3_K.

use super::*;
use crate::blocks::Block;
use crate::cpu;
use crate::dispatch::{kernels_at, VecDotFn};
use crate::kquants::q8k;
use crate::testutil::{dot_f64, ggml_synthetic, ggml_total_error, rel_diff, Rng};

/// A finite normal f16 of random sign with magnitude in [2^-12, 2^-2). Integer-only,
/// so the oracle script that produced the hashes below can replay it.
pub(in crate::kquants) fn small_f16(rng: &mut Rng) -> f16 {
    let exp = 3 + rng.below(10) as u16;
    let mant = (rng.next_u64() & 0x3ff) as u16;
    let sign = ((rng.next_u64() & 1) as u16) << 15;
    f16::from_bits(sign | (exp << 10) | mant)
}

/// FNV-1a over bytes.
pub(in crate::kquants) fn fnv1a_bytes(v: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in v {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a over the f32 bit patterns (little-endian).
pub(in crate::kquants) fn fnv1a(v: &[f32]) -> u64 {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    fnv1a_bytes(&bytes)
}

/// Input for the quantizer known-answer tests (76 blocks, only f32 arithmetic, so
/// the same on every platform): weight-like rows at several magnitudes, then
/// zero, constant, single-spike, one-signed and few-level blocks.
pub(in crate::kquants) fn quantizer_oracle_input() -> Vec<f32> {
    let mut rng = Rng::new(77);
    let mut x = rng.weights(256 * 40);
    for scale in [1e-3f32, 1e-6, 1e-20, 1e4, 3e4] {
        x.extend(rng.weights(256 * 4).iter().map(|v| v * scale));
    }
    x.extend([0f32; 256]);
    x.extend([2.5f32; 256]);
    x.extend([-0.75f32; 256]);
    x.extend((0..256).map(|i| if i == 77 { 1.25 } else { 0.0 }));
    x.extend(rng.weights(256 * 4).iter().map(|v| v.abs() + 0.5));
    x.extend(rng.weights(256 * 4).iter().map(|v| -v.abs() - 0.5));
    x.extend((0..256 * 4).map(|i| ((i % 7) as f32 - 3.0) * 0.25));
    x
}

fn random_block(rng: &mut Rng) -> BlockQ2K {
    let mut b = BlockQ2K::zeroed();
    b.scales.copy_from_slice(&rng.bytes(16));
    b.qs.copy_from_slice(&rng.bytes(64));
    b.d = small_f16(rng);
    b.dmin = small_f16(rng);
    b
}

/// Activations of `nb` blocks, normal with a few outliers, and their Q8_K form.
pub(in crate::kquants) fn random_act(rng: &mut Rng, nb: usize) -> (Vec<f32>, Vec<BlockQ8K>) {
    let a = rng.weights(nb * QK_K);
    let mut q = vec![BlockQ8K::zeroed(); nb];
    q8k::quantize(&a, &mut q);
    (a, q)
}

/// Checks every supported ISA level's dot against the scalar reference (1e-5
/// relative, with `mag`/10 as the floor: `mag` bounds the sum of the absolute
/// terms) and, when `act` is given, both against the f64 dot of the dequantized
/// weights with the f32 activations (ggml's low-bit bound, 0.04 per element).
pub(in crate::kquants) fn check_dots<W: Block>(
    variants: &[(&'static str, VecDotFn)],
    w: &[W],
    q8: &[BlockQ8K],
    reference: f32,
    mag: f64,
    act: Option<&[f32]>,
) {
    let n = w.len() * QK_K;
    let wb: &[u8] = bytemuck::cast_slice(w);
    let ab: &[u8] = bytemuck::cast_slice(q8);
    let f64_ref = act.map(|a| {
        let mut deq = vec![0f32; n];
        (crate::dispatch::dequantizer(W::TYPE))(wb, &mut deq);
        dot_f64(&deq, a)
    });
    if let Some(r) = f64_ref {
        let e = (reference as f64 - r).abs() / n as f64;
        assert!(e < 0.04, "{} scalar: {reference} vs f64 {r}", W::TYPE);
    }
    for isa in cpu::supported_levels() {
        let k = kernels_at(W::TYPE, isa).expect("kernels");
        assert_eq!(k.act, GgmlType::Q8K);
        let got = (k.vec_dot)(n, wb, ab);
        let rd = rel_diff(got as f64, reference as f64, mag * 0.1);
        assert!(
            rd <= 1e-5 || got == reference,
            "{} {isa:?}(used {:?}) {} blocks: {got} vs reference {reference} (rel {rd:e}, mag {mag})",
            W::TYPE,
            k.isa,
            w.len()
        );
        if let Some(r) = f64_ref {
            let e = (got as f64 - r).abs() / n as f64;
            assert!(e < 0.04, "{} {isa:?}: {got} vs f64 {r}", W::TYPE);
        }
    }
    for (name, f) in variants {
        let got = f(n, wb, ab);
        let rd = rel_diff(got as f64, reference as f64, mag * 0.1);
        assert!(
            rd <= 1e-5 || got == reference,
            "{} {name} {} blocks: {got} vs reference {reference} (rel {rd:e})",
            W::TYPE,
            w.len()
        );
    }
}

/// Σ (|dl·q| + |ml|)·|a| over the dequantized activations: bounds every term the
/// dot adds.
fn magnitude(w: &[BlockQ2K], q8: &[BlockQ8K]) -> f64 {
    let mut s = 0f64;
    for (b, a) in w.iter().zip(q8) {
        for i in 0..QK_K {
            let g = i / 16;
            let (half, plane, l) = (i / 128, (i % 128) / 32, i % 32);
            let q = (b.qs[32 * half + l] >> (2 * plane)) & 3;
            let dl = b.d.to_f64() * (b.scales[g] & 0xF) as f64;
            let ml = b.dmin.to_f64() * (b.scales[g] >> 4) as f64;
            s += ((dl * q as f64).abs() + ml.abs()) * (a.d as f64 * a.qs[i] as f64).abs();
        }
    }
    s
}

#[test]
fn dequantize_hand_built_block() {
    let mut b = BlockQ2K::zeroed();
    b.d = f16::from_f32(1.0);
    b.dmin = f16::from_f32(0.5);
    // Byte 0 of half 0: elements 0, 32, 64, 96 get q = 0, 1, 2, 3.
    b.qs[0] = 0b11_10_01_00;
    // Byte 17 of half 1: element 128 + 17 = 145 (group 9) gets q = 2 (bits 0-1),
    // element 128 + 96 + 17 = 241 (group 15) gets q = 1 (bits 6-7).
    b.qs[32 + 17] = 0b01_00_00_10;
    b.scales[0] = 0x21; // sc 1, min 2
    b.scales[2] = 0x43; // sc 3, min 4
    b.scales[4] = 0x0F; // sc 15, min 0
    b.scales[6] = 0xF7; // sc 7, min 15
    b.scales[9] = 0x15; // sc 5, min 1
    b.scales[15] = 0xA2; // sc 2, min 10
    let mut y = vec![0f32; QK_K];
    dequantize(&[b], &mut y);
    assert_eq!(y[0], -1.0); // 1·1·0 - 0.5·2
    assert_eq!(y[1], -1.0); // same group, q = 0
    assert_eq!(y[32], 1.0); // 1·3·1 - 0.5·4
    assert_eq!(y[64], 30.0); // 1·15·2 - 0
    assert_eq!(y[96], 13.5); // 1·7·3 - 0.5·15
    assert_eq!(y[145], 9.5); // 1·5·2 - 0.5·1
    assert_eq!(y[241], -3.0); // 1·2·1 - 0.5·10
    assert_eq!(y[16], 0.0); // group 1: sc 0, min 0
    let mut via_bytes = vec![0f32; QK_K + 1];
    let mut unaligned = [0u8; 85];
    unaligned[1..].copy_from_slice(bytemuck::bytes_of(&b));
    dequantize_bytes(&unaligned[1..], &mut via_bytes[1..]);
    assert_eq!(&via_bytes[1..], &y[..]);
}

/// Hashes of the `gguf` Python package's `Q2_K.dequantize_blocks` on the blocks of
/// `random_block` (seed 0x5EED + blocks), i.e. the bits ggml's dequantizer gives.
#[test]
fn dequantize_matches_gguf_bits() {
    for (nb, want) in [
        (1usize, 0xf98f_3d54_e435_021du64),
        (7, 0x52de_61bf_ca08_cf47),
    ] {
        let mut rng = Rng::new(0x5EED + nb as u64);
        let w: Vec<BlockQ2K> = (0..nb).map(|_| random_block(&mut rng)).collect();
        let mut y = vec![0f32; nb * QK_K];
        dequantize(&w, &mut y);
        assert_eq!(fnv1a(&y), want, "{nb} blocks");
    }
}

#[test]
fn every_level_matches_reference_on_random_blocks() {
    let mut rng = Rng::new(2);
    for nb in [1usize, 2, 3, 5, 17] {
        for _ in 0..4 {
            let w: Vec<BlockQ2K> = (0..nb).map(|_| random_block(&mut rng)).collect();
            let (a, q8) = random_act(&mut rng, nb);
            let r = vec_dot_ref(&w, &q8);
            check_dots(&all_dots(), &w, &q8, r, magnitude(&w, &q8), Some(&a));
        }
    }
}

#[test]
fn every_level_matches_reference_on_extreme_blocks() {
    let mut rng = Rng::new(3);
    let nb = 3;
    let (_, mut q8) = random_act(&mut rng, nb);
    // Extreme activations (bytes a quantizer never makes, -128 included).
    for (k, b) in q8.iter_mut().enumerate() {
        for (i, q) in b.qs.iter_mut().enumerate() {
            *q = match (k + i) % 3 {
                0 => -128,
                1 => 127,
                _ => (i as i8).wrapping_mul(37),
            };
        }
        for g in 0..16 {
            b.bsums[g] = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i16).sum();
        }
    }
    let cases: [(u8, u8, f32, f32); 5] = [
        (0x00, 0x00, 0.0, 0.0),         // zero block
        (0xFF, 0xFF, 1.0, 1.0),         // every field at its maximum
        (0xFF, 0x0F, 60000.0, 60000.0), // huge scales, no mins
        (0xAA, 0x5F, 6e-8, 3e-5),       // subnormal f16 scales
        (0x55, 0xF0, -2.0, 0.5),        // negative d, mins only
    ];
    for (qbyte, sbyte, d, dmin) in cases {
        let mut w = vec![BlockQ2K::zeroed(); nb];
        for b in w.iter_mut() {
            b.qs = [qbyte; 64];
            b.scales = [sbyte; 16];
            b.d = f16::from_f32(d);
            b.dmin = f16::from_f32(dmin);
        }
        let r = vec_dot_ref(&w, &q8);
        assert!(r.is_finite());
        if sbyte == 0 {
            assert_eq!(r, 0.0);
        }
        check_dots(&all_dots(), &w, &q8, r, magnitude(&w, &q8), None);
    }
}

#[test]
fn quantize_synthetic_within_ggml_tolerance() {
    let x = ggml_synthetic(32 * 128, 0.0);
    let mut q = vec![BlockQ2K::zeroed(); x.len() / QK_K];
    quantize(&x, &mut q);
    let mut y = vec![0f32; x.len()];
    dequantize(&q, &mut y);
    let e = ggml_total_error(&x, &y);
    assert!(e < 0.0075, "ggml rmse {e}");

    // Byte entry points through the dispatch table agree with the typed ones.
    let mut bytes = vec![0u8; q.len() * std::mem::size_of::<BlockQ2K>()];
    (crate::dispatch::quantizer(GgmlType::Q2K).expect("q2_K quantizer"))(&x, &mut bytes);
    assert_eq!(bytes, bytemuck::cast_slice::<BlockQ2K, u8>(&q));

    // ggml's dot test: synthetic weights with offset-1 activations.
    let a = ggml_synthetic(x.len(), 1.0);
    let mut q8 = vec![BlockQ8K::zeroed(); q.len()];
    q8k::quantize(&a, &mut q8);
    let r = vec_dot_ref(&q, &q8);
    let e = (r as f64 - dot_f64(&x, &a)).abs() / x.len() as f64;
    assert!(e < 0.04, "dot error {e}");
    check_dots(&all_dots(), &q, &q8, r, magnitude(&q, &q8), Some(&a));
}

#[test]
fn quantize_zero_and_constant_blocks() {
    let mut q = [BlockQ2K::zeroed(); 2];
    let mut x = vec![0f32; 2 * QK_K];
    x[QK_K..].fill(-1.5);
    quantize(&x, &mut q);
    let mut y = vec![0f32; 2 * QK_K];
    dequantize(&q, &mut y);
    assert!(y[..QK_K].iter().all(|&v| v == 0.0));
    assert!(
        y[QK_K..].iter().all(|&v| (v + 1.5).abs() < 1e-3),
        "{:?}",
        &y[QK_K..QK_K + 4]
    );
}

#[test]
fn levels_report_what_they_use() {
    for isa in cpu::supported_levels() {
        let k = kernels_at(GgmlType::Q2K, isa).expect("kernels");
        assert!(k.isa <= isa && k.isa.supported());
        assert_eq!(k.dtype, GgmlType::Q2K);
    }
}

/// Hash of the bytes ggml's `quantize_row_q2_K_ref` (its C source compiled with
/// gcc, no FMA contraction) writes for `quantizer_oracle_input`.
#[test]
fn quantize_matches_ggml_bytes() {
    let x = quantizer_oracle_input();
    let mut q = vec![BlockQ2K::zeroed(); x.len() / QK_K];
    quantize(&x, &mut q);
    assert_eq!(fnv1a_bytes(bytemuck::cast_slice(&q)), 0x40f8_c106_8fb1_0e16);
}

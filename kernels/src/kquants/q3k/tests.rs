use super::*;
use crate::dispatch::kernels_at;
use crate::kquants::q2k::tests::{
    check_dots, fnv1a, fnv1a_bytes, quantizer_oracle_input, random_act, small_f16,
};
use crate::kquants::q8k;
use crate::testutil::{dot_f64, ggml_synthetic, ggml_total_error, Rng};

fn random_block(rng: &mut Rng) -> BlockQ3K {
    let mut b = BlockQ3K::zeroed();
    b.hmask.copy_from_slice(&rng.bytes(32));
    b.qs.copy_from_slice(&rng.bytes(64));
    b.scales.copy_from_slice(&rng.bytes(12));
    b.d = small_f16(rng);
    b
}

/// Σ |w·a| over the dequantized weights and activations: bounds every term.
fn magnitude(w: &[BlockQ3K], q8: &[BlockQ8K]) -> f64 {
    let mut deq = vec![0f32; w.len() * QK_K];
    dequantize(w, &mut deq);
    let act = q8
        .iter()
        .flat_map(|b| b.qs.iter().map(move |&q| b.d as f64 * q as f64));
    deq.iter()
        .zip(act)
        .map(|(&x, a)| (x as f64 * a).abs())
        .sum()
}

#[test]
fn scales_unpack_as_ggml_packs_them() {
    // Every 6-bit pattern in every group round-trips through the packing.
    for g in 0..16 {
        for v in 0..64u8 {
            let mut s = [0u8; 12];
            if g < 8 {
                s[g] = v & 0xF;
            } else {
                s[g - 8] = (v & 0xF) << 4;
            }
            s[8 + g % 4] = (v >> 4) << (2 * (g / 4));
            let got = unpack_scales(&s);
            for (k, &sc) in got.iter().enumerate() {
                let want = if k == g { v as i8 - 32 } else { -32 };
                assert_eq!(sc, want, "group {g} value {v}: scale {k}");
            }
        }
    }
}

#[test]
fn dequantize_hand_built_block() {
    let mut b = BlockQ3K::zeroed();
    b.d = f16::from_f32(0.5);
    b.scales[0] = 0x21; // group 0 low nibble 1, group 8 low nibble 2
    b.scales[8] = 0b10; // group 0 top bits 2: 33 - 32 = 1; group 8: 2 - 32 = -30
    b.scales[5] = 0x0F; // group 5 low nibble 15
    b.scales[9] = 0b1100; // group 5 top bits 3: 63 - 32 = 31
                          // Byte 0: element 0 (q 2), 32 (q 1), 64 (q 2), 96 (q 3); only element 0 has
                          // its high bit. Every other group has scale 0 - 32.
    b.qs[0] = 0b11_10_01_10;
    b.hmask[0] = 0b0000_0001;
    b.qs[16] = 0b00_11_00_00; // element 80 (group 5), q 3
    b.hmask[16] = 0b0100_0100; // element 80 high bit (bit 2), element 208 (bit 6)
    b.qs[48] = 0b00_01_00_00; // element 208 (group 13), q 1
    let mut y = vec![0f32; QK_K];
    dequantize(&[b], &mut y);
    assert_eq!(y[0], 1.0); // 0.5·1·(2 - 0)
    assert_eq!(y[32], 48.0); // 0.5·-32·(1 - 4)
    assert_eq!(y[64], 32.0); // 0.5·-32·(2 - 4)
    assert_eq!(y[96], 16.0); // 0.5·-32·(3 - 4)
    assert_eq!(y[80], 46.5); // 0.5·31·(3 - 0)
    assert_eq!(y[128], 60.0); // 0.5·-30·(0 - 4)
    assert_eq!(y[208], -16.0); // 0.5·-32·(1 - 0)
    assert_eq!(y[1], 0.5 * 1.0 * -4.0); // group 0, q 0, no high bit
    let mut via_bytes = vec![0f32; QK_K];
    let mut unaligned = [0u8; 111];
    unaligned[1..].copy_from_slice(bytemuck::bytes_of(&b));
    dequantize_bytes(&unaligned[1..], &mut via_bytes);
    assert_eq!(via_bytes, y);
}

/// Hashes of the `gguf` Python package's `Q3_K.dequantize_blocks` on the blocks of
/// `random_block` (seed 0x5EED + blocks), i.e. the bits ggml's dequantizer gives.
#[test]
fn dequantize_matches_gguf_bits() {
    for (nb, want) in [
        (1usize, 0xf3c0_8503_db93_c835u64),
        (7, 0xf2f3_f5e7_a6fc_592c),
    ] {
        let mut rng = Rng::new(0x5EED + nb as u64);
        let w: Vec<BlockQ3K> = (0..nb).map(|_| random_block(&mut rng)).collect();
        let mut y = vec![0f32; nb * QK_K];
        dequantize(&w, &mut y);
        assert_eq!(fnv1a(&y), want, "{nb} blocks");
    }
}

#[test]
fn every_level_matches_reference_on_random_blocks() {
    let mut rng = Rng::new(12);
    for nb in [1usize, 2, 3, 5, 17] {
        for _ in 0..4 {
            let w: Vec<BlockQ3K> = (0..nb).map(|_| random_block(&mut rng)).collect();
            let (a, q8) = random_act(&mut rng, nb);
            let r = vec_dot_ref(&w, &q8);
            check_dots(&all_dots(), &w, &q8, r, magnitude(&w, &q8), Some(&a));
        }
    }
}

#[test]
fn every_level_matches_reference_on_extreme_blocks() {
    let mut rng = Rng::new(13);
    let nb = 3;
    let (_, mut q8) = random_act(&mut rng, nb);
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
    // (qs byte, hmask byte, scales byte, d)
    let cases: [(u8, u8, u8, f32); 6] = [
        (0x00, 0x00, 0x00, 0.0),     // zero d
        (0x00, 0x00, 0x00, 1.0),     // every quant -4, every scale -32
        (0xFF, 0xFF, 0xFF, 1.0),     // every quant 3, every scale 31
        (0xFF, 0x00, 0xAA, 60000.0), // huge d
        (0x1B, 0x5A, 0x5F, 6e-8),    // subnormal d
        (0xE4, 0x0F, 0x80, -3.0),    // negative d
    ];
    for (qbyte, hbyte, sbyte, d) in cases {
        let mut w = vec![BlockQ3K::zeroed(); nb];
        for b in w.iter_mut() {
            b.qs = [qbyte; 64];
            b.hmask = [hbyte; 32];
            b.scales = [sbyte; 12];
            b.d = f16::from_f32(d);
        }
        let r = vec_dot_ref(&w, &q8);
        assert!(r.is_finite());
        if d == 0.0 {
            assert_eq!(r, 0.0);
        }
        check_dots(&all_dots(), &w, &q8, r, magnitude(&w, &q8), None);
    }
}

#[test]
fn quantize_synthetic_within_ggml_tolerance() {
    let x = ggml_synthetic(32 * 128, 0.0);
    let mut q = vec![BlockQ3K::zeroed(); x.len() / QK_K];
    quantize(&x, &mut q);
    let mut y = vec![0f32; x.len()];
    dequantize(&q, &mut y);
    let e = ggml_total_error(&x, &y);
    assert!(e < 0.0040, "ggml rmse {e}");

    let mut bytes = vec![0u8; q.len() * std::mem::size_of::<BlockQ3K>()];
    (crate::dispatch::quantizer(GgmlType::Q3K).expect("q3_K quantizer"))(&x, &mut bytes);
    assert_eq!(bytes, bytemuck::cast_slice::<BlockQ3K, u8>(&q));

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
    let mut q = [BlockQ3K::zeroed(); 2];
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
    for isa in crate::cpu::supported_levels() {
        let k = kernels_at(GgmlType::Q3K, isa).expect("kernels");
        assert!(k.isa <= isa && k.isa.supported());
        assert_eq!(k.dtype, GgmlType::Q3K);
    }
}

/// Hash of the bytes ggml's `quantize_row_q3_K_ref` (its C source compiled with
/// gcc, no FMA contraction) writes for `quantizer_oracle_input`.
#[test]
fn quantize_matches_ggml_bytes() {
    let x = quantizer_oracle_input();
    let mut q = vec![BlockQ3K::zeroed(); x.len() / QK_K];
    quantize(&x, &mut q);
    assert_eq!(fnv1a_bytes(bytemuck::cast_slice(&q)), 0xa30e_9a32_f35a_c56f);
}

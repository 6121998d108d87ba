//! The exact path's arithmetic primitives (`wgsl/exact/math.wgsl`) against IEEE
//! results computed on the CPU: correctly rounded division, square root and f16
//! conversion, and a fused `fma`.

use ferrite_shaders::exact;
use half::f16;

mod common;
use common::ctx;

/// Deterministic awkward f32 values: random bit patterns of finite normals across
/// a wide exponent range, plus values at f16 rounding ties.
fn inputs(n: usize) -> Vec<[f32; 3]> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut val = |lo_exp: u32, span: u32| {
        let r = next();
        let e = lo_exp + (r >> 40) as u32 % span;
        let m = (r as u32) & 0x7f_ffff;
        let sign = ((r >> 63) as u32) << 31;
        f32::from_bits(sign | e << 23 | m)
    };
    (0..n)
        .map(|i| {
            let mut a = val(100, 50);
            if i % 4 == 0 {
                // An exact f16 tie: 11 significant bits then a single half bit.
                let h = f16::from_bits((i as u16 * 7919) % 0x7800 + 0x0400);
                a = f32::from_bits(h.to_f32().to_bits() | 0x1000);
            }
            let b = val(110, 30);
            let c = match i % 8 {
                // Cancellation: the addend is minus the rounded product.
                1 => -(a * b),
                // An addend far below the product's last bit (sticky only).
                2 => (a * b) * 1e-12,
                // Results that are subnormal or round to the smallest normal.
                3 => {
                    let a = f32::from_bits(0x0080_0000 + (i as u32 % 4096));
                    return [a, 0.75, -f32::from_bits(0x0000_1000)];
                }
                _ => val(100, 50),
            };
            [a, b, c]
        })
        .collect()
}

#[test]
fn primitives_are_ieee() {
    let ctx = ctx();
    let ins = inputs(4096);
    let out = exact::probe(&ctx, &ins).expect("probe runs");
    let (mut div_ok, mut sqrt_ok, mut pack_ok) = (0, 0, 0);
    let mut bad = Vec::new();
    for (i, (&[a, b, c], o)) in ins.iter().zip(&out).enumerate() {
        let fma = a.mul_add(b, c);
        assert_eq!(
            o[0],
            fma.to_bits(),
            "fma_rn({a:e}, {b:e}, {c:e}) at {i}: {:e} vs {fma:e}",
            f32::from_bits(o[0])
        );
        assert_eq!(
            o[1],
            fma.to_bits(),
            "fma_soft({a:e}, {b:e}, {c:e}) at {i}: {:e} vs {fma:e}",
            f32::from_bits(o[1])
        );
        div_ok += (o[2] == (a / b).to_bits()) as usize;
        sqrt_ok += (o[4] == a.abs().sqrt().to_bits()) as usize;
        pack_ok += (o[6] == f16::from_f32(a).to_bits() as u32) as usize;
        // div_rn is specified for results away from the subnormal range.
        let div_in_range = (a / b).abs() >= 1e-36;
        if (div_in_range && o[3] != (a / b).to_bits())
            || o[5] != a.abs().sqrt().to_bits()
            || o[7] != f16::from_f32(a).to_bits() as u32
        {
            bad.push(format!("{i}: a={a:e} b={b:e} div_rn {:e} vs {:e}, sqrt_rn {:e} vs {:e}, f16 {:#x} vs {:#x}",
                f32::from_bits(o[3]), a / b, f32::from_bits(o[5]), a.abs().sqrt(), o[7], f16::from_f32(a).to_bits()));
        }
    }
    eprintln!(
        "{}: hardware fma fused: {}; '/' exact {div_ok}/{n}; \
         sqrt exact {sqrt_ok}/{n}; pack2x16float RNE {pack_ok}/{n}",
        ctx.adapter(),
        ctx.fma_fused().unwrap(),
        n = ins.len()
    );
    assert!(
        bad.is_empty(),
        "{} inexact, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

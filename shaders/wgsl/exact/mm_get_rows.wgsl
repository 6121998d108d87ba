// Embedding lookup with the CPU dequantizers' f32 operations (DT: 0 Q4_0, 1 Q4_1,
// 2 Q5_0, 3 Q8_0, 4 Q4_K, 5 Q6_K), then `*= scale`. One invocation per element;
// each dispatch covers one window of the table (rows row0 .. row0 + rows).
struct P {
    ids: u32,
    y: u32,
    cols: u32,
    ntok: u32,
    row0: u32,
    rows: u32,
    scale: f32,
    use_scale: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;

fn nib(w: u32, byte: u32, high: bool) -> u32 {
    return (w >> (8u * byte + select(0u, 4u, high))) & 15u;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.gx) * 64u + lid;
    if (i >= p.ntok * p.cols) {
        return;
    }
    let t = i / p.cols;
    let e = i % p.cols;
    let id = a[p.ids + t];
    // Rows outside this window belong to another dispatch (or are out of range).
    if (id < p.row0 || id - p.row0 >= p.rows) {
        return;
    }
    let r = id - p.row0;
    var v: f32;
    switch DT {
        case 4u: {
            let wb = (r * (p.cols / 256u) + e / 256u) * 36u;
            let i2 = e % 256u;
            let c = i2 / 64u;
            let l = i2 % 32u;
            let high = (i2 % 64u) >= 32u;
            let sm = k4_scale_min(wt[wb + 1u], wt[wb + 2u], wt[wb + 3u], 2u * c + select(0u, 1u, high));
            let w0 = wt[wb];
            let d1 = f16_value(w0 & 0xffffu) * f32(sm.x);
            let m1 = f16_value(w0 >> 16u) * f32(sm.y);
            let q = nib(wt[wb + 4u + 8u * c + l / 4u], l % 4u, high);
            // d1·q is exact (≤ 21 significant bits): fused or not, the same bits.
            v = d1 * f32(q) - m1;
        }
        case 5u: {
            let wb = (r * (p.cols / 256u) + e / 256u) * 53u;
            let i2 = e % 256u;
            let h = i2 / 128u;
            let k = (i2 % 128u) / 32u;
            let l = i2 % 32u;
            let qlb = 64u * h + l + 32u * (k & 1u);
            let lo = nib(wt[wb + qlb / 4u], qlb % 4u, k >= 2u);
            let qhb = 32u * h + l;
            let hi = (wt[32u + qhb / 4u + wb] >> (8u * (qhb % 4u) + 2u * k)) & 3u;
            let sc = sbyte(wt[wb + 48u + i2 / 64u], (i2 / 16u) % 4u);
            let d = f16_value(wt[wb + 52u] & 0xffffu);
            v = (d * f32(sc)) * f32(i32(lo | (hi << 4u)) - 32);
        }
        default: {
            var bw = 5u;
            if (DT == 2u) {
                bw = 6u;
            } else if (DT == 3u) {
                bw = 9u;
            }
            let wb = (r * (p.cols / 32u) + e / 32u) * bw;
            let j = e % 32u;
            let w0 = wt[wb];
            let d = f16_value(w0 & 0xffffu);
            if (DT == 3u) {
                v = f32(sbyte(wt[wb + 1u + j / 4u], j % 4u)) * d;
            } else {
                let qo = select(1u, 2u, DT == 2u);
                var q = nib(wt[wb + qo + (j % 16u) / 4u], j % 4u, j >= 16u);
                if (DT == 0u) {
                    v = f32(i32(q) - 8) * d;
                } else if (DT == 1u) {
                    // q·d is exact: fused or not, the same bits.
                    v = f32(q) * d + f16_value(w0 >> 16u);
                } else {
                    q |= ((wt[wb + 1u] >> j) & 1u) << 4u;
                    v = f32(i32(q) - 16) * d;
                }
            }
        }
    }
    if (p.use_scale != 0u) {
        v = v * p.scale;
    }
    a[p.y + t * p.cols + e] = bitcast<u32>(v);
}

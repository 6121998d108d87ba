// Round activations to what the CPU kernels multiply with (llama.cpp's runtime
// quantizers), so GPU products see the same inputs: kind 0 = Q8_0/Q8_1 (blocks of 32,
// d = amax / 127 stored as f16, round half to even), kind 1 = Q8_K (blocks of 256,
// scale from the signed extreme), kind 2 = Q8_1: as Q8_0, plus per block
// s = f16(Σq · d) at y + n (the CPU adds the weights' min times that). y = dequantized
// values. One thread per block.
struct P {
    n_blocks: u32,
    x_off: u32,
    y_off: u32,
    kind: u32,
    gx: u32,
    s_off: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let blk = (wid.x + wid.y * p.gx) * WG + lid;
    if (blk >= p.n_blocks) {
        return;
    }
    if (p.kind != 1u) {
        let xb = p.x_off + blk * 32u;
        let yb = p.y_off + blk * 32u;
        var amax = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            amax = max(amax, abs(a[xb + i]));
        }
        var id = 0.0;
        if (amax != 0.0) {
            id = 127.0 / amax;
        }
        let d = round16(amax / 127.0);
        var sum = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            let q = round(a[xb + i] * id);
            sum = sum + q;
            a[yb + i] = d * clamp(q, -128.0, 127.0);
        }
        if (p.kind == 2u) {
            a[p.s_off + blk] = round16(sum * (amax / 127.0));
        }
    } else {
        let xb = p.x_off + blk * 256u;
        let yb = p.y_off + blk * 256u;
        var amax = 0.0;
        var mx = 0.0;
        for (var i = 0u; i < 256u; i = i + 1u) {
            let v = a[xb + i];
            if (abs(v) > amax) {
                amax = abs(v);
                mx = v;
            }
        }
        if (amax == 0.0) {
            for (var i = 0u; i < 256u; i = i + 1u) {
                a[yb + i] = 0.0;
            }
            return;
        }
        let iscale = -127.0 / mx;
        let d = 1.0 / iscale;
        for (var i = 0u; i < 256u; i = i + 1u) {
            a[yb + i] = d * min(round(iscale * a[xb + i]), 127.0);
        }
    }
}

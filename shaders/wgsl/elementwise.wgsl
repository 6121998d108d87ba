// Elementwise ops in place on x (one thread per element):
//   add: x += y;  mul: x *= y;  scale: x *= f;  silu, gelu;  swiglu: x = silu(x) y;
//   geglu: x = gelu(x) y;  geglu_f16: as llama.cpp's CPU (GELU of the f16 of x, stored as f16);
//   softcap: x = f tanh(x / f);  add_w: x += w[i % m] (bias);  copy: y = x.
struct P {
    n: u32,
    x_off: u32,
    y_off: u32,
    m: u32,
    f: f32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978846;
const GELU_COEF_A: f32 = 0.044715;

fn gelu1(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh_safe(SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)));
}

fn silu1(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

fn index(wid: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * p.gx) * WG + lid;
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = a[p.x_off + i] + a[p.y_off + i];
    }
}

@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = a[p.x_off + i] * a[p.y_off + i];
    }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = a[p.x_off + i] * p.f;
    }
}

@compute @workgroup_size(WG)
fn silu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = silu1(a[p.x_off + i]);
    }
}

@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = gelu1(a[p.x_off + i]);
    }
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = silu1(a[p.x_off + i]) * a[p.y_off + i];
    }
}

@compute @workgroup_size(WG)
fn geglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = gelu1(a[p.x_off + i]) * a[p.y_off + i];
    }
}

@compute @workgroup_size(WG)
fn geglu_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        let x = a[p.x_off + i];
        let g = a[p.y_off + i];
        var v: f32;
        if (x <= -10.0) {
            v = 0.0;
        } else if (x >= 10.0) {
            v = x * g;
        } else {
            v = round16(gelu1(round16(x))) * g;
        }
        a[p.x_off + i] = v;
    }
}

@compute @workgroup_size(WG)
fn softcap(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.x_off + i] = p.f * tanh_safe(a[p.x_off + i] / p.f);
    }
}

@compute @workgroup_size(WG)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, lid);
    if (i < p.n) {
        a[p.y_off + i] = a[p.x_off + i];
    }
}

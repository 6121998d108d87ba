// Parameters and bindings of the exact dot shaders (mm_legacy, mm_kplain, mm_kchain),
// as Recorder::exact_matmul pushes them.
struct P {
    rows: u32,
    cols: u32,
    t0: u32,
    qs: u32,
    d: u32,
    ex: u32,
    y: u32,
    ystride: u32,
    row0: u32,
    gx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;

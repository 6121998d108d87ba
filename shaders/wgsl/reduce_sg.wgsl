// Workgroup reductions with subgroup operations: one shared slot per subgroup.
var<workgroup> red: array<f32, WG>;

fn wg_sum(v: f32, lid: u32, sgi: u32, sgid: u32, nsg: u32) -> f32 {
    let s = subgroupAdd(v);
    if (sgi == 0u) {
        red[sgid] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < nsg; i = i + 1u) {
        t = t + red[i];
    }
    workgroupBarrier();
    return t;
}

fn wg_max(v: f32, lid: u32, sgi: u32, sgid: u32, nsg: u32) -> f32 {
    let s = subgroupMax(v);
    if (sgi == 0u) {
        red[sgid] = s;
    }
    workgroupBarrier();
    var t = red[0];
    for (var i = 1u; i < nsg; i = i + 1u) {
        t = max(t, red[i]);
    }
    workgroupBarrier();
    return t;
}

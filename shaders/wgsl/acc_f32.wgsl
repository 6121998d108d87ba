// Attention accumulator emulating f16 in f32 (adapters without shader-f16, e.g. GL).
alias acc_t = f32;
fn to_acc(x: f32) -> acc_t {
    return round16(x);
}

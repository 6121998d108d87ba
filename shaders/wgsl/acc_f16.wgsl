// Attention accumulator in native f16 (adapters with shader-f16).
alias acc_t = f16;
fn to_acc(x: f32) -> acc_t {
    return f16(x);
}

"""Compare a llama.cpp tensor dump (llama_dump.cpp: DIR/index.txt + NNNN.bin) with a
ferrite one (FERRITE_DUMP=DIR2, dump_forward example) tensor by tensor, in graph order:
max |diff|, relative to max |value|, and how many elements differ at all.
usage: compare_dumps.py LLAMA_DIR FERRITE_DIR [LAYERS]"""
import os, sys, struct
import numpy as np
ld, fd = sys.argv[1], sys.argv[2]
layers = int(sys.argv[3]) if len(sys.argv) > 3 else 10**9
# llama.cpp name (and op) -> ferrite name
MAP = {('attn_norm', 'MUL'): 'attn_norm', ('Qcur', 'MUL_MAT'): 'Qcur_mm', ('Kcur', 'MUL_MAT'): 'Kcur_mm',
       ('Vcur', 'MUL_MAT'): 'Vcur', ('Qcur', 'ROPE'): 'Qcur_rope', ('Kcur', 'ROPE'): 'Kcur_rope',
       ('kqv_out', 'RESHAPE'): 'kqv_out', ('kqv_out', 'CONT'): 'kqv_out', ('attn_out', 'MUL_MAT'): 'attn_out',
       ('ffn_inp', 'ADD'): 'ffn_inp', ('ffn_norm', 'MUL'): 'ffn_norm', ('ffn_swiglu', 'SWIGLU'): 'ffn_act',
       ('ffn_geglu', 'GEGLU'): 'ffn_act', ('ffn_out', 'MUL_MAT'): 'ffn_out', ('l_out', 'ADD'): 'l_out',
       ('result_norm', 'MUL'): 'result_norm'}
seen = set()
for line in open(os.path.join(ld, 'index.txt')):
    n, name, op = line.split()[:3]
    base, _, layer = name.rpartition('-')
    if not layer.isdigit():
        base, layer = name, '0'
    key = MAP.get((base, op))
    if key is None or int(layer) >= layers or (key, layer) in seen:
        continue
    seen.add((key, layer))
    fp = os.path.join(fd, f'{key}-{layer}.f32')
    if not os.path.exists(fp):
        continue
    a = np.fromfile(os.path.join(ld, n + '.bin'), dtype=np.float32)
    b = np.fromfile(fp, dtype=np.float32)
    if a.size != b.size:
        print(f'{key}-{layer}: size {a.size} vs {b.size}')
        continue
    d = np.abs(a.astype(np.float64) - b)
    print(f'{key:12} {layer:>3}  max|d| {d.max():.3e}  rel {d.max() / max(np.abs(a).max(), 1e-30):.2e}  differ {np.count_nonzero(a != b)}/{a.size}')

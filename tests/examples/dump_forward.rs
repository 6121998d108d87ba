//! One forward pass over the given prompt ids, for layer-by-layer diffs against
//! llama.cpp: run with `FERRITE_DUMP=DIR` (see `engine::model`'s trace) and compare
//! with `tests/oracle/compare_dumps.py`.
//! `cargo run --release -p ferrite-tests --example dump_forward MODEL.gguf ID,ID,...`

use engine::model::{LoadOptions, Model, SeqInput};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, ids] = args.as_slice() else {
        eprintln!("usage: dump_forward MODEL.gguf ID,ID,...");
        std::process::exit(2);
    };
    let tokens: Vec<u32> = ids
        .split(',')
        .map(|t| t.trim().parse().expect("token ids are integers"))
        .collect();
    let model = Model::load(path, &LoadOptions { threads: 2 }).expect("model loads");
    let mut cache = model.new_cache(512);
    model
        .forward(&mut [SeqInput {
            cache: &mut cache,
            tokens: &tokens,
            all_logits: false,
        }])
        .expect("forward pass");
}

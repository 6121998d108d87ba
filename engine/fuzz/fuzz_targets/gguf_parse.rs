//! Parses arbitrary bytes as GGUF and walks every metadata entry and tensor view.
//! The check is the same one the stable `gguf_mutations` test runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/walk.rs"]
mod walk;

fuzz_target!(|data: &[u8]| {
    let _ = walk::parse_and_walk(data);
});

//! Property test standing in for the fuzzer on stable Rust: ~21k deterministic mutations
//! of valid files (bit flips, interesting integers over counts/lengths/offsets/type ids,
//! truncations, insertions, deletions, spliced chunks) all go through the same
//! `parse_and_walk` check as the `gguf_parse` fuzz target: no panic, consistent results,
//! and allocations within a small multiple of the input size.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{alloc_budget, allocated_by, rich_file, small_file, walk::parse_and_walk, Rng};

const PER_BASE: usize = 7000;

const INTERESTING_U64: [u64; 20] = [
    0,
    1,
    2,
    3,
    4,
    5,
    8,
    31,
    32,
    33,
    255,
    256,
    1 << 31,
    1 << 32,
    (1 << 32) + 1,
    1 << 62,
    1 << 63,
    u64::MAX,
    u64::MAX - 1,
    u64::MAX - 31,
];

const INTERESTING_U32: [u32; 14] = [0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 15, 16, 30, u32::MAX];

/// Applies one random mutation; returns what it did, for failure reports.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let len = bytes.len() as u64;
    let pos = |rng: &mut Rng| rng.below(len.max(1)) as usize;
    match rng.below(9) {
        0 => {
            let p = pos(rng);
            let bit = rng.below(8);
            if let Some(b) = bytes.get_mut(p) {
                *b ^= 1 << bit;
            }
            format!("flip bit {bit} at {p}")
        }
        1 => {
            let p = pos(rng);
            let v = rng.next() as u8;
            if let Some(b) = bytes.get_mut(p) {
                *b = v;
            }
            format!("byte {v} at {p}")
        }
        2 => {
            let p = pos(rng);
            let v = match rng.below(4) {
                0 => len,
                1 => len.wrapping_sub(p as u64),
                _ => INTERESTING_U64[rng.below(20) as usize],
            };
            let end = (p + 8).min(bytes.len());
            bytes[p..end].copy_from_slice(&v.to_le_bytes()[..end - p]);
            format!("u64 {v} at {p}")
        }
        3 => {
            let p = pos(rng);
            let v = INTERESTING_U32[rng.below(14) as usize];
            let end = (p + 4).min(bytes.len());
            bytes[p..end].copy_from_slice(&v.to_le_bytes()[..end - p]);
            format!("u32 {v} at {p}")
        }
        4 => {
            let n = pos(rng);
            bytes.truncate(n);
            format!("truncate to {n}")
        }
        5 => {
            let p = pos(rng);
            let n = 1 + rng.below(16) as usize;
            let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            bytes.splice(p..p, ins);
            format!("insert {n} bytes at {p}")
        }
        6 => {
            let p = pos(rng);
            let n = (1 + rng.below(32) as usize).min(bytes.len() - p.min(bytes.len()));
            bytes.drain(p..p + n);
            format!("delete {n} bytes at {p}")
        }
        7 => {
            let from = pos(rng);
            let to = pos(rng);
            let n = (1 + rng.below(64) as usize)
                .min(bytes.len().saturating_sub(from))
                .min(bytes.len().saturating_sub(to));
            let chunk = bytes[from..from + n].to_vec();
            bytes[to..to + n].copy_from_slice(&chunk);
            format!("copy {n} bytes {from} -> {to}")
        }
        _ => {
            let a = mutate(rng, bytes);
            let b = mutate(rng, bytes);
            format!("{a}; {b}")
        }
    }
}

#[test]
fn mutated_files_never_panic() {
    let bases = [
        small_file(2).build(),
        small_file(3).build(),
        rich_file(3).build(),
    ];
    let (mut ok, mut err) = (0usize, 0usize);
    for (b, base) in bases.iter().enumerate() {
        let mut rng = Rng::new(0xF3221 + b as u64);
        for i in 0..PER_BASE {
            let mut bytes = base.clone();
            let what = mutate(&mut rng, &mut bytes);
            let len = bytes.len();
            let run = catch_unwind(AssertUnwindSafe(|| allocated_by(|| parse_and_walk(&bytes))));
            match run {
                Ok((result, allocated)) => {
                    assert!(
                        allocated <= alloc_budget(len) + 2 * len,
                        "base {b} case {i} ({what}): {allocated} bytes allocated for {len}"
                    );
                    match result {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            assert!(!e.message().is_empty());
                            err += 1;
                        }
                    }
                }
                Err(_) => {
                    let path = std::env::temp_dir().join(format!("gguf-crash-{b}-{i}.gguf"));
                    let _ = std::fs::write(&path, &bytes);
                    panic!("base {b} case {i} ({what}) panicked; input saved to {path:?}");
                }
            }
        }
    }
    eprintln!("{ok} mutated files parsed, {err} rejected");
    // Both outcomes must be common, or the mutations are not exercising the parser.
    let total = ok + err;
    assert_eq!(total, 3 * PER_BASE);
    assert!(ok > total / 20 && err > total / 4, "ok {ok}, err {err}");
}

/// Every single-byte change of the header and metadata region, exhaustively, for one base.
#[test]
fn every_byte_of_the_metadata_set_to_extremes() {
    let base = small_file(3).build();
    let file = ferrite_engine::gguf::GgufFile::from_bytes(base.clone()).unwrap();
    let end = file.data_offset() as usize;
    for p in 0..end {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut bytes = base.clone();
            bytes[p] = v;
            let run = catch_unwind(AssertUnwindSafe(|| parse_and_walk(&bytes)));
            assert!(run.is_ok(), "byte {p} = {v} panicked");
        }
    }
}

/// The fuzzer's seed corpus (`engine/fuzz/seeds/`) is the writer's valid files; this keeps
/// the committed copies in sync. Regenerate with `FERRITE_WRITE_FUZZ_SEEDS=1`.
#[test]
fn fuzz_seeds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let seeds = [
        ("small-v2.seed", small_file(2).build()),
        ("small-v3.seed", small_file(3).build()),
        ("rich-v3.seed", rich_file(3).build()),
    ];
    let write = std::env::var_os("FERRITE_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in seeds {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(
            committed == bytes,
            "{path:?} is stale: rerun with FERRITE_WRITE_FUZZ_SEEDS=1"
        );
        assert!(parse_and_walk(&committed).is_ok());
    }
}

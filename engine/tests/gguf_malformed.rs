//! Malformed GGUF files: each one must give a clear error naming the problem (and the key
//! or tensor), within a small allocation budget, never a panic.

mod common;

use common::{assert_msg, parse_err, put_str, rich_file, s, small_file, Builder, TensorSpec, V};
use ferrite_engine::gguf::{GgufErrorKind, GgufFile};
use kernels::GgmlType;

const TWO_63: u64 = 1 << 63;
const TWO_32_PLUS_1: u64 = (1 << 32) + 1;

#[test]
fn bad_magic() {
    let mut b = small_file(3);
    b.magic = *b"GGUX";
    let err = parse_err(b.build());
    assert_msg(&err, &["bad magic", "GGUX"]);
    assert_eq!(err.kind(), GgufErrorKind::Malformed);
    assert_eq!(err.offset(), Some(0));
    // Too short to even hold the magic.
    assert_msg(&parse_err(b"GG".to_vec()), &["truncated", "magic"]);
    assert_msg(&parse_err(Vec::new()), &["truncated", "magic"]);
}

#[test]
fn unsupported_versions() {
    for v in [0u32, 1, 4, 5, u32::MAX] {
        let err = parse_err(small_file(v).build());
        assert_msg(&err, &[&format!("version {v} ")]);
        assert_eq!(err.kind(), GgufErrorKind::Unsupported);
        assert_eq!(err.offset(), Some(4));
    }
    // A big-endian v3 file is recognised as such.
    let err = parse_err(small_file(3u32.swap_bytes()).build());
    assert_msg(&err, &["big-endian"]);
}

/// Every proper prefix of a valid file is an error (the file ends with tensor data,
/// so no prefix is itself valid), never a panic.
#[test]
fn truncation_at_every_offset() {
    for b in [small_file(2), small_file(3), rich_file(3)] {
        let bytes = b.build();
        assert!(GgufFile::from_bytes(bytes.clone()).is_ok());
        for len in 0..bytes.len() {
            let err = parse_err(bytes[..len].to_vec());
            assert!(
                err.offset().unwrap() <= len as u64,
                "{err} for length {len}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("truncated")
                    || msg.contains("past the end")
                    || msg.contains("left")
                    || msg.contains("can hold"),
                "length {len}: {msg}"
            );
        }
    }
}

#[test]
fn huge_header_counts_fail_fast() {
    for n in [TWO_63, TWO_32_PLUS_1, u64::MAX] {
        let mut b = small_file(3);
        b.n_tensors = Some(n);
        let err = parse_err(b.build());
        assert_msg(&err, &[&format!("{n} tensors"), "can hold"]);

        let mut b = small_file(3);
        b.n_kv = Some(n);
        let err = parse_err(b.build());
        assert_msg(&err, &[&format!("{n} metadata entries"), "can hold"]);
    }
    // A count merely one too high is caught too, where the data runs out.
    let mut b = small_file(3);
    b.n_kv = Some(b.kvs.len() as u64 + 1);
    parse_err(b.build());
}

#[test]
fn string_lengths_past_eof_or_near_u64_max() {
    for len in [u64::MAX, u64::MAX - 7, TWO_63, 1 << 32, 1000] {
        // A key whose length runs past the end.
        let mut bytes = Builder::new(3).build();
        bytes[16..24].copy_from_slice(&1u64.to_le_bytes()); // n_kv = 1
        bytes.extend(len.to_le_bytes());
        bytes.extend(b"abcdefghijklmnopqrstuvwxyz");
        let err = parse_err(bytes);
        assert_msg(
            &err,
            &["metadata entry #0 key", &format!("string length {len}")],
        );

        // A string value, and a string inside an array.
        let raw = |payload: Vec<u8>| {
            let mut b = Builder::new(3).kv("general.name", V::Raw(8, payload));
            b.kvs.push((b"pad".to_vec(), s("some trailing bytes")));
            b.build()
        };
        let err = parse_err(raw(len.to_le_bytes().to_vec()));
        assert_msg(&err, &["\"general.name\"", &format!("string length {len}")]);

        let mut payload = 8u32.to_le_bytes().to_vec();
        payload.extend(2u64.to_le_bytes());
        put_str(&mut payload, "ok");
        payload.extend(len.to_le_bytes());
        let mut b = Builder::new(3).kv("tokenizer.ggml.tokens", V::Raw(9, payload));
        b.kvs.push((b"pad".to_vec(), s("some trailing bytes")));
        let err = parse_err(b.build());
        assert_msg(
            &err,
            &[
                "\"tokenizer.ggml.tokens\" array element 1",
                &format!("string length {len}"),
            ],
        );
    }
}

#[test]
fn array_lengths_past_eof_or_near_u64_max() {
    for (elem, n) in [
        (0u32, 1000u64),
        (0, u64::MAX),
        (10, u64::MAX),         // n * 8 overflows
        (10, u64::MAX / 8 + 1), // n * 8 wraps to 0
        (6, TWO_63),
        (8, TWO_32_PLUS_1),
        (8, u64::MAX / 8 + 1),
        (9, u64::MAX),
        (7, 100),
    ] {
        let mut payload = elem.to_le_bytes().to_vec();
        payload.extend(n.to_le_bytes());
        payload.extend([0u8; 16]);
        let err = parse_err(Builder::new(3).kv("big.array", V::Raw(9, payload)).build());
        assert_msg(&err, &["\"big.array\"", &format!("array of {n} ")]);
    }
}

#[test]
fn arrays_nested_1000_deep() {
    let mut payload = Vec::new();
    for _ in 0..1000 {
        payload.extend(9u32.to_le_bytes());
        payload.extend(1u64.to_le_bytes());
    }
    payload.extend(0u32.to_le_bytes());
    payload.extend(0u64.to_le_bytes());
    let err = parse_err(Builder::new(3).kv("deep", V::Raw(9, payload)).build());
    assert_msg(&err, &["\"deep\"", "nested more than 8 deep"]);

    // One level past the limit fails too.
    let mut v = V::Arr(0, vec![V::U8(1)]);
    for _ in 0..ferrite_engine::gguf::MAX_ARRAY_DEPTH {
        v = V::Arr(9, vec![v]);
    }
    assert_msg(
        &parse_err(Builder::new(3).kv("deep", v).build()),
        &["nested"],
    );
}

#[test]
fn unknown_value_type_ids() {
    for id in [13u32, 100, u32::MAX] {
        let err = parse_err(
            small_file(3)
                .kv("weird.key", V::Raw(id, vec![0; 16]))
                .build(),
        );
        assert_msg(
            &err,
            &["\"weird.key\"", &format!("unknown value type id {id}")],
        );

        let mut payload = id.to_le_bytes().to_vec();
        payload.extend(1u64.to_le_bytes());
        let err = parse_err(small_file(3).kv("weird.array", V::Raw(9, payload)).build());
        assert_msg(
            &err,
            &["\"weird.array\"", &format!("unknown element type id {id}")],
        );
    }
}

#[test]
fn invalid_bools_and_utf8() {
    let err = parse_err(small_file(3).kv("flag", V::Raw(7, vec![2])).build());
    assert_msg(&err, &["\"flag\"", "bool value 2"]);
    let err = parse_err(
        small_file(3)
            .kv(
                "flags",
                V::Raw(
                    9,
                    [7u32.to_le_bytes().as_slice(), &2u64.to_le_bytes(), &[1, 9]].concat(),
                ),
            )
            .build(),
    );
    assert_msg(&err, &["\"flags\"", "bool value 9"]);

    let mut bad = Vec::new();
    common::put_bytes_str(&mut bad, b"ok \xff\xfe");
    let bytes = small_file(3).kv("general.name", V::Raw(8, bad)).build();
    let first_bad = bytes.windows(5).position(|w| w == b"ok \xff\xfe").unwrap() + 3;
    let err = parse_err(bytes);
    assert_msg(&err, &["\"general.name\"", "not valid UTF-8"]);
    assert_eq!(err.offset(), Some(first_bad as u64));

    let mut b = small_file(3);
    b.kvs.push((b"bad\xc3key".to_vec(), V::U8(1)));
    assert_msg(
        &parse_err(b.build()),
        &["metadata entry #6 key", "not valid UTF-8"],
    );

    let mut b = small_file(3);
    b.tensors[1].name = b"blk.\xe2\x82.weight".to_vec();
    assert_msg(
        &parse_err(b.build()),
        &["tensor info #1 name", "not valid UTF-8"],
    );
}

#[test]
fn bad_alignments() {
    for (v, shown) in [
        (V::U32(0), "= 0 "),
        (V::U32(3), "= 3 "),
        (V::U32(1 << 31), "= 2147483648 "),
        (V::U64(1 << 40), "= 1099511627776 "),
        (V::U8(48), "= 48 "),
    ] {
        let err = parse_err(small_file(3).kv("general.alignment", v).build());
        assert_msg(&err, &["\"general.alignment\"", shown, "power of two"]);
        assert!(err.offset().is_some());
    }
    for (v, ty) in [
        (V::I32(32), "i32"),
        (s("32"), "string"),
        (V::F32(32.0), "f32"),
    ] {
        let err = parse_err(small_file(3).kv("general.alignment", v).build());
        assert_msg(&err, &["\"general.alignment\"", "unsigned integer", ty]);
    }
}

#[test]
fn duplicate_keys_and_tensor_names() {
    let err = parse_err(small_file(3).kv("llama.block_count", V::U32(2)).build());
    assert_msg(&err, &["duplicate metadata key \"llama.block_count\""]);

    let b = small_file(3).tensor("a", GgmlType::F32, &[4]);
    assert_msg(&parse_err(b.build()), &["duplicate tensor name \"a\""]);
}

fn one_tensor(type_id: u32, dims: &[u64], data_len: usize) -> Builder {
    let mut b = small_file(3);
    b.tensors.push(TensorSpec {
        name: b"odd.weight".to_vec(),
        type_id,
        dims: dims.to_vec(),
        offset: None,
        data: vec![0; data_len],
    });
    b
}

#[test]
fn bad_dimension_counts_and_sizes() {
    let err = parse_err(one_tensor(0, &[1, 1, 1, 1, 1], 4).build());
    assert_msg(&err, &["\"odd.weight\"", "5 dimensions"]);
    let err = parse_err(one_tensor(0, &[], 4).build());
    assert_msg(&err, &["\"odd.weight\"", "0 dimensions"]);
    let mut b = one_tensor(0, &[1; 4], 4);
    b.tensors.last_mut().unwrap().dims = vec![1; 1000];
    assert_msg(
        &parse_err(b.build()),
        &["\"odd.weight\"", "1000 dimensions"],
    );

    let err = parse_err(one_tensor(0, &[4, 0, 2], 0).build());
    assert_msg(&err, &["\"odd.weight\"", "dimension 1 is 0"]);

    // The element count overflows u64, or i64 (ggml's element counter).
    for dims in [
        &[1u64 << 32, 1 << 32, 2][..],
        &[u64::MAX, 2],
        &[1 << 62, 2],
        &[3, 5, 1 << 62, 1 << 62],
    ] {
        let err = parse_err(one_tensor(0, dims, 64).build());
        assert_msg(&err, &["\"odd.weight\"", "element count overflows"]);
    }
    // The element count fits, the byte size does not.
    let err = parse_err(one_tensor(0, &[1 << 61, 2], 64).build());
    assert_msg(&err, &["\"odd.weight\"", "byte size overflows"]);

    // The row length must be whole blocks.
    let err = parse_err(one_tensor(GgmlType::Q4_0.id(), &[33, 2], 64).build());
    assert_msg(
        &err,
        &["\"odd.weight\"", "row length 33", "q4_0 block length 32"],
    );
    let err = parse_err(one_tensor(GgmlType::Q4K.id(), &[128], 144).build());
    assert_msg(
        &err,
        &["\"odd.weight\"", "row length 128", "q4_K block length 256"],
    );
}

#[test]
fn unknown_tensor_type_ids() {
    // 4 and 5 were Q4_2/Q4_3 (removed), 16+ are IQ types ferrite does not support.
    for id in [4u32, 5, 16, 29, 31, 1000, u32::MAX] {
        let err = parse_err(one_tensor(id, &[32], 64).build());
        assert_msg(
            &err,
            &[
                "\"odd.weight\"",
                &format!("unsupported tensor type id {id}"),
            ],
        );
        assert_eq!(err.kind(), GgufErrorKind::Unsupported);
    }
}

#[test]
fn tensor_data_past_eof() {
    // Offset beyond the end.
    let mut b = small_file(3);
    b.tensors[0].offset = Some(1 << 20);
    let mut bytes = b.build();
    bytes.truncate(bytes.len() - (1 << 20));
    let err = parse_err(bytes);
    assert_msg(&err, &["\"a\"", "past the end of the file"]);

    // The last tensor cut short by one byte.
    let mut bytes = small_file(3).build();
    bytes.pop();
    assert_msg(&parse_err(bytes), &["\"c\"", "past the end of the file"]);

    // Offsets near 2^64 must not wrap around.
    for off in [u64::MAX - 31, TWO_63, !63] {
        let mut b = small_file(3);
        b.tensors[2].offset = Some(off);
        let (mut bytes, layout) = b.build_with_layout();
        bytes.truncate(layout.offsets[1] as usize + 32);
        // build() could not write data there; give it a plausible tail instead.
        bytes.resize(layout.offsets[1] as usize + 64, 0);
        let err = parse_err(bytes);
        assert_msg(&err, &["\"c\"", "past the end of the file"]);
    }
}

#[test]
fn misaligned_tensor_offsets() {
    let mut b = small_file(3);
    b.tensors[1].offset = Some(40);
    let err = parse_err(b.build());
    assert_msg(
        &err,
        &["\"b\"", "offset 40", "multiple of the alignment 32"],
    );

    let mut b = rich_file(3);
    b.tensors[3].offset = Some(32 * 21); // 32-aligned, not 64-aligned
    let err = parse_err(b.build());
    assert_msg(&err, &["\"blk.0.ffn_up.weight\"", "alignment 64"]);
}

#[test]
fn overlapping_tensors() {
    // Same offset.
    let mut b = small_file(3);
    b.tensors[2].offset = Some(0);
    let err = parse_err(b.build());
    assert_msg(&err, &["\"a\"", "\"c\"", "overlaps"]);

    // Partial overlap: "big" spans two alignment slots, "small" starts in the second.
    let mut b =
        Builder::new(3)
            .tensor("big", GgmlType::F32, &[16])
            .tensor("small", GgmlType::F32, &[4]);
    b.tensors[0].offset = Some(0);
    b.tensors[1].offset = Some(32);
    let err = parse_err(b.build());
    assert_msg(&err, &["\"small\" (bytes", "overlaps tensor \"big\""]);

    // Adjacent is fine.
    let mut b =
        Builder::new(3)
            .tensor("big", GgmlType::F32, &[16])
            .tensor("small", GgmlType::F32, &[4]);
    b.tensors[1].offset = Some(64);
    assert!(GgufFile::from_bytes(b.build()).is_ok());
}

#[test]
fn errors_carry_offsets_and_display_them() {
    let mut b = small_file(3);
    b.tensors[1].offset = Some(40);
    let bytes = b.build();
    let err = parse_err(bytes.clone());
    let off = err.offset().expect("offset");
    assert!(off > 24 && off < bytes.len() as u64);
    assert!(
        err.to_string().contains(&format!("at byte offset {off}")),
        "{err}"
    );
    assert!(err.to_string().starts_with("GGUF: "), "{err}");
    assert!(err.path().is_none());
}

//! Valid GGUF files written by the test writer parse back to exactly what was written.

mod common;

use common::{rich_file, s, small_file, Builder, V};
use ferrite_engine::gguf::{Array, GgufErrorKind, GgufFile, Tensor, Value};
use kernels::GgmlType;

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn types_are_send_sync() {
    assert_send_sync::<GgufFile>();
    assert_send_sync::<Tensor>();
    assert_send_sync::<ferrite_engine::gguf::GgufError>();
}

/// Converts what the writer wrote into what the parser should return.
fn expected(v: &V) -> Value {
    match v {
        V::U8(x) => Value::U8(*x),
        V::I8(x) => Value::I8(*x),
        V::U16(x) => Value::U16(*x),
        V::I16(x) => Value::I16(*x),
        V::U32(x) => Value::U32(*x),
        V::I32(x) => Value::I32(*x),
        V::F32(x) => Value::F32(*x),
        V::Bool(x) => Value::Bool(*x),
        V::Str(x) => Value::String(x.clone()),
        V::U64(x) => Value::U64(*x),
        V::I64(x) => Value::I64(*x),
        V::F64(x) => Value::F64(*x),
        V::Arr(..) => Value::Array(expected_array(v)),
        V::Raw(..) => panic!("raw values have no expectation"),
    }
}

fn expected_array(v: &V) -> Array {
    let V::Arr(elem, items) = v else {
        panic!("not an array")
    };
    macro_rules! collect {
        ($variant:ident) => {
            Array::$variant(
                items
                    .iter()
                    .map(|i| match expected(i) {
                        Value::$variant(x) => x,
                        other => panic!("bad test array element {other:?}"),
                    })
                    .collect(),
            )
        };
    }
    match elem {
        0 => collect!(U8),
        1 => collect!(I8),
        2 => collect!(U16),
        3 => collect!(I16),
        4 => collect!(U32),
        5 => collect!(I32),
        6 => collect!(F32),
        7 => collect!(Bool),
        8 => collect!(String),
        9 => Array::Array(items.iter().map(expected_array).collect()),
        10 => collect!(U64),
        11 => collect!(I64),
        12 => collect!(F64),
        _ => panic!("bad element type"),
    }
}

fn check_roundtrip(b: &Builder) -> GgufFile {
    let (bytes, layout) = b.build_with_layout();
    let file = GgufFile::from_bytes(bytes.clone()).expect("valid file parses");
    assert_eq!(file.version(), b.version);
    assert_eq!(file.file_size(), bytes.len() as u64);
    assert_eq!(file.data_offset(), layout.data_offset);

    // Metadata: every entry, in file order, with the exact value.
    assert_eq!(file.metadata().len(), b.kvs.len());
    for ((key, v), (got_key, got)) in b.kvs.iter().zip(file.metadata()) {
        assert_eq!(key, got_key.as_bytes());
        assert_eq!(got, &expected(v), "key {got_key}");
        assert_eq!(file.get(got_key), Some(got));
    }
    assert_eq!(file.get("no.such.key"), None);

    // Tensors: infos in file order, absolute offsets, sizes, zero-copy data.
    assert_eq!(file.tensors().len(), b.tensors.len());
    for ((spec, info), &offset) in b.tensors.iter().zip(file.tensors()).zip(&layout.offsets) {
        assert_eq!(spec.name, info.name.as_bytes());
        assert_eq!(info.dtype.id(), spec.type_id);
        assert_eq!(info.dims, spec.dims);
        assert_eq!(info.offset, offset);
        assert_eq!(info.size, spec.data.len() as u64);
        assert_eq!(info.n_elements(), spec.dims.iter().product::<u64>());
        assert_eq!(info.row_len(), spec.dims[0]);
        assert_eq!(info.rows(), spec.dims[1..].iter().product::<u64>());
        assert_eq!(info.offset % file.alignment(), 0);
        assert_eq!(file.tensor(&info.name), Some(info));

        let view = file.tensor_view(&info.name).unwrap();
        assert_eq!(view.bytes(), &spec.data[..]);
        assert_eq!(view.dtype(), info.dtype);
        assert_eq!(view.dims(), &spec.dims[..]);
        assert_eq!(view.row_len(), info.row_len());
        assert_eq!(view.rows(), info.rows());
        // Owned buffers are at least 8-byte aligned, so data can be cast to f32/blocks.
        assert_eq!(
            view.bytes()
                .as_ptr()
                .align_offset(8.min(file.alignment() as usize)),
            0
        );
    }
    assert!(file.tensor("missing").is_none());
    assert!(file.tensor_view("missing").is_none());
    common::walk::parse_and_walk(&bytes).expect("the fuzz check accepts it");
    file
}

#[test]
fn rich_file_roundtrips_v2_and_v3() {
    for version in [2, 3] {
        let file = check_roundtrip(&rich_file(version));
        assert_eq!(file.alignment(), 64);
        assert_eq!(file.data_offset() % 64, 0);
        assert_eq!(file.tensors().len(), 6);
    }
}

#[test]
fn small_file_roundtrips_v2_and_v3() {
    for version in [2, 3] {
        let file = check_roundtrip(&small_file(version));
        assert_eq!(file.alignment(), 32, "default alignment");
    }
}

#[test]
fn file_without_tensors_or_metadata() {
    let file = check_roundtrip(&Builder::new(3));
    assert!(file.metadata().is_empty());
    assert!(file.tensors().is_empty());
    assert_eq!(file.file_size(), 24);
    assert_eq!(file.data_offset(), 32);
}

#[test]
fn alignment_may_be_any_unsigned_type() {
    for (v, a) in [
        (V::U8(16), 16),
        (V::U16(1), 1),
        (V::U32(4096), 4096),
        (V::U64(1 << 20), 1 << 20),
    ] {
        let b = small_file(3).kv("general.alignment", v).with_alignment(a);
        let file = check_roundtrip(&b);
        assert_eq!(file.alignment(), a);
    }
}

#[test]
fn tensors_may_be_stored_out_of_order_with_gaps() {
    let mut b = Builder::new(3).tensor("first", GgmlType::F32, &[8]).tensor(
        "second",
        GgmlType::Q8_0,
        &[32, 2],
    );
    b.tensors[0].offset = Some(128);
    b.tensors[1].offset = Some(0);
    let file = check_roundtrip(&b);
    assert!(file.tensor("first").unwrap().offset > file.tensor("second").unwrap().offset);
}

#[test]
fn arrays_nested_up_to_the_limit_parse() {
    let mut v = V::Arr(0, vec![V::U8(42)]);
    for _ in 1..ferrite_engine::gguf::MAX_ARRAY_DEPTH {
        v = V::Arr(9, vec![v]);
    }
    check_roundtrip(&Builder::new(3).kv("deep", v));
}

#[test]
fn tensor_views_outlive_the_file() {
    let b = small_file(3);
    let file = GgufFile::from_bytes(b.build()).unwrap();
    let view = file.tensor_view("b").unwrap();
    let expected = b.tensors[1].data.clone();
    drop(file);
    let handle = std::thread::spawn(move || view.bytes().to_vec());
    assert_eq!(handle.join().unwrap(), expected);
}

#[test]
fn open_maps_a_file_from_disk() {
    let b = rich_file(3);
    let bytes = b.build();
    let path = std::env::temp_dir().join(format!("ferrite-gguf-test-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let file = GgufFile::open(&path);
    std::fs::remove_file(&path).unwrap();
    let file = file.unwrap();
    assert_eq!(file.tensors().len(), 6);
    let view = file.tensor_view("blk.0.attn_q.weight").unwrap();
    assert_eq!(view.bytes(), &b.tensors[2].data[..]);
    // Mapped data is aligned to the file's alignment (the mapping is page-aligned).
    assert_eq!(view.bytes().as_ptr().align_offset(64), 0);
}

#[test]
fn open_reports_missing_and_empty_files_with_the_path() {
    let missing = std::env::temp_dir().join("ferrite-gguf-test-does-not-exist.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert_eq!(err.kind(), GgufErrorKind::Io);
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    assert!(std::error::Error::source(&err).is_some());

    let empty =
        std::env::temp_dir().join(format!("ferrite-gguf-empty-{}.gguf", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    let err = GgufFile::open(&empty).unwrap_err();
    std::fs::remove_file(&empty).unwrap();
    assert_eq!(err.kind(), GgufErrorKind::Malformed);
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(err.to_string().contains("ferrite-gguf-empty"), "{err}");
}

#[test]
fn typed_getters_convert_and_report() {
    let file = GgufFile::from_bytes(rich_file(3).build()).unwrap();
    // Any integer type that fits.
    assert_eq!(file.get_u32("t.u8").unwrap(), 200);
    assert_eq!(file.get_u32("t.u16").unwrap(), 60000);
    assert_eq!(file.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_usize("t.u64").unwrap(), 1 << 40);
    assert_eq!(file.get_u64("t.u64").unwrap(), 1 << 40);
    assert_eq!(file.get_i64("t.i64").unwrap(), -(1 << 40));
    assert_eq!(file.get_i32("t.i8").unwrap(), -100);
    assert_eq!(file.get_i32("t.u16").unwrap(), 60000);
    assert_eq!(file.get_f32("t.f32").unwrap(), 1.5);
    assert_eq!(file.get_f32("t.f64").unwrap(), -2.25);
    assert_eq!(file.get_f64("t.f64").unwrap(), -2.25);
    assert!(file.get_bool("t.bool").unwrap());
    assert_eq!(file.get_str("general.name").unwrap(), "tiny ✓ test");
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(
        file.get_str_array("t.arr.str").unwrap(),
        &["a", "", "<|im_start|>", "Ġhello"]
    );
    assert_eq!(file.get_f32_array("t.arr.f32").unwrap(), &[0.5, -0.0]);
    assert_eq!(file.get_i32_array("t.arr.i32").unwrap(), &[-5, 0, 9]);
    assert_eq!(file.get_array("t.arr.nested").unwrap().len(), 3);
    assert_eq!(
        file.get_array("t.arr.u8").unwrap().to_i64s().unwrap(),
        vec![1, 2, 255]
    );
    assert_eq!(file.get_u32_opt("absent").unwrap(), None);
    assert_eq!(
        file.get_str_opt("general.architecture").unwrap(),
        Some("llama")
    );

    // Missing keys and wrong types name the key.
    let err = file.get_u32("llama.block_count").unwrap_err();
    assert_eq!(err.kind(), GgufErrorKind::MissingKey);
    assert!(err.to_string().contains("\"llama.block_count\""), "{err}");
    for (key, err) in [
        ("t.u64", file.get_u32("t.u64").unwrap_err()),
        ("t.i8", file.get_u32("t.i8").unwrap_err()),
        ("t.i8", file.get_usize("t.i8").unwrap_err()),
        ("t.f32", file.get_u32("t.f32").unwrap_err()),
        ("t.u32", file.get_f32("t.u32").unwrap_err()),
        ("t.u32", file.get_str("t.u32").unwrap_err()),
        ("t.arr.f32", file.get_str_array("t.arr.f32").unwrap_err()),
        ("general.name", file.get_bool("general.name").unwrap_err()),
        ("t.arr.u64", file.get_i32_array("t.arr.u64").unwrap_err()),
    ] {
        assert_eq!(err.kind(), GgufErrorKind::WrongType);
        assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
    }
    let err = file.get_u32("t.u64").unwrap_err();
    assert!(err.to_string().contains("u64 1099511627776"), "{err}");
    let err = file.get_str_array("t.arr.f32").unwrap_err();
    assert!(err.to_string().contains("array<f32>"), "{err}");
    // The _opt form still rejects a present key of the wrong type.
    assert!(file.get_u32_opt("general.name").is_err());
}

#[test]
fn value_helpers() {
    assert_eq!(Value::I32(-1).as_u64(), None);
    assert_eq!(Value::I32(7).as_u64(), Some(7));
    assert_eq!(Value::U64(u64::MAX).as_i64(), None);
    assert_eq!(Value::F32(1.0).as_u64(), None);
    assert_eq!(Value::Bool(true).as_i64(), None);
    assert_eq!(s("x").type_id(), 8);
    assert_eq!(
        Value::Array(Array::String(vec![])).type_name(),
        "array<string>"
    );
    assert!(Array::Array(vec![]).is_empty());
    assert_eq!(Array::U64(vec![u64::MAX]).to_i64s(), None);
    assert_eq!(Array::F32(vec![1.0]).to_i64s(), None);
}

//! Every tensor of the three real GGUF models, dequantized by ferrite
//! (`engine::gguf` + `kernels::dispatch::dequantizer`), must equal the dequantization
//! of an independent implementation (gguf-py's numpy code, recorded in
//! `tests/fixtures/dequant/<model>.json` by `tests/fixtures/gen_dequant_fixtures.py`)
//! bit for bit: the sha256 of all values and sampled values at fixed positions.

use engine::gguf::GgufFile;
use ferrite_tests::{fixtures_dir, load_json, model_path, Model};
use kernels::dispatch::dequantizer;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(not(target_endian = "little"))]
compile_error!("the fixtures hash little-endian f32 bytes; this test views f32 slices as bytes");

/// Elements dequantized at a time, so the largest embedding tables need no big buffer.
const CHUNK_ELEMENTS: usize = 1 << 20;

struct Expected {
    dtype: String,
    dims: Vec<u64>,
    sha256: String,
    /// (index, f32 bits), sorted by index.
    samples: Vec<(u64, u32)>,
}

fn expected(t: &Value) -> (String, Expected) {
    let name = t["name"].as_str().expect("fixture tensor name").to_string();
    let dims = t["dims"]
        .as_array()
        .expect("dims")
        .iter()
        .map(|d| d.as_u64().expect("dim"))
        .collect();
    let mut samples: Vec<(u64, u32)> = t["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            let idx = s[0].as_u64().expect("sample index");
            let bits = u32::try_from(s[1].as_u64().expect("sample bits")).expect("f32 bits");
            (idx, bits)
        })
        .collect();
    samples.sort_unstable();
    let e = Expected {
        dtype: t["type"].as_str().expect("type").to_string(),
        dims,
        sha256: t["sha256"].as_str().expect("sha256").to_string(),
        samples,
    };
    (name, e)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Dequantize one tensor in chunks of whole rows, hashing the values and checking the
/// samples on the way. Returns a description of the first problem, if any.
fn check_tensor(
    name: &str,
    dtype: kernels::GgmlType,
    row_len: usize,
    bytes: &[u8],
    want: &Expected,
) -> Option<String> {
    let n: u64 = want.dims.iter().product();
    let row_bytes = dtype
        .row_bytes(row_len)
        .unwrap_or_else(|| panic!("{name}: {row_len} is not whole {dtype} blocks"));
    let rows = (n / row_len as u64) as usize;
    if bytes.len() != rows * row_bytes {
        return Some(format!(
            "{name} ({dtype}): {} data bytes, {rows} rows of {row_len} need {}",
            bytes.len(),
            rows * row_bytes
        ));
    }
    let deq = dequantizer(dtype);
    let rows_per_chunk = (CHUNK_ELEMENTS / row_len).max(1);
    let mut buf = vec![0f32; rows_per_chunk * row_len];
    let mut hasher = Sha256::new();
    let mut samples = want.samples.iter().peekable();
    let mut first_bad: Option<String> = None;
    for (ci, src) in bytes.chunks(rows_per_chunk * row_bytes).enumerate() {
        let start = (ci * rows_per_chunk * row_len) as u64;
        let out = &mut buf[..src.len() / row_bytes * row_len];
        deq(src, out);
        hasher.update(bytemuck::cast_slice::<f32, u8>(out));
        let end = start + out.len() as u64;
        while let Some(&&(idx, bits)) = samples.peek() {
            if idx >= end {
                break;
            }
            samples.next();
            let got = out[(idx - start) as usize];
            if got.to_bits() != bits && first_bad.is_none() {
                first_bad = Some(format!(
                    "{name} ({dtype}): first differing sample at element {idx} (row {}, column {}): \
                     ferrite {got:e} ({:#010x}), gguf-py {:e} ({bits:#010x})",
                    idx / row_len as u64,
                    idx % row_len as u64,
                    got.to_bits(),
                    f32::from_bits(bits),
                ));
            }
        }
    }
    if let Some(bad) = first_bad {
        return Some(bad);
    }
    let got = hex(&hasher.finalize());
    if got != want.sha256 {
        return Some(format!(
            "{name} ({dtype}): sha256 of the values differs (ferrite {got}, gguf-py {}) \
             although all {} samples match",
            want.sha256,
            want.samples.len()
        ));
    }
    None
}

fn check_model(model: Model) {
    let fixture = load_json(
        &fixtures_dir()
            .join("dequant")
            .join(format!("{}.json", model.id())),
    );
    let path = model_path(model);
    let file =
        GgufFile::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));

    let mut want: std::collections::HashMap<String, Expected> = fixture["tensors"]
        .as_array()
        .expect("fixture has tensors")
        .iter()
        .map(expected)
        .collect();
    let mut problems = Vec::new();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for info in file.tensors() {
        let Some(exp) = want.remove(&info.name) else {
            problems.push(format!("{}: in the GGUF but not in the fixture", info.name));
            continue;
        };
        if info.dtype.name() != exp.dtype || info.dims != exp.dims {
            problems.push(format!(
                "{}: GGUF says {} {:?}, fixture says {} {:?}",
                info.name,
                info.dtype.name(),
                info.dims,
                exp.dtype,
                exp.dims
            ));
            continue;
        }
        let tensor = file
            .tensor_view(&info.name)
            .unwrap_or_else(|| panic!("{}: listed but tensor_view returns None", info.name));
        if let Some(p) = check_tensor(
            &info.name,
            info.dtype,
            info.dims[0] as usize,
            tensor.bytes(),
            &exp,
        ) {
            problems.push(p);
        }
        *checked.entry(info.dtype.name().to_string()).or_default() += 1;
    }
    for name in want.keys() {
        problems.push(format!("{name}: in the fixture but not in the GGUF"));
    }
    eprintln!("{}: checked {checked:?}", model.id());
    if !problems.is_empty() {
        let shown = problems.iter().take(25).cloned().collect::<Vec<_>>();
        panic!(
            "{}: {} of the tensors differ from gguf-py's dequantization:\n  {}{}",
            model.id(),
            problems.len(),
            shown.join("\n  "),
            if problems.len() > shown.len() {
                format!("\n  ... and {} more", problems.len() - shown.len())
            } else {
                String::new()
            }
        );
    }
}

#[test]
fn smollm2_q4_1_dequantizes_like_gguf_py() {
    check_model(Model::SmolLm2);
}

#[test]
fn gemma3_q4_k_m_dequantizes_like_gguf_py() {
    check_model(Model::Gemma3);
}

#[test]
fn qwen2_q4_k_m_dequantizes_like_gguf_py() {
    check_model(Model::Qwen2);
}

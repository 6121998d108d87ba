//! The GGUF v2/v3 parser. Files come from the internet: every count, length, offset,
//! dimension and alignment is checked against the bytes actually present before it is
//! used, so a hostile file yields an error — never a panic, an out-of-bounds read, or an
//! allocation larger than a small multiple of the file size.

use std::collections::HashMap;

use kernels::GgmlType;

use super::error::{GgufError, GgufErrorKind};
use super::value::{type_id, Array, Value};
use super::TensorInfo;

/// The default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Larger alignments are rejected: nothing needs more than a (huge) page, and a
/// giant alignment would only push the data section out of the file.
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// Deepest nesting of arrays of arrays (ggml writes none; a few levels are plenty).
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

const MAGIC: &[u8; 4] = b"GGUF";
/// Vectors sized from counts in the file are pre-allocated up to this many entries and
/// grow beyond only as entries are actually parsed, so a lying count in a large file
/// (gigabytes of tensor data behind it) cannot make us reserve gigabytes up front.
const MAX_PREALLOC: usize = 1 << 18;
/// Smallest metadata entry: key length (8) + value type (4) + a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest tensor info: name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

pub(crate) struct Parsed {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, Value)>,
    pub metadata_index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub data_offset: u64,
}

pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, GgufError> {
    let mut r = Reader { buf, pos: 0 };
    let file_size = buf.len() as u64;

    let magic = r.array::<4>(|| "the GGUF magic".into())?;
    if &magic != MAGIC {
        return Err(GgufError::malformed(
            0,
            format!(
                "bad magic \"{}\", expected \"GGUF\" (not a GGUF file)",
                magic.escape_ascii()
            ),
        ));
    }
    let version = r.u32(|| "the version".into())?;
    match version {
        2 | 3 => {}
        v if matches!(v.swap_bytes(), 2 | 3) => {
            return Err(GgufError::unsupported(
                4,
                format!(
                    "unsupported GGUF version {v} (a big-endian version {} file? only \
                     little-endian files are supported)",
                    v.swap_bytes()
                ),
            ))
        }
        v => {
            return Err(GgufError::unsupported(
                4,
                format!("unsupported GGUF version {v} (only versions 2 and 3 are supported)"),
            ))
        }
    }
    let n_tensors = r.u64(|| "the tensor count".into())?;
    let n_kv = r.u64(|| "the metadata entry count".into())?;
    // Bound both counts by what the rest of the file could hold before allocating anything.
    let left = r.remaining() as u64;
    let needed = n_kv.checked_mul(MIN_KV_BYTES).and_then(|kv| {
        n_tensors
            .checked_mul(MIN_TENSOR_INFO_BYTES)?
            .checked_add(kv)
    });
    if needed.is_none_or(|n| n > left) {
        return Err(GgufError::malformed(
            8,
            format!(
                "header claims {n_tensors} tensors and {n_kv} metadata entries, more than \
                 the {left} bytes after the header can hold"
            ),
        ));
    }

    let mut metadata = Vec::with_capacity(prealloc(n_kv));
    let mut metadata_index = HashMap::with_capacity(prealloc(n_kv));
    let mut key_offsets = Vec::with_capacity(prealloc(n_kv));
    for i in 0..n_kv {
        let key_at = r.offset();
        let key = r.string(|| format!("metadata entry #{i} key"))?;
        let ty = r.u32(|| format!("metadata key {key:?} value type"))?;
        let value = read_value(&mut r, ty, &key)?;
        if metadata_index.contains_key(&key) {
            return Err(GgufError::malformed(
                key_at,
                format!("duplicate metadata key {key:?}"),
            ));
        }
        metadata_index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
        key_offsets.push(key_at);
    }

    let alignment = match metadata_index.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(&i) => check_alignment(&metadata[i].1).map_err(|e| e.at(key_offsets[i]))?,
    };

    struct RawInfo {
        at: u64,
        offset: u64,
    }
    let mut tensors = Vec::with_capacity(prealloc(n_tensors));
    let mut raw = Vec::with_capacity(prealloc(n_tensors));
    let mut tensor_index = HashMap::with_capacity(prealloc(n_tensors));
    for i in 0..n_tensors {
        let at = r.offset();
        let name = r.string(|| format!("tensor info #{i} name"))?;
        let (dtype, dims, size) = read_tensor_shape(&mut r, &name)?;
        let offset = r.u64(|| format!("tensor {name:?} offset"))?;
        if tensor_index.contains_key(&name) {
            return Err(GgufError::malformed(
                at,
                format!("duplicate tensor name {name:?}"),
            ));
        }
        tensor_index.insert(name.clone(), tensors.len());
        raw.push(RawInfo { at, offset });
        tensors.push(TensorInfo {
            name,
            dtype,
            dims,
            offset: 0,
            size,
        });
    }

    // The data section starts at the end of the tensor infos rounded up to the alignment.
    // `pos <= file_size` and `alignment <= 1 MiB`, so this cannot overflow a u64.
    let data_offset = r.offset().next_multiple_of(alignment);
    for (t, raw) in tensors.iter_mut().zip(&raw) {
        if raw.offset % alignment != 0 {
            return Err(GgufError::malformed(
                raw.at,
                format!(
                    "tensor {:?} data offset {} is not a multiple of the alignment {alignment}",
                    t.name, raw.offset
                ),
            ));
        }
        let start = data_offset.checked_add(raw.offset);
        let end = start.and_then(|s| s.checked_add(t.size));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_size => t.offset = start,
            _ => {
                return Err(GgufError::malformed(
                    raw.at,
                    format!(
                        "tensor {:?} data ({} bytes at data offset {} + {}) extends past the \
                         end of the file ({file_size} bytes)",
                        t.name, t.size, data_offset, raw.offset
                    ),
                ))
            }
        }
    }

    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_unstable_by_key(|&i| tensors[i].offset);
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        // Offsets and sizes were checked against the file size above: no overflow.
        if b.offset < a.offset + a.size {
            return Err(GgufError::malformed(
                b.offset,
                format!(
                    "tensor {:?} (bytes {}..{}) overlaps tensor {:?} (bytes {}..{})",
                    b.name,
                    b.offset,
                    b.offset + b.size,
                    a.name,
                    a.offset,
                    a.offset + a.size
                ),
            ));
        }
    }

    Ok(Parsed {
        version,
        alignment,
        metadata,
        metadata_index,
        tensors,
        tensor_index,
        data_offset,
    })
}

fn prealloc(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(MAX_PREALLOC)
}

/// Checks a `general.alignment` value; the caller adds the key's offset to errors.
fn check_alignment(value: &Value) -> Result<u64, GgufError> {
    let unsigned = matches!(
        value,
        Value::U8(_) | Value::U16(_) | Value::U32(_) | Value::U64(_)
    );
    match value.as_u64() {
        Some(a) if unsigned && a.is_power_of_two() && a <= MAX_ALIGNMENT => Ok(a),
        Some(a) if unsigned => Err(GgufError::new(
            GgufErrorKind::Malformed,
            format!(
                "metadata key \"general.alignment\" = {a} must be a power of two between 1 \
                 and {MAX_ALIGNMENT}"
            ),
        )),
        _ => Err(GgufError::new(
            GgufErrorKind::Malformed,
            format!(
                "metadata key \"general.alignment\" must be an unsigned integer, found {}",
                value.type_name()
            ),
        )),
    }
}

/// Reads n_dims, dims and the type id of a tensor info and checks the shape:
/// returns the type, the dims and the byte size.
fn read_tensor_shape(
    r: &mut Reader<'_>,
    name: &str,
) -> Result<(GgmlType, Vec<u64>, u64), GgufError> {
    let at = r.offset();
    let n_dims = r.u32(|| format!("tensor {name:?} dimension count"))?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(GgufError::malformed(
            at,
            format!("tensor {name:?} has {n_dims} dimensions (1 to {MAX_DIMS} supported)"),
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        let at = r.offset();
        let dim = r.u64(|| format!("tensor {name:?} dimension {d}"))?;
        if dim == 0 {
            return Err(GgufError::malformed(
                at,
                format!("tensor {name:?} dimension {d} is 0"),
            ));
        }
        dims.push(dim);
    }
    let type_at = r.offset();
    let type_id = r.u32(|| format!("tensor {name:?} type"))?;
    let dtype = GgmlType::from_id(type_id).ok_or_else(|| {
        GgufError::unsupported(
            type_at,
            format!("tensor {name:?} has unsupported tensor type id {type_id}"),
        )
    })?;

    // ggml counts elements in an i64, and we index bytes with usize.
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok() && usize::try_from(n).is_ok());
    if n_elements.is_none() {
        return Err(GgufError::malformed(
            at,
            format!("tensor {name:?} dimensions {dims:?}: element count overflows"),
        ));
    }
    let row_len = usize::try_from(dims[0]).ok();
    let row_bytes = row_len.and_then(|n| dtype.row_bytes(n)).ok_or_else(|| {
        GgufError::malformed(
            at,
            format!(
                "tensor {name:?} row length {} is not a multiple of the {dtype} block length {}",
                dims[0],
                dtype.block_len()
            ),
        )
    })?;
    let rows = dims[1..].iter().product::<u64>(); // <= n_elements, checked above
    let size = (row_bytes as u64)
        .checked_mul(rows)
        .filter(|&s| usize::try_from(s).is_ok())
        .ok_or_else(|| {
            GgufError::malformed(
                at,
                format!("tensor {name:?} dimensions {dims:?}: byte size overflows"),
            )
        })?;
    Ok((dtype, dims, size))
}

fn read_value(r: &mut Reader<'_>, ty: u32, key: &str) -> Result<Value, GgufError> {
    let at = r.offset();
    let what = || format!("metadata key {key:?} value");
    Ok(match ty {
        type_id::U8 => Value::U8(r.array::<1>(what)?[0]),
        type_id::I8 => Value::I8(i8::from_le_bytes(r.array(what)?)),
        type_id::U16 => Value::U16(u16::from_le_bytes(r.array(what)?)),
        type_id::I16 => Value::I16(i16::from_le_bytes(r.array(what)?)),
        type_id::U32 => Value::U32(u32::from_le_bytes(r.array(what)?)),
        type_id::I32 => Value::I32(i32::from_le_bytes(r.array(what)?)),
        type_id::F32 => Value::F32(f32::from_le_bytes(r.array(what)?)),
        type_id::U64 => Value::U64(u64::from_le_bytes(r.array(what)?)),
        type_id::I64 => Value::I64(i64::from_le_bytes(r.array(what)?)),
        type_id::F64 => Value::F64(f64::from_le_bytes(r.array(what)?)),
        type_id::BOOL => Value::Bool(read_bool(r.array::<1>(what)?[0], at, key)?),
        type_id::STRING => Value::String(r.string(what)?),
        type_id::ARRAY => Value::Array(read_array(r, key, 1)?),
        other => {
            return Err(GgufError::malformed(
                at.saturating_sub(4),
                format!("metadata key {key:?} has unknown value type id {other}"),
            ))
        }
    })
}

fn read_bool(byte: u8, at: u64, key: &str) -> Result<bool, GgufError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(GgufError::malformed(
            at,
            format!("metadata key {key:?}: bool value {b} is neither 0 nor 1"),
        )),
    }
}

fn read_array(r: &mut Reader<'_>, key: &str, depth: u32) -> Result<Array, GgufError> {
    let at = r.offset();
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::malformed(
            at,
            format!("metadata key {key:?}: arrays nested more than {MAX_ARRAY_DEPTH} deep"),
        ));
    }
    let elem = r.u32(|| format!("metadata key {key:?} array element type"))?;
    let Some(min_size) = type_id::min_size(elem) else {
        return Err(GgufError::malformed(
            at,
            format!("metadata key {key:?}: array has unknown element type id {elem}"),
        ));
    };
    let n = r.u64(|| format!("metadata key {key:?} array length"))?;
    let left = r.remaining() as u64;
    let Some(min_bytes) = n.checked_mul(min_size).filter(|&b| b <= left) else {
        return Err(GgufError::malformed(
            at + 4,
            format!(
                "metadata key {key:?}: array of {n} {} elements does not fit in the {left} \
                 bytes left in the file",
                type_id::name(elem)
            ),
        ));
    };
    // n * min_size <= bytes left, so n and every fixed-size byte count below fit a usize.
    let n = n as usize;
    if elem == type_id::STRING {
        let mut out = Vec::with_capacity(n.min(MAX_PREALLOC));
        for i in 0..n {
            out.push(r.string(|| format!("metadata key {key:?} array element {i}"))?);
        }
        return Ok(Array::String(out));
    }
    if elem == type_id::ARRAY {
        // Not pre-allocated: every nesting level could claim the whole rest of the file.
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(read_array(r, key, depth + 1)?);
        }
        return Ok(Array::Array(out));
    }
    // Fixed-size elements: exactly `min_bytes` of data.
    let start = r.offset();
    let data = r.bytes(min_bytes as usize, || {
        format!("metadata key {key:?} array data")
    })?;
    Ok(match elem {
        type_id::U8 => Array::U8(data.to_vec()),
        type_id::I8 => Array::I8(le_vec(data, i8::from_le_bytes)),
        type_id::U16 => Array::U16(le_vec(data, u16::from_le_bytes)),
        type_id::I16 => Array::I16(le_vec(data, i16::from_le_bytes)),
        type_id::U32 => Array::U32(le_vec(data, u32::from_le_bytes)),
        type_id::I32 => Array::I32(le_vec(data, i32::from_le_bytes)),
        type_id::F32 => Array::F32(le_vec(data, f32::from_le_bytes)),
        type_id::U64 => Array::U64(le_vec(data, u64::from_le_bytes)),
        type_id::I64 => Array::I64(le_vec(data, i64::from_le_bytes)),
        type_id::F64 => Array::F64(le_vec(data, f64::from_le_bytes)),
        _ => {
            // type_id::BOOL, the only fixed-size type left.
            let mut out = Vec::with_capacity(n);
            for (i, &b) in data.iter().enumerate() {
                out.push(read_bool(b, start + i as u64, key)?);
            }
            Array::Bool(out)
        }
    })
}

fn le_vec<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// A cursor over the file; `pos <= buf.len()` always holds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes; `what` names the field for the error message.
    fn bytes(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        let rest = &self.buf[self.pos..];
        match rest.get(..n) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => Err(GgufError::malformed(
                self.offset(),
                format!(
                    "file truncated: {} needs {n} bytes but only {} are left",
                    what(),
                    rest.len()
                ),
            )),
        }
    }

    fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let b = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string; the length is checked against the bytes left
    /// before anything is allocated.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String, GgufError> {
        let at = self.offset();
        let len = self.u64(|| format!("{} length", what()))?;
        let left = self.remaining();
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= left) else {
            return Err(GgufError::malformed(
                at,
                format!(
                    "{}: string length {len} exceeds the {left} bytes left in the file",
                    what()
                ),
            ));
        };
        let start = self.offset();
        let bytes = self.bytes(len, &what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(GgufError::malformed(
                start + e.valid_up_to() as u64,
                format!("{}: string is not valid UTF-8", what()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stays_in_bounds() {
        let buf = [1u8, 0, 0, 0, 2];
        let mut r = Reader { buf: &buf, pos: 0 };
        assert_eq!(r.u32(|| "x".into()).unwrap(), 1);
        assert_eq!(r.remaining(), 1);
        let err = r.u32(|| "the field".into()).unwrap_err();
        assert!(err
            .message()
            .contains("the field needs 4 bytes but only 1 are left"));
        assert_eq!(err.offset(), Some(4));
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.bytes(1, || "y".into()).unwrap(), &[2]);
        assert!(r.bytes(usize::MAX, || "z".into()).is_err());
        assert_eq!(r.bytes(0, || "z".into()).unwrap(), &[] as &[u8]);
    }

    #[test]
    fn string_length_is_checked_before_allocating() {
        let mut buf = u64::MAX.to_le_bytes().to_vec();
        buf.extend(b"abc");
        let mut r = Reader { buf: &buf, pos: 0 };
        let err = r.string(|| "name".into()).unwrap_err();
        assert!(err
            .message()
            .contains("string length 18446744073709551615 exceeds the 3 bytes"));
        assert_eq!(err.offset(), Some(0));
    }

    #[test]
    fn min_sizes_cover_every_value_type() {
        for id in 0..=12 {
            assert!(type_id::min_size(id).is_some(), "{id}");
            assert_ne!(type_id::name(id), "unknown");
        }
        assert_eq!(type_id::min_size(13), None);
        assert_eq!(type_id::name(13), "unknown");
    }

    #[test]
    fn prealloc_is_capped() {
        assert_eq!(prealloc(3), 3);
        assert_eq!(prealloc(u64::MAX), MAX_PREALLOC);
    }

    #[test]
    fn alignment_rules() {
        assert_eq!(check_alignment(&Value::U32(32)).unwrap(), 32);
        assert_eq!(check_alignment(&Value::U8(1)).unwrap(), 1);
        assert_eq!(
            check_alignment(&Value::U64(MAX_ALIGNMENT)).unwrap(),
            MAX_ALIGNMENT
        );
        for bad in [
            Value::U32(0),
            Value::U32(3),
            Value::U32(1 << 31),
            Value::U64(MAX_ALIGNMENT * 2),
            Value::I32(32),
            Value::Bool(true),
        ] {
            let err = check_alignment(&bad).unwrap_err();
            assert!(err.message().contains("general.alignment"));
        }
    }

    #[test]
    fn little_endian_decoding() {
        assert_eq!(le_vec(&[1, 0, 0xff, 0xff], i16::from_le_bytes), vec![1, -1]);
        assert_eq!(le_vec(&[0, 0, 0x80, 0x3f], f32::from_le_bytes), vec![1.0]);
    }
}

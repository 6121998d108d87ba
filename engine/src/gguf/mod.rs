//! GGUF v2/v3 files: metadata and zero-copy tensor views.
//!
//! [`GgufFile::open`] memory-maps the file and validates all of it up front (header
//! counts, strings, arrays, alignment, tensor shapes, types, offsets, bounds and
//! overlaps), so every [`Tensor`] handed out afterwards is known to lie inside the file.
//! Files are untrusted input: malformed ones give a [`GgufError`] naming the key or
//! tensor and the byte offset, never a panic.

mod error;
mod parse;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use kernels::GgmlType;
use memmap2::Mmap;

pub use error::{GgufError, GgufErrorKind};
pub use parse::{DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use value::{Array, Value};

/// The bytes of a GGUF file.
enum Storage {
    Mmap(Mmap),
    Owned(Vec<u8>),
    /// An owned buffer copied to 8-byte alignment (see [`GgufFile::from_bytes`]).
    Aligned {
        words: Vec<u64>,
        len: usize,
    },
}

impl Storage {
    fn copy_aligned(bytes: &[u8]) -> Storage {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Storage::Aligned {
            words,
            len: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
            Storage::Aligned { words, len } => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
        }
    }
}

/// A parsed GGUF file. `Send + Sync`; share it with `Arc<GgufFile>`. Tensor views keep
/// the underlying mapping alive on their own, so the file may be dropped before them.
pub struct GgufFile {
    storage: Arc<Storage>,
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_offset: u64,
}

/// A tensor's description from the file's tensor infos, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: GgmlType,
    /// ggml order: `dims[0]` is the row length (contiguous), then rows, ...; 1 to 4 dims.
    pub dims: Vec<u64>,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Number of rows: the product of all dims but the first.
    pub fn rows(&self) -> u64 {
        self.dims
            .iter()
            .skip(1)
            .fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// A zero-copy view of one tensor's data. Cheap to clone, `Send + Sync + 'static`: it
/// holds a reference count on the file's bytes.
///
/// The data starts at an address aligned to the file's alignment for mapped files (the
/// mapping is page-aligned) and to `min(alignment, 8)` for [`GgufFile::from_bytes`].
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    offset: usize,
    len: usize,
    dtype: GgmlType,
    dims: [u64; MAX_DIMS as usize],
    n_dims: usize,
}

impl Tensor {
    pub fn bytes(&self) -> &[u8] {
        // In bounds: the parser checked every tensor against the file size.
        &self.storage.bytes()[self.offset..self.offset + self.len]
    }

    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// ggml order: `dims()[0]` is the row length.
    pub fn dims(&self) -> &[u64] {
        &self.dims[..self.n_dims]
    }

    pub fn n_elements(&self) -> u64 {
        self.dims().iter().product()
    }

    pub fn rows(&self) -> u64 {
        self.dims()[1..].iter().product()
    }

    pub fn row_len(&self) -> u64 {
        self.dims[0]
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype)
            .field("dims", &self.dims())
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// Defines `get_X(key) -> Result<T>` (missing key is an error) and
/// `get_X_opt(key) -> Result<Option<T>>` (missing key is `None`, wrong type an error).
macro_rules! getters {
    ($($(#[$doc:meta])* $get:ident, $opt:ident -> $t:ty, $want:literal, $conv:expr;)*) => {$(
        $(#[$doc])*
        pub fn $get(&self, key: &str) -> Result<$t, GgufError> {
            self.$opt(key)?.ok_or_else(|| self.missing(key, $want))
        }

        $(#[$doc])*
        pub fn $opt(&self, key: &str) -> Result<Option<$t>, GgufError> {
            self.typed(key, $want, $conv)
        }
    )*};
}

impl GgufFile {
    /// Memory-maps and validates a GGUF file (read-only).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| GgufError::io(path, "cannot open", e))?;
        let len = file
            .metadata()
            .map_err(|e| GgufError::io(path, "cannot stat", e))?
            .len();
        if len == 0 {
            // Mapping an empty file fails on some platforms; report it as what it is.
            return Err(GgufError::malformed(0, "file is empty").with_path(path));
        }
        if usize::try_from(len).is_err() {
            return Err(GgufError::new(
                GgufErrorKind::Unsupported,
                format!("file of {len} bytes does not fit in the address space"),
            )
            .with_path(path));
        }
        // SAFETY: the mapping is read-only and private to us, but another process could
        // still truncate or rewrite the file while it is mapped; reads would then see
        // changed bytes or fault (SIGBUS). That is outside what we guard against, as for
        // every mmap-based model loader (llama.cpp, Ollama): ferrite never writes a mapped
        // file, and model blobs are content-addressed and only ever replaced by rename,
        // which leaves an existing mapping intact. Everything is validated once here; a
        // concurrent rewrite can change values but not the mapping's length, so views stay
        // in bounds.
        let mmap =
            unsafe { Mmap::map(&file) }.map_err(|e| GgufError::io(path, "cannot mmap", e))?;
        GgufFile::from_storage(Storage::Mmap(mmap)).map_err(|e| e.with_path(path))
    }

    /// Parses an in-memory file (tests, fuzzing, small embedded models). The buffer is
    /// kept as is when it is 8-byte aligned (as allocations usually are), else copied
    /// once so tensor data can be cast to `f32`/`f16`/blocks.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let storage = if bytes.as_ptr().align_offset(8) == 0 {
            Storage::Owned(bytes)
        } else {
            Storage::copy_aligned(&bytes)
        };
        GgufFile::from_storage(storage)
    }

    fn from_storage(storage: Storage) -> Result<GgufFile, GgufError> {
        let p = parse::parse(storage.bytes())?;
        Ok(GgufFile {
            storage: Arc::new(storage),
            version: p.version,
            alignment: p.alignment,
            metadata: p.metadata,
            metadata_index: p.metadata_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
            data_offset: p.data_offset,
        })
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A zero-copy view of a tensor's data.
    pub fn tensor_view(&self, name: &str) -> Option<Tensor> {
        let t = self.tensor(name)?;
        let mut dims = [1u64; MAX_DIMS as usize];
        dims[..t.dims.len()].copy_from_slice(&t.dims);
        Some(Tensor {
            storage: Arc::clone(&self.storage),
            // Both fit a usize: the parser checked offset + size <= file size.
            offset: t.offset as usize,
            len: t.size as usize,
            dtype: t.dtype,
            dims,
            n_dims: t.dims.len(),
        })
    }

    /// Absolute file offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn file_size(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// `general.architecture` (e.g. `llama`, `qwen2`, `gemma3`).
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    getters! {
        /// Any integer type holding a value that fits.
        get_u32, get_u32_opt -> u32, "an unsigned integer that fits in u32",
            |v: &Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
        /// Any integer type holding a value that fits.
        get_u64, get_u64_opt -> u64, "a non-negative integer",
            |v: &Value| v.as_u64();
        /// Any integer type holding a value that fits.
        get_usize, get_usize_opt -> usize, "an unsigned integer that fits in usize",
            |v: &Value| v.as_u64().and_then(|x| usize::try_from(x).ok());
        /// Any integer type holding a value that fits.
        get_i32, get_i32_opt -> i32, "an integer that fits in i32",
            |v: &Value| v.as_i64().and_then(|x| i32::try_from(x).ok());
        /// Any integer type holding a value that fits.
        get_i64, get_i64_opt -> i64, "an integer that fits in i64",
            |v: &Value| v.as_i64();
        /// `f32`, or `f64` narrowed to `f32`.
        get_f32, get_f32_opt -> f32, "a float (f32 or f64)",
            |v: &Value| v.as_f64().map(|x| x as f32);
        /// `f32` or `f64`.
        get_f64, get_f64_opt -> f64, "a float (f32 or f64)",
            |v: &Value| v.as_f64();
        get_bool, get_bool_opt -> bool, "a bool", |v: &Value| v.as_bool();
        get_str, get_str_opt -> &str, "a string", |v: &Value| v.as_str();
        get_array, get_array_opt -> &Array, "an array", |v: &Value| v.as_array();
        get_str_array, get_str_array_opt -> &[String], "an array of strings",
            |v: &Value| v.as_array().and_then(Array::as_strings);
        get_f32_array, get_f32_array_opt -> &[f32], "an array of f32",
            |v: &Value| v.as_array().and_then(Array::as_f32s);
        get_i32_array, get_i32_array_opt -> &[i32], "an array of i32",
            |v: &Value| v.as_array().and_then(Array::as_i32s);
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        want: &str,
        conv: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match conv(value) {
            Some(t) => Ok(Some(t)),
            None => Err(GgufError::new(
                GgufErrorKind::WrongType,
                format!(
                    "metadata key {key:?} is {}, expected {want}",
                    describe(value)
                ),
            )),
        }
    }

    fn missing(&self, key: &str, want: &str) -> GgufError {
        GgufError::new(
            GgufErrorKind::MissingKey,
            format!("metadata key {key:?} ({want}) is missing"),
        )
    }
}

/// A value's type and, for scalars, the value itself, for error messages.
fn describe(value: &Value) -> String {
    let ty = value.type_name();
    match value {
        Value::Array(a) => format!("{ty} of length {}", a.len()),
        Value::String(s) if s.len() > 40 => format!("a {ty} of {} bytes", s.len()),
        Value::String(s) => format!("{ty} {s:?}"),
        Value::U8(v) => format!("{ty} {v}"),
        Value::I8(v) => format!("{ty} {v}"),
        Value::U16(v) => format!("{ty} {v}"),
        Value::I16(v) => format!("{ty} {v}"),
        Value::U32(v) => format!("{ty} {v}"),
        Value::I32(v) => format!("{ty} {v}"),
        Value::U64(v) => format!("{ty} {v}"),
        Value::I64(v) => format!("{ty} {v}"),
        Value::F32(v) => format!("{ty} {v}"),
        Value::F64(v) => format!("{ty} {v}"),
        Value::Bool(v) => format!("{ty} {v}"),
    }
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("metadata_entries", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .field("file_size", &self.file_size())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal v3 file: one u32 key, one f32 tensor [3] at data offset 0.
    fn tiny() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(1u64.to_le_bytes()); // kvs
        b.extend(1u64.to_le_bytes());
        b.extend(b"k");
        b.extend(4u32.to_le_bytes());
        b.extend(7u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(b"t");
        b.extend(1u32.to_le_bytes());
        b.extend(3u64.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // f32
        b.extend(0u64.to_le_bytes());
        b.resize(b.len().next_multiple_of(32), 0);
        for x in [1.0f32, 2.0, 3.0] {
            b.extend(x.to_le_bytes());
        }
        b
    }

    #[test]
    fn copied_storage_is_aligned_and_equal() {
        let bytes = tiny();
        // Force the copy path from a deliberately misaligned slice.
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(&bytes);
        let storage = Storage::copy_aligned(&shifted[1..]);
        assert_eq!(storage.bytes(), &bytes[..]);
        assert_eq!(storage.bytes().as_ptr().align_offset(8), 0);
        let file = GgufFile::from_storage(storage).unwrap();
        assert_eq!(file.get_u32("k").unwrap(), 7);
        let t = file.tensor_view("t").unwrap();
        let floats: &[f32] = bytemuck::cast_slice(t.bytes());
        assert_eq!(floats, &[1.0, 2.0, 3.0]);
        assert_eq!(
            format!("{t:?}"),
            "Tensor { dtype: F32, dims: [3], offset: 96, len: 12 }"
        );
    }

    #[test]
    fn tensor_info_helpers() {
        let t = TensorInfo {
            name: "x".into(),
            dtype: GgmlType::Q8_0,
            dims: vec![64, 3, 2],
            offset: 0,
            size: 0,
        };
        assert_eq!((t.n_elements(), t.rows(), t.row_len()), (384, 6, 64));
        // Hand-built infos with absurd dims saturate instead of overflowing.
        let t = TensorInfo {
            dims: vec![u64::MAX, 2],
            ..t
        };
        assert_eq!(t.n_elements(), u64::MAX);
    }

    #[test]
    fn debug_output_is_a_summary() {
        let file = GgufFile::from_bytes(tiny()).unwrap();
        let s = format!("{file:?}");
        assert!(
            s.contains("tensors: 1") && s.contains("data_offset: 96"),
            "{s}"
        );
    }
}

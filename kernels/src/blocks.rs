//! GGUF/ggml tensor types and their block layouts, bit-compatible with ggml.
//!
//! Every block is `#[repr(C)]` with a compile-time size check, so a byte slice
//! from a GGUF file can be viewed as a slice of blocks without copying.

use bytemuck::{Pod, Zeroable};
use half::{bf16, f16};

/// Tensor element types, numbered as in ggml's `enum ggml_type` (the ids GGUF stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Bf16,
}

impl GgmlType {
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q8K,
        GgmlType::Bf16,
    ];

    /// The ggml type id as stored in GGUF tensor infos.
    pub const fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2K => 10,
            GgmlType::Q3K => 11,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::Q8K => 15,
            GgmlType::Bf16 => 30,
        }
    }

    /// The type for a GGUF type id; `None` for ids ferrite does not support
    /// (including ids ggml knows, such as the IQ types).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// ggml's short name (`q4_K`, `f16`, ...), as llama.cpp prints it.
    pub const fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "f32",
            GgmlType::F16 => "f16",
            GgmlType::Q4_0 => "q4_0",
            GgmlType::Q4_1 => "q4_1",
            GgmlType::Q5_0 => "q5_0",
            GgmlType::Q5_1 => "q5_1",
            GgmlType::Q8_0 => "q8_0",
            GgmlType::Q8_1 => "q8_1",
            GgmlType::Q2K => "q2_K",
            GgmlType::Q3K => "q3_K",
            GgmlType::Q4K => "q4_K",
            GgmlType::Q5K => "q5_K",
            GgmlType::Q6K => "q6_K",
            GgmlType::Q8K => "q8_K",
            GgmlType::Bf16 => "bf16",
        }
    }

    pub fn from_name(name: &str) -> Option<GgmlType> {
        GgmlType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Elements per block.
    pub const fn block_len(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => 1,
            GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q8_1 => QK,
            GgmlType::Q2K
            | GgmlType::Q3K
            | GgmlType::Q4K
            | GgmlType::Q5K
            | GgmlType::Q6K
            | GgmlType::Q8K => QK_K,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::Bf16 => 2,
            GgmlType::Q4_0 => std::mem::size_of::<BlockQ4_0>(),
            GgmlType::Q4_1 => std::mem::size_of::<BlockQ4_1>(),
            GgmlType::Q5_0 => std::mem::size_of::<BlockQ5_0>(),
            GgmlType::Q5_1 => std::mem::size_of::<BlockQ5_1>(),
            GgmlType::Q8_0 => std::mem::size_of::<BlockQ8_0>(),
            GgmlType::Q8_1 => std::mem::size_of::<BlockQ8_1>(),
            GgmlType::Q2K => std::mem::size_of::<BlockQ2K>(),
            GgmlType::Q3K => std::mem::size_of::<BlockQ3K>(),
            GgmlType::Q4K => std::mem::size_of::<BlockQ4K>(),
            GgmlType::Q5K => std::mem::size_of::<BlockQ5K>(),
            GgmlType::Q6K => std::mem::size_of::<BlockQ6K>(),
            GgmlType::Q8K => std::mem::size_of::<BlockQ8K>(),
        }
    }

    /// Bytes of a row of `n` elements, or `None` when `n` is not a whole number
    /// of blocks or the size overflows.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    pub const fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Elements per block of the legacy formats (Q4_0 … Q8_1).
pub const QK: usize = 32;
/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales/mins in Q3_K/Q4_K/Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// 32 weights: `w = d * (q - 8)`, q in 0..16; low nibbles are elements 0..16.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

/// 32 weights: `w = d * q + m`, q in 0..16.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// 32 weights: `w = d * (q - 16)`, q 5-bit; the fifth bits are in `qh`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 32 weights: `w = d * q + m`, q 5-bit.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 32 weights: `w = d * q`, q signed 8-bit.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

/// Activation partner of Q4_1/Q5_1: as Q8_0 plus `s = d * sum(qs)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

/// 256 weights in 16 groups of 16: 2-bit quants, 4-bit scales and mins.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

/// 256 weights in 16 groups of 16: 3-bit quants (high bit in `hmask`), 6-bit scales.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; K_SCALE_SIZE],
    pub d: f16,
}

/// 256 weights in 8 groups of 32: 4-bit quants, 6-bit scales and mins.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

/// 256 weights in 8 groups of 32: 5-bit quants, 6-bit scales and mins.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// 256 weights in 16 groups of 16: 6-bit quants, signed 8-bit scales.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

/// Activation partner of the K-quants: f32 scale, 8-bit quants, sums of each 16.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

// Sizes fixed by the GGUF format: a mismatch would misread every file.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);
const _: () = assert!(std::mem::size_of::<f16>() == 2 && std::mem::size_of::<bf16>() == 2);

/// A block type: its ggml type and element count.
pub trait Block: Pod + Send + Sync + 'static {
    const TYPE: GgmlType;
    const LEN: usize = Self::TYPE.block_len();
}

macro_rules! impl_block {
    ($($t:ty => $g:expr),* $(,)?) => {
        $(impl Block for $t {
            const TYPE: GgmlType = $g;
        }
        const _: () = assert!(std::mem::size_of::<$t>() == $g.block_bytes());)*
    };
}

impl_block!(
    BlockQ4_0 => GgmlType::Q4_0,
    BlockQ4_1 => GgmlType::Q4_1,
    BlockQ5_0 => GgmlType::Q5_0,
    BlockQ5_1 => GgmlType::Q5_1,
    BlockQ8_0 => GgmlType::Q8_0,
    BlockQ8_1 => GgmlType::Q8_1,
    BlockQ2K => GgmlType::Q2K,
    BlockQ3K => GgmlType::Q3K,
    BlockQ4K => GgmlType::Q4K,
    BlockQ5K => GgmlType::Q5K,
    BlockQ6K => GgmlType::Q6K,
    BlockQ8K => GgmlType::Q8K,
    f32 => GgmlType::F32,
    f16 => GgmlType::F16,
    bf16 => GgmlType::Bf16,
);

/// View bytes as blocks; `None` when the length is not a whole number of blocks
/// or the bytes are misaligned for the block type.
pub fn as_blocks<B: Block>(bytes: &[u8]) -> Option<&[B]> {
    bytemuck::try_cast_slice(bytes).ok()
}

/// Every f16 bit pattern as f32 (256 KiB, built once): a conversion is one load,
/// as in ggml's `ggml_table_f32_f16`. Hot loops touch only the few cache lines
/// their scales fall in.
pub fn f16_table() -> &'static [f32; 65536] {
    static TABLE: std::sync::OnceLock<Box<[f32; 65536]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0f32; 65536]);
        for (bits, v) in t.iter_mut().enumerate() {
            *v = half::f16::from_bits(bits as u16).to_f32();
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_names_are_ggml_names() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
            assert_eq!(GgmlType::from_name(t.name()), Some(t));
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_id(16), None);
        assert_eq!(GgmlType::Q4K.name(), "q4_K");
    }

    #[test]
    fn row_bytes_requires_whole_blocks() {
        assert_eq!(GgmlType::Q4_0.row_bytes(64), Some(36));
        assert_eq!(GgmlType::Q4_0.row_bytes(33), None);
        assert_eq!(GgmlType::Q6K.row_bytes(512), Some(420));
        assert_eq!(GgmlType::F16.row_bytes(3), Some(6));
        assert_eq!(GgmlType::Q8_0.row_bytes(usize::MAX - 31), None);
    }
}

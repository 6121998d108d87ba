//! The property every input must satisfy, shared by the mutation test and the fuzz
//! target (which includes this file by path): parsing never panics, and when it succeeds
//! every accessor is consistent and every tensor view lies inside the file.

use ferrite_engine::gguf::{GgufError, GgufFile};

/// Parses `bytes` and walks the result; panics only if the parser broke its own
/// guarantees. Returns the parse error, or a checksum of everything walked.
pub fn parse_and_walk(bytes: &[u8]) -> Result<u64, GgufError> {
    let file = GgufFile::from_bytes(bytes.to_vec())?;
    let mut sum = 0u64;
    assert!(matches!(file.version(), 2 | 3));
    assert!(file.alignment().is_power_of_two());
    assert_eq!(file.file_size(), bytes.len() as u64);
    assert_eq!(file.data_offset() % file.alignment(), 0);
    for (key, value) in file.metadata() {
        // Same entry (compared by address: NaN values are not equal to themselves).
        assert!(file.get(key).is_some_and(|v| std::ptr::eq(v, value)));
        sum = sum.wrapping_add(key.len() as u64);
        // Typed getters never panic, whatever the value's type.
        let _ = file.get_u32(key);
        let _ = file.get_usize(key);
        let _ = file.get_i64(key);
        let _ = file.get_f32(key);
        let _ = file.get_str(key);
        let _ = file.get_str_array(key);
        let _ = file.get_f32_array(key);
        if let Ok(a) = file.get_array(key) {
            sum = sum.wrapping_add(a.len() as u64);
        }
    }
    let mut spans = Vec::new();
    for info in file.tensors() {
        assert!(file
            .tensor(&info.name)
            .is_some_and(|t| std::ptr::eq(t, info)));
        let view = file
            .tensor_view(&info.name)
            .expect("listed tensor has a view");
        assert_eq!(view.dtype(), info.dtype);
        assert_eq!(view.dims(), &info.dims[..]);
        assert!((1..=4).contains(&info.dims.len()));
        assert_eq!(view.n_elements(), info.n_elements());
        assert_eq!(info.rows() * info.row_len(), info.n_elements());
        let row_bytes = info
            .dtype
            .row_bytes(info.row_len() as usize)
            .expect("row length is whole blocks");
        assert_eq!(info.size, row_bytes as u64 * info.rows());
        assert_eq!(view.bytes().len() as u64, info.size);
        assert!(info.offset >= file.data_offset());
        assert!(info.offset + info.size <= file.file_size());
        assert_eq!(
            view.bytes(),
            &bytes[info.offset as usize..(info.offset + info.size) as usize]
        );
        sum = view
            .bytes()
            .iter()
            .fold(sum, |s, &b| s.rotate_left(5) ^ b as u64);
        spans.push((info.offset, info.offset + info.size));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "tensors overlap: {w:?}");
    }
    Ok(sum)
}

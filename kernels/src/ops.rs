//! PLACEHOLDER: f32 ops.

//! PLACEHOLDER: matrix×vector and matrix×matrix drivers.

//! What the exact-path op tests share: the adapter and a seeded generator (each test
//! adds the distributions it draws from in its own `impl Rng`).
#![allow(dead_code)] // each test crate uses its own part

use ferrite_shaders::{GpuContext, GpuOptions};

pub fn ctx() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env())
        .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}"))
}

/// xorshift64: deterministic test data, the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

//! Software prefetch for decode, where every weight byte is read once from memory
//! (x86 only so far: the NEON kernels cannot be measured on these machines).
//!
//! Measured on the 2-core Zen 3 VM (14336×4096 Q8_0 matvec, 2 threads): with the
//! hardware prefetcher alone a core stops fetching while it computes, and memory
//! time and compute time add up (13.8 GB/s of ~20); one hint per cache line,
//! 4 KiB ahead of the bytes being multiplied, overlaps them (17.0 GB/s). A burst
//! of hints per row instead of one per line gained nothing: the line-fill buffers
//! fill and the core stalls on the hints themselves.

/// How far ahead of the bytes being read the hints point.
pub(crate) const DISTANCE: usize = 4096;

/// Hints for the cache lines that start in `[p + DISTANCE, p + DISTANCE + len)`:
/// called once per span of `len` bytes read in order, it asks for each line once.
#[inline(always)]
pub(crate) fn ahead(p: *const u8, len: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let start = p.wrapping_add(DISTANCE);
    let mut off = (start as usize).next_multiple_of(64) - start as usize;
    while off < len {
        // SAFETY: a prefetch is only a hint: it never faults and never changes
        // memory, whatever the address (here possibly past the end of the data).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(off).cast()) };
        off += 64;
    }
}

//! Run-time CPU feature detection.
//!
//! One binary runs on any CPU of its architecture and picks the best kernels
//! at run time. `FERRITE_CPU=scalar|avx2|avx512|neon` forces a lower level, so
//! every path can be tested on one machine; asking for a level the CPU lacks
//! falls back to the best level it has.

use std::sync::OnceLock;

/// Kernel instruction-set levels, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ (VNNI used when [`has_avx512_vnni`] says so).
    Avx512,
    /// aarch64 Advanced SIMD (with dot-product instructions when present).
    Neon,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    pub fn from_name(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "generic" | "none" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx-512" => Some(Isa::Avx512),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }

    /// True when this CPU can run kernels of this level.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => has_avx2(),
            Isa::Avx512 => has_avx512(),
            Isa::Neon => has_neon(),
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every level this CPU supports, weakest first (always starts with `Scalar`).
pub fn supported_levels() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon]
        .into_iter()
        .filter(|i| i.supported())
        .collect()
}

/// The best level this CPU supports, ignoring `FERRITE_CPU`.
pub fn best_supported() -> Isa {
    *supported_levels()
        .last()
        .expect("scalar is always supported")
}

/// The level the kernels use: the best supported, or the one `FERRITE_CPU` asks for
/// when the CPU supports it. Read once per process.
pub fn active() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let best = best_supported();
        match std::env::var("FERRITE_CPU") {
            Ok(v) if !v.is_empty() => match Isa::from_name(&v) {
                Some(want) if want.supported() && want <= best => want,
                Some(Isa::Scalar) => Isa::Scalar,
                _ => {
                    eprintln!(
                        "ferrite: FERRITE_CPU={v} is not a level this CPU supports ({}); using {best}",
                        supported_levels()
                            .iter()
                            .map(|i| i.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    best
                }
            },
            _ => best,
        }
    })
}

#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}
#[cfg(not(target_arch = "x86_64"))]
pub fn has_avx2() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
}
#[cfg(not(target_arch = "x86_64"))]
pub fn has_avx512() -> bool {
    false
}

/// AVX-512 VNNI (`vpdpbusd`), used inside the AVX-512 level when present.
#[cfg(target_arch = "x86_64")]
pub fn has_avx512_vnni() -> bool {
    has_avx512() && is_x86_feature_detected!("avx512vnni")
}
#[cfg(not(target_arch = "x86_64"))]
pub fn has_avx512_vnni() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
pub fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
#[cfg(not(target_arch = "aarch64"))]
pub fn has_neon() -> bool {
    false
}

/// ARMv8.2 dot-product instructions (`sdot`), used inside the NEON level when present.
#[cfg(target_arch = "aarch64")]
pub fn has_neon_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}
#[cfg(not(target_arch = "aarch64"))]
pub fn has_neon_dotprod() -> bool {
    false
}

/// A one-line description of the CPU for benchmark reports.
pub fn describe() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let mut feats = supported_levels()
        .iter()
        .map(|i| i.name().to_string())
        .collect::<Vec<_>>();
    if has_avx512_vnni() {
        feats.push("avx512vnni".into());
    }
    if has_neon_dotprod() {
        feats.push("dotprod".into());
    }
    format!(
        "{model}, {} logical cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        feats.join("+")
    )
}

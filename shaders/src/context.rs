//! The GPU device: adapter choice, device creation with the adapter's limits and
//! optional features, and the lazily filled pipeline cache.

use crate::pipelines::{Pipeline, PipelineKey};
use crate::GpuError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How to pick and configure the GPU.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Adapter by index (in [`adapters`] order) or by case-insensitive name substring;
    /// `None` = the best available (discrete > integrated > virtual > CPU).
    pub device: Option<String>,
    /// Do not use shader-f16 even when the adapter has it (tests the fallback shaders).
    pub disable_f16: bool,
    /// Do not use subgroup operations even when the adapter has them.
    pub disable_subgroups: bool,
    /// 8-wide matrix workgroups (`Some(true)`) or 32-wide (`Some(false)`); `None`: 8 on
    /// CPU-type adapters (lavapipe), where they are fastest, 32 elsewhere.
    pub narrow_matmul: Option<bool>,
}

impl GpuOptions {
    /// Options from the environment: `FERRITE_GPU_DEVICE=<index or name substring>`.
    /// The backend is chosen by wgpu's `WGPU_BACKEND` (vulkan, gl, metal, dx12).
    pub fn from_env() -> GpuOptions {
        GpuOptions {
            device: std::env::var("FERRITE_GPU_DEVICE")
                .ok()
                .filter(|s| !s.trim().is_empty()),
            ..GpuOptions::default()
        }
    }
}

/// What the caller may want to know about an adapter.
#[derive(Debug, Clone)]
pub struct AdapterDesc {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// A software rasteriser (llvmpipe, SwiftShader, WARP): correct but slow.
    pub is_cpu: bool,
    pub driver: String,
}

impl std::fmt::Display for AdapterDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} ({}, {}{})",
            self.index,
            self.name,
            self.backend,
            self.device_type,
            if self.driver.is_empty() {
                String::new()
            } else {
                format!(", {}", self.driver)
            }
        )
    }
}

fn instance() -> wgpu::Instance {
    // `_from_env` so WGPU_BACKEND=vulkan|gl is honoured; `Instance::default()` ignores it.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn compute_adapters(inst: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect()
}

fn describe(index: usize, a: &wgpu::Adapter) -> AdapterDesc {
    let info = a.get_info();
    AdapterDesc {
        index,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        is_cpu: info.device_type == wgpu::DeviceType::Cpu,
        driver: [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Adapters that can run compute shaders, in the order `FERRITE_GPU_DEVICE` indexes them.
pub fn adapters() -> Vec<AdapterDesc> {
    compute_adapters(&instance())
        .iter()
        .enumerate()
        .map(|(i, a)| describe(i, a))
        .collect()
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

/// An open GPU device and its caches. Shared (`Arc`) by every model placed on it.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    desc: AdapterDesc,
    pub(crate) limits: wgpu::Limits,
    pub(crate) f16: bool,
    pub(crate) subgroups: bool,
    pub(crate) narrow: bool,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    /// Bound where a shader's optional read-only input is absent.
    pub(crate) dummy: wgpu::Buffer,
    /// Whether WGSL `fma` is fused here, probed on first use (lavapipe: no).
    fma_fused: std::sync::OnceLock<bool>,
    /// Validation or out-of-memory errors wgpu reports asynchronously; taken by the
    /// next submit so they become `Err`s instead of wgpu's default panic.
    errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.desc)
            .field("f16", &self.f16)
            .field("subgroups", &self.subgroups)
            .field("narrow_matmul", &self.narrow)
            .finish()
    }
}

impl GpuContext {
    /// Open the adapter `opts` selects. Errors (never panics) when no adapter can run
    /// compute shaders or the chosen one is not there.
    pub fn new(opts: &GpuOptions) -> Result<GpuContext, GpuError> {
        let inst = instance();
        let list = compute_adapters(&inst);
        if list.is_empty() {
            return Err(GpuError::NoAdapter(format!(
                "no GPU adapter with compute shaders found (WGPU_BACKEND={}); install a Vulkan \
                 driver (on Debian: mesa-vulkan-drivers libvulkan1) or choose another backend",
                std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "<all>".into())
            )));
        }
        let descs: Vec<AdapterDesc> = list
            .iter()
            .enumerate()
            .map(|(i, a)| describe(i, a))
            .collect();
        let index = match &opts.device {
            Some(sel) => {
                let sel = sel.trim();
                let found = match sel.parse::<usize>() {
                    Ok(i) => (i < list.len()).then_some(i),
                    Err(_) => {
                        let low = sel.to_lowercase();
                        descs
                            .iter()
                            .position(|d| d.name.to_lowercase().contains(&low))
                    }
                };
                found.ok_or_else(|| {
                    GpuError::NoAdapter(format!(
                        "FERRITE_GPU_DEVICE={sel:?} matches no adapter; available: {}",
                        descs
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                })?
            }
            None => (0..list.len())
                .max_by_key(|&i| (rank(list[i].get_info().device_type), std::cmp::Reverse(i)))
                .expect("list is not empty"),
        };
        let adapter = &list[index];
        let have = adapter.features();
        let mut features = wgpu::Features::empty();
        let f16 = !opts.disable_f16 && have.contains(wgpu::Features::SHADER_F16);
        let subgroups = !opts.disable_subgroups && have.contains(wgpu::Features::SUBGROUP);
        if f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        if subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        // Default limits are too small for weights: ask for everything the adapter has.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ferrite"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device(format!("{}: cannot open device: {e}", descs[index])))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let narrow = opts.narrow_matmul.unwrap_or(descs[index].is_cpu);
        Ok(GpuContext {
            narrow,
            dummy,
            fma_fused: std::sync::OnceLock::new(),
            device,
            queue,
            desc: descs[index].clone(),
            limits,
            f16,
            subgroups,
            pipelines: Mutex::default(),
            errors,
        })
    }

    /// [`GpuContext::new`] with [`GpuOptions::from_env`].
    pub fn from_env() -> Result<GpuContext, GpuError> {
        GpuContext::new(&GpuOptions::from_env())
    }

    pub fn adapter(&self) -> &AdapterDesc {
        &self.desc
    }
    /// Whether the shaders use native f16 (else they emulate its rounding in f32).
    pub fn uses_f16(&self) -> bool {
        self.f16
    }
    /// Whether the shaders use subgroup reductions (else shared-memory trees).
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups
    }
    /// Whether matrix workgroups are 8 wide (see [`GpuOptions::narrow_matmul`]).
    pub fn uses_narrow_matmul(&self) -> bool {
        self.narrow
    }
    /// The largest storage binding; bigger tensors are split into windows.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Take the errors wgpu reported since the last call.
    pub(crate) fn take_errors(&self) -> Result<(), GpuError> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| GpuError::Wgpu("error sink poisoned".into()))?;
        if v.is_empty() {
            return Ok(());
        }
        let all = std::mem::take(&mut *v).join("; ");
        Err(GpuError::Wgpu(all))
    }

    /// Whether this adapter's `fma` rounds once (the exact path emulates it where not).
    pub fn fma_fused(&self) -> Result<bool, GpuError> {
        if let Some(&f) = self.fma_fused.get() {
            return Ok(f);
        }
        let f = crate::exact::probe_fma(self)?;
        Ok(*self.fma_fused.get_or_init(|| f))
    }

    /// The pipeline for `key`, compiled on first use.
    pub(crate) fn pipeline(&self, key: PipelineKey) -> Result<Arc<Pipeline>, GpuError> {
        if let Some(p) = self
            .pipelines
            .lock()
            .map_err(|_| GpuError::Wgpu("pipeline cache poisoned".into()))?
            .get(&key)
        {
            return Ok(p.clone());
        }
        // Compiled outside the lock: creation can take a while on software drivers.
        let p = Arc::new(crate::pipelines::build(self, key)?);
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| GpuError::Wgpu("pipeline cache poisoned".into()))?;
        Ok(cache.entry(key).or_insert(p).clone())
    }

    /// Pipelines compiled so far (for tests and diagnostics).
    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.lock().map(|c| c.len()).unwrap_or(0)
    }
}

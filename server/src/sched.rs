//! The model scheduler: which models are resident, who is using them, when they go.
//!
//! Each loaded model has a reference count (requests in flight) and a keep-alive: the idle
//! timer starts only when the last request ends (`0` unloads at once, forever never). At
//! most `max_loaded` models are resident; a new one evicts an idle model first, or waits
//! for one to become idle. Requests waiting for a model or a slot are counted against
//! `max_queue`; past it the server answers 503. A request whose `num_ctx` fits the loaded
//! context uses the loaded model as it is.
//!
//! The loader is injected, so eviction and keep-alive are tested without weights.

use crate::api::time::{far_future, rfc3339_nano, saturating_add};
use crate::api::{ApiError, KeepAlive, ModelDetails, ProcessModel};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// What the scheduler needs to know about a loaded model.
pub trait Loaded: Send + Sync + 'static {
    /// Resident bytes (`/api/ps` `size`).
    fn size(&self) -> u64;
    /// Context per sequence actually loaded.
    fn context_length(&self) -> usize;
    /// The part of `size` in GPU memory (`/api/ps` `size_vram`).
    fn size_vram(&self) -> u64 {
        0
    }
}

impl Loaded for crate::runner::Runner {
    fn size(&self) -> u64 {
        self.info().size
    }
    fn context_length(&self) -> usize {
        self.info().num_ctx
    }
    fn size_vram(&self) -> u64 {
        self.info().size_vram
    }
}

/// Which model to load and how.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// Display name (`/api/ps` `name` and `model`).
    pub name: String,
    pub digest: String,
    pub details: ModelDetails,
    /// The weights; also the identity of a loaded model (names sharing weights share it).
    pub path: PathBuf,
    pub num_ctx: usize,
    pub num_batch: usize,
    pub num_thread: usize,
    /// Ollama's `num_gpu`: layers on the GPU; `-1` = auto.
    pub num_gpu: i64,
}

pub type LoadFn<M> = Arc<dyn Fn(&LoadSpec) -> Result<M, String> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct SchedConfig {
    pub max_loaded: usize,
    pub max_queue: usize,
    pub default_keep_alive: KeepAlive,
    /// Give up waiting for a load after this long (`OLLAMA_LOAD_TIMEOUT`); `None` = never.
    pub load_timeout: Option<Duration>,
}

enum State<M> {
    Loading,
    Ready(Arc<M>),
}

struct Entry<M> {
    id: u64,
    spec: LoadSpec,
    state: State<M>,
    refs: usize,
    keep_alive: KeepAlive,
    /// Set while idle with a finite keep-alive.
    expires: Option<(Instant, SystemTime)>,
    /// Bumped whenever a pending idle timer must not fire.
    timer: u64,
}

struct Inner<M> {
    entries: HashMap<PathBuf, Entry<M>>,
    next_id: u64,
}

pub struct Scheduler<M: Loaded> {
    cfg: SchedConfig,
    loader: LoadFn<M>,
    inner: Mutex<Inner<M>>,
    changed: Notify,
    queued: Arc<AtomicUsize>,
    runtime: OnceLock<Handle>,
    me: Weak<Scheduler<M>>,
}

/// A place in the admission queue, held until the request starts running.
pub struct QueueTicket(Arc<AtomicUsize>);

impl Drop for QueueTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A loaded model in use by one request; dropping it ends the use.
pub struct Lease<M: Loaded> {
    sched: Arc<Scheduler<M>>,
    key: PathBuf,
    id: u64,
    model: Arc<M>,
}

impl<M: Loaded> Lease<M> {
    pub fn model(&self) -> &Arc<M> {
        &self.model
    }
}

impl<M: Loaded> std::ops::Deref for Lease<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: Loaded> Drop for Lease<M> {
    fn drop(&mut self) {
        self.sched.release(&self.key, self.id);
    }
}

impl<M: Loaded> Scheduler<M> {
    pub fn new(cfg: SchedConfig, loader: LoadFn<M>) -> Arc<Scheduler<M>> {
        Arc::new_cyclic(|me| Scheduler {
            cfg: SchedConfig {
                max_loaded: cfg.max_loaded.max(1),
                max_queue: cfg.max_queue.max(1),
                default_keep_alive: cfg.default_keep_alive,
                load_timeout: cfg.load_timeout,
            },
            loader,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                next_id: 1,
            }),
            changed: Notify::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            runtime: OnceLock::new(),
            me: me.clone(),
        })
    }

    pub fn default_keep_alive(&self) -> KeepAlive {
        self.cfg.default_keep_alive
    }

    fn lock(&self) -> MutexGuard<'_, Inner<M>> {
        // A panic while holding the lock leaves consistent data (no multi-step updates).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the admission queue, or 503 when `max_queue` requests already wait.
    pub fn admit(&self) -> Result<QueueTicket, ApiError> {
        let max = self.cfg.max_queue;
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| ApiError::busy())?;
        Ok(QueueTicket(self.queued.clone()))
    }

    /// Requests waiting for a model or a slot.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// A model for `spec`, loading it (and evicting idle models) when needed. `keep_alive`
    /// `None` = the server default; the value sticks to the loaded model.
    pub async fn acquire(
        self: &Arc<Self>,
        spec: &LoadSpec,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease<M>, ApiError> {
        let rt = self.runtime.get_or_init(Handle::current).clone();
        let keep_alive = keep_alive.unwrap_or(self.cfg.default_keep_alive);
        let key = spec.path.clone();
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut evicted: Vec<Arc<M>> = Vec::new();
            let mut load: Option<u64> = None;
            {
                let mut inner = self.lock();
                let fits = match inner.entries.get(&key) {
                    Some(e) => match &e.state {
                        State::Ready(m) => Some(
                            spec.num_ctx <= e.spec.num_ctx.max(m.context_length())
                                // As Ollama: an explicit num_gpu other than the loaded
                                // one reloads; auto takes the model as it is.
                                && (spec.num_gpu < 0 || spec.num_gpu == e.spec.num_gpu),
                        ),
                        State::Loading => None,
                    },
                    None => None,
                };
                match (inner.entries.get_mut(&key), fits) {
                    (Some(e), Some(true)) => {
                        let State::Ready(m) = &e.state else {
                            unreachable!()
                        };
                        let model = m.clone();
                        e.refs += 1;
                        e.keep_alive = keep_alive;
                        e.expires = None;
                        e.timer += 1;
                        return Ok(Lease {
                            sched: self.clone(),
                            key,
                            id: e.id,
                            model,
                        });
                    }
                    (Some(e), Some(false)) => {
                        // A larger context or another placement: reload once idle.
                        if e.refs == 0 {
                            if let Some(old) = inner.entries.remove(&key) {
                                if let State::Ready(m) = old.state {
                                    evicted.push(m);
                                }
                            }
                            self.changed.notify_waiters();
                            continue;
                        }
                    }
                    (Some(_), None) => {} // loading: wait for it
                    (None, _) => {
                        if inner.entries.len() >= self.cfg.max_loaded {
                            if let Some(victim) = idle_victim(&inner.entries) {
                                if let Some(old) = inner.entries.remove(&victim) {
                                    if let State::Ready(m) = old.state {
                                        evicted.push(m);
                                    }
                                }
                                self.changed.notify_waiters();
                                continue;
                            }
                        } else {
                            let id = inner.next_id;
                            inner.next_id += 1;
                            inner.entries.insert(
                                key.clone(),
                                Entry {
                                    id,
                                    spec: spec.clone(),
                                    state: State::Loading,
                                    refs: 0,
                                    keep_alive,
                                    expires: None,
                                    timer: 0,
                                },
                            );
                            load = Some(id);
                        }
                    }
                }
            }
            drop(evicted);
            if let Some(id) = load {
                let loading = self.clone().spawn_load(&rt, key, id, spec.clone());
                let Some(limit) = self.cfg.load_timeout else {
                    return loading.await;
                };
                // On timeout the load goes on in the background; its unclaimed result then
                // expires like any idle model.
                return tokio::time::timeout(limit, loading)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ApiError::internal(format!(
                        "timed out waiting for the model to load (OLLAMA_LOAD_TIMEOUT {limit:?})"
                    )))
                    });
            }
            notified.await;
        }
    }

    /// Loads on a blocking thread. The new model is claimed for the requester at once; if
    /// the requester went away meanwhile, dropping the unclaimed lease starts the idle timer.
    async fn spawn_load(
        self: Arc<Self>,
        rt: &Handle,
        key: PathBuf,
        id: u64,
        spec: LoadSpec,
    ) -> Result<Lease<M>, ApiError> {
        let sched = self.clone();
        let key2 = key.clone();
        let task = rt.spawn_blocking(move || {
            let result = (sched.loader)(&spec);
            let mut inner = sched.lock();
            let out = match result {
                Ok(m) => match inner.entries.get_mut(&key2).filter(|e| e.id == id) {
                    Some(e) => {
                        let model = Arc::new(m);
                        e.state = State::Ready(model.clone());
                        e.refs = 1;
                        Ok(Lease {
                            sched: sched.clone(),
                            key: key2.clone(),
                            id,
                            model,
                        })
                    }
                    None => Err(ApiError::internal("the model was unloaded while loading")),
                },
                Err(msg) => {
                    if inner.entries.get(&key2).is_some_and(|e| e.id == id) {
                        inner.entries.remove(&key2);
                    }
                    Err(ApiError::internal(msg))
                }
            };
            drop(inner);
            sched.changed.notify_waiters();
            out
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                let mut inner = self.lock();
                if inner.entries.get(&key).is_some_and(|e| e.id == id) {
                    inner.entries.remove(&key);
                }
                drop(inner);
                self.changed.notify_waiters();
                Err(ApiError::internal(format!("model load failed: {e}")))
            }
        }
    }

    fn release(&self, key: &Path, id: u64) {
        let mut dropped = None;
        {
            let mut inner = self.lock();
            let Some(e) = inner.entries.get_mut(key).filter(|e| e.id == id) else {
                return;
            };
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                if e.keep_alive.is_zero() {
                    dropped = inner.entries.remove(key);
                } else {
                    self.arm_idle_timer(key, e);
                }
            }
        }
        drop(dropped);
        self.changed.notify_waiters();
    }

    /// Starts the keep-alive countdown of an idle entry.
    fn arm_idle_timer(&self, key: &Path, e: &mut Entry<M>) {
        e.timer += 1;
        e.expires = None;
        let KeepAlive::For(d) = e.keep_alive else {
            return;
        };
        let now = Instant::now();
        e.expires = Some((now + d, saturating_add(SystemTime::now(), d)));
        let (id, gen) = (e.id, e.timer);
        let Some(rt) = self.runtime.get() else { return };
        let Some(me) = self.self_arc() else { return };
        let key = key.to_path_buf();
        rt.spawn(async move {
            tokio::time::sleep(d).await;
            me.expire_if(&key, id, gen);
        });
    }

    fn expire_if(&self, key: &Path, id: u64, gen: u64) {
        let dropped = {
            let mut inner = self.lock();
            let due = inner
                .entries
                .get(key)
                .is_some_and(|e| e.id == id && e.timer == gen && e.refs == 0);
            if due {
                inner.entries.remove(key)
            } else {
                None
            }
        };
        if dropped.is_some() {
            drop(dropped);
            self.changed.notify_waiters();
        }
    }

    /// Unloads the model at `path` now if idle, else as soon as its last request ends
    /// (`keep_alive: 0` on an empty request, `ollama stop`). Returns whether it was loaded.
    pub fn expire(&self, path: &Path) -> bool {
        let mut dropped = None;
        let found = {
            let mut inner = self.lock();
            match inner.entries.get_mut(path) {
                None => false,
                Some(e) => {
                    e.keep_alive = KeepAlive::For(Duration::ZERO);
                    if e.refs == 0 && matches!(e.state, State::Ready(_)) {
                        dropped = inner.entries.remove(path);
                    }
                    true
                }
            }
        };
        drop(dropped);
        self.changed.notify_waiters();
        found
    }

    /// Unloads every idle model (shutdown).
    pub fn unload_idle(&self) {
        let dropped: Vec<Entry<M>> = {
            let mut inner = self.lock();
            let keys: Vec<PathBuf> = inner
                .entries
                .iter()
                .filter(|(_, e)| e.refs == 0 && matches!(e.state, State::Ready(_)))
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter()
                .filter_map(|k| inner.entries.remove(k))
                .collect()
        };
        drop(dropped);
        self.changed.notify_waiters();
    }

    /// Resident models for `/api/ps`, latest expiry first.
    pub fn ps(&self) -> Vec<ProcessModel> {
        let inner = self.lock();
        let now = SystemTime::now();
        let mut rows: Vec<(SystemTime, ProcessModel)> = inner
            .entries
            .values()
            .filter_map(|e| {
                let State::Ready(m) = &e.state else {
                    return None;
                };
                let expires = match (e.keep_alive, e.expires) {
                    (KeepAlive::Forever, _) => far_future(),
                    (_, Some((_, at))) if e.refs == 0 => at,
                    (KeepAlive::For(d), _) => saturating_add(now, d),
                };
                Some((
                    expires,
                    ProcessModel {
                        name: e.spec.name.clone(),
                        model: e.spec.name.clone(),
                        size: m.size(),
                        digest: e.spec.digest.clone(),
                        details: e.spec.details.clone(),
                        expires_at: rfc3339_nano(expires),
                        size_vram: m.size_vram(),
                        context_length: m.context_length() as u64,
                    },
                ))
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        rows.into_iter().map(|(_, p)| p).collect()
    }

    /// In-flight requests per loaded model path (tests, diagnostics).
    pub fn refs(&self, path: &Path) -> Option<usize> {
        self.lock().entries.get(path).map(|e| e.refs)
    }

    fn self_arc(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }
}

/// The idle model to evict: the one due to expire soonest (forever = last).
fn idle_victim<M>(entries: &HashMap<PathBuf, Entry<M>>) -> Option<PathBuf> {
    entries
        .iter()
        .filter(|(_, e)| e.refs == 0 && matches!(e.state, State::Ready(_)))
        .min_by_key(|(_, e)| match e.expires {
            Some((at, _)) => (0, Some(at)),
            None => (1, None),
        })
        .map(|(k, _)| k.clone())
}

//! The scheduler with an injected loader: keep-alive timers, eviction, reloads, admission.

use ferrite_server::api::{KeepAlive, ModelDetails, SERVER_BUSY};
use ferrite_server::sched::{LoadFn, LoadSpec, Loaded, SchedConfig, Scheduler};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Fake {
    ctx: usize,
    dropped: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Loaded for Fake {
    fn size(&self) -> u64 {
        1000
    }
    fn context_length(&self) -> usize {
        self.ctx
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.dropped.lock().unwrap().push(self.name.clone());
    }
}

struct Harness {
    sched: Arc<Scheduler<Fake>>,
    loads: Arc<AtomicUsize>,
    dropped: Arc<Mutex<Vec<String>>>,
}

fn harness(max_loaded: usize, max_queue: usize, default: KeepAlive, delay: Duration) -> Harness {
    let loads = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let (l, d) = (loads.clone(), dropped.clone());
    let loader: LoadFn<Fake> = Arc::new(move |spec: &LoadSpec| {
        std::thread::sleep(delay);
        if spec.name.starts_with("broken") {
            return Err(format!("{}: not a GGUF file", spec.path.display()));
        }
        l.fetch_add(1, Ordering::SeqCst);
        Ok(Fake {
            ctx: spec.num_ctx,
            dropped: d.clone(),
            name: spec.name.clone(),
        })
    });
    Harness {
        sched: Scheduler::new(
            SchedConfig {
                max_loaded,
                max_queue,
                default_keep_alive: default,
                load_timeout: Some(Duration::from_secs(2)),
            },
            loader,
        ),
        loads,
        dropped,
    }
}

fn spec(name: &str, ctx: usize) -> LoadSpec {
    LoadSpec {
        name: name.into(),
        digest: format!("{name}-digest"),
        details: ModelDetails::default(),
        path: PathBuf::from(format!("/models/{name}.gguf")),
        num_ctx: ctx,
        num_batch: 512,
        num_thread: 0,
        num_gpu: -1,
    }
}

fn names(h: &Harness) -> Vec<String> {
    let mut v: Vec<String> = h.sched.ps().into_iter().map(|p| p.name).collect();
    v.sort();
    v
}

const MIN5: KeepAlive = KeepAlive::For(Duration::from_secs(300));

#[tokio::test]
async fn keep_alive_zero_unloads_when_the_last_request_ends() {
    let h = harness(3, 10, MIN5, Duration::ZERO);
    let a = h
        .sched
        .acquire(&spec("a", 2048), Some(KeepAlive::For(Duration::ZERO)))
        .await
        .unwrap();
    let b = h.sched.acquire(&spec("a", 2048), None).await.unwrap();
    assert_eq!(h.loads.load(Ordering::SeqCst), 1, "one load for both");
    assert_eq!(h.sched.refs(&spec("a", 0).path), Some(2));
    // The later request set the default keep-alive again; make it 0 once more.
    drop(b);
    assert_eq!(names(&h), vec!["a"], "still in use");
    let c = h
        .sched
        .acquire(&spec("a", 2048), Some(KeepAlive::For(Duration::ZERO)))
        .await
        .unwrap();
    drop(a);
    assert_eq!(names(&h), vec!["a"], "c still uses it");
    drop(c);
    assert!(names(&h).is_empty());
    assert_eq!(*h.dropped.lock().unwrap(), vec!["a".to_string()]);
}

#[tokio::test]
async fn the_idle_timer_starts_after_the_last_request() {
    // Generous margins: the machine may be busy with other builds.
    let h = harness(3, 10, MIN5, Duration::ZERO);
    let ka = Some(KeepAlive::For(Duration::from_millis(600)));
    let lease = h.sched.acquire(&spec("a", 2048), ka).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(names(&h), vec!["a"], "in use: no expiry");
    drop(lease);
    assert_eq!(names(&h), vec!["a"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(names(&h).is_empty());
    // A new request during the idle period cancels the pending timer.
    let ka = Some(KeepAlive::For(Duration::from_millis(800)));
    let lease = h.sched.acquire(&spec("b", 2048), ka).await.unwrap();
    drop(lease);
    let again = h
        .sched
        .acquire(
            &spec("b", 2048),
            Some(KeepAlive::For(Duration::from_secs(60))),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(again);
    assert_eq!(names(&h), vec!["b"]);
    assert_eq!(h.loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn forever_and_expiry_times() {
    let h = harness(3, 10, KeepAlive::Forever, Duration::ZERO);
    drop(h.sched.acquire(&spec("a", 1024), None).await.unwrap());
    drop(h.sched.acquire(&spec("b", 1024), Some(MIN5)).await.unwrap());
    let ps = h.sched.ps();
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].name, "a", "latest expiry first");
    let year: i64 = ps[0].expires_at[..4].parse().unwrap();
    assert!(year > 2200, "{}", ps[0].expires_at);
    assert_eq!(ps[1].context_length, 1024);
    assert_eq!(ps[1].size_vram, 0);
    assert_eq!(ps[1].digest, "b-digest");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(names(&h), vec!["a", "b"]);
}

#[tokio::test]
async fn eviction_prefers_idle_models_expiring_first() {
    let h = harness(2, 10, MIN5, Duration::ZERO);
    let a = h.sched.acquire(&spec("a", 512), None).await.unwrap();
    drop(
        h.sched
            .acquire(
                &spec("b", 512),
                Some(KeepAlive::For(Duration::from_secs(30))),
            )
            .await
            .unwrap(),
    );
    drop(h.sched.acquire(&spec("c", 512), None).await.unwrap());
    // a is busy, so b (the only idle one) went.
    assert_eq!(names(&h), vec!["a", "c"]);
    drop(a);
    drop(
        h.sched
            .acquire(
                &spec("d", 512),
                Some(KeepAlive::For(Duration::from_secs(10))),
            )
            .await
            .unwrap(),
    );
    // a and c idle with the same keep-alive; c was released first, so it expires first.
    assert_eq!(names(&h), vec!["a", "d"]);
    assert_eq!(
        *h.dropped.lock().unwrap(),
        vec!["b".to_string(), "c".to_string()]
    );
}

#[tokio::test]
async fn a_new_model_waits_while_all_resident_ones_are_busy() {
    let h = harness(1, 10, MIN5, Duration::ZERO);
    let a = h.sched.acquire(&spec("a", 512), None).await.unwrap();
    let sched = h.sched.clone();
    let waiter = tokio::spawn(async move {
        sched
            .acquire(&spec("b", 512), None)
            .await
            .map(|l| l.context_length())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "b must wait for a");
    assert_eq!(names(&h), vec!["a"]);
    drop(a);
    let ctx = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ctx, 512);
    assert_eq!(names(&h), vec!["b"]);
}

#[tokio::test]
async fn num_ctx_within_the_loaded_context_reuses_larger_reloads_when_idle() {
    let h = harness(3, 10, MIN5, Duration::ZERO);
    drop(h.sched.acquire(&spec("a", 4096), None).await.unwrap());
    let small = h.sched.acquire(&spec("a", 1024), None).await.unwrap();
    assert_eq!(small.context_length(), 4096);
    assert_eq!(h.loads.load(Ordering::SeqCst), 1);
    let sched = h.sched.clone();
    let big = tokio::spawn(async move {
        sched
            .acquire(&spec("a", 8192), None)
            .await
            .map(|l| l.context_length())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !big.is_finished(),
        "a reload waits for the model to be idle"
    );
    drop(small);
    let ctx = tokio::time::timeout(Duration::from_secs(5), big)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ctx, 8192);
    assert_eq!(h.loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn another_explicit_num_gpu_reloads_auto_takes_the_loaded_model() {
    let h = harness(3, 10, MIN5, Duration::ZERO);
    let with_gpu = |n: i64| LoadSpec {
        num_gpu: n,
        ..spec("a", 2048)
    };
    drop(h.sched.acquire(&with_gpu(0), None).await.unwrap());
    drop(h.sched.acquire(&with_gpu(0), None).await.unwrap());
    assert_eq!(h.loads.load(Ordering::SeqCst), 1, "same num_gpu: no reload");
    drop(h.sched.acquire(&with_gpu(999), None).await.unwrap());
    assert_eq!(h.loads.load(Ordering::SeqCst), 2, "another num_gpu reloads");
    assert_eq!(
        h.dropped.lock().unwrap().len(),
        1,
        "the old one is unloaded"
    );
    drop(h.sched.acquire(&with_gpu(-1), None).await.unwrap());
    assert_eq!(
        h.loads.load(Ordering::SeqCst),
        2,
        "auto uses what is loaded"
    );
    drop(h.sched.acquire(&with_gpu(12), None).await.unwrap());
    assert_eq!(h.loads.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn concurrent_requests_share_one_load() {
    let h = harness(3, 10, MIN5, Duration::from_millis(200));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let sched = h.sched.clone();
        tasks.push(tokio::spawn(async move {
            sched.acquire(&spec("a", 512), None).await.is_ok()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(h.loads.load(Ordering::SeqCst), 1);
    assert_eq!(h.sched.refs(&spec("a", 0).path), Some(0));
}

#[tokio::test]
async fn load_errors_are_reported_and_not_cached() {
    let h = harness(3, 10, MIN5, Duration::ZERO);
    let err = h
        .sched
        .acquire(&spec("broken", 512), None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.status, 500);
    assert_eq!(err.message, "/models/broken.gguf: not a GGUF file");
    assert!(names(&h).is_empty());
    assert!(h.sched.acquire(&spec("broken", 512), None).await.is_err());
}

#[tokio::test]
async fn a_requester_that_leaves_during_the_load_does_not_pin_the_model() {
    let h = harness(3, 10, MIN5, Duration::from_millis(300));
    let sched = h.sched.clone();
    let t = tokio::spawn(async move {
        let _ = sched
            .acquire(&spec("a", 512), Some(KeepAlive::For(Duration::ZERO)))
            .await;
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.loads.load(Ordering::SeqCst), 1);
    assert!(
        names(&h).is_empty(),
        "keep_alive 0 and nobody using it: unloaded"
    );
}

#[tokio::test]
async fn expire_unloads_now_or_after_the_last_request() {
    let h = harness(3, 10, MIN5, Duration::ZERO);
    drop(h.sched.acquire(&spec("a", 512), None).await.unwrap());
    assert!(h.sched.expire(&spec("a", 0).path));
    assert!(names(&h).is_empty());
    assert!(!h.sched.expire(&spec("a", 0).path));
    let busy = h.sched.acquire(&spec("b", 512), None).await.unwrap();
    assert!(h.sched.expire(&spec("b", 0).path));
    assert_eq!(names(&h), vec!["b"]);
    drop(busy);
    assert!(names(&h).is_empty());
}

#[tokio::test]
async fn a_stalled_load_times_out_and_its_result_is_not_pinned() {
    let h = harness(
        3,
        10,
        KeepAlive::For(Duration::from_millis(100)),
        Duration::from_millis(2500),
    );
    let err = h
        .sched
        .acquire(&spec("slow", 512), None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.status, 500);
    assert!(
        err.message
            .starts_with("timed out waiting for the model to load"),
        "{}",
        err.message
    );
    // The load finishes later; nobody claims it, so it expires.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.loads.load(Ordering::SeqCst), 1);
    assert!(names(&h).is_empty());
}

#[test]
fn the_admission_queue_is_bounded() {
    let h = harness(3, 2, MIN5, Duration::ZERO);
    let t1 = h.sched.admit().unwrap();
    let _t2 = h.sched.admit().unwrap();
    let err = h.sched.admit().err().unwrap();
    assert_eq!((err.status, err.message.as_str()), (503, SERVER_BUSY));
    assert_eq!(h.sched.queued(), 2);
    drop(t1);
    assert!(h.sched.admit().is_ok());
}

//! `ferrite serve` (alias `start`): the Ollama-compatible server on `OLLAMA_HOST`, with
//! the model store at `OLLAMA_MODELS` and every other `OLLAMA_*` setting read by
//! `server::config::Config`. Ctrl-C (SIGINT) or SIGTERM stops it; a second one exits at
//! once.

use std::sync::Arc;
use std::time::Duration;

use server::config::Config;
use server::renderer::TemplateRenderer;
use server::store::Store;
use server::store_catalog::StoreCatalog;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::sync::watch;

/// How long open responses may run on after a shutdown signal. Ollama closes every
/// connection at once; a long generation must not keep the process alive.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts the server and blocks until a signal stops it.
pub fn run() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let store = Store::open(&config.models)
        .map_err(|e| format!("models directory {}: {e}", config.models.display()))?
        .with_noprune(config.noprune);
    startup_prune(&store);

    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot watch signals: {e}"))?;
    let signal_handle = signals.handle();
    let (stop_tx, stop_rx) = watch::channel(false);
    std::thread::Builder::new()
        .name("ferrite-signals".into())
        .spawn(move || {
            for (n, _) in signals.forever().enumerate() {
                if n == 0 {
                    let _ = stop_tx.send(true);
                } else {
                    eprintln!("second interrupt: exiting now");
                    std::process::exit(130);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferrite-http")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let listen = config.host.host_port();
    let catalog = Arc::new(StoreCatalog::new(Arc::new(store)));
    let renderer = Arc::new(TemplateRenderer::new());
    let result = rt.block_on(async move {
        let shutdown = stopped(stop_rx.clone());
        let serve = server::http::serve(config, catalog, renderer, async move {
            shutdown.await;
            eprintln!("shutting down");
        });
        let grace = async move {
            stopped(stop_rx).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = serve => r,
            () = grace => Ok(()),
        }
    });
    signal_handle.close();
    // Blocking tasks (blob uploads, catalog reads) end with their connections.
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|e| format!("listen tcp {listen}: {e}"))
}

/// Completes when the signal thread says stop (never, should it vanish).
async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Ollama's startup prune: unreferenced blobs and stale partial files go (unless
/// `OLLAMA_NOPRUNE`); the counts are logged as Ollama logs them.
fn startup_prune(store: &Store) {
    let blobs = std::fs::read_dir(store.blobs_dir()).map_or(0, |d| d.count());
    eprintln!("total blobs: {blobs}");
    if store.noprune() {
        return;
    }
    match store.prune() {
        Ok(r) if r.skipped_corrupt_manifest => {
            eprintln!("couldn't remove unused layers: a manifest could not be read")
        }
        Ok(r) => eprintln!("total unused blobs removed: {}", r.removed_blobs),
        Err(e) => eprintln!("couldn't remove unused layers: {e}"),
    }
}

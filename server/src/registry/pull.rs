//! Pull: manifest, then each blob downloaded in ranged parts into
//! `blobs/sha256-<hex>-partial` (resumable through `-partial-<N>` part descriptors),
//! verified, and only then renamed to `blobs/sha256-<hex>`.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ureq::http::{Method, StatusCode};

use super::{
    part_size, read_small, status_error, url, Body, Progress, Session, MAX_CONFIG_BYTES,
    MAX_LAYERS, MAX_MANIFEST_BYTES,
};
use crate::api::{ApiError, ProgressResponse};
use crate::store::{fsutil, Digest, Manifest, ModelName, Store, StoreError, MEDIA_TYPE_MANIFEST};

/// Progress lines at most this often per blob.
const PROGRESS_EVERY: Duration = Duration::from_millis(60);
/// Part descriptors are rewritten after this many new bytes.
const DESCRIPTOR_EVERY: u64 = 16 << 20;
/// A part descriptor is a tiny JSON object.
const MAX_DESCRIPTOR_BYTES: u64 = 4096;

pub(super) fn pull(
    s: &Session<'_>,
    store: &Store,
    name: &ModelName,
    progress: Progress<'_>,
) -> Result<(), ApiError> {
    let name = store.existing_name(name).map_err(store_err)?;
    progress(ProgressResponse::status("pulling manifest"));
    let raw = fetch_manifest(s, name.tag())
        .map_err(|e| ApiError::internal(format!("pull model manifest: {}", e.message)))?;
    let manifest = Manifest::from_slice(&raw).map_err(store_err)?;
    let blobs = blob_list(&manifest)?;

    let mut fresh = Vec::new();
    for (d, size) in &blobs {
        s.check_cancel()?;
        if store.blob_exists(d) {
            report(progress, d, *size, *size);
            continue;
        }
        download(s, store, d, *size, progress)?;
        fresh.push((d, *size));
    }

    progress(ProgressResponse::status("verifying sha256 digest"));
    for (d, size) in fresh {
        commit(store, d, size)?;
    }

    s.check_cancel()?;
    progress(ProgressResponse::status("writing manifest"));
    // No delete may collect the new blobs between the check and the manifest write.
    let _gc = store.lock_gc();
    for (d, _) in &blobs {
        if !store.blob_exists(d) {
            return Err(ApiError::internal(format!(
                "blob {d} was removed during the pull; pull again"
            )));
        }
    }
    let old = store.read_manifest(&name).ok();
    store.write_manifest_raw(&name, &raw).map_err(store_err)?;
    if let Some(old) = old {
        let new: HashSet<&Digest> = blobs.iter().map(|(d, _)| d).collect();
        let stale: Vec<Digest> = old
            .manifest
            .blob_digests()
            .map_err(store_err)?
            .into_iter()
            .filter(|d| !new.contains(d))
            .collect();
        if !store.noprune() && !stale.is_empty() {
            progress(ProgressResponse::status("removing unused layers"));
            store
                .remove_unreferenced_locked(&stale)
                .map_err(store_err)?;
        }
    }
    Ok(())
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::new(e.status_code(), e.to_string())
}

fn report(progress: Progress<'_>, d: &Digest, total: u64, completed: u64) {
    progress(ProgressResponse {
        status: format!("pulling {}", d.short()),
        digest: d.to_string(),
        total,
        completed,
    });
}

/// `GET /v2/<repo>/manifests/<tag>`, at most [`MAX_MANIFEST_BYTES`].
fn fetch_manifest(s: &Session<'_>, tag: &str) -> Result<Vec<u8>, ApiError> {
    let url = s.url(&format!("manifests/{tag}"));
    let resp = s.send(
        Method::GET,
        &url,
        &[("Accept", MEDIA_TYPE_MANIFEST)],
        &Body::Empty,
    )?;
    if !resp.status().is_success() {
        return Err(status_error(resp));
    }
    let body = read_small(resp, MAX_MANIFEST_BYTES + 1)?;
    if body.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ApiError::internal(format!(
            "manifest is larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    Ok(body)
}

/// Layers then config, each digest once, with sizes checked for consistency.
fn blob_list(m: &Manifest) -> Result<Vec<(Digest, u64)>, ApiError> {
    // An image index or an empty manifest would be stored as a model with no weights.
    if m.layers.is_empty() {
        return Err(ApiError::internal("manifest has no layers"));
    }
    if m.layers.len() > MAX_LAYERS {
        return Err(ApiError::internal(format!(
            "manifest has {} layers (at most {MAX_LAYERS})",
            m.layers.len()
        )));
    }
    if m.config.size > MAX_CONFIG_BYTES {
        return Err(ApiError::internal(format!(
            "config blob of {} bytes is larger than {MAX_CONFIG_BYTES}",
            m.config.size
        )));
    }
    let config = (!m.config.digest.is_empty()).then_some(&m.config);
    let mut out: Vec<(Digest, u64)> = Vec::new();
    for layer in m.layers.iter().chain(config) {
        let d = layer.digest().map_err(store_err)?;
        match out.iter().find(|(x, _)| *x == d) {
            Some((_, size)) if *size != layer.size => {
                return Err(ApiError::internal(format!(
                    "manifest lists {d} with sizes {size} and {}",
                    layer.size
                )))
            }
            Some(_) => {}
            None => out.push((d, layer.size)),
        }
    }
    Ok(out)
}

/// `{"N":0,"Offset":0,"Size":104857600,"Completed":12345}` (Ollama's blobDownloadPart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PartFile {
    #[serde(rename = "N")]
    n: usize,
    #[serde(rename = "Offset")]
    offset: u64,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Completed")]
    completed: u64,
}

fn partial_path(store: &Store, d: &Digest) -> PathBuf {
    store.blobs_dir().join(format!("{}-partial", d.file_name()))
}

fn descriptor_path(partial: &Path, n: usize) -> PathBuf {
    let mut p = partial.as_os_str().to_owned();
    p.push(format!("-{n}"));
    PathBuf::from(p)
}

/// Reads the part descriptors of an interrupted download; `None` unless they are
/// consistent with each other, the blob size and the partial file.
fn load_parts(partial: &Path, total: u64) -> Option<Vec<PartFile>> {
    let meta = fs::metadata(partial).ok()?;
    if !meta.is_file() || meta.len() != total {
        return None;
    }
    let mut parts: Vec<PartFile> = Vec::new();
    let mut offset = 0u64;
    while offset < total {
        let f = File::open(descriptor_path(partial, parts.len())).ok()?;
        let mut bytes = Vec::new();
        f.take(MAX_DESCRIPTOR_BYTES).read_to_end(&mut bytes).ok()?;
        let p: PartFile = serde_json::from_slice(&bytes).ok()?;
        if p.n != parts.len() || p.offset != offset || p.size == 0 || p.completed > p.size {
            return None;
        }
        offset = offset.checked_add(p.size)?;
        parts.push(p);
    }
    (offset == total).then_some(parts)
}

/// Removes the partial file and its descriptors.
fn remove_partial(partial: &Path) {
    let _ = fs::remove_file(partial);
    remove_descriptors(partial);
}

fn remove_descriptors(partial: &Path) {
    let (Some(dir), Some(base)) = (partial.parent(), partial.file_name()) else {
        return;
    };
    let prefix = format!("{}-", base.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix(&prefix) {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn write_descriptor(partial: &Path, p: &PartFile) -> io::Result<()> {
    let path = descriptor_path(partial, p.n);
    let dir = partial.parent().unwrap_or(Path::new("."));
    let bytes = serde_json::to_vec(p).map_err(io::Error::other)?;
    fsutil::write_atomic(dir, &path, &bytes)
}

/// Downloads one missing blob into its `-partial` file (not yet verified).
fn download(
    s: &Session<'_>,
    store: &Store,
    d: &Digest,
    total: u64,
    progress: Progress<'_>,
) -> Result<(), ApiError> {
    let partial = partial_path(store, d);
    // Another pull of this blob in this process: wait for it, showing its progress.
    let _busy = Busy::acquire_with(store.blob_path(d), || {
        if let Some(parts) = load_parts(&partial, total) {
            report(progress, d, total, parts.iter().map(|p| p.completed).sum());
        }
    });
    if store.blob_exists(d) {
        report(progress, d, total, total);
        return Ok(());
    }
    let blobs = store.blobs_dir();
    fs::create_dir_all(&blobs)
        .map_err(|e| ApiError::internal(format!("mkdir {}: {e}", blobs.display())))?;
    let parts = match load_parts(&partial, total) {
        Some(p) => p,
        None => {
            remove_partial(&partial);
            start_parts(s, d, total, &partial)?
        }
    };
    let done: u64 = parts.iter().map(|p| p.completed).sum();
    report(progress, d, total, done);
    if parts.iter().all(|p| p.completed == p.size) {
        return Ok(());
    }

    // Transient failures of the first request are retried with backoff (Ollama: ~30 s).
    let mut tries = 0u32;
    let source = loop {
        match resolve_source(s, d) {
            Ok(src) => break src,
            Err(e) if super::permanent(&e) || tries + 1 >= s.opts().max_retries => return Err(e),
            Err(_) => {
                std::thread::sleep(s.opts().retry_base * 2u32.saturating_pow(tries));
                tries += 1;
                s.check_cancel()?;
            }
        }
    };
    let completed: Vec<AtomicU64> = parts.iter().map(|p| AtomicU64::new(p.completed)).collect();
    let queue = Mutex::new(
        (0..parts.len())
            .filter(|&i| parts[i].completed < parts[i].size)
            .collect::<VecDeque<usize>>(),
    );
    let workers = queue
        .lock()
        .map(|q| q.len())
        .unwrap_or(1)
        .min(s.opts().max_parallel.max(1));
    let stop = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    let error: Mutex<Option<ApiError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(i) = next else { break };
                    let part = Part {
                        file: parts[i],
                        completed: &completed[i],
                    };
                    if let Err(e) = fetch_part(s, &source, &partial, &part, &stop) {
                        stop.store(true, Ordering::SeqCst);
                        let mut slot = error.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert(e);
                        break;
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        let mut last = done;
        let mut last_at = Instant::now();
        while finished.load(Ordering::SeqCst) < workers {
            std::thread::sleep(Duration::from_millis(10));
            if s.check_cancel().is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            let now: u64 = completed.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            if now != last && last_at.elapsed() >= PROGRESS_EVERY {
                report(progress, d, total, now);
                last = now;
                last_at = Instant::now();
            }
        }
    });
    s.check_cancel()?;
    if let Some(e) = error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    report(progress, d, total, total);
    Ok(())
}

/// A fresh download: the blob's size from `HEAD` must match the manifest; the
/// partial file is pre-sized (sparse) and the part descriptors written.
fn start_parts(
    s: &Session<'_>,
    d: &Digest,
    total: u64,
    partial: &Path,
) -> Result<Vec<PartFile>, ApiError> {
    if total > 0 {
        let url = s.url(&format!("blobs/{d}"));
        let resp = s.send(Method::HEAD, &url, &[], &Body::Empty)?;
        if resp.status().is_success() {
            let len = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if let Some(len) = len {
                if len != total {
                    return Err(ApiError::internal(format!(
                        "blob {d} is {len} bytes on the registry, the manifest says {total}"
                    )));
                }
            }
        } else if !resp.status().is_redirection() {
            return Err(status_error(resp));
        }
    }
    let f = File::create(partial)
        .map_err(|e| ApiError::internal(format!("create {}: {e}", partial.display())))?;
    f.set_len(total)
        .map_err(|e| ApiError::internal(format!("truncate {}: {e}", partial.display())))?;
    let size = part_size(s.opts(), total);
    let mut parts = Vec::new();
    let mut offset = 0;
    while offset < total {
        let p = PartFile {
            n: parts.len(),
            offset,
            size: size.min(total - offset),
            completed: 0,
        };
        write_descriptor(partial, &p)
            .map_err(|e| ApiError::internal(format!("write part descriptor: {e}")))?;
        offset += p.size;
        parts.push(p);
    }
    Ok(parts)
}

/// Where the bytes come from: the registry URL itself (with auth) or a direct URL
/// the registry redirected to on another host (no auth).
struct Source {
    url: String,
    registry: bool,
}

/// Follows same-host redirects of `GET blobs/<digest>` (at most 10); a redirect to
/// another host is the direct URL, a `2xx` means the registry serves ranges itself.
fn resolve_source(s: &Session<'_>, d: &Digest) -> Result<Source, ApiError> {
    let mut url = s.url(&format!("blobs/{d}"));
    for _ in 0..10 {
        let resp = s.send(Method::GET, &url, &[("Range", "bytes=0-0")], &Body::Empty)?;
        if resp.status().is_success() {
            return Ok(Source {
                url,
                registry: true,
            });
        }
        if !resp.status().is_redirection() {
            return Err(status_error(resp));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::internal("http: no Location header in response"))?;
        let next = url::resolve(&url, location).ok_or_else(|| {
            ApiError::internal(format!(
                "bad redirect location {}",
                crate::store::go_quote(location)
            ))
        })?;
        if !url::same_origin(&next, &s.base) {
            return Ok(Source {
                url: next,
                registry: false,
            });
        }
        url = next;
    }
    Err(ApiError::internal("stopped after 10 redirects"))
}

struct Part<'a> {
    file: PartFile,
    completed: &'a AtomicU64,
}

/// Downloads the rest of one part, retrying with exponential backoff.
fn fetch_part(
    s: &Session<'_>,
    source: &Source,
    partial: &Path,
    part: &Part<'_>,
    stop: &AtomicBool,
) -> Result<(), ApiError> {
    let mut tries = 0u32;
    loop {
        let before = part.completed.load(Ordering::SeqCst);
        match fetch_once(s, source, partial, part, stop) {
            Ok(()) => return Ok(()),
            Err(e) if stop.load(Ordering::SeqCst) || super::permanent(&e) => return Err(e),
            Err(e) => {
                // A connection that made progress before dying does not use up a try.
                if part.completed.load(Ordering::SeqCst) == before {
                    tries += 1;
                }
                if tries >= s.opts().max_retries {
                    return Err(e);
                }
                let wait = s.opts().retry_base * 2u32.saturating_pow(tries.saturating_sub(1));
                let until = Instant::now() + wait;
                while Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(20).min(wait));
                }
            }
        }
    }
}

/// One ranged GET for the rest of a part, written at its offset.
fn fetch_once(
    s: &Session<'_>,
    source: &Source,
    partial: &Path,
    part: &Part<'_>,
    stop: &AtomicBool,
) -> Result<(), ApiError> {
    let p = part.file;
    let done = part.completed.load(Ordering::SeqCst);
    if done >= p.size {
        return Ok(());
    }
    let start = p.offset + done;
    let end = p.offset + p.size - 1;
    let range = format!("bytes={start}-{end}");
    let headers = [("Range", range.as_str())];
    let resp = if source.registry {
        s.send(Method::GET, &source.url, &headers, &Body::Empty)?
    } else {
        s.raw(Method::GET, &source.url, &headers, &Body::Empty, None)?
    };
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {
            let cr = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !cr.starts_with(&format!("bytes {start}-")) {
                return Err(ApiError::internal(format!(
                    "registry answered range {range} with content-range {}",
                    crate::store::go_quote(cr)
                )));
            }
        }
        // A server that ignores Range sends the whole blob: usable from offset 0 only.
        StatusCode::OK if start == 0 => {}
        st if st.is_success() => {
            return Err(ApiError::internal(format!(
                "registry ignored range {range} (status {})",
                st.as_u16()
            )))
        }
        _ => return Err(status_error(resp)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .open(partial)
        .map_err(|e| ApiError::internal(format!("open {}: {e}", partial.display())))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| ApiError::internal(format!("seek {}: {e}", partial.display())))?;
    let want = end + 1 - start;
    // Never more than the part asked for, whatever the server sends.
    let mut body = resp.into_body().into_reader().take(want);
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    let mut since_save = 0u64;
    let save = |completed: u64| {
        let _ = write_descriptor(partial, &PartFile { completed, ..p });
    };
    while got < want {
        if stop.load(Ordering::SeqCst) {
            save(part.completed.load(Ordering::SeqCst));
            return Err(ApiError::internal("download cancelled"));
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                save(part.completed.load(Ordering::SeqCst));
                return Err(ApiError::internal(format!("download {}: {e}", source.url)));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| ApiError::internal(format!("write {}: {e}", partial.display())))?;
        got += n as u64;
        since_save += n as u64;
        let now = part.completed.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if since_save >= DESCRIPTOR_EVERY {
            since_save = 0;
            save(now);
        }
    }
    let now = part.completed.load(Ordering::SeqCst);
    save(now);
    if got < want {
        return Err(ApiError::internal(format!(
            "download {}: unexpected EOF after {got} of {want} bytes",
            source.url
        )));
    }
    Ok(())
}

/// Verifies a downloaded blob and moves it into the store; a mismatch deletes it.
fn commit(store: &Store, d: &Digest, total: u64) -> Result<(), ApiError> {
    let _busy = Busy::acquire(store.blob_path(d));
    let partial = partial_path(store, d);
    if store.blob_exists(d) {
        remove_partial(&partial);
        return Ok(());
    }
    let f = File::open(&partial)
        .map_err(|e| ApiError::internal(format!("open {}: {e}", partial.display())))?;
    let (got, len) = Digest::of_reader(f)
        .map_err(|e| ApiError::internal(format!("read {}: {e}", partial.display())))?;
    if &got != d || len != total {
        remove_partial(&partial);
        return Err(ApiError::internal(format!(
            "digest mismatch, file must be downloaded again: want {d}, got {got}"
        )));
    }
    let target = store.blob_path(d);
    fs::rename(&partial, &target)
        .map_err(|e| ApiError::internal(format!("rename {}: {e}", partial.display())))?;
    remove_descriptors(&partial);
    Ok(())
}

/// One download or commit per blob path at a time in this process; later callers
/// wait, then find the blob present (or the partial file to resume).
struct Busy(PathBuf);

static BUSY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static BUSY_DONE: Condvar = Condvar::new();

impl Busy {
    fn acquire(path: PathBuf) -> Busy {
        Busy::acquire_with(path, || {})
    }

    /// Calls `waiting` about every [`PROGRESS_EVERY`] while another holder has `path`.
    fn acquire_with(path: PathBuf, mut waiting: impl FnMut()) -> Busy {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while busy.contains(&path) {
            drop(busy);
            waiting();
            busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
            if busy.contains(&path) {
                busy = BUSY_DONE
                    .wait_timeout(busy, PROGRESS_EVERY)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        busy.push(path.clone());
        Busy(path)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        busy.retain(|p| p != &self.0);
        BUSY_DONE.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_descriptors_must_be_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("sha256-00-partial");
        fs::write(&partial, vec![0u8; 250]).unwrap();
        let parts = [
            PartFile {
                n: 0,
                offset: 0,
                size: 100,
                completed: 100,
            },
            PartFile {
                n: 1,
                offset: 100,
                size: 100,
                completed: 7,
            },
            PartFile {
                n: 2,
                offset: 200,
                size: 50,
                completed: 0,
            },
        ];
        for p in &parts {
            write_descriptor(&partial, p).unwrap();
        }
        assert_eq!(
            fs::read_to_string(descriptor_path(&partial, 1)).unwrap(),
            r#"{"N":1,"Offset":100,"Size":100,"Completed":7}"#
        );
        assert_eq!(load_parts(&partial, 250).unwrap(), parts.to_vec());
        assert_eq!(load_parts(&partial, 251), None);
        write_descriptor(
            &partial,
            &PartFile {
                completed: 101,
                ..parts[1]
            },
        )
        .unwrap();
        assert_eq!(load_parts(&partial, 250), None);
        write_descriptor(
            &partial,
            &PartFile {
                offset: 99,
                ..parts[1]
            },
        )
        .unwrap();
        assert_eq!(load_parts(&partial, 250), None);
        remove_partial(&partial);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn manifests_with_inconsistent_layers_are_refused() {
        let d = format!("sha256:{}", "a".repeat(64));
        let m = |config_size: u64, sizes: &[u64]| {
            let layers: Vec<String> = sizes
                .iter()
                .map(|s| format!(r#"{{"mediaType":"x","digest":"{d}","size":{s}}}"#))
                .collect();
            let json = format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{}","size":{config_size}}},"layers":[{}]}}"#,
                "b".repeat(64),
                layers.join(",")
            );
            Manifest::from_slice(json.as_bytes()).unwrap()
        };
        assert_eq!(blob_list(&m(10, &[5, 5])).unwrap().len(), 2);
        assert!(blob_list(&m(10, &[5, 6])).is_err());
        assert!(blob_list(&m(MAX_CONFIG_BYTES + 1, &[5])).is_err());
    }
}

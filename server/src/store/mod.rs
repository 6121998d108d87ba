//! Ollama's on-disk model store under a root directory (`$OLLAMA_MODELS`):
//!
//! ```text
//! manifests/<host>/<namespace>/<model>/<tag>   JSON manifest
//! blobs/sha256-<64 hex>                          content-addressed files
//! ```
//!
//! Only validated [`ModelName`]s and [`Digest`]s ever become paths, so no name or
//! digest can make the store read or write outside its root. Writes go to a temp
//! file in the target directory, are fsynced and renamed into place; blobs are hashed
//! while streamed and a mismatch leaves no file behind.
//!
//! Use one `Store` per root in a process (share it with `Arc`): its lock keeps a
//! delete's garbage collection from removing blobs a concurrent create is about to
//! reference.

mod digest;
pub(crate) mod fsutil;
pub(crate) mod gojson;
mod manifest;
mod name;
mod resolve;
mod time;

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use digest::Digest;
pub use manifest::*;
pub use name::{ModelName, DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_SCHEME, DEFAULT_TAG};
pub use resolve::ResolvedModel;
pub use time::{rfc3339, serialize as time_serialize};

/// Manifests and config blobs are small; refuse to slurp anything bigger.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Text/JSON layers (template, system, params, messages, license).
const MAX_TEXT_LAYER_BYTES: u64 = 64 << 20;
/// Startup prune leaves blobs younger than this alone (uploads before a create).
const PRUNE_MIN_AGE: Duration = Duration::from_secs(3600);

/// Errors of store operations. [`StoreError::status_code`] gives the HTTP status
/// Ollama answers with; `Display` gives Ollama's message text.
#[derive(Debug)]
pub enum StoreError {
    /// `invalid model name` (400). Holds the name as given.
    InvalidName(String),
    /// `invalid digest format` (400). Holds the digest as given.
    InvalidDigest(String),
    /// `model "X" not found, try pulling it first` (404). Holds the name as given;
    /// handlers with another wording (`model 'X' not found`) format their own.
    NotFound(String),
    /// `blob "X" not found` (404).
    BlobNotFound(String),
    /// `digest mismatch, expected "sha256:…", got "sha256:…"` (400); nothing was kept.
    DigestMismatch { expected: Digest, got: Digest },
    /// A client error with Ollama's text (400), e.g. `neither 'from' or 'files' was specified`.
    BadRequest(String),
    /// Unreadable store content (bad manifest/config JSON, oversized file...) (500).
    Corrupt(String),
    /// A filesystem error (500).
    Io { context: String, source: io::Error },
}

impl StoreError {
    /// The HTTP status Ollama uses for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            StoreError::InvalidName(_)
            | StoreError::InvalidDigest(_)
            | StoreError::DigestMismatch { .. }
            | StoreError::BadRequest(_) => 400,
            StoreError::NotFound(_) | StoreError::BlobNotFound(_) => 404,
            StoreError::Corrupt(_) | StoreError::Io { .. } => 500,
        }
    }

    pub(crate) fn io(context: impl fmt::Display, source: io::Error) -> StoreError {
        StoreError::Io {
            context: context.to_string(),
            source,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidName(_) => f.write_str("invalid model name"),
            StoreError::InvalidDigest(_) => f.write_str("invalid digest format"),
            StoreError::NotFound(name) => {
                write!(
                    f,
                    "model {} not found, try pulling it first",
                    go_quote(name)
                )
            }
            StoreError::BlobNotFound(d) => write!(f, "blob {} not found", go_quote(d)),
            StoreError::DigestMismatch { expected, got } => write!(
                f,
                "digest mismatch, expected {}, got {}",
                go_quote(&expected.to_string()),
                go_quote(&got.to_string())
            ),
            StoreError::BadRequest(m) | StoreError::Corrupt(m) => f.write_str(m),
            StoreError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Go's `%q` for a string: double quotes, `\"`, `\\`, `\n`, `\t`…, `\x..`/`\u....`
/// for other non-printable characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let n = c as u32;
                if n > 0xffff {
                    out.push_str(&format!("\\U{n:08x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A manifest read from disk.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The name with the casing of the existing path.
    pub name: ModelName,
    pub manifest: Manifest,
    /// Lowercase hex SHA-256 of the manifest file bytes (`digest` in `/api/tags`).
    pub digest: String,
    /// The manifest file's mtime (`modified_at`).
    pub modified_at: SystemTime,
}

/// One entry of [`Store::list`] (`/api/tags`).
#[derive(Debug, Clone, Serialize)]
pub struct ListedModel {
    /// Shortest display name (`llama3.2:latest`).
    pub name: String,
    /// Same as `name`.
    pub model: String,
    #[serde(serialize_with = "time::serialize")]
    pub modified_at: SystemTime,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
}

/// What [`Store::put_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPut {
    /// The blob was written (HTTP 201).
    Created,
    /// It already existed; the reader was not consumed (HTTP 200).
    Existed,
}

/// A blob written by [`Store::write_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBlob {
    pub digest: Digest,
    pub size: u64,
    /// False when an identical blob already existed (then it was touched).
    pub created: bool,
}

/// What [`Store::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Unreferenced blobs removed.
    pub removed_blobs: usize,
    /// Files in `blobs/` that were not digests (stale temp or partial files) removed.
    pub removed_other: usize,
    /// True when pruning was skipped because a manifest could not be read.
    pub skipped_corrupt_manifest: bool,
}

/// The model store rooted at `$OLLAMA_MODELS`.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    noprune: bool,
    gc: Mutex<()>,
}

impl Store {
    /// A store at `root` (nothing is touched until an operation needs it).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            noprune: false,
            gc: Mutex::new(()),
        }
    }

    /// Creates `manifests/` and `blobs/` (0755) and renames legacy `sha256:<hex>`
    /// blob names to `sha256-<hex>`, as Ollama does at startup.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store::new(root);
        for dir in [store.manifests_dir(), store.blobs_dir()] {
            fs::create_dir_all(&dir)
                .map_err(|e| StoreError::io(format!("create {}", dir.display()), e))?;
        }
        store.fix_legacy_blob_names()?;
        Ok(store)
    }

    /// `OLLAMA_NOPRUNE`: keep unreferenced blobs at startup prune and after a create
    /// replaced a manifest (deleting a model still removes its unshared blobs).
    pub fn with_noprune(mut self, noprune: bool) -> Store {
        self.noprune = noprune;
        self
    }

    pub fn noprune(&self) -> bool {
        self.noprune
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `blobs/sha256-<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.file_name())
    }

    /// `manifests/<host>/<namespace>/<model>/<tag>` (the name's casing as given).
    pub fn manifest_path(&self, name: &ModelName) -> PathBuf {
        let mut p = self.manifests_dir();
        for part in name.parts() {
            p.push(part);
        }
        p
    }

    pub(crate) fn lock_gc(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing inconsistent.
        self.gc.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- blobs -------------------------------------------------------------

    pub fn blob_exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a blob, `BlobNotFound` if it is missing.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64, StoreError> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(StoreError::BlobNotFound(digest.to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.to_string()))
            }
            Err(e) => Err(StoreError::io(format!("stat blob {digest}"), e)),
        }
    }

    /// `POST /api/blobs/:digest`: stores the reader's bytes under `expected`, hashing
    /// them on the way. A mismatch removes the temp file and fails with
    /// [`StoreError::DigestMismatch`]. An existing blob is left as is (reader untouched).
    pub fn put_blob(&self, expected: &Digest, reader: impl Read) -> Result<BlobPut, StoreError> {
        if self.blob_exists(expected) {
            return Ok(BlobPut::Existed);
        }
        let blobs = self.ensure_dir(&self.blobs_dir())?;
        let (temp, digest, _) = fsutil::write_temp_hashed(&blobs, "sha256-", reader)
            .map_err(|e| StoreError::io("write blob", e))?;
        if &digest != expected {
            // Dropping the temp file removes it.
            drop(temp);
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                got: digest,
            });
        }
        temp.persist(&self.blob_path(expected))
            .map_err(|e| StoreError::io(format!("store blob {expected}"), e))?;
        Ok(BlobPut::Created)
    }

    /// Stores a reader's bytes as a content-addressed blob (Ollama's `NewLayer`). An
    /// identical existing blob is kept and its mtime refreshed (protects it from the
    /// startup prune).
    pub fn write_blob(&self, reader: impl Read) -> Result<WrittenBlob, StoreError> {
        let blobs = self.ensure_dir(&self.blobs_dir())?;
        let (temp, digest, size) = fsutil::write_temp_hashed(&blobs, "sha256-", reader)
            .map_err(|e| StoreError::io("write blob", e))?;
        let path = self.blob_path(&digest);
        if path.is_file() {
            drop(temp);
            self.touch_blob(&digest)?;
            return Ok(WrittenBlob {
                digest,
                size,
                created: false,
            });
        }
        temp.persist(&path)
            .map_err(|e| StoreError::io(format!("store blob {digest}"), e))?;
        Ok(WrittenBlob {
            digest,
            size,
            created: true,
        })
    }

    /// Sets a blob's mtime to now (blobs reused by create).
    pub fn touch_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        let f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| map_blob_err(digest, e))?;
        f.set_modified(SystemTime::now())
            .map_err(|e| StoreError::io(format!("touch blob {digest}"), e))
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File, StoreError> {
        fs::File::open(self.blob_path(digest)).map_err(|e| map_blob_err(digest, e))
    }

    /// Reads a small blob (config, template, params...) into memory, refusing
    /// anything over `limit` bytes.
    pub fn read_blob_limited(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let f = self.open_blob(digest)?;
        read_limited(f, limit).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => {
                StoreError::Corrupt(format!("blob {digest} is larger than {limit} bytes"))
            }
            _ => StoreError::io(format!("read blob {digest}"), e),
        })
    }

    /// Reads a text layer (lossy UTF-8, as Go strings take any bytes).
    pub fn read_text_blob(&self, digest: &Digest) -> Result<String, StoreError> {
        let bytes = self.read_blob_limited(digest, MAX_TEXT_LAYER_BYTES)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Reads and decodes a JSON blob.
    pub fn read_json_blob<T: serde::de::DeserializeOwned>(
        &self,
        digest: &Digest,
    ) -> Result<T, StoreError> {
        let bytes = self.read_blob_limited(digest, MAX_TEXT_LAYER_BYTES)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("blob {digest} is not valid JSON: {e}")))
    }

    /// Reads a manifest's config blob (an empty digest gives the default config).
    pub fn read_config(&self, manifest: &Manifest) -> Result<ModelConfig, StoreError> {
        if manifest.config.digest.is_empty() {
            return Ok(ModelConfig::default());
        }
        let d = manifest.config.digest()?;
        let bytes = self.read_blob_limited(&d, MAX_MANIFEST_BYTES)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("bad model config {d}: {e}")))
    }

    // ---- manifests ----------------------------------------------------------

    /// The name with each part's casing taken from an existing manifest path that
    /// matches it case-insensitively (exact matches win), level by level; parts
    /// below the first level with no match keep the given casing. So `Llama3.2`
    /// finds `llama3.2`, and creating `MyModel` when `mymodel` exists reuses it.
    pub fn existing_name(&self, name: &ModelName) -> Result<ModelName, StoreError> {
        let mut dir = self.manifests_dir();
        let mut parts: [String; 4] = name.parts().map(str::to_string);
        for part in parts.iter_mut() {
            match fsutil::find_fold(&dir, part)
                .map_err(|e| StoreError::io(format!("read {}", dir.display()), e))?
            {
                Some(existing) => {
                    *part = existing;
                    dir.push(&*part);
                }
                None => break,
            }
        }
        Ok(name.with_parts(parts))
    }

    /// Reads the manifest of a name (matched case-insensitively). `NotFound` carries
    /// the name's shortest display form.
    pub fn read_manifest(&self, name: &ModelName) -> Result<StoredManifest, StoreError> {
        let name = self.existing_name(name)?;
        let path = self.manifest_path(&name);
        let bytes = match fs::File::open(&path) {
            Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => {
                read_limited(f, MAX_MANIFEST_BYTES)
                    .map_err(|e| StoreError::io(format!("read manifest {}", path.display()), e))?
            }
            Ok(_) => return Err(StoreError::NotFound(name.display_shortest())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.display_shortest()))
            }
            Err(e) => return Err(StoreError::io(format!("open {}", path.display()), e)),
        };
        let modified_at = fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(|e| StoreError::io(format!("stat {}", path.display()), e))?;
        let manifest = Manifest::from_slice(&bytes).map_err(|e| match e {
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("{name}: {m}")),
            e => e,
        })?;
        Ok(StoredManifest {
            name,
            manifest,
            digest: Digest::of_bytes(&bytes).hex().to_string(),
            modified_at,
        })
    }

    /// Writes a manifest as Ollama's encoder does (see [`Manifest::to_bytes`]).
    pub fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<(), StoreError> {
        manifest.validate()?;
        self.write_manifest_bytes(name, &manifest.to_bytes())
    }

    /// Writes manifest bytes verbatim (pull: the digest in `/api/tags` is the hash of
    /// the bytes as received). The bytes must parse as a manifest with valid digests.
    pub fn write_manifest_raw(&self, name: &ModelName, bytes: &[u8]) -> Result<(), StoreError> {
        Manifest::from_slice(bytes)?;
        self.write_manifest_bytes(name, bytes)
    }

    fn write_manifest_bytes(&self, name: &ModelName, bytes: &[u8]) -> Result<(), StoreError> {
        let name = self.existing_name(name)?;
        let path = self.manifest_path(&name);
        let dir = path.parent().expect("manifest path has a parent");
        self.ensure_dir(dir)?;
        fsutil::write_atomic(dir, &path, bytes)
            .map_err(|e| StoreError::io(format!("write manifest {}", path.display()), e))
    }

    /// Every readable manifest: `manifests/*/*/*/*` files whose four components form
    /// a valid name. Unreadable or corrupt manifests are skipped when `skip_corrupt`,
    /// else the first one fails the call.
    pub fn manifests(&self, skip_corrupt: bool) -> Result<Vec<StoredManifest>, StoreError> {
        let mut out = Vec::new();
        for parts in fsutil::walk_manifests(&self.manifests_dir())
            .map_err(|e| StoreError::io("list manifests", e))?
        {
            let Some(name) = ModelName::from_parts(&parts[0], &parts[1], &parts[2], &parts[3])
            else {
                continue;
            };
            match self.read_manifest_exact(&name) {
                Ok(m) => out.push(m),
                Err(_) if skip_corrupt => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Reads a manifest at exactly this path (no case folding: used while walking).
    fn read_manifest_exact(&self, name: &ModelName) -> Result<StoredManifest, StoreError> {
        let path = self.manifest_path(name);
        let f = fs::File::open(&path)
            .map_err(|e| StoreError::io(format!("open {}", path.display()), e))?;
        let meta = f
            .metadata()
            .map_err(|e| StoreError::io(format!("stat {}", path.display()), e))?;
        let bytes = read_limited(f, MAX_MANIFEST_BYTES)
            .map_err(|e| StoreError::io(format!("read {}", path.display()), e))?;
        let manifest = Manifest::from_slice(&bytes)?;
        Ok(StoredManifest {
            name: name.clone(),
            manifest,
            digest: Digest::of_bytes(&bytes).hex().to_string(),
            modified_at: meta
                .modified()
                .map_err(|e| StoreError::io(format!("stat {}", path.display()), e))?,
        })
    }

    /// `/api/tags`: every model, newest first. Models whose manifest or config
    /// cannot be read are left out (Ollama logs and skips them).
    pub fn list(&self) -> Result<Vec<ListedModel>, StoreError> {
        let mut models: Vec<ListedModel> = self
            .manifests(true)?
            .into_iter()
            .filter_map(|m| {
                let config = self.read_config(&m.manifest).ok()?;
                let short = m.name.display_shortest();
                Some(ListedModel {
                    model: short.clone(),
                    name: short,
                    modified_at: m.modified_at,
                    size: m.manifest.total_size(),
                    digest: m.digest,
                    details: ModelDetails::from_config(&config, ""),
                })
            })
            .collect();
        models.sort_by(|a, b| {
            b.modified_at
                .cmp(&a.modified_at)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(models)
    }

    /// `/api/copy`: copies the manifest file byte for byte (blobs are shared). Copying
    /// a model onto itself is a no-op.
    pub fn copy(&self, source: &ModelName, destination: &ModelName) -> Result<(), StoreError> {
        let src = self.existing_name(source)?;
        let dst = self.existing_name(destination)?;
        let src_path = self.manifest_path(&src);
        let bytes = match fs::File::open(&src_path) {
            Ok(f) => read_limited(f, MAX_MANIFEST_BYTES)
                .map_err(|e| StoreError::io(format!("read {}", src_path.display()), e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(source.display_shortest()))
            }
            Err(e) => return Err(StoreError::io(format!("open {}", src_path.display()), e)),
        };
        if src.parts() == dst.parts() {
            return Ok(());
        }
        self.write_manifest_bytes(&dst, &bytes)
    }

    /// `/api/delete`: removes the manifest, prunes empty manifest directories, then
    /// deletes the model's blobs that no other manifest references.
    pub fn delete(&self, name: &ModelName) -> Result<(), StoreError> {
        let _gc = self.lock_gc();
        let stored = self.read_manifest(name)?;
        let path = self.manifest_path(&stored.name);
        fs::remove_file(&path)
            .map_err(|e| StoreError::io(format!("remove {}", path.display()), e))?;
        fsutil::prune_empty_dirs(&self.manifests_dir())
            .map_err(|e| StoreError::io("prune manifest directories", e))?;
        // Digests were validated when the manifest was read.
        let candidates = stored.manifest.blob_digests()?;
        self.remove_unreferenced_locked(&candidates)?;
        Ok(())
    }

    /// Removes those of `candidates` that no manifest references (corrupt manifests
    /// are ignored). Returns how many blobs were removed.
    pub fn remove_unreferenced(&self, candidates: &[Digest]) -> Result<usize, StoreError> {
        let _gc = self.lock_gc();
        self.remove_unreferenced_locked(candidates)
    }

    pub(crate) fn remove_unreferenced_locked(
        &self,
        candidates: &[Digest],
    ) -> Result<usize, StoreError> {
        if candidates.is_empty() {
            return Ok(0);
        }
        let referenced = self.referenced_digests(true)?;
        let mut removed = 0;
        for d in candidates {
            if referenced.contains(d) {
                continue;
            }
            match fs::remove_file(self.blob_path(d)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(format!("remove blob {d}"), e)),
            }
        }
        Ok(removed)
    }

    fn referenced_digests(&self, skip_corrupt: bool) -> Result<HashSet<Digest>, StoreError> {
        let mut set = HashSet::new();
        for m in self.manifests(skip_corrupt)? {
            // Manifests were validated on read, so every digest parses.
            set.extend(m.manifest.blob_digests()?);
        }
        Ok(set)
    }

    /// Startup prune (skipped with `noprune`, and entirely when any manifest is
    /// unreadable): among files in `blobs/` older than an hour, removes names that
    /// are not digests (stale temp/partial files) and blobs no manifest references;
    /// then removes empty manifest directories.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        if self.noprune {
            return Ok(report);
        }
        let _gc = self.lock_gc();
        let referenced = match self.referenced_digests(false) {
            Ok(r) => r,
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                HashSet::new()
            }
            Err(_) => {
                report.skipped_corrupt_manifest = true;
                return Ok(report);
            }
        };
        let blobs = self.blobs_dir();
        let entries = match fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(StoreError::io(format!("read {}", blobs.display()), e)),
        };
        let now = SystemTime::now();
        for entry in entries {
            let entry =
                entry.map_err(|e| StoreError::io(format!("read {}", blobs.display()), e))?;
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let young = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_none_or(|age| age < PRUNE_MIN_AGE);
            if young {
                continue;
            }
            let file_name = entry.file_name();
            let digest = file_name.to_str().and_then(|n| {
                n.starts_with("sha256-")
                    .then(|| Digest::parse(n).ok())
                    .flatten()
                    .filter(|d| d.file_name() == n)
            });
            let remove = match &digest {
                Some(d) => !referenced.contains(d),
                None => true,
            };
            if remove && fs::remove_file(entry.path()).is_ok() {
                if digest.is_some() {
                    report.removed_blobs += 1;
                } else {
                    report.removed_other += 1;
                }
            }
        }
        fsutil::prune_empty_dirs(&self.manifests_dir())
            .map_err(|e| StoreError::io("prune manifest directories", e))?;
        Ok(report)
    }

    fn fix_legacy_blob_names(&self) -> Result<(), StoreError> {
        let blobs = self.blobs_dir();
        let entries = fs::read_dir(&blobs)
            .map_err(|e| StoreError::io(format!("read {}", blobs.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with("sha256:") {
                continue;
            }
            if let Ok(d) = Digest::parse(name) {
                let target = self.blob_path(&d);
                if !target.exists() {
                    fs::rename(entry.path(), &target)
                        .map_err(|e| StoreError::io(format!("rename {name}"), e))?;
                }
            }
        }
        Ok(())
    }

    fn ensure_dir(&self, dir: &Path) -> Result<PathBuf, StoreError> {
        fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("create {}", dir.display()), e))?;
        Ok(dir.to_path_buf())
    }
}

fn map_blob_err(digest: &Digest, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::BlobNotFound(digest.to_string())
    } else {
        StoreError::io(format!("open blob {digest}"), e)
    }
}

/// Reads at most `limit` bytes; more is an `InvalidData` error.
fn read_limited(f: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

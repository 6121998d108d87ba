//! Filesystem helpers: temp files that clean up after themselves, atomic
//! replace-by-rename, and the manifest tree walk.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use super::Digest;

/// A temp file removed on drop unless persisted.
pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates `dir/<prefix><random digits>` exclusively.
    pub(crate) fn new(dir: &Path, prefix: &str) -> io::Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        for _ in 0..16 {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            h.write_u32(std::process::id());
            let path = dir.join(format!("{prefix}{}", h.finish()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not pick a unique temp file name",
        ))
    }

    pub(crate) fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("temp file is open until persisted")
    }

    /// fsyncs, renames over `target` and fsyncs the directory.
    pub(crate) fn persist(mut self, target: &Path) -> io::Result<()> {
        let file = self.file.take().expect("temp file is open until persisted");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.path, target)?;
        self.path = PathBuf::new();
        if let Some(dir) = target.parent() {
            sync_dir(dir);
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Best effort: some filesystems cannot fsync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Streams `reader` into a new temp file in `dir`, hashing on the way.
pub(crate) fn write_temp_hashed(
    dir: &Path,
    prefix: &str,
    mut reader: impl Read,
) -> io::Result<(TempFile, Digest, u64)> {
    let mut temp = TempFile::new(dir, prefix)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..k]);
        temp.file().write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((temp, Digest::from_hasher(hasher), n))
}

/// Replaces `target` (in `dir`) with `bytes` atomically.
pub(crate) fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    // A leading dot: never a valid name part, so a leftover is never read as a manifest.
    let mut temp = TempFile::new(dir, ".tmp-")?;
    temp.file().write_all(bytes)?;
    temp.persist(target)
}

/// The entry of `dir` equal to `part` if it exists, else the first (sorted) entry
/// equal to it ignoring ASCII case.
pub(crate) fn find_fold(dir: &Path, part: &str) -> io::Result<Option<String>> {
    if dir.join(part).exists() {
        return Ok(Some(part.to_string()));
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut matches: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.eq_ignore_ascii_case(part))
        .collect();
    matches.sort();
    Ok(matches.into_iter().next())
}

/// Path components of every regular file exactly four levels below `root`
/// (`<host>/<namespace>/<model>/<tag>`), sorted. Non-UTF-8 names are skipped;
/// symlinked directories are not followed.
pub(crate) fn walk_manifests(root: &Path) -> io::Result<Vec<[String; 4]>> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, parts)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(ty) = entry.file_type() else { continue };
            let mut p = parts.clone();
            p.push(name);
            if p.len() == 4 {
                // Follow a symlinked manifest file only if it is a file.
                let is_file = ty.is_file()
                    || (ty.is_symlink() && entry.path().metadata().is_ok_and(|m| m.is_file()));
                if is_file {
                    let [a, b, c, d]: [String; 4] = p.try_into().expect("four parts");
                    out.push([a, b, c, d]);
                }
            } else if ty.is_dir() {
                stack.push((entry.path(), p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Removes empty directories below `root` (not `root` itself); symlinks untouched.
pub(crate) fn prune_empty_dirs(root: &Path) -> io::Result<()> {
    fn prune(dir: &Path) -> io::Result<bool> {
        let mut empty = true;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                if !prune(&entry.path())? {
                    empty = false;
                    continue;
                }
                match fs::remove_dir(entry.path()) {
                    Ok(()) => {}
                    // Something was written meanwhile: keep it.
                    Err(_) => empty = false,
                }
            } else {
                empty = false;
            }
        }
        Ok(empty)
    }
    match prune(root) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

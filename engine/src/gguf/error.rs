use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of problem a [`GgufError`] reports, for callers that react differently
/// (e.g. "unsupported model" vs "corrupt file" vs "missing hyper-parameter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufErrorKind {
    /// The file could not be opened, inspected or mapped.
    Io,
    /// The bytes are not a well-formed GGUF file (truncated, inconsistent, out of bounds...).
    Malformed,
    /// Well-formed as far as we can tell, but uses something ferrite does not support
    /// (a GGUF version, a tensor type).
    Unsupported,
    /// A typed getter asked for a metadata key the file does not have.
    MissingKey,
    /// A typed getter found the key, but its value has another type or does not fit.
    WrongType,
}

/// A GGUF loading or lookup error: what is wrong and where (key or tensor name, byte offset).
#[derive(Debug)]
pub struct GgufError {
    kind: GgufErrorKind,
    message: String,
    offset: Option<u64>,
    path: Option<PathBuf>,
    source: Option<std::io::Error>,
}

impl GgufError {
    pub(crate) fn new(kind: GgufErrorKind, message: impl Into<String>) -> GgufError {
        GgufError {
            kind,
            message: message.into(),
            offset: None,
            path: None,
            source: None,
        }
    }

    pub(crate) fn malformed(offset: u64, message: impl Into<String>) -> GgufError {
        GgufError::new(GgufErrorKind::Malformed, message).at(offset)
    }

    pub(crate) fn unsupported(offset: u64, message: impl Into<String>) -> GgufError {
        GgufError::new(GgufErrorKind::Unsupported, message).at(offset)
    }

    pub(crate) fn io(path: &Path, what: &str, err: std::io::Error) -> GgufError {
        GgufError {
            kind: GgufErrorKind::Io,
            message: format!("{what}: {err}"),
            offset: None,
            path: Some(path.to_path_buf()),
            source: Some(err),
        }
    }

    pub(crate) fn at(mut self, offset: u64) -> GgufError {
        self.offset = Some(offset);
        self
    }

    pub(crate) fn with_path(mut self, path: &Path) -> GgufError {
        self.path = Some(path.to_path_buf());
        self
    }

    pub fn kind(&self) -> GgufErrorKind {
        self.kind
    }

    /// The problem, without the path and offset.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte offset in the file where the problem was found, when it has one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The file, for errors from [`GgufFile::open`](super::GgufFile::open).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str("GGUF: ")?;
        f.write_str(&self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at byte offset {offset})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GgufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

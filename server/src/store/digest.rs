//! Blob digests: `sha256:<64 hex>`, validated before any use as a path.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::StoreError;

/// A validated SHA-256 digest (lowercase hex). Only this type ever becomes a blob
/// path, so a digest from a client or a registry manifest can never name anything
/// but `blobs/sha256-<64 hex>` (CVE-2024-37032 was a manifest digest of `../..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Accepts exactly `^sha256[:-][0-9a-fA-F]{64}$` (the `-` form is the file name);
    /// anything else is [`StoreError::InvalidDigest`] (`invalid digest format`).
    pub fn parse(s: &str) -> Result<Digest, StoreError> {
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("sha256-"))
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| StoreError::InvalidDigest(s.to_string()))?;
        Ok(Digest {
            hex: hex.to_ascii_lowercase(),
        })
    }

    /// The digest of some bytes.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Hashes a reader to its end; returns the digest and the byte count.
    pub fn of_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        Ok((Digest::from_hasher(hasher), n))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        let sum = hasher.finalize();
        let mut hex = String::with_capacity(64);
        for b in sum {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        Digest { hex }
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The blob file name, `sha256-<hex>`.
    pub fn file_name(&self) -> String {
        format!("sha256-{}", self.hex)
    }

    /// The first 12 hex digits (CLI ids, pull progress `pulling <short>`).
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

/// `sha256:<hex>`.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn accepts_both_separators_and_lowercases() {
        let a = Digest::parse(&format!("sha256:{EMPTY}")).unwrap();
        let b = Digest::parse(&format!("sha256-{}", EMPTY.to_uppercase())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(a.file_name(), format!("sha256-{EMPTY}"));
        assert_eq!(a.short(), "e3b0c44298fc");
        assert_eq!(Digest::of_bytes(b""), a);
        assert_eq!(Digest::of_reader(&b""[..]).unwrap(), (a, 0));
    }

    #[test]
    fn rejects_everything_else() {
        let bad = [
            String::new(),
            "sha256:".into(),
            EMPTY.into(),
            format!("sha256:{}", &EMPTY[..63]),
            format!("sha256:{EMPTY}0"),
            format!("sha512:{EMPTY}"),
            format!("SHA256:{EMPTY}"),
            format!("sha256_{EMPTY}"),
            format!(" sha256:{EMPTY}"),
            format!("sha256:{EMPTY}\n"),
            format!("sha256:{}g", &EMPTY[..63]),
            "sha256:../../../../etc/passwd".into(),
            format!("sha256:../{}", &EMPTY[..61]),
            format!("sha256:{}/..", &EMPTY[..61]),
            format!("sha256:{}é", &EMPTY[..62]),
        ];
        for s in bad {
            assert!(
                matches!(Digest::parse(&s), Err(StoreError::InvalidDigest(_))),
                "{s:?}"
            );
        }
    }
}

//! Ollama's registry auth: a `401` carries `WWW-Authenticate: Bearer realm=…,service=…,
//! scope=…`; the client signs `GET,<token URL>,<base64(hex(sha256("")))>` with its
//! Ed25519 key (`~/.ollama/id_ed25519`, OpenSSH format), fetches `{"token": …}` from the
//! realm with `Authorization: <pubkey base64>:<signature base64>`, and retries with
//! `Authorization: Bearer <token>`.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use ureq::http;

use super::{read_small, url, Body, Session, MAX_SMALL_BODY};
use crate::api::ApiError;
use crate::store::go_quote;

/// Hex SHA-256 of the empty body, as signed in every token request.
const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub service: String,
    pub scope: String,
}

impl Challenge {
    /// Parses `key="value"` pairs (quoted values may hold commas, e.g. `pull,push`).
    pub(crate) fn parse(header: &str) -> Challenge {
        let s = header.trim();
        let s = s
            .strip_prefix("Bearer ")
            .or_else(|| s.strip_prefix("bearer "))
            .unwrap_or(s);
        let mut c = Challenge::default();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            while i < b.len() && (b[i] == b',' || b[i] == b' ') {
                i += 1;
            }
            let key_start = i;
            while i < b.len() && b[i] != b'=' && b[i] != b',' {
                i += 1;
            }
            let key = s[key_start..i].trim().to_ascii_lowercase();
            if i >= b.len() || b[i] != b'=' {
                continue;
            }
            i += 1;
            let mut value = String::new();
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let start = i;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = i.min(b.len());
                value = s[start..end].replace("\\\"", "\"").replace("\\\\", "\\");
                i = end + 1;
            } else {
                let start = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                value.push_str(s[start..i].trim());
            }
            match key.as_str() {
                "realm" => c.realm = value,
                "service" => c.service = value,
                "scope" => c.scope = value,
                _ => {}
            }
        }
        c
    }

    /// The realm with `service`, one `scope` per space-separated scope, `ts` and a
    /// random `nonce` added (Go's `Values.Encode` order).
    fn token_url(&self, ts: u64, nonce: &str) -> String {
        let ts = ts.to_string();
        let mut pairs: Vec<(&str, &str)> = vec![("service", self.service.as_str())];
        pairs.extend(self.scope.split(' ').map(|s| ("scope", s)));
        pairs.push(("ts", &ts));
        pairs.push(("nonce", nonce));
        url::with_query(&self.realm, &pairs)
    }
}

/// Answers a challenge: returns the bearer token.
pub(crate) fn token(session: &Session<'_>, header: &str) -> Result<String, ApiError> {
    let challenge = Challenge::parse(header);
    let realm_host = url::authority(&challenge.realm).ok_or_else(|| {
        ApiError::internal(format!(
            "parse {}: invalid authentication realm",
            go_quote(&challenge.realm)
        ))
    })?;
    if !realm_host.eq_ignore_ascii_case(&session.host) {
        return Err(ApiError::internal(format!(
            "realm host {} does not match original host {}",
            go_quote(&realm_host),
            go_quote(&session.host)
        )));
    }
    let rng = SystemRandom::new();
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce)
        .map_err(|_| ApiError::internal("no random bytes for the auth nonce"))?;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let token_url = challenge.token_url(ts, &URL_SAFE_NO_PAD.encode(nonce));
    let data = format!("GET,{token_url},{}", STANDARD.encode(EMPTY_SHA256_HEX));
    let key_path = session
        .opts()
        .key_path
        .as_deref()
        .ok_or_else(|| ApiError::internal("no signing key: $HOME is not set"))?;
    let key = SigningKey::load(key_path).map_err(|e| ApiError::internal(e.to_string()))?;
    let authorization = key.authorization(data.as_bytes());
    let resp = session.raw(
        http::Method::GET,
        &token_url,
        &[("Authorization", &authorization)],
        &Body::Empty,
        None,
    )?;
    let code = resp.status().as_u16();
    let body = read_small(resp, MAX_SMALL_BODY)?;
    if code >= 400 {
        return Err(ApiError::internal(if body.is_empty() {
            code.to_string()
        } else {
            format!("{code}: {}", String::from_utf8_lossy(&body).trim_end())
        }));
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: String,
    }
    let t: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| ApiError::internal(format!("token response: {e}")))?;
    if t.token.is_empty()
        || t.token
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
    {
        return Err(ApiError::internal("token response: unusable token"));
    }
    Ok(t.token)
}

/// Why a signing key could not be loaded.
#[derive(Debug)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// An unencrypted OpenSSH Ed25519 private key (what `ollama serve` generates).
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key_base64())
    }
}

impl SigningKey {
    /// Reads and parses a key file (at most 64 KiB).
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        use std::io::Read;
        let f = std::fs::File::open(path)
            .map_err(|e| KeyError(format!("open {}: {}", path.display(), os_text(&e))))?;
        let mut text = String::new();
        f.take(64 << 10)
            .read_to_string(&mut text)
            .map_err(|e| KeyError(format!("read {}: {e}", path.display())))?;
        SigningKey::from_openssh(&text)
    }

    /// Parses `-----BEGIN OPENSSH PRIVATE KEY-----` text.
    pub fn from_openssh(text: &str) -> Result<SigningKey, KeyError> {
        let bad = |m: &str| KeyError(format!("ssh: {m}"));
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN OPENSSH PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END OPENSSH PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(bad("no key found"));
        }
        let raw = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| bad("invalid openssh private key format"))?;
        let mut r = Wire(&raw);
        if r.take(15) != Some(b"openssh-key-v1\0".as_slice()) {
            return Err(bad("invalid openssh private key format"));
        }
        let cipher = r.string().ok_or_else(|| bad("malformed key"))?;
        let _kdf = r.string().ok_or_else(|| bad("malformed key"))?;
        let _kdf_opts = r.string().ok_or_else(|| bad("malformed key"))?;
        if cipher != b"none" {
            return Err(bad("this private key is passphrase protected"));
        }
        if r.u32() != Some(1) {
            return Err(bad("multi-key files are not supported"));
        }
        let _public = r.string().ok_or_else(|| bad("malformed key"))?;
        let mut p = Wire(r.string().ok_or_else(|| bad("malformed key"))?);
        let (c1, c2) = (p.u32(), p.u32());
        if c1.is_none() || c1 != c2 {
            return Err(bad("malformed OpenSSH key"));
        }
        if p.string() != Some(b"ssh-ed25519".as_slice()) {
            return Err(bad("only ssh-ed25519 keys are supported"));
        }
        let pk = p.string().filter(|k| k.len() == 32);
        let sk = p.string().filter(|k| k.len() == 64);
        let (Some(pk), Some(sk)) = (pk, sk) else {
            return Err(bad("malformed ed25519 key"));
        };
        let pair = Ed25519KeyPair::from_seed_and_public_key(&sk[..32], pk)
            .map_err(|_| bad("ed25519 key does not match its public key"))?;
        Ok(SigningKey { pair })
    }

    /// The second field of the `ssh-ed25519 AAAA…` authorized-key line.
    pub fn public_key_base64(&self) -> String {
        let pk = self.pair.public_key().as_ref();
        let mut wire = Vec::with_capacity(51);
        put_string(&mut wire, b"ssh-ed25519");
        put_string(&mut wire, pk);
        STANDARD.encode(wire)
    }

    /// `<pubkey base64>:<base64 signature>` over `data`.
    pub fn authorization(&self, data: &[u8]) -> String {
        let sig = self.pair.sign(data);
        format!(
            "{}:{}",
            self.public_key_base64(),
            STANDARD.encode(sig.as_ref())
        )
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// SSH wire-format reader (bounds-checked).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

/// Go's text for common open errors (`no such file or directory`).
fn os_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519 -N '' -C test` output.
    pub(crate) const TEST_KEY: &str = include_str!("testdata/id_ed25519");
    const TEST_PUB: &str = include_str!("testdata/id_ed25519.pub");

    #[test]
    fn parses_openssh_keys_and_signs() {
        let key = SigningKey::from_openssh(TEST_KEY).unwrap();
        let expected = TEST_PUB.split(' ').nth(1).unwrap();
        assert_eq!(key.public_key_base64(), expected);
        let auth = key.authorization(b"GET,x,y");
        let (pubkey, sig) = auth.split_once(':').unwrap();
        assert_eq!(pubkey, expected);
        let wire = STANDARD.decode(pubkey).unwrap();
        let raw_pk = &wire[wire.len() - 32..];
        let sig = STANDARD.decode(sig).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw_pk)
            .verify(b"GET,x,y", &sig)
            .unwrap();
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(SigningKey::from_openssh("").is_err());
        assert!(SigningKey::from_openssh(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
        )
        .is_err());
        // Truncated body: every length is bounds-checked.
        let lines: Vec<&str> = TEST_KEY.lines().collect();
        let short = format!(
            "{}\n{}\n{}",
            lines[0],
            &lines[1][..40],
            lines.last().unwrap()
        );
        assert!(SigningKey::from_openssh(&short).is_err());
        let e = SigningKey::load(Path::new("/nonexistent/id_ed25519")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "open /nonexistent/id_ed25519: no such file or directory"
        );
    }

    #[test]
    fn challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://ollama.com/token",service="ollama.com",scope="repository:library/llama3.2:pull,push""#,
        );
        assert_eq!(c.realm, "https://ollama.com/token");
        assert_eq!(c.service, "ollama.com");
        assert_eq!(c.scope, "repository:library/llama3.2:pull,push");
        assert_eq!(
            c.token_url(7, "n"),
            "https://ollama.com/token?nonce=n&scope=repository%3Alibrary%2Fllama3.2%3Apull%2Cpush&service=ollama.com&ts=7"
        );
        assert_eq!(Challenge::parse("garbage"), Challenge::default());
        assert_eq!(
            Challenge::parse(r#"Bearer realm="unterminated"#).realm,
            "unterminated"
        );
    }
}

//! The little URL handling the protocol needs: origins, `Location` resolution and Go's
//! `url.Values.Encode` (keys sorted, values query-escaped).

/// `scheme://authority` of an absolute URL (lowercased scheme and host), if it has one.
pub(crate) fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Userinfo would let `https://registry@evil/` pass a naive prefix check.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// The authority (`host[:port]`) of an absolute URL.
pub(crate) fn authority(url: &str) -> Option<String> {
    origin(url).and_then(|o| o.split_once("://").map(|(_, a)| a.to_string()))
}

/// Whether `url` is on the same scheme and host as `base` (`scheme://host`).
pub(crate) fn same_origin(url: &str, base: &str) -> bool {
    match (origin(url), origin(base)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Resolves a `Location` header against the URL of the request that returned it.
pub(crate) fn resolve(request_url: &str, location: &str) -> Option<String> {
    if origin(location).is_some() {
        return Some(location.to_string());
    }
    if location.contains("://") {
        return None;
    }
    let base = origin(request_url)?;
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split_once("://")?.0;
        let url = format!("{scheme}://{rest}");
        return origin(&url).map(|_| url);
    }
    if location.starts_with('/') {
        return Some(format!("{base}{location}"));
    }
    // Relative path: replace the last segment of the request path.
    let path_start = base.len();
    let path = request_url.get(path_start..).unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    Some(format!("{base}{dir}{location}"))
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape` (lenient: bad escapes are kept as written).
fn query_unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Adds `pairs` to the query of `url` and re-encodes the whole query the way Go's
/// `url.Values.Encode` does (sorted by key, stable within a key).
pub(crate) fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (url, None),
    };
    let (path, query) = head.split_once('?').unwrap_or((head, ""));
    let mut values: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (query_unescape(k), query_unescape(v))
        })
        .collect();
    values.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    values.sort_by(|a, b| a.0.cmp(&b.0));
    let q: Vec<String> = values
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    let mut out = format!("{path}?{}", q.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://Registry.Ollama.ai/v2/x").as_deref(),
            Some("https://registry.ollama.ai")
        );
        assert_eq!(origin("http://h:5000?x").as_deref(), Some("http://h:5000"));
        assert_eq!(origin("https://a@evil/x"), None);
        assert_eq!(origin("/v2/x"), None);
        assert!(same_origin("http://h:5000/v2", "http://h:5000"));
        assert!(!same_origin("http://h:5001/v2", "http://h:5000"));
        assert!(!same_origin("https://h:5000/v2", "http://h:5000"));
        assert_eq!(authority("http://h:5000/x").as_deref(), Some("h:5000"));
    }

    #[test]
    fn locations() {
        let req = "http://h:1/v2/ns/m/blobs/uploads/";
        assert_eq!(resolve(req, "/up/1?x=1").unwrap(), "http://h:1/up/1?x=1");
        assert_eq!(
            resolve(req, "abc").unwrap(),
            "http://h:1/v2/ns/m/blobs/uploads/abc"
        );
        assert_eq!(resolve(req, "https://cdn/x").unwrap(), "https://cdn/x");
        assert_eq!(resolve(req, "//cdn/x").unwrap(), "http://cdn/x");
        assert_eq!(resolve(req, "javascript://"), None);
    }

    #[test]
    fn queries_encode_like_go() {
        assert_eq!(
            with_query(
                "https://r/token",
                &[
                    ("service", "ollama.com"),
                    ("scope", "repository:a/b:pull"),
                    ("ts", "1")
                ]
            ),
            "https://r/token?scope=repository%3Aa%2Fb%3Apull&service=ollama.com&ts=1"
        );
        assert_eq!(
            with_query(
                "http://h/u/1?_state=a%2Bb",
                &[("digest", "sha256:00"), ("etag", "x-1")]
            ),
            "http://h/u/1?_state=a%2Bb&digest=sha256%3A00&etag=x-1"
        );
        assert_eq!(query_escape("a b+c"), "a+b%2Bc");
        assert_eq!(query_unescape("a+b%2Bc%zz"), "a b+c%zz");
    }
}

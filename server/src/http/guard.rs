//! CORS (`OLLAMA_ORIGINS`) and the Host-header guard against DNS rebinding, in Ollama's
//! order: CORS first (a preflight from an allowed origin is answered here), then the guard.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Request headers browsers may send (api.md §0).
pub const ALLOWED_HEADERS: &[&str] = &[
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
];

const ALLOWED_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS";
/// gin-contrib/cors' default preflight cache: 12 hours.
const MAX_AGE: &str = "43200";

/// Allowed origins: exact ones, and patterns with one `*` (prefix and suffix around it).
#[derive(Debug, Clone)]
pub struct Origins {
    any: bool,
    exact: Vec<String>,
    wildcard: Vec<(String, String)>,
}

impl Origins {
    pub fn new(list: &[String]) -> Origins {
        let mut o = Origins {
            any: false,
            exact: Vec::new(),
            wildcard: Vec::new(),
        };
        for item in list {
            let item = item.trim().to_lowercase();
            if item == "*" {
                o.any = true;
            } else if let Some((pre, suf)) = item.split_once('*') {
                o.wildcard.push((pre.to_string(), suf.to_string()));
            } else if !item.is_empty() {
                o.exact.push(item);
            }
        }
        o
    }

    pub fn allows(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        let origin = origin.to_lowercase();
        self.exact.contains(&origin)
            || self.wildcard.iter().any(|(pre, suf)| {
                origin.len() >= pre.len() + suf.len()
                    && origin.starts_with(pre.as_str())
                    && origin.ends_with(suf.as_str())
            })
    }
}

/// What the guard needs to know about the server.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    pub origins: Origins,
    /// The address the server is bound to: the host check applies only on loopback.
    pub bound: SocketAddr,
    pub hostname: Option<String>,
}

/// This machine's host name, lowercased.
pub fn local_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().map(|s| s.to_lowercase()))
}

/// Whether `ip` is assigned to a local interface: binding to it succeeds only then.
fn is_local_ip(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        // fc00::/7, unique local addresses (Go's IsPrivate).
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Ollama's `allowedHost`: names that cannot be a rebinding attacker's domain.
fn allowed_host_name(host: &str, hostname: Option<&str>) -> bool {
    let host = host.to_lowercase();
    if host.is_empty() || host == "localhost" {
        return true;
    }
    if hostname.is_some_and(|h| h == host) {
        return true;
    }
    ["localhost", "local", "internal"]
        .iter()
        .any(|tld| host.ends_with(&format!(".{tld}")))
}

/// The host part of a `Host` header (port and IPv6 brackets removed).
fn host_part(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => h,
    }
}

enum HostVerdict {
    Allow,
    /// An allowed name asking `OPTIONS`: answered 204 here.
    Preflight,
    Deny,
}

fn check_host(cfg: &GuardConfig, host_header: &str, method: &Method) -> HostVerdict {
    if !cfg.bound.ip().is_loopback() {
        return HostVerdict::Allow;
    }
    let host = host_part(host_header);
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_loopback() || is_private(ip) || ip.is_unspecified() || is_local_ip(ip) {
            return HostVerdict::Allow;
        }
    }
    if allowed_host_name(host, cfg.hostname.as_deref()) {
        if method == Method::OPTIONS {
            return HostVerdict::Preflight;
        }
        return HostVerdict::Allow;
    }
    HostVerdict::Deny
}

fn status_only(code: StatusCode) -> Response {
    (code, Body::empty()).into_response()
}

pub async fn guard(
    State(cfg): State<std::sync::Arc<GuardConfig>>,
    req: Request,
    next: Next,
) -> Response {
    // Owned copies: a borrow of the (non-Sync) request must not live across the await.
    let (host, origin, method) = {
        let h = req.headers();
        let get = |name: header::HeaderName| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            get(header::HOST).unwrap_or_default(),
            get(header::ORIGIN),
            req.method().clone(),
        )
    };
    let mut allow_origin: Option<String> = None;

    if let Some(origin) = origin.filter(|o| !o.is_empty()) {
        let same_origin = origin == format!("http://{host}") || origin == format!("https://{host}");
        if !same_origin {
            if !cfg.origins.allows(&origin) {
                return status_only(StatusCode::FORBIDDEN);
            }
            let value = if cfg.origins.any {
                "*".to_string()
            } else {
                origin
            };
            if method == Method::OPTIONS {
                let mut resp = status_only(StatusCode::NO_CONTENT);
                let h = resp.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                }
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
                if let Ok(v) = HeaderValue::from_str(&ALLOWED_HEADERS.join(",")) {
                    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
                }
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
                for v in [
                    "Origin",
                    "Access-Control-Request-Method",
                    "Access-Control-Request-Headers",
                ] {
                    h.append(header::VARY, HeaderValue::from_static(v));
                }
                return resp;
            }
            allow_origin = Some(value);
        }
    }

    match check_host(&cfg, &host, &method) {
        HostVerdict::Deny => return status_only(StatusCode::FORBIDDEN),
        HostVerdict::Preflight => return status_only(StatusCode::NO_CONTENT),
        HostVerdict::Allow => {}
    }

    let mut resp = next.run(req).await;
    if let Some(value) = allow_origin {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(extra: &[&str]) -> Origins {
        let cfg = crate::config::Config::from_lookup(|k| match k {
            "HOME" => Some("/h".into()),
            "OLLAMA_ORIGINS" => Some(extra.join(",")),
            _ => None,
        })
        .unwrap();
        Origins::new(&cfg.origins)
    }

    #[test]
    fn default_origins() {
        let o = origins(&[]);
        for ok in [
            "http://localhost",
            "https://localhost:3000",
            "http://127.0.0.1:8080",
            "http://0.0.0.0",
            "app://anything",
            "vscode-webview://abc",
            "tauri://localhost",
        ] {
            assert!(o.allows(ok), "{ok}");
        }
        for bad in [
            "http://evil.com",
            "http://localhost.evil.com",
            "chrome-extension://abc",
        ] {
            assert!(!o.allows(bad), "{bad}");
        }
    }

    #[test]
    fn user_origins_and_wildcards() {
        let o = origins(&["https://*.example.com", "chrome-extension://abc"]);
        assert!(o.allows("https://app.example.com"));
        assert!(!o.allows("http://app.example.com"));
        assert!(o.allows("chrome-extension://abc"));
        assert!(origins(&["*"]).allows("http://anything"));
    }

    #[test]
    fn hosts() {
        let cfg = GuardConfig {
            origins: origins(&[]),
            bound: "127.0.0.1:11434".parse().unwrap(),
            hostname: Some("myhost".into()),
        };
        let get = Method::GET;
        let allow = |h: &str| matches!(check_host(&cfg, h, &get), HostVerdict::Allow);
        for ok in [
            "",
            "localhost",
            "localhost:11434",
            "127.0.0.1:11434",
            "[::1]:11434",
            "10.0.0.5",
            "192.168.1.2:80",
            "0.0.0.0",
            "myhost",
            "MyHost:11434",
            "foo.localhost",
            "printer.local",
            "svc.internal:8080",
        ] {
            assert!(allow(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:11434",
            "localhost.evil.com",
            "8.8.8.8",
        ] {
            assert!(!allow(bad), "{bad}");
        }
        assert!(matches!(
            check_host(&cfg, "localhost", &Method::OPTIONS),
            HostVerdict::Preflight
        ));
        let open = GuardConfig {
            bound: "0.0.0.0:11434".parse().unwrap(),
            ..cfg
        };
        assert!(matches!(
            check_host(&open, "evil.com", &get),
            HostVerdict::Allow
        ));
    }
}

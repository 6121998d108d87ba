//! `OLLAMA_*` environment variables as the client reads them (Ollama's `envconfig`):
//! values are trimmed of spaces and quotes, booleans parse like Go's
//! `strconv.ParseBool` with any other non-empty value counting as true.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// The value of `key`, trimmed of surrounding spaces and then quotes.
pub fn var(key: &str) -> String {
    std::env::var(key).map(|v| clean(&v)).unwrap_or_default()
}

fn clean(v: &str) -> String {
    v.trim().trim_matches(['"', '\'']).to_string()
}

/// A boolean variable: unset or empty is false; `strconv.ParseBool` values as
/// they say; anything else is true (Ollama's rule).
pub fn bool_var(key: &str) -> bool {
    parse_bool_loose(&var(key))
}

pub fn parse_bool_loose(v: &str) -> bool {
    !matches!(v, "" | "0" | "f" | "F" | "FALSE" | "false" | "False")
}

/// Where `OLLAMA_HOST` points: scheme, host, port and an optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub scheme: String,
    /// A name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Base path without leading or trailing slash (`""` for none).
    pub path: String,
}

impl Host {
    /// Parses an `OLLAMA_HOST` value with Ollama's rules: `host`, `host:port`,
    /// `:port`, `scheme://host[:port][/path]`; port 11434 without a scheme, 80
    /// with `http://`, 443 with `https://`; `ollama.com` alone is
    /// `https://ollama.com:443`; an unparsable port falls back to the default.
    pub fn parse(value: &str) -> Host {
        let s = clean(value);
        let mut default_port = 11434u16;
        let (scheme, hostport) = match s.split_once("://") {
            None if s == "ollama.com" => ("https".to_string(), "ollama.com:443".to_string()),
            None => ("http".to_string(), s.clone()),
            Some((scheme, rest)) => {
                match scheme {
                    "http" => default_port = 80,
                    "https" => default_port = 443,
                    _ => {}
                }
                (scheme.to_string(), rest.to_string())
            }
        };
        let (hostport, path) = match hostport.split_once('/') {
            Some((hp, p)) => (hp.to_string(), p.trim_matches('/').to_string()),
            None => (hostport, String::new()),
        };
        let (host, port) = match split_host_port(&hostport) {
            Some((h, p)) => {
                let port = p
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= 65535)
                    .map(|n| n as u16)
                    .unwrap_or(default_port);
                (h, port)
            }
            None => {
                let bare = hostport.trim_start_matches('[').trim_end_matches(']');
                let host = if let Ok(ip) = bare.parse::<IpAddr>() {
                    ip.to_string()
                } else if !hostport.is_empty() {
                    hostport.clone()
                } else {
                    "127.0.0.1".to_string()
                };
                (host, default_port)
            }
        };
        Host {
            scheme,
            host,
            port,
            path,
        }
    }

    /// `OLLAMA_HOST` from the environment.
    pub fn from_env() -> Host {
        Host::parse(&var("OLLAMA_HOST"))
    }

    /// The address clients dial: an unspecified bind address (`0.0.0.0`, `::`, empty)
    /// becomes loopback.
    pub fn connectable(&self) -> Host {
        let mut h = self.clone();
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if ip.is_unspecified() => h.host = Ipv4Addr::LOCALHOST.to_string(),
            Ok(IpAddr::V6(ip)) if ip.is_unspecified() => h.host = Ipv6Addr::LOCALHOST.to_string(),
            _ if self.host.is_empty() => h.host = Ipv4Addr::LOCALHOST.to_string(),
            _ => {}
        }
        h
    }

    /// `host:port` with brackets around IPv6 (what a listener binds to).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `scheme://host:port[/path]`, no trailing slash.
    pub fn base_url(&self) -> String {
        let mut s = format!("{}://{}", self.scheme, self.host_port());
        if !self.path.is_empty() {
            s.push('/');
            s.push_str(&self.path);
        }
        s
    }
}

/// Go's `net.SplitHostPort`: `host:port`, `[v6]:port`, `:port`. `None` when there
/// is no port (or too many colons without brackets).
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        if port.contains(':') {
            return None;
        }
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

/// `~/.ollama`, where the history file lives.
pub fn ollama_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ollama"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> String {
        Host::parse(s).connectable().base_url()
    }

    #[test]
    fn host_forms() {
        assert_eq!(url(""), "http://127.0.0.1:11434");
        assert_eq!(url("1.2.3.4"), "http://1.2.3.4:11434");
        assert_eq!(url(":1234"), "http://127.0.0.1:1234");
        assert_eq!(url("example.com"), "http://example.com:11434");
        assert_eq!(url("example.com:56789"), "http://example.com:56789");
        assert_eq!(url("http://example.com"), "http://example.com:80");
        assert_eq!(url("https://example.com"), "https://example.com:443");
        assert_eq!(
            url("https://example.com:8443/ollama/"),
            "https://example.com:8443/ollama"
        );
        assert_eq!(url("[::1]:11434"), "http://[::1]:11434");
        assert_eq!(url("::1"), "http://[::1]:11434");
        assert_eq!(url("[::1]"), "http://[::1]:11434");
        assert_eq!(url("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080");
        assert_eq!(url("ollama.com"), "https://ollama.com:443");
        assert_eq!(url("  \"127.0.0.1:9\"  "), "http://127.0.0.1:9");
        // A bad port falls back to the default.
        assert_eq!(url("localhost:99999"), "http://localhost:11434");
        assert_eq!(url("localhost:abc"), "http://localhost:11434");
    }

    #[test]
    fn bind_address_keeps_unspecified() {
        assert_eq!(Host::parse("0.0.0.0").host_port(), "0.0.0.0:11434");
    }

    #[test]
    fn loose_bools() {
        for t in ["1", "true", "T", "yes", "on", "whatever"] {
            assert!(parse_bool_loose(t), "{t}");
        }
        for f in ["", "0", "false", "F", "FALSE", "False", "f"] {
            assert!(!parse_bool_loose(f), "{f}");
        }
    }
}

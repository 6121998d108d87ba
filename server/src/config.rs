//! Every `OLLAMA_*` environment variable (cli.md), read and validated in one place.
//!
//! Values are trimmed of surrounding spaces and quotes, as Ollama does. Booleans parse like
//! Go's `strconv.ParseBool`; a non-empty value that does not parse counts as true (Ollama's
//! rule). Numbers, durations and the host that do not parse are errors naming the variable,
//! where Ollama would silently fall back to a default.

use crate::api::KeepAlive;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// A bad value of one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `OLLAMA_HOST` split into its parts. `host` may be empty (`:port` form: all interfaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HostSpec {
    /// Ollama's `envconfig.Host()` rules.
    pub fn parse(value: &str) -> Result<HostSpec, String> {
        let s = value.trim();
        let mut default_port = 11434u16;
        let (scheme, hostport) = match s.split_once("://") {
            None if s == "ollama.com" => ("https".to_string(), "ollama.com:443".to_string()),
            None => ("http".to_string(), s.to_string()),
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
            Some((hp, p)) => (hp.to_string(), p.to_string()),
            None => (hostport, String::new()),
        };
        let (host, port) = match split_host_port(&hostport) {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("invalid port {p:?} in {value:?} (expected 0-65535)"))?;
                (h, port)
            }
            None => {
                let bare = hostport.trim_start_matches('[').trim_end_matches(']');
                let host = if let Ok(ip) = bare.parse::<IpAddr>() {
                    ip.to_string()
                } else if hostport.is_empty() {
                    "127.0.0.1".to_string()
                } else {
                    hostport.clone()
                };
                (host, default_port)
            }
        };
        if host.contains(['[', ']', ' ']) {
            return Err(format!("invalid host {host:?} in {value:?}"));
        }
        Ok(HostSpec {
            scheme,
            host,
            port,
            path,
        })
    }

    /// `host:port` as Go's `net.JoinHostPort` writes it (IPv6 in brackets).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The address `serve` listens on; an empty host means all interfaces.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        if self.host.is_empty() {
            return Ok(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                self.port,
            ));
        }
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host_port()))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.host_port()))
    }

    /// The base URL clients use: an unspecified or empty host becomes loopback.
    pub fn client_url(&self) -> String {
        let host = match self.host.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            _ if self.host.is_empty() => "127.0.0.1".to_string(),
            _ => self.host.clone(),
        };
        let hp = HostSpec {
            host,
            ..self.clone()
        }
        .host_port();
        if self.path.is_empty() {
            format!("{}://{hp}", self.scheme)
        } else {
            format!("{}://{hp}/{}", self.scheme, self.path)
        }
    }
}

/// Go's `net.SplitHostPort`: `None` when there is no port.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let p = after.strip_prefix(':')?;
        return Some((h.to_string(), p.to_string()));
    }
    let (h, p) = s.rsplit_once(':')?;
    if h.contains(':') {
        return None; // a bare IPv6 address
    }
    Some((h.to_string(), p.to_string()))
}

/// The server configuration from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub host: HostSpec,
    pub models: PathBuf,
    pub keep_alive: KeepAlive,
    /// Resolved: `0` (auto) becomes 3, as for CPU-only machines.
    pub max_loaded_models: usize,
    pub num_parallel: usize,
    pub max_queue: usize,
    /// Resolved default `num_ctx`: `0` (auto) becomes 4096 (no GPU memory to size by).
    pub context_length: usize,
    /// Allowed CORS origins: `OLLAMA_ORIGINS` followed by the built-in ones.
    pub origins: Vec<String>,
    /// 0 = INFO, 1 = DEBUG, 2 = TRACE (`OLLAMA_DEBUG`).
    pub debug_level: i64,
    /// `None` = auto. Accepted for compatibility: the CPU engine has one attention path.
    pub flash_attention: Option<bool>,
    /// Accepted for compatibility; the engine keeps its KV cache in f16.
    pub kv_cache_type: String,
    pub noprune: bool,
    pub nohistory: bool,
    /// `None` = no limit (a value ≤ 0).
    pub load_timeout: Option<Duration>,
    /// Accepted for compatibility: there is one GPU device.
    pub sched_spread: bool,
    /// GPU memory to leave free in the automatic `num_gpu` placement.
    pub gpu_overhead: u64,
    pub llm_library: String,
    pub max_transfer_streams: usize,
    pub no_cloud: bool,
    pub remotes: Vec<String>,
    pub auth: bool,
    pub editor: String,
    pub go_template: bool,
    pub debug_log_requests: bool,
    pub experiment: Vec<String>,
}

/// Every variable `serve` reads, with its default and meaning (for `serve --help`).
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "OLLAMA_HOST",
        "127.0.0.1:11434",
        "IP address and port of the server",
    ),
    (
        "OLLAMA_MODELS",
        "~/.ollama/models",
        "path to the models directory",
    ),
    (
        "OLLAMA_KEEP_ALIVE",
        "5m",
        "how long models stay loaded after the last request (negative = forever)",
    ),
    (
        "OLLAMA_MAX_LOADED_MODELS",
        "0 (auto: 3)",
        "maximum number of loaded models",
    ),
    ("OLLAMA_NUM_PARALLEL", "1", "parallel requests per model"),
    (
        "OLLAMA_MAX_QUEUE",
        "512",
        "queued requests before the server answers 503",
    ),
    (
        "OLLAMA_CONTEXT_LENGTH",
        "0 (auto: 4096)",
        "default context length",
    ),
    (
        "OLLAMA_ORIGINS",
        "",
        "extra comma-separated allowed CORS origins",
    ),
    (
        "OLLAMA_DEBUG",
        "false",
        "debug logging (1 = debug, 2 = trace)",
    ),
    (
        "OLLAMA_FLASH_ATTENTION",
        "auto",
        "accepted; no effect on the CPU engine",
    ),
    (
        "OLLAMA_KV_CACHE_TYPE",
        "f16",
        "accepted; the KV cache is f16",
    ),
    ("OLLAMA_NOPRUNE", "false", "do not prune unreferenced blobs"),
    (
        "OLLAMA_NOHISTORY",
        "false",
        "no readline history in the CLI",
    ),
    (
        "OLLAMA_LOAD_TIMEOUT",
        "5m",
        "give up on a stalled model load (<= 0: never)",
    ),
    (
        "OLLAMA_SCHED_SPREAD",
        "false",
        "accepted; no effect without GPUs",
    ),
    (
        "OLLAMA_GPU_OVERHEAD",
        "0",
        "bytes of GPU memory to leave free when num_gpu is automatic",
    ),
    ("OLLAMA_LLM_LIBRARY", "", "accepted; there is one backend"),
    (
        "OLLAMA_MAX_TRANSFER_STREAMS",
        "4",
        "parallel transfer streams",
    ),
    ("OLLAMA_NO_CLOUD", "false", "disable cloud features"),
    (
        "OLLAMA_REMOTES",
        "ollama.com",
        "hosts allowed for remote models",
    ),
    ("OLLAMA_AUTH", "false", "the client signs requests"),
    ("OLLAMA_EDITOR", "", "editor for Ctrl+G in the CLI"),
    (
        "OLLAMA_GO_TEMPLATE",
        "true",
        "prefer the Go TEMPLATE over the GGUF Jinja template",
    ),
    ("OLLAMA_DEBUG_LOG_REQUESTS", "false", "log request bodies"),
    ("OLLAMA_EXPERIMENT", "", "comma-separated experiments"),
];

/// The CORS origins always allowed (after the user's).
fn default_origins() -> Vec<String> {
    let mut out = Vec::new();
    for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
        out.push(format!("http://{host}"));
        out.push(format!("https://{host}"));
        out.push(format!("http://{host}:*"));
        out.push(format!("https://{host}:*"));
    }
    for o in [
        "app://*",
        "file://*",
        "tauri://*",
        "vscode-webview://*",
        "vscode-file://*",
    ] {
        out.push(o.to_string());
    }
    out
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

struct Env<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Trimmed of spaces and quotes; empty = unset.
    fn var(&self, key: &str) -> String {
        let v = (self.0)(key).unwrap_or_default();
        v.trim().trim_matches(['"', '\'']).to_string()
    }

    fn bool_or(&self, key: &str, default: bool) -> bool {
        let s = self.var(key);
        if s.is_empty() {
            return default;
        }
        parse_go_bool(&s).unwrap_or(true)
    }

    fn uint(&self, key: &'static str, default: u64) -> Result<u64, ConfigError> {
        let s = self.var(key);
        if s.is_empty() {
            return Ok(default);
        }
        s.parse::<u64>().map_err(|_| ConfigError {
            var: key,
            message: format!("{s:?} is not a non-negative integer"),
        })
    }

    fn list(&self, key: &str) -> Vec<String> {
        let s = self.var(key);
        if s.is_empty() {
            return Vec::new();
        }
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads every variable through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env(lookup);
        let host = HostSpec::parse(&env.var("OLLAMA_HOST")).map_err(|message| ConfigError {
            var: "OLLAMA_HOST",
            message,
        })?;

        let models = match env.var("OLLAMA_MODELS") {
            s if !s.is_empty() => PathBuf::from(s),
            _ => {
                let home = (env.0)("HOME")
                    .filter(|h| !h.is_empty())
                    .ok_or(ConfigError {
                        var: "OLLAMA_MODELS",
                        message: "not set and HOME is unknown".into(),
                    })?;
                PathBuf::from(home).join(".ollama").join("models")
            }
        };

        let keep_alive = match env.var("OLLAMA_KEEP_ALIVE") {
            s if s.is_empty() => KeepAlive::DEFAULT,
            s => KeepAlive::from_env(&s).map_err(|message| ConfigError {
                var: "OLLAMA_KEEP_ALIVE",
                message,
            })?,
        };

        let load_timeout = match env.var("OLLAMA_LOAD_TIMEOUT") {
            s if s.is_empty() => Some(Duration::from_secs(300)),
            s => match KeepAlive::from_env(&s).map_err(|message| ConfigError {
                var: "OLLAMA_LOAD_TIMEOUT",
                message,
            })? {
                KeepAlive::For(d) if !d.is_zero() => Some(d),
                _ => None,
            },
        };

        let max_loaded_models = match env.uint("OLLAMA_MAX_LOADED_MODELS", 0)? {
            0 => 3,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let num_parallel = match env.uint("OLLAMA_NUM_PARALLEL", 1)? {
            0 => 1,
            n if n > 256 => {
                return Err(ConfigError {
                    var: "OLLAMA_NUM_PARALLEL",
                    message: format!("{n} is more than 256 parallel sequences"),
                })
            }
            n => n as usize,
        };
        let max_queue = match env.uint("OLLAMA_MAX_QUEUE", 512)? {
            0 => {
                return Err(ConfigError {
                    var: "OLLAMA_MAX_QUEUE",
                    message: "must be at least 1".into(),
                })
            }
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let context_length = match env.uint("OLLAMA_CONTEXT_LENGTH", 0)? {
            0 => 4096,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };

        let mut origins = env.list("OLLAMA_ORIGINS");
        for o in &origins {
            if o.matches('*').count() > 1 {
                return Err(ConfigError {
                    var: "OLLAMA_ORIGINS",
                    message: format!("{o:?}: only one '*' is allowed in an origin"),
                });
            }
        }
        origins.extend(default_origins());

        let debug_level = {
            let s = env.var("OLLAMA_DEBUG");
            match parse_go_bool(&s) {
                Some(true) => 1,
                Some(false) => 0,
                None => s.parse::<i64>().unwrap_or(0).max(0),
            }
        };

        let flash_attention = match env.var("OLLAMA_FLASH_ATTENTION") {
            s if s.is_empty() || s.eq_ignore_ascii_case("auto") => None,
            s => Some(parse_go_bool(&s).unwrap_or(true)),
        };

        let kv_cache_type = env.var("OLLAMA_KV_CACHE_TYPE").to_lowercase();
        if !["", "f16", "q8_0", "q4_0"].contains(&kv_cache_type.as_str()) {
            return Err(ConfigError {
                var: "OLLAMA_KV_CACHE_TYPE",
                message: format!("{kv_cache_type:?} is not one of f16, q8_0, q4_0"),
            });
        }

        let remotes = match env.list("OLLAMA_REMOTES") {
            l if l.is_empty() => vec!["ollama.com".to_string()],
            l => l,
        };

        Ok(Config {
            host,
            models,
            keep_alive,
            max_loaded_models,
            num_parallel,
            max_queue,
            context_length,
            origins,
            debug_level,
            flash_attention,
            kv_cache_type: if kv_cache_type.is_empty() {
                "f16".into()
            } else {
                kv_cache_type
            },
            noprune: env.bool_or("OLLAMA_NOPRUNE", false),
            nohistory: env.bool_or("OLLAMA_NOHISTORY", false),
            load_timeout,
            sched_spread: env.bool_or("OLLAMA_SCHED_SPREAD", false),
            gpu_overhead: env.uint("OLLAMA_GPU_OVERHEAD", 0)?,
            llm_library: env.var("OLLAMA_LLM_LIBRARY"),
            max_transfer_streams: env.uint("OLLAMA_MAX_TRANSFER_STREAMS", 4)?.max(1) as usize,
            no_cloud: env.bool_or("OLLAMA_NO_CLOUD", false),
            remotes,
            auth: env.bool_or("OLLAMA_AUTH", false),
            editor: env.var("OLLAMA_EDITOR"),
            go_template: env.bool_or("OLLAMA_GO_TEMPLATE", true),
            debug_log_requests: env.bool_or("OLLAMA_DEBUG_LOG_REQUESTS", false),
            experiment: env.list("OLLAMA_EXPERIMENT"),
        })
    }

    /// Defaults, as with an empty environment (`models` under `home`).
    pub fn defaults(home: &str) -> Config {
        let home = home.to_string();
        Config::from_lookup(move |k| (k == "HOME").then(|| home.clone()))
            .expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("HOME".to_string(), "/home/u".to_string())])
            .collect();
        Config::from_lookup(move |k| m.get(k).cloned())
    }

    fn host(s: &str) -> (String, String, u16, String) {
        let h = HostSpec::parse(s).unwrap();
        (h.scheme, h.host, h.port, h.path)
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.host.host_port(), "127.0.0.1:11434");
        assert_eq!(c.host.client_url(), "http://127.0.0.1:11434");
        assert_eq!(c.models, PathBuf::from("/home/u/.ollama/models"));
        assert_eq!(c.keep_alive, KeepAlive::For(Duration::from_secs(300)));
        assert_eq!(c.max_loaded_models, 3);
        assert_eq!(c.num_parallel, 1);
        assert_eq!(c.max_queue, 512);
        assert_eq!(c.context_length, 4096);
        assert!(c.origins.contains(&"http://localhost:*".to_string()));
        assert!(c.origins.contains(&"vscode-webview://*".to_string()));
        assert!(!c.noprune);
        assert!(c.go_template);
        assert_eq!(c.load_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c, Config::defaults("/home/u"));
    }

    #[test]
    fn host_forms() {
        let s = |x: &str| x.to_string();
        assert_eq!(host(""), (s("http"), s("127.0.0.1"), 11434, s("")));
        assert_eq!(host("0.0.0.0"), (s("http"), s("0.0.0.0"), 11434, s("")));
        assert_eq!(host("1.2.3.4:5678"), (s("http"), s("1.2.3.4"), 5678, s("")));
        assert_eq!(host(":1234"), (s("http"), s(""), 1234, s("")));
        assert_eq!(
            host("example.com"),
            (s("http"), s("example.com"), 11434, s(""))
        );
        assert_eq!(
            host("http://example.com"),
            (s("http"), s("example.com"), 80, s(""))
        );
        assert_eq!(
            host("https://example.com"),
            (s("https"), s("example.com"), 443, s(""))
        );
        assert_eq!(
            host("https://example.com:8443/ollama"),
            (s("https"), s("example.com"), 8443, s("ollama"))
        );
        assert_eq!(
            host("ollama.com"),
            (s("https"), s("ollama.com"), 443, s(""))
        );
        assert_eq!(host("[::1]:11434"), (s("http"), s("::1"), 11434, s("")));
        assert_eq!(host("::1"), (s("http"), s("::1"), 11434, s("")));
        assert_eq!(HostSpec::parse("[::1]:5").unwrap().host_port(), "[::1]:5");
        assert_eq!(
            HostSpec::parse("0.0.0.0:99").unwrap().client_url(),
            "http://127.0.0.1:99"
        );
        assert_eq!(
            HostSpec::parse(":99").unwrap().bind_addr().unwrap(),
            "0.0.0.0:99".parse().unwrap()
        );
        assert!(HostSpec::parse("localhost:99999").is_err());
        assert!(HostSpec::parse("localhost:abc").is_err());
        // Quotes and spaces around the value are dropped.
        let c = cfg(&[("OLLAMA_HOST", " \"0.0.0.0:8080\" ")]).unwrap();
        assert_eq!(c.host.host_port(), "0.0.0.0:8080");
    }

    #[test]
    fn keep_alive_forms() {
        let ka = |v: &str| cfg(&[("OLLAMA_KEEP_ALIVE", v)]).map(|c| c.keep_alive);
        assert_eq!(ka("10m"), Ok(KeepAlive::For(Duration::from_secs(600))));
        assert_eq!(ka("30"), Ok(KeepAlive::For(Duration::from_secs(30))));
        assert_eq!(ka("0"), Ok(KeepAlive::For(Duration::ZERO)));
        assert_eq!(ka("-1"), Ok(KeepAlive::Forever));
        assert_eq!(ka("-5m"), Ok(KeepAlive::Forever));
        let err = ka("later").unwrap_err();
        assert_eq!(err.var, "OLLAMA_KEEP_ALIVE");
        assert!(err.to_string().starts_with("OLLAMA_KEEP_ALIVE: "), "{err}");
    }

    #[test]
    fn numbers_and_bools() {
        let c = cfg(&[
            ("OLLAMA_MAX_LOADED_MODELS", "2"),
            ("OLLAMA_NUM_PARALLEL", "4"),
            ("OLLAMA_MAX_QUEUE", "7"),
            ("OLLAMA_CONTEXT_LENGTH", "8192"),
            ("OLLAMA_NOPRUNE", "1"),
            ("OLLAMA_NOHISTORY", "yes please"),
            ("OLLAMA_GO_TEMPLATE", "false"),
            ("OLLAMA_DEBUG", "2"),
            ("OLLAMA_FLASH_ATTENTION", "0"),
            ("OLLAMA_LOAD_TIMEOUT", "0"),
            ("OLLAMA_ORIGINS", "http://a.example, chrome-extension://*"),
        ])
        .unwrap();
        assert_eq!(c.max_loaded_models, 2);
        assert_eq!(c.num_parallel, 4);
        assert_eq!(c.max_queue, 7);
        assert_eq!(c.context_length, 8192);
        assert!(c.noprune);
        assert!(c.nohistory, "an unparsable bool counts as true");
        assert!(!c.go_template);
        assert_eq!(c.debug_level, 2);
        assert_eq!(c.flash_attention, Some(false));
        assert_eq!(c.load_timeout, None);
        assert_eq!(c.origins[0], "http://a.example");
        assert_eq!(c.origins[1], "chrome-extension://*");
        for (var, val) in [
            ("OLLAMA_NUM_PARALLEL", "-1"),
            ("OLLAMA_MAX_QUEUE", "many"),
            ("OLLAMA_MAX_QUEUE", "0"),
            ("OLLAMA_CONTEXT_LENGTH", "4k"),
            ("OLLAMA_MAX_LOADED_MODELS", "1.5"),
            ("OLLAMA_KV_CACHE_TYPE", "q2"),
            ("OLLAMA_ORIGINS", "http://*.a.*"),
        ] {
            let err = cfg(&[(var, val)]).unwrap_err();
            assert_eq!(err.var, var, "{val}");
        }
    }
}

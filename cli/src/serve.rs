//! `ferrite serve` (alias `start`): runs the Ollama-compatible server on
//! `OLLAMA_HOST`. Everything else the server reads from the environment
//! (`OLLAMA_MODELS`, `OLLAMA_KEEP_ALIVE`, ...) is the server's own business.

use crate::env::Host;

/// What `serve` resolved from its environment before starting the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// The bind address from `OLLAMA_HOST` (`127.0.0.1:11434` by default; an
    /// unspecified address such as `0.0.0.0` binds every interface).
    pub bind: String,
}

impl ServeConfig {
    pub fn from_env() -> ServeConfig {
        ServeConfig {
            bind: Host::from_env().host_port(),
        }
    }
}

/// Starts the server and blocks until it shuts down.
pub fn run(config: &ServeConfig) -> Result<(), String> {
    // PLACEHOLDER (the only one in the CLI): the HTTP server lives in
    // `server::http`, which is not merged yet. This body is replaced by the call
    // `server::http::serve(...)` with `config.bind` when it lands.
    let _ = config;
    Err("server not built yet".into())
}

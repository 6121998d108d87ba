//! API errors: an HTTP status and the message of `{"error": "..."}`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

/// The 503 text of a full admission queue (two spaces after the period, as Ollama).
pub const SERVER_BUSY: &str = "server busy, please try again.  maximum pending requests exceeded";

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, message)
    }
    pub fn busy() -> ApiError {
        ApiError::new(503, SERVER_BUSY)
    }
    /// `model '<name>' not found` (generate, chat, embed, show, delete).
    pub fn model_not_found(name: &str) -> ApiError {
        ApiError::not_found(format!("model '{name}' not found"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

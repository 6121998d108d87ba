//! Wire types of the native API (api.md): requests, responses, options, errors, durations.

pub mod duration;
pub mod error;
pub mod options;
pub mod time;
pub mod types;

pub use duration::{parse_go_duration, KeepAlive};
pub use error::{ApiError, SERVER_BUSY};
pub use options::RunOptions;
pub use types::*;

/// The version `/api/version` reports (clients compare it with their own).
pub const VERSION: &str = "0.33.0";

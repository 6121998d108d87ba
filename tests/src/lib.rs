//! Helpers shared by the workspace tests: locating (and fetching) the real models.

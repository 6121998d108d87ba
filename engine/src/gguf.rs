//! PLACEHOLDER: GGUF parser.

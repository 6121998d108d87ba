//! Helpers shared by the K-quant types (6-bit scale/min unpacking, ...).

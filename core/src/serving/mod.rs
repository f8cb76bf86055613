//! Serving: read-only SQL over the lake, and the table inventory.

pub mod query;
pub mod tables;

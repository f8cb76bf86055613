//! Serving: read-only SQL over the lake, the table inventory and the dashboard's tiles.

pub mod dashboard;
pub mod query;
pub mod tables;

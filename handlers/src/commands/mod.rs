//! One module per subcommand; each turns parsed arguments into a core call and prints the result.

pub mod demo;
pub mod ingest;
pub mod query;
pub mod tables;

//! One module per subcommand; each turns parsed arguments into a core call and prints the result.

pub mod alerts;
pub mod bench_gold;
pub mod bench_pipeline;
pub mod demo;
pub mod generate;
pub mod handler;
pub mod ingest;
pub mod package;
pub mod query;
pub mod refresh;
pub mod report;
pub mod runs;
pub mod serve;
pub mod tables;
pub mod token;

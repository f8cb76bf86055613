//! Helpers shared by the end-to-end tests: where the shared data sets are, running the real
//! `patientflow` binary, temporary lakes (local or Azurite).

pub mod fixtures;
pub mod scenarios;
pub mod security;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The public test data beside the checkout (`../shared/data`), if present.
pub fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir))
}

/// The shared data folder, or a skip note (returns None) when it is absent.
pub fn shared_data_or_skip(test: &str) -> Option<PathBuf> {
    let d = shared_data();
    if d.is_none() {
        eprintln!("{test}: skipped, ../shared/data is not present");
    }
    d
}

/// Path of the `patientflow` binary built alongside the tests.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join("patientflow");
    assert!(
        bin.exists(),
        "{} not built; run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Runs the binary with `args` against `lake`, returning its output.
pub fn run_cli(lake: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("PATIENTFLOW_LAKE")
        .output()
        .expect("running patientflow")
}

/// stdout and stderr of an output as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Azurite blob endpoint to test against, from `AZURITE_BLOB_STORAGE_URL`. Under CI (`CI=true`) a
/// missing endpoint is a failure, not a skip: CI starts Azurite.
pub fn azurite_or_skip(test: &str) -> Option<String> {
    match std::env::var("AZURITE_BLOB_STORAGE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: CI=true but AZURITE_BLOB_STORAGE_URL is not set; .ci/run must start Azurite");
            }
            eprintln!(
                "{test}: skipped, AZURITE_BLOB_STORAGE_URL not set (start Azurite to run it)"
            );
            None
        }
    }
}

/// A fresh, unique Azure lake URL for one test (one container per test keeps tests independent).
pub fn unique_azure_lake(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "az://t{}{}/lake",
        tag.to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
        n % 1_000_000_000_000
    )
}

/// A table's content as sorted CSV, without the columns that differ from run to run.
pub async fn table_csv(
    lake: &patientflow_core::storage::Lake,
    table: &str,
    exclude: &[&str],
) -> String {
    use patientflow_core::serving::{query, tables::known_tables};
    let ctx = query::session(lake, &known_tables())
        .await
        .expect("session");
    let probe = ctx.sql(&format!("SELECT * FROM {table} LIMIT 0")).await;
    let Ok(probe) = probe else {
        return String::from("<missing>");
    };
    let cols: Vec<String> = probe
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !exclude.contains(&n.as_str()))
        .collect();
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {list} FROM {table} ORDER BY {list}");
    let limits = query::QueryLimits {
        max_rows: 10_000_000,
        timeout: std::time::Duration::from_secs(120),
    };
    let result = query::run_in(&ctx, &sql, limits)
        .await
        .expect("table query");
    query::to_csv(&result).expect("csv")
}

//! An incremental Gold refresh gives exactly the tables a full rebuild gives.
//!
//! Lake A receives a simulated network day by day in three slices (with every defect class on, so late
//! and out-of-order messages cross slices, EHR extracts change patients without new ADT, and encounters
//! open in one slice close in the next); after each slice Silver and Gold refresh incrementally. A copy
//! of lake A (same Silver) is then rebuilt with `--full`, and every Gold table must be identical row for
//! row (the Silver run ids aside).

use std::path::Path;

use chrono::NaiveDate;
use patientflow_core::gold;
use patientflow_core::pipeline::{refresh_gold, RefreshOptions};
use patientflow_core::storage::Lake;
use patientflow_simulator::{Hospitals, SimConfig};

#[path = "gold_common.rs"]
mod common;
use common::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

async fn assert_same_as_full(lake_dir: &Path, scratch: &Path, step: &str) {
    let copy = scratch.join(format!("full-{step}"));
    copy_dir(lake_dir, &copy);
    let a = Lake::open(lake_dir.to_str().unwrap()).await.unwrap();
    let b = Lake::open(copy.to_str().unwrap()).await.unwrap();
    let full = refresh_gold(
        &b,
        &RefreshOptions {
            full: true,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(full.details["mode"], "full");
    let (sa, sb) = (
        gold::snapshot(&a).await.unwrap(),
        gold::snapshot(&b).await.unwrap(),
    );
    assert_eq!(
        sa.keys().collect::<Vec<_>>(),
        sb.keys().collect::<Vec<_>>(),
        "{step}: table sets differ"
    );
    assert_eq!(
        sa.len(),
        gold::TABLES.len(),
        "{step}: every Gold table exists"
    );
    for (table, rows) in &sa {
        let other = &sb[table];
        if rows != other {
            let only_a: Vec<&String> = rows.iter().filter(|r| !other.contains(r)).take(3).collect();
            let only_b: Vec<&String> = other.iter().filter(|r| !rows.contains(r)).take(3).collect();
            panic!(
                "{step}: {table} differs ({} incremental rows vs {} full)\n  incremental only: {only_a:?}\n  full only: {only_b:?}",
                rows.len(),
                other.len()
            );
        }
    }
    eprintln!(
        "{step}: {} Gold tables identical to a full rebuild",
        sa.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_refresh_equals_full_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        days: 18,
        hospitals: Hospitals::Ids(vec!["MHA06".into(), "MHA07".into()]),
        dirty_rate: 0.05,
        ..SimConfig::default()
    };
    let data = generate(&cfg, dir.path());
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().unwrap()).await.unwrap();
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 1, d).unwrap();

    ingest(&lake, &data, |d| d < day(7)).await;
    let (_, g1) = refresh(&lake, false).await;
    assert_eq!(
        g1.details["mode"], "full",
        "the first refresh builds everything"
    );

    ingest(&lake, &data, |d| d >= day(7) && d < day(13)).await;
    let (_, g2) = refresh(&lake, false).await;
    assert_eq!(g2.details["mode"], "incremental", "{}", g2.details);
    assert!(g2.details["touched_encounters"].as_u64().unwrap() > 0);
    assert_same_as_full(&lake_dir, dir.path(), "second slice").await;

    // Nothing new: skipped, nothing written.
    let again = refresh_gold(
        &lake,
        &RefreshOptions {
            full: false,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(again.status, "skipped", "{}", again.details);

    ingest(&lake, &data, |d| d >= day(13)).await;
    let (_, g3) = refresh(&lake, false).await;
    assert_eq!(g3.details["mode"], "incremental", "{}", g3.details);
    eprintln!("third slice: {}", g3.details);
    assert_same_as_full(&lake_dir, dir.path(), "third slice").await;
}

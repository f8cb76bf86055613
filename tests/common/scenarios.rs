//! Storage scenarios run the same way on a local lake and on Azurite (see `bronze_ingest.rs` and
//! `azurite_storage.rs`), so the Azure code path is tested, not assumed.

use std::collections::BTreeMap;

use patientflow_core::bronze::{self, adt::AdtIngestor, adt::AdtInput, Lineage};
use patientflow_core::serving::tables::describe;
use patientflow_core::storage::Lake;

fn no_progress(_: &str, _: usize) {}

/// Ingests the given ADT, EHR and reference paths, then ingests them again: the second pass writes
/// nothing and leaves every table version unchanged.
pub async fn reingest_changes_nothing(
    lake_url: &str,
    adt: &[String],
    ehr: &[String],
    reference: &[String],
) {
    let lake = Lake::open(lake_url).await.expect("open lake");
    let first = ingest_all(&lake, adt, ehr, reference).await;
    assert!(
        first.total_rows() > 0,
        "first pass wrote nothing: {first:?}"
    );
    let versions_before = versions(&lake).await;
    let rows_before = rows(&lake).await;

    let second = ingest_all(&lake, adt, ehr, reference).await;
    assert_eq!(second.total_rows(), 0, "second pass wrote rows: {second:?}");
    // Files whose content repeats another file of the same call count as already ingested in both passes.
    assert_eq!(
        second.inputs_already_ingested,
        first.inputs_ingested + first.inputs_already_ingested,
        "{second:?}"
    );
    assert_eq!(versions(&lake).await, versions_before);
    assert_eq!(rows(&lake).await, rows_before);
}

async fn ingest_all(
    lake: &Lake,
    adt: &[String],
    ehr: &[String],
    reference: &[String],
) -> bronze::IngestReport {
    let mut report = AdtIngestor::new(lake.clone())
        .ingest_paths(adt, "test-adt", &no_progress)
        .await
        .expect("adt");
    report.absorb(
        bronze::ehr::ingest_paths(lake, ehr, None, "test-ehr", &no_progress)
            .await
            .expect("ehr"),
    );
    report.absorb(
        bronze::reference::ingest_paths(lake, reference, "test-ref", &no_progress)
            .await
            .expect("ref"),
    );
    report
}

async fn versions(lake: &Lake) -> BTreeMap<String, Option<i64>> {
    let mut out = BTreeMap::new();
    for t in bronze::TABLES {
        out.insert(
            t.sql_name(),
            describe(lake, t).await.expect("describe").version,
        );
    }
    out
}

async fn rows(lake: &Lake) -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    for t in bronze::TABLES {
        out.insert(
            t.sql_name(),
            describe(lake, t).await.expect("describe").rows,
        );
    }
    out
}

/// Event Hub style batches: a re-delivered batch adds nothing; the same id with new content is kept
/// and flagged as a conflict.
pub async fn event_batches_are_idempotent(lake_url: &str) {
    let lake = Lake::open(lake_url).await.expect("open lake");
    let ingestor = AdtIngestor::new(lake.clone());
    let msg = |id: &str, class: &str| {
        format!(
            "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000-0600||ADT^A01|{id}|P|2.5\rEVN|A01|20260114083000-0600\r\
             PID|||MHA01-P1^^^MHA01^MR||Doe^Jane||19800101|F\rPV1||{class}|MED^12^B^MHA01||||||||||||||||MHA01-V1"
        )
    };
    let batch = |payloads: Vec<String>| -> Vec<AdtInput> {
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| AdtInput {
                payload: p.into_bytes(),
                lineage: Lineage {
                    source_name: "adt-events".into(),
                    partition: Some("0".into()),
                    sequence_number: Some(i as i64),
                    offset: Some((i * 100).to_string()),
                    enqueued_time: Some(chrono::Utc::now()),
                    ..Default::default()
                },
            })
            .collect()
    };
    let first = ingestor
        .ingest_events(batch(vec![msg("M1", "I"), msg("M2", "I")]), "r1")
        .await
        .expect("first");
    assert_eq!(first.total_rows(), 2);
    let again = ingestor
        .ingest_events(batch(vec![msg("M1", "I"), msg("M2", "I")]), "r2")
        .await
        .expect("again");
    assert_eq!(again.total_rows(), 0);
    assert_eq!(again.duplicates_skipped, 2);
    let changed = ingestor
        .ingest_events(batch(vec![msg("M1", "E")]), "r3")
        .await
        .expect("changed");
    assert_eq!(changed.total_rows(), 1);
    assert_eq!(changed.id_conflicts, 1);

    // A fresh ingestor (a new process) reads the index back from the table and agrees.
    let fresh = AdtIngestor::new(lake.clone());
    let replay = fresh
        .ingest_events(batch(vec![msg("M2", "I"), msg("M1", "E")]), "r4")
        .await
        .expect("replay");
    assert_eq!(replay.total_rows(), 0);
    assert_eq!(replay.duplicates_skipped, 2);

    // Two writers on one table, each keeping it open between batches: each catches up with the
    // other's commits, so neither takes the other's messages for new ones.
    let new_by_fresh = fresh
        .ingest_events(batch(vec![msg("M3", "I")]), "r5")
        .await
        .expect("fresh writes M3");
    assert_eq!(new_by_fresh.total_rows(), 1);
    let seen_by_first = ingestor
        .ingest_events(batch(vec![msg("M3", "I"), msg("M4", "I")]), "r6")
        .await
        .expect("first catches up");
    assert_eq!(
        (seen_by_first.total_rows(), seen_by_first.duplicates_skipped),
        (1, 1)
    );
    assert!(
        seen_by_first.versions["bronze_adt_messages"]
            > new_by_fresh.versions["bronze_adt_messages"],
        "{seen_by_first:?} after {new_by_fresh:?}"
    );
    let seen_by_fresh = fresh
        .ingest_events(batch(vec![msg("M4", "I")]), "r7")
        .await
        .expect("fresh catches up");
    assert_eq!(
        (seen_by_fresh.total_rows(), seen_by_fresh.duplicates_skipped),
        (0, 1)
    );

    // The table keeps statistics only for the columns readers prune on, and is checkpointed.
    let table = lake
        .open_table(bronze::ADT_MESSAGES)
        .await
        .expect("open")
        .expect("table");
    let config = table
        .snapshot()
        .expect("snapshot")
        .metadata()
        .configuration()
        .clone();
    assert_eq!(
        config
            .get("delta.dataSkippingStatsColumns")
            .map(String::as_str),
        Some("facility,ingested_at,ingest_date,eh_enqueued_time")
    );
    assert_eq!(
        config.get("delta.checkpointInterval").map(String::as_str),
        Some("10")
    );

    let rows = lake
        .sql(
            &[bronze::ADT_MESSAGES],
            "SELECT message_id, id_conflict, eh_partition, eh_sequence_number FROM bronze_adt_messages ORDER BY message_id, id_conflict",
        )
        .await
        .expect("query");
    let n: usize = rows.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 5);
}

/// A second patients extract with two new columns lands; the Bronze schema gains them and the earlier
/// rows read as null there.
pub async fn new_extract_columns_evolve_the_schema(lake_url: &str, dir: &std::path::Path) {
    let lake = Lake::open(lake_url).await.expect("open lake");
    let day1 = dir.join("patients_2026-01-01.csv");
    let day2 = dir.join("patients_2026-01-02.csv");
    std::fs::write(&day1, "patient_id,facility,first_name,last_name,birth_date,sex\nP1,MHA01,Ann,Lee,1980-01-02,F\nP2,MHA01,Bo,Ng,1975-05-06,M\n").unwrap();
    std::fs::write(
        &day2,
        "patient_id,facility,first_name,last_name,birth_date,sex,preferred_language,insurance_type\nP3,MHA02,Cy,Ra,1990-03-04,F,es,Medicaid\n",
    )
    .unwrap();
    let r1 = bronze::ehr::ingest_paths(
        &lake,
        &[day1.display().to_string()],
        None,
        "d1",
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(r1.total_rows(), 2);
    let r2 = bronze::ehr::ingest_paths(
        &lake,
        &[day2.display().to_string()],
        None,
        "d2",
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(r2.total_rows(), 1);
    let info = describe(&lake, bronze::EHR_PATIENTS).await.unwrap();
    assert!(
        info.columns
            .iter()
            .any(|c| c.starts_with("preferred_language:")),
        "{:?}",
        info.columns
    );
    assert!(
        info.columns
            .iter()
            .any(|c| c.starts_with("insurance_type:")),
        "{:?}",
        info.columns
    );
    let earlier_null = count(
        &lake,
        "bronze_ehr_patients",
        "_extract_date = '2026-01-01' AND preferred_language IS NULL AND insurance_type IS NULL",
    )
    .await;
    assert_eq!(earlier_null, 2);
    let later = count(
        &lake,
        "bronze_ehr_patients",
        "_extract_date = '2026-01-02' AND preferred_language = 'es' AND insurance_type = 'Medicaid'",
    )
    .await;
    assert_eq!(later, 1);
}

/// Rows of a table matching a predicate.
pub async fn count(lake: &Lake, table: &str, predicate: &str) -> i64 {
    use deltalake::arrow::array::AsArray;
    let batches = lake
        .sql(
            &patientflow_core::serving::tables::known_tables(),
            &format!("SELECT COUNT(*) AS n FROM {table} WHERE {predicate}"),
        )
        .await
        .expect("count query");
    batches[0]
        .column(0)
        .as_primitive::<deltalake::arrow::datatypes::Int64Type>()
        .value(0)
}

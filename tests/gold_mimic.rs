//! Real data: the MIMIC-IV FHIR demo (100 patients, 263 hospital encounters with location periods) goes
//! through the pipeline — converted by `gold::fhir::convert` (FHIR Encounter → JSON ADT events, care
//! units → department reference CSVs; Silver does not apply FHIR resources itself) — and the hourly
//! census and the lengths of stay match what the demo's own flattening gives
//! (`derived_csv/transfers_from_fhir.csv`, `admissions_from_fhir.csv`), moved by the same per-encounter
//! date shift the conversion reports.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use patientflow_core::gold;
use patientflow_core::storage::Lake;
use patientflow_tests::shared_data_or_skip;

#[path = "gold_common.rs"]
mod common;
use common::*;

fn hour_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = t.duration_trunc(Duration::hours(1)).unwrap();
    if f == t {
        f
    } else {
        f + Duration::hours(1)
    }
}

fn csv_rows(path: &std::path::Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|x| {
            h.iter()
                .cloned()
                .zip(x.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mimic_fhir_demo_census_and_length_of_stay_match_its_transfers() {
    let Some(shared) = shared_data_or_skip("mimic fhir demo") else {
        return;
    };
    let demo = shared.join("mimic_iv_fhir_demo");
    let encounters = std::fs::read_to_string(demo.join("Encounter.ndjson")).unwrap();
    let patients = std::fs::read_to_string(demo.join("Patient.ndjson")).unwrap();
    let units: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(demo.join("derived_csv/careunit_to_fhir_location_id.json"))
            .unwrap(),
    )
    .unwrap();
    let locations: HashMap<String, String> = units
        .iter()
        .map(|(unit, id)| (id.clone(), unit.clone()))
        .collect();
    let conv = gold::fhir::convert(
        &encounters,
        &patients,
        &locations,
        &gold::fhir::FhirConversionOptions::default(),
    );
    assert!(conv.skipped.is_empty(), "{:?}", conv.skipped);
    assert_eq!(conv.shift_days.len(), 263);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("reference")).unwrap();
    std::fs::create_dir_all(data.join("adt/2025-01-06")).unwrap();
    std::fs::write(data.join("reference/hospitals.csv"), &conv.hospitals_csv).unwrap();
    std::fs::write(
        data.join("reference/departments.csv"),
        &conv.departments_csv,
    )
    .unwrap();
    std::fs::write(data.join("adt/2025-01-06/mimic.ndjson"), &conv.adt_ndjson).unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    ingest(&lake, &data, |_| true).await;
    let (silver, _) = refresh(&lake, false).await;
    eprintln!(
        "silver: {} rows in, {} quarantined; {} events converted",
        silver.rows_in, silver.rows_quarantined, conv.events
    );

    // Every encounter arrives and is discharged.
    let enc = rows(&lake, &gold::TABLES, "SELECT encounter_key, status, admit_time, discharge_time, los_hours FROM gold_fact_encounter").await;
    assert_eq!(enc.len(), 263);
    assert!(
        enc.iter()
            .all(|r| text(r, "status").as_deref() == Some("discharged")),
        "every demo encounter is finished"
    );

    // Length of stay: period.end − period.start of each admission, moved by its shift.
    let mut los_mismatch = Vec::new();
    let los: HashMap<String, f64> = enc
        .iter()
        .map(|r| {
            (
                text(r, "encounter_key").unwrap(),
                float(r, "los_hours").unwrap(),
            )
        })
        .collect();
    for a in csv_rows(&demo.join("derived_csv/admissions_from_fhir.csv")) {
        let (s, e) = (parse_ts(&a["start"]), parse_ts(&a["end"]));
        let expected = (e - s).num_seconds() as f64 / 3600.0;
        let got = los[&format!("BIDMC|{}", a["hadm_id"])];
        if (got - expected).abs() > 0.01 {
            los_mismatch.push((a["hadm_id"].clone(), expected, got));
        }
    }
    assert!(los_mismatch.is_empty(), "LOS differs: {los_mismatch:?}");

    // Census: every hour, every care unit, from the transfers (each interval [start, end) moved by the
    // admission's shift), against fact_census_hourly.
    let transfers = csv_rows(&demo.join("derived_csv/transfers_from_fhir.csv"));
    let admissions: HashMap<String, DateTime<Utc>> =
        csv_rows(&demo.join("derived_csv/admissions_from_fhir.csv"))
            .into_iter()
            .map(|a| (a["hadm_id"].clone(), parse_ts(&a["end"])))
            .collect();
    let mut expected: HashMap<(String, DateTime<Utc>), i64> = HashMap::new();
    let mut clipped = 0;
    for t in &transfers {
        let shift = Duration::days(conv.shift_days[&t["hadm_id"]]);
        let code = gold::fhir::department_code(&t["careunit"]);
        let start = parse_ts(&t["start"]) + shift;
        let mut end = parse_ts(&t["end"]) + shift;
        // The ADT feed's discharge (A03) is the Encounter's period.end; a last location that the flattening
        // ends a few seconds later is closed by that discharge.
        let discharge = admissions[&t["hadm_id"]] + shift;
        if end > discharge {
            end = discharge;
            clipped += 1;
        }
        let mut h = hour_ceil(start);
        while h < hour_ceil(end) {
            *expected.entry((code.clone(), h)).or_default() += 1;
            h += Duration::hours(1);
        }
    }
    let census = rows(
        &lake,
        &gold::TABLES,
        "SELECT department_code, hour_start, occupied_beds FROM gold_fact_census_hourly",
    )
    .await;
    let mut differing = Vec::new();
    let mut occupied_hours = 0;
    for r in &census {
        let key = (
            text(r, "department_code").unwrap(),
            instant(r, "hour_start").unwrap(),
        );
        let got = int(r, "occupied_beds");
        let want = expected.remove(&key).unwrap_or(0);
        occupied_hours += got;
        if got != want {
            differing.push((key, want, got));
        }
    }
    assert!(
        expected.values().all(|v| *v == 0),
        "hours missing from the census: {:?}",
        expected.iter().take(5).collect::<Vec<_>>()
    );
    eprintln!(
        "MIMIC demo: {} census rows, {occupied_hours} occupied bed-hours, {} differing; {clipped} last locations ended by the discharge",
        census.len(),
        differing.len()
    );
    for ((dept, hour), want, got) in differing.iter().take(6) {
        let sql = format!(
            "SELECT encounter_key, stay_seq, start_time, end_time, start_event, end_event FROM gold_fact_location_stay \
             WHERE department_code = '{dept}' AND start_time <= '{}' AND (end_time IS NULL OR end_time > '{}')",
            hour.to_rfc3339(),
            hour.to_rfc3339()
        );
        let stays = rows(&lake, &gold::TABLES, &sql).await;
        eprintln!("{dept} {hour}: want {want} got {got}: {stays:?}");
    }
    assert!(
        differing.is_empty(),
        "census differs: {:?}",
        differing.iter().take(10).collect::<Vec<_>>()
    );
}

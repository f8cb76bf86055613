//! What changed in Silver since Gold last reflected it, found by comparing contents, not logs:
//!
//! - **encounters** — every Silver encounter row carries the `silver_run_id` of the run that last rebuilt
//!   it, and `fact_encounter` keeps the id it was built from: an encounter is touched when it is new,
//!   gone, or its run id differs (an anti-join on two narrow columns);
//! - **patients** — every Silver patient version carries the `silver_run_id` of the run that last wrote
//!   it, and `dim_patient` copies it: a patient changed when one of its versions is new, gone, or its run
//!   id differs (an anti-join on three narrow columns); a changed patient touches all of its encounters;
//! - **departments, hospitals** — the Silver dimension and its Gold copy are compared row by row
//!   (`EXCEPT` both ways on every column).
//!
//! Content comparison makes the refresh self-healing: if a run stops between two commits, the next one
//! finds the same differences and redoes exactly that work. (Silver's `replace_where` rewrites whole
//! files, so the files a Delta version added say little about which rows changed.)

use std::collections::{BTreeMap, BTreeSet};

use super::write::in_list;
use crate::storage::columns::{strings, timestamps};
use crate::storage::{Lake, TableRef};
use crate::{Error, Result};

/// Encounters that are new, gone, or rebuilt by Silver since `fact_encounter` was written.
pub async fn touched_encounters(
    lake: &Lake,
    silver: TableRef,
    gold: TableRef,
) -> Result<BTreeSet<String>> {
    let (s, g) = (silver.sql_name(), gold.sql_name());
    let sql = format!(
        "SELECT s.encounter_key FROM {s} s LEFT JOIN {g} g ON s.encounter_key = g.encounter_key \
         WHERE g.encounter_key IS NULL OR (s.silver_run_id IS DISTINCT FROM g.silver_run_id) \
         UNION SELECT g.encounter_key FROM {g} g LEFT JOIN {s} s ON s.encounter_key = g.encounter_key \
         WHERE s.encounter_key IS NULL"
    );
    let mut out = BTreeSet::new();
    for b in lake.sql(&[silver, gold], &sql).await? {
        out.extend(strings(&b, "encounter_key")?.into_iter().flatten());
    }
    Ok(out)
}

/// Patients with a version that is new, gone, or written by another Silver run than the one
/// `dim_patient` copied. A table written before the run id existed reads it as null on that side.
pub async fn changed_patients(
    lake: &Lake,
    silver: TableRef,
    gold: TableRef,
) -> Result<BTreeSet<String>> {
    let run = |cols: &[String]| {
        if cols.iter().any(|c| c == "silver_run_id") {
            "silver_run_id"
        } else {
            "CAST(NULL AS VARCHAR) AS silver_run_id"
        }
    };
    let (rs, rg) = (
        run(&columns(lake, silver).await?),
        run(&columns(lake, gold).await?),
    );
    let (s, g) = (silver.sql_name(), gold.sql_name());
    let sql = format!(
        "WITH s AS (SELECT patient_key, patient_sk, {rs} FROM {s}), g AS (SELECT patient_key, patient_sk, {rg} FROM {g}) \
         SELECT s.patient_key FROM s LEFT JOIN g ON s.patient_sk = g.patient_sk AND s.patient_key = g.patient_key \
         WHERE g.patient_key IS NULL OR (s.silver_run_id IS DISTINCT FROM g.silver_run_id) \
         UNION SELECT g.patient_key FROM g LEFT JOIN s ON s.patient_sk = g.patient_sk AND s.patient_key = g.patient_key \
         WHERE s.patient_key IS NULL"
    );
    let mut out = BTreeSet::new();
    for b in lake.sql(&[silver, gold], &sql).await? {
        out.extend(strings(&b, "patient_key")?.into_iter().flatten());
    }
    Ok(out)
}

async fn columns(lake: &Lake, table: TableRef) -> Result<Vec<String>> {
    let Some(t) = lake.open_table(table).await? else {
        return Ok(Vec::new());
    };
    let snapshot = t
        .snapshot()
        .map_err(|e| Error::delta(table.sql_name(), e))?;
    Ok(snapshot
        .schema()
        .fields()
        .map(|f| f.name().clone())
        .collect())
}

/// Keys (`key` column) whose rows differ between a Silver table and its Gold copy, comparing the Silver
/// table's columns (a column the copy lacks reads as null there).
pub async fn changed_keys(
    lake: &Lake,
    silver: TableRef,
    gold: TableRef,
    key: &str,
) -> Result<BTreeSet<String>> {
    let silver_cols = columns(lake, silver).await?;
    let gold_cols: BTreeSet<String> = columns(lake, gold).await?.into_iter().collect();
    let proj = |present: &dyn Fn(&str) -> bool| -> String {
        silver_cols
            .iter()
            .map(|c| {
                if present(c) {
                    format!("CAST(\"{c}\" AS VARCHAR) AS \"{c}\"")
                } else {
                    format!("CAST(NULL AS VARCHAR) AS \"{c}\"")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ps = proj(&|_| true);
    let pg = proj(&|c| gold_cols.contains(c));
    let (s, g) = (silver.sql_name(), gold.sql_name());
    let sql = format!(
        "SELECT \"{key}\" FROM (SELECT {ps} FROM {s} EXCEPT SELECT {pg} FROM {g}) \
         UNION SELECT \"{key}\" FROM (SELECT {pg} FROM {g} EXCEPT SELECT {ps} FROM {s})"
    );
    let mut out = BTreeSet::new();
    for b in lake.sql(&[silver, gold], &sql).await? {
        out.extend(strings(&b, key)?.into_iter().flatten());
    }
    Ok(out)
}

/// Encounters of the given patients, in Silver and in Gold.
pub async fn encounters_of(
    lake: &Lake,
    patients: &BTreeSet<String>,
    silver: TableRef,
    gold: TableRef,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    if patients.is_empty() {
        return Ok(out);
    }
    for table in [silver, gold] {
        let sql = format!(
            "SELECT encounter_key FROM {} WHERE {}",
            table.sql_name(),
            in_list("patient_key", patients)
        );
        for b in lake.sql(&[table], &sql).await? {
            out.extend(strings(&b, "encounter_key")?.into_iter().flatten());
        }
    }
    Ok(out)
}

/// First and last census hour per hospital and department already in `fact_census_hourly`.
pub async fn census_coverage(
    lake: &Lake,
    census: TableRef,
) -> Result<BTreeMap<(String, String), (i64, i64)>> {
    let mut out = BTreeMap::new();
    if lake.open_table(census).await?.is_none() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT hospital_id, department_code, MIN(hour_start) AS lo, MAX(hour_start) AS hi FROM {} GROUP BY 1, 2",
        census.sql_name()
    );
    for b in lake.sql(&[census], &sql).await? {
        let h = strings(&b, "hospital_id")?;
        let d = strings(&b, "department_code")?;
        let lo = timestamps(&b, "lo")?;
        let hi = timestamps(&b, "hi")?;
        for i in 0..b.num_rows() {
            if let (Some(h), Some(d), Some(lo), Some(hi)) =
                (h[i].clone(), d[i].clone(), lo[i], hi[i])
            {
                out.insert(
                    (h, d),
                    (
                        super::time::hour_floor(lo.timestamp_micros()),
                        super::time::hour_floor(hi.timestamp_micros()),
                    ),
                );
            }
        }
    }
    Ok(out)
}

//! Access control over real Delta tables: every role × representative queries (plain `SELECT *` on every
//! table, join, subquery, CTE, aggregate, information_schema) → zero rows outside scope and zero unmasked PHI;
//! bad credentials are refused and audited; every read is audited and read back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::display::array_value_to_string;
use patientflow_core::security::audit::{AuditLog, AuditRecord, SECURITY_AUDIT};
use patientflow_core::security::cache::PolicyCache;
use patientflow_core::security::{
    policy, token, AuthMethod, Authenticator, Credentials, Identity, Role, Scope, SecuritySettings,
};
use patientflow_core::serving::query::{run_as, Access, QueryLimits, QueryResult};
use patientflow_core::serving::tables::known_tables;
use patientflow_core::storage::Lake;
use patientflow_simulator::{Hospitals, SimConfig};

#[path = "gold_common.rs"]
mod common;
use common::*;

const KEY: &[u8] = b"test-pseudonym-key-0123456789";
const HS_KEY: &str = "test-hs256-key-0123456789abcdef0123";

fn limits() -> QueryLimits {
    QueryLimits {
        max_rows: 1_000_000,
        timeout: Duration::from_secs(60),
    }
}

fn identity(role: Role, scopes: &[&str]) -> Identity {
    Identity {
        subject: format!("test-{role}"),
        role,
        scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
        method: AuthMethod::Token,
    }
}

/// Every cell of a result as text, by column name.
fn cells(r: &QueryResult) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for b in &r.batches {
        for row in 0..b.num_rows() {
            let mut m = BTreeMap::new();
            for (i, f) in b.schema().fields().iter().enumerate() {
                let col = b.column(i);
                if col.is_valid(row) {
                    m.insert(
                        f.name().clone(),
                        array_value_to_string(col, row).unwrap_or_default(),
                    );
                }
            }
            out.push(m);
        }
    }
    out
}

async fn strings(lake: &Lake, cache: &PolicyCache, sql: &str) -> BTreeSet<String> {
    let admin = Identity::local_admin();
    let access = Access {
        identity: &admin,
        pseudonym_key: None,
        audit: None,
        read_path: "t",
        cache: Some(cache),
    };
    let r = run_as(lake, &access, sql, limits()).await.unwrap();
    cells(&r)
        .into_iter()
        .filter_map(|m| m.into_values().next())
        .collect()
}

struct Truth {
    family: BTreeSet<String>,
    given: BTreeSet<String>,
    birth: BTreeSet<String>,
    mrn: BTreeSet<String>,
    /// Patient / encounter keys placed in MHA01/ED by a stay.
    ed_patients: BTreeSet<String>,
    ed_encounters: BTreeSet<String>,
}

fn batches_rows(b: &[RecordBatch]) -> usize {
    b.iter().map(|b| b.num_rows()).sum()
}

/// Checks one result of one role; returns the number of cells checked.
fn check(role: &Identity, sql: &str, r: &QueryResult, t: &Truth) -> usize {
    let mut checked = 0;
    let masked = role.role.masks_phi();
    let hospitals: BTreeSet<&str> = role.scopes.iter().map(|s| s.hospital.as_str()).collect();
    for row in cells(r) {
        for (col, v) in &row {
            checked += 1;
            if masked {
                assert!(
                    !t.family.contains(v) && !t.given.contains(v),
                    "{}: name '{v}' in {col} of: {sql}",
                    role.role
                );
                assert!(
                    !(col.contains("birth") && t.birth.contains(v)),
                    "{}: birth date '{v}' in {col} of: {sql}",
                    role.role
                );
                assert!(
                    !patientflow_tests::security::contains_token(v, &t.mrn),
                    "{}: MRN in {col}='{v}' of: {sql}",
                    role.role
                );
            }
            if role.role != Role::Admin
                && matches!(col.as_str(), "payload" | "raw_record" | "raw_value")
            {
                panic!("{}: raw column {col} not NULL in: {sql}", role.role);
            }
        }
        // Reference tables (hospitals, departments, calendar) hold no patient rows and are not filtered.
        let reference = sql
            .strip_prefix("SELECT * FROM ")
            .is_some_and(|t| policy::classify(t) == policy::TableClass::Reference);
        if role.role.is_scoped() && !reference {
            if let Some(h) = row.get("hospital_id") {
                assert!(
                    hospitals.contains(h.as_str()),
                    "{}: hospital {h} outside scope in: {sql}",
                    role.role
                );
            }
        }
        if role.role == Role::DepartmentStaff {
            let in_dept = [
                "department_code",
                "department",
                "first_department",
                "admit_department",
                "last_department",
                "prior_department",
            ]
            .iter()
            .any(|c| row.get(*c).is_some_and(|d| d == "ED"));
            if let Some(e) = row.get("encounter_key") {
                assert!(
                    in_dept || t.ed_encounters.contains(e),
                    "staff: encounter {e} outside MHA01/ED in: {sql}"
                );
            } else if let Some(p) = row.get("patient_key") {
                assert!(
                    in_dept || t.ed_patients.contains(p),
                    "staff: patient {p} outside MHA01/ED in: {sql}"
                );
            }
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_role_sees_only_its_scope_and_no_unmasked_phi() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        days: 3,
        hospitals: Hospitals::Ids(vec!["MHA01".into(), "MHA02".into()]),
        dirty_rate: 0.05,
        ..SimConfig::default()
    };
    let data = generate(&cfg, dir.path());
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    ingest(&lake, &data, |_| true).await;
    patientflow_core::pipeline::refresh_silver(&lake, &Default::default())
        .await
        .unwrap();
    patientflow_core::gold::refresh(&lake, &Default::default())
        .await
        .unwrap();

    // One snapshot of the tables for the whole test, as a server keeps it.
    let cache = PolicyCache::new(
        known_tables(),
        Some(KEY.to_vec()),
        Duration::from_secs(3600),
    );
    let truth = Truth {
        family: strings(&lake, &cache, "SELECT DISTINCT family_name FROM silver_dim_patient WHERE family_name IS NOT NULL").await,
        given: strings(&lake, &cache, "SELECT DISTINCT given_name FROM silver_dim_patient WHERE given_name IS NOT NULL").await,
        birth: strings(&lake, &cache, "SELECT DISTINCT CAST(birth_date AS VARCHAR) FROM silver_dim_patient WHERE birth_date IS NOT NULL").await,
        mrn: strings(&lake, &cache, "SELECT DISTINCT mrn FROM silver_dim_patient WHERE mrn IS NOT NULL").await,
        ed_patients: strings(&lake, &cache, "SELECT DISTINCT patient_key FROM silver_location_stays WHERE hospital_id = 'MHA01' AND department = 'ED'").await,
        ed_encounters: strings(&lake, &cache, "SELECT DISTINCT encounter_key FROM silver_location_stays WHERE hospital_id = 'MHA01' AND department = 'ED'").await,
    };
    assert!(
        truth.family.len() > 50 && truth.mrn.len() > 50,
        "the lake has patients"
    );

    let present: Vec<String> = {
        let mut v = Vec::new();
        for t in known_tables() {
            if lake.open_table(t).await.unwrap().is_some() {
                v.push(t.sql_name());
            }
        }
        v
    };
    let mut queries: Vec<(String, String)> = present
        .iter()
        .map(|t| ("select_star".to_string(), format!("SELECT * FROM {t}")))
        .collect();
    for (kind, sql) in [
        ("join", "SELECT p.family_name, p.given_name, p.birth_date, p.mrn, e.visit_number, e.hospital_id, e.encounter_key, e.last_department \
                  FROM silver_encounters e JOIN silver_dim_patient p ON e.patient_key = p.patient_key"),
        ("join_gold", "SELECT f.encounter_key, f.hospital_id, d.family_name, d.birth_date, d.mrn FROM gold_fact_encounter f \
                       JOIN gold_dim_patient d ON f.patient_sk = d.patient_sk"),
        ("subquery", "SELECT * FROM gold_dim_patient WHERE patient_key IN (SELECT patient_key FROM gold_fact_encounter WHERE hospital_id = 'MHA02')"),
        ("scalar_subquery", "SELECT (SELECT MAX(family_name) FROM silver_dim_patient) AS m, (SELECT MIN(mrn) FROM silver_adt_events) AS n"),
        ("cte", "WITH x AS (SELECT mrn, family_name, birth_date, hospital_id, patient_key FROM silver_dim_patient) SELECT * FROM x"),
        ("aggregate", "SELECT hospital_id, COUNT(*) AS n, MIN(family_name) AS f, MAX(mrn) AS m, MIN(birth_date) AS b FROM silver_dim_patient GROUP BY hospital_id"),
        ("aggregate_kpi", "SELECT hospital_id, department_code, SUM(occupied_beds) AS beds FROM gold_fact_census_hourly GROUP BY 1, 2"),
        ("union", "SELECT mrn AS v, hospital_id FROM silver_encounters UNION ALL SELECT family_name, hospital_id FROM gold_dim_patient"),
        ("information_schema", "SELECT table_schema, table_name FROM information_schema.tables"),
        ("information_schema_columns", "SELECT table_name, column_name FROM information_schema.columns"),
    ] {
        queries.push((kind.to_string(), sql.to_string()));
    }

    let audit = AuditLog::start(lake.clone());
    let roles = [
        identity(Role::Admin, &[]),
        identity(Role::Analyst, &[]),
        identity(Role::Operator, &[]),
        identity(Role::HospitalManager, &["MHA01"]),
        identity(Role::DepartmentStaff, &["MHA01/ED"]),
        Identity::demo(),
    ];
    let mut expected_audit: BTreeMap<String, usize> = BTreeMap::new();
    let mut phi_reads: BTreeMap<String, usize> = BTreeMap::new();
    println!(
        "{:<18} {:<28} {:>6} {:>8} {:>9}",
        "role", "query", "ok", "rows", "cells"
    );
    for id in &roles {
        let access = Access {
            identity: id,
            pseudonym_key: Some(KEY),
            audit: Some(&audit),
            read_path: "test_matrix",
            cache: Some(&cache),
        };
        let mut per_kind: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
        for (kind, sql) in &queries {
            *expected_audit.entry(id.subject.clone()).or_default() += 1;
            let entry = per_kind.entry(kind.clone()).or_default();
            match run_as(&lake, &access, sql, limits()).await {
                Ok(r) => {
                    let checked = check(id, sql, &r, &truth);
                    if kind.starts_with("information_schema") && kind == "information_schema" {
                        // Only the views (and information_schema itself) are listed; hidden tables are not.
                        for row in cells(&r) {
                            let name = &row["table_name"];
                            if row["table_schema"] != "information_schema" {
                                assert!(present.contains(name), "{name}");
                            }
                        }
                    }
                    if id.role == Role::Admin && kind == "join" {
                        *phi_reads.entry(id.subject.clone()).or_default() += 1;
                    }
                    entry.0 += 1;
                    entry.2 += r.num_rows();
                    entry.3 += checked;
                }
                Err(e) => {
                    assert!(
                        id.role != Role::Admin,
                        "admin must read everything: {sql}: {e}"
                    );
                    entry.1 += 1;
                }
            }
        }
        for (kind, (ok, denied, rows, checked)) in per_kind {
            println!(
                "{:<18} {:<28} {:>3}/{:<3} {:>8} {:>9}",
                id.role.as_str().to_string()
                    + if id.method == AuthMethod::Demo {
                        "(demo)"
                    } else {
                        ""
                    },
                kind,
                ok,
                ok + denied,
                rows,
                checked
            );
        }
    }

    // Scoped roles see strictly less; analyst sees every patient row, masked.
    let count = |id: &Identity, sql: &'static str| {
        let lake = lake.clone();
        let id = id.clone();
        let cache = &cache;
        async move {
            let access = Access {
                identity: &id,
                pseudonym_key: Some(KEY),
                audit: None,
                read_path: "t",
                cache: Some(cache),
            };
            run_as(&lake, &access, sql, limits())
                .await
                .map(|r| r.num_rows())
        }
    };
    let all = count(&roles[0], "SELECT * FROM silver_dim_patient")
        .await
        .unwrap();
    assert_eq!(
        count(&roles[1], "SELECT * FROM silver_dim_patient")
            .await
            .unwrap(),
        all
    );
    let mgr = count(&roles[3], "SELECT * FROM silver_dim_patient")
        .await
        .unwrap();
    let staff = count(&roles[4], "SELECT * FROM silver_dim_patient")
        .await
        .unwrap();
    assert!(
        mgr > 0 && mgr < all && staff > 0 && staff < mgr,
        "all {all}, manager {mgr}, staff {staff}"
    );
    assert!(
        count(&roles[2], "SELECT * FROM silver_dim_patient")
            .await
            .is_err(),
        "operator sees no patient rows"
    );
    assert!(
        count(&roles[2], "SELECT * FROM silver_dq_results")
            .await
            .unwrap()
            > 0
    );
    // Pseudonyms are stable: the analyst's pseudonymous MRNs join across tables.
    let joined = count(
        &roles[1],
        "SELECT * FROM silver_encounters e JOIN silver_dim_patient p ON e.mrn = p.mrn",
    )
    .await
    .unwrap();
    let joined_admin = count(
        &roles[0],
        "SELECT * FROM silver_encounters e JOIN silver_dim_patient p ON e.mrn = p.mrn",
    )
    .await
    .unwrap();
    assert_eq!(joined, joined_admin);
    // The pseudonym function is not callable by a caller (no dictionary attack on MRNs).
    assert!(count(&roles[1], "SELECT pf_pseudonym('MHA01-P0000001')")
        .await
        .is_err());
    println!("silver_dim_patient rows: admin {all}, analyst {all}, manager MHA01 {mgr}, staff MHA01/ED {staff}");

    // Small cells: the analyst (and the demo identity) never see a count from 1 to 10 in an aggregate
    // table; the admin does see such counts, so the check can fail.
    let small =
        "SELECT COUNT(*) AS n FROM gold_fact_census_hourly WHERE occupied_beds BETWEEN 1 AND 10 \
                 OR admissions BETWEEN 1 AND 10 OR ed_boarders BETWEEN 1 AND 10";
    let small_cells = |id: &Identity| {
        let lake = lake.clone();
        let id = id.clone();
        let cache = &cache;
        async move {
            let access = Access {
                identity: &id,
                pseudonym_key: Some(KEY),
                audit: None,
                read_path: "t",
                cache: Some(cache),
            };
            let r = run_as(&lake, &access, small, limits()).await.unwrap();
            let n = cells(&r)[0]["n"].parse::<i64>().unwrap();
            (n, r.suppressed)
        }
    };
    let (admin_small, admin_flag) = small_cells(&roles[0]).await;
    assert!(
        admin_small > 0 && !admin_flag,
        "the lake has small cells: {admin_small}"
    );
    for id in [&roles[1], &roles[5]] {
        assert_eq!(small_cells(id).await, (0, true), "{}", id.subject);
    }
    println!("census cells with a count 1–10: admin {admin_small}, analyst 0, demo 0");

    // Every read is in the audit table; PHI reads say so.
    audit.flush().await;
    assert_eq!(audit.failures(), 0);
    let rows = lake
        .sql(
            &[SECURITY_AUDIT],
            "SELECT subject, role, decision, phi_returned, tables, rows_returned FROM security_audit",
        )
        .await
        .unwrap();
    assert!(batches_rows(&rows) > 0);
    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    let mut phi_by_subject: BTreeMap<String, usize> = BTreeMap::new();
    let mut denied = 0;
    for b in &rows {
        for i in 0..b.num_rows() {
            let s = array_value_to_string(b.column(0), i).unwrap();
            *by_subject.entry(s.clone()).or_default() += 1;
            if array_value_to_string(b.column(3), i).unwrap() == "true" {
                *phi_by_subject.entry(s).or_default() += 1;
            }
            if array_value_to_string(b.column(2), i).unwrap() == "denied" {
                denied += 1;
            }
        }
    }
    assert_eq!(by_subject, expected_audit);
    assert!(phi_by_subject.get("test-admin").copied().unwrap_or(0) >= phi_reads["test-admin"]);
    for masked in [
        "test-analyst",
        "test-operator",
        "test-hospital_manager",
        "anonymous-demo",
    ] {
        assert_eq!(
            phi_by_subject.get(masked),
            None,
            "{masked} received no identifiable PHI"
        );
    }
    assert!(
        phi_by_subject["test-department_staff"] > 0,
        "staff reads of their patients are PHI reads"
    );
    println!("audit rows: {by_subject:?}; PHI reads: {phi_by_subject:?}; denied: {denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    let mut settings = SecuritySettings::default();
    settings.tokens.hs256_key = Some(HS_KEY.into());
    settings.tokens.leeway_seconds = 0;
    let auth = Authenticator::new(settings.clone()).unwrap();
    let audit = AuditLog::start(lake.clone());
    let good = token::issue_hs256(
        HS_KEY.as_bytes(),
        &settings.tokens,
        "ann",
        Role::DepartmentStaff,
        &[Scope::parse("MHA01/ED").unwrap()],
        Duration::from_secs(300),
    )
    .unwrap();
    let mut other = settings.tokens.clone();
    other.audience = "another-app".into();
    let wrong_aud = token::issue_hs256(
        HS_KEY.as_bytes(),
        &other,
        "ann",
        Role::Admin,
        &[],
        Duration::from_secs(300),
    )
    .unwrap();
    let forged_key = token::issue_hs256(
        b"an-attackers-key-0123456789abcdef",
        &settings.tokens,
        "eve",
        Role::Admin,
        &[],
        Duration::from_secs(300),
    )
    .unwrap();
    let expired = token::issue_hs256(
        HS_KEY.as_bytes(),
        &settings.tokens,
        "ann",
        Role::Admin,
        &[],
        Duration::from_secs(0),
    )
    .unwrap();
    let mut tampered = good.clone();
    tampered.insert(good.find('.').unwrap() + 5, 'x');
    // base64 of {"claims":[{"typ":"oid","val":"eve"},{"typ":"roles","val":"admin"}]}
    let principal = "eyJjbGFpbXMiOlt7InR5cCI6Im9pZCIsInZhbCI6ImV2ZSJ9LHsidHlwIjoicm9sZXMiLCJ2YWwiOiJhZG1pbiJ9XX0=".to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let mut refused = 0;
    for (what, creds) in [
        ("missing", Credentials::default()),
        (
            "wrong audience",
            Credentials {
                bearer: Some(&wrong_aud),
                client_principal: None,
            },
        ),
        (
            "forged key",
            Credentials {
                bearer: Some(&forged_key),
                client_principal: None,
            },
        ),
        (
            "expired",
            Credentials {
                bearer: Some(&expired),
                client_principal: None,
            },
        ),
        (
            "tampered",
            Credentials {
                bearer: Some(&tampered),
                client_principal: None,
            },
        ),
        (
            "forged principal",
            Credentials {
                bearer: None,
                client_principal: Some(&principal),
            },
        ),
    ] {
        let r = auth.authenticate(creds);
        assert!(r.outcome.is_err(), "{what} must be refused");
        assert_eq!(r.forged_principal, what == "forged principal");
        let reason = format!("{what}: {}", r.outcome.unwrap_err());
        audit.record(
            AuditRecord::new(None, "test_auth", "SELECT * FROM silver_dim_patient").denied(reason),
        );
        refused += 1;
    }
    let ok = auth.authenticate(Credentials {
        bearer: Some(&good),
        client_principal: None,
    });
    let id = ok.outcome.unwrap();
    assert_eq!(
        (id.role, id.scopes_text().as_str()),
        (Role::DepartmentStaff, "MHA01/ED")
    );
    audit.flush().await;
    let rows = lake
        .sql(
            &[SECURITY_AUDIT],
            "SELECT COUNT(*) FROM security_audit WHERE decision = 'denied' AND rows_returned = 0",
        )
        .await
        .unwrap();
    assert_eq!(
        array_value_to_string(rows[0].column(0), 0).unwrap(),
        refused.to_string()
    );
    println!("refused and audited: {refused}");
}

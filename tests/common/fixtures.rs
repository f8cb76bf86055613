//! A small, hand-written hospital day: reference data, HL7 and JSON ADT messages (some late, out of
//! order, cancelled or dirty), and two days of EHR extracts, the second with new patient columns. Every
//! expected outcome in the tests is derived by hand from these lines.

use std::path::{Path, PathBuf};

use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::storage::Lake;

/// Where the fixture files were written.
pub struct Fixture {
    /// `reference/` folder.
    pub reference: PathBuf,
    /// `adt/` folder.
    pub adt: PathBuf,
    /// `ehr/` folder.
    pub ehr: PathBuf,
}

fn hl7(id: &str, trigger: &str, evn: &str, pid: &str, pv1: &str) -> String {
    format!("MSH|^~\\&|REG|MHA01|LAKE|MHA|{evn}||ADT^{trigger}|{id}|P|2.5\rEVN|{trigger}|{evn}||||{evn}\r{pid}\r{pv1}\n")
}

/// Writes the fixture under `dir`.
pub fn write(dir: &Path) -> Fixture {
    let reference = dir.join("reference");
    let adt = dir.join("adt");
    let ehr = dir.join("ehr");
    for d in [&reference, &adt, &ehr] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        reference.join("hospitals.csv"),
        "hospital_id,name,city,state,time_zone\nMHA01,Lakeside General,Chicago,IL,America/Chicago\nMHA02,Riverside,Columbus,OH,America/New_York\n",
    )
    .unwrap();
    std::fs::write(
        reference.join("departments.csv"),
        "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n\
         MHA01,ED,Emergency,Emergency,30,24,20,8,2026-01-01\n\
         MHA01,MED,Medical,Medical,40,32,28,10,2026-01-01\n\
         MHA01,ICU,Intensive Care,ICU,12,10,18,6,2026-01-01\n\
         MHA01,MED,Medical,Medical,40,38,30,10,2026-01-10\n\
         MHA02,ED,Emergency,Emergency,20,16,14,5,2026-01-01\n\
         MHA02,BAD,Broken,Medical,x,3,1,1,2026-01-01\n",
    )
    .unwrap();

    let pid1 = "PID|||P1^^^MHA01^MR||Doe^Jane||19800101|F|||1 Elm St^^Chicago^IL^60601";
    let pid2 = "PID|||P2^^^MHA01^MR||Roe^Rick||19500505|M|||9 Oak Ave^^Chicago^IL^60602";
    let mut file = String::new();
    // Encounter V1: ED arrival, admit to MED, transfer to ICU, discharge — the A02 arrives last (out of order).
    file += &hl7(
        "M1",
        "A04",
        "20260112080000-0600",
        pid1,
        "PV1||E|ED^1^A^MHA01||||||||||||||||V1",
    );
    file += &hl7(
        "M2",
        "A01",
        "20260112110000-0600",
        pid1,
        "PV1||I|MED^12^B^MHA01||||||||||||||||V1|||||||||||||||||||||||||20260112110000-0600",
    );
    let pid1_moved = "PID|||P1^^^MHA01^MR||Doe^Jane||19800101|F|||5 Lake Dr^^Chicago^IL^60611";
    file += &hl7("M4", "A03", "20260114090000-0600", pid1_moved, "PV1||I|ICU^3^A^MHA01||||||||||||||||V1|||||||||||||||||||||||||20260112110000-0600|20260114090000-0600");
    // Encounter V2: admitted, cancelled (A11) — the encounter did not happen.
    file += &hl7(
        "M5",
        "A01",
        "20260112130000-0600",
        pid2,
        "PV1||I|MED^14^A^MHA01||||||||||||||||V2|||||||||||||||||||||||||20260112130000-0600",
    );
    file += &hl7(
        "M6",
        "A11",
        "20260112131500-0600",
        pid2,
        "PV1||I|MED^14^A^MHA01||||||||||||||||V2",
    );
    // Encounter V3: admitted directly to MED with no admit time (repaired), still in house.
    file += &hl7(
        "M7",
        "A01",
        "20260113020000-0600",
        pid2,
        "PV1||I|MED^15^A^MHA01||||||||||||||||V3",
    );
    // Dirty: unknown department; future event time; a re-delivery of M1 (exact duplicate).
    file += &hl7(
        "M8",
        "A02",
        "20260113030000-0600",
        pid2,
        "PV1||I|XRAY9^1^A^MHA01||||||||||||||||V3",
    );
    file += &hl7(
        "M9",
        "A02",
        "20390113030000-0600",
        pid2,
        "PV1||I|ICU^2^A^MHA01||||||||||||||||V3",
    );
    file += &hl7(
        "M1",
        "A04",
        "20260112080000-0600",
        pid1,
        "PV1||E|ED^1^A^MHA01||||||||||||||||V1",
    );
    std::fs::write(adt.join("day1.hl7"), file).unwrap();
    // Late and out of order: the transfer of V1 to ICU, and an A08 moving Jane to a new address.
    let pid1_moved = "PID|||P1^^^MHA01^MR||Doe^Jane||19800101|F|||5 Lake Dr^^Chicago^IL^60611";
    let late = hl7(
        "M3",
        "A02",
        "20260113100000-0600",
        pid1,
        "PV1||I|ICU^3^A^MHA01|||MED^12^B|||||||||||||V1",
    ) + &hl7(
        "M10",
        "A08",
        "20260113120000-0600",
        pid1_moved,
        "PV1||I|ICU^3^A^MHA01||||||||||||||||V1",
    );
    std::fs::write(adt.join("day2.hl7"), late).unwrap();
    // A JSON event: registration at MHA02 with a local time without offset (repaired in New York time).
    std::fs::write(
        adt.join("mha02.ndjson"),
        r#"{"schema":"patientflow.adt.v1","message_id":"J1","event_type":"A04","facility":"MHA02","recorded_time":"2026-01-12T09:00:00","event_time":"2026-01-12T09:00:00","patient":{"mrn":"Q1","family_name":"Ng","given_name":"Bo","birth_date":"2001-02-03","sex":"M","attributes":{"preferred_language":"en"}},"visit":{"visit_number":"W1","patient_class":"E","department":"ED","room":"ED-2","bed":"ED-2-A"}}
"#,
    )
    .unwrap();

    std::fs::write(
        ehr.join("patients_2026-01-12.csv"),
        "patient_id,facility,first_name,last_name,birth_date,sex,street,city,state,zip,updated_at\n\
         P1,MHA01,Jane,Doe,1980-01-01,F,1 Elm St,Chicago,IL,60601,2026-01-12T08:00:00-06:00\n\
         P2,MHA01,Rick,Roe,1950-05-05,M,9 Oak Ave,Chicago,IL,60602,2026-01-12T13:00:00-06:00\n",
    )
    .unwrap();
    std::fs::write(
        ehr.join("patients_2026-01-13.csv"),
        "patient_id,facility,first_name,last_name,birth_date,sex,street,city,state,zip,updated_at,preferred_language,insurance_type\n\
         P2,MHA01,Rick,Roe,1950-05-05,M,9 Oak Ave,Chicago,IL,60602,2026-01-13T18:00:00-06:00,es,Medicare\n",
    )
    .unwrap();
    std::fs::write(
        ehr.join("encounters_2026-01-14.csv"),
        "encounter_id,patient_id,facility,department,patient_class,arrival_time,admit_time,discharge_time,updated_at\n\
         V1,P1,MHA01,ICU,I,2026-01-12T08:00:00-06:00,2026-01-12T11:00:00-06:00,2026-01-14T09:00:00-06:00,2026-01-14T10:00:00-06:00\n\
         V9,P2,MHA01,MED,I,2026-01-10T08:00:00-06:00,2026-01-10T09:00:00-06:00,2026-01-11T10:00:00-06:00,2026-01-14T10:00:00-06:00\n",
    )
    .unwrap();
    Fixture {
        reference,
        adt,
        ehr,
    }
}

/// Ingests the fixture into Bronze.
pub async fn ingest(lake: &Lake, f: &Fixture) {
    let quiet = |_: &str, _: usize| {};
    let r = bronze::reference::ingest_paths(
        lake,
        &[f.reference.display().to_string()],
        "fx-ref",
        &quiet,
    )
    .await
    .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = AdtIngestor::new(lake.clone())
        .ingest_paths(&[f.adt.display().to_string()], "fx-adt", &quiet)
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = bronze::ehr::ingest_paths(lake, &[f.ehr.display().to_string()], None, "fx-ehr", &quiet)
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

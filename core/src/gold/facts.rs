//! `fact_encounter` and `fact_location_stay`: Silver encounters and stays joined to the dimension
//! versions valid at the event time, with the derived flags the KPIs use.
//!
//! Per encounter (docs/kpis.md has the definitions):
//! - the **patient version** is the one valid at arrival (`patient_sk`, sex, birth date → ages);
//! - each stay joins the **department version** and the **patient version** valid at the stay's start;
//! - the **admission stay** of an admitted encounter is its first stay in a non-emergency department
//!   (the bed the patient was admitted to); without one, the stay holding the admission time;
//! - a stay starts by `arrival` (first stay), `admission`, `transfer` (another department before it) or
//!   `bed_move` (same department); it ends by `transfer`, `bed_move` or `discharge` (last stay);
//! - an emergency stay followed by the admission stay is **boarding** from 4 h after its start until it
//!   ends (no source carries the decision-to-admit time, see docs/kpis.md).

use chrono::NaiveDate;

use super::model::{Departments, Hospitals, PatientVersion, Patients, SilverEncounter, SilverStay};
use super::time::{age_at, band_label, date_key, local, month_key, HOUR_US, MINUTE_US};
use super::write::Columns;
use crate::Result;

/// ED time after which an admitted patient still in the ED counts as boarding.
pub const BOARDING_AFTER_US: i64 = 4 * HOUR_US;

/// One row of `fact_location_stay`.
#[derive(Debug, Clone, PartialEq)]
pub struct StayFact {
    pub encounter_key: String,
    pub stay_seq: i64,
    pub hospital_id: String,
    pub patient_key: Option<String>,
    pub patient_sk: Option<i64>,
    pub department_code: Option<String>,
    pub department_sk: Option<i64>,
    pub department_type: Option<String>,
    pub room: Option<String>,
    pub bed: Option<String>,
    pub start: i64,
    pub end: Option<i64>,
    pub start_date_key: i32,
    pub start_hour: i32,
    pub end_date_key: Option<i32>,
    pub start_event: Option<String>,
    pub end_event: Option<String>,
    pub start_reason: &'static str,
    pub end_reason: Option<&'static str>,
    pub prev_department: Option<String>,
    pub next_department: Option<String>,
    pub is_admission_stay: bool,
    pub boarding_start: Option<i64>,
    pub sex: Option<String>,
    pub age_at_start: Option<i32>,
    pub source: Option<String>,
}

/// One row of `fact_encounter`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncounterFact {
    pub encounter_key: String,
    pub hospital_id: String,
    pub visit_number: Option<String>,
    pub patient_key: Option<String>,
    pub patient_sk: Option<i64>,
    pub patient_class: Option<String>,
    pub status: String,
    pub source: Option<String>,
    pub arrival: Option<i64>,
    pub admit: Option<i64>,
    pub discharge: Option<i64>,
    pub arrival_date_key: Option<i32>,
    pub arrival_hour: Option<i32>,
    pub arrival_month_key: Option<i32>,
    pub admit_date_key: Option<i32>,
    pub admit_month_key: Option<i32>,
    pub discharge_date_key: Option<i32>,
    pub discharge_month_key: Option<i32>,
    pub first_department: Option<String>,
    pub first_department_sk: Option<i64>,
    pub admit_department: Option<String>,
    pub admit_department_sk: Option<i64>,
    pub last_department: Option<String>,
    pub last_department_sk: Option<i64>,
    pub sex: Option<String>,
    pub age_at_arrival: Option<i32>,
    pub age_at_admit: Option<i32>,
    pub is_admitted: bool,
    pub is_cancelled: bool,
    pub via_ed: bool,
    pub is_open: bool,
    pub ed_los_minutes: Option<f64>,
    pub admission_wait_minutes: Option<f64>,
    pub los_hours: Option<f64>,
    pub los_days: Option<i32>,
    pub silver_run_id: Option<String>,
}

fn age(v: Option<&PatientVersion>, t: i64) -> Option<i32> {
    let a = age_at(v?.birth?, t);
    (a >= 0).then_some(a)
}

fn local_keys(t: i64, zone: chrono_tz::Tz) -> (i32, i32, i32) {
    let (d, h): (NaiveDate, u32) = local(t, zone);
    (date_key(d), h as i32, month_key(d))
}

/// Builds the facts of one encounter from its Silver row and stays.
pub fn build(
    enc: &SilverEncounter,
    stays: &[SilverStay],
    hospitals: &Hospitals,
    departments: &Departments,
    patients: &Patients,
) -> (EncounterFact, Vec<StayFact>) {
    let h = enc.hospital_id.as_str();
    let zone = hospitals.zone(h);
    let is_emergency: Vec<bool> = stays
        .iter()
        .map(|s| departments.is_emergency(h, s.department.as_deref(), s.start))
        .collect();
    let is_admitted =
        enc.admit.is_some() && matches!(enc.status.as_str(), "admitted" | "discharged");
    let admission_stay = if is_admitted {
        admission_stay(stays, &is_emergency, enc.admit)
    } else {
        None
    };

    let patient_key = enc
        .patient_key
        .clone()
        .or_else(|| stays.first().and_then(|s| s.patient_key.clone()));
    let mut facts = Vec::with_capacity(stays.len());
    for (i, s) in stays.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| &stays[j]);
        let next = stays.get(i + 1);
        let start_reason = if Some(i) == admission_stay {
            "admission"
        } else if prev.is_none() {
            "arrival"
        } else if prev.is_some_and(|p| p.department != s.department) {
            "transfer"
        } else {
            "bed_move"
        };
        let end_reason = match (s.end, next) {
            (None, _) => None,
            (Some(_), None) => Some("discharge"),
            (Some(_), Some(n)) if n.department != s.department => Some("transfer"),
            (Some(_), Some(_)) => Some("bed_move"),
        };
        let boarding_start = (is_emergency[i] && admission_stay == Some(i + 1))
            .then_some(s.start + BOARDING_AFTER_US)
            .filter(|b| s.end.is_none_or(|e| *b < e));
        let pkey = s.patient_key.clone().or_else(|| patient_key.clone());
        let version = pkey.as_deref().and_then(|k| patients.at(k, s.start));
        let dept = s
            .department
            .as_deref()
            .and_then(|c| departments.at_or_first(h, c, s.start));
        let (sd, sh, _) = local_keys(s.start, zone);
        facts.push(StayFact {
            encounter_key: s.encounter_key.clone(),
            stay_seq: i as i64 + 1,
            hospital_id: s.hospital_id.clone(),
            patient_key: pkey,
            patient_sk: version.map(|v| v.sk),
            department_code: s.department.clone(),
            department_sk: dept.map(|d| d.sk),
            department_type: dept.and_then(|d| d.dtype.clone()),
            room: s.room.clone(),
            bed: s.bed.clone(),
            start: s.start,
            end: s.end,
            start_date_key: sd,
            start_hour: sh,
            end_date_key: s.end.map(|e| local_keys(e, zone).0),
            start_event: s.start_event.clone(),
            end_event: s.end_event.clone(),
            start_reason,
            end_reason,
            prev_department: prev.and_then(|p| p.department.clone()),
            next_department: next.and_then(|n| n.department.clone()),
            is_admission_stay: Some(i) == admission_stay,
            boarding_start,
            sex: version.and_then(|v| v.sex.clone()),
            age_at_start: age(version, s.start),
            source: s.source.clone(),
        });
    }

    // Arrival: Silver's (the registration, else the admission), or the first stay when that began
    // earlier (an ED stay before the admission, as FHIR encounters report it).
    let first_start = stays.first().map(|s| s.start);
    let arrival = match (enc.arrival.or(enc.admit), first_start) {
        (Some(a), Some(f)) => Some(a.min(f)),
        (a, f) => a.or(f),
    };
    let version = match (patient_key.as_deref(), arrival) {
        (Some(k), Some(t)) => patients.at(k, t),
        _ => None,
    };
    let dept_sk = |code: Option<&String>, t: Option<i64>| -> Option<i64> {
        Some(departments.at_or_first(h, code?, t?)?.sk)
    };
    let via_ed = is_emergency.first().copied().unwrap_or(false);
    let ed_end = if via_ed {
        match is_emergency.iter().position(|e| !e) {
            Some(j) => Some(stays[j].start),
            None => stays.last().and_then(|s| s.end),
        }
    } else {
        None
    };
    let adm = admission_stay.map(|i| &stays[i]);
    let last = stays.last();
    let discharged = enc.status == "discharged";
    let los = match (enc.admit, enc.discharge) {
        (Some(a), Some(d)) if discharged && is_admitted => Some((a, d)),
        _ => None,
    };
    let keys = |t: Option<i64>| t.map(|t| local_keys(t, zone));
    let (ak, adk, dk) = (keys(arrival), keys(enc.admit), keys(enc.discharge));
    let fact = EncounterFact {
        encounter_key: enc.key.clone(),
        hospital_id: enc.hospital_id.clone(),
        visit_number: enc.visit_number.clone(),
        patient_key,
        patient_sk: version.map(|v| v.sk),
        patient_class: enc.patient_class.clone(),
        status: enc.status.clone(),
        source: enc.source.clone(),
        arrival,
        admit: enc.admit,
        discharge: enc.discharge,
        arrival_date_key: ak.map(|k| k.0),
        arrival_hour: ak.map(|k| k.1),
        arrival_month_key: ak.map(|k| k.2),
        admit_date_key: adk.map(|k| k.0),
        admit_month_key: adk.map(|k| k.2),
        discharge_date_key: dk.map(|k| k.0),
        discharge_month_key: dk.map(|k| k.2),
        first_department: stays
            .first()
            .and_then(|s| s.department.clone())
            .or_else(|| enc.first_department.clone()),
        first_department_sk: dept_sk(
            stays.first().and_then(|s| s.department.as_ref()),
            stays.first().map(|s| s.start),
        ),
        admit_department: adm.and_then(|s| s.department.clone()),
        admit_department_sk: dept_sk(
            adm.and_then(|s| s.department.as_ref()),
            adm.map(|s| s.start),
        ),
        last_department: last
            .and_then(|s| s.department.clone())
            .or_else(|| enc.last_department.clone()),
        last_department_sk: dept_sk(
            last.and_then(|s| s.department.as_ref()),
            last.map(|s| s.start),
        ),
        sex: version.and_then(|v| v.sex.clone()),
        age_at_arrival: arrival.and_then(|t| age(version, t)),
        age_at_admit: enc
            .admit
            .filter(|_| is_admitted)
            .and_then(|t| age(version, t)),
        is_admitted,
        is_cancelled: enc.status == "cancelled",
        via_ed,
        is_open: is_admitted && enc.discharge.is_none(),
        ed_los_minutes: match (arrival, ed_end) {
            (Some(a), Some(e)) => Some((e - a) as f64 / MINUTE_US as f64),
            _ => None,
        },
        admission_wait_minutes: match (arrival, enc.admit) {
            (Some(a), Some(m)) if via_ed && is_admitted => Some((m - a) as f64 / MINUTE_US as f64),
            _ => None,
        },
        los_hours: los.map(|(a, d)| (d - a) as f64 / HOUR_US as f64),
        los_days: los.map(|(a, d)| {
            let (da, _) = local(a, zone);
            let (dd, _) = local(d, zone);
            (dd - da).num_days() as i32
        }),
        silver_run_id: enc.silver_run_id.clone(),
    };
    (fact, facts)
}

/// The stay the patient was admitted to (see the module docs).
fn admission_stay(
    stays: &[SilverStay],
    is_emergency: &[bool],
    admit: Option<i64>,
) -> Option<usize> {
    if stays.is_empty() {
        return None;
    }
    if let Some(i) = is_emergency.iter().position(|e| !e) {
        return Some(i);
    }
    let admit = admit?;
    stays
        .iter()
        .position(|s| s.start <= admit && s.end.is_none_or(|e| admit < e))
        .or_else(|| stays.iter().rposition(|s| s.start <= admit))
        .or(Some(0))
}

/// The `fact_encounter` batch.
pub fn encounter_batch(rows: &[EncounterFact]) -> Result<deltalake::arrow::array::RecordBatch> {
    let s = |f: &dyn Fn(&EncounterFact) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let mut c = Columns::new();
    c.str("encounter_key", s(&|r| Some(r.encounter_key.clone())))
        .str("hospital_id", s(&|r| Some(r.hospital_id.clone())))
        .str("visit_number", s(&|r| r.visit_number.clone()))
        .str("patient_key", s(&|r| r.patient_key.clone()))
        .i64("patient_sk", rows.iter().map(|r| r.patient_sk).collect())
        .str("patient_class", s(&|r| r.patient_class.clone()))
        .str("status", s(&|r| Some(r.status.clone())))
        .str("source", s(&|r| r.source.clone()))
        .ts("arrival_time", rows.iter().map(|r| r.arrival).collect())
        .ts("admit_time", rows.iter().map(|r| r.admit).collect())
        .ts("discharge_time", rows.iter().map(|r| r.discharge).collect())
        .i32(
            "arrival_date_key",
            rows.iter().map(|r| r.arrival_date_key).collect(),
        )
        .i32(
            "arrival_hour",
            rows.iter().map(|r| r.arrival_hour).collect(),
        )
        .i32(
            "arrival_month_key",
            rows.iter().map(|r| r.arrival_month_key).collect(),
        )
        .i32(
            "admit_date_key",
            rows.iter().map(|r| r.admit_date_key).collect(),
        )
        .i32(
            "admit_month_key",
            rows.iter().map(|r| r.admit_month_key).collect(),
        )
        .i32(
            "discharge_date_key",
            rows.iter().map(|r| r.discharge_date_key).collect(),
        )
        .i32(
            "discharge_month_key",
            rows.iter().map(|r| r.discharge_month_key).collect(),
        )
        .str("first_department", s(&|r| r.first_department.clone()))
        .i64(
            "first_department_sk",
            rows.iter().map(|r| r.first_department_sk).collect(),
        )
        .str("admit_department", s(&|r| r.admit_department.clone()))
        .i64(
            "admit_department_sk",
            rows.iter().map(|r| r.admit_department_sk).collect(),
        )
        .str("last_department", s(&|r| r.last_department.clone()))
        .i64(
            "last_department_sk",
            rows.iter().map(|r| r.last_department_sk).collect(),
        )
        .str("sex", s(&|r| r.sex.clone()))
        .i32(
            "age_at_arrival",
            rows.iter().map(|r| r.age_at_arrival).collect(),
        )
        .str(
            "age_band_at_arrival",
            s(&|r| Some(band_label(r.age_at_arrival).to_string())),
        )
        .i32(
            "age_at_admit",
            rows.iter().map(|r| r.age_at_admit).collect(),
        )
        .str(
            "age_band_at_admit",
            s(&|r| {
                r.is_admitted
                    .then(|| band_label(r.age_at_admit).to_string())
            }),
        )
        .bool(
            "is_admitted",
            rows.iter().map(|r| Some(r.is_admitted)).collect(),
        )
        .bool(
            "is_cancelled",
            rows.iter().map(|r| Some(r.is_cancelled)).collect(),
        )
        .bool("via_ed", rows.iter().map(|r| Some(r.via_ed)).collect())
        .bool("is_open", rows.iter().map(|r| Some(r.is_open)).collect())
        .f64(
            "ed_los_minutes",
            rows.iter().map(|r| r.ed_los_minutes).collect(),
        )
        .f64(
            "admission_wait_minutes",
            rows.iter().map(|r| r.admission_wait_minutes).collect(),
        )
        .f64("los_hours", rows.iter().map(|r| r.los_hours).collect())
        .i32("los_days", rows.iter().map(|r| r.los_days).collect())
        .bool(
            "is_same_day",
            rows.iter().map(|r| r.los_days.map(|d| d == 0)).collect(),
        )
        .str("silver_run_id", s(&|r| r.silver_run_id.clone()));
    c.finish()
}

/// The `fact_location_stay` batch.
pub fn stay_batch(rows: &[StayFact]) -> Result<deltalake::arrow::array::RecordBatch> {
    let s = |f: &dyn Fn(&StayFact) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let mut c = Columns::new();
    c.str("encounter_key", s(&|r| Some(r.encounter_key.clone())))
        .i64("stay_seq", rows.iter().map(|r| Some(r.stay_seq)).collect())
        .str("hospital_id", s(&|r| Some(r.hospital_id.clone())))
        .str("patient_key", s(&|r| r.patient_key.clone()))
        .i64("patient_sk", rows.iter().map(|r| r.patient_sk).collect())
        .str("department_code", s(&|r| r.department_code.clone()))
        .i64(
            "department_sk",
            rows.iter().map(|r| r.department_sk).collect(),
        )
        .str("department_type", s(&|r| r.department_type.clone()))
        .str("room", s(&|r| r.room.clone()))
        .str("bed", s(&|r| r.bed.clone()))
        .ts("start_time", rows.iter().map(|r| Some(r.start)).collect())
        .ts("end_time", rows.iter().map(|r| r.end).collect())
        .i32(
            "start_date_key",
            rows.iter().map(|r| Some(r.start_date_key)).collect(),
        )
        .i32(
            "start_hour",
            rows.iter().map(|r| Some(r.start_hour)).collect(),
        )
        .i32(
            "end_date_key",
            rows.iter().map(|r| r.end_date_key).collect(),
        )
        .f64(
            "duration_hours",
            rows.iter()
                .map(|r| r.end.map(|e| (e - r.start) as f64 / HOUR_US as f64))
                .collect(),
        )
        .bool(
            "is_open",
            rows.iter().map(|r| Some(r.end.is_none())).collect(),
        )
        .str("start_event", s(&|r| r.start_event.clone()))
        .str("end_event", s(&|r| r.end_event.clone()))
        .str("start_reason", s(&|r| Some(r.start_reason.to_string())))
        .str("end_reason", s(&|r| r.end_reason.map(str::to_string)))
        .str("prev_department", s(&|r| r.prev_department.clone()))
        .str("next_department", s(&|r| r.next_department.clone()))
        .bool(
            "is_admission_stay",
            rows.iter().map(|r| Some(r.is_admission_stay)).collect(),
        )
        .ts(
            "boarding_start",
            rows.iter().map(|r| r.boarding_start).collect(),
        )
        .str("sex", s(&|r| r.sex.clone()))
        .i32(
            "age_at_start",
            rows.iter().map(|r| r.age_at_start).collect(),
        )
        .str(
            "age_band_at_start",
            s(&|r| Some(band_label(r.age_at_start).to_string())),
        )
        .str("source", s(&|r| r.source.clone()));
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::model::DeptVersion;

    fn dept(code: &str, kind: &str) -> DeptVersion {
        DeptVersion {
            sk: code.len() as i64,
            code: code.into(),
            name: None,
            dtype: Some(kind.into()),
            licensed: Some(10),
            staffed: Some(8),
            nurses: None,
            physicians: None,
            from: 0,
            to: None,
        }
    }

    fn stay(seq: i64, dept: &str, start: i64, end: Option<i64>) -> SilverStay {
        SilverStay {
            encounter_key: "H|V1".into(),
            stay_seq: seq,
            hospital_id: "H".into(),
            patient_key: Some("H|P1".into()),
            department: Some(dept.into()),
            room: None,
            bed: None,
            start,
            end,
            start_event: None,
            end_event: None,
            source: None,
        }
    }

    #[test]
    fn ed_admission_transfer_and_boarding() {
        let mut departments = Departments::default();
        for (c, k) in [("ED", "Emergency"), ("MED", "Medical"), ("ICU", "ICU")] {
            departments
                .0
                .insert(("H".into(), c.into()), vec![dept(c, k)]);
        }
        let hour = HOUR_US;
        let enc = SilverEncounter {
            key: "H|V1".into(),
            hospital_id: "H".into(),
            visit_number: Some("V1".into()),
            patient_key: Some("H|P1".into()),
            patient_class: Some("I".into()),
            status: "discharged".into(),
            arrival: Some(0),
            admit: Some(6 * hour),
            discharge: Some(50 * hour),
            first_department: None,
            last_department: None,
            source: None,
            silver_run_id: None,
        };
        let stays = vec![
            stay(1, "ED", 0, Some(6 * hour)),
            stay(2, "MED", 6 * hour, Some(20 * hour)),
            stay(3, "ICU", 20 * hour, Some(50 * hour)),
        ];
        let (e, s) = build(
            &enc,
            &stays,
            &Hospitals::default(),
            &departments,
            &Patients::default(),
        );
        assert_eq!(
            s.iter().map(|x| x.start_reason).collect::<Vec<_>>(),
            ["arrival", "admission", "transfer"]
        );
        assert_eq!(
            s.iter().map(|x| x.end_reason).collect::<Vec<_>>(),
            [Some("transfer"), Some("transfer"), Some("discharge")]
        );
        assert_eq!(s[0].boarding_start, Some(4 * hour));
        assert_eq!(s[1].boarding_start, None);
        assert!(e.via_ed && e.is_admitted && !e.is_open);
        assert_eq!(e.admit_department.as_deref(), Some("MED"));
        assert_eq!(e.admission_wait_minutes, Some(360.0));
        assert_eq!(e.ed_los_minutes, Some(360.0));
        assert_eq!(e.los_hours, Some(44.0));
        assert_eq!(e.los_days, Some(2));
    }

    #[test]
    fn facts_join_the_versions_valid_at_the_event_not_the_current_ones() {
        use crate::gold::model::PatientVersion;
        let hour = HOUR_US;
        let mut departments = Departments::default();
        let mut med_v1 = dept("MED", "Medical");
        med_v1.to = Some(10 * hour);
        let mut med_v2 = dept("MED", "Medical");
        med_v2.sk = 99;
        med_v2.staffed = Some(12);
        med_v2.from = 10 * hour;
        departments
            .0
            .insert(("H".into(), "MED".into()), vec![med_v1, med_v2]);
        departments
            .0
            .insert(("H".into(), "ICU".into()), vec![dept("ICU", "ICU")]);
        let birth = chrono::NaiveDate::from_ymd_opt(1960, 1, 1);
        let mut patients = Patients::default();
        patients.0.insert(
            "H|P1".into(),
            vec![
                PatientVersion {
                    sk: 1,
                    from: 0,
                    to: Some(5 * hour),
                    sex: Some("F".into()),
                    birth,
                },
                PatientVersion {
                    sk: 2,
                    from: 5 * hour,
                    to: None,
                    sex: Some("M".into()),
                    birth,
                },
            ],
        );
        let enc = SilverEncounter {
            key: "H|V1".into(),
            hospital_id: "H".into(),
            visit_number: None,
            patient_key: Some("H|P1".into()),
            patient_class: None,
            status: "admitted".into(),
            arrival: Some(hour),
            admit: Some(hour),
            discharge: None,
            first_department: None,
            last_department: None,
            source: None,
            silver_run_id: None,
        };
        let stays = vec![
            stay(1, "MED", hour, Some(12 * hour)),
            stay(2, "ICU", 12 * hour, None),
        ];
        let (e, s) = build(&enc, &stays, &Hospitals::default(), &departments, &patients);
        // The encounter carries the patient version valid at arrival, not the current one.
        assert_eq!((e.patient_sk, e.sex.as_deref()), (Some(1), Some("F")));
        // Each stay: the patient version and department version valid at its start.
        assert_eq!((s[0].patient_sk, s[0].department_sk), (Some(1), Some(3)));
        assert_eq!((s[1].patient_sk, s[1].sex.as_deref()), (Some(2), Some("M")));
        assert_eq!(
            e.admit_department_sk,
            Some(3),
            "MED version valid at the admission, not the later one"
        );
        assert!(e.is_open && e.los_hours.is_none(), "open stays have no LOS");
    }
}

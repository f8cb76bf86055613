//! Ground-truth files (`truth/`): the clean facts behind the (possibly dirty) source files.

use crate::io::Outputs;
use crate::model::HospSim;
use crate::time;
use crate::SimError;

/// Header of `truth/location_stays.csv`.
pub const STAYS_HEADER: [&str; 8] = [
    "encounter_id",
    "patient_id",
    "hospital_id",
    "department_code",
    "room",
    "bed",
    "start_utc",
    "end_utc",
];
/// Header of `truth/encounters.csv`.
pub const ENCOUNTERS_HEADER: [&str; 11] = [
    "encounter_id",
    "patient_id",
    "hospital_id",
    "patient_class",
    "arrival_utc",
    "admit_decision_utc",
    "admit_utc",
    "discharge_utc",
    "cancelled",
    "first_department",
    "last_department",
];
/// Header of `truth/patient_history.csv`.
pub const PATIENT_HISTORY_HEADER: [&str; 13] = [
    "patient_id",
    "valid_from_utc",
    "valid_to_utc",
    "family_name",
    "given_name",
    "birth_date",
    "sex",
    "street",
    "city",
    "state",
    "zip",
    "preferred_language",
    "insurance_type",
];

fn utc_or_empty(t: i64) -> String {
    if t < 0 {
        String::new()
    } else {
        time::rfc3339_utc(t)
    }
}

/// Counts of the truth tables.
#[derive(Debug, Default, Clone, Copy)]
pub struct TruthCounts {
    pub encounters: u64,
    pub ed_visits: u64,
    pub inpatient_admissions: u64,
    pub cancelled: u64,
    pub stays: u64,
    pub patients: u64,
    pub patient_versions: u64,
}

/// Write the encounter, stay and patient truth of every hospital.
pub fn write_truth(out: &mut Outputs, sims: &[HospSim]) -> Result<TruthCounts, SimError> {
    let mut c = TruthCounts::default();

    let mut f = out.create("truth/location_stays.csv")?;
    f.csv_row(&STAYS_HEADER)?;
    for sim in sims {
        let fac = sim.id();
        let mut order: Vec<u32> = (0..sim.stays.len() as u32).collect();
        order.sort_by_key(|i| {
            let s = &sim.stays[*i as usize];
            (s.enc, s.start, *i)
        });
        for i in order {
            let s = &sim.stays[i as usize];
            let enc = &sim.encs[s.enc as usize];
            let pat = &sim.patients[enc.patient as usize];
            let (room, bed) = s.loc.ids();
            f.csv_row(&[
                format!("{fac}-V{:07}", enc.num),
                format!("{fac}-P{:07}", pat.num),
                fac.to_string(),
                s.loc.dept.code().to_string(),
                room,
                bed,
                time::rfc3339_utc(s.start),
                utc_or_empty(s.end),
            ])?;
            c.stays += 1;
        }
    }
    out.close(f)?;

    let mut f = out.create("truth/encounters.csv")?;
    f.csv_row(&ENCOUNTERS_HEADER)?;
    for sim in sims {
        let fac = sim.id();
        for enc in &sim.encs {
            if !enc.seen() {
                continue;
            }
            let pat = &sim.patients[enc.patient as usize];
            let class = if enc.inpatient || enc.path != crate::model::Path::Ed {
                "I"
            } else {
                "E"
            };
            f.csv_row(&[
                format!("{fac}-V{:07}", enc.num),
                format!("{fac}-P{:07}", pat.num),
                fac.to_string(),
                class.to_string(),
                time::rfc3339_utc(enc.arrival),
                utc_or_empty(enc.decision),
                utc_or_empty(enc.admit),
                utc_or_empty(enc.discharge),
                enc.cancelled.to_string(),
                enc.first_dept.map(|d| d.code()).unwrap_or("").to_string(),
                enc.last_dept.map(|d| d.code()).unwrap_or("").to_string(),
            ])?;
            c.encounters += 1;
            if enc.cancelled {
                c.cancelled += 1;
            } else if enc.inpatient {
                c.inpatient_admissions += 1;
            }
            if enc.path == crate::model::Path::Ed {
                c.ed_visits += 1;
            }
        }
    }
    out.close(f)?;

    let mut f = out.create("truth/patient_history.csv")?;
    f.csv_row(&PATIENT_HISTORY_HEADER)?;
    for sim in sims {
        let fac = sim.id();
        for pat in &sim.patients {
            if !pat.seen {
                continue;
            }
            c.patients += 1;
            for (i, (from, a)) in pat.versions.iter().enumerate() {
                let to = pat
                    .versions
                    .get(i + 1)
                    .map(|v| time::rfc3339_utc(v.0))
                    .unwrap_or_default();
                let town = sim.plan.spec.towns[a.town as usize];
                f.csv_row(&[
                    format!("{fac}-P{:07}", pat.num),
                    time::rfc3339_utc(*from),
                    to,
                    a.family_name().to_string(),
                    a.given_name().to_string(),
                    time::ymd(a.birth as i64),
                    a.sex_code().to_string(),
                    a.street_line(),
                    town.0.to_string(),
                    town.1.to_string(),
                    format!("{:05}", a.zip),
                    a.language().unwrap_or("").to_string(),
                    a.insurance().unwrap_or("").to_string(),
                ])?;
                c.patient_versions += 1;
            }
        }
    }
    out.close(f)?;
    Ok(c)
}

//! What Gold reads from Silver, in memory: hospitals, dimension versions (SCD2), encounters and stays.
//!
//! Dimension lookups are *as of* an instant: the version with `valid_from <= t < valid_to`. When an event
//! precedes a key's first version (for instance when the message that registered a patient was lost and
//! the patient is first known from a later message) the first version is used; this is the only
//! fallback, and it is documented in docs/kpis.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::time::micros;
use super::write::in_list;
use crate::silver;
use crate::storage::columns::{dates, ints, strings, timestamps};
use crate::storage::Lake;
use crate::Result;

/// Above this many keys, loaders read the whole table and filter in memory instead of sending an
/// `IN (...)` list.
const IN_LIST_LIMIT: usize = 4_000;

/// A hospital (latest metadata).
#[derive(Debug, Clone)]
pub struct Hospital {
    /// Hospital id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
    /// IANA zone name.
    pub zone_name: String,
    /// Zone.
    pub zone: Tz,
}

/// Every hospital, by id.
#[derive(Debug, Clone, Default)]
pub struct Hospitals(pub BTreeMap<String, Hospital>);

impl Hospitals {
    /// The zone of a hospital (UTC for an unknown one).
    pub fn zone(&self, id: &str) -> Tz {
        self.0.get(id).map_or(chrono_tz::UTC, |h| h.zone)
    }
}

/// One version of a department.
#[derive(Debug, Clone)]
pub struct DeptVersion {
    /// Surrogate key of the version.
    pub sk: i64,
    /// Department code.
    pub code: String,
    /// Name.
    pub name: Option<String>,
    /// Type (`Emergency`, `ICU`, …).
    pub dtype: Option<String>,
    /// Licensed beds.
    pub licensed: Option<i64>,
    /// Staffed beds.
    pub staffed: Option<i64>,
    /// Nurses.
    pub nurses: Option<i64>,
    /// Physicians.
    pub physicians: Option<i64>,
    /// Valid from (inclusive), UTC µs.
    pub from: i64,
    /// Valid to (exclusive), UTC µs; `None` for the current version.
    pub to: Option<i64>,
}

impl DeptVersion {
    /// True for an emergency department (its occupants are not inpatients).
    pub fn is_emergency(&self) -> bool {
        self.dtype
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("emergency"))
    }
}

/// Every department version, by (hospital, department code), in `valid_from` order.
#[derive(Debug, Clone, Default)]
pub struct Departments(pub BTreeMap<(String, String), Vec<DeptVersion>>);

impl Departments {
    /// The version valid at `t`.
    pub fn at(&self, hospital: &str, code: &str, t: i64) -> Option<&DeptVersion> {
        let versions = self.0.get(&(hospital.to_string(), code.to_string()))?;
        versions
            .iter()
            .find(|v| v.from <= t && v.to.is_none_or(|to| t < to))
    }

    /// The version valid at `t`, else the first version (an event before the department's first
    /// effective date).
    pub fn at_or_first(&self, hospital: &str, code: &str, t: i64) -> Option<&DeptVersion> {
        let versions = self.0.get(&(hospital.to_string(), code.to_string()))?;
        versions
            .iter()
            .find(|v| v.from <= t && v.to.is_none_or(|to| t < to))
            .or_else(|| versions.first())
    }

    /// True when the department is an emergency department (as of `t`).
    pub fn is_emergency(&self, hospital: &str, code: Option<&str>, t: i64) -> bool {
        code.and_then(|c| self.at_or_first(hospital, c, t))
            .is_some_and(DeptVersion::is_emergency)
    }

    /// Department codes of a hospital.
    pub fn codes(&self, hospital: &str) -> BTreeSet<String> {
        self.0
            .keys()
            .filter(|(h, _)| h == hospital)
            .map(|(_, c)| c.clone())
            .collect()
    }
}

/// One version of a patient, with what Gold needs of it.
#[derive(Debug, Clone)]
pub struct PatientVersion {
    /// Surrogate key of the version.
    pub sk: i64,
    /// Valid from (inclusive), UTC µs.
    pub from: i64,
    /// Valid to (exclusive), UTC µs.
    pub to: Option<i64>,
    /// HL7 0001 sex code.
    pub sex: Option<String>,
    /// Birth date.
    pub birth: Option<NaiveDate>,
}

/// Patient versions by patient key, in `valid_from` order.
#[derive(Debug, Clone, Default)]
pub struct Patients(pub HashMap<String, Vec<PatientVersion>>);

impl Patients {
    /// The version valid at `t`, else the first version when `t` precedes it.
    pub fn at(&self, key: &str, t: i64) -> Option<&PatientVersion> {
        let versions = self.0.get(key)?;
        versions
            .iter()
            .find(|v| v.from <= t && v.to.is_none_or(|to| t < to))
            .or_else(|| versions.first().filter(|f| t < f.from))
    }

    /// Splits `[from, to)` at the patient's version boundaries: each piece with the version valid in it
    /// (the first version before the first `valid_from`).
    pub fn segments(
        &self,
        key: Option<&str>,
        from: i64,
        to: Option<i64>,
    ) -> Vec<(i64, Option<i64>, Option<&PatientVersion>)> {
        let Some(versions) = key.and_then(|k| self.0.get(k)) else {
            return vec![(from, to, None)];
        };
        let mut cuts: Vec<i64> = versions
            .iter()
            .skip(1)
            .map(|v| v.from)
            .filter(|b| *b > from && to.is_none_or(|t| *b < t))
            .collect();
        cuts.dedup();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut start = from;
        for c in cuts {
            out.push((start, Some(c), self.at_key(versions, start)));
            start = c;
        }
        out.push((start, to, self.at_key(versions, start)));
        out
    }

    fn at_key<'a>(&self, versions: &'a [PatientVersion], t: i64) -> Option<&'a PatientVersion> {
        versions
            .iter()
            .find(|v| v.from <= t && v.to.is_none_or(|to| t < to))
            .or_else(|| versions.first().filter(|f| t < f.from))
    }
}

/// An encounter as Silver has it.
#[derive(Debug, Clone)]
pub struct SilverEncounter {
    /// `<hospital>|<visit>`.
    pub key: String,
    /// Hospital.
    pub hospital_id: String,
    /// Visit number.
    pub visit_number: Option<String>,
    /// Patient key.
    pub patient_key: Option<String>,
    /// HL7 0004 class.
    pub patient_class: Option<String>,
    /// `registered`, `admitted`, `discharged`, `cancelled`, `incomplete`.
    pub status: String,
    /// Arrival, µs.
    pub arrival: Option<i64>,
    /// Admission, µs.
    pub admit: Option<i64>,
    /// Discharge, µs.
    pub discharge: Option<i64>,
    /// First department.
    pub first_department: Option<String>,
    /// Last department.
    pub last_department: Option<String>,
    /// `adt`, `ehr`, `adt+ehr`.
    pub source: Option<String>,
    /// The Silver run that last rebuilt the row.
    pub silver_run_id: Option<String>,
}

/// A location stay as Silver has it.
#[derive(Debug, Clone)]
pub struct SilverStay {
    /// Encounter key.
    pub encounter_key: String,
    /// 1-based sequence within the encounter.
    pub stay_seq: i64,
    /// Hospital.
    pub hospital_id: String,
    /// Patient key.
    pub patient_key: Option<String>,
    /// Department code.
    pub department: Option<String>,
    /// Room.
    pub room: Option<String>,
    /// Bed.
    pub bed: Option<String>,
    /// Start, µs.
    pub start: i64,
    /// End, µs (`None` while open).
    pub end: Option<i64>,
    /// Event that opened the stay.
    pub start_event: Option<String>,
    /// Event that closed it.
    pub end_event: Option<String>,
    /// Source of the encounter.
    pub source: Option<String>,
}

fn ts(v: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    v.map(micros)
}

/// Loads the hospitals.
pub async fn load_hospitals(lake: &Lake) -> Result<Hospitals> {
    let mut out = Hospitals::default();
    if lake.open_table(silver::HOSPITALS).await?.is_none() {
        return Ok(out);
    }
    for b in lake
        .sql(&[silver::HOSPITALS], "SELECT * FROM silver_hospitals")
        .await?
    {
        let id = strings(&b, "hospital_id")?;
        let name = strings(&b, "name")?;
        let city = strings(&b, "city")?;
        let state = strings(&b, "state")?;
        let tz = strings(&b, "time_zone")?;
        for i in 0..b.num_rows() {
            let Some(hid) = id[i].clone() else { continue };
            let zone_name = tz[i].clone().unwrap_or_else(|| "UTC".into());
            let zone = zone_name.parse::<Tz>().unwrap_or(chrono_tz::UTC);
            out.0.insert(
                hid.clone(),
                Hospital {
                    id: hid,
                    name: name[i].clone(),
                    city: city[i].clone(),
                    state: state[i].clone(),
                    zone_name,
                    zone,
                },
            );
        }
    }
    Ok(out)
}

/// Loads every department version.
pub async fn load_departments(lake: &Lake) -> Result<Departments> {
    let mut out = Departments::default();
    if lake.open_table(silver::DIM_DEPARTMENT).await?.is_none() {
        return Ok(out);
    }
    let sql = "SELECT department_sk, hospital_id, department_code, department_name, department_type, licensed_beds, \
               staffed_beds, nurses, physicians, valid_from, valid_to FROM silver_dim_department";
    for b in lake.sql(&[silver::DIM_DEPARTMENT], sql).await? {
        let sk = ints(&b, "department_sk")?;
        let h = strings(&b, "hospital_id")?;
        let c = strings(&b, "department_code")?;
        let name = strings(&b, "department_name")?;
        let t = strings(&b, "department_type")?;
        let lic = ints(&b, "licensed_beds")?;
        let st = ints(&b, "staffed_beds")?;
        let nu = ints(&b, "nurses")?;
        let ph = ints(&b, "physicians")?;
        let from = timestamps(&b, "valid_from")?;
        let to = timestamps(&b, "valid_to")?;
        for i in 0..b.num_rows() {
            let (Some(h), Some(c), Some(from)) = (h[i].clone(), c[i].clone(), ts(from[i])) else {
                continue;
            };
            out.0.entry((h, c.clone())).or_default().push(DeptVersion {
                sk: sk[i].unwrap_or_default(),
                code: c,
                name: name[i].clone(),
                dtype: t[i].clone(),
                licensed: lic[i],
                staffed: st[i],
                nurses: nu[i],
                physicians: ph[i],
                from,
                to: ts(to[i]),
            });
        }
    }
    for versions in out.0.values_mut() {
        versions.sort_by_key(|v| v.from);
    }
    Ok(out)
}

/// Loads the versions of the given patients (all patients for `None`).
pub async fn load_patients(lake: &Lake, keys: Option<&BTreeSet<String>>) -> Result<Patients> {
    let mut out = Patients::default();
    if lake.open_table(silver::DIM_PATIENT).await?.is_none() || keys.is_some_and(|k| k.is_empty()) {
        return Ok(out);
    }
    let filter = match keys {
        Some(k) if k.len() <= IN_LIST_LIMIT => format!(" WHERE {}", in_list("patient_key", k)),
        _ => String::new(),
    };
    let sql = format!("SELECT patient_key, patient_sk, valid_from, valid_to, sex, birth_date FROM silver_dim_patient{filter}");
    for b in lake.sql(&[silver::DIM_PATIENT], &sql).await? {
        let key = strings(&b, "patient_key")?;
        let sk = ints(&b, "patient_sk")?;
        let from = timestamps(&b, "valid_from")?;
        let to = timestamps(&b, "valid_to")?;
        let sex = strings(&b, "sex")?;
        let birth = dates(&b, "birth_date")?;
        for i in 0..b.num_rows() {
            let (Some(k), Some(from)) = (key[i].clone(), ts(from[i])) else {
                continue;
            };
            if keys.is_some_and(|ks| !ks.contains(&k)) {
                continue;
            }
            out.0.entry(k).or_default().push(PatientVersion {
                sk: sk[i].unwrap_or_default(),
                from,
                to: ts(to[i]),
                sex: sex[i].clone(),
                birth: birth[i],
            });
        }
    }
    for versions in out.0.values_mut() {
        versions.sort_by_key(|v| v.from);
    }
    Ok(out)
}

/// Loads the given encounters (all for `None`).
pub async fn load_encounters(
    lake: &Lake,
    keys: Option<&BTreeSet<String>>,
) -> Result<Vec<SilverEncounter>> {
    let mut out = Vec::new();
    if lake.open_table(silver::ENCOUNTERS).await?.is_none() || keys.is_some_and(|k| k.is_empty()) {
        return Ok(out);
    }
    let filter = match keys {
        Some(k) if k.len() <= IN_LIST_LIMIT => format!(" WHERE {}", in_list("encounter_key", k)),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT encounter_key, hospital_id, visit_number, patient_key, patient_class, status, arrival_time, admit_time, \
         discharge_time, first_department, last_department, source, silver_run_id FROM silver_encounters{filter}"
    );
    for b in lake.sql(&[silver::ENCOUNTERS], &sql).await? {
        let key = strings(&b, "encounter_key")?;
        let hospital = strings(&b, "hospital_id")?;
        let visit = strings(&b, "visit_number")?;
        let patient = strings(&b, "patient_key")?;
        let class = strings(&b, "patient_class")?;
        let status = strings(&b, "status")?;
        let arrival = timestamps(&b, "arrival_time")?;
        let admit = timestamps(&b, "admit_time")?;
        let discharge = timestamps(&b, "discharge_time")?;
        let first = strings(&b, "first_department")?;
        let last = strings(&b, "last_department")?;
        let source = strings(&b, "source")?;
        let run = strings(&b, "silver_run_id")?;
        for i in 0..b.num_rows() {
            let (Some(k), Some(h)) = (key[i].clone(), hospital[i].clone()) else {
                continue;
            };
            if keys.is_some_and(|ks| !ks.contains(&k)) {
                continue;
            }
            out.push(SilverEncounter {
                key: k,
                hospital_id: h,
                visit_number: visit[i].clone(),
                patient_key: patient[i].clone().filter(|p| !p.is_empty()),
                patient_class: class[i].clone(),
                status: status[i].clone().unwrap_or_default(),
                arrival: ts(arrival[i]),
                admit: ts(admit[i]),
                discharge: ts(discharge[i]),
                first_department: first[i].clone(),
                last_department: last[i].clone(),
                source: source[i].clone(),
                silver_run_id: run[i].clone(),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Loads the stays of the given encounters (all for `None`), by encounter key, in stay order.
pub async fn load_stays(
    lake: &Lake,
    keys: Option<&BTreeSet<String>>,
) -> Result<HashMap<String, Vec<SilverStay>>> {
    let mut out: HashMap<String, Vec<SilverStay>> = HashMap::new();
    if lake.open_table(silver::LOCATION_STAYS).await?.is_none()
        || keys.is_some_and(|k| k.is_empty())
    {
        return Ok(out);
    }
    let filter = match keys {
        Some(k) if k.len() <= IN_LIST_LIMIT => format!(" WHERE {}", in_list("encounter_key", k)),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT encounter_key, stay_seq, hospital_id, patient_key, department, room, bed, start_time, end_time, \
         start_event, end_event, source FROM silver_location_stays{filter}"
    );
    for b in lake.sql(&[silver::LOCATION_STAYS], &sql).await? {
        let key = strings(&b, "encounter_key")?;
        let seq = ints(&b, "stay_seq")?;
        let hospital = strings(&b, "hospital_id")?;
        let patient = strings(&b, "patient_key")?;
        let dept = strings(&b, "department")?;
        let room = strings(&b, "room")?;
        let bed = strings(&b, "bed")?;
        let start = timestamps(&b, "start_time")?;
        let end = timestamps(&b, "end_time")?;
        let se = strings(&b, "start_event")?;
        let ee = strings(&b, "end_event")?;
        let source = strings(&b, "source")?;
        for i in 0..b.num_rows() {
            let (Some(k), Some(h), Some(s)) = (key[i].clone(), hospital[i].clone(), ts(start[i]))
            else {
                continue;
            };
            if keys.is_some_and(|ks| !ks.contains(&k)) {
                continue;
            }
            out.entry(k.clone()).or_default().push(SilverStay {
                encounter_key: k,
                stay_seq: seq[i].unwrap_or_default(),
                hospital_id: h,
                patient_key: patient[i].clone().filter(|p| !p.is_empty()),
                department: dept[i].clone(),
                room: room[i].clone(),
                bed: bed[i].clone(),
                start: s,
                end: ts(end[i]),
                start_event: se[i].clone(),
                end_event: ee[i].clone(),
                source: source[i].clone(),
            });
        }
    }
    for stays in out.values_mut() {
        stays.sort_by_key(|s| (s.stay_seq, s.start));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(sk: i64, from: i64, to: Option<i64>, sex: &str) -> PatientVersion {
        PatientVersion {
            sk,
            from,
            to,
            sex: Some(sex.into()),
            birth: None,
        }
    }

    #[test]
    fn versions_as_of_and_segments() {
        let mut p = Patients::default();
        p.0.insert(
            "k".into(),
            vec![v(1, 10, Some(20), "F"), v(2, 20, None, "M")],
        );
        assert_eq!(
            p.at("k", 5).map(|x| x.sk),
            Some(1),
            "before the first version: the first"
        );
        assert_eq!(p.at("k", 10).map(|x| x.sk), Some(1));
        assert_eq!(p.at("k", 20).map(|x| x.sk), Some(2));
        let segs: Vec<_> = p
            .segments(Some("k"), 5, Some(30))
            .into_iter()
            .map(|(a, b, v)| (a, b, v.map(|v| v.sk)))
            .collect();
        assert_eq!(segs, vec![(5, Some(20), Some(1)), (20, Some(30), Some(2))]);
        let segs: Vec<_> = p
            .segments(Some("k"), 25, None)
            .into_iter()
            .map(|(a, b, v)| (a, b, v.map(|v| v.sk)))
            .collect();
        assert_eq!(segs, vec![(25, None, Some(2))]);
        assert_eq!(p.segments(Some("x"), 1, None).len(), 1);
    }
}

//! `fact_census_hourly`: per hospital, department and hour, the beds occupied at the top of the hour
//! (by sex and age band), the staffed beds of the department version valid at that hour, and the flows
//! (arrivals, admissions, transfers in and out, discharges) during the hour.
//!
//! Computed with one sweep per hospital over sorted stay boundaries: every stay (split where the
//! patient's SCD2 version changes and where the patient enters a new age band) adds +1 at the first hour
//! boundary at or after its start and −1 at the first boundary at or after its end into difference
//! arrays; a running sum gives each hour's snapshot. Cost: O(stays + hours × departments), never a scan of
//! all stays per hour.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono_tz::Tz;
use deltalake::arrow::array::RecordBatch;

use super::model::{Departments, Patients};
use super::time::{
    age_at, band_changes, band_index, date_key, hour_ceil, hour_floor, local, month_key, round4,
    sex_group, HOUR_US,
};
use super::write::Columns;
use crate::Result;

/// What the census needs of a stay (a `fact_location_stay` row).
#[derive(Debug, Clone, PartialEq)]
pub struct CensusStay {
    /// Encounter key.
    pub encounter_key: String,
    /// Hospital.
    pub hospital_id: String,
    /// Department code (stays without one are not counted).
    pub department: Option<String>,
    /// Patient key.
    pub patient_key: Option<String>,
    /// Start, µs.
    pub start: i64,
    /// End, µs; `None` while open.
    pub end: Option<i64>,
    /// 1-based position in the encounter.
    pub stay_seq: i64,
    /// True for the stay the patient was admitted to.
    pub is_admission_stay: bool,
    /// `transfer`, `bed_move`, `discharge` or `None` (open).
    pub end_reason: Option<String>,
    /// Department of the previous stay.
    pub prev_department: Option<String>,
    /// Department of the next stay.
    pub next_department: Option<String>,
    /// Boarding from this instant (emergency stays followed by the admission).
    pub boarding_start: Option<i64>,
}

impl From<&super::facts::StayFact> for CensusStay {
    fn from(s: &super::facts::StayFact) -> Self {
        CensusStay {
            encounter_key: s.encounter_key.clone(),
            hospital_id: s.hospital_id.clone(),
            department: s.department_code.clone(),
            patient_key: s.patient_key.clone(),
            start: s.start,
            end: s.end,
            stay_seq: s.stay_seq,
            is_admission_stay: s.is_admission_stay,
            end_reason: s.end_reason.map(str::to_string),
            prev_department: s.prev_department.clone(),
            next_department: s.next_department.clone(),
            boarding_start: s.boarding_start,
        }
    }
}

/// Hours `[first, last]` (inclusive hour indices) of one hospital to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First hour index.
    pub first: i64,
    /// Last hour index.
    pub last: i64,
}

// Measures, in order.
const TOTAL: usize = 0;
const SEX: usize = 1; // 4 groups
const BAND: usize = 5; // 5 bands + unknown
const ED_BOARDERS: usize = 11;
const WAITING: usize = 12;
const ARRIVALS: usize = 13;
const ADMISSIONS: usize = 14;
const DISCHARGES: usize = 15;
const TRANSFERS_IN: usize = 16;
const TRANSFERS_OUT: usize = 17;
const MEASURES: usize = 18;

/// Census rows, column by column.
#[derive(Debug, Default)]
pub struct CensusRows {
    hospital: Vec<Option<String>>,
    department: Vec<Option<String>>,
    department_sk: Vec<Option<i64>>,
    hour: Vec<Option<i64>>,
    date_key: Vec<Option<i32>>,
    hour_of_day: Vec<Option<i32>>,
    month_key: Vec<Option<i32>>,
    staffed: Vec<Option<i64>>,
    licensed: Vec<Option<i64>>,
    pct: Vec<Option<f64>>,
    measures: [Vec<Option<i64>>; MEASURES],
}

impl CensusRows {
    /// Rows so far.
    pub fn len(&self) -> usize {
        self.hour.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.hour.is_empty()
    }

    /// The `fact_census_hourly` batch.
    pub fn batch(self) -> Result<RecordBatch> {
        let [total, f, m, o, u, b0, b1, b2, b3, b4, bu, edb, wait, arr, adm, dis, tin, tout] =
            self.measures;
        let mut c = Columns::new();
        c.str("hospital_id", self.hospital)
            .str("department_code", self.department)
            .i64("department_sk", self.department_sk)
            .ts("hour_start", self.hour)
            .i32("date_key", self.date_key)
            .i32("hour_of_day", self.hour_of_day)
            .i32("month_key", self.month_key)
            .i64("staffed_beds", self.staffed)
            .i64("licensed_beds", self.licensed)
            .i64("occupied_beds", total)
            .f64("occupancy_pct", self.pct)
            .i64("occupied_female", f)
            .i64("occupied_male", m)
            .i64("occupied_other", o)
            .i64("occupied_unknown_sex", u)
            .i64("occupied_age_0_17", b0)
            .i64("occupied_age_18_44", b1)
            .i64("occupied_age_45_64", b2)
            .i64("occupied_age_65_84", b3)
            .i64("occupied_age_85_plus", b4)
            .i64("occupied_age_unknown", bu)
            .i64("arrivals", arr)
            .i64("admissions", adm)
            .i64("discharges", dis)
            .i64("transfers_in", tin)
            .i64("transfers_out", tout)
            .i64("ed_boarders", edb)
            .i64("boarders_waiting", wait);
        c.finish()
    }
}

struct Sweep {
    first: i64,
    n: usize,
    depts: BTreeMap<String, usize>,
    cells: Vec<i64>,
}

impl Sweep {
    fn new(window: Window, codes: &BTreeSet<String>) -> Sweep {
        let n = (window.last - window.first + 1).max(0) as usize;
        let depts: BTreeMap<String, usize> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Sweep {
            first: window.first,
            n,
            cells: vec![0; depts.len() * MEASURES * (n + 1)],
            depts,
        }
    }

    fn idx(&self, d: usize, m: usize, i: usize) -> usize {
        (d * MEASURES + m) * (self.n + 1) + i
    }

    /// Adds 1 to measure `m` for every hour `h` with `from <= h < to`.
    fn interval(&mut self, d: usize, m: usize, from: i64, to: Option<i64>) {
        let n = self.n as i64;
        let lo = (hour_ceil(from) - self.first).clamp(0, n);
        let hi = to.map_or(n, |t| (hour_ceil(t) - self.first).clamp(0, n));
        if lo < hi {
            let a = self.idx(d, m, lo as usize);
            let b = self.idx(d, m, hi as usize);
            self.cells[a] += 1;
            self.cells[b] -= 1;
        }
    }

    /// Counts one flow at instant `t` in measure `m`.
    fn flow(&mut self, d: usize, m: usize, t: i64) {
        let i = hour_floor(t) - self.first;
        if i >= 0 && i < self.n as i64 {
            let k = self.idx(d, m, i as usize);
            // Flows are stored as +1 / −1 pairs too, so the running sum below gives the hour's count.
            self.cells[k] += 1;
            let k1 = self.idx(d, m, i as usize + 1);
            self.cells[k1] -= 1;
        }
    }
}

/// Computes one hospital's census rows for the hours of `window`, over the departments `codes`, from
/// every stay of the hospital that overlaps the window, and appends them to `out`.
#[allow(clippy::too_many_arguments)]
pub fn compute(
    hospital: &str,
    zone: Tz,
    window: Window,
    codes: &BTreeSet<String>,
    stays: &[&CensusStay],
    patients: &Patients,
    departments: &Departments,
    out: &mut CensusRows,
) {
    if window.last < window.first || codes.is_empty() {
        return;
    }
    let mut sw = Sweep::new(window, codes);
    for s in stays {
        let Some(d) = s.department.as_ref().and_then(|c| sw.depts.get(c)).copied() else {
            continue;
        };
        sw.interval(d, TOTAL, s.start, s.end);
        for (a, b, version) in patients.segments(s.patient_key.as_deref(), s.start, s.end) {
            sw.interval(
                d,
                SEX + sex_group(version.and_then(|v| v.sex.as_deref())),
                a,
                b,
            );
            match version.and_then(|v| v.birth) {
                Some(birth) => {
                    let mut cuts = band_changes(birth, a, b);
                    cuts.sort_unstable();
                    let mut from = a;
                    for c in cuts.into_iter().chain(std::iter::once(i64::MAX)) {
                        let to = if c == i64::MAX { b } else { Some(c) };
                        let band = band_index(age_at(birth, from)).unwrap_or(5);
                        sw.interval(d, BAND + band, from, to);
                        from = c;
                    }
                }
                None => sw.interval(d, BAND + 5, a, b),
            }
        }
        if let Some(bs) = s.boarding_start {
            sw.interval(d, ED_BOARDERS, bs, s.end);
            if let Some(dest) = s
                .next_department
                .as_ref()
                .and_then(|c| sw.depts.get(c))
                .copied()
            {
                sw.interval(dest, WAITING, bs, s.end);
            }
        }
        if s.stay_seq == 1 {
            sw.flow(d, ARRIVALS, s.start);
        }
        if s.is_admission_stay {
            sw.flow(d, ADMISSIONS, s.start);
        }
        if s.stay_seq > 1 && s.prev_department != s.department {
            sw.flow(d, TRANSFERS_IN, s.start);
        }
        if let Some(e) = s.end {
            match s.end_reason.as_deref() {
                Some("discharge") => sw.flow(d, DISCHARGES, e),
                Some("transfer") => sw.flow(d, TRANSFERS_OUT, e),
                _ => {}
            }
        }
    }

    // Local calendar of each hour, once.
    let calendar: Vec<(i32, i32, i32)> = (0..sw.n)
        .map(|i| {
            let (d, h) = local((sw.first + i as i64) * HOUR_US, zone);
            (date_key(d), h as i32, month_key(d))
        })
        .collect();
    for (code, &d) in &sw.depts {
        let mut running = [0i64; MEASURES];
        let versions = departments.0.get(&(hospital.to_string(), code.clone()));
        let mut vi = 0usize;
        for (i, cal) in calendar.iter().enumerate() {
            for (m, r) in running.iter_mut().enumerate() {
                *r += sw.cells[sw.idx(d, m, i)];
            }
            let t = (sw.first + i as i64) * HOUR_US;
            // Department version valid at the hour (versions are sorted; hours ascend).
            let version = versions.and_then(|vs| {
                while vi < vs.len() && vs[vi].to.is_some_and(|to| to <= t) {
                    vi += 1;
                }
                vs.get(vi)
                    .filter(|v| v.from <= t && v.to.is_none_or(|to| t < to))
            });
            let staffed = version.and_then(|v| v.staffed);
            out.hospital.push(Some(hospital.to_string()));
            out.department.push(Some(code.clone()));
            out.department_sk.push(version.map(|v| v.sk));
            out.hour.push(Some(t));
            out.date_key.push(Some(cal.0));
            out.hour_of_day.push(Some(cal.1));
            out.month_key.push(Some(cal.2));
            out.staffed.push(staffed);
            out.licensed.push(version.and_then(|v| v.licensed));
            out.pct.push(
                staffed
                    .filter(|s| *s > 0)
                    .map(|s| round4(running[TOTAL] as f64 * 100.0 / s as f64)),
            );
            for (m, r) in running.iter().enumerate() {
                out.measures[m].push(Some(*r));
            }
        }
    }
}

/// Groups stays by hospital.
pub fn by_hospital(stays: &[CensusStay]) -> HashMap<&str, Vec<&CensusStay>> {
    let mut out: HashMap<&str, Vec<&CensusStay>> = HashMap::new();
    for s in stays {
        out.entry(s.hospital_id.as_str()).or_default().push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::model::{DeptVersion, PatientVersion};
    use chrono::NaiveDate;

    fn stay(seq: i64, dept: &str, start: i64, end: Option<i64>) -> CensusStay {
        CensusStay {
            encounter_key: "H|V".into(),
            hospital_id: "H".into(),
            department: Some(dept.into()),
            patient_key: Some("H|P".into()),
            start,
            end,
            stay_seq: seq,
            is_admission_stay: dept == "MED",
            end_reason: end.map(|_| {
                if dept == "ED" {
                    "transfer".to_string()
                } else {
                    "discharge".to_string()
                }
            }),
            prev_department: (seq > 1).then(|| "ED".to_string()),
            next_department: (dept == "ED").then(|| "MED".to_string()),
            boarding_start: (dept == "ED").then_some(start + 4 * HOUR_US),
        }
    }

    #[test]
    fn snapshot_flows_capacity_and_bands() {
        let h = HOUR_US;
        let codes: BTreeSet<String> = ["ED".to_string(), "MED".to_string()].into();
        let mut departments = Departments::default();
        departments.0.insert(
            ("H".into(), "MED".into()),
            vec![
                DeptVersion {
                    sk: 1,
                    code: "MED".into(),
                    name: None,
                    dtype: None,
                    licensed: Some(4),
                    staffed: Some(2),
                    nurses: None,
                    physicians: None,
                    from: 0,
                    to: Some(5 * h),
                },
                DeptVersion {
                    sk: 2,
                    code: "MED".into(),
                    name: None,
                    dtype: None,
                    licensed: Some(4),
                    staffed: Some(4),
                    nurses: None,
                    physicians: None,
                    from: 5 * h,
                    to: None,
                },
            ],
        );
        let mut patients = Patients::default();
        // Born 1952-01-01: 18 (band 18-44) throughout 1970.
        patients.0.insert(
            "H|P".into(),
            vec![PatientVersion {
                sk: 9,
                from: 0,
                to: None,
                sex: Some("F".into()),
                birth: NaiveDate::from_ymd_opt(1952, 1, 1),
            }],
        );
        // ED from 00:30 to 06:30 (boarding from 04:30), MED from 06:30 to 08:15.
        let ed = stay(1, "ED", h / 2, Some(6 * h + h / 2));
        let med = stay(2, "MED", 6 * h + h / 2, Some(8 * h + h / 4));
        let stays = vec![&ed, &med];
        let mut out = CensusRows::default();
        compute(
            "H",
            chrono_tz::UTC,
            Window { first: 0, last: 9 },
            &codes,
            &stays,
            &patients,
            &departments,
            &mut out,
        );
        assert_eq!(out.len(), 20);
        let b = out.batch().unwrap();
        use crate::storage::columns::{floats, ints, strings};
        let dept = strings(&b, "department_code").unwrap();
        let occ = ints(&b, "occupied_beds").unwrap();
        let row = |d: &str, hour: usize| {
            (0..b.num_rows())
                .filter(|&i| dept[i].as_deref() == Some(d))
                .nth(hour)
                .unwrap()
        };
        // ED occupied at 01:00..06:00, MED at 07:00 and 08:00.
        let ed_occ: Vec<i64> = (0..10).map(|i| occ[row("ED", i)].unwrap()).collect();
        assert_eq!(ed_occ, [0, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
        let med_occ: Vec<i64> = (0..10).map(|i| occ[row("MED", i)].unwrap()).collect();
        assert_eq!(med_occ, [0, 0, 0, 0, 0, 0, 0, 1, 1, 0]);
        let boarders = ints(&b, "ed_boarders").unwrap();
        let waiting = ints(&b, "boarders_waiting").unwrap();
        assert_eq!(
            (0..10)
                .map(|i| boarders[row("ED", i)].unwrap())
                .collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
        );
        assert_eq!(
            (0..10)
                .map(|i| waiting[row("MED", i)].unwrap())
                .collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
        );
        let staffed = ints(&b, "staffed_beds").unwrap();
        assert_eq!(staffed[row("MED", 4)], Some(2));
        assert_eq!(staffed[row("MED", 5)], Some(4));
        assert_eq!(staffed[row("ED", 5)], None);
        let pct = floats(&b, "occupancy_pct").unwrap();
        assert_eq!(pct[row("MED", 7)], Some(25.0));
        let adm = ints(&b, "admissions").unwrap();
        let tin = ints(&b, "transfers_in").unwrap();
        let tout = ints(&b, "transfers_out").unwrap();
        let dis = ints(&b, "discharges").unwrap();
        let arr = ints(&b, "arrivals").unwrap();
        assert_eq!(arr[row("ED", 0)], Some(1));
        assert_eq!(tout[row("ED", 6)], Some(1));
        assert_eq!((adm[row("MED", 6)], tin[row("MED", 6)]), (Some(1), Some(1)));
        assert_eq!(dis[row("MED", 8)], Some(1));
        assert_eq!(adm.iter().map(|x| x.unwrap()).sum::<i64>(), 1);
        let female = ints(&b, "occupied_female").unwrap();
        assert_eq!(female[row("MED", 7)], Some(1));
        let band = ints(&b, "occupied_age_18_44").unwrap();
        assert_eq!(band[row("MED", 7)], Some(1));
    }

    #[test]
    fn sex_and_age_band_follow_the_patient_version_and_birthday_of_each_hour() {
        let h = HOUR_US;
        let codes: BTreeSet<String> = ["MED".to_string()].into();
        // Born 1952-01-03: turns 18 at 1970-01-03T00:00Z (hour 48). A corrected registration at hour 30
        // changes the sex from U to F.
        let mut patients = Patients::default();
        let birth = NaiveDate::from_ymd_opt(1952, 1, 3);
        patients.0.insert(
            "H|P".into(),
            vec![
                PatientVersion {
                    sk: 1,
                    from: 0,
                    to: Some(30 * h),
                    sex: Some("U".into()),
                    birth,
                },
                PatientVersion {
                    sk: 2,
                    from: 30 * h,
                    to: None,
                    sex: Some("F".into()),
                    birth,
                },
            ],
        );
        let mut s = stay(1, "MED", 0, None);
        s.prev_department = None;
        s.is_admission_stay = true;
        let stays = vec![&s];
        let mut out = CensusRows::default();
        compute(
            "H",
            chrono_tz::UTC,
            Window { first: 0, last: 59 },
            &codes,
            &stays,
            &patients,
            &Departments::default(),
            &mut out,
        );
        let b = out.batch().unwrap();
        use crate::storage::columns::ints;
        let at = |col: &str, hour: usize| ints(&b, col).unwrap()[hour].unwrap();
        assert_eq!(
            (at("occupied_unknown_sex", 29), at("occupied_female", 29)),
            (1, 0)
        );
        assert_eq!(
            (at("occupied_unknown_sex", 30), at("occupied_female", 30)),
            (0, 1)
        );
        assert_eq!(
            (at("occupied_age_0_17", 47), at("occupied_age_18_44", 47)),
            (1, 0)
        );
        assert_eq!(
            (at("occupied_age_0_17", 48), at("occupied_age_18_44", 48)),
            (0, 1)
        );
        assert_eq!(
            at("occupied_beds", 59),
            1,
            "an open stay counts until the last hour"
        );
    }
}

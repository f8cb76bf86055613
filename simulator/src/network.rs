//! The Midwest Health Alliance network: hospitals, departments, beds and capacity history.
//!
//! Sizes and volumes are documented (with their reasoning) in `docs/simulator.md`.

use crate::rng::SimRng;
use crate::time;
use chrono_tz::Tz;

/// Department kinds, in the fixed order used for indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Dept {
    Ed = 0,
    Icu = 1,
    Surg = 2,
    Med = 3,
    Card = 4,
    Peds = 5,
    Mat = 6,
}

/// All departments in index order.
pub const DEPTS: [Dept; 7] = [
    Dept::Ed,
    Dept::Icu,
    Dept::Surg,
    Dept::Med,
    Dept::Card,
    Dept::Peds,
    Dept::Mat,
];

impl Dept {
    /// Department code used on the wire (`PV1-3.1`, `visit.department`, CSVs).
    pub fn code(self) -> &'static str {
        match self {
            Dept::Ed => "ED",
            Dept::Icu => "ICU",
            Dept::Surg => "SURG",
            Dept::Med => "MED",
            Dept::Card => "CARD",
            Dept::Peds => "PEDS",
            Dept::Mat => "MAT",
        }
    }
    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Dept::Ed => "Emergency Department",
            Dept::Icu => "Intensive Care Unit",
            Dept::Surg => "Surgical Unit",
            Dept::Med => "Medical Unit",
            Dept::Card => "Cardiology Unit",
            Dept::Peds => "Pediatrics Unit",
            Dept::Mat => "Maternity Unit",
        }
    }
    /// `department_type` of docs/sources.md §3.
    pub fn kind(self) -> &'static str {
        match self {
            Dept::Ed => "Emergency",
            Dept::Icu => "ICU",
            Dept::Surg => "Surgery",
            Dept::Med => "Medical",
            Dept::Card => "Cardiology",
            Dept::Peds => "Pediatrics",
            Dept::Mat => "Maternity",
        }
    }
    /// Beds per room (`MED-12-A`, `MED-12-B`).
    pub fn beds_per_room(self) -> u16 {
        match self {
            Dept::Ed | Dept::Icu | Dept::Mat => 1,
            _ => 2,
        }
    }
    /// Nursing FTE per staffed bed (ED: per treatment bay).
    pub fn nurses_per_bed(self) -> f64 {
        match self {
            Dept::Ed => 1.4,
            Dept::Icu => 2.6,
            Dept::Surg => 1.2,
            Dept::Med => 1.1,
            Dept::Card => 1.3,
            Dept::Peds => 1.3,
            Dept::Mat => 1.4,
        }
    }
    /// Physician FTE per staffed bed (ED: per bay).
    pub fn physicians_per_bed(self) -> f64 {
        match self {
            Dept::Ed => 0.35,
            Dept::Icu => 0.30,
            Dept::Surg => 0.15,
            Dept::Med => 0.12,
            Dept::Card => 0.15,
            Dept::Peds => 0.15,
            Dept::Mat => 0.12,
        }
    }
    /// Index.
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// How a hospital's interface engine frames HL7 messages in its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Segments end with CR, an LF follows each message (the common MLLP-to-file layout).
    CrThenLf,
    /// Segments end with CRLF (Windows interface engines).
    Crlf,
    /// Segments end with LF.
    Lf,
}

impl Framing {
    /// The segment terminator.
    pub fn segment_end(self) -> &'static str {
        match self {
            Framing::CrThenLf => "\r",
            Framing::Crlf => "\r\n",
            Framing::Lf => "\n",
        }
    }
    /// What follows a message in a file (after its last segment terminator).
    pub fn message_end(self) -> &'static str {
        match self {
            Framing::CrThenLf => "\n",
            Framing::Crlf | Framing::Lf => "",
        }
    }
}

/// Static description of one hospital.
#[derive(Debug, Clone)]
pub struct HospitalSpec {
    pub id: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub state: &'static str,
    pub time_zone: &'static str,
    pub framing: Framing,
    /// Licensed beds per department (index = `Dept`); ED = treatment bays; 0 = no such department.
    pub licensed: [u16; 7],
    /// ED visits per year before weekday/season modulation.
    pub ed_visits_per_year: f64,
    /// Multiplier on the age-specific ED admission probability (academic centres admit more).
    pub admit_factor: f64,
    /// Elective surgical admissions per weekday.
    pub surg_electives_per_weekday: f64,
    /// Elective cardiology admissions (cath lab, EP) per weekday.
    pub card_electives_per_weekday: f64,
    /// Obstetric admissions (labour, induction, C-section) per day.
    pub births_per_day: f64,
    /// Direct pediatric admissions (clinic referrals, transfers in) per day.
    pub peds_direct_per_day: f64,
    /// Patient home towns: `(city, state, first zip, zip count)`.
    pub towns: &'static [(&'static str, &'static str, u32, u32)],
}

/// The seven MHA hospitals. Central-time sites: Chicago, Milwaukee, Minneapolis, Des Moines;
/// Eastern: Columbus, Indianapolis, Detroit.
pub fn mha_hospitals() -> Vec<HospitalSpec> {
    vec![
        HospitalSpec {
            id: "MHA01",
            name: "MHA Lakeshore University Medical Center",
            city: "Chicago",
            state: "IL",
            time_zone: "America/Chicago",
            framing: Framing::CrThenLf,
            //        ED  ICU SURG MED CARD PEDS MAT
            licensed: [100, 64, 104, 264, 78, 28, 42],
            ed_visits_per_year: 140_000.0,
            admit_factor: 1.05,
            surg_electives_per_weekday: 15.0,
            card_electives_per_weekday: 5.0,
            births_per_day: 9.0,
            peds_direct_per_day: 1.5,
            towns: &[
                ("Chicago", "IL", 60601, 60),
                ("Evanston", "IL", 60201, 3),
                ("Oak Park", "IL", 60301, 3),
                ("Cicero", "IL", 60804, 1),
                ("Skokie", "IL", 60076, 2),
                ("Berwyn", "IL", 60402, 1),
            ],
        },
        HospitalSpec {
            id: "MHA02",
            name: "MHA Milwaukee Bayview Hospital",
            city: "Milwaukee",
            state: "WI",
            time_zone: "America/Chicago",
            framing: Framing::Crlf,
            licensed: [66, 36, 56, 156, 46, 16, 28],
            ed_visits_per_year: 92_000.0,
            admit_factor: 0.95,
            surg_electives_per_weekday: 8.0,
            card_electives_per_weekday: 3.0,
            births_per_day: 6.0,
            peds_direct_per_day: 0.5,
            towns: &[
                ("Milwaukee", "WI", 53202, 30),
                ("Wauwatosa", "WI", 53213, 1),
                ("West Allis", "WI", 53214, 2),
                ("Waukesha", "WI", 53186, 3),
                ("Racine", "WI", 53402, 3),
                ("Cudahy", "WI", 53110, 1),
            ],
        },
        HospitalSpec {
            id: "MHA03",
            name: "MHA Columbus Scioto Valley Hospital",
            city: "Columbus",
            state: "OH",
            time_zone: "America/New_York",
            framing: Framing::CrThenLf,
            licensed: [58, 28, 46, 122, 36, 12, 26],
            ed_visits_per_year: 80_000.0,
            admit_factor: 0.85,
            surg_electives_per_weekday: 6.5,
            card_electives_per_weekday: 2.5,
            births_per_day: 5.5,
            peds_direct_per_day: 0.4,
            towns: &[
                ("Columbus", "OH", 43201, 30),
                ("Dayton", "OH", 45402, 8),
                ("Dublin", "OH", 43016, 2),
                ("Westerville", "OH", 43081, 2),
                ("Grove City", "OH", 43123, 1),
                ("Reynoldsburg", "OH", 43068, 1),
            ],
        },
        HospitalSpec {
            id: "MHA04",
            name: "MHA Indianapolis White River Hospital",
            city: "Indianapolis",
            state: "IN",
            time_zone: "America/New_York",
            framing: Framing::CrThenLf,
            licensed: [46, 22, 34, 92, 28, 0, 26],
            ed_visits_per_year: 64_000.0,
            admit_factor: 0.8,
            surg_electives_per_weekday: 5.0,
            card_electives_per_weekday: 2.0,
            births_per_day: 5.5,
            peds_direct_per_day: 0.0,
            towns: &[
                ("Indianapolis", "IN", 46201, 30),
                ("Carmel", "IN", 46032, 2),
                ("Fishers", "IN", 46037, 2),
                ("Greenwood", "IN", 46142, 2),
                ("Lawrence", "IN", 46226, 1),
                ("Noblesville", "IN", 46060, 2),
            ],
        },
        HospitalSpec {
            id: "MHA05",
            name: "MHA Minneapolis Riverside Hospital",
            city: "Minneapolis",
            state: "MN",
            time_zone: "America/Chicago",
            framing: Framing::Lf,
            licensed: [38, 14, 26, 74, 0, 12, 26],
            ed_visits_per_year: 52_000.0,
            admit_factor: 0.6,
            surg_electives_per_weekday: 4.0,
            card_electives_per_weekday: 0.0,
            births_per_day: 5.5,
            peds_direct_per_day: 1.0,
            towns: &[
                ("Minneapolis", "MN", 55401, 30),
                ("Saint Paul", "MN", 55101, 20),
                ("Bloomington", "MN", 55420, 6),
                ("Edina", "MN", 55424, 3),
                ("Brooklyn Park", "MN", 55443, 2),
                ("Richfield", "MN", 55423, 1),
            ],
        },
        HospitalSpec {
            id: "MHA06",
            name: "MHA Detroit Eastside Community Hospital",
            city: "Detroit",
            state: "MI",
            time_zone: "America/New_York",
            framing: Framing::Crlf,
            licensed: [30, 10, 16, 44, 12, 0, 12],
            ed_visits_per_year: 40_000.0,
            admit_factor: 0.6,
            surg_electives_per_weekday: 2.0,
            card_electives_per_weekday: 0.8,
            births_per_day: 2.5,
            peds_direct_per_day: 0.0,
            towns: &[
                ("Detroit", "MI", 48201, 40),
                ("Dearborn", "MI", 48124, 3),
                ("Warren", "MI", 48088, 6),
                ("Southfield", "MI", 48075, 2),
                ("Livonia", "MI", 48150, 3),
                ("Hamtramck", "MI", 48212, 1),
            ],
        },
        HospitalSpec {
            id: "MHA07",
            name: "MHA Des Moines Raccoon River Community Hospital",
            city: "Des Moines",
            state: "IA",
            time_zone: "America/Chicago",
            framing: Framing::CrThenLf,
            licensed: [24, 8, 12, 38, 0, 0, 10],
            ed_visits_per_year: 32_000.0,
            admit_factor: 0.5,
            surg_electives_per_weekday: 1.5,
            card_electives_per_weekday: 0.0,
            births_per_day: 2.0,
            peds_direct_per_day: 0.0,
            towns: &[
                ("Des Moines", "IA", 50309, 20),
                ("West Des Moines", "IA", 50265, 2),
                ("Ankeny", "IA", 50021, 2),
                ("Urbandale", "IA", 50322, 1),
                ("Ames", "IA", 50010, 2),
                ("Altoona", "IA", 50009, 1),
            ],
        },
    ]
}

/// Share of licensed beds staffed in normal operation.
pub fn base_staffed_share(d: Dept) -> f64 {
    match d {
        // Medical and ICU keep licensed-but-unstaffed beds that are opened in flu season.
        Dept::Med | Dept::Icu => 0.82,
        Dept::Ed => 1.0,
        _ => 0.92,
    }
}

/// Flu-season surge: extra staffed beds (fraction of base staffed) in Medical and ICU.
pub const SURGE_EXTRA: f64 = 0.20;
/// Surge opens on December 15th …
pub const SURGE_OPEN: (u32, u32) = (12, 15);
/// … and closes on March 1st (i.e. runs to the end of February).
pub const SURGE_CLOSE: (u32, u32) = (3, 1);

/// One department state valid from a date (a row of departments.csv).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapRow {
    /// Effective date (days since epoch; hospital-local calendar date).
    pub day: i64,
    /// Instant the row takes effect (local midnight of `day`).
    pub from: i64,
    pub licensed: u16,
    pub staffed: u16,
    pub nurses: u16,
    pub physicians: u16,
    /// Why the row exists (docs/tests only).
    pub reason: RowReason,
}

/// Why a capacity row exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowReason {
    Initial,
    SurgeOpen,
    SurgeClose,
    Reduction,
    Reopen,
    Staffing,
}

/// A department of one hospital with its capacity history.
#[derive(Debug, Clone)]
pub struct DeptPlan {
    pub rows: Vec<CapRow>,
}

impl DeptPlan {
    /// Staffed beds in effect at instant `t`.
    pub fn staffed_at(&self, t: i64) -> u16 {
        let mut s = self.rows[0].staffed;
        for r in &self.rows {
            if r.from <= t {
                s = r.staffed;
            } else {
                break;
            }
        }
        s
    }

    /// Minimum staffed beds over `[from, to)`.
    pub fn min_staffed(&self, from: i64, to: i64) -> u16 {
        let mut m = self.staffed_at(from);
        for r in &self.rows {
            if r.from > from && r.from < to {
                m = m.min(r.staffed);
            }
        }
        m
    }

    /// Licensed beds (constant over the run).
    pub fn licensed(&self) -> u16 {
        self.rows[0].licensed
    }
}

/// One hospital of a run with its zone and departments.
#[derive(Debug, Clone)]
pub struct HospitalPlan {
    pub index: usize,
    pub spec: HospitalSpec,
    pub tz: Tz,
    /// Departments present, by `Dept` index (None = absent).
    pub depts: [Option<DeptPlan>; 7],
}

impl HospitalPlan {
    /// Whether the hospital has department `d`.
    pub fn has(&self, d: Dept) -> bool {
        self.depts[d.idx()].is_some()
    }
    /// Department plan.
    pub fn dept(&self, d: Dept) -> &DeptPlan {
        self.depts[d.idx()].as_ref().expect("department exists")
    }
}

fn staff_counts(d: Dept, staffed: u16) -> (u16, u16) {
    let n = (staffed as f64 * d.nurses_per_bed()).round().max(2.0) as u16;
    let p = (staffed as f64 * d.physicians_per_bed()).round().max(1.0) as u16;
    (n, p)
}

fn is_in_surge(days: i64) -> bool {
    let (_, m, d) = time::civil_from_days(days);
    (m, d) >= SURGE_OPEN || (m, d) < SURGE_CLOSE
}

/// Build the capacity plan of one hospital for a run of `days` days from `start` (days since
/// epoch). `rng` decides which ward is reduced and which staffing changes happen.
pub fn plan_hospital(
    index: usize,
    spec: HospitalSpec,
    start: i64,
    days: i64,
    rng: &mut SimRng,
) -> HospitalPlan {
    let tz: Tz = spec.time_zone.parse().expect("valid IANA zone");
    let end = start + days;
    // Event dates of the run (sorted), per department.
    let mut depts: [Option<DeptPlan>; 7] = Default::default();

    // The ward reduced for a few weeks (renovation / staffing shortage): a non-ED, non-ICU ward.
    let candidates: Vec<Dept> = [Dept::Surg, Dept::Card, Dept::Peds, Dept::Mat]
        .into_iter()
        .filter(|d| spec.licensed[d.idx()] > 0)
        .collect();
    let reduced = candidates[rng.index(candidates.len())];
    let red_len = (days / 12).clamp(7, 35);
    let red_start = start + (days as f64 * 0.45) as i64 + index as i64 * 3;
    let reduction = if days >= 45 {
        Some((red_start, red_start + red_len, rng.uniform(0.4, 0.6)))
    } else {
        None
    };
    // Two staffing-only changes.
    let staffing: Vec<(i64, Dept, i32, i32)> = if days >= 30 {
        let d1 = DEPTS[1 + rng.index(6)];
        let d2 = DEPTS[rng.index(7)];
        vec![
            (
                start + (days as f64 * 0.25) as i64 + index as i64,
                d1,
                -2,
                0,
            ),
            (start + (days as f64 * 0.70) as i64 + index as i64, d2, 3, 1),
        ]
    } else {
        vec![]
    };

    for d in DEPTS {
        let lic = spec.licensed[d.idx()];
        if lic == 0 {
            continue;
        }
        let base = ((lic as f64) * base_staffed_share(d)).round() as u16;
        let surge_beds = if matches!(d, Dept::Med | Dept::Icu) {
            ((base as f64 * (1.0 + SURGE_EXTRA)).round() as u16).min(lic)
        } else {
            base
        };
        let mut nurse_adj: i32 = 0;
        let mut phys_adj: i32 = 0;
        // State function: staffed beds on a given day, before staffing adjustments.
        let staffed_on = |day: i64| -> (u16, RowReason) {
            if let Some((rs, re, f)) = reduction {
                if d == reduced && day >= rs && day < re {
                    return (
                        ((base as f64) * f).round().max(1.0) as u16,
                        RowReason::Reduction,
                    );
                }
            }
            if is_in_surge(day) {
                (surge_beds, RowReason::SurgeOpen)
            } else {
                (base, RowReason::Initial)
            }
        };
        // Change days: every day where the staffed state or staffing changes.
        let mut rows: Vec<CapRow> = Vec::new();
        let mut prev: Option<(u16, RowReason)> = None;
        for day in start..end {
            let (s, why) = staffed_on(day);
            let mut staffing_change = false;
            for &(sd, sdept, dn, dp) in &staffing {
                if sd == day && sdept == d {
                    nurse_adj += dn;
                    phys_adj += dp;
                    staffing_change = true;
                }
            }
            let changed = match prev {
                None => true,
                Some((ps, _)) => ps != s,
            };
            if changed || staffing_change {
                let reason = if prev.is_none() {
                    RowReason::Initial
                } else if changed {
                    match (prev.map(|p| p.1), why) {
                        (_, RowReason::Reduction) => RowReason::Reduction,
                        (Some(RowReason::Reduction), _) => RowReason::Reopen,
                        (_, RowReason::SurgeOpen) => RowReason::SurgeOpen,
                        _ => RowReason::SurgeClose,
                    }
                } else {
                    RowReason::Staffing
                };
                let (n, p) = staff_counts(d, s);
                rows.push(CapRow {
                    day,
                    from: time::local_midnight(tz, day),
                    licensed: lic,
                    staffed: s,
                    nurses: (n as i32 + nurse_adj).max(1) as u16,
                    physicians: (p as i32 + phys_adj).max(1) as u16,
                    reason,
                });
            }
            prev = Some((s, why));
        }
        if rows.is_empty() {
            let (n, p) = staff_counts(d, base);
            rows.push(CapRow {
                day: start,
                from: time::local_midnight(tz, start),
                licensed: lic,
                staffed: base,
                nurses: n,
                physicians: p,
                reason: RowReason::Initial,
            });
        }
        depts[d.idx()] = Some(DeptPlan { rows });
    }
    HospitalPlan {
        index,
        spec,
        tz,
        depts,
    }
}

/// Room and bed ids of bed `idx` (0-based) of a department: (`MED-12`, `MED-12-B`).
pub fn room_bed(d: Dept, idx: u16) -> (String, String) {
    let per = d.beds_per_room();
    let room_no = idx / per + 1;
    let letter = (b'A' + (idx % per) as u8) as char;
    let room = format!("{}-{:02}", d.code(), room_no);
    let bed = format!("{room}-{letter}");
    (room, bed)
}

/// ED hallway space `n` (0-based): (`ED-HALL`, `ED-HALL-03`).
pub fn hallway_bed(n: u16) -> (String, String) {
    ("ED-HALL".to_string(), format!("ED-HALL-{:02}", n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_reduction_rows() {
        let start = time::days_from_civil(2026, 1, 1);
        let spec = mha_hospitals().remove(0);
        let mut rng = SimRng::new(1, 1);
        let plan = plan_hospital(0, spec, start, 365, &mut rng);
        let med = plan.dept(Dept::Med);
        // Jan 1 is inside the surge window: initial row already has surge beds.
        let jan = med.rows[0].staffed;
        let close = med
            .rows
            .iter()
            .find(|r| r.reason == RowReason::SurgeClose)
            .unwrap();
        assert_eq!(time::ymd(close.day), "2026-03-01");
        assert!(close.staffed < jan);
        let open = med
            .rows
            .iter()
            .find(|r| r.reason == RowReason::SurgeOpen)
            .unwrap();
        assert_eq!(time::ymd(open.day), "2026-12-15");
        assert_eq!(
            room_bed(Dept::Med, 23),
            ("MED-12".into(), "MED-12-B".into())
        );
        assert_eq!(room_bed(Dept::Icu, 3), ("ICU-04".into(), "ICU-04-A".into()));
        let reduced: Vec<_> = plan
            .depts
            .iter()
            .flatten()
            .filter(|d| d.rows.iter().any(|r| r.reason == RowReason::Reduction))
            .collect();
        assert_eq!(reduced.len(), 1);
    }
}

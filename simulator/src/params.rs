//! Clinical and operational parameters of the model. Each constant is documented, with its source
//! or reasoning, in `docs/simulator.md` (§ "Parameters").

use crate::network::Dept;

/// ED arrivals by local hour of day (relative weights; normalised to mean 1 at use). Shape of the
/// NHAMCS / published ED arrival profiles: trough 04–06, climb from 07, plateau 10–19.
pub const ED_HOUR_WEIGHTS: [f64; 24] = [
    2.9, 2.4, 2.0, 1.7, 1.5, 1.6, 2.1, 3.0, 4.2, 5.3, 6.0, 6.3, 6.3, 6.1, 6.0, 5.9, 5.8, 5.7, 5.6,
    5.4, 5.0, 4.5, 3.9, 3.3,
];

/// ED arrivals by local weekday, Monday first (mean 1): Monday is the busiest ED day.
pub const ED_WEEKDAY: [f64; 7] = [1.12, 1.03, 0.99, 0.98, 0.97, 0.94, 0.97];

/// Obstetric admissions by local hour (scheduled inductions / C-sections in the morning).
pub const MAT_HOUR_WEIGHTS: [f64; 24] = [
    0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 1.0, 1.4, 1.5, 1.4, 1.3, 1.2, 1.1, 1.1, 1.0, 1.0, 0.95, 0.95,
    0.95, 0.9, 0.9, 0.85, 0.85, 0.8,
];

/// Local hours in which elective surgical patients arrive (Mon–Fri).
pub const SURG_ELECTIVE_HOURS: std::ops::RangeInclusive<u32> = 6..=10;
/// Local hours in which elective cardiology patients arrive (Mon–Fri).
pub const CARD_ELECTIVE_HOURS: std::ops::RangeInclusive<u32> = 7..=11;
/// Local hours of direct pediatric admissions.
pub const PEDS_DIRECT_HOURS: std::ops::RangeInclusive<u32> = 9..=18;

/// Flu season: the seasonal bump peaks on this day of January …
pub const FLU_PEAK_JAN_DAY: u32 = 20;
/// … and fades out this many days either side (late November to mid March, mass in Dec–Feb).
pub const FLU_HALF_WIDTH_DAYS: f64 = 55.0;
/// ED arrivals at the flu peak are this much above baseline.
pub const FLU_ED_EXTRA: f64 = 0.20;
/// ED admission probability at the flu peak is this much above baseline (sicker patients).
pub const FLU_ADMIT_EXTRA: f64 = 0.12;
/// Medical and ICU admission weights at the flu peak are this much above baseline.
pub const FLU_MED_ICU_EXTRA: f64 = 0.5;

/// ED visit age bands `(from, to, share)` — NHAMCS 2021 ED visits by age.
pub const ED_AGE_BANDS: [(f64, f64, f64); 10] = [
    (0.0, 1.0, 0.02),
    (1.0, 5.0, 0.05),
    (5.0, 15.0, 0.09),
    (15.0, 18.0, 0.03),
    (18.0, 25.0, 0.10),
    (25.0, 45.0, 0.28),
    (45.0, 65.0, 0.22),
    (65.0, 75.0, 0.10),
    (75.0, 85.0, 0.07),
    (85.0, 101.0, 0.04),
];
/// Elective surgery age bands.
pub const SURG_AGE_BANDS: [(f64, f64, f64); 4] = [
    (18.0, 45.0, 0.25),
    (45.0, 65.0, 0.38),
    (65.0, 85.0, 0.32),
    (85.0, 98.0, 0.05),
];
/// Elective cardiology age bands.
pub const CARD_AGE_BANDS: [(f64, f64, f64); 4] = [
    (30.0, 45.0, 0.07),
    (45.0, 65.0, 0.38),
    (65.0, 85.0, 0.47),
    (85.0, 98.0, 0.08),
];
/// Direct pediatric admission age bands.
pub const PEDS_AGE_BANDS: [(f64, f64, f64); 3] =
    [(0.0, 1.0, 0.25), (1.0, 6.0, 0.35), (6.0, 18.0, 0.40)];

/// Probability that an ED visit ends in admission, by age (before the hospital's factor):
/// overall ≈ 13 % (NHAMCS: 12–14 % of ED visits are admitted), rising steeply with age.
pub fn ed_admit_probability(age: f64) -> f64 {
    if age < 18.0 {
        0.04
    } else if age < 45.0 {
        0.07
    } else if age < 65.0 {
        0.15
    } else if age < 75.0 {
        0.25
    } else if age < 85.0 {
        0.32
    } else {
        0.38
    }
}

/// Target department weights of an adult ED admission `(MED, SURG, CARD, ICU)` by age.
pub fn ed_target_weights(age: f64) -> [f64; 4] {
    if age < 45.0 {
        [0.62, 0.22, 0.06, 0.08]
    } else if age < 65.0 {
        [0.52, 0.16, 0.18, 0.12]
    } else {
        [0.52, 0.10, 0.22, 0.14]
    }
}
/// Share of admitted children who need the ICU (rest go to Pediatrics).
pub const PEDS_ICU_SHARE: f64 = 0.10;

/// Length-of-stay distribution of a department: log-normal `(median hours, sigma, min h, max h)`.
pub fn los_params(d: Dept) -> (f64, f64, f64, f64) {
    match d {
        Dept::Ed => (4.0, 0.55, 0.33, 24.0),
        Dept::Icu => (72.0, 0.8, 6.0, 720.0),
        Dept::Surg => (72.0, 0.75, 6.0, 960.0),
        Dept::Med => (108.0, 0.7, 6.0, 960.0),
        Dept::Card => (84.0, 0.7, 6.0, 960.0),
        Dept::Peds => (60.0, 0.7, 4.0, 720.0),
        Dept::Mat => (60.0, 0.45, 12.0, 480.0),
    }
}
/// ED arrival → decision to admit, log-normal `(median h, sigma, min h, max h)`.
pub const ED_DECISION: (f64, f64, f64, f64) = (3.5, 0.5, 0.5, 16.0);

/// Decision to admit → bed request placed (admitting team accepts, orders written, bed
/// requested), log-normal `(median h, sigma, min h, max h)`. A bed is only assigned after it.
pub const BED_REQUEST: (f64, f64, f64, f64) = (1.25, 0.6, 0.25, 6.0);

/// Probability that a ward patient deteriorates and is transferred to the ICU.
pub fn icu_transfer_probability(d: Dept) -> f64 {
    match d {
        Dept::Med => 0.04,
        Dept::Surg => 0.05,
        Dept::Card => 0.06,
        Dept::Peds => 0.02,
        _ => 0.0,
    }
}
/// ICU patients admitted from the ED who step down to a Medical bed (others leave from the ICU).
pub const ICU_STEP_DOWN_SHARE: f64 = 0.7;
/// Ward LOS after an ICU stay, as a fraction of a fresh Medical LOS draw.
pub const STEP_DOWN_LOS_FACTOR: f64 = 0.6;
/// Hours a patient waits for a bed in the target ward before any adult ward with a free bed is
/// accepted ("outlier" placement).
pub const OVERFLOW_AFTER_H: f64 = 12.0;
/// Same for obstetric patients (a labouring mother does not wait 12 hours).
pub const OVERFLOW_AFTER_MAT_H: f64 = 4.0;

/// Share of patients of a new encounter who are returning patients (re-used MRN), by path.
pub const RETURN_ED: f64 = 0.30;
pub const RETURN_ELECTIVE: f64 = 0.25;
pub const RETURN_MAT: f64 = 0.15;
pub const RETURN_PEDS: f64 = 0.30;

/// A08 demographic update probability per ED-only encounter …
pub const A08_ED: f64 = 0.02;
/// … and per inpatient encounter.
pub const A08_INPATIENT: f64 = 0.08;
/// What an A08 changes: address, name (family or given), insurance, language, birth date
/// (registration error corrected), administrative sex (F↔M, corrected).
pub const A08_KIND_WEIGHTS: [f64; 6] = [0.52, 0.20, 0.15, 0.05, 0.05, 0.03];
/// A11 (cancel admit) probability per elective admission.
pub const A11_ELECTIVE: f64 = 0.02;
/// A12 (cancel transfer) probability per ward stay (an erroneous A02 followed by its A12).
pub const A12_WARD_STAY: f64 = 0.01;
/// A13 (cancel discharge) probability per inpatient discharge (premature A03, A13, real A03 later).
pub const A13_DISCHARGE: f64 = 0.015;

/// Sex mix of new patients (F, M, O, U).
pub const SEX_WEIGHTS: [f64; 4] = [0.515, 0.4835, 0.0005, 0.001];
/// Share of addresses with a unit designation.
pub const UNIT_SHARE: f64 = 0.12;

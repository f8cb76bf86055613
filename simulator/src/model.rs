//! The discrete-event model of one hospital, and the emission of its ADT messages (with defects
//! and delivery timing).
//!
//! Each hospital is simulated independently with its own random streams (clinical, wire,
//! defects), in event-time order. Messages are encoded when they happen and parked in an
//! *outbox* ordered by delivery time; because every message is delivered at or after its event
//! time, everything with a delivery time before the simulation clock is final and can be flushed.

use crate::defects::{DefectClass as DC, Injector, ManifestEntry, Source};
use crate::encode::{self, AdtMessage, DateVal, LocVal, Malformed, TimeVal};
use crate::names;
use crate::network::{self, Dept, HospitalPlan};
use crate::params::*;
use crate::rng::SimRng;
use crate::time::{self, OffsetTable, DAY, HOUR, MINUTE};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

const FREE: u32 = u32::MAX;
/// Sex codes by index.
pub const SEX_CODES: [&str; 4] = ["F", "M", "O", "U"];

/// Wire format of an ADT message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    /// HL7 v2 ER7.
    Hl7,
    /// JSON `patientflow.adt.v1`.
    Json,
}

impl MessageFormat {
    /// `hl7` / `json`.
    pub fn id(self) -> &'static str {
        match self {
            MessageFormat::Hl7 => "hl7",
            MessageFormat::Json => "json",
        }
    }
}

/// Tracked patient attributes (compact; strings are resolved through the name lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub family: u16,
    pub given: u16,
    pub given_female: bool,
    /// Birth date, days since epoch.
    pub birth: i32,
    pub sex: u8,
    pub street_no: u16,
    pub street: u8,
    pub suffix: u8,
    /// 0 = none, else 1 + index into `names::UNITS`.
    pub unit: u8,
    pub town: u8,
    pub zip: u32,
    /// 0 = not collected (yet), else 1 + index into `names::LANGUAGES`.
    pub lang: u8,
    /// 0 = not collected (yet), else 1 + index into `names::INSURANCE`.
    pub ins: u8,
}

impl Attrs {
    pub fn family_name(&self) -> &'static str {
        names::SURNAMES[self.family as usize]
    }
    pub fn given_name(&self) -> &'static str {
        if self.given_female {
            names::FEMALE[self.given as usize]
        } else {
            names::MALE[self.given as usize]
        }
    }
    pub fn sex_code(&self) -> &'static str {
        SEX_CODES[self.sex as usize]
    }
    pub fn street_line(&self) -> String {
        let mut s = format!(
            "{} {} {}",
            self.street_no,
            names::STREETS[self.street as usize],
            names::SUFFIXES[self.suffix as usize]
        );
        if self.unit > 0 {
            s.push(' ');
            s.push_str(names::UNITS[self.unit as usize - 1]);
        }
        s
    }
    pub fn language(&self) -> Option<&'static str> {
        (self.lang > 0).then(|| names::LANGUAGES[self.lang as usize - 1].0)
    }
    pub fn insurance(&self) -> Option<&'static str> {
        (self.ins > 0).then(|| names::INSURANCE[self.ins as usize - 1])
    }
}

/// A patient (MRN) of one hospital.
#[derive(Debug, Clone)]
pub struct Patient {
    pub num: u32,
    pub attrs: Attrs,
    /// Versions `(valid_from, attributes)` in time order; the last is current.
    pub versions: Vec<(i64, Attrs)>,
    pub active: bool,
    /// Whether any message has named this patient yet (truth only lists seen patients).
    pub seen: bool,
    latent_lang: u8,
    latent_ins: u8,
    last_touch_day: i64,
}

/// How an encounter started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Ed,
    Elective,
    Maternity,
    PedsDirect,
}

/// A bed (or ED bay / hallway space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub dept: Dept,
    pub bed: u16,
    pub hall: bool,
}

impl Loc {
    /// Room and bed ids.
    pub fn ids(&self) -> (String, String) {
        if self.hall {
            network::hallway_bed(self.bed)
        } else {
            network::room_bed(self.dept, self.bed)
        }
    }
    fn val(&self) -> LocVal {
        let (room, bed) = self.ids();
        LocVal {
            dept: self.dept.code().to_string(),
            room,
            bed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Discharge,
    StepDown { dept: Dept, los: i64 },
}

/// An encounter (visit number).
#[derive(Debug)]
pub struct Enc {
    pub num: u32,
    pub patient: u32,
    pub path: Path,
    pub admission_type: &'static str,
    pub arrival: i64,
    /// Decision to admit (ED path), or -1.
    pub decision: i64,
    /// Admission (bed assignment), or -1.
    pub admit: i64,
    /// Discharge, or -1.
    pub discharge: i64,
    pub inpatient: bool,
    pub cancelled: bool,
    pub cur: Option<Loc>,
    cur_stay: u32,
    token: u32,
    seg_end: i64,
    next: Next,
    target: Dept,
    los: i64,
    pub first_dept: Option<Dept>,
    pub last_dept: Option<Dept>,
    /// Event time of the encounter's latest message (EHR `updated_at`).
    pub last_event: i64,
    last_touch_day: i64,
    pending: Option<Box<Held>>,
    bound: i64,
    waiting: bool,
    had_icu: bool,
    det_at: i64,
    bogus: Option<Loc>,
}

impl Enc {
    /// Whether any message has named this encounter (truth only lists seen encounters).
    pub fn seen(&self) -> bool {
        self.last_touch_day >= 0
    }
}

/// A stay in one bed.
#[derive(Debug, Clone, Copy)]
pub struct Stay {
    pub enc: u32,
    pub loc: Loc,
    pub start: i64,
    /// -1 while open.
    pub end: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Hour,
    EdArrival,
    Elective(Dept),
    MatArrival,
    PedsArrival,
    EdDone(u32),
    EdDecision(u32),
    BedRequest(u32),
    SegEnd(u32, u32),
    Deteriorate(u32, u32),
    A08(u32),
    A11(u32),
    BogusTransfer(u32, u32),
    A12(u32, Loc),
    BogusDischarge(u32, u32),
    A13(u32),
    Overflow(u32),
    Capacity(Dept),
}

/// An encoded message waiting for its delivery time.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Delivery instant, milliseconds since epoch.
    pub deliver_ms: i64,
    /// Per-hospital push order (tie-break).
    pub seq: u64,
    /// Hospital index within the run.
    pub hosp: usize,
    pub format: MessageFormat,
    pub message_id: String,
    pub event: &'static str,
    /// The message bytes (HL7: segments with their terminators; JSON: one line, no newline).
    pub payload: String,
}

impl PartialEq for Outgoing {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Outgoing {}
impl PartialOrd for Outgoing {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Outgoing {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.deliver_ms, self.hosp, self.seq).cmp(&(o.deliver_ms, o.hosp, o.seq))
    }
}

/// A message held back until just after its encounter's next message.
#[derive(Debug)]
struct Held {
    out: Outgoing,
    /// The held message's corrected re-send, delivered after it.
    resend: Option<Resend>,
    /// `true`: an identity-changing A08 overtaken by the next message (not a defect);
    /// `false`: an `out_of_order` defect.
    overtaken: bool,
}

/// A corrected re-send waiting for its original's delivery time.
#[derive(Debug)]
struct Resend {
    out: Outgoing,
    /// Delay after the original's delivery, milliseconds.
    after_ms: i64,
}

/// Message counters of one hospital.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Clean ADT events by trigger (one per event, before duplication).
    pub events: BTreeMap<&'static str, u64>,
    /// Delivered messages by trigger (duplicates included).
    pub delivered_by_type: BTreeMap<&'static str, u64>,
    /// Delivered messages by format.
    pub delivered_by_format: BTreeMap<&'static str, u64>,
    /// Corrected re-sends of messages with a content defect.
    pub corrected_resends: u64,
    /// Identity-changing A08s delivered after the encounter's next message.
    pub a08_overtaken: u64,
}

/// Run-wide settings a hospital simulation needs.
#[derive(Debug, Clone)]
pub struct RunParams {
    pub seed: u64,
    pub start: i64,
    pub end: i64,
    pub lang_from: i64,
    pub ins_from: i64,
    pub scale: f64,
    pub json_fraction: f64,
    pub rates: BTreeMap<DC, f64>,
    /// `SimConfig::corrected_resend_rate`.
    pub resend_rate: f64,
    /// `SimConfig::demographic_changes`.
    pub demographic_changes: bool,
    /// `SimConfig::a08_overtaken_rate`.
    pub a08_overtaken_rate: f64,
}

/// The simulation of one hospital.
pub struct HospSim {
    pub plan: HospitalPlan,
    pub tz: OffsetTable,
    pub run: RunParams,
    rng: SimRng,
    wire: SimRng,
    /// Corrected re-sends (not defects).
    resend_rng: SimRng,
    /// Overtaken A08s (not defects).
    overtake_rng: SimRng,
    pub inj: Injector,
    beds: [Vec<u32>; 7],
    hall: Vec<u32>,
    queues: [VecDeque<u32>; 7],
    pub patients: Vec<Patient>,
    pub encs: Vec<Enc>,
    pub stays: Vec<Stay>,
    heap: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    ev_seq: u64,
    now: i64,
    msg_counter: u64,
    out_seq: u64,
    pub outbox: BinaryHeap<Reverse<Outgoing>>,
    pub manifest: Vec<ManifestEntry>,
    pub touched_encs: Vec<u32>,
    pub touched_pats: Vec<u32>,
    pub counts: Counts,
    ed_hour_norm: [f64; 24],
    mat_hour_norm: [f64; 24],
    lang_weights: Vec<f64>,
}

fn normalise(w: &[f64; 24]) -> [f64; 24] {
    let mean = w.iter().sum::<f64>() / 24.0;
    let mut o = [0.0; 24];
    for (i, v) in w.iter().enumerate() {
        o[i] = v / mean;
    }
    o
}

fn round_min(t: i64) -> i64 {
    (t + 30).div_euclid(MINUTE) * MINUTE
}

/// Seasonal flu intensity in [0, 1] for a day (days since epoch).
pub fn flu_intensity(day: i64) -> f64 {
    let (y, _, _) = time::civil_from_days(day);
    let mut best = f64::MAX;
    for yy in [y - 1, y, y + 1] {
        let peak = time::days_from_civil(yy, 1, FLU_PEAK_JAN_DAY);
        best = best.min((day - peak).abs() as f64);
    }
    if best >= FLU_HALF_WIDTH_DAYS {
        0.0
    } else {
        let c = (std::f64::consts::FRAC_PI_2 * best / FLU_HALF_WIDTH_DAYS).cos();
        c * c
    }
}

impl HospSim {
    /// A new, empty hospital. Streams: `(seed, 100 + h)` clinical, `(seed, 200 + h)` wire,
    /// `(seed, 300 + h)` defects, `(seed, 600 + h)` corrected re-sends, `(seed, 700 + h)` overtaken
    /// A08s — `h` is the hospital's network index, so a hospital's data do not depend on which
    /// other hospitals are simulated.
    pub fn new(plan: HospitalPlan, run: RunParams) -> Self {
        let h = plan.index as u64;
        let tz = OffsetTable::new(plan.tz, run.start - 3 * DAY, run.end + 12 * DAY);
        let rng = SimRng::new(run.seed, 100 + h);
        let wire = SimRng::new(run.seed, 200 + h);
        let resend_rng = SimRng::new(run.seed, 600 + h);
        let overtake_rng = SimRng::new(run.seed, 700 + h);
        let inj = Injector::new(run.rates.clone(), SimRng::new(run.seed, 300 + h));
        let mut beds: [Vec<u32>; 7] = Default::default();
        for d in network::DEPTS {
            if let Some(p) = &plan.depts[d.idx()] {
                beds[d.idx()] = vec![FREE; p.licensed() as usize];
            }
        }
        let mut lang_weights: Vec<f64> = names::LANGUAGES.iter().map(|l| l.1).collect();
        let bonus: &[(&str, f64)] = match plan.spec.city {
            "Minneapolis" => &[("so", 3.0), ("hmn", 3.0)],
            "Chicago" => &[("pl", 2.5), ("es", 1.4)],
            "Detroit" => &[("ar", 4.0)],
            "Milwaukee" => &[("hmn", 2.0), ("es", 1.2)],
            _ => &[],
        };
        for (code, f) in bonus {
            if let Some(i) = names::LANGUAGES.iter().position(|l| l.0 == *code) {
                lang_weights[i] *= f;
            }
        }
        let mut sim = HospSim {
            plan,
            tz,
            rng,
            wire,
            resend_rng,
            overtake_rng,
            inj,
            beds,
            hall: Vec::new(),
            queues: Default::default(),
            patients: Vec::new(),
            encs: Vec::new(),
            stays: Vec::new(),
            heap: BinaryHeap::new(),
            ev_seq: 0,
            now: run.start,
            msg_counter: 0,
            out_seq: 0,
            outbox: BinaryHeap::new(),
            manifest: Vec::new(),
            touched_encs: Vec::new(),
            touched_pats: Vec::new(),
            counts: Counts::default(),
            ed_hour_norm: normalise(&ED_HOUR_WEIGHTS),
            mat_hour_norm: normalise(&MAT_HOUR_WEIGHTS),
            lang_weights,
            run,
        };
        let start = sim.run.start;
        sim.push(start, Ev::Hour);
        for d in network::DEPTS {
            if let Some(p) = &sim.plan.depts[d.idx()] {
                let froms: Vec<i64> = p
                    .rows
                    .iter()
                    .map(|r| r.from)
                    .filter(|f| *f > start)
                    .collect();
                for f in froms {
                    sim.push(f, Ev::Capacity(d));
                }
            }
        }
        sim
    }

    /// Hospital id.
    pub fn id(&self) -> &'static str {
        self.plan.spec.id
    }

    fn push(&mut self, t: i64, ev: Ev) {
        self.ev_seq += 1;
        self.heap.push(Reverse((t, self.ev_seq, ev)));
    }

    /// Process every event strictly before `t`.
    pub fn run_until(&mut self, t: i64) {
        let limit = t.min(self.run.end);
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at >= limit {
                break;
            }
            let Reverse((at, _, ev)) = self.heap.pop().expect("peeked");
            self.now = at;
            self.handle(ev);
        }
    }

    /// Pop every outbox message delivered strictly before `limit_ms`, in delivery order.
    pub fn drain_outbox(&mut self, limit_ms: i64, out: &mut Vec<Outgoing>) {
        while let Some(Reverse(o)) = self.outbox.peek() {
            if o.deliver_ms >= limit_ms {
                break;
            }
            let Reverse(o) = self.outbox.pop().expect("peeked");
            out.push(o);
        }
    }

    /// End of run: release holds that never saw a follower (should not happen; a hold is only
    /// made when a follow-up message is certain within the run). Such a hold is not counted as
    /// an `out_of_order` defect or an overtaken A08.
    pub fn finish(&mut self) {
        for i in 0..self.encs.len() {
            if let Some(h) = self.encs[i].pending.take() {
                if !h.overtaken {
                    self.inj.retract(DC::OutOfOrder, Source::Adt);
                }
                let h = *h;
                let at = h.out.deliver_ms.max(self.run.end * 1000);
                self.release(h.out, h.resend, at);
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Hour => self.hour_tick(),
            Ev::EdArrival => self.ed_arrival(),
            Ev::Elective(d) => self.direct_arrival(Path::Elective, d),
            Ev::MatArrival => self.direct_arrival(Path::Maternity, Dept::Mat),
            Ev::PedsArrival => self.direct_arrival(Path::PedsDirect, Dept::Peds),
            Ev::EdDone(e) => self.discharge(e),
            Ev::EdDecision(e) => self.ed_decision(e),
            Ev::BedRequest(e) => self.bed_request(e),
            Ev::SegEnd(e, tok) => self.seg_end(e, tok),
            Ev::Deteriorate(e, tok) => self.deteriorate(e, tok),
            Ev::A08(e) => self.a08(e),
            Ev::A11(e) => {
                let bogus = self.encs[e as usize].bogus;
                self.emit("A11", e, bogus, None, None);
                let p = self.encs[e as usize].patient;
                self.patients[p as usize].active = false;
            }
            Ev::BogusTransfer(e, tok) => self.bogus_transfer(e, tok),
            Ev::A12(e, bogus) => {
                let cur = self.encs[e as usize].cur;
                if cur.is_some() {
                    self.emit("A12", e, cur, Some(bogus), None);
                }
            }
            Ev::BogusDischarge(e, tok) => {
                let enc = &self.encs[e as usize];
                if enc.token == tok && enc.cur.is_some() {
                    let cur = enc.cur;
                    let now = self.now;
                    self.emit("A03", e, cur, None, Some(now));
                    let delay = round_min(self.rng.range_i64(10, 90) * MINUTE);
                    self.push(now + delay, Ev::A13(e));
                }
            }
            Ev::A13(e) => {
                let cur = self.encs[e as usize].cur;
                self.emit("A13", e, cur, None, None);
            }
            Ev::Overflow(e) => self.overflow(e),
            Ev::Capacity(d) => self.try_serve(d),
        }
    }

    // ----- arrivals -------------------------------------------------------------------------

    fn hour_tick(&mut self) {
        let h = self.now;
        let local = self.tz.local(h);
        let lday = local.div_euclid(DAY);
        let lh = (local.rem_euclid(DAY) / HOUR) as usize;
        let dow = time::weekday(lday);
        let flu = flu_intensity(lday);
        let spec = &self.plan.spec;
        let scale = self.run.scale;
        let ed = spec.ed_visits_per_year / 365.0 / 24.0
            * self.ed_hour_norm[lh]
            * ED_WEEKDAY[dow]
            * (1.0 + FLU_ED_EXTRA * flu)
            * scale;
        let mut arrivals: Vec<(i64, Ev)> = Vec::new();
        let n = self.rng.poisson(ed);
        for _ in 0..n {
            arrivals.push((h + self.rng.range_i64(0, 59) * MINUTE, Ev::EdArrival));
        }
        let weekday = dow < 5;
        let lhu = lh as u32;
        if weekday && SURG_ELECTIVE_HOURS.contains(&lhu) && self.plan.has(Dept::Surg) {
            let lam = spec.surg_electives_per_weekday / 5.0 * scale;
            for _ in 0..self.rng.poisson(lam) {
                arrivals.push((
                    h + self.rng.range_i64(0, 59) * MINUTE,
                    Ev::Elective(Dept::Surg),
                ));
            }
        }
        if weekday && CARD_ELECTIVE_HOURS.contains(&lhu) && self.plan.has(Dept::Card) {
            let lam = spec.card_electives_per_weekday / 5.0 * scale;
            for _ in 0..self.rng.poisson(lam) {
                arrivals.push((
                    h + self.rng.range_i64(0, 59) * MINUTE,
                    Ev::Elective(Dept::Card),
                ));
            }
        }
        if self.plan.has(Dept::Mat) {
            let lam = spec.births_per_day / 24.0 * self.mat_hour_norm[lh] * scale;
            for _ in 0..self.rng.poisson(lam) {
                arrivals.push((h + self.rng.range_i64(0, 59) * MINUTE, Ev::MatArrival));
            }
        }
        if PEDS_DIRECT_HOURS.contains(&lhu) && self.plan.has(Dept::Peds) {
            let lam = spec.peds_direct_per_day / 10.0 * scale;
            for _ in 0..self.rng.poisson(lam) {
                arrivals.push((h + self.rng.range_i64(0, 59) * MINUTE, Ev::PedsArrival));
            }
        }
        for (t, ev) in arrivals {
            self.push(t, ev);
        }
        if h + HOUR < self.run.end {
            self.push(h + HOUR, Ev::Hour);
        }
    }

    fn age_at(&self, p: u32, t: i64) -> f64 {
        (time::day_index(t) - self.patients[p as usize].attrs.birth as i64) as f64 / 365.2425
    }

    fn sample_band(&mut self, bands: &[(f64, f64, f64)]) -> f64 {
        let w: Vec<f64> = bands.iter().map(|b| b.2).collect();
        let (a, b, _) = bands[self.rng.weighted(&w)];
        self.rng.uniform(a, b)
    }

    /// Pick a returning patient fitting `fits`, or create one.
    fn pick_patient(&mut self, path: Path, dept: Dept) -> u32 {
        let (ret, want_f, age_lo, age_hi) = match (path, dept) {
            (Path::Ed, _) => (RETURN_ED, false, 0.0, 200.0),
            (Path::Maternity, _) => (RETURN_MAT, true, 16.5, 44.5),
            (Path::PedsDirect, _) => (RETURN_PEDS, false, 0.0, 17.5),
            (Path::Elective, _) => (RETURN_ELECTIVE, false, 18.0, 200.0),
        };
        if !self.patients.is_empty() && self.rng.chance(ret) {
            for _ in 0..4 {
                let i = self.rng.index(self.patients.len()) as u32;
                let p = &self.patients[i as usize];
                if p.active || (want_f && p.attrs.sex != 0) {
                    continue;
                }
                let age = self.age_at(i, self.now);
                if age < age_lo || age > age_hi {
                    continue;
                }
                self.patients[i as usize].active = true;
                return i;
            }
        }
        self.new_patient(path, dept)
    }

    fn new_patient(&mut self, path: Path, dept: Dept) -> u32 {
        let age = match (path, dept) {
            (Path::Ed, _) => self.sample_band(&ED_AGE_BANDS),
            (Path::Maternity, _) => (29.0 + 5.5 * self.rng.normal()).clamp(16.5, 44.5),
            (Path::PedsDirect, _) => self.sample_band(&PEDS_AGE_BANDS),
            (Path::Elective, Dept::Card) => self.sample_band(&CARD_AGE_BANDS),
            (Path::Elective, _) => self.sample_band(&SURG_AGE_BANDS),
        };
        let sex = if path == Path::Maternity {
            0
        } else {
            self.rng.weighted(&SEX_WEIGHTS) as u8
        };
        let given_female = match sex {
            0 => true,
            1 => false,
            _ => self.rng.chance(0.5),
        };
        let given_n = if given_female {
            names::FEMALE.len()
        } else {
            names::MALE.len()
        };
        let today = time::day_index(self.now);
        let mut birth = today - (age * 365.2425) as i64;
        // Never on a date systems write as a placeholder (1970-01-01, 1900-01-01): a real birth on
        // one is indistinguishable from the placeholder, and the pipeline rightly leaves those out.
        if birth == 0 || birth == time::days_from_civil(1900, 1, 1) {
            birth += 1;
        }
        let towns = self.plan.spec.towns;
        let tw: Vec<f64> = towns.iter().map(|t| t.3 as f64).collect();
        let town = self.rng.weighted(&tw);
        let zip = towns[town].2 + self.rng.below(towns[town].3 as u64) as u32;
        let unit = if self.rng.chance(UNIT_SHARE) {
            1 + self.rng.skewed_index(names::UNITS.len(), 1.3) as u8
        } else {
            0
        };
        let latent_lang = 1 + self.rng.weighted(&self.lang_weights.clone()) as u8;
        let ins_w: [f64; 5] = if age >= 65.0 {
            [0.85, 0.04, 0.08, 0.02, 0.01]
        } else if age < 18.0 {
            [0.0, 0.45, 0.50, 0.03, 0.02]
        } else {
            [0.05, 0.24, 0.57, 0.11, 0.03]
        };
        let latent_ins = 1 + self.rng.weighted(&ins_w) as u8;
        let attrs = Attrs {
            family: self.rng.skewed_index(names::SURNAMES.len(), 1.6) as u16,
            given: self.rng.skewed_index(given_n, 1.8) as u16,
            given_female,
            birth: birth as i32,
            sex,
            street_no: self.rng.range_i64(10, 9_899) as u16,
            street: self.rng.skewed_index(names::STREETS.len(), 1.3) as u8,
            suffix: self.rng.skewed_index(names::SUFFIXES.len(), 1.5) as u8,
            unit,
            town: town as u8,
            zip,
            lang: 0,
            ins: 0,
        };
        let num = self.patients.len() as u32 + 1;
        self.patients.push(Patient {
            num,
            attrs,
            versions: vec![(self.now, attrs)],
            active: true,
            seen: false,
            latent_lang,
            latent_ins,
            last_touch_day: -1,
        });
        self.patients.len() as u32 - 1
    }

    fn new_enc(&mut self, p: u32, path: Path, admission_type: &'static str) -> u32 {
        let num = self.encs.len() as u32 + 1;
        self.encs.push(Enc {
            num,
            patient: p,
            path,
            admission_type,
            arrival: self.now,
            decision: -1,
            admit: -1,
            discharge: -1,
            inpatient: false,
            cancelled: false,
            cur: None,
            cur_stay: 0,
            token: 0,
            seg_end: -1,
            next: Next::Discharge,
            target: Dept::Med,
            los: 0,
            first_dept: None,
            last_dept: None,
            last_event: self.now,
            last_touch_day: -1,
            pending: None,
            bound: i64::MAX,
            waiting: false,
            had_icu: false,
            det_at: -1,
            bogus: None,
        });
        self.encs.len() as u32 - 1
    }

    fn sample_los(&mut self, d: Dept) -> i64 {
        let (med, sigma, lo, hi) = los_params(d);
        let h = self.rng.lognormal(med, sigma).clamp(lo, hi);
        round_min((h * HOUR as f64) as i64).max(MINUTE)
    }

    fn ed_arrival(&mut self) {
        let p = self.pick_patient(Path::Ed, Dept::Ed);
        let e = self.new_enc(p, Path::Ed, "E");
        let loc = self.ed_space();
        self.start_segment(e, loc, None);
        let now = self.now;
        let age = self.age_at(p, now);
        let flu = flu_intensity(time::day_index(self.tz.local(now)));
        let padm =
            ed_admit_probability(age) * self.plan.spec.admit_factor * (1.0 + FLU_ADMIT_EXTRA * flu);
        let horizon;
        if self.rng.chance(padm) {
            let (m, s, lo, hi) = ED_DECISION;
            let d = round_min((self.rng.lognormal(m, s).clamp(lo, hi) * HOUR as f64) as i64);
            self.push(now + d, Ev::EdDecision(e));
            horizon = d;
            self.encs[e as usize].bound = i64::MAX;
        } else {
            let d = self.sample_los(Dept::Ed);
            self.push(now + d, Ev::EdDone(e));
            horizon = d;
            self.encs[e as usize].bound = now + d;
        }
        if self.rng.chance(A08_ED) && horizon > 20 * MINUTE {
            let t = round_min(now + (horizon as f64 * self.rng.uniform(0.1, 0.9)) as i64);
            if t > now && t < now + horizon {
                self.push(t, Ev::A08(e));
            }
        }
        self.emit("A04", e, Some(loc), None, None);
    }

    fn ed_space(&mut self) -> Loc {
        let bays = &self.beds[Dept::Ed.idx()];
        let free = bays.iter().filter(|b| **b == FREE).count();
        if free > 0 {
            let k = self.rng.index(free);
            let idx = bays
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == FREE)
                .nth(k)
                .map(|(i, _)| i)
                .expect("k < free");
            return Loc {
                dept: Dept::Ed,
                bed: idx as u16,
                hall: false,
            };
        }
        let idx = match self.hall.iter().position(|b| *b == FREE) {
            Some(i) => i,
            None => {
                self.hall.push(FREE);
                self.hall.len() - 1
            }
        };
        Loc {
            dept: Dept::Ed,
            bed: idx as u16,
            hall: true,
        }
    }

    fn ed_decision(&mut self, e: u32) {
        let now = self.now;
        let p = self.encs[e as usize].patient;
        let age = self.age_at(p, now);
        let flu = flu_intensity(time::day_index(self.tz.local(now)));
        let target = if age < 18.0 {
            if self.plan.has(Dept::Icu) && self.rng.chance(PEDS_ICU_SHARE) {
                Some(Dept::Icu)
            } else if self.plan.has(Dept::Peds) {
                Some(Dept::Peds)
            } else {
                None // transferred to a children's hospital: leaves from the ED
            }
        } else {
            let mut w = ed_target_weights(age);
            w[0] *= 1.0 + FLU_MED_ICU_EXTRA * flu;
            w[3] *= 1.0 + FLU_MED_ICU_EXTRA * flu;
            let opts = [Dept::Med, Dept::Surg, Dept::Card, Dept::Icu];
            let d = opts[self.rng.weighted(&w)];
            Some(if self.plan.has(d) { d } else { Dept::Med })
        };
        let Some(target) = target else {
            self.discharge(e);
            return;
        };
        let los = self.sample_los(target);
        let next = if target == Dept::Icu && self.rng.chance(ICU_STEP_DOWN_SHARE) {
            let l = (self.sample_los(Dept::Med) as f64 * STEP_DOWN_LOS_FACTOR) as i64;
            let dept = if age < 18.0 && self.plan.has(Dept::Peds) {
                Dept::Peds
            } else {
                Dept::Med
            };
            Next::StepDown {
                dept,
                los: round_min(l).max(6 * HOUR),
            }
        } else {
            Next::Discharge
        };
        {
            let enc = &mut self.encs[e as usize];
            enc.decision = now;
            enc.target = target;
            enc.los = los;
            enc.next = next;
        }
        let (m, s, lo, hi) = BED_REQUEST;
        let d = round_min((self.rng.lognormal(m, s).clamp(lo, hi) * HOUR as f64) as i64);
        self.push(now + d, Ev::BedRequest(e));
    }

    /// The admitting team has accepted the patient and a bed is requested: join the ward queue.
    fn bed_request(&mut self, e: u32) {
        let now = self.now;
        let target = self.encs[e as usize].target;
        self.encs[e as usize].waiting = true;
        self.queues[target.idx()].push_back(e);
        self.try_serve(target);
        if self.encs[e as usize].waiting && target != Dept::Icu && target != Dept::Peds {
            self.push(
                now + (OVERFLOW_AFTER_H * HOUR as f64) as i64,
                Ev::Overflow(e),
            );
        }
    }

    fn direct_arrival(&mut self, path: Path, dept: Dept) {
        if !self.plan.has(dept) {
            return;
        }
        let p = self.pick_patient(path, dept);
        let adm_type = match path {
            Path::Maternity => "L",
            Path::PedsDirect => "U",
            _ => "C",
        };
        let e = self.new_enc(p, path, adm_type);
        let now = self.now;
        if path == Path::Elective && self.rng.chance(A11_ELECTIVE) {
            // Admitted in error (wrong patient / cancelled procedure): A01 then A11.
            let staffed = self.plan.dept(dept).staffed_at(now).max(1);
            let bed = self.rng.below(staffed as u64) as u16;
            let loc = Loc {
                dept,
                bed,
                hall: false,
            };
            let delay = round_min(self.rng.range_i64(15, 120) * MINUTE);
            {
                let enc = &mut self.encs[e as usize];
                enc.cancelled = true;
                enc.inpatient = true;
                enc.admit = now;
                enc.bogus = Some(loc);
                enc.bound = now + delay;
            }
            self.push(now + delay, Ev::A11(e));
            self.emit("A01", e, Some(loc), None, None);
            return;
        }
        let los = self.sample_los(dept);
        {
            let enc = &mut self.encs[e as usize];
            enc.target = dept;
            enc.los = los;
            enc.next = Next::Discharge;
            enc.waiting = true;
        }
        self.queues[dept.idx()].push_back(e);
        self.try_serve(dept);
        if self.encs[e as usize].waiting {
            let h = if path == Path::Maternity {
                OVERFLOW_AFTER_MAT_H
            } else {
                OVERFLOW_AFTER_H
            };
            if path != Path::PedsDirect {
                self.push(now + (h * HOUR as f64) as i64, Ev::Overflow(e));
            }
        }
    }

    // ----- beds -------------------------------------------------------------------------------

    /// A free bed of `d` that may be held over `[from, to)` given the staffed-bed schedule.
    fn find_bed(&mut self, d: Dept, from: i64, to: i64) -> Option<u16> {
        let plan = self.plan.depts[d.idx()].as_ref()?;
        let limit = plan.min_staffed(from, to) as usize;
        let beds = &self.beds[d.idx()];
        let limit = limit.min(beds.len());
        let free = beds[..limit].iter().filter(|b| **b == FREE).count();
        if free == 0 {
            return None;
        }
        let k = self.rng.index(free);
        beds[..limit]
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == FREE)
            .nth(k)
            .map(|(i, _)| i as u16)
    }

    fn try_serve(&mut self, d: Dept) {
        if d == Dept::Ed || self.queues[d.idx()].is_empty() {
            return;
        }
        let now = self.now;
        let mut i = 0;
        while i < self.queues[d.idx()].len() {
            let e = self.queues[d.idx()][i];
            let los = self.encs[e as usize].los;
            match self.find_bed(d, now, now + los) {
                Some(bed) => {
                    self.queues[d.idx()].remove(i);
                    self.admit_to_bed(e, d, bed);
                }
                None => {
                    // Nothing free at all: nobody further down the queue fits either.
                    let staffed = self.plan.dept(d).staffed_at(now) as usize;
                    let beds = &self.beds[d.idx()];
                    if !beds[..staffed.min(beds.len())].contains(&FREE) {
                        break;
                    }
                    i += 1;
                }
            }
        }
    }

    fn overflow(&mut self, e: u32) {
        if !self.encs[e as usize].waiting {
            return;
        }
        let now = self.now;
        let (target, los) = {
            let enc = &self.encs[e as usize];
            (enc.target, enc.los)
        };
        let alts = [Dept::Med, Dept::Surg, Dept::Card];
        for alt in alts {
            if alt == target || !self.plan.has(alt) {
                continue;
            }
            if let Some(bed) = self.find_bed(alt, now, now + los) {
                let q = &mut self.queues[target.idx()];
                if let Some(pos) = q.iter().position(|x| *x == e) {
                    q.remove(pos);
                }
                self.admit_to_bed(e, alt, bed);
                return;
            }
        }
        self.push(now + 2 * HOUR, Ev::Overflow(e));
    }

    fn start_segment(&mut self, e: u32, loc: Loc, dur: Option<i64>) {
        let now = self.now;
        if loc.hall {
            self.hall[loc.bed as usize] = e;
        } else {
            self.beds[loc.dept.idx()][loc.bed as usize] = e;
        }
        self.stays.push(Stay {
            enc: e,
            loc,
            start: now,
            end: -1,
        });
        let stay = self.stays.len() as u32 - 1;
        let enc = &mut self.encs[e as usize];
        enc.cur = Some(loc);
        enc.cur_stay = stay;
        enc.token += 1;
        if enc.first_dept.is_none() {
            enc.first_dept = Some(loc.dept);
        }
        enc.last_dept = Some(loc.dept);
        if let Some(d) = dur {
            enc.seg_end = now + d;
            enc.bound = now + d;
            let tok = enc.token;
            self.push(now + d, Ev::SegEnd(e, tok));
        }
    }

    fn close_segment(&mut self, e: u32) {
        let now = self.now;
        let (loc, stay) = {
            let enc = &mut self.encs[e as usize];
            let loc = enc.cur.take().expect("open segment");
            enc.token += 1;
            (loc, enc.cur_stay)
        };
        self.stays[stay as usize].end = now;
        if loc.hall {
            self.hall[loc.bed as usize] = FREE;
        } else {
            self.beds[loc.dept.idx()][loc.bed as usize] = FREE;
        }
        if loc.dept != Dept::Ed {
            self.try_serve(loc.dept);
        }
    }

    fn admit_to_bed(&mut self, e: u32, d: Dept, bed: u16) {
        let now = self.now;
        let prior = self.encs[e as usize].cur;
        if prior.is_some() {
            self.close_segment(e);
        }
        let los = self.encs[e as usize].los;
        {
            let enc = &mut self.encs[e as usize];
            enc.waiting = false;
            enc.inpatient = true;
            enc.admit = now;
        }
        let loc = Loc {
            dept: d,
            bed,
            hall: false,
        };
        self.start_segment(e, loc, Some(los));
        self.emit("A01", e, Some(loc), prior, None);
        if self.rng.chance(A08_INPATIENT) {
            let t = round_min(now + (los as f64 * self.rng.uniform(0.05, 0.95)) as i64);
            if t > now && t < now + los {
                self.push(t, Ev::A08(e));
            }
        }
        self.ward_extras(e, d, los);
    }

    /// Deterioration, erroneous transfers and premature discharges of a ward segment.
    fn ward_extras(&mut self, e: u32, d: Dept, dur: i64) {
        let now = self.now;
        let (tok, next, had_icu) = {
            let enc = &self.encs[e as usize];
            (enc.token, enc.next, enc.had_icu)
        };
        let mut det_at = -1;
        if !had_icu
            && next == Next::Discharge
            && self.plan.has(Dept::Icu)
            && self.rng.chance(icu_transfer_probability(d))
        {
            det_at = round_min(now + (dur as f64 * self.rng.uniform(0.1, 0.6)) as i64);
            if det_at > now && det_at < now + dur {
                self.push(det_at, Ev::Deteriorate(e, tok));
            } else {
                det_at = -1;
            }
        }
        self.encs[e as usize].det_at = det_at;
        let far_from_det = |t: i64| det_at < 0 || (t - det_at).abs() > 3 * HOUR;
        if d != Dept::Icu && dur > 6 * HOUR && self.rng.chance(A12_WARD_STAY) {
            let t = round_min(now + (dur as f64 * self.rng.uniform(0.2, 0.8)) as i64);
            if far_from_det(t) && now + dur - t > 2 * HOUR && t > now {
                self.push(t, Ev::BogusTransfer(e, tok));
            }
        }
        if next == Next::Discharge && dur > DAY && self.rng.chance(A13_DISCHARGE) {
            let t = round_min(now + dur - self.rng.range_i64(4 * 60, 20 * 60) * MINUTE);
            if t > now + 2 * HOUR && (det_at < 0 || det_at < t - 3 * HOUR || det_at > t + 2 * HOUR)
            {
                self.push(t, Ev::BogusDischarge(e, tok));
            }
        }
    }

    fn seg_end(&mut self, e: u32, tok: u32) {
        let (token, next) = {
            let enc = &self.encs[e as usize];
            (enc.token, enc.next)
        };
        if token != tok {
            return;
        }
        match next {
            Next::Discharge => self.discharge(e),
            Next::StepDown { dept, los } => {
                let now = self.now;
                let mut choice = None;
                for d in [dept, Dept::Med] {
                    if self.plan.has(d) {
                        if let Some(bed) = self.find_bed(d, now, now + los) {
                            choice = Some((d, bed));
                            break;
                        }
                    }
                }
                let Some((d, bed)) = choice else {
                    self.discharge(e);
                    return;
                };
                let prior = self.encs[e as usize].cur;
                self.close_segment(e);
                {
                    let enc = &mut self.encs[e as usize];
                    enc.next = Next::Discharge;
                    enc.los = los;
                }
                let loc = Loc {
                    dept: d,
                    bed,
                    hall: false,
                };
                self.start_segment(e, loc, Some(los));
                self.emit("A02", e, Some(loc), prior, None);
                self.ward_extras(e, d, los);
            }
        }
    }

    fn deteriorate(&mut self, e: u32, tok: u32) {
        let (token, seg_end, cur) = {
            let enc = &self.encs[e as usize];
            (enc.token, enc.seg_end, enc.cur)
        };
        if token != tok || cur.is_none() {
            return;
        }
        let now = self.now;
        let icu_los = self.sample_los(Dept::Icu);
        let Some(bed) = self.find_bed(Dept::Icu, now, now + icu_los) else {
            return; // ICU full: managed on the ward
        };
        let ward = cur.expect("checked").dept;
        let remaining = round_min((seg_end - now).max(DAY));
        self.close_segment(e);
        {
            let enc = &mut self.encs[e as usize];
            enc.had_icu = true;
            enc.next = Next::StepDown {
                dept: ward,
                los: remaining,
            };
        }
        let loc = Loc {
            dept: Dept::Icu,
            bed,
            hall: false,
        };
        self.start_segment(e, loc, Some(icu_los));
        self.emit("A02", e, Some(loc), cur, None);
    }

    fn discharge(&mut self, e: u32) {
        let now = self.now;
        let cur = self.encs[e as usize].cur;
        self.emit("A03", e, cur, None, Some(now));
        self.close_segment(e);
        let enc = &mut self.encs[e as usize];
        enc.discharge = now;
        let p = enc.patient;
        self.patients[p as usize].active = false;
    }

    fn bogus_transfer(&mut self, e: u32, tok: u32) {
        let (token, cur) = {
            let enc = &self.encs[e as usize];
            (enc.token, enc.cur)
        };
        if token != tok {
            return;
        }
        let Some(cur) = cur else { return };
        let opts: Vec<Dept> = [Dept::Icu, Dept::Surg, Dept::Med, Dept::Card, Dept::Peds]
            .into_iter()
            .filter(|d| *d != cur.dept && self.plan.has(*d))
            .collect();
        if opts.is_empty() {
            return;
        }
        let d = opts[self.rng.index(opts.len())];
        let now = self.now;
        let staffed = self.plan.dept(d).staffed_at(now).max(1);
        let bogus = Loc {
            dept: d,
            bed: self.rng.below(staffed as u64) as u16,
            hall: false,
        };
        let delay = round_min(self.rng.range_i64(5, 60) * MINUTE);
        self.push(now + delay, Ev::A12(e, bogus));
        self.emit("A02", e, Some(bogus), Some(cur), None);
    }

    fn a08(&mut self, e: u32) {
        let (done, p, cur, path, arrival) = {
            let enc = &self.encs[e as usize];
            (
                enc.discharge >= 0 || enc.cancelled,
                enc.patient,
                enc.cur,
                enc.path,
                enc.arrival,
            )
        };
        if done || cur.is_none() {
            return;
        }
        let now = self.now;
        let before = self.patients[p as usize].attrs;
        let mut a = before;
        let age = self.age_at(p, now);
        let mut kind = self.rng.weighted(&A08_KIND_WEIGHTS);
        if !self.run.demographic_changes && matches!(kind, 1 | 4 | 5) {
            kind = 0; // identity attributes never change: a move instead
        }
        let mut changed = false;
        if kind == 1 {
            if a.sex == 0 && (18.0..55.0).contains(&age) {
                // marriage / divorce: new family name
                let f = self.rng.skewed_index(names::SURNAMES.len(), 1.2) as u16;
                if f != a.family {
                    a.family = f;
                    changed = true;
                }
            } else {
                // registration typo corrected
                let n = if a.given_female {
                    names::FEMALE.len()
                } else {
                    names::MALE.len()
                };
                let g = self.rng.index(n) as u16;
                if g != a.given {
                    a.given = g;
                    changed = true;
                }
            }
        } else if kind == 2 && now >= self.run.ins_from {
            let i = 1 + self.rng.index(names::INSURANCE.len()) as u8;
            if i != a.ins && a.ins != 0 {
                a.ins = i;
                self.patients[p as usize].latent_ins = i;
                changed = true;
            }
        } else if kind == 3 && now >= self.run.lang_from {
            let l = 1 + self.rng.weighted(&self.lang_weights.clone()) as u8;
            if l != a.lang && a.lang != 0 {
                a.lang = l;
                self.patients[p as usize].latent_lang = l;
                changed = true;
            }
        } else if kind == 4 {
            if let Some(b) = self.corrected_birth(a.birth as i64, age, path, arrival) {
                a.birth = b as i32;
                changed = true;
            }
        } else if kind == 5 && a.sex <= 1 && path != Path::Maternity {
            // administrative sex registered wrongly (F↔M); the given name stays
            a.sex = 1 - a.sex;
            changed = true;
        }
        if !changed {
            // moved house
            a.street_no = self.rng.range_i64(10, 9_899) as u16;
            a.street = self.rng.skewed_index(names::STREETS.len(), 1.3) as u8;
            a.suffix = self.rng.skewed_index(names::SUFFIXES.len(), 1.5) as u8;
            a.unit = if self.rng.chance(UNIT_SHARE) {
                1 + self.rng.skewed_index(names::UNITS.len(), 1.3) as u8
            } else {
                0
            };
            if self.rng.chance(0.3) {
                let towns = self.plan.spec.towns;
                let tw: Vec<f64> = towns.iter().map(|t| t.3 as f64).collect();
                let town = self.rng.weighted(&tw);
                a.town = town as u8;
                a.zip = towns[town].2 + self.rng.below(towns[town].3 as u64) as u32;
            }
        }
        let identity = a.family != before.family
            || a.given != before.given
            || a.birth != before.birth
            || a.sex != before.sex;
        self.set_attrs(p, a);
        self.emit_msg("A08", e, cur, None, None, identity);
    }

    /// A corrected birth date for an A08: `birth` shifted by a few days (mistyped day), by
    /// 1–11 months or by 1–2 years, in either direction. `None` when the result would not be
    /// plausible: after the encounter's arrival day, older than 110 years, on the other side of
    /// 18 than `age`, outside 15–50 years for an obstetric patient, or a placeholder date.
    fn corrected_birth(&mut self, birth: i64, age: f64, path: Path, arrival: i64) -> Option<i64> {
        let sign = if self.rng.chance(0.5) { 1 } else { -1 };
        let b = match self.rng.index(3) {
            0 => birth + sign * self.rng.range_i64(1, 27),
            1 => birth + sign * self.rng.range_i64(28, 330),
            _ => time::add_years_days(birth, sign * self.rng.range_i64(1, 2)),
        };
        let new_age = (time::day_index(self.now) - b) as f64 / 365.2425;
        let ymd = time::ymd(b);
        let ok = b != birth
            && b <= time::day_index(arrival)
            && new_age <= 110.0
            && (new_age >= 18.0) == (age >= 18.0)
            && (path != Path::Maternity || (15.0..=50.0).contains(&new_age))
            && ymd != "1900-01-01"
            && ymd != "1970-01-01";
        ok.then_some(b)
    }

    fn set_attrs(&mut self, p: u32, a: Attrs) {
        let now = self.now;
        let pat = &mut self.patients[p as usize];
        if pat.attrs == a {
            return;
        }
        pat.attrs = a;
        match pat.versions.last_mut() {
            Some(last) if last.0 == now => last.1 = a,
            _ => pat.versions.push((now, a)),
        }
    }

    // ----- messages ---------------------------------------------------------------------------

    /// Emit one ADT message of encounter `e` at the current time.
    fn emit(
        &mut self,
        ev: &'static str,
        e: u32,
        loc: Option<Loc>,
        prior: Option<Loc>,
        discharge: Option<i64>,
    ) {
        self.emit_msg(ev, e, loc, prior, discharge, false);
    }

    /// [`Self::emit`]; `identity_change`: an A08 that changed family/given name, birth date or
    /// sex (candidate for delivery after the encounter's next message).
    fn emit_msg(
        &mut self,
        ev: &'static str,
        e: u32,
        loc: Option<Loc>,
        prior: Option<Loc>,
        discharge: Option<i64>,
        identity_change: bool,
    ) {
        let now = self.now;
        let today = time::day_index(now);
        let p = self.encs[e as usize].patient;
        // The record exists for the sources from the first message naming the patient.
        {
            let pat = &mut self.patients[p as usize];
            if !pat.seen {
                pat.seen = true;
                if pat.versions.len() == 1 {
                    pat.versions[0].0 = now;
                }
            }
        }
        // New attributes are collected from the first contact after their introduction.
        {
            let mut a = self.patients[p as usize].attrs;
            if now >= self.run.lang_from && a.lang == 0 {
                a.lang = self.patients[p as usize].latent_lang;
            }
            if now >= self.run.ins_from && a.ins == 0 {
                a.ins = self.patients[p as usize].latent_ins;
            }
            self.set_attrs(p, a);
        }
        // Truth bookkeeping for the EHR extracts.
        {
            let enc = &mut self.encs[e as usize];
            enc.last_event = now;
            if enc.last_touch_day != today {
                enc.last_touch_day = today;
                self.touched_encs.push(e);
            }
            let pat = &mut self.patients[p as usize];
            if pat.last_touch_day != today {
                pat.last_touch_day = today;
                self.touched_pats.push(p);
            }
        }
        *self.counts.events.entry(ev).or_default() += 1;

        self.msg_counter += 1;
        let fac = self.plan.spec.id;
        let message_id = format!("{fac}-{:09}", self.msg_counter);
        let rec_delay = match ev {
            "A04" => self.wire.range_i64(0, 90),
            "A08" => self.wire.range_i64(0, 30),
            _ => self.wire.range_i64(30, 600),
        };
        let recorded = now + rec_delay;
        let (pat_attrs, pat_num) = {
            let pat = &self.patients[p as usize];
            (pat.attrs, pat.num)
        };
        let enc = &self.encs[e as usize];
        let town = self.plan.spec.towns[pat_attrs.town as usize];
        let class = if enc.inpatient && ev != "A04" {
            "I"
        } else {
            "E"
        };
        let class = if enc.path != Path::Ed { "I" } else { class };
        let admit = if enc.admit >= 0 && ev != "A04" {
            TimeVal::At(enc.admit)
        } else {
            TimeVal::None
        };
        let mut msg = AdtMessage {
            message_id,
            event: ev,
            facility: fac,
            recorded: TimeVal::At(recorded),
            event_time: TimeVal::At(now),
            mrn: format!("{fac}-P{pat_num:07}"),
            family: pat_attrs.family_name().to_string(),
            given: pat_attrs.given_name().to_string(),
            birth: DateVal::At(pat_attrs.birth as i64),
            sex: pat_attrs.sex_code().to_string(),
            street: pat_attrs.street_line(),
            city: town.0,
            state: town.1,
            zip: format!("{:05}", pat_attrs.zip),
            language: pat_attrs.language(),
            insurance: pat_attrs.insurance(),
            visit: format!("{fac}-V{:07}", enc.num),
            class,
            admission_type: enc.admission_type,
            loc: loc.map(|l| l.val()),
            prior: prior.map(|l| l.val()),
            admit,
            discharge: discharge.map(TimeVal::At).unwrap_or(TimeVal::None),
        };
        let bound = enc.bound;
        let has_pending = enc.pending.is_some();

        let json = self.wire.chance(self.run.json_fraction);
        let format = if json {
            MessageFormat::Json
        } else {
            MessageFormat::Hl7
        };
        // The clean message, for a corrected re-send should `content_defects` damage it.
        let clean = (self.run.resend_rate > 0.0).then(|| msg.clone());
        let mstart = self.manifest.len();
        let malformed = self.content_defects(&mut msg, format, pat_attrs, today);
        let payload = match format {
            MessageFormat::Json => encode::to_json(&msg, &self.tz),
            MessageFormat::Hl7 => encode::to_hl7(
                &msg,
                &self.tz,
                self.plan.spec.framing.segment_end(),
                malformed,
            ),
        };
        let latency_ms = self.wire.range_i64(200, 20_000);
        let mut out = Outgoing {
            deliver_ms: recorded * 1000 + latency_ms,
            seq: 0,
            hosp: self.plan.index,
            format,
            message_id: msg.message_id.clone(),
            event: ev,
            payload,
        };
        // A content defect was injected (one manifest line): the sender may correct and re-send.
        let resend = match clean {
            Some(c)
                if self.manifest.len() > mstart && self.resend_rng.chance(self.run.resend_rate) =>
            {
                Some(self.corrected_resend(c, format))
            }
            _ => None,
        };
        if let Some(r) = &resend {
            let (id, by) = (out.message_id.clone(), r.out.message_id.clone());
            self.link_resend(mstart, &id, &by);
        }
        // Whether the encounter certainly has a next message within a day and within the run.
        let follower_due = !has_pending
            && bound != i64::MAX
            && bound < self.run.end
            && bound - now <= DAY
            && bound > now;

        // Delivery defects.
        if follower_due
            && matches!(ev, "A04" | "A01" | "A02" | "A08")
            && self.inj.offer(DC::OutOfOrder, Source::Adt)
        {
            // Held back until just after the encounter's next message (see `has_pending`).
            self.encs[e as usize].pending = Some(Box::new(Held {
                out,
                resend,
                overtaken: false,
            }));
            return;
        }
        // Not a defect: an identity-changing A08 overtaken by the encounter's next message.
        if identity_change && follower_due && self.overtake_rng.chance(self.run.a08_overtaken_rate)
        {
            self.encs[e as usize].pending = Some(Box::new(Held {
                out,
                resend,
                overtaken: true,
            }));
            return;
        }
        if self.inj.offer(DC::LateEvent, Source::Adt) {
            let next_midnight = (today + 1) * DAY;
            let extra = self.inj.rng.range_i64(10 * 60, 48 * 3600);
            let t = (next_midnight + extra) * 1000 + self.inj.rng.range_i64(0, 999);
            self.manifest.push(ManifestEntry {
                source: Source::Adt.id().into(),
                record_key: out.message_id.clone(),
                defect: DC::LateEvent.id().into(),
                field: None,
                clean_value: None,
                note: Some(format!(
                    "event_time={} delivered={} delay_h={:.1}",
                    time::rfc3339_utc(now),
                    time::rfc3339_utc(t / 1000),
                    (t / 1000 - now) as f64 / 3600.0
                )),
                corrected_by: resend.as_ref().map(|r| r.out.message_id.clone()),
            });
            out.deliver_ms = t;
        }
        if has_pending {
            let held = *self.encs[e as usize].pending.take().expect("pending");
            let at = if held.overtaken {
                self.counts.a08_overtaken += 1;
                out.deliver_ms + self.overtake_rng.range_i64(1_000, 600_000)
            } else {
                self.manifest.push(ManifestEntry {
                    source: Source::Adt.id().into(),
                    record_key: out.message_id.clone(),
                    defect: DC::OutOfOrder.id().into(),
                    field: None,
                    clean_value: None,
                    note: Some(format!("overtook:{}", held.out.message_id)),
                    corrected_by: resend.as_ref().map(|r| r.out.message_id.clone()),
                });
                out.deliver_ms + self.inj.rng.range_i64(1_000, 600_000)
            };
            self.release(held.out, held.resend, at);
        }
        let dup = if self.inj.offer(DC::DuplicateDelivery, Source::Adt) {
            let mut dup = out.clone();
            dup.deliver_ms += self.inj.rng.range_i64(1_000, 6 * 3_600_000);
            self.manifest.push(ManifestEntry {
                source: Source::Adt.id().into(),
                record_key: out.message_id.clone(),
                defect: DC::DuplicateDelivery.id().into(),
                field: None,
                clean_value: None,
                note: Some(format!(
                    "re-delivered {}",
                    time::rfc3339_utc(dup.deliver_ms / 1000)
                )),
                corrected_by: resend.as_ref().map(|r| r.out.message_id.clone()),
            });
            Some(dup)
        } else {
            None
        };
        let at = out.deliver_ms;
        self.release(out, resend, at);
        if let Some(dup) = dup {
            self.push_out(dup);
        }
    }

    /// The corrected re-send of a message whose clean form is `m`: a new message id, recorded
    /// 1–30 min after the original, same format and framing, no defect. Its delivery delay after
    /// the original's delivery (1–60 min, never before its own recorded time) is drawn here.
    fn corrected_resend(&mut self, mut m: AdtMessage, format: MessageFormat) -> Resend {
        self.msg_counter += 1;
        m.message_id = format!("{}-{:09}", self.plan.spec.id, self.msg_counter);
        let TimeVal::At(recorded) = m.recorded else {
            unreachable!("clean recorded time")
        };
        let later = self.resend_rng.range_i64(60, 30 * 60);
        m.recorded = TimeVal::At(recorded + later);
        let payload = match format {
            MessageFormat::Json => encode::to_json(&m, &self.tz),
            MessageFormat::Hl7 => {
                encode::to_hl7(&m, &self.tz, self.plan.spec.framing.segment_end(), None)
            }
        };
        let after_ms = self.resend_rng.range_i64(later * 1000 + 1_000, 3_600_000);
        Resend {
            out: Outgoing {
                deliver_ms: 0,
                seq: 0,
                hosp: self.plan.index,
                format,
                message_id: m.message_id,
                event: m.event,
                payload,
            },
            after_ms,
        }
    }

    /// Name the re-send `by` on every manifest line of message `id` written since `from`.
    fn link_resend(&mut self, from: usize, id: &str, by: &str) {
        for m in &mut self.manifest[from..] {
            if m.record_key == id {
                m.corrected_by = Some(by.to_string());
            }
        }
    }

    /// Queue a message for delivery at `at`, and its corrected re-send after it.
    fn release(&mut self, mut out: Outgoing, resend: Option<Resend>, at: i64) {
        out.deliver_ms = at;
        self.push_out(out);
        if let Some(r) = resend {
            let mut o = r.out;
            o.deliver_ms = at + r.after_ms;
            self.counts.corrected_resends += 1;
            self.push_out(o);
        }
    }

    fn push_out(&mut self, mut o: Outgoing) {
        self.out_seq += 1;
        o.seq = self.out_seq;
        *self.counts.delivered_by_type.entry(o.event).or_default() += 1;
        *self
            .counts
            .delivered_by_format
            .entry(o.format.id())
            .or_default() += 1;
        self.outbox.push(Reverse(o));
    }

    fn record(
        &mut self,
        key: &str,
        class: DC,
        field: Option<&str>,
        clean: Option<String>,
        note: Option<String>,
    ) {
        self.manifest.push(ManifestEntry {
            source: Source::Adt.id().into(),
            record_key: key.to_string(),
            defect: class.id().into(),
            field: field.map(|s| s.to_string()),
            clean_value: clean,
            note,
            corrected_by: None,
        });
    }

    /// Offer the message to each applicable content-defect class (at most one is injected).
    fn content_defects(
        &mut self,
        m: &mut AdtMessage,
        format: MessageFormat,
        a: Attrs,
        today: i64,
    ) -> Option<Malformed> {
        let hl7 = format == MessageFormat::Hl7;
        let ev = m.event;
        let id = m.message_id.clone();
        let TimeVal::At(event_t) = m.event_time else {
            unreachable!("clean event time")
        };
        let TimeVal::At(recorded_t) = m.recorded else {
            unreachable!("clean recorded time")
        };
        let admit_t = if let TimeVal::At(t) = m.admit {
            Some(t)
        } else {
            None
        };
        let disch_t = if let TimeVal::At(t) = m.discharge {
            Some(t)
        } else {
            None
        };
        let hl7_note = |f: &str| {
            if hl7 {
                Some(format!("hl7:{f}"))
            } else {
                Some("json".to_string())
            }
        };

        if hl7 && self.inj.offer(DC::MalformedHl7, Source::Adt) {
            let kind = match self.inj.rng.index(3) {
                0 => Malformed::Truncated(100 + self.inj.rng.below(800) as u32),
                1 => Malformed::MissingMsh10,
                _ => Malformed::WrongSeparators,
            };
            self.record(&id, DC::MalformedHl7, None, None, Some(kind.note().into()));
            return Some(kind);
        }
        if ev == "A01" && admit_t.is_some() && self.inj.offer(DC::MissingAdmitTime, Source::Adt) {
            m.admit = TimeVal::None;
            self.record(
                &id,
                DC::MissingAdmitTime,
                Some("visit.admit_time"),
                admit_t.map(time::rfc3339_utc),
                hl7_note("PV1-44"),
            );
            return None;
        }
        if let (true, Some(admit), Some(_)) = (ev == "A03", admit_t, disch_t) {
            if self.inj.offer(DC::DischargeBeforeAdmit, Source::Adt) {
                let wrong = admit - self.inj.rng.range_i64(60, 72 * 60) * MINUTE;
                m.discharge = TimeVal::At(wrong);
                self.record(
                    &id,
                    DC::DischargeBeforeAdmit,
                    Some("visit.discharge_time"),
                    disch_t.map(time::rfc3339_utc),
                    hl7_note("PV1-45"),
                );
                return None;
            }
        }
        if ev != "A08" && self.inj.offer(DC::ConflictingIdentity, Source::Adt) {
            let r = self.inj.rng.f64();
            if r < 0.4 {
                let shift =
                    self.inj.rng.range_i64(1, 3) * if self.inj.rng.chance(0.5) { 1 } else { -1 };
                let wrong =
                    time::add_years_days(a.birth as i64, shift) + self.inj.rng.range_i64(-20, 20);
                m.birth = DateVal::At(wrong);
                self.record(
                    &id,
                    DC::ConflictingIdentity,
                    Some("patient.birth_date"),
                    Some(time::ymd(a.birth as i64)),
                    hl7_note("PID-7"),
                );
            } else if r < 0.6 && a.sex <= 1 {
                m.sex = if a.sex == 0 { "M" } else { "F" }.to_string();
                self.record(
                    &id,
                    DC::ConflictingIdentity,
                    Some("patient.sex"),
                    Some(a.sex_code().into()),
                    hl7_note("PID-8"),
                );
            } else if r < 0.8 {
                let list = if a.given_female {
                    names::FEMALE
                } else {
                    names::MALE
                };
                let mut g = self.inj.rng.index(list.len());
                if g == a.given as usize {
                    g = (g + 1) % list.len();
                }
                m.given = list[g].to_string();
                self.record(
                    &id,
                    DC::ConflictingIdentity,
                    Some("patient.given_name"),
                    Some(a.given_name().into()),
                    hl7_note("PID-5.2"),
                );
            } else {
                let mut f = self.inj.rng.index(names::SURNAMES.len());
                if names::SURNAMES[f] == a.family_name() {
                    f = (f + 1) % names::SURNAMES.len();
                }
                m.family = names::SURNAMES[f].to_string();
                self.record(
                    &id,
                    DC::ConflictingIdentity,
                    Some("patient.family_name"),
                    Some(a.family_name().into()),
                    hl7_note("PID-5.1"),
                );
            }
            return None;
        }
        if self.inj.offer(DC::FutureTimestamp, Source::Adt) {
            let mut fields: Vec<(&str, &str, i64)> = vec![("event_time", "EVN-6", event_t)];
            if let Some(t) = admit_t {
                fields.push(("visit.admit_time", "PV1-44", t));
            }
            if let Some(t) = disch_t {
                fields.push(("visit.discharge_time", "PV1-45", t));
            }
            let (f, h, t) = fields[self.inj.rng.index(fields.len())];
            let years = self.inj.rng.range_i64(5, 40);
            let v = TimeVal::At(time::add_years(t, years));
            match f {
                "event_time" => m.event_time = v,
                "visit.admit_time" => m.admit = v,
                _ => m.discharge = v,
            }
            self.record(
                &id,
                DC::FutureTimestamp,
                Some(f),
                Some(time::rfc3339_utc(t)),
                hl7_note(h),
            );
            return None;
        }
        if self.inj.offer(DC::PlaceholderDate, Source::Adt) {
            let year = if self.inj.rng.chance(0.5) {
                "1900"
            } else {
                "1970"
            };
            if self.inj.rng.chance(0.5) {
                m.birth = DateVal::Raw(if hl7 {
                    format!("{year}0101")
                } else {
                    format!("{year}-01-01")
                });
                self.record(
                    &id,
                    DC::PlaceholderDate,
                    Some("patient.birth_date"),
                    Some(time::ymd(a.birth as i64)),
                    hl7_note("PID-7"),
                );
            } else {
                m.event_time = TimeVal::Raw(if hl7 {
                    format!("{year}0101000000")
                } else {
                    format!("{year}-01-01T00:00:00Z")
                });
                self.record(
                    &id,
                    DC::PlaceholderDate,
                    Some("event_time"),
                    Some(time::rfc3339_utc(event_t)),
                    hl7_note("EVN-6"),
                );
            }
            return None;
        }
        if !hl7 {
            let mut fields: Vec<(&str, i64)> =
                vec![("event_time", event_t), ("recorded_time", recorded_t)];
            if let Some(t) = admit_t {
                fields.push(("visit.admit_time", t));
            }
            if let Some(t) = disch_t {
                fields.push(("visit.discharge_time", t));
            }
            if self.inj.offer(DC::MixedTimestampFormat, Source::Adt) {
                let (f, t) = fields[self.inj.rng.index(fields.len())];
                let off = self.tz.at(t);
                let (s, note) = match self.inj.rng.index(4) {
                    0 => (
                        time::us_local(t, off),
                        "format=us_local (MM/DD/YYYY HH:MM, hospital-local)",
                    ),
                    1 => (time::rfc2822(t, off), "format=rfc2822"),
                    2 => (time::hl7_dtm(t, off), "format=hl7_dtm"),
                    _ => (time::iso_space(t, off), "format=iso_space"),
                };
                set_time(m, f, TimeVal::Raw(s));
                self.record(
                    &id,
                    DC::MixedTimestampFormat,
                    Some(f),
                    Some(time::rfc3339_utc(t)),
                    Some(note.into()),
                );
                return None;
            }
            if !self.tz.near_transition(event_t)
                && self.inj.offer(DC::LocalTimeWithoutOffset, Source::Adt)
            {
                let usable: Vec<(&str, i64)> = fields
                    .into_iter()
                    .filter(|(_, t)| !self.tz.near_transition(*t))
                    .collect();
                let (f, t) = usable[self.inj.rng.index(usable.len())];
                set_time(m, f, TimeVal::Raw(time::iso_local_naive(t, self.tz.at(t))));
                self.record(
                    &id,
                    DC::LocalTimeWithoutOffset,
                    Some(f),
                    Some(time::rfc3339_utc(t)),
                    Some(format!(
                        "hospital-local wall time ({})",
                        self.plan.spec.time_zone
                    )),
                );
                return None;
            }
        }
        if let (true, Some(l)) = (matches!(ev, "A01" | "A02" | "A03" | "A04"), m.loc.as_mut()) {
            if self.inj.offer(DC::UnknownDepartment, Source::Adt) {
                let code = names::UNKNOWN_DEPTS[self.inj.rng.index(names::UNKNOWN_DEPTS.len())];
                let clean = std::mem::replace(&mut l.dept, code.to_string());
                self.record(
                    &id,
                    DC::UnknownDepartment,
                    Some("visit.department"),
                    Some(clean),
                    hl7_note("PV1-3.1"),
                );
                return None;
            }
        }
        if self.inj.offer(DC::InvalidSexCode, Source::Adt) {
            let codes = names::invalid_sex_codes(a.sex_code());
            let code = codes[self.inj.rng.index(codes.len())];
            m.sex = code.to_string();
            self.record(
                &id,
                DC::InvalidSexCode,
                Some("patient.sex"),
                Some(a.sex_code().into()),
                hl7_note("PID-8"),
            );
            return None;
        }
        if self.inj.offer(DC::ImpossibleAge, Source::Adt) {
            let wrong = impossible_birth(&mut self.inj.rng, today);
            m.birth = DateVal::At(wrong);
            self.record(
                &id,
                DC::ImpossibleAge,
                Some("patient.birth_date"),
                Some(time::ymd(a.birth as i64)),
                hl7_note("PID-7"),
            );
            return None;
        }
        None
    }
}

fn set_time(m: &mut AdtMessage, field: &str, v: TimeVal) {
    match field {
        "event_time" => m.event_time = v,
        "recorded_time" => m.recorded = v,
        "visit.admit_time" => m.admit = v,
        _ => m.discharge = v,
    }
}

/// A birth date in the future or more than 120 years before `today`, never a placeholder date.
pub fn impossible_birth(rng: &mut SimRng, today: i64) -> i64 {
    let d = if rng.chance(0.5) {
        today + rng.range_i64(30, 5 * 365)
    } else {
        time::add_years_days(today, -rng.range_i64(121, 140)) - rng.range_i64(0, 364)
    };
    let s = time::ymd(d);
    if s.ends_with("-01-01") && (s.starts_with("1900") || s.starts_with("1970")) {
        d + 1
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flu_peaks_in_january() {
        let jan = time::days_from_civil(2026, 1, 20);
        let jul = time::days_from_civil(2026, 7, 20);
        let dec = time::days_from_civil(2025, 12, 20);
        assert!((flu_intensity(jan) - 1.0).abs() < 1e-9);
        assert_eq!(flu_intensity(jul), 0.0);
        assert!(flu_intensity(dec) > 0.3);
    }
}

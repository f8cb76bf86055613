//! Daily EHR extracts (`ehr/YYYY-MM-DD/patients_YYYY-MM-DD.csv`, `encounters_YYYY-MM-DD.csv`) in
//! the `patientflow` profile of docs/sources.md §2.1, with CSV-level defects.

use crate::defects::{DefectClass as DC, Injector, ManifestEntry, Source};
use crate::io::Outputs;
use crate::model::{HospSim, Path};
use crate::names;
use crate::network::Dept;
use crate::time::{self, OffsetTable};
use crate::SimError;

/// Fixed columns of `patients_*.csv`; `preferred_language` and `insurance_type` follow from their
/// configured days on.
pub const PATIENT_COLUMNS: [&str; 11] = [
    "patient_id",
    "facility",
    "first_name",
    "last_name",
    "birth_date",
    "sex",
    "street",
    "city",
    "state",
    "zip",
    "updated_at",
];
/// Columns of `encounters_*.csv`.
pub const ENCOUNTER_COLUMNS: [&str; 9] = [
    "encounter_id",
    "patient_id",
    "facility",
    "department",
    "patient_class",
    "arrival_time",
    "admit_time",
    "discharge_time",
    "updated_at",
];

/// Suffix of a re-delivered extract: `patients_2026-01-14_redelivered.csv`.
pub const REDELIVERY_SUFFIX: &str = "_redelivered";

struct Row {
    fields: Vec<String>,
    /// Instants of time columns (index → t) for re-formatting defects.
    times: Vec<(usize, i64)>,
    tz: OffsetTable,
    birth: i64,
}

/// Writes one pair of extracts per day.
pub struct EhrWriter {
    pub inj: Injector,
    pub manifest: Vec<ManifestEntry>,
    pub patient_rows: u64,
    pub encounter_rows: u64,
}

impl EhrWriter {
    /// New writer using `inj` for defects.
    pub fn new(inj: Injector) -> Self {
        EhrWriter {
            inj,
            manifest: Vec::new(),
            patient_rows: 0,
            encounter_rows: 0,
        }
    }

    /// Write the extracts of `day` (days since epoch) from the hospitals' touched lists, then
    /// clear those lists.
    pub fn write_day(
        &mut self,
        out: &mut Outputs,
        day: i64,
        sims: &mut [HospSim],
        with_language: bool,
        with_insurance: bool,
    ) -> Result<(), SimError> {
        let date = time::ymd(day);
        let mut pats: Vec<Row> = Vec::new();
        let mut encs: Vec<Row> = Vec::new();
        for sim in sims.iter_mut() {
            let fac = sim.id();
            let mut tp = std::mem::take(&mut sim.touched_pats);
            tp.sort_unstable();
            for p in tp {
                let pat = &sim.patients[p as usize];
                let a = pat.attrs;
                let town = sim.plan.spec.towns[a.town as usize];
                let updated = pat.versions.last().map(|v| v.0).unwrap_or(0);
                let mut fields = vec![
                    format!("{fac}-P{:07}", pat.num),
                    fac.to_string(),
                    a.given_name().to_string(),
                    a.family_name().to_string(),
                    time::ymd(a.birth as i64),
                    a.sex_code().to_string(),
                    a.street_line(),
                    town.0.to_string(),
                    town.1.to_string(),
                    format!("{:05}", a.zip),
                    time::rfc3339_local(updated, sim.tz.at(updated)),
                ];
                if with_language {
                    fields.push(a.language().unwrap_or("").to_string());
                }
                if with_insurance {
                    fields.push(a.insurance().unwrap_or("").to_string());
                }
                pats.push(Row {
                    fields,
                    times: vec![(10, updated)],
                    tz: sim.tz.clone(),
                    birth: a.birth as i64,
                });
            }
            let mut te = std::mem::take(&mut sim.touched_encs);
            te.sort_unstable();
            for e in te {
                let enc = &sim.encs[e as usize];
                if enc.cancelled {
                    continue;
                }
                let pat = &sim.patients[enc.patient as usize];
                let dept = enc
                    .cur
                    .map(|l| l.dept)
                    .or(enc.last_dept)
                    .unwrap_or(Dept::Ed);
                let class = if enc.inpatient || enc.path != Path::Ed {
                    "I"
                } else {
                    "E"
                };
                let fmt = |t: i64| {
                    if t < 0 {
                        String::new()
                    } else {
                        time::rfc3339_local(t, sim.tz.at(t))
                    }
                };
                let mut times = vec![(5, enc.arrival)];
                if enc.admit >= 0 {
                    times.push((6, enc.admit));
                }
                if enc.discharge >= 0 {
                    times.push((7, enc.discharge));
                }
                times.push((8, enc.last_event));
                encs.push(Row {
                    fields: vec![
                        format!("{fac}-V{:07}", enc.num),
                        format!("{fac}-P{:07}", pat.num),
                        fac.to_string(),
                        dept.code().to_string(),
                        class.to_string(),
                        fmt(enc.arrival),
                        fmt(enc.admit),
                        fmt(enc.discharge),
                        fmt(enc.last_event),
                    ],
                    times,
                    tz: sim.tz.clone(),
                    birth: pat.attrs.birth as i64,
                });
            }
        }

        // patients
        let name = format!("patients_{date}.csv");
        let mut header: Vec<&str> = PATIENT_COLUMNS.to_vec();
        if with_language {
            header.push("preferred_language");
        }
        if with_insurance {
            header.push("insurance_type");
        }
        for (i, r) in pats.iter_mut().enumerate() {
            self.patient_defects(&name, i + 1, r, day);
        }
        self.write_file(out, &date, &name, &header, &pats, Source::EhrPatients)?;
        self.patient_rows += pats.len() as u64;

        let name = format!("encounters_{date}.csv");
        for (i, r) in encs.iter_mut().enumerate() {
            self.encounter_defects(&name, i + 1, r);
        }
        self.write_file(
            out,
            &date,
            &name,
            &ENCOUNTER_COLUMNS,
            &encs,
            Source::EhrEncounters,
        )?;
        self.encounter_rows += encs.len() as u64;
        Ok(())
    }

    fn write_file(
        &mut self,
        out: &mut Outputs,
        date: &str,
        name: &str,
        header: &[&str],
        rows: &[Row],
        source: Source,
    ) -> Result<(), SimError> {
        let rel = format!("ehr/{date}/{name}");
        let mut f = out.create(&rel)?;
        f.csv_row(header)?;
        for r in rows {
            f.csv_row(&r.fields)?;
        }
        out.close(f)?;
        if self.inj.offer(DC::DuplicateDelivery, source) {
            let dup = name.replace(".csv", &format!("{REDELIVERY_SUFFIX}.csv"));
            out.copy(&rel, &format!("ehr/{date}/{dup}"))?;
            for i in 1..=rows.len() {
                self.manifest.push(ManifestEntry {
                    source: source.id().into(),
                    record_key: format!("{dup}:{i}"),
                    defect: DC::DuplicateDelivery.id().into(),
                    field: None,
                    clean_value: None,
                    note: Some(format!("whole-file re-delivery of {name}:{i}")),
                    corrected_by: None,
                });
            }
        }
        Ok(())
    }

    fn rec(
        &mut self,
        source: Source,
        key: String,
        class: DC,
        field: &str,
        clean: Option<String>,
        note: Option<String>,
    ) {
        self.manifest.push(ManifestEntry {
            source: source.id().into(),
            record_key: key,
            defect: class.id().into(),
            field: Some(field.to_string()),
            clean_value: clean,
            note,
            corrected_by: None,
        });
    }

    fn patient_defects(&mut self, file: &str, row_no: usize, r: &mut Row, day: i64) {
        let key = format!("{file}:{row_no}");
        let src = Source::EhrPatients;
        if self.inj.offer(DC::ConflictingIdentity, src) {
            let x = self.inj.rng.f64();
            let (col, field) = if x < 0.4 {
                (4, "birth_date")
            } else if x < 0.6 && matches!(r.fields[5].as_str(), "F" | "M") {
                (5, "sex")
            } else if x < 0.8 {
                (2, "first_name")
            } else {
                (3, "last_name")
            };
            let clean = r.fields[col].clone();
            let wrong = match col {
                4 => {
                    let s = self.inj.rng.range_i64(1, 3)
                        * if self.inj.rng.chance(0.5) { 1 } else { -1 };
                    time::ymd(time::add_years_days(r.birth, s) + self.inj.rng.range_i64(-20, 20))
                }
                5 => if clean == "F" { "M" } else { "F" }.to_string(),
                2 => {
                    let l = if self.inj.rng.chance(0.5) {
                        names::FEMALE
                    } else {
                        names::MALE
                    };
                    let mut v = l[self.inj.rng.index(l.len())].to_string();
                    if v == clean {
                        v.push('a');
                    }
                    v
                }
                _ => {
                    let mut v =
                        names::SURNAMES[self.inj.rng.index(names::SURNAMES.len())].to_string();
                    if v == clean {
                        v.push_str("-Smith");
                    }
                    v
                }
            };
            r.fields[col] = wrong;
            self.rec(src, key, DC::ConflictingIdentity, field, Some(clean), None);
            return;
        }
        if self.inj.offer(DC::PlaceholderDate, src) {
            let clean = std::mem::replace(
                &mut r.fields[4],
                if self.inj.rng.chance(0.5) {
                    "1900-01-01"
                } else {
                    "1970-01-01"
                }
                .to_string(),
            );
            self.rec(
                src,
                key,
                DC::PlaceholderDate,
                "birth_date",
                Some(clean),
                None,
            );
            return;
        }
        if self.inj.offer(DC::InvalidSexCode, src) {
            let codes = names::invalid_sex_codes(&r.fields[5]);
            let code = codes[self.inj.rng.index(codes.len())];
            let clean = std::mem::replace(&mut r.fields[5], code.to_string());
            self.rec(src, key, DC::InvalidSexCode, "sex", Some(clean), None);
            return;
        }
        if self.inj.offer(DC::ImpossibleAge, src) {
            let wrong = crate::model::impossible_birth(&mut self.inj.rng, day);
            let clean = std::mem::replace(&mut r.fields[4], time::ymd(wrong));
            self.rec(src, key, DC::ImpossibleAge, "birth_date", Some(clean), None);
            return;
        }
        self.time_defects(
            src,
            key,
            r,
            &["", "", "", "", "", "", "", "", "", "", "updated_at"],
        );
    }

    fn encounter_defects(&mut self, file: &str, row_no: usize, r: &mut Row) {
        let key = format!("{file}:{row_no}");
        let src = Source::EhrEncounters;
        let admit = r.times.iter().find(|t| t.0 == 6).map(|t| t.1);
        let disch = r.times.iter().find(|t| t.0 == 7).map(|t| t.1);
        if admit.is_some() && self.inj.offer(DC::MissingAdmitTime, src) {
            r.fields[6].clear();
            self.rec(
                src,
                key,
                DC::MissingAdmitTime,
                "admit_time",
                admit.map(time::rfc3339_utc),
                None,
            );
            return;
        }
        if let (Some(a), Some(d)) = (admit, disch) {
            if self.inj.offer(DC::DischargeBeforeAdmit, src) {
                let wrong = a - self.inj.rng.range_i64(60, 72 * 60) * 60;
                r.fields[7] = time::rfc3339_local(wrong, r.tz.at(wrong));
                self.rec(
                    src,
                    key,
                    DC::DischargeBeforeAdmit,
                    "discharge_time",
                    Some(time::rfc3339_utc(d)),
                    None,
                );
                return;
            }
        }
        const NAMES: [&str; 9] = [
            "",
            "",
            "",
            "",
            "",
            "arrival_time",
            "admit_time",
            "discharge_time",
            "updated_at",
        ];
        if self.inj.offer(DC::FutureTimestamp, src) {
            let (col, t) = r.times[self.inj.rng.index(r.times.len())];
            let v = time::add_years(t, self.inj.rng.range_i64(5, 40));
            r.fields[col] = time::rfc3339_local(v, r.tz.at(v));
            self.rec(
                src,
                key,
                DC::FutureTimestamp,
                NAMES[col],
                Some(time::rfc3339_utc(t)),
                None,
            );
            return;
        }
        if self.inj.offer(DC::PlaceholderDate, src) {
            let coin = self.inj.rng.chance(0.5);
            let (col, t) = match (coin, disch) {
                (false, Some(d)) => (7, d),
                _ => (5, r.times[0].1),
            };
            r.fields[col] = if self.inj.rng.chance(0.5) {
                "1900-01-01T00:00:00Z"
            } else {
                "1970-01-01T00:00:00Z"
            }
            .to_string();
            self.rec(
                src,
                key,
                DC::PlaceholderDate,
                NAMES[col],
                Some(time::rfc3339_utc(t)),
                None,
            );
            return;
        }
        if self.time_defects(src, key.clone(), r, &NAMES) {
            return;
        }
        if self.inj.offer(DC::UnknownDepartment, src) {
            let code = names::UNKNOWN_DEPTS[self.inj.rng.index(names::UNKNOWN_DEPTS.len())];
            let clean = std::mem::replace(&mut r.fields[3], code.to_string());
            self.rec(
                src,
                key,
                DC::UnknownDepartment,
                "department",
                Some(clean),
                None,
            );
        }
    }

    /// `mixed_timestamp_format` and `local_time_without_offset` on one of the row's time columns.
    fn time_defects(&mut self, src: Source, key: String, r: &mut Row, names: &[&str]) -> bool {
        if self.inj.offer(DC::MixedTimestampFormat, src) {
            let (col, t) = r.times[self.inj.rng.index(r.times.len())];
            let off = r.tz.at(t);
            let (s, note) = match self.inj.rng.index(4) {
                0 => (
                    time::us_local(t, off),
                    "format=us_local (MM/DD/YYYY HH:MM, hospital-local)",
                ),
                1 => (time::rfc2822(t, off), "format=rfc2822"),
                2 => (time::hl7_dtm(t, off), "format=hl7_dtm"),
                _ => (time::iso_space(t, off), "format=iso_space"),
            };
            r.fields[col] = s;
            self.rec(
                src,
                key,
                DC::MixedTimestampFormat,
                names[col],
                Some(time::rfc3339_utc(t)),
                Some(note.into()),
            );
            return true;
        }
        let usable: Vec<(usize, i64)> = r
            .times
            .iter()
            .copied()
            .filter(|(_, t)| !r.tz.near_transition(*t))
            .collect();
        if !usable.is_empty() && self.inj.offer(DC::LocalTimeWithoutOffset, src) {
            let (col, t) = usable[self.inj.rng.index(usable.len())];
            r.fields[col] = time::iso_local_naive(t, r.tz.at(t));
            let note = format!("hospital-local wall time ({})", r.tz.tz().name());
            self.rec(
                src,
                key,
                DC::LocalTimeWithoutOffset,
                names[col],
                Some(time::rfc3339_utc(t)),
                Some(note),
            );
            return true;
        }
        false
    }
}

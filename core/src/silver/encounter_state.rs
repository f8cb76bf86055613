//! The ADT state machine of one encounter: A04/A01/A02/A03 with A11/A12/A13 reversals, replayed in
//! event-time order whatever the arrival order.
//!
//! HL7 cancellations cannot "unsend" a message; they name the event they reverse. We therefore first
//! remove each cancelled event (A11 → the latest A01 before it, A12 → the latest A02, A13 → the latest
//! A03) and then fold the remaining events in event-time order. Because the result is a pure function of
//! the set of events, a late or out-of-order message simply changes the set, and the replay lands every
//! fact where it belongs. Location stays are contiguous: a stay ends where the next begins, and the
//! discharge closes the last one.

use chrono::{DateTime, Utc};

/// One applied ADT event of an encounter (already parsed, validated and in UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct EncounterEvent {
    /// Trigger event: `A01`, `A02`, `A03`, `A04`, `A08`, `A11`, `A12`, `A13`.
    pub event_type: String,
    /// When it happened (EVN-6 or equivalent), UTC.
    pub event_time: DateTime<Utc>,
    /// Tie-breaker for events at the same instant (recorded time + message id).
    pub sequence: String,
    /// Department (point of care) after the event.
    pub department: Option<String>,
    /// Room after the event.
    pub room: Option<String>,
    /// Bed after the event.
    pub bed: Option<String>,
    /// Patient class (HL7 0004) after the event.
    pub patient_class: Option<String>,
    /// PV1-44 admit time, when given.
    pub admit_time: Option<DateTime<Utc>>,
    /// PV1-45 discharge time, when given.
    pub discharge_time: Option<DateTime<Utc>>,
}

/// Where an encounter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncounterStatus {
    /// Registered / arrived (A04), not admitted.
    Registered,
    /// Admitted (A01), in house.
    Admitted,
    /// Discharged (A03).
    Discharged,
    /// Every admission or registration was cancelled (A11): the encounter did not happen.
    Cancelled,
    /// Only updates or discharges arrived so far: the start of the encounter is not known yet.
    Incomplete,
}

impl EncounterStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EncounterStatus::Registered => "registered",
            EncounterStatus::Admitted => "admitted",
            EncounterStatus::Discharged => "discharged",
            EncounterStatus::Cancelled => "cancelled",
            EncounterStatus::Incomplete => "incomplete",
        }
    }
}

/// One interval of an encounter in one department / room / bed.
#[derive(Debug, Clone, PartialEq)]
pub struct Stay {
    /// Department code.
    pub department: Option<String>,
    /// Room.
    pub room: Option<String>,
    /// Bed.
    pub bed: Option<String>,
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive); `None` while the patient is still there.
    pub end: Option<DateTime<Utc>>,
    /// Event that opened the stay.
    pub start_event: String,
    /// Event that closed it.
    pub end_event: Option<String>,
}

/// The replayed state of an encounter.
#[derive(Debug, Clone, PartialEq)]
pub struct EncounterState {
    /// Where it stands.
    pub status: EncounterStatus,
    /// Arrival (A04, or the admission when there was no registration).
    pub arrival_time: Option<DateTime<Utc>>,
    /// Inpatient admission (A01: PV1-44, else the event time).
    pub admit_time: Option<DateTime<Utc>>,
    /// Discharge (A03: PV1-45, else the event time).
    pub discharge_time: Option<DateTime<Utc>>,
    /// Latest patient class.
    pub patient_class: Option<String>,
    /// Department at arrival.
    pub first_department: Option<String>,
    /// Department now, or at discharge.
    pub last_department: Option<String>,
    /// Location stays in time order.
    pub stays: Vec<Stay>,
    /// Events applied after removing cancellations.
    pub events_applied: usize,
    /// Events removed by cancellations (the cancelled event and its cancel message).
    pub events_cancelled: usize,
    /// Event time of the latest event (applied or not).
    pub last_event_time: Option<DateTime<Utc>>,
}

fn order(e: &EncounterEvent) -> (DateTime<Utc>, &str) {
    (e.event_time, e.sequence.as_str())
}

/// Replays an encounter's events (any order, exact duplicates and corrected re-sends tolerated).
pub fn replay(events: &[EncounterEvent]) -> EncounterState {
    let mut sorted: Vec<&EncounterEvent> = events.iter().collect();
    sorted.sort_by(|a, b| order(a).cmp(&order(b)));
    sorted.dedup_by(|a, b| a == b);
    // A corrected re-send describes the same event as the message it corrects (same trigger, same
    // event time): the last recorded one stands, so a cancel removes the event once and the
    // corrected values (admit or discharge time, location) win.
    let last_of: std::collections::HashMap<(&str, DateTime<Utc>), usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.event_type.as_str(), e.event_time), i))
        .collect();
    let sorted: Vec<&EncounterEvent> = sorted
        .iter()
        .enumerate()
        .filter(|(i, e)| last_of[&(e.event_type.as_str(), e.event_time)] == *i)
        .map(|(_, e)| *e)
        .collect();

    // Remove cancelled events: each cancel removes the latest still-live event it reverses.
    let mut live: Vec<bool> = vec![true; sorted.len()];
    let mut cancelled = 0;
    for i in 0..sorted.len() {
        let target = match sorted[i].event_type.as_str() {
            "A11" => "A01",
            "A12" => "A02",
            "A13" => "A03",
            _ => continue,
        };
        live[i] = false;
        cancelled += 1;
        if let Some(j) = (0..i)
            .rev()
            .find(|&j| live[j] && sorted[j].event_type == target)
        {
            live[j] = false;
            cancelled += 1;
        }
    }

    let mut state = EncounterState {
        status: EncounterStatus::Incomplete,
        arrival_time: None,
        admit_time: None,
        discharge_time: None,
        patient_class: None,
        first_department: None,
        last_department: None,
        stays: Vec::new(),
        events_applied: 0,
        events_cancelled: cancelled,
        last_event_time: sorted.last().map(|e| e.event_time),
    };
    let mut saw_start = false;
    let mut saw_cancelled_start = false;
    for (i, e) in sorted.iter().enumerate() {
        if !live[i] {
            if e.event_type == "A01" || e.event_type == "A04" {
                saw_cancelled_start = true;
            }
            continue;
        }
        state.events_applied += 1;
        if e.patient_class.is_some() {
            state.patient_class = e.patient_class.clone();
        }
        match e.event_type.as_str() {
            "A04" => {
                saw_start = true;
                state.arrival_time.get_or_insert(e.event_time);
                if state.status != EncounterStatus::Admitted {
                    state.status = EncounterStatus::Registered;
                }
                move_to(&mut state, e, e.event_time);
            }
            "A01" => {
                saw_start = true;
                let admit = e.admit_time.unwrap_or(e.event_time);
                state.admit_time = Some(admit);
                state.arrival_time = Some(state.arrival_time.map_or(admit, |a| a.min(admit)));
                state.status = EncounterStatus::Admitted;
                state.discharge_time = None;
                move_to(&mut state, e, e.event_time);
            }
            "A02" => {
                move_to(&mut state, e, e.event_time);
            }
            "A03" => {
                let at = e.discharge_time.unwrap_or(e.event_time);
                state.discharge_time = Some(at);
                state.status = EncounterStatus::Discharged;
                close_current(&mut state, at, "A03");
            }
            _ => {}
        }
    }
    if !saw_start {
        state.status = if saw_cancelled_start {
            EncounterStatus::Cancelled
        } else {
            EncounterStatus::Incomplete
        };
        if state.status == EncounterStatus::Cancelled {
            state.stays.clear();
        }
    }
    state.first_department = state.stays.first().and_then(|s| s.department.clone());
    state.last_department = state.stays.last().and_then(|s| s.department.clone());
    state
}

/// Moves the patient to the event's location at `at`, closing the current stay, unless the location is
/// unchanged (an A01 for a patient already in that bed is not a new stay).
fn move_to(state: &mut EncounterState, e: &EncounterEvent, at: DateTime<Utc>) {
    if e.department.is_none() && e.room.is_none() && e.bed.is_none() {
        return;
    }
    if let Some(open) = state.stays.last() {
        if open.end.is_none()
            && open.department == e.department
            && open.room == e.room
            && open.bed == e.bed
        {
            return;
        }
    }
    close_current(state, at, &e.event_type);
    state.stays.push(Stay {
        department: e.department.clone(),
        room: e.room.clone(),
        bed: e.bed.clone(),
        start: at,
        end: None,
        start_event: e.event_type.clone(),
        end_event: None,
    });
}

fn close_current(state: &mut EncounterState, at: DateTime<Utc>, by: &str) {
    if let Some(open) = state.stays.last_mut() {
        if open.end.is_none() {
            // Never close before the start: a discharge stamped earlier than the last move closes at the move.
            open.end = Some(at.max(open.start));
            open.end_event = Some(by.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + h * 3600, 0)
            .single()
            .unwrap()
    }

    fn ev(kind: &str, h: i64, dept: Option<&str>) -> EncounterEvent {
        EncounterEvent {
            event_type: kind.into(),
            event_time: t(h),
            sequence: format!("{h:04}-{kind}"),
            department: dept.map(String::from),
            room: dept.map(|d| format!("{d}-1")),
            bed: dept.map(|d| format!("{d}-1-A")),
            patient_class: None,
            admit_time: None,
            discharge_time: None,
        }
    }

    #[test]
    fn ed_to_ward_to_icu_then_discharge() {
        let s = replay(&[
            ev("A04", 0, Some("ED")),
            ev("A01", 3, Some("MED")),
            ev("A02", 20, Some("ICU")),
            ev("A03", 50, Some("ICU")),
        ]);
        assert_eq!(s.status, EncounterStatus::Discharged);
        assert_eq!(s.arrival_time, Some(t(0)));
        assert_eq!(s.admit_time, Some(t(3)));
        assert_eq!(s.discharge_time, Some(t(50)));
        let spans: Vec<_> = s
            .stays
            .iter()
            .map(|x| (x.department.clone().unwrap(), x.start, x.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("ED".into(), t(0), Some(t(3))),
                ("MED".into(), t(3), Some(t(20))),
                ("ICU".into(), t(20), Some(t(50)))
            ]
        );
    }

    #[test]
    fn a_corrected_re_send_replaces_the_event_it_corrects() {
        // The original A02 named the wrong bed; the re-send (same trigger and time, recorded later)
        // corrects it. A cancel of the admission then removes the admission once, not one copy of two.
        let mut wrong = ev("A02", 2, Some("MED"));
        wrong.bed = Some("9".into());
        wrong.sequence = "0002-A02-a".into();
        let mut fixed = ev("A02", 2, Some("MED"));
        fixed.bed = Some("4".into());
        fixed.sequence = "0002-A02-b".into();
        let mut admit_again = ev("A01", 1, Some("ED"));
        admit_again.sequence = "0001-A01-b".into();
        let s = replay(&[
            ev("A04", 0, Some("ED")),
            ev("A01", 1, Some("ED")),
            admit_again,
            fixed,
            wrong,
        ]);
        assert_eq!(s.stays.len(), 2);
        assert_eq!(s.stays[1].bed.as_deref(), Some("4"));
        let cancelled = replay(&[
            ev("A04", 0, Some("ED")),
            ev("A01", 1, Some("ED")),
            {
                let mut e = ev("A01", 1, Some("ED"));
                e.sequence = "0001-A01-b".into();
                e
            },
            ev("A11", 2, None),
        ]);
        assert_eq!(cancelled.status, EncounterStatus::Registered);
        assert!(cancelled.admit_time.is_none());
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let a = vec![
            ev("A04", 0, Some("ED")),
            ev("A01", 3, Some("MED")),
            ev("A03", 9, Some("MED")),
        ];
        let mut b = a.clone();
        b.reverse();
        b.push(a[1].clone());
        assert_eq!(replay(&a), replay(&b));
    }

    #[test]
    fn cancel_admit_reopens_the_ed_stay_and_cancel_of_only_admit_cancels_the_encounter() {
        let s = replay(&[
            ev("A04", 0, Some("ED")),
            ev("A01", 3, Some("MED")),
            ev("A11", 4, None),
        ]);
        assert_eq!(s.status, EncounterStatus::Registered);
        assert_eq!(s.stays.len(), 1);
        assert_eq!(s.stays[0].end, None);
        assert_eq!(s.admit_time, None);
        let s = replay(&[ev("A01", 3, Some("MED")), ev("A11", 4, None)]);
        assert_eq!(s.status, EncounterStatus::Cancelled);
        assert!(s.stays.is_empty());
    }

    #[test]
    fn cancel_transfer_and_cancel_discharge() {
        let s = replay(&[
            ev("A01", 0, Some("MED")),
            ev("A02", 5, Some("ICU")),
            ev("A12", 6, None),
            ev("A03", 10, Some("MED")),
            ev("A13", 11, None),
        ]);
        assert_eq!(s.status, EncounterStatus::Admitted);
        assert_eq!(s.stays.len(), 1);
        assert_eq!(s.stays[0].department.as_deref(), Some("MED"));
        assert_eq!(s.stays[0].end, None);
        assert_eq!(s.discharge_time, None);
        assert_eq!(s.events_cancelled, 4);
    }

    #[test]
    fn a_discharge_before_its_admit_arrives_is_incomplete_until_the_admit_lands() {
        let s = replay(&[ev("A03", 10, Some("MED"))]);
        assert_eq!(s.status, EncounterStatus::Incomplete);
        let s = replay(&[ev("A03", 10, Some("MED")), ev("A01", 2, Some("MED"))]);
        assert_eq!(s.status, EncounterStatus::Discharged);
        assert_eq!(s.stays[0].start, t(2));
        assert_eq!(s.stays[0].end, Some(t(10)));
    }
}

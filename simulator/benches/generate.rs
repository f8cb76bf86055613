//! Benchmark: one year × 7 hospitals (the default configuration) into a temp dir.
//!
//! `cargo bench -p patientflow-simulator --bench generate`
//! Prints wall time, encounters/s, messages/s, bytes written and peak RSS (VmHWM).

use patientflow_simulator::{generate, SimConfig};
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let cfg = SimConfig::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("sim");
    let t0 = Instant::now();
    let s = generate(&cfg, &out).expect("generate");
    let secs = t0.elapsed().as_secs_f64();
    let rss = peak_rss_kib().unwrap_or(0);
    println!(
        "simulator benchmark: {} days x {} hospitals (seed {})",
        s.days,
        s.hospitals.len(),
        s.seed
    );
    println!("  wall time        {secs:.2} s");
    println!(
        "  encounters       {} ({:.0}/s)",
        s.encounters,
        s.encounters as f64 / secs
    );
    println!("  ED visits        {}", s.ed_visits);
    println!("  admissions       {}", s.inpatient_admissions);
    println!(
        "  ADT messages     {} ({:.0}/s)",
        s.adt_messages,
        s.adt_messages as f64 / secs
    );
    println!("  by format        {:?}", s.adt_messages_by_format);
    println!("  by type          {:?}", s.adt_messages_by_type);
    println!(
        "  EHR rows         {} patients, {} encounters",
        s.ehr_patient_rows, s.ehr_encounter_rows
    );
    println!("  location stays   {}", s.location_stays);
    println!("  defects          {}", s.defects.values().sum::<u64>());
    println!("  files written    {}", s.files_written);
    println!(
        "  bytes written    {} ({:.1} MB, {:.1} MB/s)",
        s.bytes_written,
        s.bytes_written as f64 / 1e6,
        s.bytes_written as f64 / 1e6 / secs
    );
    println!("  peak RSS         {:.1} MB (VmHWM)", rss as f64 / 1024.0);
    assert!(
        s.encounters >= 500_000,
        "the default year must produce >= 500k encounters"
    );
    assert!(
        (800_000..=1_500_000).contains(&s.adt_messages),
        "ADT messages out of range"
    );
}

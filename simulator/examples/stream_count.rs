//! Replay the default year through `stream` as fast as possible and count the messages
//! (measures the simulation + encoding without file output).
//!
//! `cargo run --release -p patientflow-simulator --example stream_count -- [days]`
fn main() {
    let days = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(365);
    let cfg = patientflow_simulator::SimConfig {
        days,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    for m in patientflow_simulator::stream(&cfg).unwrap() {
        n += 1;
        bytes += m.payload.len() as u64;
    }
    println!(
        "{n} messages, {bytes} bytes in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

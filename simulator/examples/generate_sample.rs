//! Generate a data set from a JSON config (or the default) into a folder.
//!
//! `cargo run --release -p patientflow-simulator --example generate_sample -- OUT [config.json]`
fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: generate_sample OUT [config.json]");
    let cfg: patientflow_simulator::SimConfig = match args.next() {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap(),
        None => Default::default(),
    };
    let s = patientflow_simulator::generate(&cfg, std::path::Path::new(&out)).unwrap();
    println!("{}", serde_json::to_string_pretty(&s).unwrap());
}

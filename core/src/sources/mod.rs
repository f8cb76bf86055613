//! Source formats: what arrives from hospitals, parsed only as far as each layer needs.

pub mod adt;

//! The patient-flow simulator (being written).

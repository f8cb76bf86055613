//! patientflow core: the patient-flow lakehouse pipeline, independent of any hosting runtime.
//!
//! Data flows through the modules in this order:
//! [`sources`] (parse HL7 v2, JSON ADT, EHR CSV extracts, reference data; the simulator) →
//! [`bronze`] (lossless, idempotent raw tables with lineage) → Silver → Gold → serving.
//! [`ops`] keeps the pipeline's own bookkeeping (the run ledger of every stage run).
//! [`security`] decides who reads what: identities, the policy views every query runs over, the audit.
//! [`storage`] maps one lake URL (local path, `file://`, `az://`, `abfss://`) onto Delta tables.

pub mod bronze;
pub mod error;
pub mod gold;
pub mod ops;
pub mod pipeline;
pub mod security;
pub mod serving;
pub mod silver;
pub mod sources;
pub mod storage;

pub use error::{Error, Result};

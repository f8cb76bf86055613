//! The policy layer, in one place: for an [`Identity`], the DataFusion session a query runs in. Every
//! lake table the role may see is registered under its usual SQL name as a **policy view** (row filter by
//! scope, PHI columns masked); the raw tables are registered only in a private session the views are
//! planned in, so joins, subqueries, CTEs and `information_schema` of the caller's session reach
//! nothing but the views. Tables the role may not see are not registered at all.
//!
//! Rules (docs/security.md § Policy):
//! - reference tables (hospitals, departments, calendar) and pipeline figures (DQ results, run ledger)
//!   hold no patient rows: every role sees them whole;
//! - aggregate KPI tables: scoped roles see their scopes' rows; the operator does not see them;
//! - patient tables (every other table, including unknown ones): admin whole; analyst every row masked;
//!   hospital manager their hospitals' rows masked; department staff their departments' rows
//!   identifiable; operator none — except the quarantine, which the operator and analyst see masked with
//!   the raw columns NULL;
//! - the audit trail (`security_audit`): administrators only;
//! - masks: names and street → `'***'`, city → `'***'`, zip → first 3 characters, birth date → year,
//!   `demographics` → NULL, identifiers (MRN, visit number, patient/encounter keys, EHR ids, source keys)
//!   → `HMAC-SHA256(pseudonym key, value)` as 16 hex characters; raw payloads (`payload`, `raw_record`,
//!   `raw_value`) → NULL for every role but admin.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, StringArray};
use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::datafusion::common::Result as DfResult;
use deltalake::datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Identity, Role};
use crate::storage::{Lake, TableRef};
use crate::{Error, Result};

/// What a table holds, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableClass {
    /// No patient rows: reference data.
    Reference,
    /// No patient rows: the pipeline's own figures.
    Pipeline,
    /// Aggregates by hospital / department / time, no patient rows.
    Aggregate,
    /// Rows about patients.
    Patient,
}

const REFERENCE: [&str; 8] = [
    "bronze_departments",
    "bronze_hospitals",
    "silver_hospitals",
    "silver_dim_department",
    "gold_dim_hospital",
    "gold_dim_department",
    "gold_dim_date",
    "gold_dim_time",
];

const AGGREGATE: [&str; 10] = [
    "gold_fact_census_hourly",
    "gold_kpi_occupancy_current",
    "gold_kpi_occupancy_current_hospital",
    "gold_kpi_sex_distribution",
    "gold_kpi_age_band_monthly",
    "gold_kpi_alos_department_monthly",
    "gold_kpi_alos_hospital_monthly",
    "gold_kpi_admission_wait",
    "gold_kpi_bottlenecks",
    "gold_kpi_midnight_census",
];

/// The class of a table by SQL name; unknown tables are patient tables.
pub fn classify(name: &str) -> TableClass {
    if REFERENCE.contains(&name) {
        TableClass::Reference
    } else if name == "silver_dq_results" || name.starts_with("ops_") {
        TableClass::Pipeline
    } else if AGGREGATE.contains(&name) {
        TableClass::Aggregate
    } else {
        TableClass::Patient
    }
}

/// Columns replaced by `'***'` when masked.
pub const TEXT_PHI: [&str; 6] = [
    "family_name",
    "given_name",
    "first_name",
    "last_name",
    "street",
    "city",
];
/// Identifier columns replaced by a keyed pseudonym when masked.
pub const IDENTIFIERS: [&str; 7] = [
    "mrn",
    "visit_number",
    "patient_key",
    "encounter_key",
    "patient_id",
    "encounter_id",
    "source_key",
];
/// Raw payload columns: NULL for every role without raw rights.
pub const RAW: [&str; 3] = ["payload", "raw_record", "raw_value"];
/// Department columns a department-staff filter matches on (any of them).
const DEPARTMENT_COLUMNS: [&str; 6] = [
    "department_code",
    "department",
    "first_department",
    "admit_department",
    "last_department",
    "prior_department",
];
/// Table whose stays place an encounter / patient in a department.
const STAYS: &str = "silver_location_stays";

/// How one view was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewInfo {
    /// Table class.
    pub class: TableClass,
    /// True when the view returns identifiable PHI (unmasked names, birth dates or identifiers).
    pub phi_unmasked: bool,
    /// True when the view holds patient rows (masked or not).
    pub patient_rows: bool,
    /// True when small cells of its count columns are suppressed (analysts on aggregate tables).
    pub suppressed: bool,
    /// The view's SQL over the raw table (for `EXPLAIN`-style inspection and tests).
    pub definition: String,
}

/// A session for one identity, with the views it contains.
#[derive(Clone)]
pub struct PolicySession {
    /// The caller's session: only policy views are registered in it.
    pub ctx: SessionContext,
    /// View name → how it was built.
    pub views: BTreeMap<String, ViewInfo>,
    /// Tables that exist but are not visible to the identity.
    pub hidden: Vec<String>,
}

/// The keyed pseudonym of one value: `HMAC-SHA256(key, value)`, first 16 hex characters.
pub fn pseudonym(key: &[u8], value: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(value.as_bytes());
    let out = mac.finalize().into_bytes();
    hex::encode(&out[..8])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PseudonymUdf {
    key: Vec<u8>,
    signature: Signature,
}

impl ScalarUDFImpl for PseudonymUdf {
    fn name(&self) -> &str {
        "pf_pseudonym"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = deltalake::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let input = input
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| {
                deltalake::datafusion::error::DataFusionError::Internal(
                    "pf_pseudonym: not text".into(),
                )
            })?;
        let out: StringArray = input
            .iter()
            .map(|v| v.map(|v| pseudonym(&self.key, v)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Count columns of the aggregate tables whose small cells (1–10) are suppressed for analysts: the
/// common de-identification threshold (a count below 11 may single out a patient).
pub const SMALL_CELL_COLUMNS: [&str; 14] = [
    "arrivals",
    "admissions",
    "discharges",
    "transfers_in",
    "transfers_out",
    "ed_boarders",
    "boarders_waiting",
    "same_day_discharges",
    "same_day_stays",
    "waits_over_4h",
    "inpatient_occupied_beds",
    "ed_occupied",
    "inpatient_days",
    "occupied_bed_days",
];
/// Cells with a count from 1 up to this value are shown as NULL to analysts.
pub const SMALL_CELL_MAX: i64 = 10;

/// True when a column of an aggregate table counts patients (and so is subject to suppression).
pub fn is_small_cell_column(name: &str, data_type: &DataType) -> bool {
    let l = name.to_ascii_lowercase();
    data_type.is_integer()
        && (l.starts_with("occupied_") || SMALL_CELL_COLUMNS.contains(&l.as_str()))
}

/// The select list of a view: each column as is, masked, suppressed or NULL.
fn select_list(schema: &Schema, mask: bool, raw: bool, suppress: bool) -> (Vec<String>, bool) {
    let mut phi_unmasked = false;
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().as_str();
            let c = ident(name);
            let lower = name.to_ascii_lowercase();
            let l = lower.as_str();
            let is_phi = TEXT_PHI.contains(&l)
                || IDENTIFIERS.contains(&l)
                || l == "birth_date"
                || l == "zip"
                || l == "demographics";
            if RAW.contains(&l) {
                if raw {
                    phi_unmasked = true;
                    return format!("{c} AS {c}");
                }
                return format!("CAST(NULL AS VARCHAR) AS {c}");
            }
            if suppress && is_small_cell_column(name, f.data_type()) {
                return format!(
                    "CASE WHEN {c} BETWEEN 1 AND {SMALL_CELL_MAX} THEN NULL ELSE {c} END AS {c}"
                );
            }
            if !mask {
                phi_unmasked |= is_phi;
                return format!("{c} AS {c}");
            }
            if TEXT_PHI.contains(&l) {
                format!("CASE WHEN {c} IS NULL THEN NULL ELSE '***' END AS {c}")
            } else if IDENTIFIERS.contains(&l) {
                format!("pf_pseudonym({c}) AS {c}")
            } else if l == "birth_date" {
                if matches!(f.data_type(), DataType::Date32 | DataType::Date64) {
                    format!("CAST(date_part('year', {c}) AS INT) AS {c}")
                } else {
                    format!("CAST(NULL AS INT) AS {c}")
                }
            } else if l == "zip" {
                format!("substr(CAST({c} AS VARCHAR), 1, 3) AS {c}")
            } else if l == "demographics" {
                format!("CAST(NULL AS VARCHAR) AS {c}")
            } else {
                format!("{c} AS {c}")
            }
        })
        .collect();
    (cols, phi_unmasked)
}

/// The row filter of a scoped role for a table, or `None` when the table cannot be filtered (not visible).
fn scope_filter(identity: &Identity, schema: &Schema, stays: bool) -> Option<String> {
    let has = |n: &str| schema.field_with_name(n).is_ok();
    if !has("hospital_id") {
        return None;
    }
    if identity.scopes.is_empty() {
        return Some("FALSE".into());
    }
    let departments: Vec<&str> = DEPARTMENT_COLUMNS
        .iter()
        .copied()
        .filter(|c| has(c))
        .collect();
    let mut parts = Vec::new();
    for scope in &identity.scopes {
        let h = quote(&scope.hospital);
        let Some(d) = scope
            .department
            .as_deref()
            .filter(|_| identity.role == Role::DepartmentStaff)
        else {
            parts.push(format!("hospital_id = {h}"));
            continue;
        };
        let d = quote(d);
        let mut alts: Vec<String> = departments
            .iter()
            .map(|c| format!("{} = {d}", ident(c)))
            .collect();
        if stays {
            let key = if has("encounter_key") {
                Some("encounter_key")
            } else if has("patient_key") {
                Some("patient_key")
            } else {
                None
            };
            if let Some(k) = key {
                alts.push(format!(
                    "{k} IN (SELECT {k} FROM {STAYS} WHERE hospital_id = {h} AND department = {d})"
                ));
            }
        }
        if alts.is_empty() {
            // Nothing places this table's rows in a department: not visible at department scope.
            continue;
        }
        parts.push(format!("(hospital_id = {h} AND ({}))", alts.join(" OR ")));
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join(" OR "))
}

/// Decides one table: `None` when invisible, else (filter, mask, raw).
fn decide(role: Role, class: TableClass, name: &str) -> Option<(bool, bool, bool)> {
    // (scoped, mask, raw)
    match (role, class) {
        (Role::Admin, _) => Some((false, false, true)),
        // The audit trail holds query texts (which may quote identifiers): administrators only.
        _ if name == "security_audit" => None,
        (_, TableClass::Reference | TableClass::Pipeline) => Some((false, false, false)),
        (Role::Operator, TableClass::Aggregate) => None,
        (Role::Operator | Role::Analyst, TableClass::Patient) if name == "silver_quarantine" => {
            Some((false, true, false))
        }
        (Role::Operator, TableClass::Patient) => None,
        (Role::Analyst, _) => Some((false, true, false)),
        (Role::HospitalManager, _) => Some((true, true, false)),
        (Role::DepartmentStaff, _) => Some((true, false, false)),
    }
}

/// The raw tables of one lake snapshot, registered once in a private session and shared by the policy
/// sessions of every identity (opening the Delta tables is the costly part; the views are cheap).
pub struct PolicyBase {
    private: SessionContext,
    present: Vec<String>,
    stays: bool,
    has_key: bool,
}

impl std::fmt::Debug for PolicyBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyBase")
            .field("tables", &self.present)
            .finish_non_exhaustive()
    }
}

impl PolicyBase {
    /// Opens `tables` (absent tables are skipped). `pseudonym_key` is needed for the roles that see
    /// masked identifiers.
    pub async fn open(
        lake: &Lake,
        tables: &[TableRef],
        pseudonym_key: Option<&[u8]>,
    ) -> Result<PolicyBase> {
        let private = SessionContext::new();
        let mut present = Vec::new();
        let mut all: Vec<TableRef> = tables.to_vec();
        if !all.contains(&crate::silver::LOCATION_STAYS) {
            all.push(crate::silver::LOCATION_STAYS);
        }
        for t in &all {
            if lake.register(&private, *t).await? && tables.contains(t) {
                present.push(t.sql_name());
            }
        }
        let stays = private.table_exist(STAYS).unwrap_or(false);
        if let Some(key) = pseudonym_key {
            // Registered in the private session only: a caller cannot compute pseudonyms of guessed values.
            private.register_udf(ScalarUDF::new_from_impl(PseudonymUdf {
                key: key.to_vec(),
                signature: Signature::any(1, Volatility::Immutable),
            }));
        }
        Ok(PolicyBase {
            private,
            present,
            stays,
            has_key: pseudonym_key.is_some(),
        })
    }

    /// The tables this snapshot holds, by SQL name.
    pub fn tables(&self) -> &[String] {
        &self.present
    }

    /// Builds the session `identity`'s queries run in.
    pub async fn session_for(&self, identity: &Identity) -> Result<PolicySession> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let mut views = BTreeMap::new();
        let mut hidden = Vec::new();
        for name in &self.present {
            let name = name.clone();
            let class = classify(&name);
            let Some((scoped, mask, raw)) = decide(identity.role, class, &name) else {
                hidden.push(name);
                continue;
            };
            let provider = self
                .private
                .table_provider(name.as_str())
                .await
                .map_err(|e| Error::Query(format!("internal: {name}: {e}")))?;
            let schema = provider.schema();
            let filter = if scoped {
                match scope_filter(identity, &schema, self.stays) {
                    Some(f) => f,
                    None => {
                        hidden.push(name);
                        continue;
                    }
                }
            } else {
                "TRUE".into()
            };
            let suppress = identity.role == Role::Analyst && class == TableClass::Aggregate;
            let (cols, phi_unmasked) = select_list(&schema, mask, raw, suppress);
            // Reference and pipeline tables hold no patient rows: a hospital's `city` is not PHI.
            let phi_unmasked =
                phi_unmasked && matches!(class, TableClass::Patient | TableClass::Aggregate);
            let uses_pseudonym = cols.iter().any(|c| c.starts_with("pf_pseudonym("));
            if uses_pseudonym && !self.has_key {
                return Err(Error::Config(
                    "masked reads need a pseudonym key (security settings: pseudonym_key_file)"
                        .into(),
                ));
            }
            let definition = format!(
                "SELECT {} FROM {} WHERE {filter}",
                cols.join(", "),
                ident(&name)
            );
            let df = self
                .private
                .sql(&definition)
                .await
                .map_err(|e| Error::Query(format!("internal: policy view {name}: {e}")))?;
            ctx.register_table(name.as_str(), df.into_view())
                .map_err(|e| Error::Query(format!("internal: policy view {name}: {e}")))?;
            views.insert(
                name,
                ViewInfo {
                    class,
                    phi_unmasked,
                    patient_rows: class == TableClass::Patient,
                    suppressed: suppress,
                    definition,
                },
            );
        }
        Ok(PolicySession { ctx, views, hidden })
    }
}

/// Builds the session an identity's queries run in, over `tables` (absent tables are skipped), opening
/// the tables afresh: [`PolicyBase::open`] then [`PolicyBase::session_for`]. Servers keep a
/// [`super::cache::PolicyCache`] instead.
pub async fn session(
    lake: &Lake,
    tables: &[TableRef],
    identity: &Identity,
    pseudonym_key: Option<&[u8]>,
) -> Result<PolicySession> {
    PolicyBase::open(lake, tables, pseudonym_key)
        .await?
        .session_for(identity)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = pseudonym(b"key-one-0123456789", "MRN1");
        assert_eq!(a.len(), 16);
        assert_eq!(a, pseudonym(b"key-one-0123456789", "MRN1"));
        assert_ne!(a, pseudonym(b"key-two-0123456789", "MRN1"));
        assert_ne!(a, pseudonym(b"key-one-0123456789", "MRN2"));
    }

    #[test]
    fn every_role_has_a_decision_per_class() {
        assert_eq!(
            decide(Role::Operator, TableClass::Patient, "silver_dim_patient"),
            None
        );
        assert_eq!(
            decide(
                Role::Operator,
                TableClass::Aggregate,
                "gold_kpi_bottlenecks"
            ),
            None
        );
        assert_eq!(
            decide(Role::Analyst, TableClass::Patient, "x"),
            Some((false, true, false))
        );
        assert_eq!(
            decide(Role::DepartmentStaff, TableClass::Patient, "x"),
            Some((true, false, false))
        );
        assert_eq!(classify("gold_dim_patient"), TableClass::Patient);
        assert_eq!(classify("ops_run_ledger"), TableClass::Pipeline);
        assert_eq!(classify("something_new"), TableClass::Patient);
    }
}

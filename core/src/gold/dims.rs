//! Dimensions: `dim_hospital`, `dim_department` and `dim_patient` (the SCD2 histories Silver keeps,
//! published for the star schema), `dim_date` (the local calendar) and `dim_time` (hour of day).

use chrono::{Datelike, NaiveDate};
use deltalake::arrow::array::RecordBatch;

use super::model::Hospitals;
use super::write::{epoch_days, plain_strings, Columns};
use crate::silver;
use crate::storage::Lake;
use crate::{Error, Result};

/// The `dim_hospital` batch.
pub fn hospital_batch(hospitals: &Hospitals) -> Result<RecordBatch> {
    let h: Vec<_> = hospitals.0.values().collect();
    let mut c = Columns::new();
    c.str(
        "hospital_id",
        h.iter().map(|x| Some(x.id.clone())).collect(),
    )
    .str("name", h.iter().map(|x| x.name.clone()).collect())
    .str("city", h.iter().map(|x| x.city.clone()).collect())
    .str("state", h.iter().map(|x| x.state.clone()).collect())
    .str(
        "time_zone",
        h.iter().map(|x| Some(x.zone_name.clone())).collect(),
    );
    c.finish()
}

/// `dim_department`: every Silver department version, plus `is_emergency` (the flag that keeps
/// emergency departments out of inpatient occupancy).
pub async fn department_batches(lake: &Lake) -> Result<Vec<RecordBatch>> {
    let sql = "SELECT department_sk, department_key, hospital_id, department_code, department_name, department_type, \
               coalesce(lower(department_type) = 'emergency', false) AS is_emergency, licensed_beds, staffed_beds, nurses, \
               physicians, valid_from, valid_to, is_current, status FROM silver_dim_department \
               ORDER BY hospital_id, department_code, valid_from";
    let batches = lake.sql(&[silver::DIM_DEPARTMENT], sql).await?;
    batches.iter().map(plain_strings).collect()
}

/// `dim_patient`: the Silver patient versions of the given patients (all for `None`), every column
/// (new patient attributes flow through with no code change).
pub async fn patient_batches(
    lake: &Lake,
    keys: Option<&std::collections::BTreeSet<String>>,
) -> Result<Vec<RecordBatch>> {
    let filter = match keys {
        Some(k) => format!(" WHERE {}", super::write::in_list("patient_key", k)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT * FROM silver_dim_patient{filter} ORDER BY hospital_id, patient_key, valid_from"
    );
    let batches = lake.sql(&[silver::DIM_PATIENT], &sql).await?;
    let batches: Vec<RecordBatch> = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(plain_strings)
        .collect::<Result<_>>()?;
    // DataFusion may return batches whose schemas differ only in nullability; unify on the first.
    if let Some(first) = batches.first() {
        let schema = first.schema();
        return batches
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                    .map_err(|e| Error::Storage(format!("internal: dim_patient batch: {e}")))
            })
            .collect();
    }
    Ok(batches)
}

/// The empty `dim_patient` schema (before any patient is known).
pub async fn patient_schema(lake: &Lake) -> Result<Option<RecordBatch>> {
    let batches = lake
        .sql(
            &[silver::DIM_PATIENT],
            "SELECT * FROM silver_dim_patient LIMIT 0",
        )
        .await?;
    batches.first().map(plain_strings).transpose()
}

/// `dim_date`: one row per calendar date in `[from, to]`.
pub fn date_batch(from: NaiveDate, to: NaiveDate) -> Result<RecordBatch> {
    let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let mut c = Columns::new();
    c.i32(
        "date_key",
        dates
            .iter()
            .map(|d| Some(super::time::date_key(*d)))
            .collect(),
    )
    .date("date", dates.iter().map(|d| Some(epoch_days(*d))).collect())
    .i32("year", dates.iter().map(|d| Some(d.year())).collect())
    .i32(
        "quarter",
        dates
            .iter()
            .map(|d| Some((d.month() as i32 - 1) / 3 + 1))
            .collect(),
    )
    .i32(
        "month",
        dates.iter().map(|d| Some(d.month() as i32)).collect(),
    )
    .i32(
        "month_key",
        dates
            .iter()
            .map(|d| Some(super::time::month_key(*d)))
            .collect(),
    )
    .str(
        "month_name",
        dates
            .iter()
            .map(|d| Some(months[d.month0() as usize].to_string()))
            .collect(),
    )
    .i32(
        "day_of_month",
        dates.iter().map(|d| Some(d.day() as i32)).collect(),
    )
    .i32(
        "day_of_week",
        dates
            .iter()
            .map(|d| Some(d.weekday().number_from_monday() as i32))
            .collect(),
    )
    .str(
        "day_name",
        dates
            .iter()
            .map(|d| Some(days[d.weekday().num_days_from_monday() as usize].to_string()))
            .collect(),
    )
    .i32(
        "iso_week",
        dates
            .iter()
            .map(|d| Some(d.iso_week().week() as i32))
            .collect(),
    )
    .bool(
        "is_weekend",
        dates
            .iter()
            .map(|d| Some(d.weekday().number_from_monday() >= 6))
            .collect(),
    );
    c.finish()
}

/// `dim_time`: the 24 hours of the day.
pub fn time_batch() -> Result<RecordBatch> {
    let hours: Vec<i32> = (0..24).collect();
    let period = |h: i32| match h {
        0..=6 => "night",
        7..=11 => "morning",
        12..=17 => "afternoon",
        _ => "evening",
    };
    let mut c = Columns::new();
    c.i32("hour_of_day", hours.iter().map(|h| Some(*h)).collect())
        .str(
            "hour_label",
            hours.iter().map(|h| Some(format!("{h:02}:00"))).collect(),
        )
        .str(
            "day_period",
            hours.iter().map(|h| Some(period(*h).to_string())).collect(),
        )
        .str(
            "shift",
            hours
                .iter()
                .map(|h| Some(if (7..19).contains(h) { "day" } else { "night" }.to_string()))
                .collect(),
        )
        .bool(
            "is_business_hours",
            hours.iter().map(|h| Some((8..17).contains(h))).collect(),
        );
    c.finish()
}

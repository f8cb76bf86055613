//! Reading typed values out of Arrow record batches, whatever string or timestamp flavour a reader
//! produced (Utf8 / Utf8View / LargeUtf8; timestamps in any unit).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};

use crate::{Error, Result};

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| Error::Query(format!("internal: column {name} missing from a batch")))
}

fn cast_to(array: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    cast(array, to).map_err(|e| {
        Error::Query(format!(
            "internal: column {name} cannot be read as {to}: {e}"
        ))
    })
}

/// A string column as owned values (a missing column reads as all null).
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let a = cast_to(array, &DataType::Utf8, name)?;
    let a = a.as_string::<i32>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        .collect())
}

/// A timestamp column as UTC instants.
pub fn timestamps(batch: &RecordBatch, name: &str) -> Result<Vec<Option<DateTime<Utc>>>> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let a = cast_to(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        name,
    )?;
    let a = a.as_primitive::<TimestampMicrosecondType>();
    Ok((0..a.len())
        .map(|i| {
            (!a.is_null(i))
                .then(|| DateTime::from_timestamp_micros(a.value(i)))
                .flatten()
        })
        .collect())
}

/// An integer column.
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let a = cast_to(array, &DataType::Int64, name)?;
    let a = a.as_primitive::<Int64Type>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect())
}

/// A float column.
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let a = cast_to(&column(batch, name)?, &DataType::Float64, name)?;
    let a = a.as_primitive::<Float64Type>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect())
}

/// A boolean column.
pub fn bools(batch: &RecordBatch, name: &str) -> Result<Vec<Option<bool>>> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let a = cast_to(array, &DataType::Boolean, name)?;
    let a = a.as_boolean();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect())
}

/// A date column.
pub fn dates(batch: &RecordBatch, name: &str) -> Result<Vec<Option<NaiveDate>>> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let a = cast_to(array, &DataType::Date32, name)?;
    let a = a.as_primitive::<Date32Type>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| epoch + chrono::Duration::days(i64::from(a.value(i)))))
        .collect())
}

/// Names of a batch's columns.
pub fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}
